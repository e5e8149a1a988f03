"""A dub that keeps the source's sound, from a source whose sound starts before its picture (a
stream-copied trim or a camera file whose first packet is the AAC priming, a late picture, an AVI
with B-frames): the dub starts on the first picture, lasts exactly round(frames * 48000 / fps)
samples, and the kept original sits against the picture where it sat in the source. Every figure
is measured on the output file with PyAV, the way a player or an NLE import places the streams."""
from __future__ import annotations

import functools
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import imageio_ffmpeg
import numpy as np
import pytest

from tests.dub_cli import dub_env, ffmpeg, read_wav, run_dub

FPS = 24
SECONDS = 6
RATE = 48000


@functools.lru_cache(maxsize=1)
def _encoders() -> str:
    done = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-encoders"], capture_output=True,
                          text=True, check=True)
    return done.stdout


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    """A 6 s, 24 fps clip whose sound is pink noise (one clear peak when two copies are lined up),
    and the same clip as it arrives with its sound before its picture."""
    folder = tmp_path_factory.mktemp("sources")
    base = folder / "base.mp4"
    ffmpeg("-f", "lavfi", "-i", f"testsrc=size=160x90:rate={FPS}", "-f", "lavfi",
           "-i", f"anoisesrc=color=pink:sample_rate={RATE}:seed=7:amplitude=0.3", "-t", str(SECONDS),
           "-c:v", "libx264", "-g", "12", "-pix_fmt", "yuv420p", "-c:a", "aac", str(base))
    made = {"base": base}
    # A stream copy onto another clock keeps the AAC priming packet as the file's first packet:
    # the picture starts 1024 samples (21.3 ms) into the file.
    made["primed"] = folder / "primed.mp4"
    ffmpeg("-i", str(base), "-c", "copy", "-output_ts_offset", "10", str(made["primed"]))
    # Sound half a second before the picture, as many camera files and trims have it.
    made["late_picture"] = folder / "late picture.mp4"
    ffmpeg("-itsoffset", "0.5", "-i", str(base), "-i", str(base), "-map", "0:v", "-map", "1:a", "-c", "copy",
           str(made["late_picture"]))
    if " mpeg4 " in _encoders() and " libmp3lame " in _encoders():
        # An AVI with B-frames shows its first picture one frame after its sound starts; its MP3
        # packets are its audio clock's ticks (24 ms), far coarser than the picture's lead.
        made["avi_mp3"] = folder / "b-frames.avi"
        ffmpeg("-i", str(base), "-c:v", "mpeg4", "-bf", "2", "-q:v", "4", "-c:a", "libmp3lame", str(made["avi_mp3"]))
    return made


def _source(sources: dict[str, Path], name: str) -> Path:
    if name not in sources:
        pytest.skip(f"this ffmpeg cannot make the {name} source")
    return sources[name]


