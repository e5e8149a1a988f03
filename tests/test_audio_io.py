"""WAV files and the original sound track of a video."""
from __future__ import annotations

import os
import stat
import subprocess
from fractions import Fraction

import numpy as np
import pytest
import soundfile
from imageio_ffmpeg import get_ffmpeg_exe

from dubber.media import audio_io
from dubber.media.audio_io import decode_audio, read_wav, write_wav
from dubber.errors import InputError

SR = 48_000


def ffmpeg(*args: str) -> None:
    subprocess.run([get_ffmpeg_exe(), "-v", "error", "-y", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Tiny videos: mono 44.1 kHz tone; stereo tone starting 0.5 s after the picture; no audio."""
    folder = tmp_path_factory.mktemp("clips")
    picture = ["-f", "lavfi", "-i", "testsrc=size=64x36:rate=24:duration=2"]
    video_codec = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    ffmpeg(*picture, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=2",
           *video_codec, "-c:a", "aac", "-ac", "1", "-shortest", str(folder / "mono.mp4"))
    ffmpeg(*picture, "-itsoffset", "0.5", "-f", "lavfi", "-i", "sine=frequency=660:sample_rate=48000:duration=1",
           *video_codec, "-c:a", "aac", "-ac", "2", str(folder / "late.mp4"))
    ffmpeg(*picture, *video_codec, str(folder / "silent.mp4"))
    return folder


def test_wav_round_trip_24_bit(tmp_path):
    audio = np.random.default_rng(0).uniform(-0.9, 0.9, (2, 4801)).astype(np.float32)
    path = write_wav(tmp_path / "mix.wav", audio, SR)
    info = soundfile.info(str(path))
    assert (info.subtype, info.samplerate, info.channels, info.frames) == ("PCM_24", SR, 2, 4801)
    back, rate = read_wav(path)
    assert rate == SR and back.shape == (2, 4801) and back.dtype == np.float32
    assert np.abs(back - audio).max() <= 2.0 ** -23 * 1.01


@pytest.mark.parametrize("bits, subtype, tolerance", [(16, "PCM_16", 2.0 ** -15), (32, "FLOAT", 0.0)])
def test_other_sample_formats(tmp_path, bits, subtype, tolerance):
    audio = np.random.default_rng(1).uniform(-0.5, 0.5, (1, 1000)).astype(np.float32)
    path = write_wav(tmp_path / "a.wav", audio, 44_100, bits=bits)
    assert soundfile.info(str(path)).subtype == subtype
    back, _ = read_wav(path)
    assert np.abs(back - audio).max() <= tolerance * 1.01


def test_over_full_scale_clips_instead_of_wrapping(tmp_path):
    audio = np.array([[1.5, -1.5, 0.25]], dtype=np.float32)
    back, _ = read_wav(write_wav(tmp_path / "hot.wav", audio, SR))
    assert back[0, 0] > 0.99 and back[0, 1] < -0.99 and abs(back[0, 2] - 0.25) < 1e-6


def test_write_is_atomic(tmp_path, monkeypatch):
    dest = tmp_path / "stem.wav"
    write_wav(dest, np.zeros((2, 100), dtype=np.float32), SR)
    before = dest.read_bytes()

    def crash(*args, **kwargs):   # the header is on disk already: a partial file to clean up
        raise RuntimeError("disk full")

    monkeypatch.setattr(audio_io, "encode_samples", crash)
    with pytest.raises(RuntimeError):
        write_wav(dest, np.ones((2, 100), dtype=np.float32) * 0.5, SR)
    assert dest.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["stem.wav"]


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError):
        write_wav(tmp_path / "x.wav", np.zeros((2, 10)), SR, bits=12)
    with pytest.raises(InputError):
        read_wav(tmp_path / "missing.wav")


def test_decode_fixture_sound_track_exact_length(sample_24p):
    path, truth = sample_24p
    total = round(Fraction(truth["frame_count"]) * SR / Fraction(24000, 1001))
    audio = decode_audio(path, SR, total)
    assert audio.shape == (2, total) and audio.dtype == np.float32
    assert np.sqrt(np.mean(audio ** 2)) > 1e-3


def test_decode_mono_44k_to_stereo_48k(clips):
    audio = decode_audio(clips / "mono.mp4", SR, 2 * SR + 7)
    assert audio.shape == (2, 2 * SR + 7)
    assert np.array_equal(audio[0], audio[1])
    middle = audio[0, SR // 2:SR // 2 + SR]               # one second of steady tone
    spectrum = np.abs(np.fft.rfft(middle * np.hanning(middle.size)))
    assert abs(np.argmax(spectrum) * SR / middle.size - 440) <= 1.0


def test_decode_honours_a_late_audio_start(clips):
    audio = decode_audio(clips / "late.mp4", SR, 2 * SR)
    level = np.abs(audio).max(axis=0)
    first = int(np.argmax(level > 0.05))
    assert abs(first - SR // 2) < 0.005 * SR               # the tone starts 0.5 s into the picture
    assert level[:int(0.45 * SR)].max() < 1e-3


def test_decode_pads_and_trims(clips):
    long = decode_audio(clips / "mono.mp4", SR, 3 * SR)
    short = decode_audio(clips / "mono.mp4", SR, SR)
    assert long.shape == (2, 3 * SR) and short.shape == (2, SR)
    assert np.abs(long[:, int(2.1 * SR):]).max() == 0
    assert np.allclose(short, long[:, :SR])


def test_decode_reads_a_file_whose_titles_are_not_utf8(clips, tmp_path):
    legacy = tmp_path / "legacy.mkv"
    # Latin-1 bytes in the titles, as old tools write them: not valid UTF-8.
    subprocess.run([get_ffmpeg_exe(), "-v", "error", "-y", "-i", str(clips / "mono.mp4"), "-c", "copy",
                    "-metadata", b"title=caf\xe9", "-metadata:s:a:0", b"title=\xe9t\xe9", str(legacy)], check=True,
                   capture_output=True)
    audio = decode_audio(legacy, SR, 2 * SR)
    head = slice(0, int(1.5 * SR))   # Matroska keeps the encoder's padding at the end; MP4 trims it
    assert np.allclose(audio[:, head], decode_audio(clips / "mono.mp4", SR, 2 * SR)[:, head], atol=1e-6)


def test_decode_without_audio_stream_is_none(clips):
    assert decode_audio(clips / "silent.mp4", SR, SR) is None


def test_decode_unreadable_file(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all")
    with pytest.raises(InputError):
        decode_audio(bad, SR, SR)


def test_written_wav_has_the_permissions_of_any_new_file(tmp_path):
    old_umask = os.umask(0o002)   # a shared-workstation umask: group may write too
    try:
        stem = write_wav(tmp_path / "music.wav", np.zeros((2, 480), dtype=np.float32), SR)
        with open(tmp_path / "plain.txt", "w") as handle:
            handle.write("x")
    finally:
        os.umask(old_umask)
    mode = stat.S_IMODE(os.stat(stem).st_mode)
    assert mode == stat.S_IMODE(os.stat(tmp_path / "plain.txt").st_mode) == 0o664, oct(mode)


# ---------------------------------------------------------------------------- tracks on disk

def test_a_track_on_disk_reads_back_what_was_written_added_and_nothing_past_its_end(tmp_path):
    from dubber.media.tracks import new_track, work_folder

    rng = np.random.default_rng(3)
    audio = rng.standard_normal((2, 100_000)).astype(np.float32)
    with work_folder(tmp_path / "work") as folder:
        track = new_track("music", 2, 100_000)
        assert np.array_equal(track.read(0, 100_000), np.zeros((2, 100_000), np.float32))   # silence to start
        for start in range(0, 100_000, 30_000):   # written in blocks
            track.write(start, audio[:, start:start + 30_000])
        assert np.array_equal(track.read(0, 100_000), audio)
        track.add(99_990, np.ones((2, 50), np.float32))   # the part past the end is dropped
        expected = audio.copy()
        expected[:, 99_990:] += 1.0
        assert np.array_equal(track.read(99_000, 200_000), expected[:, 99_000:])
        assert track.read(150_000, 160_000).shape == (2, 0)
        assert [p.parent for p in folder.iterdir()] == [folder]   # the track's file is in the work folder
        track.close()
        with pytest.raises(ValueError, match="was closed"):
            track.read(0, 10)
        assert not list(folder.iterdir())
    assert not folder.exists()   # the job's work folder goes with it


def test_work_folders_of_dead_processes_are_swept_and_live_ones_kept(tmp_path):
    import os
    import subprocess
    import sys

    import socket

    from dubber.media.tracks import sweep_work_folders

    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = socket.gethostname()
    dead = tmp_path / f"{done.stdout.strip()}@{host}-abc123"
    live = tmp_path / f"{os.getpid()}@{host}-def456"
    elsewhere = tmp_path / f"{done.stdout.strip()}@another-machine-ghi789"   # its pid means nothing here
    for folder in (dead, live, elsewhere):
        folder.mkdir()
        (folder / "music-x.f32").write_bytes(b"\0" * 64)
    stranger = tmp_path / "notes"
    stranger.mkdir()
    assert sweep_work_folders(tmp_path) == [dead]
    assert not dead.exists() and live.is_dir() and elsewhere.is_dir() and stranger.is_dir()


def test_the_original_track_on_disk_is_the_decoded_audio(clips):
    from dubber.media.audio_io import decode_audio_track

    track = decode_audio_track(clips / "late.mp4", SR, 2 * SR)
    assert track.shape == (2, 2 * SR)
    assert np.array_equal(track.to_array(), decode_audio(clips / "late.mp4", SR, 2 * SR))
    assert np.abs(track.to_array()).max() > 0.01


def test_the_original_sound_is_the_track_the_file_marks_as_default(tmp_path):
    """A file with a scratch track first and its programme sound second, marked default: the
    bed is the programme sound; with no track marked, the first."""
    from dubber.api import DubOptions
    from dubber.run_notes import bed_notes
    from vision import probe

    picture = ["-f", "lavfi", "-i", "testsrc=size=64x36:rate=24:duration=2"]
    tones = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=2",
             "-f", "lavfi", "-i", "sine=frequency=1500:sample_rate=48000:duration=2"]
    streams = ["-map", "0:v", "-map", "1:a", "-map", "2:a", "-c:v", "libx264", "-preset", "ultrafast",
               "-pix_fmt", "yuv420p", "-c:a", "aac", "-metadata:s:a:1", "language=eng"]
    marked, unmarked = tmp_path / "marked.mp4", tmp_path / "unmarked.mkv"   # an MP4 always marks one
    ffmpeg(*picture, *tones, *streams, "-disposition:a:0", "0", "-disposition:a:1", "default", str(marked))
    ffmpeg(*picture, *tones, *streams, "-disposition:a:0", "0", "-disposition:a:1", "0", str(unmarked))

    def pitch(path) -> float:
        audio = decode_audio(path, SR, 2 * SR)[0, SR // 2:SR // 2 + 8192]
        return float(np.argmax(np.abs(np.fft.rfft(audio * np.hanning(audio.size))))) * SR / audio.size

    assert abs(pitch(marked) - 1500) < 20 and abs(pitch(unmarked) - 440) < 20
    keep = DubOptions(keep_original=True)
    assert bed_notes(probe(marked), keep) == [
        "the source's sound under the dub in the mix is its audio track 2 (eng), the one the file marks as default; "
        "all 2 tracks are kept after the dub"]
    assert "track 1, the first; the file marks none as default" in bed_notes(probe(unmarked), keep)[0]
    assert bed_notes(probe(marked), DubOptions()) == []
