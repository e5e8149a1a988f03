"""Broadcast WAV files: the bext chunk's layout and TimeReference, and files that libsndfile and
ffmpeg read sample for sample, RF64 included, written a block at a time."""
from __future__ import annotations

import re
import struct
import subprocess
import tracemalloc

import numpy as np
import pytest
import soundfile
from imageio_ffmpeg import get_ffmpeg_exe

from dubber.media import audio_io, bwf
from dubber.media.audio_io import write_wav, write_wav_blocks
from dubber.media.bwf import BroadcastInfo
from tests.dub_cli import bext_time_reference, wav_chunks

SR = 48_000
HOUR_AT_NTSC_SAMPLES = 172_972_800   # 01:00:00:00 at 24000/1001 fps: 86,400 frames of 2,002 samples


def _tone(channels: int, samples: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.9, 0.9, (channels, samples)).astype(np.float32)


def _ffmpeg_read(path) -> tuple[np.ndarray, int | None]:
    """Every sample ffmpeg decodes from `path` as float32 (channels, samples), and the
    time_reference its WAV reader reports (None when it reports none)."""
    channels = soundfile.info(str(path)).channels
    proc = subprocess.run([get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path), "-f", "f32le", "-c:a",
                           "pcm_f32le", "-"], capture_output=True, check=True)
    found = re.search(rb"time_reference\s*:\s*(\d+)", proc.stderr)
    audio = np.frombuffer(proc.stdout, dtype="<f4").reshape(-1, channels).T
    return audio, int(found.group(1)) if found else None


def test_the_bext_chunk_follows_ebu_tech_3285(tmp_path):
    path = write_wav_blocks(tmp_path / "mix.wav", lambda a, b: _tone(2, 4800)[:, a:b], 2, 4800, SR,
                            broadcast=BroadcastInfo(HOUR_AT_NTSC_SAMPLES, "dub mix"))
    raw = path.read_bytes()
    assert raw[:4] == b"RIFF" and struct.unpack_from("<I", raw, 4)[0] == len(raw) - 8 and raw[8:12] == b"WAVE"
    chunks = wav_chunks(path)
    assert [(c, size) for c, size, _ in chunks] == [("bext", 602), ("fmt ", 16), ("data", 4800 * 2 * 3)]
    bext = chunks[0][2]
    assert bext[:256].rstrip(b"\0") == b"dub mix" and bext[256:288].rstrip(b"\0") == b"dubber"
    assert bext[288:338] == b"\0" * 50                                 # reference, date and time left empty
    low, high, version = struct.unpack_from("<IIH", bext, 338)
    assert (high << 32) + low == HOUR_AT_NTSC_SAMPLES and version == 1
    assert bext[348:] == b"\0" * 254                                   # UMID and reserved bytes
    assert bext_time_reference(path) == HOUR_AT_NTSC_SAMPLES
    fmt = struct.unpack("<HHIIHH", chunks[1][2])
    assert fmt == (1, 2, SR, SR * 6, 6, 24)                            # integer PCM, 24 bits, stereo


def test_a_time_reference_past_32_bits_keeps_its_high_word(tmp_path):
    late = (1 << 32) + 12_345   # a day at 96 kHz passes 2**32 samples after about 12.4 hours
    path = write_wav(tmp_path / "a.wav", np.zeros((1, 10), np.float32), SR)
    assert bext_time_reference(path) == 0                               # no timecode: the sound starts at zero
    late_path = write_wav_blocks(tmp_path / "b.wav", lambda a, b: np.zeros((1, b - a), np.float32), 1, 10, SR,
                                 broadcast=BroadcastInfo(late))
    assert bext_time_reference(late_path) == late
    with pytest.raises(ValueError):
        BroadcastInfo(-1)


@pytest.mark.parametrize("bits, subtype, step", [(16, "PCM_16", 2.0 ** -15), (24, "PCM_24", 2.0 ** -23),
                                                  (32, "FLOAT", 0.0)])
