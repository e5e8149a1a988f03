"""Deliverables an editor can trust: every frame kept, all-or-nothing outputs, no overwrites, one
sentence for every user error, a full disk, symlinked inputs, captions that cannot forge subtitle
cues, nothing left behind by a killed or stopped mux, and the watch folder's drops. Each test
runs the real `dub` command on media generated here and checks what a user sees.

Timelines and the other streams of a dub (subtitles, cover art, attachments) are in
test_deliverables_tracks.py.
"""
from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import imageio_ffmpeg
import pytest

from tests.deliverables_helpers import FPS, FRAMES, _copy, _first_times, _one_sentence, _shown_pictures
from tests.dub_cli import dub_command, dub_env, ffmpeg, run_dub, snapshot


@pytest.fixture(scope="module")
def media(deliverables_media) -> dict[str, Path]:
    """The clip and its trims and camera-file variants, made once a session (tests/conftest.py)."""
    return deliverables_media


# ----------------------------------------------------------------------------- 1. every frame kept

@pytest.mark.parametrize("name", ["late_picture", "edit_list", "timecode_mkv"])
def test_every_picture_is_kept_whatever_the_stream_start(media, name, tmp_path):
    src = _copy(media[name], tmp_path / "in")
    before = _shown_pictures(src)
    proc = run_dub([src, "-o", tmp_path / f"out{src.suffix}"], dub_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / f"out{src.suffix}"
    assert _shown_pictures(out) == before
    assert before[0] == (FRAMES if name != "edit_list" else 112)
    picture_s, dub_s = _first_times(out)
    # The dub starts with the first picture, not with the file, and lasts as long as the pictures:
    # the AAC encoder's 1024-sample priming is hidden, not heard before the first picture.
    assert abs(picture_s - dub_s) <= 0.001 and picture_s <= 0.001
    with av.open(str(out)) as container:
        dub = container.streams.audio[0]
        if dub.duration is not None:   # MP4 says how long the track plays; Matroska does not
            assert dub.duration * dub.time_base == Fraction(round(before[0] * 48000 / FPS), 48000)


# ----------------------------------------------------------------------------- 2. all or nothing

_CUT_SHORT = """
import os, sys
import dubber.atomic as atomic
real = os.replace
def replace(src, dst, *a, **k):
    if str(dst).endswith("out.json"):
        os._exit(9)            # killed between publishing the video and the manifest
    return real(src, dst, *a, **k)
atomic.os = type(os)("os_with_a_kill")
atomic.os.__dict__.update(os.__dict__, replace=replace)
from dubber.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_run_killed_while_publishing_is_completed_by_the_rerun(media, tmp_path):
    src = _copy(media["base"], tmp_path / "in")
    args = [str(src), "-o", str(tmp_path / "out.mp4"), "--timeline"]
    env = dub_env(tmp_path)
    killed = subprocess.run([sys.executable, "-c", _CUT_SHORT, *args], env=env, capture_output=True, text=True,
                            timeout=120, cwd=Path(__file__).resolve().parent.parent)
    assert killed.returncode == 9, killed.stderr
    assert (tmp_path / "out.mp4").is_file() and not (tmp_path / "out.json").exists()
    rerun = run_dub(args, env)
    assert rerun.returncode == 0, rerun.stderr
    manifest = json.loads((tmp_path / "out.json").read_text())
    assert manifest["outputs"]["video"] == "out.mp4" and (tmp_path / manifest["outputs"]["otio"]).is_file()
    assert not [p for p in tmp_path.rglob(".*") if p.is_file()]   # no temporary, no commit record


_DISK_FULL_AT_THE_END = """
import errno, os, sys
import dubber.atomic as atomic
def fsync(fd):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))   # the first text file: captions, after video and WAVs
atomic.os = type(os)("os_with_a_full_disk")
atomic.os.__dict__.update(os.__dict__, fsync=fsync)
from dubber.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_failure_late_in_export_leaves_no_output(media, tmp_path):
    src = _copy(media["base"], tmp_path / "in")
    proc = subprocess.run([sys.executable, "-c", _DISK_FULL_AT_THE_END, str(src), "-o", str(tmp_path / "out" / "v.mp4"),
                           "--timeline"], env=dub_env(tmp_path), capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parent.parent)
    assert proc.returncode == 2
    assert "is full" in _one_sentence(proc.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dub-cache", "in"]   # not even the folder it made


# ----------------------------------------------------------------------------- 3. no overwrites

def test_stems_never_replace_existing_files_or_inputs(media, tmp_path):
    folder = tmp_path / "work"
    src = _copy(media["base"], folder, "music.wav.mp4")
    keep = folder / "a.music.wav"
    keep.write_bytes(b"an editor's own file")
    env = dub_env(tmp_path)
    for overwrite in ([], ["--overwrite"]):   # not a stem of an earlier dub to a.mp4: never replaced
        proc = run_dub([src, "-o", folder / "a.mp4", "--stems", folder, *overwrite], env)
        assert proc.returncode == 2 and "a.music.wav is no stem of an earlier dub to a.mp4" in _one_sentence(proc.stderr)
    assert keep.read_bytes() == b"an editor's own file"
    assert sorted(p.name for p in folder.iterdir()) == ["a.music.wav", "music.wav.mp4"]   # nothing else
    # Two videos, one stems folder: each video's stems carry its name.
    for name in ("b", "c"):
        assert run_dub([src, "-o", folder / f"{name}.mp4", "--stems", folder], env).returncode == 0
    assert {f"{v}.{s}.wav" for v in "bc" for s in ("mix", "music", "fx")} <= {p.name for p in folder.iterdir()}
    # An input that happens to carry a stem's name is never written, not even with --force.
    odd = _copy(media["base"], tmp_path / "odd", "d.music.wav")
    proc = run_dub([odd, "-o", odd.with_name("d.mp4"), "--stems", odd.parent, "--force"], env)
    assert proc.returncode == 2 and "input" in _one_sentence(proc.stderr)
    assert odd.read_bytes() == media["base"].read_bytes() and [p.name for p in odd.parent.iterdir()] == [odd.name]


def test_two_outputs_of_one_name_never_take_each_others_stems_in_a_shared_folder(media, tmp_path):
    """x/out.mp4 and y/out.mp4 both name their stems out.*.wav: the second is refused, even with
    --overwrite, and a rerun of the first (with --overwrite, or without stems) keeps them its own."""
    src = _copy(media["base"], tmp_path / "in", "a.mp4")
    shared = tmp_path / "stems"
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    env = dub_env(tmp_path)
    assert run_dub([src, "-o", tmp_path / "x" / "out.mp4", "--stems", shared], env).returncode == 0
    before = {p.name: p.read_bytes() for p in shared.iterdir()}
    for overwrite in ([], ["--overwrite"]):
        proc = run_dub([src, "-o", tmp_path / "y" / "out.mp4", "--stems", shared, "--lufs", "-20", *overwrite], env)
        assert proc.returncode == 2 and ".wav is no stem of an earlier dub to out.mp4" in proc.stderr, proc.stderr
    assert {p.name: p.read_bytes() for p in shared.iterdir()} == before and not (tmp_path / "y" / "out.mp4").exists()
    again = run_dub([src, "-o", tmp_path / "x" / "out.mp4", "--stems", shared, "--lufs", "-20", "--overwrite"], env)
    assert again.returncode == 0, again.stderr   # x's own stems: replaced
    assert {p.name for p in shared.iterdir()} == set(before) and (shared / "out.mix.wav").read_bytes() != before["out.mix.wav"]


# ----------------------------------------------------------------------------- 4. one sentence, exit 2

@pytest.fixture(scope="module")
def base_plan(media, tmp_path_factory) -> Path:
    """The plan `dub plan` writes for the base clip, made once: the plans the tests edit start
    from it (a plan names its video by content, so it fits every copy of the clip)."""
    folder = tmp_path_factory.mktemp("base-plan")
    src = _copy(media["base"], folder / "in")
    made = run_dub(["plan", src, "-o", folder / "plan.json"], dub_env(folder))
    assert made.returncode == 0, made.stderr
    return folder / "plan.json"


def _plan_variant(tmp_path: Path, base: Path, name: str, edit) -> Path:
    path = tmp_path / f"{name}.plan.json"
    edit(json.loads(base.read_text()), path)
    return path


def _write_json(data, path: Path, encoding: str = "utf-8") -> None:
    path.write_text(json.dumps(data), encoding=encoding)


PLAN_EDITS = {
    "rate": (lambda d, p: _write_json({**d, "sample_rate": 44100}, p), "48000 Hz"),
    "style": (lambda d, p: _write_json({**d, "style": "polka-disco"}, p), "polka-disco"),
    "nested": (lambda d, p: p.write_text("[" * 100_000 + "]" * 100_000), "nested too deeply"),
    "seed": (lambda d, p: _write_json({**d, "seed": 2**63}, p), "2**63-1"),
}


@pytest.mark.parametrize("case", sorted(PLAN_EDITS))
def test_a_bad_plan_is_one_sentence(media, base_plan, tmp_path, case):
    src = _copy(media["base"], tmp_path / "in")
    env = dub_env(tmp_path)
    edit, words = PLAN_EDITS[case]
    plan = _plan_variant(tmp_path, base_plan, case, edit)
    proc = run_dub(["render", src, "--plan", plan, "-o", tmp_path / "out.mp4"], env)
    assert proc.returncode == 2 and words in _one_sentence(proc.stderr)
    assert not (tmp_path / "out.mp4").exists()


def test_a_plan_saved_with_a_byte_order_mark_is_read(media, base_plan, tmp_path):
    src = _copy(media["base"], tmp_path / "in")
    env = dub_env(tmp_path)
    plan = _plan_variant(tmp_path, base_plan, "bom", lambda d, p: _write_json(d, p, encoding="utf-8-sig"))
    assert plan.read_bytes().startswith(b"\xef\xbb\xbf")
    proc = run_dub(["render", src, "--plan", plan, "-o", tmp_path / "out.mp4"], env)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("seed", ["-5", str(2**63), "1.5"])
def test_a_seed_out_of_range_is_one_sentence(media, tmp_path, seed):
    src = _copy(media["base"], tmp_path / "in")
    proc = run_dub([src, "--seed", seed, "-o", tmp_path / "out.mp4"], dub_env(tmp_path))
    assert proc.returncode == 2 and "seed" in _one_sentence(proc.stderr)


def test_the_largest_seed_makes_a_timeline(media, tmp_path):
    src = _copy(media["base"], tmp_path / "in")
    proc = run_dub([src, "--seed", str(2**63 - 1), "--timeline", "-o", tmp_path / "out.mp4"], dub_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "out.json").read_text())["seeds"]["base"] == 2**63 - 1


