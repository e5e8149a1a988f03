"""The watch folder under load: 50 drops (slow copies, partial names, an aborted copy, bad files,
duplicates, two through the real pipeline), a kill -9 mid-job with a restart, --once, settings.

Most drops use a fast processor (copies the input as its "dub") so the folder logic is what is
timed; validation always uses the real probe, and files named real_* go through the real
dubbing pipeline (score backend).
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
from fractions import Fraction
from pathlib import Path

import pytest

from dubber.errors import BackendUnavailable
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


def wait_for(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


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


def test_settings_reach_the_processor(tmp_path, base_video):
    (tmp_path / "dub-watch.toml").write_text('style = "nature"\nbackend = "score"\nlufs = "ebu"\nkeep_original = true\n')
    seen = []
    (tmp_path / "inbox").mkdir()
    publish(tmp_path, "a.mp4", variant(base_video, 1))
    run_watch(tmp_path, WatchOptions(stable_s=0.2, poll_s=0.05, once=True,
                                     processor=lambda job: (seen.append(job.settings), copy_processor(job))))
    assert seen == [WatchSettings(style="nature", backend="score", lufs="ebu", keep_original=True)]


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
