"""Muxing the dub into the video: picture untouched, track order, exact audio length, atomic writes."""
from __future__ import annotations

import os
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile

from dubber.errors import InputError, OutputError
from dubber.media.ffmpeg import FFmpegError, ffmpeg_exe, ffmpeg_version, run_ffmpeg
from dubber.media.mux import mux
from vision.probe import probe

SR = 48000
AAC_FRAME = 1024   # samples per AAC frame; the last frame is padded up to it


def _dub_wav(tmp_path: Path, samples: int, name: str = "dub.wav") -> tuple[Path, np.ndarray]:
    t = np.arange(samples) / SR
    left = 0.3 * np.sin(2 * np.pi * 440 * t)
    audio = np.stack([left, 0.5 * left], axis=1).astype(np.float32)
    path = tmp_path / name
    soundfile.write(str(path), audio, SR, subtype="PCM_24")
    return path, audio


def _video_packets(path: Path) -> list[tuple[float, bytes]]:
    """(presentation time in ms, payload) of every video packet, in file order."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [(round(float(p.pts * stream.time_base) * 1000), bytes(p)) for p in container.demux(stream) if p.size]


def _streams(path: Path) -> list[tuple[str, str, str, bool]]:
    with av.open(str(path)) as container:
        return [(s.type, s.codec_context.name, s.metadata.get("title") or s.metadata.get("name", ""),
                 bool(s.disposition & av.stream.Disposition.default)) for s in container.streams]


def _decode_audio(path: Path, index: int) -> tuple[np.ndarray, int | None]:
    """All decoded samples of audio stream `index` as (samples, channels), and the first frame's pts."""
    with av.open(str(path)) as container:
        frames = list(container.decode(container.streams.audio[index]))
    channels = len(frames[0].layout.channels)
    # Packed formats (FLAC's s32) interleave channels in one row; planar ones have a row each.
    arrays = [f.to_ndarray().reshape(-1, channels) if f.format.is_packed else f.to_ndarray().T for f in frames]
    return np.concatenate(arrays, axis=0), frames[0].pts


def _audio_duration_samples(path: Path, index: int) -> int:
    with av.open(str(path)) as container:
        stream = container.streams.audio[index]
        return round(stream.duration * stream.time_base * SR)


def test_mp4_keeps_picture_bits_and_puts_the_dub_first(sample_24p, tmp_path):
    video, _ = sample_24p
    info = probe(video)
    total = info.total_samples(SR)
    wav, _ = _dub_wav(tmp_path, total)
    out = tmp_path / "out.mp4"
    mux(video, wav, out, original_audio=True, video_info=info)

    assert _video_packets(out) == _video_packets(video)            # -c:v copy: same bytes, same times
    assert _streams(out) == [("video", "h264", "", True), ("audio", "aac", "Dub", True),
                             ("audio", "aac", "Original", False)]
    # The mp4 edit list trims AAC's 1024-sample priming and the padding of the last frame, so the
    # track's declared duration is the exact sample count.
    assert _audio_duration_samples(out, 0) == total
    # The decoder drops the priming (first frame at pts 0); only the tail padding of the last AAC
    # frame remains, so the decoded count is at most one frame longer than the video.
    decoded, first_pts = _decode_audio(out, 0)
    assert first_pts == 0
    assert total <= decoded.shape[0] < total + AAC_FRAME
    # The original track is the source's own AAC, copied packet for packet (up to the picture's end).
    with av.open(str(video)) as src, av.open(str(out)) as dst:
        src_packets = [bytes(p) for p in src.demux(src.streams.audio[0]) if p.size]
        out_packets = [bytes(p) for p in dst.demux(dst.streams.audio[1]) if p.size]
    assert out_packets and out_packets == src_packets[:len(out_packets)]
    assert len(src_packets) - len(out_packets) <= 2
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    head = out.read_bytes()
    assert 0 < head.find(b"moov") < head.find(b"mdat")              # +faststart: index first


