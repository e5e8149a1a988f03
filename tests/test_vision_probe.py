"""vision.probe: exact rate, frame count and timing facts; one clear sentence for each bad input."""
from __future__ import annotations

import random
import re
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import cv2
import imageio_ffmpeg
import numpy as np
import pytest

import vision
from vision.errors import NotAVideo, VideoError, VideoNotFound, VideoUnreadable


def _ffmpeg(*args: str) -> None:
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args]
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)


def _assert_one_sentence(message: str, path: Path) -> None:
    assert "\n" not in message and message.endswith(".")
    assert re.search(r"[.!?]\s+[A-Z]", message) is None, message  # no second sentence
    assert path.name in message


def test_24p_rate_and_frame_count_are_exact(sample_24p):
    path, truth = sample_24p
    info = vision.probe(path)
    assert info.fps == Fraction(24000, 1001) and isinstance(info.fps, Fraction)
    assert info.frame_count == truth["frame_count"]
    assert (info.width, info.height, info.rotation) == (320, 180, 0)
    assert (info.video_codec, info.pix_fmt) == ("h264", "yuv420p")
    assert info.duration_s == pytest.approx(truth["frame_count"] * 1001 / 24000)
    assert not info.is_vfr and info.frame_pts is None
    assert info.has_audio and info.audio_codec == "aac" and info.audio_rate == 48000 and info.audio_channels == 2
    assert info.size_bytes == path.stat().st_size
    assert info.frame_time(info.frame_count) == Fraction(truth["frame_count"] * 1001, 24000)


def test_30p_silent(sample_30p_silent):
    path, truth = sample_30p_silent
    info = vision.probe(path)
    assert info.fps == 30 and info.frame_count == truth["frame_count"]
    assert not info.has_audio and info.audio_codec is None


def test_vfr_file_gives_every_frame_time(sample_vfr):
    path, truth = sample_vfr
    info = vision.probe(path)
    assert info.is_vfr and info.frame_count == truth["frame_count"]
    truth_tb = Fraction(truth["time_base"])
    times = [info.frame_time(i) for i in range(info.frame_count)]
    assert times == [p * truth_tb for p in truth["frame_pts"]]
    assert times[0] == 0
    assert info.fps == Fraction(truth["fps"])  # the average rate: frame_count / duration
    assert info.duration_s == pytest.approx(truth["duration_s"])


def test_matroska_without_stored_frame_count_is_counted_exactly(sample_24p, tmp_path):
    path, truth = sample_24p
    mkv = tmp_path / "copy.mkv"
    _ffmpeg("-i", str(path), "-c", "copy", str(mkv))
    info = vision.probe(mkv)
    # Matroska stores no frame count and millisecond timestamps; the rate is still exact.
    assert info.frame_count == truth["frame_count"]
    assert info.fps == Fraction(24000, 1001) and not info.is_vfr


def test_rotation_from_display_matrix(sample_30p_silent, tmp_path):
    path, _ = sample_30p_silent
    rotated = tmp_path / "rotated.mp4"
    _ffmpeg("-display_rotation", "90", "-i", str(path), "-c", "copy", str(rotated))
    info = vision.probe(rotated)
    assert info.rotation in (90, 270) and (info.width, info.height) == (320, 180)


def _truncated(src: Path, dst: Path) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: len(data) // 2])
    return dst


def _moov_at_end_truncated(src: Path, dst: Path) -> Path:
    full = dst.with_name("moov_last.mp4")
    _ffmpeg("-i", str(src), "-c", "copy", "-movflags", "0", str(full))
    return _truncated(full, dst)


def _truncated_matroska(src: Path, dst: Path) -> Path:
    full = dst.with_name("full.mkv")
    _ffmpeg("-i", str(src), "-c", "copy", str(full))
    return _truncated(full, dst.with_suffix(".mkv"))


