"""The `dub` command as a post house uses it: ProRes .mov and FLAC .mkv inputs, exact stems and
timelines read back with soundfile and OpenTimelineIO, `dub doctor`, and the terminal display."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import pytest

from tests.dub_cli import dub_command, dub_env, ffmpeg, json_events, run_dub, video_packets


def _expected_samples(truth: dict, frames: int | None = None) -> int:
    return round((truth["frame_count"] if frames is None else frames) * 48000 / Fraction(truth["fps"]))


def _streams(path: Path) -> list[tuple[str, str, bool]]:
    """(kind, codec, is default) of every audio and video stream, in file order."""
    import av

    with av.open(str(path)) as container:
        return [(s.type, s.codec_context.name, bool(s.disposition & av.stream.Disposition.default))
                for s in container.streams if s.type in ("audio", "video")]


@pytest.fixture(scope="module")
def prores_master(sample_24p, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("prores") / "master.mov"
    ffmpeg("-i", str(sample_24p[0]), "-c:v", "prores_ks", "-profile:v", "0", "-c:a", "pcm_s24le", str(out))
    return out


@pytest.fixture()
def prores_mov(prores_master, tmp_path) -> Path:
    """The ProRes master encoded once for the module, as a test's own file in a folder of its own."""
    folder = tmp_path / "reels"
    folder.mkdir()
    return Path(shutil.copyfile(prores_master, folder / "reel 1 é.mov"))


