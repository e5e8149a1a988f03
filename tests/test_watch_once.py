"""The watch folder run by run, as cron starts `dub watch --once`: only settled files are taken;
a folder dropped in the inbox gives up its videos; a half copy that failed comes back once it has
grown; the backlog waits in the inbox while the output folder is full or gone; a file dropped
again is dubbed again only when its output was deleted or the settings changed; skip mode; and
the failure records.

Every test uses a fast processor that copies the input as its "dub", so the folder logic is what
is timed.
"""
from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import replace

import pytest

from tests.watch_helpers import copy_processor, journal, publish, slow_copy, variant
from dubber.errors import OutputError
from dubber.watch.service import run_watch
from dubber.watch.watcher import WatchOptions


# ----------------------------------------------------------------------------- --once and skip mode

def test_once_takes_only_what_is_ready(tmp_path, base_video, caplog):
    caplog.set_level("INFO", logger="dubber")
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
    assert "left in the inbox for a later run, still arriving or empty: writing.mp4" in caplog.text   # and said


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


def test_once_takes_what_settles_even_when_the_first_look_at_the_inbox_is_slow(tmp_path, base_video, monkeypatch):
    """A cron run on a busy machine or a slow share: listing the inbox the first time takes longer
    than the settle time. The run still looks again once the files have settled and dubs them,
    rather than ending before its second look and leaving them all for the next run."""
    from dubber.watch.watcher import Watcher

    (tmp_path / "inbox").mkdir()
    for i in range(2):
        publish(tmp_path, f"clip{i}.mp4", variant(base_video, 40 + i))
    scan, looks = Watcher.scan, []

    def slow_first_scan(self):
        looks.append(time.monotonic())
        if len(looks) == 1:
            time.sleep(0.5)   # longer than the settle time and two polls together
        return scan(self)

    monkeypatch.setattr(Watcher, "scan", slow_first_scan)
    run_watch(tmp_path, WatchOptions(stable_s=0.1, poll_s=0.05, once=True, processor=copy_processor))
    assert sorted(p.name for p in (tmp_path / "done").iterdir()) == ["clip0.mp4", "clip1.mp4"]
    assert not any((tmp_path / "inbox").iterdir()) and len(looks) >= 2


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