@contextlib.contextmanager
def _small_disk(folder: Path, size: str):
    """A tiny tmpfs at `folder` where mounting is allowed (root on Linux), else None."""
    folder.mkdir()
    mounted = sys.platform == "linux" and shutil.which("mount") is not None and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True).returncode == 0
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", str(folder)], capture_output=True)


def _fill_limit() -> None:
    """In the child: files may not grow past 200 kB (a full disk, as the writer sees it)."""
    import resource
    import signal

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))


# full at the WAVs / at the dub's working sound file / at the mux
@pytest.mark.parametrize("size, stems", [("300k", True), ("300k", False), ("1850k", False)])
def test_a_full_disk_is_one_sentence_and_leaves_nothing(media, tmp_path, size, stems):
    src = _copy(media["base"], tmp_path / "in")
    before = snapshot(tmp_path / "in")
    env = dub_env(tmp_path)
    with _small_disk(tmp_path / "small", size) as mounted:
        out = tmp_path / "small" / "out.mp4"
        args = [*dub_command(), str(src), "-o", str(out),
                *(["--stems", str(tmp_path / "small" / "stems")] if stems else [])]
        proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                              preexec_fn=None if mounted else _fill_limit)
        assert proc.returncode == 2, proc.stderr
        sentence = _one_sentence(proc.stderr)
        assert ("is full" if mounted else "space") in sentence and ".partial" not in sentence
        assert "out.wav" not in sentence   # a working file is no output the user asked for
        assert list((tmp_path / "small").iterdir()) == []
    assert snapshot(tmp_path / "in") == before


