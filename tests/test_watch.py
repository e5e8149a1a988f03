"""The watch folder under load: which names it takes, its settings, 50 drops (slow copies,
partial names, an aborted copy, bad files, duplicates, two through the real pipeline), a kill -9
mid-job with a restart, a second watcher, and what the `watch` command refuses at startup.

Most drops use a fast processor (copies the input as its "dub") so the folder logic is what is
timed; validation always uses the real probe, and files named real_* go through the real
dubbing pipeline (score backend).

Single `--once` runs are in test_watch_once.py; the pipeline on the batch machinery (worker
processes, Ray) is in test_watch_pipeline.py.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.dub_cli import reaped
from tests.watch_helpers import (MARKERS_ENV, REPO, copy_processor, journal, publish, slow_copy, variant,
                                 wait_for)
from dubber.errors import BackendUnavailable
from dubber.watch.service import run_watch
from dubber.watch.watcher import (WatchLocked, WatchOptions, WatchSettings, WatchSettingsError, dub_processor, is_candidate,
                          load_settings)


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
    """Two films delivered under one name, the second while the first is still being dubbed, and
    finished first: each output folder's files carry that folder's name, so collected or imported
    together, no two files share a name, and each original in done/ is named as its dub's folder."""
    names: list[str] = []

    def both_in_flight(job) -> None:
        names.append(job.output_name)
        wait_for(lambda: len(names) == 2, 30, "the second delivery")
        if len(names) == 2 and job.output_name == names[0]:   # the first waits for the second to finish
            wait_for(lambda: list((tmp_path / "done").glob("*.mp4")), 30, "the second dub")
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
    assert (tmp_path / "done" / "ep.mp4").read_bytes() == variant(base_video, 1)
    assert (tmp_path / "done" / "ep-2.mp4").read_bytes() == variant(base_video, 2)


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
    # (a bad file is given a second look 1.5 s after its last change, in case it was still arriving)
    options = WatchOptions(stable_s=0.8, poll_s=0.1, workers=2, empty_timeout_s=1.0, arriving_s=1.5, processor=recorder)
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
    proc = start_watcher(root, markers, "--processor", "tests.watch_helpers:slow_processor", "--workers", "1")
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

    again = start_watcher(root, markers, "--processor", "tests.watch_helpers:copy_processor", "--once", "--workers", "1")
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


# ----------------------------------------------------------------------------- folders that go while watching

def _watch_in_thread(root: Path, **options):
    stop = threading.Event()
    failures: list = []
    settings = dict(stable_s=0.1, poll_s=0.05, processor=copy_processor, use_events=False)
    thread = threading.Thread(target=lambda: failures.append(run_watch(root, WatchOptions(**{**settings, **options}),
                                                                         stop)))
    thread.start()
    wait_for(lambda: (root / "logs" / "watch.lock").exists(), 10, "the watcher")
    return thread, stop


def test_folders_deleted_while_watching_are_made_again_and_drops_still_dubbed(tmp_path, base_video):
    """Someone tidies the watch folder away (its inbox, done/, failed/, processing/) while the
    watcher runs: it makes them again and goes on, and a file dropped afterwards is dubbed."""
    import shutil

    thread, stop = _watch_in_thread(tmp_path)
    try:
        for name in ("inbox", "processing", "done", "failed"):
            shutil.rmtree(tmp_path / name)
        wait_for(lambda: (tmp_path / "inbox").is_dir() and (tmp_path / "done").is_dir(), 10, "the folders made again")
        publish(tmp_path, "after.mp4", variant(base_video, 71))
        wait_for(lambda: (tmp_path / "done" / "after.mp4").is_file(), 20, "the dub of a later drop")
        assert thread.is_alive()
    finally:
        stop.set()
        thread.join(30)
    assert (tmp_path / "output" / "after" / "after.dub.mp4").read_bytes() == variant(base_video, 71)
    log_text = (tmp_path / "logs" / "watch.log").read_text()
    assert f"{tmp_path / 'inbox'} was deleted while being watched; made it again" in log_text
    assert "Traceback" not in log_text


