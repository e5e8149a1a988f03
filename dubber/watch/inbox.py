"""The watch folder's inbox (dubber.watch.watcher): which files are ready to be taken, videos
lifted out of folders dropped there, emptied folders removed, and what is left alone named once.
What it learns is kept in logs/inbox-state.json (`InboxState`) after every scan that changed it,
so a `--once` run under cron goes on where the last one stopped. File-system events on the inbox
(`inbox_events`) only wake the scan early."""
from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from pathlib import Path

from .journal import InboxState, Journal, is_candidate, is_temporary, name_after_place, shown, unique_path

log = logging.getLogger(__name__)


class InboxScanner:
    """Scans `inbox` for files that have stopped changing.

    Args:
        inbox: the folder scanned.
        state: stability, names already said and folders emptied, as the last run left them.
        journal: where lifting a video out of its folder is recorded.
        skipped: (name, size, mtime_ns) of duplicates left in the inbox on purpose (shared with
            the watcher, which adds to it).

    How long a file (or a folder the scanner emptied) must stay unchanged, and an empty file or a
    folder that arrived empty, are the state's tracker's `stable_s` and `empty_timeout_s`.
    """

    def __init__(self, inbox: Path, state: InboxState, journal: Journal, skipped: set[tuple]) -> None:
        self.inbox, self.state, self.journal, self.skipped = inbox, state, journal, skipped
        self.left_alone: set[str] = set()   # names the current scan leaves alone
        # names taken only once unchanged for a while (`hold`): (seconds, size, mtime_ns when held)
        self.held: dict[str, tuple[float, int, int]] = {}

    def ready(self) -> list[Path]:
        """Inbox files that are ready: candidates by name, stable, not skipped. A symbolic link
        to a video is taken like the video; anything left alone is said once, across runs."""
        now, present, ready = time.monotonic(), set(), []
        self.left_alone = set()
        with os.scandir(self.inbox) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False) and not is_temporary(entry.name):
                    present |= self._lift_from_folder(Path(entry.path), now)
                    continue
                if not self._takes(entry):
                    continue
                st = entry.stat()
                present.add(entry.name)
                if (entry.name, st.st_size, st.st_mtime_ns) in self.skipped:
                    continue
                if self.state.tracker.is_stable(entry.name, st.st_size, st.st_mtime_ns, now,
                                                self._held_for(entry.name, st)):
                    ready.append(Path(entry.path))
        self._remember(present)
        return sorted(ready)

    def forget(self, name: str) -> None:
        """`name` was taken: a file dropped under the same name later starts afresh."""
        self.state.tracker.forget(name)
        self.held.pop(name, None)

    def hold(self, name: str, need_s: float) -> None:
        """Take `name` again only once it has changed (the rest of it arrived) and settled as any
        file does, or once it has stayed as it is now for `need_s`, counted from its last change
        (a file that may still be arriving)."""
        self.state.tracker.forget(name)
        st = (self.inbox / name).stat()
        self.held[name] = (need_s, st.st_size, st.st_mtime_ns)

    def _held_for(self, name: str, st: os.stat_result) -> float | None:
        """How long `name` must stay unchanged before it is taken: a held file unchanged since it
        was held waits its hold; one that changed since is taken as any other (None)."""
        held = self.held.get(name)
        if held is None:
            return None
        if (st.st_size, st.st_mtime_ns) == held[1:]:
            return held[0]
        del self.held[name]   # it grew: the rest arrived (or some of it); settle and take it
        return None

    def _remember(self, present: set[str]) -> None:
        """Keep what this scan learnt for the next scan and the next run; names no longer in the
        inbox are dropped, so a file dropped again later is named again."""
        self.state.tracker.prune(present)
        self.state.told &= self.left_alone
        self.state.emptied = {key for key in self.state.emptied if (self.inbox / key).is_dir()}
        self.state.save()

    def _leave_alone(self, key: str, why: str) -> None:
        self.left_alone.add(key)
        if key not in self.state.told:
            self.state.told.add(key)
            log.warning("leaving inbox/%s alone: %s", shown(key), why)

    def _takes(self, entry: os.DirEntry) -> bool:
        if is_temporary(entry.name):
            return False   # a copy in progress: it gets its real name when done
        if entry.is_dir():   # a link to a folder: its videos are not ours to move
            why = "it is a link to a folder; move the videos themselves into inbox/"
        elif not is_candidate(entry.name):
            why = "its name does not end in a video extension"
        elif entry.is_symlink() and not entry.is_file():
            why = "it is a link to something that is not a file"
        elif not entry.is_file():
            why = "it is not a file"
        else:
            return True
        self._leave_alone(entry.name, why)
        return False

    def _lift_from_folder(self, folder: Path, now: float) -> set[str]:
        """A folder dropped into the inbox (a reel, an episode): each video in it, at any depth,
        once it has stopped changing, moves up into the inbox named after its place ("Reel 3 -
        shot 12.mp4") and is then taken like any other. What is not a video stays where it is,
        named once; the folder goes when nothing is left in it. Returns the names it tracks."""
        tracked: set[str] = set()
        for base, dirs, files in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if not is_temporary(d))
            for name in sorted(files):
                path = Path(base) / name
                key = path.relative_to(self.inbox).as_posix()
                if is_temporary(name):
                    continue   # still being copied: it gets its real name when done
                if not is_candidate(name) or not path.is_file():
                    self._leave_alone(key, "it is not a video")
                    continue
                try:
                    st = path.stat()
                except FileNotFoundError:
                    continue
                tracked.add(key)
                if self.state.tracker.is_stable(key, st.st_size, st.st_mtime_ns, now):
                    self._lift(path, key)
                    tracked.discard(key)
        return tracked | self._remove_empty_folders(folder, now)

    def _lift(self, path: Path, key: str) -> None:
        target = unique_path(self.inbox, name_after_place(Path(key)))
        link = os.readlink(path) if path.is_symlink() else None
        if link is not None and not os.path.isabs(link):
            # A relative link names its video from where it is: moved up, it would name nothing.
            # It moves as a link to the same file by its absolute path (made under a hidden name,
            # which the scan leaves alone, then renamed into place).
            temp = target.with_name(f".lifting-{target.name}")
            os.symlink(os.path.abspath(os.path.join(path.parent, link)), temp)
            os.replace(temp, target)
            path.unlink()
        else:
            os.replace(path, target)
        self.state.tracker.forget(key)
        # Every folder above it may now be empty, and if so the scanner emptied it.
        self.state.emptied.update(parent.as_posix() + "/" for parent in Path(key).parents if parent != Path("."))
        self.journal.append("lifted", name=target.name, from_folder=key)
        log.info("took %s out of its folder as %s", shown(key), shown(target.name))

    def _remove_empty_folders(self, folder: Path, now: float) -> set[str]:
        """A folder the scanner emptied goes once it has stayed empty for the settle time
        (`stable_s`); one that arrived empty waits `empty_timeout_s`, as someone may be about to
        fill it. What is not a video keeps its folder. Returns the empty folders still waiting."""
        waiting: set[str] = set()
        for base, dirs, files in sorted(os.walk(folder), key=lambda walked: -len(walked[0])):
            if dirs or files:
                continue
            key = Path(base).relative_to(self.inbox).as_posix() + "/"
            tracker = self.state.tracker
            need_s = tracker.stable_s if key in self.state.emptied else tracker.empty_timeout_s
            with contextlib.suppress(OSError):
                waiting.add(key)
                if tracker.is_stable(key, 0, os.stat(base).st_mtime_ns, now, need_s):
                    os.rmdir(base)
                    self.state.tracker.forget(key)
                    self.state.emptied.discard(key)
                    waiting.discard(key)
        return waiting


def inbox_events(inbox: Path, wake: threading.Event, poll_s: float):
    """Start watchdog's events on `inbox`, each setting `wake`: they only make the watcher scan
    sooner (the scan is what decides). The observer, or None when watchdog is missing or the
    system has no events to give (then the scan every `poll_s` seconds is all there is)."""
    try:
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer
    except ImportError:
        return None

    class _Hint(FileSystemEventHandler):
        def on_any_event(self, event) -> None:
            wake.set()

    logging.getLogger(INOTIFY_LOGGER).addFilter(_quiet_stop_race)
    observer = Observer()
    try:
        observer.schedule(_Hint(), str(inbox), recursive=False)
        observer.start()
    except OSError as err:  # e.g. out of inotify watches: polling still works
        log.warning("file-system events unavailable (%s); scanning every %.1f s", err, poll_s)
        return None
    return observer


INOTIFY_LOGGER = "watchdog.observers.inotify"


def _quiet_stop_race(record: logging.LogRecord) -> bool:
    """watchdog logs, as an error, an inotify event read while its observer is being stopped (a
    drop just before Ctrl-C): nothing is lost, since events only wake the scan early."""
    return "called when the thread is inactive" not in record.getMessage()