def test_a_full_tmpdir_does_not_matter(media, tmp_path):
    src = _copy(media["base"], tmp_path / "in")
    with _small_disk(tmp_path / "tmp", "4k") as mounted:
        tmpdir = tmp_path / "tmp" if mounted else tmp_path / "tmp-missing"
        proc = run_dub([src, "-o", tmp_path / "out.mp4", "--stems", tmp_path / "st"],
                       dub_env(tmp_path, TMPDIR=str(tmpdir)))
        assert proc.returncode == 0, proc.stderr
        if mounted:
            assert list(tmpdir.iterdir()) == []


# ----------------------------------------------------------------------------- 7. paths

def test_a_symlinked_input_writes_next_to_the_link(media, tmp_path):
    real = _copy(media["base"], tmp_path / "library", "clip.mp4")
    link_dir = tmp_path / "project"
    link_dir.mkdir()
    (link_dir / "clip.mp4").symlink_to(real)
    proc = run_dub([link_dir / "clip.mp4"], dub_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(link_dir / "clip.dub.mp4") and (link_dir / "clip.dub.mp4").is_file()
    assert sorted(p.name for p in real.parent.iterdir()) == ["clip.mp4"]


# ----------------------------------------------------------------------------- 9. captions

def test_a_caption_cannot_forge_subtitle_cues(media, base_plan, tmp_path):
    src = _copy(media["base"], tmp_path / "in")
    env = dub_env(tmp_path)
    forged = "a door\n\n2\n00:00:01,000 --> 00:00:05,000\nFORGED"

    def edit(data, path):
        data["cues"][0]["caption"] = forged
        _write_json(data, path)

    plan = _plan_variant(tmp_path, base_plan, "forged", edit)
    proc = run_dub(["render", src, "--plan", plan, "--timeline", "-o", tmp_path / "out.mp4"], env)
    assert proc.returncode == 0, proc.stderr
    cues = len(json.loads(plan.read_text())["cues"])
    srt = tmp_path / "out.srt"
    read_back = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(srt),
                                "-f", "srt", "-"], capture_output=True, text=True, check=True).stdout
    assert read_back.count(" --> ") <= cues and "FORGED" in read_back
    assert read_back.split("\n\n")[0].count("-->") == 1   # the forged line stays inside the first caption