def test_a_watch_folder_that_goes_away_is_waited_for(tmp_path, base_video, caplog):
    """The watch folder's share is unmounted (here: the folder moved away at once): the watcher
    says so once and waits, without making an empty folder tree at the mount point; when the
    folder is there again, it dubs what is dropped."""
    import logging

    root, away = tmp_path / "share", tmp_path / "unmounted"
    root.mkdir()
    thread, stop = _watch_in_thread(root)
    try:
        with caplog.at_level(logging.INFO, logger="dubber.watch"):
            os.rename(root, away)
            wait_for(lambda: "is gone" in caplog.text, 10, "the watcher to notice")
            time.sleep(0.3)
            assert not root.exists() and thread.is_alive()
            os.rename(away, root)
            wait_for(lambda: "is back" in caplog.text, 10, "the watcher to see it back")
            publish(root, "back.mp4", variant(base_video, 72))
            wait_for(lambda: (root / "done" / "back.mp4").is_file(), 20, "the dub after the folder came back")
    finally:
        stop.set()
        thread.join(30)
    assert caplog.text.count(f"the watch folder {root} is gone") == 1
    assert f"the watch folder {root} is back" in caplog.text


def test_a_file_removed_while_it_is_dubbed_is_said_and_no_failure(tmp_path, base_video):
    """The file is deleted from processing/ while its dub runs: one line says its dub was
    discarded; nothing goes to failed/ and a --once run does not count it as a failure."""
    def removed_midway(job) -> None:
        data = job.source.read_bytes()
        job.source.unlink()   # someone deletes processing/<file> now
        (job.staging / job.output_name).write_bytes(data)

    (tmp_path / "inbox").mkdir()
    publish(tmp_path, "gone.mp4", variant(base_video, 73))
    failed = run_watch(tmp_path, WatchOptions(stable_s=0.1, poll_s=0.05, once=True, processor=removed_midway))
    assert failed == 0
    assert not any((tmp_path / "failed").iterdir()) and not any((tmp_path / "output").iterdir())
    log_text = (tmp_path / "logs" / "watch.log").read_text()
    assert "gone.mp4 was removed from processing/ while it was being dubbed; its dub was discarded" in log_text
    assert "Traceback" not in log_text and [r["event"] for r in journal(tmp_path)][-1] == "removed"


def test_messages_name_the_output_folder_given_with_o(tmp_path, base_video):
    out = tmp_path / "deliveries"
    root = tmp_path / "watch"
    (root / "inbox").mkdir(parents=True)
    publish(root, "e.mp4", variant(base_video, 74))
    run_watch(root, WatchOptions(stable_s=0.1, poll_s=0.05, once=True, processor=copy_processor, out_dir=str(out)))
    assert f"dubbed e.mp4 -> {out / 'e'}" in (root / "logs" / "watch.log").read_text()