def test_prores_mov_keeps_its_container_picture_and_pcm_original(prores_mov, sample_24p, tmp_path):
    truth = sample_24p[1]
    proc = run_dub([prores_mov, "--keep-original", "--stems", tmp_path / "stems"], dub_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    out = prores_mov.with_name("reel 1 é.dub.mov")   # a .mov stays a .mov: ProRes does not fit in MP4
    assert proc.stdout.strip() == str(out)
    assert video_packets(out) == video_packets(prores_mov)
    # New track first and default, 24-bit PCM as a master's sound is; the production sound second,
    # copied as it was.
    assert _streams(out) == [("video", "prores", True), ("audio", "pcm_s24le", True), ("audio", "pcm_s24le", False)]
    import soundfile

    assert soundfile.info(str(tmp_path / "stems" / "reel 1 é.dub.mix.wav")).frames == _expected_samples(truth)


def test_prores_into_mp4_is_refused_before_any_work(prores_mov, tmp_path):
    env = dub_env(tmp_path)
    before = sorted(p.name for p in prores_mov.parent.iterdir())
    proc = run_dub([prores_mov, "-o", prores_mov.with_name("reel.mp4")], env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and ".mov" in lines[0] and lines[0].endswith("with -o.")
    assert sorted(p.name for p in prores_mov.parent.iterdir()) == before
    assert not (tmp_path / "dub-cache").exists() or not any((tmp_path / "dub-cache").rglob("*.json"))


def test_mkv_with_flac_keeps_mkv_and_the_timeline_lands_on_the_shots(sample_24p, tmp_path):
    import opentimelineio as otio
    import soundfile

    video, truth = sample_24p
    clip = tmp_path / "cut" / "scene.mkv"
    clip.parent.mkdir()
    ffmpeg("-i", str(video), "-c:v", "copy", "-c:a", "flac", str(clip))
    proc = run_dub([clip, "--timeline"], dub_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    # The backend notice is one sentence, and so is the note that the source's own track is left out.
    notice, dropped = proc.stderr.splitlines()
    assert notice.startswith("dub: score backend:") and notice.endswith(".")
    assert "not in the output" in dropped and "--keep-original" in dropped and dropped.endswith(".")
    out = clip.with_name("scene.dub.mkv")
    assert proc.stdout.strip() == str(out) and _streams(out)[:2] == [("video", "h264", True), ("audio", "flac", True)]
    stems = clip.with_name("scene.dub_stems")
    for name in ("mix", "music", "fx"):
        assert soundfile.info(str(stems / f"scene.dub.{name}.wav")).frames == _expected_samples(truth)
    starts = [s["start_frame"] for s in truth["shots"]]
    timeline = otio.adapters.read_from_file(str(clip.with_name("scene.dub.otio")))
    # The source's own sound stays available to the editor beside the dub (off: not kept); one
    # track per stem to rebalance, and their mix, off; all named after the input.
    assert [(t.name, t.enabled) for t in timeline.tracks] == [
        ("V1", True), ("scene original", False), ("scene music", True), ("scene fx", True), ("scene mix", False)]
    original = timeline.tracks[1].find_clips()[0].media_reference.target_url
    assert original == str(clip.resolve())
    dub_track = next(t for t in timeline.tracks if t.name == "scene mix")
    clips = list(dub_track.find_clips())
    assert [dub_track.range_of_child(c).start_time.to_frames() for c in clips] == starts
    cues = json.loads(clip.with_name("scene.dub.json").read_text())["plan"]["cues"]
    assert [c["start_sample"] for c in cues] == [_expected_samples(truth, f) for f in starts]


def test_doctor_says_each_thing_once(tmp_path):
    proc = run_dub(["doctor"], dub_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    lines = {line[:20].strip(): line[20:].strip() for line in proc.stdout.splitlines()}
    assert lines["AudioStory weights"].startswith("not found in the Hugging Face cache")
    assert sum(line.startswith("AudioStory weights") for line in proc.stdout.splitlines()) == 1
    # Why auto picks score, once: no GPU comes first (the weights would not change the choice).
    assert ("no CUDA GPU" in lines["auto backend"]) != ("AudioStory weights" in lines["auto backend"])
    assert re.fullmatch(r"score: .+", lines["auto backend"]) and "((" not in proc.stdout


def test_incomplete_model_folder_is_named_in_the_error(sample_24p, tmp_path):
    folder = tmp_path / "my checkpoint"
    folder.mkdir()
    proc = run_dub([sample_24p[0], "-o", tmp_path / "o.mp4", "--backend", "audiostory", "--model", folder],
                   dub_env(tmp_path))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(folder) in lines[0] and "not on this machine" not in lines[0]
    assert not (tmp_path / "o.mp4").exists()


def test_terminal_display_ends_cleanly(sample_24p, tmp_path):
    """Under a terminal: one bar per stage, sub-stages indented, the result named once, cursor restored."""
    import pty

    out = tmp_path / "tty" / "film.dub.mp4"
    main, child = pty.openpty()
    env = dub_env(tmp_path, COLUMNS="100", TERM="xterm-256color")
    proc = subprocess.Popen([*dub_command(), str(sample_24p[0]), "-o", str(out)],
                            stdin=subprocess.DEVNULL, stdout=child, stderr=child, env=env)
    os.close(child)
    chunks = []
    while True:
        try:
            data = os.read(main, 65536)
        except OSError:   # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(main)
    assert proc.wait(timeout=120) == 0
    screen = b"".join(chunks).decode("utf-8", "replace")
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen)
    assert "Traceback" not in plain and plain.count(str(out)) == 1
    assert "  decode" in plain and "analyze/decode" not in plain
    assert re.search(r"export\s+\S+\s+1/1", plain)
    assert screen.rfind("\x1b[?25h") > screen.rfind("\x1b[?25l")   # the cursor comes back
    assert out.is_file()


def test_json_progress_lines_parse_and_end_with_the_result(sample_24p, tmp_path):
    shutil.copyfile(sample_24p[0], tmp_path / "a b.mp4")
    (tmp_path / "x").mkdir()
    proc = run_dub([tmp_path / "a b.mp4", "--json-progress", "--lufs", "ebu", "-o", tmp_path / "x" / "y" / "o.mp4"],
                   dub_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    events = json_events(proc.stdout)
    assert events[-1]["event"] == "done" and events[-1]["integrated_lufs"] == pytest.approx(-23, abs=0.5)
    progress = [e for e in events if e["event"] == "progress"]
    assert all(e["done"] <= e["total"] for e in progress)
    # Stages whose size is known before they start say it from their first report (a bar that
    # starts at 0/1 and jumps to 0/40 reads as broken).
    for stage in ("render", "mux"):
        totals = [e["total"] for e in progress if e["stage"] == stage]
        assert totals and len(set(totals)) == 1 and totals[0] > 1, (stage, totals)
    # Each bar moves forward while its stage works (the score engine's whole-timeline render
    # included), and only a finished stage shows a full bar: its last report, never before.
    for stage in ("render", "mix"):
        mine = [(e["done"], e["total"]) for e in progress if e["stage"] == stage]
        assert len({t for _, t in mine}) == 1, (stage, mine)
        assert [d for d, _ in mine] == sorted(d for d, _ in mine), (stage, mine)
        assert any(0 < d < t for d, t in mine), (stage, mine)
        assert [i for i, (d, t) in enumerate(mine) if d == t] == [len(mine) - 1], (stage, mine)
    # what is left of a stage: unknown before it moves, none once it is done
    assert all(e["remaining_s"] is None for e in progress if e["done"] == 0)
    assert all(e["remaining_s"] == 0 for e in progress if e["done"] == e["total"])


def test_what_could_not_be_done_is_said(sample_vfr, tmp_path):
    """A variable-frame-rate clip gets an FCPXML conformed to the nearest Final Cut rate, and a silent
    clip has no original sound to keep: the user is told both, not left guessing."""
    out = tmp_path / "vfr" / "clip.mp4"
    proc = run_dub([sample_vfr[0], "-o", out, "--timeline", "--keep-original"], dub_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    said = [line for line in proc.stderr.splitlines() if "FCPXML" in line]
    assert len(said) == 1 and "nearest rate Final Cut accepts" in said[0] and said[0].endswith(".")
    assert out.with_suffix(".otio").is_file() and out.with_suffix(".fcpxml").is_file()
    assert len([line for line in proc.stderr.splitlines() if "--keep-original" in line]) == 1
    assert _streams(out) == [("video", "h264", True), ("audio", "aac", True)]


def test_a_name_whose_working_files_would_be_too_long_is_refused_before_any_work(sample_24p, tmp_path):
    """A 228-byte output name is legal, and so are its video's and its .fcpxml's temporary names;
    the hidden sound it is muxed from and the commit record beside its manifest are longer."""
    folder = tmp_path / "long"
    folder.mkdir()
    src = Path(shutil.copyfile(sample_24p[0], folder / ("z" * 220 + ".mp4")))
    proc = run_dub([src, "--json-progress"], dub_env(tmp_path))
    assert proc.returncode == 2
    assert "too long for the file system" in proc.stderr
    assert not [e for e in json_events(proc.stdout) if e["event"] == "progress"]   # refused before any work
    assert [p.name for p in folder.iterdir()] == [src.name]


def test_a_name_too_long_for_the_file_system_is_refused_up_front(sample_24p, tmp_path):
    """240 bytes is a legal input name, but its outputs and their temporary names would not be."""
    folder = tmp_path / "long"
    folder.mkdir()
    src = Path(shutil.copyfile(sample_24p[0], folder / ("é" * 118 + ".mp4")))
    proc = run_dub([src, "--timeline"], dub_env(tmp_path))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "too long" in lines[0] and lines[0].endswith("with -o.")
    assert [p.name for p in folder.iterdir()] == [src.name]