def test_rotation_survives_the_mux(sample_30p_silent, tmp_path):
    video, _ = sample_30p_silent
    rotated = tmp_path / "rotated.mp4"
    run_ffmpeg(["-display_rotation", "90", "-i", str(video), "-c", "copy", str(rotated)], what="rotating")
    info = probe(rotated)
    assert info.rotation in (90, -90, 270)
    wav, _ = _dub_wav(tmp_path, info.total_samples(SR))
    for suffix in (".mp4", ".mkv"):
        out = tmp_path / f"out{suffix}"
        mux(rotated, wav, out, video_info=info)
        assert probe(out).rotation == info.rotation


def test_mkv_dub_is_lossless_and_exactly_as_long_as_the_video(sample_30p_silent, tmp_path):
    video, _ = sample_30p_silent
    info = probe(video)
    total = info.total_samples(SR)                                    # 5 s at 30 fps: 240000
    wav, audio = _dub_wav(tmp_path, total)
    out = tmp_path / "out.mkv"
    mux(video, wav, out, original_audio=True, video_info=info)       # silent source: dub only

    assert _streams(out) == [("video", "h264", "", True), ("audio", "flac", "Dub", True)]
    assert _video_packets(out) == _video_packets(video)
    decoded, first_pts = _decode_audio(out, 0)
    assert first_pts == 0 and decoded.shape == (total, 2)
    np.testing.assert_allclose(decoded.astype(np.float64) / 2**31, audio, atol=2**-23)


def test_a_wav_of_the_wrong_length_is_trimmed_or_padded_to_the_video(sample_30p_silent, tmp_path):
    video, _ = sample_30p_silent
    info = probe(video)
    total = info.total_samples(SR)
    for samples in (total - 777, total + 5000):
        wav, _ = _dub_wav(tmp_path, samples, name=f"dub{samples}.wav")
        out = tmp_path / f"out{samples}.mkv"
        mux(video, wav, out, video_info=info)
        decoded, _ = _decode_audio(out, 0)
        assert decoded.shape[0] == total


def test_vfr_picture_timestamps_survive(sample_vfr, tmp_path):
    video, _ = sample_vfr
    info = probe(video)
    assert info.is_vfr
    total = info.total_samples(SR)
    wav, _ = _dub_wav(tmp_path, total)
    out = tmp_path / "out.mp4"
    mux(video, wav, out, video_info=info)
    assert _video_packets(out) == _video_packets(video)
    assert _audio_duration_samples(out, 0) == total


def test_failed_mux_leaves_no_output_and_no_temporary(sample_30p_silent, tmp_path):
    video, _ = sample_30p_silent
    info = probe(video)
    wav, _ = _dub_wav(tmp_path, info.total_samples(SR))
    fake_video = tmp_path / "fake.mp4"
    fake_video.write_bytes(b"not a video at all" * 100)
    out = tmp_path / "out.mp4"
    with pytest.raises(FFmpegError, match="writing out.mp4"):   # the probe's facts are trusted; ffmpeg refuses
        mux(fake_video, wav, out, video_info=info)
    garbage_wav = tmp_path / "garbage.wav"
    garbage_wav.write_bytes(b"RIFF....garbage")
    with pytest.raises(InputError):
        mux(video, garbage_wav, out, video_info=info)
    with pytest.raises(InputError):
        mux(video, tmp_path / "missing.wav", out, video_info=info)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dub.wav", "fake.mp4", "garbage.wav"]