@pytest.mark.parametrize("blocked", ["inbox", "logs/watch.log"])
def test_a_watch_folder_that_cannot_be_set_up_is_one_sentence(tmp_path, capsys, blocked):
    """A folder the watcher needs cannot be made (a file in its place; a read-only share does the
    same): one sentence and exit 2, not a traceback."""
    from dubber.cli.main import main

    root = tmp_path / "watch"
    (root / "logs").mkdir(parents=True)
    if blocked == "inbox":
        (root / "inbox").write_text("not a folder")
    else:
        (root / blocked).mkdir()   # the log's name taken by a folder
    assert main(["watch", str(root), "--once", "--processor", "tests.watch_helpers:copy_processor"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err and str(root / blocked) in err, err


def test_a_second_watcher_writing_into_the_same_output_folder_is_refused(tmp_path):
    """Two watch folders, one -o: the second would clear the first's dubs in progress as leftovers
    when it starts, so it is refused, in one sentence, before it touches anything."""
    out = tmp_path / "deliveries"
    stop = threading.Event()
    first = threading.Thread(target=run_watch, args=(tmp_path / "a", WatchOptions(poll_s=0.05, processor=copy_processor,
                                                                                 out_dir=str(out)), stop))
    (tmp_path / "a").mkdir()
    first.start()
    try:
        wait_for(lambda: (tmp_path / "a" / "logs" / "watch.lock").exists(), 10, "the first watcher")
        time.sleep(0.2)
        staging = out / ".staging-ep-0123abcd"   # the first one's dub in progress
        staging.mkdir()
        (tmp_path / "b").mkdir()
        with pytest.raises(WatchLocked, match=f"Another watcher is already writing into {out}"):
            run_watch(tmp_path / "b", WatchOptions(once=True, processor=copy_processor, out_dir=str(out)))
        assert staging.is_dir()
    finally:
        stop.set()
        first.join(10)


def test_watchdogs_error_for_an_event_read_while_stopping_is_not_shown(tmp_path, caplog):
    """A drop just before Ctrl-C: watchdog reports the event it reads while stopping as an error,
    which would end a clean stop with `dub: error: InotifyEmitter...`; other errors still show."""
    import logging

    thread, stop = _watch_in_thread(tmp_path, use_events=True)
    stop.set()
    thread.join(30)
    inotify = logging.getLogger("watchdog.observers.inotify")
    with caplog.at_level(logging.ERROR):
        inotify.error("InotifyEmitter.queue_events() called when the thread is inactive")
        inotify.error("something else went wrong")
    assert "thread is inactive" not in caplog.text and "something else went wrong" in caplog.text


def test_a_relative_link_in_a_dropped_folder_still_names_its_video_once_lifted(tmp_path, base_video):
    """Symbolic links to videos are taken like the videos, also inside a folder dropped in the
    inbox: a relative one, lifted out of its folder, would point at nothing."""
    source = tmp_path / "library" / "clip.mp4"
    source.parent.mkdir()
    source.write_bytes(variant(base_video, 75))
    reel = tmp_path / "watch" / "inbox" / "Reel"
    reel.mkdir(parents=True)
    (reel / "rel.mp4").symlink_to(os.path.relpath(source, reel))
    root = tmp_path / "watch"
    for _ in range(2):   # the first run lifts it out of its folder once settled, the next takes it
        run_watch(root, WatchOptions(stable_s=0.1, poll_s=0.05, once=True, processor=copy_processor))
    assert (root / "output" / "Reel - rel" / "Reel - rel.dub.mp4").read_bytes() == variant(base_video, 75)
    assert not any((root / "failed").iterdir()) and source.read_bytes() == variant(base_video, 75)


def test_an_upload_that_reopens_the_file_for_each_chunk_is_dubbed_whole(tmp_path, base_video):
    """An uploader that opens the file again for every chunk (rsync --append, a resumed transfer)
    and pauses longer than stable_s: the first chunk reads as a video cut short, so it waits in the
    inbox under its name for the rest, instead of failing and leaving the later chunks to start
    new files; the whole video is dubbed once. A file that stays cut short fails once unchanged
    for arriving_s."""
    data = variant(base_video, 76)
    thread, stop = _watch_in_thread(tmp_path, stable_s=0.2, arriving_s=3.0)
    target = tmp_path / "inbox" / "chunked.mp4"
    try:
        third = -(-len(data) // 3)
        for k in range(3):
            with open(target, "ab") as handle:   # opened again for each chunk
                handle.write(data[k * third:(k + 1) * third])
            time.sleep(1.5)                        # longer than stable_s, and than a probe under load
        wait_for(lambda: (tmp_path / "done" / "chunked.mp4").is_file(), 20, "the whole upload dubbed")
        (tmp_path / "inbox" / "cut.mp4").write_bytes(data[:third])   # an upload that never resumes
        wait_for(lambda: (tmp_path / "failed" / "cut.mp4").is_file(), 20, "the cut-short file to fail")
    finally:
        stop.set()
        thread.join(30)
    assert (tmp_path / "output" / "chunked" / "chunked.dub.mp4").read_bytes() == data
    assert sorted(p.name for p in (tmp_path / "failed").iterdir()) == ["cut.mp4", "cut.mp4.error.json"]
    returned = [r for r in journal(tmp_path) if r["event"] == "returned"]
    assert {r["name"] for r in returned} <= {"chunked.mp4", "cut.mp4"} and returned


def test_a_cut_short_file_that_grows_again_is_taken_once_it_settles_not_after_the_long_wait(tmp_path, base_video):
    """The copy paused, the half was taken and read as cut short, then the rest arrived: the file is
    dubbed as soon as it settles, not after arriving_s (a minute) of stillness."""
    data = variant(base_video, 77)
    thread, stop = _watch_in_thread(tmp_path, stable_s=0.2, arriving_s=60.0)
    target = tmp_path / "inbox" / "paused.mp4"
    try:
        with open(target, "wb") as copy:
            copy.write(data[:len(data) // 2])
            copy.flush()
            journal_file = tmp_path / "logs" / "journal.jsonl"
            wait_for(lambda: journal_file.is_file() and any(r["event"] == "returned" for r in journal(tmp_path)), 10,
                     "the half to be held")
            copy.write(data[len(data) // 2:])
        wait_for(lambda: (tmp_path / "done" / "paused.mp4").is_file(), 15, "the whole copy dubbed")
    finally:
        stop.set()
        thread.join(30)
    assert (tmp_path / "output" / "paused" / "paused.dub.mp4").read_bytes() == data


# ----------------------------------------------------------------------------- the command line

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
            "--processor", "tests.watch_helpers:copy_processor"]
    assert main(args) == 0
    assert sorted(p.name for p in fresh.iterdir()) == ["done", "failed", "inbox", "logs", "output", "processing"]
    said = f"set up a new watch folder at {fresh}; drop videos into {fresh / 'inbox'}"
    assert capsys.readouterr().err.count(said) == 1
    assert main(args) == 0
    assert said not in capsys.readouterr().err                           # said once, when it was set up
    # `dub watch ROOT/inbox`: no second watch folder is set up inside the first one's inbox
    assert main(["watch", str(fresh / "inbox"), "--once"]) == 2
    assert capsys.readouterr().err.strip() == (f"dub: {fresh / 'inbox'} is the inbox folder of the watch folder "
                                               f"{fresh}; watch {fresh} instead.")
    assert sorted(p.name for p in (fresh / "inbox").iterdir()) == []


@pytest.mark.parametrize("inside", ["inbox/dubbed", "done", "failed/x"])
def test_an_output_folder_inside_the_inbox_or_done_is_refused_in_one_sentence(tmp_path, base_video, capsys, inside):
    """The watcher would take its own dubs for new drops: refused before anything moves."""
    from dubber.cli.main import main

    (tmp_path / "inbox").mkdir()
    publish(tmp_path, "clip.mp4", variant(base_video, 17))
    out = tmp_path / inside
    code = main(["watch", str(tmp_path), "-o", str(out), "--once", "--stable-s", "0.1", "--poll-s", "0.05",
                 "--processor", "tests.watch_helpers:copy_processor"])
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
                                  "--poll-s", "0.05", "--processor", "tests.watch_helpers:copy_processor"],
                                 cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)) as proc:
        publish(tmp_path, "clip.mp4", variant(base_video, 51))
        wait_for(lambda: (tmp_path / "done" / "clip.mp4").exists(), 60, "the watcher to be running")
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 143, stderr