def _truncated_avi(src: Path, dst: Path) -> Path:
    full = dst.with_name("full.avi")
    _ffmpeg("-i", str(src), "-c:v", "mpeg4", "-c:a", "libmp3lame", str(full))
    return _truncated(full, dst.with_suffix(".avi"))


def _garbage_payload(src: Path, dst: Path) -> Path:
    data = src.read_bytes()
    start = data.index(b"mdat") + 4
    rng = random.Random(0)
    dst.write_bytes(data[:start] + bytes(rng.getrandbits(8) for _ in range(len(data) - start)))
    return dst


def _audio_only(src: Path, dst: Path) -> Path:
    dst = dst.with_suffix(".m4a")
    _ffmpeg("-i", str(src), "-vn", "-c", "copy", str(dst))
    return dst


def _png(src: Path, dst: Path) -> Path:
    dst = dst.with_suffix(".png")
    cv2.imwrite(str(dst), np.full((90, 160, 3), 200, np.uint8))
    return dst


def _text(src: Path, dst: Path) -> Path:
    dst.write_text("this is not a video\n" * 20)
    return dst


def _empty(src: Path, dst: Path) -> Path:
    dst.write_bytes(b"")
    return dst


def _missing(src: Path, dst: Path) -> Path:
    return dst.with_name("no_such_video.mp4")


def _folder(src: Path, dst: Path) -> Path:
    dst = dst.with_suffix("")
    dst.mkdir()
    return dst


@pytest.mark.parametrize("make, error", [
    (_missing, VideoNotFound), (_folder, NotAVideo), (_empty, VideoUnreadable), (_text, NotAVideo),
    (_png, NotAVideo), (_audio_only, NotAVideo), (_truncated, VideoUnreadable),
    (_moov_at_end_truncated, VideoUnreadable), (_truncated_matroska, VideoUnreadable),
    (_truncated_avi, VideoUnreadable), (_garbage_payload, VideoUnreadable),
], ids=lambda v: getattr(v, "__name__", "").strip("_"))
def test_bad_input_raises_one_plain_sentence(make, error, sample_24p, tmp_path):
    bad = make(sample_24p[0], tmp_path / "bad.mp4")
    with pytest.raises(error) as caught:
        vision.probe(bad)
    assert isinstance(caught.value, VideoError)
    _assert_one_sentence(str(caught.value), bad)


def test_analyze_refuses_bad_input_before_decoding(tmp_path):
    text = _text(Path(), tmp_path / "notes.mp4")
    with pytest.raises(NotAVideo):
        vision.analyze(text, captioner=None)


def _tiny(path: Path, *args: str, rate: str = "24") -> Path:
    _ffmpeg("-f", "lavfi", "-i", f"testsrc=size=64x36:rate={rate}", "-t", "0.5", *args, str(path))
    return path


def test_codec_names_are_the_codecs_not_the_decoders(tmp_path):
    # ffmpeg decodes MP3 with "mp3float" and AV1 with "libdav1d"; users and muxers speak of "mp3", "av1".
    sine = ("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100", "-shortest")
    av1 = _tiny(tmp_path / "av1.mkv", *sine, "-c:v", "libaom-av1", "-cpu-used", "8", "-c:a", "libmp3lame")
    h264 = _tiny(tmp_path / "h264.mp4", *sine, "-c:v", "libx264", "-c:a", "libmp3lame")
    assert (vision.probe(av1).video_codec, vision.probe(av1).audio_codec) == ("av1", "mp3")
    assert (vision.probe(h264).video_codec, vision.probe(h264).audio_codec) == ("h264", "mp3")


@pytest.mark.parametrize("suffix", [".mov", ".mp4", ".mkv"])
def test_start_timecode_is_read_from_the_file(suffix, tmp_path):
    video = _tiny(tmp_path / f"tc{suffix}", "-c:v", "libx264", "-timecode", "01:00:00:00")
    info = vision.probe(video)
    assert info.start_timecode == "01:00:00:00"
    assert type(info).from_dict(info.to_dict()).start_timecode == "01:00:00:00"


