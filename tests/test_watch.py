"""The watch folder under load: 50 drops (slow copies, partial names, an aborted copy, bad files,
duplicates, two through the real pipeline), a kill -9 mid-job with a restart, --once, settings.

Most drops use a fast processor (copies the input as its "dub") so the folder logic is what is
timed; validation always uses the real probe, and files named real_* go through the real
dubbing pipeline (score backend).

Without a processor the pipeline runs on the batch machinery: `--jobs 2` worker processes against
single `dub` runs, a worker killed mid-dub, SIGTERM mid-dub, and a real Ray cluster on loopback
(marked `cluster`; skip with -m "not cluster").
"""
from __future__ import annotations

import json
import os
import random
import signal
import struct
import subprocess
import sys
import threading
import time
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import pytest

from tests.dub_cli import reaped
from dubber.errors import BackendUnavailable, OutputError
from dubber.watch.watcher import (WatchLocked, WatchOptions, WatchSettings, WatchSettingsError, dub_processor, is_candidate,
                          load_settings, run_watch)

REPO = Path(__file__).resolve().parent.parent
MARKERS_ENV = "DUB_WATCH_TEST_MARKERS"


# ----------------------------------------------------------------------------- processors (also used by subprocesses)

def copy_processor(job) -> None:
    """Stands in for a dub: the 'dubbed video' is the input's bytes."""
    (job.staging / job.output_name).write_bytes(job.source.read_bytes())


def slow_processor(job) -> None:
    """Writes half a result, tells the test it started, then takes far longer than the test waits."""
    (job.staging / job.output_name).write_bytes(b"half a video")
    markers = Path(os.environ[MARKERS_ENV])
    (markers / f"{job.original_name}.started").write_text(str(os.getpid()))
    time.sleep(120)


# ----------------------------------------------------------------------------- media

@pytest.fixture(scope="module")
def base_video(tmp_path_factory) -> bytes:
    from samples.synth import SynthSpec, synthesize

    path = tmp_path_factory.mktemp("watch_media") / "base.mp4"
    synthesize(path, SynthSpec(fps=Fraction(24), shot_frames=(40,), audio=False, seed=5))
    return path.read_bytes()


def variant(base: bytes, i: int) -> bytes:
    """A distinct, still valid MP4: a trailing 'free' box with a unique payload."""
    return base + struct.pack(">I4s", 24, b"free") + i.to_bytes(16, "big")


def publish(root: Path, name: str, data: bytes) -> None:
    """Atomic drop: written beside the inbox, then renamed in."""
    temp = root / f".incoming-{name}"
    temp.write_bytes(data)
    os.replace(temp, root / "inbox" / name)


def slow_copy(path: Path, data: bytes, chunks: int = 8, pause_s: float = 0.1, stop_after: int | None = None) -> None:
    size = -(-len(data) // chunks)
    with open(path, "wb") as handle:
        for k in range(chunks):
            if stop_after is not None and k == stop_after:
                return  # the copy is aborted: the file stays truncated forever
            handle.write(data[k * size:(k + 1) * size])
            handle.flush()
            time.sleep(pause_s)


def journal(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / "logs" / "journal.jsonl").read_text().splitlines()]