def test_refuses_to_overwrite_inputs_and_unusable_destinations(sample_30p_silent, tmp_path, monkeypatch):
    video, _ = sample_30p_silent
    info = probe(video)
    wav, _ = _dub_wav(tmp_path, info.total_samples(SR))
    before = video.read_bytes()
    with pytest.raises(OutputError, match="overwrite"):
        mux(video, wav, Path(os.path.relpath(video)), video_info=info)
    assert video.read_bytes() == before
    with pytest.raises(OutputError, match="does not exist"):
        mux(video, wav, tmp_path / "no" / "such" / "out.mp4", video_info=info)
    with pytest.raises(OutputError, match=".mkv"):
        mux(video, wav, tmp_path / "out.avi", video_info=info)
    with pytest.raises(OutputError, match="aac"):
        mux(video, wav, tmp_path / "out.mp4", video_info=info, audio_codec="flac")
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    # Permission bits do not stop root, so the folder is reported read-only the way os.access would.
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == locked else real_access(p, mode))
    with pytest.raises(OutputError, match="not writable"):
        mux(video, wav, locked / "out.mp4", video_info=info)


def test_ffmpeg_binary_choice_and_errors(monkeypatch, tmp_path):
    monkeypatch.delenv("DUB_FFMPEG", raising=False)
    default = ffmpeg_exe()
    assert Path(default).is_file()
    assert ffmpeg_version().startswith("ffmpeg version")
    monkeypatch.setenv("DUB_FFMPEG", default)
    assert ffmpeg_exe() == default
    monkeypatch.setenv("DUB_FFMPEG", str(tmp_path / "no-ffmpeg-here"))
    with pytest.raises(FFmpegError, match="DUB_FFMPEG"):
        ffmpeg_exe()
    monkeypatch.delenv("DUB_FFMPEG")
    with pytest.raises(FFmpegError, match="No such file|does not exist|Error opening"):
        run_ffmpeg(["-i", str(tmp_path / "absent.mp4"), str(tmp_path / "x.wav")], what="testing")


def test_ffmpeg_reports_its_progress_while_it_writes_and_still_stops_on_time(tmp_path):
    """A long mux is not a silent wait: the seconds written so far arrive while ffmpeg runs,
    rising to the output's length; a time limit still stops it with one sentence."""
    seen: list[tuple[float, float]] = []
    began = time.monotonic()
    # -re feeds the 3 s test picture in real time, so the run lasts long enough to be seen.
    run_ffmpeg(["-re", "-f", "lavfi", "-i", "testsrc=size=160x90:rate=24:duration=3", "-c:v", "libx264",
                "-preset", "ultrafast", str(tmp_path / "slow.mp4")], what="testing",
               on_progress=lambda s: seen.append((time.monotonic() - began, s)))
    ends = [s for _, s in seen]
    assert len(seen) >= 3 and ends == sorted(ends), seen
    assert seen[0][0] < 2.0 and 0.0 < seen[0][1] < 2.5, "the first report came only at the end"
    assert abs(ends[-1] - 3.0) <= 0.1
    with pytest.raises(FFmpegError, match="took longer than 1"):
        run_ffmpeg(["-re", "-f", "lavfi", "-i", "testsrc=size=160x90:rate=24:duration=30",
                    str(tmp_path / "slower.mp4")], what="testing", timeout_s=1, on_progress=lambda s: None)


