"""Building blocks of the watch folder (dubber.watch.watcher): file names, the journal, the stability
check and what it remembers of the inbox between runs, and the folder lock. Nothing here knows
about dubbing."""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Collection, Mapping

from ..atomic import atomic_write_text, exclusive_lock
from ..errors import DubError, is_user_error, one_line
from ..options import INPUT_VIDEO_SUFFIXES

FOLDERS = ("inbox", "processing", "output", "done", "failed", "logs")
JOURNAL_FILE = "journal.jsonl"
LOG_FILE = "watch.log"
SOURCE_RECORD = "source.json"       # written into each output folder: which content it came from
STAGING_PREFIX = ".staging-"
TEMP_PREFIXES = (".", "~$", "._")
TEMP_SUFFIXES = (".part", ".crdownload", ".tmp", ".partial", ".download")
HASH_CHUNK_BYTES = 1 << 20

log = logging.getLogger(__name__)


class WatchLocked(DubError):
    """Another watcher already serves this folder."""


# ----------------------------------------------------------------------------- names and files

def is_candidate(name: str) -> bool:
    """A finished video by its name: no temporary or partial-download marks, a video suffix."""
    lower = name.lower()
    if lower.startswith(TEMP_PREFIXES) or lower.endswith(TEMP_SUFFIXES):
        return False
    return lower.endswith(INPUT_VIDEO_SUFFIXES)


def is_temporary(name: str) -> bool:
    """A name a copy in progress uses (left alone until it is renamed)."""
    lower = name.lower()
    return lower.startswith(TEMP_PREFIXES) or lower.endswith(TEMP_SUFFIXES)


def shown(name: str) -> str:
    """A file name as one log line can carry it: control characters (a newline) escaped."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in name)


def name_after_place(place: Path) -> str:
    """The file name of a video found inside a folder, after its place there: "Reel 3/shot 12.mp4"
    becomes "Reel 3 - shot 12.mp4" (the watch folder lifting it out, `dub batch` naming its output)."""
    return " - ".join(place.parts)


def unique_path(folder: Path, name: str, taken: Collection[str] = ()) -> Path:
    """`folder/name`, or `stem-2.ext`, `stem-3.ext`... when taken (there, or a name in `taken`)."""
    candidate = folder / name
    stem, suffix = Path(name).stem, Path(name).suffix
    n = 2
    while candidate.exists() or candidate.name in taken:
        candidate = folder / f"{stem}-{n}{suffix}"
        n += 1
    return candidate


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    """Write `data` as JSON through the one atomic writer: a failed write leaves neither a result nor litter."""
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def one_sentence(err: BaseException) -> str:
    """A user error's own sentence; anything else is summarised and logged with its traceback."""
    if is_user_error(err):
        return one_line(err)
    return f"Dubbing stopped on an internal error ({type(err).__name__}); see logs/{LOG_FILE} for details."


# ----------------------------------------------------------------------------- journal

class Journal:
    """Append-only JSON lines in logs/journal.jsonl, synced on every write. A line cut short by
    a crash is ignored on reading."""

    def __init__(self, path: Path):
        self.path = path
        self.lock = threading.Lock()
        self.records: list[dict] = list(self._read())
        self.done_by_sha = {r.get("sha256"): r for r in self.records if r.get("event") == "done"}

    def _read(self):
        if not self.path.is_file():
            return
        for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                yield record

    def append(self, event: str, **data: Any) -> dict:
        record = {"time": now_iso(), "event": event, **data}
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self.lock:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
            self.records.append(record)
            if event == "done":   # the latest dub of a content is the one its output folder holds
                self.done_by_sha[record.get("sha256")] = record
        return record

    def done_record(self, sha256: str) -> dict | None:
        with self.lock:
            return self.done_by_sha.get(sha256)

    def skipped_keys(self) -> set[tuple]:
        with self.lock:
            return {(r["name"], r["size"], r["mtime_ns"]) for r in self.records if r.get("event") == "skipped"}


# ----------------------------------------------------------------------------- stability

@dataclass
class _Seen:
    size: int
    mtime_ns: int
    since: float   # monotonic time this (size, mtime) was first seen, credited with the file's age


@dataclass
class StabilityTracker:
    """Decides when a file has stopped changing. A file must be seen twice with the same size
    and mtime; its mtime's age counts toward `stable_s`, so an old file is taken on the second
    look rather than after a full wait."""

    stable_s: float
    empty_timeout_s: float
    seen: dict[str, _Seen] = field(default_factory=dict)

    def is_stable(self, name: str, size: int, mtime_ns: int, now: float, need_s: float | None = None) -> bool:
        """Whether `name` has looked the same for `need_s` seconds (default: `stable_s`, or
        `empty_timeout_s` for an empty file)."""
        need = need_s if need_s is not None else self.empty_timeout_s if size == 0 else self.stable_s
        prev = self.seen.get(name)
        if prev is None or (prev.size, prev.mtime_ns) != (size, mtime_ns):
            age = max(0.0, time.time() - mtime_ns / 1e9) if prev is None else 0.0
            self.seen[name] = _Seen(size, mtime_ns, now - min(age, need))
            return False
        return now - prev.since >= need

    def forget(self, name: str) -> None:
        self.seen.pop(name, None)

    def prune(self, present: set[str]) -> None:
        for name in set(self.seen) - present:
            del self.seen[name]