# ----------------------------------------------------------------------------- 5. nothing left behind

_SLOW_FFMPEG = """import os, sys, time
if any(arg.endswith(".partial.mp4") for arg in sys.argv[1:]):   # the mux: hold it
    with open(os.environ["MUX_STARTED"], "w") as note:
        note.write(str(os.getpid()))
    time.sleep(120)
real = os.environ["REAL_FFMPEG"]
os.execv(real, [real, *sys.argv[1:]])
"""


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")   # a zombie no one has reaped yet is dead too


def _start_held_mux(tmp_path: Path, src: Path) -> tuple[subprocess.Popen, int, dict]:
    wrapper = tmp_path / "slow-ffmpeg"
    wrapper.write_text(f"#!{sys.executable}\n{_SLOW_FFMPEG}")
    wrapper.chmod(0o755)
    started = tmp_path / "mux-started"
    env = dub_env(tmp_path, DUB_FFMPEG=str(wrapper), REAL_FFMPEG=imageio_ffmpeg.get_ffmpeg_exe(),
                  MUX_STARTED=str(started))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = subprocess.Popen([*dub_command(), str(src),
                             "-o", str(out_dir / "v.mp4"), "--stems", str(out_dir / "st")],
                            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for _ in range(1200):
        if started.exists() and started.read_text():
            return proc, int(started.read_text()), env
        if proc.poll() is not None:
            pytest.fail(f"dub ended before its mux: {proc.communicate()}")
        time.sleep(0.1)
    proc.kill()
    pytest.fail("the mux never started")


def _wait_gone(pid: int) -> bool:
    for _ in range(100):
        if _gone(pid):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.skipif(sys.platform != "linux", reason="a child's death with its parent is a Linux feature (prctl)")
def test_kill_9_during_the_mux_takes_ffmpeg_along_and_the_rerun_sweeps_up(media, tmp_path):
    src = _copy(media["base"], tmp_path / "in")
    proc, ffmpeg_pid, env = _start_held_mux(tmp_path, src)
    proc.kill()
    proc.wait(timeout=30)
    assert _wait_gone(ffmpeg_pid)
    leftovers = [p for p in (tmp_path / "out").rglob(".*") if p.is_file()]
    assert leftovers   # a killed process cannot clean up after itself ...
    env.pop("DUB_FFMPEG")
    rerun = run_dub([src, "-o", tmp_path / "out" / "v.mp4", "--stems", tmp_path / "out" / "st"], env)
    assert rerun.returncode == 0, rerun.stderr
    assert not [p for p in (tmp_path / "out").rglob(".*") if p.is_file()]   # ... the next run does


def test_sigterm_during_the_mux_ends_cleanly(media, tmp_path):
    import signal

    src = _copy(media["base"], tmp_path / "in")
    proc, ffmpeg_pid, _ = _start_held_mux(tmp_path, src)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 143 and "Traceback" not in stderr
    assert "interrupted" in stderr.strip().splitlines()[-1]
    assert _wait_gone(ffmpeg_pid)
    assert list((tmp_path / "out").iterdir()) == []   # no temporary, not even the stems folder


# ----------------------------------------------------------------------------- 6. watch folder

def test_watch_takes_symlinks_and_ts_files_and_says_what_it_leaves(media, tmp_path):
    root = tmp_path / "watch"
    (root / "inbox").mkdir(parents=True)
    library = _copy(media["base"], tmp_path / "library", "linked.mp4")
    (root / "inbox" / "linked.mp4").symlink_to(library)
    ffmpeg("-i", str(media["base"]), "-c", "copy", "-f", "mpegts", str(root / "inbox" / "broadcast.ts"))
    (root / "inbox" / "notes.txt").write_text("not a video")
    proc = run_dub(["watch", root, "--once", "--stable-s", "0.2", "--poll-s", "0.1"], dub_env(tmp_path), timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (root / "output").iterdir()) == ["broadcast", "linked"]
    assert (root / "output" / "broadcast" / "broadcast.dub.mp4").is_file()
    assert (root / "output" / "linked" / "linked.dub.mp4").is_file() and library.is_file()
    said = [line for line in proc.stderr.splitlines() if "notes.txt" in line]
    assert len(said) == 1 and "video extension" in said[0]


def test_watch_log_keeps_one_line_per_event_whatever_the_name(media, tmp_path):
    root = tmp_path / "watch"
    (root / "inbox").mkdir(parents=True)
    _copy(media["base"], root / "inbox", "two\nlines.mp4")
    proc = run_dub(["watch", root, "--once", "--stable-s", "0.2", "--poll-s", "0.1"], dub_env(tmp_path), timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert all(line.startswith("dub: ") for line in proc.stderr.splitlines()), proc.stderr
    assert any("two\\nlines.mp4" in line for line in proc.stderr.splitlines())


def test_watch_waits_for_a_slow_copy_that_pauses(media, tmp_path):
    root = tmp_path / "watch"
    (root / "inbox").mkdir(parents=True)
    data = media["base"].read_bytes()
    repo = Path(__file__).resolve().parent.parent
    watcher = subprocess.Popen([sys.executable, "-m", "dubber.watch", str(root), "--stable-s", "0.3", "--poll-s", "0.1"],
                               cwd=repo, env=dub_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(600):   # the watcher is up (its lock taken) before the copy starts
            if (root / "logs" / "watch.lock").exists() or watcher.poll() is not None:
                break
            time.sleep(0.1)
        with open(root / "inbox" / "slow.mp4", "wb") as copy:   # a copy that stalls for 2 s half-way
            copy.write(data[: len(data) // 2])
            copy.flush()
            time.sleep(2.0)
            copy.write(data[len(data) // 2:])
        output = root / "output" / "slow" / "slow.dub.mp4"
        for _ in range(1200):
            if output.is_file() and (root / "done" / "slow.mp4").is_file():
                break
            time.sleep(0.1)
        assert output.is_file(), watcher.stderr.read() if watcher.poll() is not None else "no output yet"
        assert list((root / "failed").iterdir()) == []
        assert (root / "done" / "slow.mp4").read_bytes() == data
        events = [json.loads(line)["event"] for line in (root / "logs" / "journal.jsonl").read_text().splitlines()]
        assert "returned" in events   # the half copy was taken, failed, and came back when it grew
    finally:
        watcher.terminate()
        watcher.communicate(timeout=30)