def test_drop_frame_timecode_keeps_its_semicolon(tmp_path):
    video = _tiny(tmp_path / "df.mov", "-c:v", "libx264", "-timecode", "00:59:59;28", rate="30000/1001")
    info = vision.probe(video)
    assert info.fps == Fraction(30000, 1001) and info.start_timecode == "00:59:59;28"


def test_no_timecode_when_the_file_has_none(sample_24p):
    assert vision.probe(sample_24p[0]).start_timecode is None


# ------------------------------------------------------------------ AVI null frames

NTSC_FILM = Fraction(24000, 1001)
DROPPED_FRAME = 10


@pytest.fixture(scope="module")
def avi_with_null_frame(tmp_path_factory) -> tuple[Path, int, int]:
    """An MPEG-4 AVI with one null frame, as Xvid, DivX and ffmpeg write them: a zero-size index
    entry that repeats the picture before. The muxer writes one where a timestamp is skipped
    (here frame DROPPED_FRAME is left out).

    Returns:
        (path, frames its header counts, frames a decoder yields).
    """
    path = tmp_path_factory.mktemp("avi") / "null_frame.avi"
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x90:rate=24000/1001", "-t", "3",
            "-vf", f"select=not(eq(n\\,{DROPPED_FRAME}))", "-fps_mode", "passthrough", "-c:v", "mpeg4", str(path))
    with av.open(str(path)) as container:
        header_frames = container.streams.video[0].frames
        decoded_frames = sum(1 for _ in container.decode(video=0))
    assert header_frames == decoded_frames + 1, (header_frames, decoded_frames)
    return path, header_frames, decoded_frames


def test_avi_null_frame_repeats_the_picture_before(avi_with_null_frame):
    path, header_frames, decoded_frames = avi_with_null_frame
    info = vision.probe(path)
    # Every decoded picture is a frame; the null frame keeps the picture before it on screen one
    # frame period longer, so the pictures after it keep their times and the video lasts as long
    # as its header says.
    assert info.frame_count == decoded_frames
    assert info.frame_time(DROPPED_FRAME - 1) == (DROPPED_FRAME - 1) / NTSC_FILM
    assert info.frame_time(DROPPED_FRAME) == (DROPPED_FRAME + 1) / NTSC_FILM
    assert info.frame_time(info.frame_count) == header_frames / NTSC_FILM
    assert info.duration_s == pytest.approx(float(header_frames / NTSC_FILM))


def test_avi_with_a_null_frame_is_dubbed_to_its_full_length(avi_with_null_frame, tmp_path):
    from dubber import api

    path, header_frames, decoded_frames = avi_with_null_frame
    result = api.dub(path, tmp_path / "null_frame.dub.mp4", api.DubOptions(cache_dir=str(tmp_path / "cache")))
    assert result.total_samples == round(header_frames * result.sample_rate / NTSC_FILM)
    with av.open(str(result.output)) as container:
        video = container.streams.video[0]
        assert sum(1 for packet in container.demux(video) if packet.size) == decoded_frames   # copied whole
        assert video.duration * video.time_base == header_frames / NTSC_FILM


def test_null_frames_keep_the_fcpxml_project_at_the_video_rate_with_nothing_conformed(avi_with_null_frame):
    from dataclasses import replace

    from dubber.export.fcpxml import fcpxml_rate

    info = vision.probe(avi_with_null_frame[0])
    assert info.is_vfr   # one picture is held over a null frame...
    assert fcpxml_rate(info) == (NTSC_FILM, None)   # ...but every frame starts on the 23.976 grid
    # a clock whose frames fall between the grid's frames is still conformed, and said so
    phone = replace(info, time_base=Fraction(1, 1000), frame_pts=(0, 41, 83, 130, 170), frame_count=5,
                    fps=Fraction(5000, 211))
    rate, note = fcpxml_rate(phone)
    assert rate == NTSC_FILM and "variable frame rate" in note