def _music_wav(tmp_path: Path, samples: int) -> tuple[Path, np.ndarray]:
    """Chords with decaying notes, bass and wide-stereo noise hits: a dub-like 48 kHz stereo signal."""
    rng = np.random.default_rng(3)
    t = np.arange(samples) / SR
    audio = np.zeros((samples, 2))
    for start in range(0, samples, SR // 2):
        env = np.exp(-np.clip(t - start / SR, 0, None) * 3) * (t >= start / SR)
        for k, f in enumerate(110 * 2 ** (rng.integers(0, 24, 3) / 12)):
            for h in range(1, 6):
                tone = np.sin(2 * np.pi * f * h * t + k) * env * 0.06 / h
                audio[:, 0] += tone * (1 - 0.2 * k)
                audio[:, 1] += tone * (0.6 + 0.2 * k)
        hit = rng.standard_normal((4000, 2)) * np.exp(-np.arange(4000) / 500)[:, None] * 0.2
        audio[start:start + 4000] += hit[:samples - start]
    audio *= 0.8 / np.abs(audio).max()
    path = tmp_path / "music.wav"
    soundfile.write(str(path), audio.astype(np.float32), SR, subtype="PCM_24")
    return path, audio


def _band_levels_db(audio: np.ndarray) -> np.ndarray:
    """Level (dB) of each third-octave band, 50 Hz - 16 kHz, in each 21 ms frame: (bands, ch, frames)."""
    from scipy import signal

    freqs, _, spec = signal.stft(audio.T, SR, nperseg=1024)
    power = np.abs(spec) ** 2
    edges = np.geomspace(50, 16_000, 26)
    return np.stack([10 * np.log10(power[:, (freqs >= lo) & (freqs < hi)].sum(axis=1) + 1e-12)
                     for lo, hi in zip(edges[:-1], edges[1:])])


def test_both_aac_coders_keep_the_sound(sample_30p_silent, tmp_path):
    # Which coder is faster is a benchmark question (bench/pipeline.py times the mux); here
    # both must keep the music, and the option must reach ffmpeg.
    video, _ = sample_30p_silent
    info = probe(video)
    total = info.total_samples(SR)
    wav, source = _music_wav(tmp_path, total)
    reference = _band_levels_db(source)
    loud = reference > reference.max() - 60                             # bands that carry the music
    decoded = {}
    for coder in ("fast", "twoloop"):
        kwargs = {} if coder == "fast" else {"aac_coder": "twoloop"}     # fast is the default
        mux(video, wav, tmp_path / f"{coder}.mp4", video_info=info, **kwargs)
        decoded[coder] = _decode_audio(tmp_path / f"{coder}.mp4", 0)[0][:total].astype(np.float64)
        error = np.abs(_band_levels_db(decoded[coder]) - reference)[loud]
        assert error.mean() < 0.3 and np.percentile(error, 99) < 3.0, (coder, error.mean())
        low = np.sum(source[:, 0] ** 2) / np.sum((decoded[coder][:, 0] - source[:, 0]) ** 2)
        assert 10 * np.log10(low) > 15, coder                              # waveform kept, not just levels
    assert not np.array_equal(decoded["fast"], decoded["twoloop"])
    with pytest.raises(OutputError, match="fast, twoloop"):
        mux(video, wav, tmp_path / "bad.mp4", video_info=info, aac_coder="slow")
    assert not (tmp_path / "bad.mp4").exists()


def test_the_aac_dub_peaks_no_higher_than_the_mix_it_carries(sample_30p_silent, tmp_path):
    """A mix limited to -1.05 dBTP whose flat tops AAC rebuilds with overshoot (a hard-clipped
    bass, about +1 dB after encoding): the delivered track is measured, and encoded again quieter,
    so what a client decodes meets the mix's true peak, or a ceiling given outright."""
    from dubber.loudness import true_peak_db

    video, _ = sample_30p_silent
    info = probe(video)
    total = info.total_samples(SR)
    t = np.arange(total) / SR
    clipped = np.clip(1.8 * np.sin(2 * np.pi * 110 * t), -1, 1)
    audio = np.stack([clipped, clipped]).astype(np.float32)
    audio *= 10 ** (-1.05 / 20) / 10 ** (true_peak_db(audio, SR) / 20)
    wav = tmp_path / "clipped.wav"
    soundfile.write(str(wav), audio.T, SR, subtype="PCM_24")
    mix_peak_db = true_peak_db(soundfile.read(str(wav), dtype="float32")[0].T, SR)
    for name, ceiling_db, limit_db in (("own.mp4", None, mix_peak_db), ("set.mp4", -2.0, -2.0)):
        mux(video, wav, tmp_path / name, video_info=info, true_peak_ceiling_db=ceiling_db)
        decoded = _decode_audio(tmp_path / name, 0)[0].T
        peak_db = true_peak_db(decoded, SR)
        assert limit_db - 0.5 < peak_db <= limit_db, (name, peak_db, limit_db)   # trimmed, not squashed
    assert _audio_duration_samples(tmp_path / "own.mp4", 0) == total


def _audio_tags(path: Path) -> list[tuple[str, str, str, str | None, bool]]:
    """(codec, title, handler name, language, default?) of every audio stream."""
    with av.open(str(path)) as container:
        return [(s.codec_context.name, s.metadata.get("title") or s.metadata.get("name", ""),
                 s.metadata.get("handler_name", ""),
                 s.metadata.get("language"), bool(s.disposition & av.stream.Disposition.default))
                for s in container.streams.audio]


@pytest.mark.parametrize("suffix", [".mov", ".mp4"])
def test_tracks_are_named_in_mov_and_mp4(sample_24p, tmp_path, suffix):
    video, _ = sample_24p
    info = probe(video)
    wav, _ = _dub_wav(tmp_path, info.total_samples(SR))
    out = tmp_path / f"out{suffix}"
    mux(video, wav, out, original_audio=True, video_info=info)
    tags = _audio_tags(out)
    # The handler name is what QuickTime and Premiere show, and the only label .mov keeps.
    assert [(t[2], t[4]) for t in tags] == [("Dub", True), ("Original", False)]
    assert tags[0][0] == "aac"   # an H.264 picture with AAC sound is no master: its dub is AAC too
    if suffix == ".mp4":
        assert [t[1] for t in tags] == ["Dub", "Original"]


@pytest.fixture()
def two_language_source(sample_24p, tmp_path) -> Path:
    """The 24p sample with a second, French PCM track after its English AAC one (a .mov)."""
    video, _ = sample_24p
    source = tmp_path / "two_languages.mov"
    run_ffmpeg(["-i", str(video), "-f", "lavfi", "-i", "sine=frequency=330:sample_rate=48000:duration=6",
                "-map", "0:v", "-map", "0:a", "-map", "1:a", "-c:v", "copy", "-c:a:0", "copy",
                "-c:a:1", "pcm_s16le", "-metadata:s:a:0", "language=eng", "-metadata:s:a:1", "language=fra",
                "-disposition:a:0", "default", "-disposition:a:1", "default", "-shortest", str(source)],
               what="making a two-language source")
    return source


def test_every_original_track_is_kept_with_its_language(two_language_source, tmp_path):
    info = probe(two_language_source)
    wav, _ = _dub_wav(tmp_path, info.total_samples(SR))
    mp4, mkv = tmp_path / "out.mp4", tmp_path / "out.mkv"
    mux(two_language_source, wav, mp4, original_audio=True, video_info=info)
    mux(two_language_source, wav, mkv, original_audio=True, video_info=info)
    # MP4 cannot hold PCM, so the French track goes in lossless as ALAC; mkv copies it as it is.
    assert _audio_tags(mp4) == [("aac", "Dub", "Dub", "zxx", True),
                                ("aac", "Original 1", "Original 1", "eng", False),
                                ("alac", "Original 2", "Original 2", "fra", False)]
    assert [(t[0], t[1], t[3], t[4]) for t in _audio_tags(mkv)] == [
        ("flac", "Dub", "zxx", True), ("aac", "Original 1", "eng", False),
        ("pcm_s16le", "Original 2", "fra", False)]
    with av.open(str(two_language_source)) as src, av.open(str(mkv)) as dst:
        for index in (0, 1):                                          # copied packet for packet
            src_packets = [bytes(p) for p in src.demux(src.streams.audio[index]) if p.size]
            src.seek(0)
            out_packets = [bytes(p) for p in dst.demux(dst.streams.audio[index + 1]) if p.size]
            dst.seek(0)
            assert out_packets and out_packets == src_packets[:len(out_packets)]
    french, _ = _decode_audio(mp4, 2)
    spectrum = np.abs(np.fft.rfft(french[SR:2 * SR, 0]))
    assert abs(int(np.argmax(spectrum)) - 330) <= 1                  # the French track's own sound


def _packet_timing(path: Path) -> tuple[Fraction, list[bytes], set[Fraction]]:
    """(average frame rate, payloads, packet durations in seconds) of the video stream."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = [p for p in container.demux(stream) if p.size]
        return (Fraction(stream.average_rate), [bytes(p) for p in packets],
                {Fraction(p.duration) * Fraction(stream.time_base) for p in packets})


def _has_encoder(name: str) -> bool:
    done = run_ffmpeg(["-encoders"], what="listing encoders")
    return any(line.split()[1:2] == [name] for line in done.stdout.splitlines() if line.strip())


@pytest.mark.parametrize("codec, encoder", [("h264", "libx264"), ("hevc", "libx265")])
def test_mkv_source_keeps_its_exact_ntsc_rate_in_mp4(tmp_path, codec, encoder):
    if not _has_encoder(encoder):
        pytest.skip(f"this ffmpeg has no {encoder}")
    source = tmp_path / f"{codec}.mkv"
    run_ffmpeg(["-f", "lavfi", "-i", "testsrc=size=320x180:rate=24000/1001:duration=3", "-c:v", encoder,
                "-preset", "ultrafast", "-bf", "2", "-pix_fmt", "yuv420p", *(["-x265-params", "log-level=error"]
                if codec == "hevc" else []), str(source)], what="making an mkv source")
    info = probe(source)
    assert info.fps == Fraction(24000, 1001) and info.time_base == Fraction(1, 1000)
    wav, _ = _dub_wav(tmp_path, info.total_samples(SR))
    out = tmp_path / "out.mp4"
    mux(source, wav, out, video_info=info)
    rate, payloads, durations = _packet_timing(out)
    assert rate == Fraction(24000, 1001)                              # not 28800/1201
    assert durations == {Fraction(1001, 24000)}
    assert payloads == _packet_timing(source)[1]                       # the picture's bytes untouched
    assert probe(out).fps == Fraction(24000, 1001) and probe(out).frame_count == info.frame_count
    if codec == "hevc":
        with av.open(str(out)) as container:
            assert container.streams.video[0].codec_context.codec_tag == "hvc1"   # Apple players need it


def test_the_source_timecode_is_carried_into_the_output(sample_30p_silent, tmp_path):
    video, _ = sample_30p_silent
    stamped = tmp_path / "stamped.mov"
    run_ffmpeg(["-i", str(video), "-c", "copy", "-timecode", "01:00:00:00", str(stamped)], what="stamping")
    info = probe(stamped)
    assert info.start_timecode == "01:00:00:00"
    wav, _ = _dub_wav(tmp_path, info.total_samples(SR))
    for suffix in (".mp4", ".mov", ".mkv"):
        out = tmp_path / f"out{suffix}"
        mux(stamped, wav, out, video_info=info)
        assert probe(out).start_timecode == "01:00:00:00", suffix


def test_mux_progress_never_goes_back_when_the_dub_is_encoded_again():
    """ffmpeg writes the file a second time when the encoded dub peaks over its ceiling: the stage
    grows by a pass, and what is done never falls back (nor ever passes its total)."""
    from dubber.api import passes_reported

    shown = []
    report = passes_reported(lambda stage, done, total: shown.append((done, total)), "mux", 10)
    for pass_seconds in (range(0, 11), range(0, 11)):
        for s in pass_seconds:
            report(s + 0.5)
    done = [d for d, _ in shown]
    assert done == sorted(done) and all(d <= t for d, t in shown)
    assert shown[-1] == (20, 20) and shown[10] == (10, 10)