def test_libsndfile_and_ffmpeg_read_every_sample_and_the_time_reference(tmp_path, bits, subtype, step):
    audio = _tone(2, 48_013, seed=bits)
    audio[:, :4] = [[1.0, -1.0, 0.0, 0.5], [-1.0, 1.0, -0.5, 2.0 ** -24]]
    path = write_wav_blocks(tmp_path / "stem.wav", lambda a, b: audio[:, a:b], 2, audio.shape[1], SR, bits,
                            BroadcastInfo(HOUR_AT_NTSC_SAMPLES, "dub music stem"))
    info = soundfile.info(str(path))
    assert (info.subtype, info.samplerate, info.channels, info.frames) == (subtype, SR, 2, 48_013)
    back, _ = soundfile.read(str(path), dtype="float32", always_2d=True)
    top = 1.0 - step                                                   # +1.0 stops one step short
    expected = np.clip(audio, -1.0, top) if bits != 32 else audio
    assert np.abs(back.T - expected).max() <= step / 2                 # the nearest step
    decoded, time_reference = _ffmpeg_read(path)
    assert time_reference == HOUR_AT_NTSC_SAMPLES
    np.testing.assert_array_equal(decoded, back.T)


def test_an_odd_sized_data_chunk_is_padded(tmp_path):
    audio = _tone(1, 1001)   # mono 24-bit: 3,003 bytes of samples
    path = write_wav(tmp_path / "mono.wav", audio, SR)
    raw = path.read_bytes()
    assert len(raw) % 2 == 0 and struct.unpack_from("<I", raw, 4)[0] == len(raw) - 8
    assert wav_chunks(path)[-1] == ("data", 3003, b"") and raw.endswith(b"\0")
    assert soundfile.info(str(path)).frames == 1001 and _ffmpeg_read(path)[0].shape == (1, 1001)


@pytest.mark.parametrize("bits", [24, 32])
def test_a_file_past_the_riff_limit_is_rf64_that_both_readers_take(tmp_path, monkeypatch, bits):
    monkeypatch.setattr(bwf, "RIFF_LIMIT_BYTES", 1000)   # stands in for 4 GiB
    audio = _tone(2, 2000)
    path = write_wav_blocks(tmp_path / "long.wav", lambda a, b: audio[:, a:b], 2, 2000, SR, bits,
                            BroadcastInfo(HOUR_AT_NTSC_SAMPLES))
    raw = path.read_bytes()
    assert raw[:4] == b"RF64" and raw[4:8] == b"\xff\xff\xff\xff"
    chunks = wav_chunks(path)
    assert chunks[0][0] == "ds64" and chunks[-1][:2] == ("data", 0xFFFF_FFFF)
    riff_size, data_size, sample_count = struct.unpack_from("<QQQ", chunks[0][2])
    assert (riff_size, data_size, sample_count) == (len(raw) - 8, 2000 * 2 * bits // 8, 2000)
    back, _ = soundfile.read(str(path), dtype="float32", always_2d=True)
    assert back.shape == (2000, 2) and np.abs(back.T - audio).max() <= 2.0 ** -24
    decoded, time_reference = _ffmpeg_read(path)
    assert time_reference == HOUR_AT_NTSC_SAMPLES
    np.testing.assert_array_equal(decoded, back.T)


def test_a_long_track_is_written_a_block_at_a_time_in_flat_memory(tmp_path, monkeypatch):
    monkeypatch.setattr(audio_io, "WRITE_BLOCK", 4096)
    samples = 1 << 20   # 8 MB as stereo float32: far more than a block
    asked: list[int] = []

    def read(start: int, stop: int) -> np.ndarray:
        asked.append(stop - start)
        return np.full((2, stop - start), 0.25, np.float32)

    tracemalloc.start()
    try:
        path = write_wav_blocks(tmp_path / "film.wav", read, 2, samples, SR, broadcast=BroadcastInfo(SR * 3600))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert max(asked) == 4096 and sum(asked) == samples
    assert peak < 1_000_000, peak                                      # a few blocks, never the track
    assert soundfile.info(str(path)).frames == samples and bext_time_reference(path) == SR * 3600


def test_a_block_of_the_wrong_shape_is_refused_and_leaves_nothing(tmp_path):
    """The header states the length before the first sample: a short block would make it lie."""
    with pytest.raises(ValueError, match="expected"):
        write_wav_blocks(tmp_path / "short.wav", lambda a, b: np.zeros((2, max(0, b - a - 1)), np.float32), 2, 100, SR)
    with pytest.raises(ValueError, match="expected"):
        write_wav_blocks(tmp_path / "mono.wav", lambda a, b: np.zeros((1, b - a), np.float32), 2, 100, SR)
    assert list(tmp_path.iterdir()) == []