def wait_for(condition, timeout_s: float, what: str, poll_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(poll_s)


# ----------------------------------------------------------------------------- unit checks

@pytest.mark.parametrize("name, taken", [
    ("clip.mp4", True), ("Clip.MOV", True), ("a.mkv", True), ("clip.mp4.part", False), ("clip.crdownload", False),
    (".clip.mp4", False), ("~$clip.mp4", False), ("._clip.mp4", False), ("clip.tmp", False),
    ("clip.partial", False), ("clip.download", False), ("notes.txt", False), ("clip", False)])
def test_which_names_are_taken(name, taken):
    assert is_candidate(name) is taken


@pytest.mark.parametrize("text, message", [
    ("style = ", "is not valid TOML"),
    ("colour = 'red'", "unknown setting(s) colour; use only style, backend, lufs, keep_original"),
    ("keep_original = 'yes'", "keep_original = 'yes' has the wrong type"),
    ("style = 'polka'", "Unknown style 'polka'; choose one of:"),
    ("lufs = -80", "outside -40..-5"),
    ("backend = 'tape'", "Unknown backend 'tape'"),
])
def test_bad_settings_give_one_sentence(tmp_path, text, message):
    (tmp_path / "dub-watch.toml").write_text(text)
    with pytest.raises(WatchSettingsError) as info:
        load_settings(tmp_path)
    sentence = str(info.value)
    assert message in sentence and "\n" not in sentence and sentence.endswith(".")
    with pytest.raises(WatchSettingsError):  # refused before any file is touched
        run_watch(tmp_path, WatchOptions(once=True, processor=copy_processor))


def test_the_audiostory_backend_without_its_weights_is_refused_at_startup(tmp_path, base_video, monkeypatch, capsys):
    from dubber.cli.main import main

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))   # a machine without the weights
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    root = tmp_path / "watch"
    (root / "inbox").mkdir(parents=True)
    (root / "dub-watch.toml").write_text('backend = "audiostory"\n')
    publish(root, "clip.mp4", variant(base_video, 61))
    assert main(["watch", str(root), "--once", "--stable-s", "0.1", "--poll-s", "0.05"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dub: dub-watch.toml: ") and "\n" not in err, err
    assert [p.name for p in (root / "inbox").iterdir()] == ["clip.mp4"] and not any((root / "failed").iterdir())


def test_settings_reach_the_processor(tmp_path, base_video):
    (tmp_path / "dub-watch.toml").write_text('style = "nature"\nbackend = "score"\nlufs = "ebu"\nkeep_original = true\n')
    seen = []
    (tmp_path / "inbox").mkdir()
    publish(tmp_path, "a.mp4", variant(base_video, 1))
    run_watch(tmp_path, WatchOptions(stable_s=0.2, poll_s=0.05, once=True,
                                     processor=lambda job: (seen.append(job.settings), copy_processor(job))))
    assert seen == [WatchSettings(style="nature", backend="score", lufs="ebu", keep_original=True)]


def test_a_name_delivered_again_has_its_files_named_after_its_own_output_folder(tmp_path, base_video):
    """Two films delivered under one name, the second while the first is still being dubbed: each
    output folder's files carry that folder's name, so collected or imported together, no two
    files share a name."""
    names: list[str] = []

    def both_in_flight(job) -> None:
        names.append(job.output_name)
        wait_for(lambda: len(names) == 2, 30, "the second delivery")
        copy_processor(job)

    stop = threading.Event()
    options = WatchOptions(stable_s=0.1, poll_s=0.05, workers=2, processor=both_in_flight, use_events=False)
    watcher = threading.Thread(target=run_watch, args=(tmp_path, options, stop))
    (tmp_path / "inbox").mkdir()
    watcher.start()
    try:
        publish(tmp_path, "ep.mp4", variant(base_video, 1))
        wait_for(lambda: names, 30, "the first delivery")
        publish(tmp_path, "ep.mp4", variant(base_video, 2))
        wait_for(lambda: len(list((tmp_path / "done").glob("*.mp4"))) == 2, 30, "both dubs")
    finally:
        stop.set()
        watcher.join(30)
    output = tmp_path / "output"
    files = sorted(p.relative_to(output).as_posix() for p in output.rglob("*.mp4"))
    assert files == ["ep-2/ep-2.dub.mp4", "ep/ep.dub.mp4"], files
    assert (output / "ep" / "ep.dub.mp4").read_bytes() == variant(base_video, 1)   # first come, first named


# ----------------------------------------------------------------------------- 50 drops

class Recorder:
    """Dispatching processor: real_* -> the real pipeline; boom_* -> a user error; else copy."""

    def __init__(self):
        self.calls: list[tuple[str, int]] = []
        self.lock = threading.Lock()

    def __call__(self, job) -> None:
        with self.lock:
            self.calls.append((job.original_name, job.source.stat().st_size))
        if job.original_name.startswith("real_"):
            dub_processor(job)
        elif job.original_name.startswith("boom_"):
            raise BackendUnavailable("The score instruments are missing; reinstall dubber.")
        else:
            copy_processor(job)


def drop_plan(root: Path, base: bytes):
    """(name -> content of every good file, bad names, duplicate names, actions to run in threads)."""
    inbox, good, actions = root / "inbox", {}, []
    for i in range(27):                                            # atomic publishes
        good[f"clip{i:02d}.mp4"] = variant(base, i)
        actions.append((0.02 * i, lambda n=f"clip{i:02d}.mp4": publish(root, n, good[n])))
    for i in range(6):                                             # slow copies straight into the inbox
        name = f"slow{i}.mov"
        good[name] = variant(base, 100 + i)
        actions.append((0.1 * i, lambda n=name: slow_copy(inbox / n, good[n])))
    for i, mark in enumerate((".part", ".crdownload", ".part", ".download")):   # partial names renamed later
        name = f"download{i}.mp4"
        good[name] = variant(base, 200 + i)

        def partial(n=name, m=mark):
            (inbox / (n + m)).write_bytes(good[n])
            time.sleep(1.2)                                        # well past stable_s: must not be taken
            os.replace(inbox / (n + m), inbox / n)
        actions.append((0.0, partial))
    for i in range(2):                                             # through the real pipeline
        good[f"real_{i}.mp4"] = variant(base, 300 + i)
        actions.append((0.05, lambda n=f"real_{i}.mp4": publish(root, n, good[n])))
    dups = {"dup_late0.mp4": "clip00.mp4", "dup_late1.mp4": "clip05.mp4", "dup_late2.mov": "slow1.mov",
            "dup_late3.mp4": "download0.mp4", "dup_now0.mp4": "clip10.mp4", "dup_now1.mp4": "clip11.mp4"}
    for dup, original in dups.items():
        delay = 2.5 if "late" in dup else 0.2                      # late ones arrive after their originals
        actions.append((delay, lambda d=dup, o=original: publish(root, d, good[o])))
    bad = {"garbage.mp4": random.Random(0).randbytes(5000), "letter.mov": b"Dear editor,\n" * 50, "empty.mp4": b"",
           "boom_0.mp4": variant(base, 400)}
    for name, data in bad.items():
        actions.append((0.3, lambda n=name, d=data: publish(root, n, d) if d else (inbox / n).touch()))
    actions.append((0.0, lambda: slow_copy(inbox / "aborted.mp4", variant(base, 500), stop_after=3)))
    actions.append((0.0, lambda: (inbox / "notes.txt").write_text("not a video")))
    return good, set(bad) | {"aborted.mp4"}, dups, actions


def run_actions(actions) -> list[threading.Thread]:
    threads = []
    for delay, action in actions:
        t = threading.Thread(target=lambda d=delay, a=action: (time.sleep(d), a()), daemon=True)
        t.start()
        threads.append(t)
    return threads


def drop_and_settle(root: Path, actions, recorder: Recorder) -> None:
    """Run the watcher while the drops happen, until every drop is handled."""
    stop = threading.Event()
    options = WatchOptions(stable_s=0.8, poll_s=0.1, workers=2, empty_timeout_s=1.0, processor=recorder)
    watcher = threading.Thread(target=run_watch, args=(root, options, stop))
    watcher.start()
    for t in run_actions(actions):
        t.join()

    def settled() -> bool:
        names = {p.name for p in (root / "inbox").iterdir()}
        return names == {"notes.txt"} and not any((root / "processing").iterdir())
    try:
        wait_for(settled, 60, "every drop to be handled")
    finally:
        stop.set()
        watcher.join(30)
    assert not watcher.is_alive()


def dubbed_names(root: Path, good: dict, dups: dict) -> set[str]:
    """Identical files dropped together: whichever is claimed first is dubbed, the other is its duplicate."""
    together = [(original, dup) for dup, original in dups.items() if dup.startswith("dup_now")]
    dubbed = set(good) - {original for original, _ in together}
    for pair in together:
        winners = [n for n in pair if (root / "output" / Path(n).stem).is_dir()]
        assert len(winners) == 1, pair
        dubbed.add(winners[0])
    return dubbed


def check_dubbed(root: Path, recorder: Recorder, contents: dict, dubbed: set[str], records: list[dict]) -> None:
    """Every good content: dubbed once, from the complete file, into one output folder."""
    calls = [c for c in recorder.calls if c[0] != "boom_0.mp4"]
    assert sorted(calls) == sorted((n, len(contents[n])) for n in dubbed)              # never a partial file
    done = {p.name for p in (root / "done").iterdir()}
    for name in dubbed:
        assert name in done
        folder = root / "output" / Path(name).stem
        video = folder / f"{Path(name).stem}.dub{Path(name).suffix.lower()}"
        assert video.is_file(), name
        if not name.startswith("real_"):
            assert video.read_bytes() == contents[name]
        assert json.loads((folder / "source.json").read_text())["input"] == name
    assert sorted(r["name"] for r in records if r["event"] == "done") == sorted(dubbed)
    assert len({r["sha256"] for r in records if r["event"] == "done"}) == len(dubbed)
    assert len(list((root / "output").iterdir())) == len(dubbed)                     # no staging left over
    for name in ("real_0", "real_1"):  # the real pipeline left stems, manifest and timeline beside the video
        files = {p.relative_to(root / "output" / name).as_posix() for p in (root / "output" / name).rglob("*")}
        assert {f"stems/{name}.dub.music.wav", f"stems/{name}.dub.fx.wav", f"{name}.dub.json", f"{name}.dub.otio"} <= files


def check_duplicates(root: Path, dups: dict, dubbed: set[str]) -> None:
    """Duplicates: in done/ with a note naming what was dubbed, never dubbed themselves."""
    done = {p.name for p in (root / "done").iterdir()}
    for dup, original in dups.items():
        loser, winner = (dup, original) if original in dubbed else (original, dup)
        assert loser in done and winner in done
        note = json.loads((root / "done" / f"{loser}.duplicate.json").read_text())
        assert note["note"].startswith(f"Same content as {winner}")


def check_failures(root: Path, bad: set[str], records: list[dict]) -> None:
    """Bad files: in failed/, each with a one-sentence reason."""
    assert {p.name for p in (root / "failed").iterdir()} == bad | {f"{n}.error.json" for n in bad}
    reasons = {n: json.loads((root / "failed" / f"{n}.error.json").read_text())["reason"] for n in bad}
    assert "truncated" in reasons["aborted.mp4"] or "cannot be decoded" in reasons["aborted.mp4"]
    assert "empty (0 bytes)" in reasons["empty.mp4"]
    assert reasons["boom_0.mp4"] == "The score instruments are missing; reinstall dubber."
    for name, reason in reasons.items():
        assert reason.endswith(".") and "\n" not in reason and "processing/" not in reason, (name, reason)
    assert {r["name"] for r in records if r["event"] == "failed"} == bad


def test_fifty_drops(tmp_path, base_video):
    root = tmp_path / "watch"
    (root / "inbox").mkdir(parents=True)
    good, bad, dups, actions = drop_plan(root, base_video)
    assert len(good) + len(bad) + len(dups) == 50
    recorder = Recorder()
    drop_and_settle(root, actions, recorder)
    records = journal(root)
    dubbed = dubbed_names(root, good, dups)
    assert len(dubbed) == len(good)
    check_dubbed(root, recorder, {**good, **{d: good[o] for d, o in dups.items()}}, dubbed, records)
    check_duplicates(root, dups, dubbed)
    check_failures(root, bad, records)


# ----------------------------------------------------------------------------- crash and restart

def start_watcher(root: Path, markers: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, MARKERS_ENV: str(markers), "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "dubber.watch", str(root), "--stable-s", "0.3", "--poll-s", "0.1",
                             *extra], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_kill_9_mid_job_then_restart(tmp_path, base_video):
    root, markers = tmp_path / "watch", tmp_path / "markers"
    (root / "inbox").mkdir(parents=True)
    markers.mkdir()
    publish(root, "victim.mp4", variant(base_video, 1))
    proc = start_watcher(root, markers, "--processor", "tests.test_watch:slow_processor", "--workers", "1")
    try:
        wait_for(lambda: (markers / "victim.mp4.started").exists(), 30, "the job to start")
        assert proc.poll() is None
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert [p.name for p in (root / "processing").iterdir()] == ["victim.mp4"]          # caught mid-job
    assert any(p.name.startswith(".staging-") for p in (root / "output").iterdir())    # half-written result
    publish(root, "newcomer.mp4", variant(base_video, 2))                             # dropped while down
    publish(root, "twin.mp4", variant(base_video, 1))                                 # same content as victim

    again = start_watcher(root, markers, "--processor", "tests.test_watch:copy_processor", "--once", "--workers", "1")
    out, err = again.communicate(timeout=60)
    assert again.returncode == 0, err.decode()

    assert not any((root / "processing").iterdir()) and not any((root / "inbox").iterdir())
    assert sorted(p.name for p in (root / "output").iterdir()) == ["newcomer", "victim"]
    assert (root / "output" / "victim" / "victim.dub.mp4").read_bytes() == variant(base_video, 1)
    assert sorted(p.name for p in (root / "done").iterdir()) == ["newcomer.mp4", "twin.mp4",
                                                                 "twin.mp4.duplicate.json", "victim.mp4"]
    records = journal(root)
    assert sorted(r["name"] for r in records if r["event"] == "done") == ["newcomer.mp4", "victim.mp4"]
    assert [r["name"] for r in records if r["event"] == "resumed"] == ["victim.mp4"]
    assert [r["name"] for r in records if r["event"] == "duplicate"] == ["twin.mp4"]


def test_a_second_watcher_is_refused(tmp_path):
    stop = threading.Event()
    first = threading.Thread(target=run_watch, args=(tmp_path, WatchOptions(poll_s=0.05, processor=copy_processor),
                                                     stop))
    first.start()
    try:
        wait_for(lambda: (tmp_path / "logs" / "watch.lock").exists(), 10, "the first watcher")
        time.sleep(0.2)
        with pytest.raises(WatchLocked, match="Another watcher is already running"):
            run_watch(tmp_path, WatchOptions(once=True, processor=copy_processor))
    finally:
        stop.set()
        first.join(10)


# ----------------------------------------------------------------------------- --once and skip mode

def test_once_takes_only_what_is_ready(tmp_path, base_video):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    publish(tmp_path, "ready.mp4", variant(base_video, 1))
    old = time.time() - 60
    os.utime(inbox / "ready.mp4", (old, old))
    writer = threading.Thread(target=slow_copy, args=(inbox / "writing.mp4", variant(base_video, 2), 30, 0.1))
    writer.start()
    time.sleep(0.3)
    began = time.monotonic()
    run_watch(tmp_path, WatchOptions(stable_s=1.0, poll_s=0.1, once=True, processor=copy_processor))
    elapsed = time.monotonic() - began
    writer.join()
    assert [p.name for p in (tmp_path / "done").iterdir()] == ["ready.mp4"]
    assert [p.name for p in inbox.iterdir()] == ["writing.mp4"]          # still being written: left for next time
    assert elapsed < 5


def test_the_videos_of_a_folder_dropped_in_the_inbox_are_dubbed(tmp_path, base_video, caplog):
    """A reel dropped as a folder (even one named like a video): each settled video in it, at any
    depth, is taken under a name that says where it was; a copy still in progress waits; what is
    not a video stays in the folder, named once; an emptied subfolder goes."""
    reel = tmp_path / "inbox" / "reel 3.mp4"
    (reel / "sub").mkdir(parents=True)
    (reel / "shot.mp4").write_bytes(variant(base_video, 3))
    (reel / "sub" / "take 2.mp4").write_bytes(variant(base_video, 5))
    (reel / "notes.txt").write_text("cue sheet")
    (reel / "late.mp4.part").write_bytes(b"still copying")
    old = time.time() - 60
    for video in (reel / "shot.mp4", reel / "sub" / "take 2.mp4"):
        os.utime(video, (old, old))
    options = WatchOptions(stable_s=0.1, poll_s=0.05, once=True, processor=copy_processor, empty_timeout_s=0.1)
    with caplog.at_level("INFO", logger="dubber.watch"):
        for _ in range(3):
            run_watch(tmp_path, options)
            time.sleep(0.15)
    assert sorted(p.name for p in (tmp_path / "done").iterdir()) == ["reel 3.mp4 - shot.mp4",
                                                                    "reel 3.mp4 - sub - take 2.mp4"]
    assert (tmp_path / "done" / "reel 3.mp4 - shot.mp4").read_bytes() == variant(base_video, 3)
    assert sorted(p.name for p in reel.iterdir()) == ["late.mp4.part", "notes.txt"]   # sub/ emptied and gone
    said = [r.getMessage() for r in caplog.records if "notes.txt" in r.getMessage()]
    assert said == ["leaving inbox/reel 3.mp4/notes.txt alone: it is not a video"]   # once, not once a run
    assert not list((tmp_path / "failed").iterdir())


def test_cron_runs_remove_an_emptied_folder_and_name_a_stray_file_once(tmp_path, base_video):
    """`--once` under cron is a new process each run: a reel folder whose video was taken goes
    once it has stayed empty for the settle time, and a file that is not a video is named in
    the log once, not on every run."""
    reel = tmp_path / "inbox" / "Reel 3"
    reel.mkdir(parents=True)
    (reel / "shot 12.mp4").write_bytes(variant(base_video, 12))
    (tmp_path / "inbox" / "readme.txt").write_text("the cue sheet is in the drive")
    options = WatchOptions(stable_s=0.3, poll_s=0.05, once=True, processor=copy_processor)   # default empty_timeout_s
    for _ in range(4):
        run_watch(tmp_path, options)
        time.sleep(0.2)
    assert [p.name for p in (tmp_path / "done").iterdir()] == ["Reel 3 - shot 12.mp4"]
    assert sorted(p.name for p in (tmp_path / "inbox").iterdir()) == ["readme.txt"]   # Reel 3/ emptied and gone
    log_text = (tmp_path / "logs" / "watch.log").read_text()
    assert log_text.count("leaving inbox/readme.txt alone") == 1


def test_a_folder_that_arrives_empty_is_not_removed_at_once(tmp_path):
    """Someone may be about to fill a folder they just made in the inbox: it waits the long
    timeout, unlike a folder the watcher emptied itself."""
    (tmp_path / "inbox" / "Episode 4").mkdir(parents=True)
    options = WatchOptions(stable_s=0.1, poll_s=0.05, once=True, processor=copy_processor, empty_timeout_s=60)
    for _ in range(3):
        run_watch(tmp_path, options)
    assert (tmp_path / "inbox" / "Episode 4").is_dir()


def test_an_unreadable_inbox_state_is_set_aside(tmp_path, base_video):
    """A damaged logs/inbox-state.json is only ever parsed as JSON: the run says so, looks at
    the inbox afresh and writes a good one."""
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "inbox-state.json").write_text("__import__('os').remove('x')")
    (tmp_path / "inbox").mkdir()
    publish(tmp_path, "clip.mp4", variant(base_video, 13))
    run_watch(tmp_path, WatchOptions(stable_s=0.1, poll_s=0.05, once=True, processor=copy_processor))
    assert [p.name for p in (tmp_path / "done").iterdir()] == ["clip.mp4"]
    assert "ignoring the unreadable" in (tmp_path / "logs" / "watch.log").read_text()
    assert json.loads((tmp_path / "logs" / "inbox-state.json").read_text())["schema"] == "dubber.watch-inbox/1"


def test_a_mistyped_watch_path_is_refused_and_a_new_one_is_announced(tmp_path, capsys):
    from dubber.cli.main import main

    typo = tmp_path / "srv" / "dub"
    assert main(["watch", str(typo), "--once"]) == 2
    assert not (tmp_path / "srv").exists()                               # nothing made, parents included
    err = capsys.readouterr().err.strip()
    assert err == (f"dub: Cannot set up a watch folder at {typo}: the folder {tmp_path / 'srv'} does not exist; "
                   "check the path for a typo, or create that folder first.")

    fresh = tmp_path / "dub"
    args = ["watch", str(fresh), "--once", "--stable-s", "0.1", "--poll-s", "0.05",
            "--processor", "tests.test_watch:copy_processor"]
    assert main(args) == 0
    assert sorted(p.name for p in fresh.iterdir()) == ["done", "failed", "inbox", "logs", "output", "processing"]
    said = f"set up a new watch folder at {fresh}; drop videos into {fresh / 'inbox'}"
    assert capsys.readouterr().err.count(said) == 1
    assert main(args) == 0
    assert said not in capsys.readouterr().err                           # said once, when it was set up


@pytest.mark.parametrize("inside", ["inbox/dubbed", "done", "failed/x"])
def test_an_output_folder_inside_the_inbox_or_done_is_refused_in_one_sentence(tmp_path, base_video, capsys, inside):
    """The watcher would take its own dubs for new drops: refused before anything moves."""
    from dubber.cli.main import main

    (tmp_path / "inbox").mkdir()
    publish(tmp_path, "clip.mp4", variant(base_video, 17))
    out = tmp_path / inside
    code = main(["watch", str(tmp_path), "-o", str(out), "--once", "--stable-s", "0.1", "--poll-s", "0.05",
                 "--processor", "tests.test_watch:copy_processor"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and err.startswith(f"dub: The watch output {out} is inside"), err
    assert [p.name for p in (tmp_path / "inbox").iterdir()] == ["clip.mp4"] and not out.exists()


@pytest.mark.parametrize("entry", [("dubber.cli", "watch"), ("dubber.watch",)])
def test_dub_watch_stopped_by_sigterm_exits_143(tmp_path, base_video, entry):
    """As every other `dub` command, from either entry point: a supervisor tells a TERM stop
    from a Ctrl-C."""
    (tmp_path / "inbox").mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with reaped(subprocess.Popen([sys.executable, "-m", *entry, str(tmp_path), "--stable-s", "0.1",
                                  "--poll-s", "0.05", "--processor", "tests.test_watch:copy_processor"],
                                 cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)) as proc:
        publish(tmp_path, "clip.mp4", variant(base_video, 51))
        wait_for(lambda: (tmp_path / "done" / "clip.mp4").exists(), 60, "the watcher to be running")
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 143, stderr


def test_once_runs_return_a_failed_copy_that_grew_to_the_inbox(tmp_path, base_video):
    """cron mode: a half-copied video fails in one --once run; when the copy has finished, the
    next --once run puts it back in the inbox and a later one dubs it."""
    data = variant(base_video, 4)
    (tmp_path / "inbox").mkdir()
    publish(tmp_path, "half.mp4", data[: len(data) // 2])
    old = time.time() - 60
    os.utime(tmp_path / "inbox" / "half.mp4", (old, old))
    options = WatchOptions(stable_s=0.1, poll_s=0.05, once=True, processor=copy_processor)
    run_watch(tmp_path, options)
    assert [p.name for p in (tmp_path / "failed").iterdir() if not p.name.endswith(".json")] == ["half.mp4"]
    with open(tmp_path / "failed" / "half.mp4", "ab") as rest:   # the copy goes on where it was
        rest.write(data[len(data) // 2:])
    for _ in range(3):   # back in the inbox, then dubbed once it has settled (the same run or the next)
        run_watch(tmp_path, options)
        if (tmp_path / "done" / "half.mp4").exists():
            break
        time.sleep(0.2)
    assert not list((tmp_path / "failed").iterdir())
    assert [p.name for p in (tmp_path / "done").iterdir()] == ["half.mp4"]
    assert (tmp_path / "done" / "half.mp4").read_bytes() == data
    assert ("returned", "half.mp4") in [(r["event"], r["name"]) for r in journal(tmp_path)]


def test_a_copy_that_goes_on_during_its_dub_is_not_published_but_dubbed_once_complete(tmp_path, base_video):
    """A streamable copy (.ts) that pauses longer than stable_s is claimed half-written and probes
    as a shorter video; the copy then goes on into the claimed file. That dub is thrown away, the
    file waits in the inbox, and the complete file is what gets dubbed."""
    data = variant(base_video, 21)
    half, rest = data[: len(data) // 2], data[len(data) // 2:]
    (tmp_path / "inbox").mkdir()
    publish(tmp_path, "stall.mp4", half)
    dubbed = []

    def copy_goes_on(job) -> None:
        dubbed.append(job.source.read_bytes())
        copy_processor(job)
        if len(dubbed) == 1:
            with open(job.source, "ab") as copy:   # the copier writes on into the file it opened
                copy.write(rest)

    options = WatchOptions(stable_s=0.1, poll_s=0.05, once=True, processor=copy_goes_on, validator=lambda path: None)
    for _ in range(3):   # back in the inbox, then dubbed once it has settled (the same run or the next)
        run_watch(tmp_path, options)
        if (tmp_path / "done" / "stall.mp4").exists():
            break
        time.sleep(0.2)
    assert dubbed == [half, data]
    assert [p.name for p in (tmp_path / "output").iterdir()] == ["stall"]
    assert (tmp_path / "output" / "stall" / "stall.dub.mp4").read_bytes() == data
    assert [p.name for p in (tmp_path / "done").iterdir()] == ["stall.mp4"] and not any((tmp_path / "failed").iterdir())
    events = [(r["event"], r["name"]) for r in journal(tmp_path)]
    assert ("returned", "stall.mp4") in events and events.count(("done", "stall.mp4")) == 1


def full_disk_processor(job) -> None:
    """What the pipeline reports when the output disk fills up while it writes the stems."""
    import errno

    from dubber.atomic import write_error

    raise write_error(OSError(errno.ENOSPC, "No space left on device"), job.staging / "stems" / "x.wav")


@pytest.mark.parametrize("condition", ["full", "gone"])
def test_files_wait_in_the_inbox_while_the_output_folder_cannot_take_a_dub(tmp_path, base_video, caplog, condition):
    """A full or vanished output folder is no fault of the files: the backlog stays in the inbox,
    and the one sentence names the output folder, not a staging folder."""
    root, out = tmp_path / "watch", tmp_path / "share" / "dubbed"
    (root / "inbox").mkdir(parents=True)
    for i in range(3):
        publish(root, f"clip{i}.mp4", variant(base_video, 30 + i))
    processor = full_disk_processor
    if condition == "gone":
        def processor(job):   # the share is unmounted as the backlog starts
            import shutil
            shutil.rmtree(out, ignore_errors=True)
    # One job at a time: what two jobs racing on a vanishing share see is not what this asks.
    options = WatchOptions(stable_s=0.1, poll_s=0.05, once=True, processor=processor, out_dir=str(out), workers=1)
    with caplog.at_level("INFO", logger="dubber.watch"), pytest.raises(OutputError) as waiting:
        run_watch(root, options)   # a --once run (cron) learns that the backlog waits
    assert str(waiting.value).startswith(f"The watch output folder {out} is {condition}")
    assert str(waiting.value).endswith("the files it could not take wait in the inbox.")
    assert not any((root / "failed").iterdir()) and not any((root / "processing").iterdir())
    assert sorted(p.name for p in (root / "inbox").iterdir()) == ["clip0.mp4", "clip1.mp4", "clip2.mp4"]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and warnings[0].startswith(f"The watch output folder {out} is {condition}"), warnings
    assert ".staging" not in (root / "logs" / "watch.log").read_text()
    if condition == "gone":
        out.mkdir()   # mounted again: the next run dubs the backlog
        run_watch(root, replace(options, processor=copy_processor))
        assert sorted(p.name for p in out.iterdir()) == ["clip0", "clip1", "clip2"]


def test_a_file_dropped_again_after_its_output_folder_was_deleted_is_dubbed_again(tmp_path, base_video):
    (tmp_path / "inbox").mkdir()
    publish(tmp_path, "clip.mp4", variant(base_video, 41))
    options = WatchOptions(stable_s=0.1, poll_s=0.05, once=True, processor=copy_processor)
    run_watch(tmp_path, options)
    import shutil
    shutil.rmtree(tmp_path / "output" / "clip")                       # to have it dubbed again
    os.replace(tmp_path / "done" / "clip.mp4", tmp_path / "inbox" / "clip.mp4")
    run_watch(tmp_path, options)
    assert (tmp_path / "output" / "clip" / "clip.dub.mp4").read_bytes() == variant(base_video, 41)
    assert [p.name for p in (tmp_path / "done").iterdir()] == ["clip.mp4"]   # no duplicate note
    assert [r["event"] for r in journal(tmp_path) if r["event"] in ("done", "duplicate")] == ["done", "done"]
    publish(tmp_path, "again.mp4", variant(base_video, 41))           # its output is there now: a duplicate
    run_watch(tmp_path, options)
    assert json.loads((tmp_path / "done" / "again.mp4.duplicate.json").read_text())["output"] == "clip"


def test_a_file_dropped_again_after_the_settings_changed_is_dubbed_again(tmp_path, base_video):
    """A dub made with other settings is no answer to a drop: changing dub-watch.toml and dropping
    the file again is how a house redoes it in its new style."""
    (tmp_path / "inbox").mkdir()
    publish(tmp_path, "clip.mp4", variant(base_video, 43))
    options = WatchOptions(stable_s=0.1, poll_s=0.05, once=True, processor=copy_processor)
    run_watch(tmp_path, options)
    (tmp_path / "dub-watch.toml").write_text('style = "noir"\n')
    publish(tmp_path, "again.mp4", variant(base_video, 43))
    run_watch(tmp_path, options)
    assert not (tmp_path / "done" / "again.mp4.duplicate.json").exists()
    done = [r for r in journal(tmp_path) if r["event"] == "done"]
    assert [r["settings"]["style"] for r in done] == ["tom-and-jerry", "noir"]
    publish(tmp_path, "third.mp4", variant(base_video, 43))   # the same settings as the last dub
    run_watch(tmp_path, options)
    assert json.loads((tmp_path / "done" / "third.mp4.duplicate.json").read_text())["output"] == "again"


def test_skip_mode_leaves_duplicates_in_the_inbox_once(tmp_path, base_video):
    (tmp_path / "inbox").mkdir()
    publish(tmp_path, "first.mp4", variant(base_video, 7))
    options = WatchOptions(stable_s=0.1, poll_s=0.05, once=True, duplicates="skip", processor=copy_processor)
    run_watch(tmp_path, options)
    publish(tmp_path, "again.mp4", variant(base_video, 7))
    run_watch(tmp_path, options)
    run_watch(tmp_path, options)                                          # a skipped file is not re-examined
    assert [p.name for p in (tmp_path / "inbox").iterdir()] == ["again.mp4"]
    events = [(r["event"], r["name"]) for r in journal(tmp_path)]
    assert events.count(("skipped", "again.mp4")) == 1 and events.count(("done", "first.mp4")) == 1


def test_a_failed_record_write_leaves_no_file_behind(tmp_path):
    from dubber.watch.journal import write_json_atomic

    target = tmp_path / "clip.mp4.error.json"
    with pytest.raises(TypeError):
        write_json_atomic(target, {"reason": object()})   # not JSON: the write fails half-way
    assert list(tmp_path.iterdir()) == []


def missing_weights_processor(job) -> None:
    from audiostory_core.errors import WeightsNotFound

    raise WeightsNotFound("The AudioStory weights are not on this machine; run `dub models download`.")


def test_a_model_error_is_reported_as_its_own_sentence(tmp_path, base_video):
    (tmp_path / "inbox").mkdir()
    publish(tmp_path, "clip.mp4", variant(base_video, 11))
    run_watch(tmp_path, WatchOptions(stable_s=0.1, poll_s=0.05, once=True, processor=missing_weights_processor))
    record = json.loads((tmp_path / "failed" / "clip.mp4.error.json").read_text())
    assert record["reason"] == "The AudioStory weights are not on this machine; run `dub models download`."
    assert "Traceback" not in (tmp_path / "logs" / "watch.log").read_text()


# ----------------------------------------------------------------------------- the pipeline on the batch machinery

DUB_SETTINGS = 'backend = "score"\n'   # the CPU score engine, explicitly (no model on a test machine)


@pytest.fixture(scope="module")
def dub_clips(tmp_path_factory) -> dict[str, bytes]:
    """Three short clips with cuts and sound, and a text file named like a video."""
    from samples.synth import SynthSpec, synthesize

    folder = tmp_path_factory.mktemp("watch-dub-clips")
    clips = {}
    for i, (seconds, seed) in enumerate(((3.0, 40), (4.0, 41), (3.5, 45))):   # one cut, a wipe in ep2
        path = folder / f"ep{i}.mp4"
        synthesize(path, SynthSpec(width=160, height=90, fps=Fraction(24), duration_s=seconds, shot_s=1.5,
                                   audio=True, seed=seed, preset="ultrafast"))
        clips[path.name] = path.read_bytes()
    clips["broken.mp4"] = b"this is a text file, not a video\n" * 20
    return clips


@pytest.fixture(scope="module")
def single_dubs(dub_clips, tmp_path_factory) -> dict[str, Path]:
    """Each good clip dubbed on its own with the folder's settings: what the watcher must write."""
    from dubber import api
    from dubber.watch.settings import dub_options

    settings = load_settings_text(tmp_path_factory.mktemp("settings"), DUB_SETTINGS)
    out = tmp_path_factory.mktemp("watch-single")
    refs = {}
    for name, data in dub_clips.items():
        if name == "broken.mp4":
            continue
        stem = Path(name).stem
        (out / name).write_bytes(data)
        options = replace(dub_options(settings, out / stem / "stems"), cache_dir=str(out / "cache"))
        refs[name] = api.dub(out / name, out / stem / f"{stem}.dub.mp4", options).output
    return refs


def load_settings_text(folder: Path, text: str) -> WatchSettings:
    (folder / "dub-watch.toml").write_text(text)
    return load_settings(folder)


def assert_like_single_run(folder: Path, reference: Path) -> None:
    """Same video and same mix stem, byte for byte, as a single `dub` of the file."""
    stem = reference.with_suffix("").with_suffix("").name
    assert (folder / f"{stem}.dub.mp4").read_bytes() == reference.read_bytes(), folder
    mix = f"stems/{stem}.dub.mix.wav"
    assert (folder / mix).read_bytes() == (reference.parent / mix).read_bytes(), folder


def snapshot(folder: Path) -> dict[str, int]:
    return {p.relative_to(folder).as_posix(): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def ledger_records(root: Path) -> list[dict]:
    """The job records the watcher's workers wrote (not their temporary files, written beside them)."""
    from dubber.jobs import Ledger

    records = (Ledger(root / "logs").read(p.stem) for p in sorted((root / "logs" / ".dub-batch").glob("[!.]*.json")))
    return [r for r in records if r is not None]


def test_jobs_2_dubs_like_single_runs_a_bad_file_fails_alone_and_a_restart_does_nothing(
        tmp_path, monkeypatch, dub_clips, single_dubs):
    monkeypatch.setenv("DUB_CACHE_DIR", str(tmp_path / "cache"))   # inherited by the worker processes
    root = tmp_path / "watch"
    (root / "inbox").mkdir(parents=True)
    (root / "dub-watch.toml").write_text(DUB_SETTINGS)
    for name, data in dub_clips.items():
        publish(root, name, data)
    options = WatchOptions(stable_s=0.1, poll_s=0.05, once=True, workers=2)
    run_watch(root, options)

    good = sorted(single_dubs)
    assert sorted(p.name for p in (root / "done").iterdir()) == good
    assert sorted(p.name for p in (root / "failed").iterdir()) == ["broken.mp4", "broken.mp4.error.json"]
    error = json.loads((root / "failed" / "broken.mp4.error.json").read_text())
    assert "broken.mp4 is not a video file" in error["reason"] and "processing" not in error["reason"], error
    assert error["error"] == "NotAVideo"          # the worker's error, by name
    for name in good:
        assert_like_single_run(root / "output" / Path(name).stem, single_dubs[name])
    records = ledger_records(root)   # every dub ran in a worker process, never in the watcher
    assert sorted(r["status"] for r in records) == ["done", "done", "done", "failed"]
    assert os.getpid() not in {r["pid"] for r in records}
    with_times = [(r["started_at"], r["finished_at"]) for r in records if r["status"] == "done"]
    assert any(a[0] < b[1] and b[0] < a[1] for a in with_times for b in with_times if a != b), \
        f"no two dubs overlapped with --jobs 2: {with_times}"

    before, journal_before = snapshot(root), journal(root)
    run_watch(root, options)                                   # a restart: nothing left to do
    publish(root, "ep0-again.mp4", dub_clips["ep0.mp4"])       # finished content under a new name
    run_watch(root, options)
    after = snapshot(root)
    assert {k: v for k, v in after.items() if k in before and not k.startswith("logs/")} == \
        {k: v for k, v in before.items() if not k.startswith("logs/")}
    assert ledger_records(root) == records                     # no job was dispatched again
    new_events = [(r["event"], r["name"]) for r in journal(root)[len(journal_before):]]
    assert new_events == [("duplicate", "ep0-again.mp4")]
    assert "done/ep0-again.mp4.duplicate.json" in after


def test_a_worker_killed_mid_job_is_retried_to_the_same_output(tmp_path, monkeypatch, dub_clips, single_dubs):
    monkeypatch.setenv("DUB_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "watch"
    (root / "inbox").mkdir(parents=True)
    (root / "dub-watch.toml").write_text(DUB_SETTINGS)
    publish(root, "ep1.mp4", dub_clips["ep1.mp4"])
    killed = []

    def kill_the_worker() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            for record in ledger_records(root):
                if record["status"] == "running" and record["attempt"] == 1:
                    os.kill(int(record["pid"]), signal.SIGKILL)
                    killed.append(record["pid"])
            time.sleep(0.02)

    killer = threading.Thread(target=kill_the_worker, daemon=True)
    killer.start()
    run_watch(root, WatchOptions(stable_s=0.1, poll_s=0.05, once=True, workers=1))
    killer.join(5)
    assert killed, "the test never saw the job running"
    [record] = ledger_records(root)
    assert record["status"] == "done" and record["attempt"] == 2 and record["pid"] not in killed
    assert_like_single_run(root / "output" / "ep1", single_dubs["ep1.mp4"])
    assert [p.name for p in (root / "done").iterdir()] == ["ep1.mp4"] and not any((root / "failed").iterdir())
    assert "a worker process died" in (root / "logs" / "watch.log").read_text()


def test_a_signal_that_reaches_only_the_workers_strands_nothing(tmp_path, monkeypatch, dub_clips, single_dubs):
    """A process-group SIGINT while the watcher ignores SIGINT (started with & from a script)
    reaches only its workers: the interrupted dub runs again, and later drops are still dubbed."""
    monkeypatch.setenv("DUB_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "watch"
    (root / "inbox").mkdir(parents=True)
    (root / "dub-watch.toml").write_text(DUB_SETTINGS)
    stop = threading.Event()
    watcher = threading.Thread(target=run_watch, args=(root, WatchOptions(stable_s=0.1, poll_s=0.05, workers=1), stop))
    watcher.start()
    dubbed = []
    try:
        # A short dub can finish between two looks at the ledger: the worker is frozen while the
        # test checks that its job is still running, so the signal surely lands inside a job.
        for name in ("ep1.mp4", "ep2.mp4"):
            publish(root, name, dub_clips[name])
            dubbed.append(name)
            wait_for(lambda: any(r["status"] == "running" and Path(r["input"]).name == name
                                 for r in ledger_records(root)), 60, f"the dub of {name} to start", poll_s=0.005)
            [worker] = [r["pid"] for r in ledger_records(root) if Path(r["input"]).name == name]
            os.kill(int(worker), signal.SIGSTOP)
            try:
                [record] = [r for r in ledger_records(root) if Path(r["input"]).name == name]
                interrupting = record["status"] == "running"
                if interrupting:
                    os.kill(int(worker), signal.SIGINT)
            finally:
                os.kill(int(worker), signal.SIGCONT)
            if interrupting:
                break
            wait_for(lambda: name in {p.name for p in (root / "done").iterdir()}, 60, f"{name} to be dubbed")
        else:
            pytest.fail("every dub finished before the test could signal its worker")
        publish(root, "ep0.mp4", dub_clips["ep0.mp4"])
        dubbed.append("ep0.mp4")
        wait_for(lambda: sorted(p.name for p in (root / "done").iterdir()) == sorted(dubbed), 90,
                 "every file to be dubbed")
    finally:
        stop.set()
        watcher.join(60)
    assert not any((root / "processing").iterdir()) and not any((root / "failed").iterdir())
    for name in dubbed:
        assert_like_single_run(root / "output" / Path(name).stem, single_dubs[name])
    assert "was interrupted from outside; the job runs again" in (root / "logs" / "watch.log").read_text()
    [interrupted] = [r for r in ledger_records(root) if Path(r["input"]).name == dubbed[-2]]
    assert interrupted["status"] == "done" and interrupted["attempt"] == 2, interrupted


def test_the_job_records_name_where_the_files_ended_up(tmp_path, monkeypatch, dub_clips):
    """Someone tracing a job from logs/.dub-batch finds its files: the output folder and the
    original in done/, not the staging folder and processing/."""
    monkeypatch.setenv("DUB_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "watch"
    (root / "inbox").mkdir(parents=True)
    (root / "dub-watch.toml").write_text(DUB_SETTINGS)
    publish(root, "ep0.mp4", dub_clips["ep0.mp4"])
    run_watch(root, WatchOptions(stable_s=0.1, poll_s=0.05, once=True, workers=1))
    [record] = ledger_records(root)
    assert record["status"] == "done"
    assert Path(record["input"]) == root / "done" / "ep0.mp4"
    assert Path(record["output"]) == root / "output" / "ep0" / "ep0.dub.mp4"
    outputs = [Path(p) for p in record["outputs"].values()]
    assert outputs and all(p.is_file() for p in outputs), outputs
    assert ".staging" not in json.dumps(record) and "processing" not in json.dumps(record)


def media_references(folder: Path) -> dict[str, list[Path]]:
    """Every file the output folder's .otio (as OpenTimelineIO reads it), .fcpxml (its src
    attributes) and manifest (the input's path, and its outputs relative to it) point at."""
    import xml.etree.ElementTree as ET
    from urllib.parse import urlsplit
    from urllib.request import url2pathname

    import opentimelineio as otio

    def from_url(url: str) -> Path:
        return Path(url2pathname(urlsplit(url).path))

    [otio_file] = folder.glob("*.otio")
    [fcpxml_file] = folder.glob("*.fcpxml")
    [manifest_file] = [p for p in folder.glob("*.json") if p.name != "source.json"]
    timeline = otio.adapters.read_from_file(str(otio_file))
    manifest = json.loads(manifest_file.read_text())
    return {
        "otio": [Path(c.media_reference.target_url) for c in timeline.find_clips()],   # plain paths
        "fcpxml": [from_url(e.get("src")) for e in ET.parse(fcpxml_file).iter() if e.get("src")],
        "manifest": [Path(manifest["media"]["path"]), Path(manifest["analysis"]["media"]["path"]),
                     *(folder / rel for rel in manifest["outputs"].values())],
    }


def test_watch_timelines_and_manifests_point_at_files_that_exist(tmp_path, monkeypatch, dub_clips):
    """An editor opening output/<name>/<name>.dub.otio or .fcpxml finds all its media: the dub,
    its stems, and the original in done/ (not the staging folder or processing/). Two drops
    under one name: each output names its own original."""
    monkeypatch.setenv("DUB_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "watch"
    (root / "inbox").mkdir(parents=True)
    (root / "dub-watch.toml").write_text(DUB_SETTINGS)
    options = WatchOptions(stable_s=0.1, poll_s=0.05, once=True, workers=1)
    publish(root, "ep0.mp4", dub_clips["ep0.mp4"])
    run_watch(root, options)
    publish(root, "ep0.mp4", dub_clips["ep1.mp4"])                        # another film, the same name
    run_watch(root, options)
    assert sorted(p.name for p in (root / "output").iterdir()) == ["ep0", "ep0-2"]
    for folder, original, content in (("ep0", "ep0.mp4", "ep0.mp4"), ("ep0-2", "ep0-2.mp4", "ep1.mp4")):
        references = media_references(root / "output" / folder)
        for kind, paths in references.items():
            missing = [str(p) for p in paths if not p.is_file()]
            assert paths and not missing, (folder, kind, missing)
        dubbed = (root / "done" / original).resolve()
        assert dubbed.read_bytes() == dub_clips[content]
        for kind in ("otio", "fcpxml"):   # the original sound's track is the very file dubbed
            assert dubbed in {p.resolve() for p in references[kind]}, (folder, kind)
            assert {p.resolve().parent for p in references[kind]} <= {
                dubbed.parent, (root / "output" / folder).resolve(), (root / "output" / folder / "stems").resolve()}
        assert references["manifest"][0].resolve() == dubbed
        fcpxml = next((root / "output" / folder).glob("*.fcpxml")).read_text()
        assert fcpxml.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE fcpxml>\n')   # as Final Cut wants
        # Every file of the folder, and every file its timelines and manifest name there, is
        # named after the folder: the second delivery's files are not named like the first's.
        own = {p.name for p in (root / "output" / folder).rglob("*") if p.is_file() and p.name != "source.json"}
        named = {p.name for paths in references.values() for p in paths if p.resolve() != dubbed}
        assert own and named <= own and all(n.startswith(f"{folder}.dub.") for n in own), (folder, own, named)
        assert f'name="{folder}.dub.mp4"' in fcpxml and f'name="{folder}.dub.mix.wav"' in fcpxml, fcpxml


def test_ray_with_a_processor_or_without_ray_is_refused_in_one_sentence(tmp_path, monkeypatch, capsys):
    from dubber.cli.main import main

    code = main(["watch", str(tmp_path / "w"), "--once", "--ray", "--processor", "tests.test_watch:copy_processor"])
    assert code == 2 and not (tmp_path / "w").exists()
    assert "--processor runs inside the watcher and --ray on a cluster; drop one of them." in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "ray", None)   # as if not installed
    assert main(["watch", str(tmp_path / "w"), "--once", "--ray"]) == 2 and not (tmp_path / "w").exists()
    assert "pip install 'dubber[cluster]'" in capsys.readouterr().err


@pytest.mark.cluster
def test_ray_watch_dubs_like_single_runs_into_a_shared_output_and_a_restart_does_nothing(
        ray_cluster, tmp_path, dub_clips, single_dubs):
    root, out = tmp_path / "watch", tmp_path / "shared" / "dubbed"
    (root / "inbox").mkdir(parents=True)
    (root / "dub-watch.toml").write_text(DUB_SETTINGS)
    for name, data in dub_clips.items():
        publish(root, name, data)
    env = {**os.environ, "PYTHONPATH": str(REPO), "DUB_CACHE_DIR": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "dubber.cli", "watch", str(root), "-o", str(out), "--once", "--stable-s", "0.1",
           "--poll-s", "0.05", "--ray", ray_cluster]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 2, stderr[-3000:]   # the broken file failed: a cron run says so
    assert stderr.splitlines()[-1] == "dub: 1 file failed this run; see failed/ and logs/watch.log."

    good = sorted(single_dubs)
    assert sorted(p.name for p in out.iterdir()) == [Path(n).stem for n in good]   # nothing under ROOT/output
    assert not any((root / "output").iterdir())
    for name in good:
        assert_like_single_run(out / Path(name).stem, single_dubs[name])
    assert sorted(p.name for p in (root / "failed").iterdir()) == ["broken.mp4", "broken.mp4.error.json"]
    records = ledger_records(root)
    assert sorted(r["status"] for r in records) == ["done", "done", "done", "failed"]
    assert proc.pid not in {r["pid"] for r in records}   # the dubs ran in the cluster's workers
    assert all(line.startswith("dub: ") for line in stderr.splitlines()), stderr

    before = snapshot(out)
    again = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert snapshot(out) == before and ledger_records(root) == records


def alive(pid: int) -> bool:
    """Whether a process runs (a zombie, exited but not yet reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def test_sigterm_mid_dub_stops_the_workers_and_the_next_start_finishes_it(tmp_path, dub_clips, single_dubs):
    root = tmp_path / "watch"
    (root / "inbox").mkdir(parents=True)
    (root / "dub-watch.toml").write_text(DUB_SETTINGS)
    publish(root, "ep2.mp4", dub_clips["ep2.mp4"])
    env = {**os.environ, "PYTHONPATH": str(REPO), "DUB_CACHE_DIR": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "dubber.cli", "watch", str(root), "--stable-s", "0.1", "--poll-s", "0.05"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: any(r["status"] == "running" for r in ledger_records(root)), 60, "the dub to start")
        [worker] = [r["pid"] for r in ledger_records(root)]
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)            # to the watcher alone, as `kill PID` does
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert time.monotonic() - began < 15, "the watcher waited for the dub instead of stopping it"
    assert proc.returncode in (130, 143) and "processing/" in stderr, stderr
    wait_for(lambda: not alive(worker), 10, "the worker process to stop")
    assert [p.name for p in (root / "processing").iterdir()] == ["ep2.mp4"]
    assert not any((root / "output").iterdir()) and not any((root / "failed").iterdir())

    again = subprocess.run([*cmd, "--once"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert [p.name for p in (root / "done").iterdir()] == ["ep2.mp4"]
    assert_like_single_run(root / "output" / "ep2", single_dubs["ep2.mp4"])
    assert [r["name"] for r in journal(root) if r["event"] == "resumed"] == ["ep2.mp4"]


def test_a_failed_job_record_names_the_file_in_failed(tmp_path, monkeypatch, dub_clips):
    """Someone tracing a failed job from logs/.dub-batch finds its file in failed/, beside the note
    saying why, as a done job's record names done/: not processing/, nor the staging folder its
    output was to be written in (removed, so the record names no output)."""
    monkeypatch.setenv("DUB_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "watch"
    (root / "inbox").mkdir(parents=True)
    (root / "dub-watch.toml").write_text(DUB_SETTINGS)
    publish(root, "broken.mp4", dub_clips["broken.mp4"])
    run_watch(root, WatchOptions(stable_s=0.1, poll_s=0.05, once=True, workers=1))
    failed = root / "failed" / "broken.mp4"
    assert failed.is_file() and failed.with_name("broken.mp4.error.json").is_file()
    [record] = ledger_records(root)
    assert record["status"] == "failed" and Path(record["input"]) == failed
    assert record["output"] == ""
    assert record["reason"].startswith(f"{failed} is not a video file"), record["reason"]
    assert ".staging" not in json.dumps(record) and "processing" not in json.dumps(record)
