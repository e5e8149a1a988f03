"""Deliverables an editor can trust, beside the sound: an FCPXML well formed at any frame rate,
timelines with a track per stem and the untouched original sound, stems that carry the video's
start timecode with the dub in sync, and subtitles, cover art and attachments kept (or said
where a container cannot hold them). Each test runs the real `dub` command on media generated
here and checks what a user sees.
"""
from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import pytest

from tests.deliverables_helpers import FRAMES, _copy, _first_times, _shown_pictures
from tests.dub_cli import bext_time_reference, dub_env, ffmpeg, read_wav, run_dub


@pytest.fixture(scope="module")
def media(deliverables_media) -> dict[str, Path]:
    """The clip and its trims and camera-file variants, made once a session (tests/conftest.py)."""
    return deliverables_media


# ----------------------------------------------------------------------------- 10, 11. timelines

FCP_RATES = {"1001/24000s", "25/600s", "1/25s", "1001/30000s", "100/3000s", "1/50s", "1001/60000s", "1/60s"}


@pytest.fixture(scope="module")
def rated_clips(tmp_path_factory, sample_vfr) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("rates")
    clips = {"vfr": _copy(sample_vfr[0], folder, "vfr clip.mp4")}
    for rate in ("24000/1001", "25", "30000/1001", "1199/50"):
        clip = folder / f"at {rate.replace('/', '-')}.mp4"
        ffmpeg("-f", "lavfi", "-i", f"testsrc=size=160x90:rate={rate}", "-f", "lavfi", "-i", "sine=sample_rate=48000",
               "-t", "3", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", str(clip))
        clips[rate] = clip
    return clips


@pytest.mark.parametrize("rate", ["24000/1001", "25", "30000/1001", "1199/50", "vfr"])
def test_fcpxml_is_written_and_well_formed_at_any_rate(rated_clips, rate, tmp_path):
    import xml.etree.ElementTree as ET

    src = _copy(rated_clips[rate], tmp_path / "in")
    out = tmp_path / "out" / "cut.mp4"
    proc = run_dub([src, "-o", out, "--timeline"], dub_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    root = ET.parse(out.with_suffix(".fcpxml")).getroot()
    formats = {f.get("id"): f.get("frameDuration") for f in root.iter("format")}
    sequence = root.find(".//sequence")
    assert formats[sequence.get("format")] in FCP_RATES
    assert root.find(".//project").get("name") == f"{src.stem} dub"   # named after the input, not "dub"
    conformed = [line for line in proc.stderr.splitlines() if "nearest rate Final Cut accepts" in line]
    assert len(conformed) == (0 if rate in ("24000/1001", "25", "30000/1001") else 1)
    if rate == "1199/50":
        picture = next(a for a in root.iter("asset") if a.get("hasVideo") == "1")
        assert formats[picture.get("format")] == "50/1199s"           # the video keeps its own rate
    # Each audio clip ends within one project frame of where its cue ends in real time.
    frame_s = float(Fraction(formats[sequence.get("format")].removesuffix("s")))
    plan = json.loads(out.with_suffix(".json").read_text())["plan"]
    ends = sorted({float(sum(Fraction(c.get(k, "0s").removesuffix("s") or 0) for k in ("offset", "duration")))
                   for c in root.iter("clip") if c.get("lane")})
    last_cue_end_s = plan["total_samples"] / plan["sample_rate"]
    assert abs(ends[-1] - last_cue_end_s) <= frame_s


def test_timelines_have_a_track_per_stem_and_the_untouched_original_sound(media, tmp_path):
    import xml.etree.ElementTree as ET

    import opentimelineio as otio

    src = _copy(media["base"], tmp_path / "in", "reel 7.mp4")
    env = dub_env(tmp_path)
    for keep in (False, True):
        out = tmp_path / ("kept" if keep else "plain") / "v.mp4"
        proc = run_dub([src, "-o", out, "--timeline", *(["--keep-original"] if keep else [])], env)
        assert proc.returncode == 0, proc.stderr
        timeline = otio.adapters.read_from_file(str(out.with_suffix(".otio")))
        assert timeline.name == "reel 7 dub"
        # The source's own sound, untouched, is always there, off; a kept original plays as the mix
        # holds it (lowered and ducked), a stem of its own beside music and effects.
        bed = [("reel 7 original ducked", True)] if keep else []
        assert [(t.name, t.enabled) for t in timeline.tracks] == [
            ("V1", True), ("reel 7 original", False), *bed, ("reel 7 music", True), ("reel 7 fx", True),
            ("reel 7 mix", False)]
        urls = {t.name: t.find_clips()[0].media_reference.target_url for t in timeline.tracks[1:]}
        assert urls["reel 7 original"] == str(src.resolve())
        assert urls["reel 7 music"].endswith("v.music.wav") and urls["reel 7 fx"].endswith("v.fx.wav")
        assert not keep or urls["reel 7 original ducked"].endswith("v.original.wav")
        root = ET.parse(out.with_suffix(".fcpxml")).getroot()
        off = {c.get("name") for c in root.iter("clip") if c.get("enabled") == "0"}
        assert "original" in off and "shot_000" in off and "shot_000_music" not in off
        assert "shot_000_original" not in off


def test_stems_carry_the_video_start_timecode_and_the_dub_stays_in_sync(media, tmp_path):
    """Broadcast WAV stems: the mix the mux reads and every stem start at the source's timecode
    (01:00:00:00 at 24 fps: 3,600 s of samples), and the muxed dub still starts with the picture."""
    src = tmp_path / "in" / "timecoded.mp4"
    src.parent.mkdir()
    ffmpeg("-i", str(media["base"]), "-c", "copy", "-timecode", "01:00:00:00", str(src))
    out = tmp_path / "out" / "v.mp4"
    proc = run_dub([src, "-o", out, "--stems", tmp_path / "stems", "--keep-original"], dub_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    wavs = sorted((tmp_path / "stems").glob("*.wav"))
    assert [p.name for p in wavs] == ["v.fx.wav", "v.mix.wav", "v.music.wav", "v.original.wav"]
    assert {p.name: bext_time_reference(p) for p in wavs} == {p.name: 3600 * 48_000 for p in wavs}
    assert read_wav(tmp_path / "stems" / "v.mix.wav")[0].shape == (2, FRAMES * 2000)   # 48 kHz / 24 fps
    picture_s, dub_s = _first_times(out)
    assert abs(picture_s - dub_s) <= 1024 / 48000 + 0.001   # the AAC encoder's priming aside


# ----------------------------------------------------------------------------- 8. other streams

@pytest.fixture(scope="module")
def rich_media(media, tmp_path_factory) -> dict[str, Path]:
    """The clip with a subtitle track and cover art (MP4), and with subtitles and a font (MKV)."""
    folder = tmp_path_factory.mktemp("rich")
    subs = folder / "subs.srt"
    subs.write_text("1\n00:00:00,500 --> 00:00:02,000\nHello\n\n2\n00:00:03,000 --> 00:00:04,000\nWorld\n")
    cover = folder / "cover.png"
    ffmpeg("-f", "lavfi", "-i", "color=red:size=64x64", "-frames:v", "1", str(cover))
    font = folder / "font.ttf"
    font.write_bytes(bytes(range(256)) * 8)
    mp4, mkv = folder / "with cover.mp4", folder / "with font.mkv"
    ffmpeg("-i", str(media["base"]), "-i", str(subs), "-i", str(cover), "-map", "0", "-map", "1", "-map", "2",
           "-c:v:0", "copy", "-c:a", "copy", "-c:s", "mov_text", "-c:v:1", "png", "-disposition:v:1", "attached_pic",
           str(mp4))
    ffmpeg("-i", str(media["base"]), "-i", str(subs), "-map", "0", "-map", "1", "-c", "copy", "-attach", str(font),
           "-metadata:s:t", "mimetype=font/ttf", str(mkv))
    return {"mp4": mp4, "mkv": mkv, "font": font}


def _extras(path: Path) -> dict[str, list]:
    """Subtitle texts, attachment bytes and cover-art pictures of a file."""
    found: dict[str, list] = {"subtitle": [], "attachment": [], "cover": []}
    with av.open(str(path)) as container:
        for stream in container.streams:
            if stream.type == "attachment":
                found["attachment"].append(bytes(stream.data))
            elif stream.type == "video" and stream.disposition & av.stream.Disposition.attached_pic:
                found["cover"].append(stream.codec_context.name)
        for stream in container.streams.subtitles:
            found["subtitle"] += [sub.text if hasattr(sub, "text") else str(sub)
                                  for packet in container.demux(stream) for sub in packet.decode()]
    return found


def test_subtitles_and_cover_art_are_kept(rich_media, tmp_path):
    src = _copy(rich_media["mp4"], tmp_path / "in")
    proc = run_dub([src, "-o", tmp_path / "out.mp4"], dub_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    before, after = _extras(src), _extras(tmp_path / "out.mp4")
    assert len(after["subtitle"]) == len(before["subtitle"]) == 2 and after["cover"] == ["png"]
    assert _shown_pictures(tmp_path / "out.mp4") == _shown_pictures(src)


def test_an_mkv_keeps_its_attachments_and_an_mp4_says_what_it_could_not(rich_media, tmp_path):
    src = _copy(rich_media["mkv"], tmp_path / "in")
    env = dub_env(tmp_path)
    kept = run_dub([src, "-o", tmp_path / "out.mkv"], env)
    assert kept.returncode == 0, kept.stderr
    assert _extras(tmp_path / "out.mkv")["attachment"] == [rich_media["font"].read_bytes()]
    assert len(_extras(tmp_path / "out.mkv")["subtitle"]) == 2
    as_mp4 = run_dub([src, "-o", tmp_path / "mp4" / "out.mp4"], env)
    assert as_mp4.returncode == 0, as_mp4.stderr
    said = [line for line in as_mp4.stderr.splitlines() if "font.ttf" in line]
    assert len(said) == 1 and ".mkv" in said[0]
    assert len(_extras(tmp_path / "mp4" / "out.mp4")["subtitle"]) == 2   # the subtitles themselves fit, as mov_text