INBOX_STATE_FILE = "inbox-state.json"
INBOX_STATE_SCHEMA = "dubber.watch-inbox/1"


@dataclass
class InboxState:
    """What the scan knows about the inbox, kept in logs/inbox-state.json so that a `--once` run
    (a new process each time cron starts it) goes on where the last one stopped: how long each
    file and empty folder has looked unchanged (`tracker`), which names were already said to be
    left alone (`told`), and which folders the watcher itself emptied (`emptied`: they go once
    they have settled, where a folder that arrived empty may be about to be filled).

    The file is plain JSON, checked field by field; one that cannot be read is ignored (with a
    warning) and the scan starts afresh, which at worst names a file again or waits once more."""

    path: Path
    tracker: StabilityTracker
    told: set[str] = field(default_factory=set)
    emptied: set[str] = field(default_factory=set)
    _saved: tuple = field(default=(), init=False, repr=False)        # what the file holds (see _contents)
    _save_failed: bool = field(default=False, init=False, repr=False)   # said once, not on every scan

    @classmethod
    def load(cls, path: Path, stable_s: float, empty_timeout_s: float) -> "InboxState":
        state = cls(path, StabilityTracker(stable_s, empty_timeout_s))
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return state
        except (OSError, ValueError) as err:
            log.warning("ignoring the unreadable %s (%s); the inbox is looked at afresh", path, err)
            return state
        if not _is_inbox_record(record):
            log.warning("ignoring %s: it is not an inbox state this version writes; the inbox is looked at afresh",
                        path)
            return state
        # Times are kept as wall-clock seconds (the only clock two processes share), used here
        # as the monotonic times of this process.
        now, wall = time.monotonic(), time.time()
        for name, (size, mtime_ns, since_s) in record["seen"].items():
            state.tracker.seen[name] = _Seen(size, mtime_ns, now - max(0.0, wall - since_s))
        state.told, state.emptied = set(record["told"]), set(record["emptied"])
        state._saved = state._contents()
        return state

    def _contents(self) -> tuple:
        """What is kept, without the times (those of a known entry never change)."""
        seen = tuple(sorted((name, s.size, s.mtime_ns) for name, s in self.tracker.seen.items()))
        return seen, tuple(sorted(self.told)), tuple(sorted(self.emptied))

    def save(self) -> None:
        """Write the state when it changed since it was read or last written (atomically)."""
        contents = self._contents()
        if contents == self._saved:
            return
        now, wall = time.monotonic(), time.time()
        seen = {name: [s.size, s.mtime_ns, round(wall - (now - s.since), 3)] for name, s in self.tracker.seen.items()}
        try:
            write_json_atomic(self.path, {"schema": INBOX_STATE_SCHEMA, "seen": seen, "told": sorted(self.told),
                                          "emptied": sorted(self.emptied)})
        except (OSError, DubError) as err:   # the watcher goes on; only what it remembers is lost
            if not self._save_failed:
                log.warning("cannot keep the inbox state in %s (%s); a later run looks at the inbox afresh",
                            self.path, one_line(err))
            self._save_failed = True
            return
        self._saved, self._save_failed = contents, False


def _is_inbox_record(record: Any) -> bool:
    if not (isinstance(record, dict) and record.get("schema") == INBOX_STATE_SCHEMA):
        return False
    seen, told, emptied = record.get("seen"), record.get("told"), record.get("emptied")
    if not (isinstance(seen, dict) and isinstance(told, list) and isinstance(emptied, list)):
        return False
    return all(_is_seen_entry(entry) for entry in seen.values()) and all(
        isinstance(name, str) for name in (*told, *emptied))


def _is_seen_entry(entry: Any) -> bool:
    """[size, mtime_ns, since_s]: two integers and a number of seconds."""
    def number(x: Any, kinds: tuple[type, ...]) -> bool:
        return isinstance(x, kinds) and not isinstance(x, bool)

    return (isinstance(entry, list) and len(entry) == 3 and number(entry[0], (int,)) and number(entry[1], (int,))
            and number(entry[2], (int, float)))


class FolderLock:
    """Only one watcher per folder: an exclusive lock on logs/watch.lock, released by the OS
    even when the process is killed. `busy` is the sentence when another holds it; `remove`:
    the file goes when the lock is let go (a lock kept in a folder of the user's)."""

    def __init__(self, path: Path, busy: str | None = None, remove: bool = False):
        self.path, self.remove = path, remove
        self.busy = busy or f"Another watcher is already running on {path.parent.parent}; stop it first."
        self._held = contextlib.ExitStack()

    def __enter__(self) -> "FolderLock":
        if not self._held.enter_context(exclusive_lock(self.path, remove=self.remove)):
            self._held.close()
            raise WatchLocked(self.busy)
        return self

    def __exit__(self, *exc: object) -> None:
        self._held.close()