def _picture(path: Path) -> tuple[float, int, Fraction]:
    """(time of the first picture shown, number of pictures shown, frame rate)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        shown = [p for p in container.demux(stream) if p.size and not p.is_discard]
        rate = Fraction(stream.average_rate)
    with av.open(str(path)) as container:
        first = min(float(f.time) for f, _ in zip(container.decode(video=0), range(8)))
    return first, len(shown), rate


def _sound(path: Path, track: int) -> tuple[float, np.ndarray, int]:
    """(time of the first sample a player plays, first channel, sample rate) of audio track `track`
    (edit lists honoured, so skipped priming is not counted)."""
    chunks, first, rate = [], None, 0
    with av.open(str(path)) as container:
        stream = container.streams.audio[track]
        for frame in container.decode(stream):
            if first is None:
                first = float(frame.time)
            samples = frame.to_ndarray()
            chunks.append(samples[0] if frame.format.is_planar else samples.reshape(-1, len(frame.layout.channels))[:, 0])
            rate = frame.sample_rate
    return first, np.concatenate(chunks).astype(np.float64), rate


def _played_samples(path: Path, track: int) -> int:
    """How many samples an MP4/MOV track plays (its edit list's length)."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[track]
        return int(stream.duration * stream.time_base * stream.codec_context.sample_rate)


def _lag(reference: np.ndarray, reference_at: int, signal: np.ndarray, signal_at: int, window: tuple[int, int],
         search: int = 2048) -> int:
    """Samples by which `signal` sounds later than `reference`, both placed on the picture's clock
    (sample i of each plays at picture time i + its `_at`), compared over `window` (picture-clock
    samples) by cross-correlation."""
    start, length = window
    ref = reference[start - reference_at:start - reference_at + length]
    lo = start - signal_at - search
    assert lo >= 0 and start - signal_at + search + length <= len(signal)
    seg = signal[lo:lo + length + 2 * search]
    scores = np.correlate(seg, ref, mode="valid")
    return int(np.argmax(scores)) - search


CASES = [("primed", ".mp4"), ("primed", ".mov"), ("primed", ".mkv"), ("late_picture", ".mp4"),
         ("avi_mp3", ".mp4"), ("base", ".mp4")]


@pytest.mark.parametrize("name,suffix", CASES, ids=[f"{n}{s}" for n, s in CASES])
def test_kept_original_leaves_the_dub_on_the_first_picture_and_exactly_as_long(sources, tmp_path, name, suffix):
    source = _source(sources, name)
    source_picture_s, frames, fps = _picture(source)
    source_sound_s, source_sound, _ = _sound(source, 0)
    if name != "base":
        assert source_sound_s < source_picture_s   # the source's sound starts before its picture
    out = tmp_path / f"dubbed{suffix}"
    proc = run_dub([source, "--keep-original", "--stems", tmp_path / "stems", "-o", out], dub_env(tmp_path))
    assert proc.returncode == 0, proc.stderr

    picture_s, shown, _ = _picture(out)
    assert shown == frames
    expected = round(frames * RATE / fps)
    dub_s, dub, dub_rate = _sound(out, 0)
    assert dub_rate == RATE
    # The dub's first sample plays with the first picture: its encoder priming is not heard before it.
    assert abs(dub_s - picture_s) < 0.5 / RATE
    with av.open(str(out)) as container:
        streams = container.streams
        starts = [float(s.start_time * s.time_base) for s in (streams.video[0], streams.audio[0])]
    assert abs(starts[1] - starts[0]) < 0.5 / RATE
    if suffix == ".mkv":
        assert dub.size == expected   # FLAC: every decoded sample is played
    else:
        assert _played_samples(out, 0) == expected
        assert picture_s == 0   # MP4/MOV start with the picture; the original's head is edited out
    # The dub track is the mix, sample for sample from the first picture on.
    mix, _ = read_wav(tmp_path / "stems" / "dubbed.mix.wav")
    assert mix.shape[1] == expected
    assert _lag(mix[0].astype(np.float64), 0, dub, round((dub_s - picture_s) * RATE), (RATE // 2, RATE)) == 0

    # The kept original sits against the picture as the source's sound did (Matroska's clock counts
    # whole milliseconds, so there it may be off by up to half a millisecond).
    original_s, original, original_rate = _sound(out, 1)
    assert original_rate == RATE
    lag = _lag(source_sound, round((source_sound_s - source_picture_s) * RATE),
               original, round((original_s - picture_s) * RATE), (RATE // 2, 2 * RATE))
    assert abs(lag) <= (RATE // 2000 if suffix == ".mkv" else 0)


def test_subtitles_and_chapters_stay_on_their_pictures_when_the_original_is_kept(sources, tmp_path):
    # The picture starts 0.5 s into the source; cues at 0.1 s (before the picture), 0.4-1.2 s (into
    # it) and 3-4 s, chapters at 0 and 2 s.
    folder = tmp_path / "in"
    folder.mkdir()
    cues = folder / "cues.srt"
    cues.write_text("1\n00:00:00,100 --> 00:00:00,300\nbefore\n\n2\n00:00:00,400 --> 00:00:01,200\nacross\n\n"
                    "3\n00:00:03,000 --> 00:00:04,000\nlater\n")
    chapters = folder / "chapters.txt"
    chapters.write_text(";FFMETADATA1\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=2000\ntitle=One\n"
                        "[CHAPTER]\nTIMEBASE=1/1000\nSTART=2000\nEND=6000\ntitle=Two\n")
    source = folder / "subtitled.mp4"
    ffmpeg("-i", str(sources["late_picture"]), "-i", str(cues), "-i", str(chapters), "-map", "0", "-map", "1",
           "-map_chapters", "2", "-c", "copy", "-c:s", "mov_text", str(source))
    out = tmp_path / "dubbed.mp4"
    proc = run_dub([source, "--keep-original", "-o", out], dub_env(tmp_path))
    assert proc.returncode == 0, proc.stderr

    picture_s, _, _ = _picture(out)
    with av.open(str(out)) as container:
        stream = container.streams.subtitles[0]
        shown = [(round(float(p.pts * stream.time_base) - picture_s, 3), round(float(p.duration * stream.time_base), 3))
                 for p in container.demux(stream) if p.size > 2]   # 2 bytes: an empty mov_text sample
        marks = {c["metadata"]["title"]: round(float(c["start"] * c["time_base"]) - picture_s, 3)
                 for c in container.chapters()}
    # Source times less the 0.5 s lead: the cue that ends before the picture is gone, the one
    # that runs into it starts with it.
    assert shown == [(0.0, 0.7), (2.5, 1.0)]
    assert marks["Two"] == 1.5
