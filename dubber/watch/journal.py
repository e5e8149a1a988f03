"""Building blocks of the watch folder (dubber.watch.watcher): file names, the journal, the stability
check and the folder lock. Nothing here knows about dubbing."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

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


def unique_path(folder: Path, name: str) -> Path:
    """`folder/name`, or `stem-2.ext`, `stem-3.ext`... when taken."""
    candidate = folder / name
    stem, suffix = Path(name).stem, Path(name).suffix
    n = 2
    while candidate.exists():
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
            if event == "done":
                self.done_by_sha.setdefault(record.get("sha256"), record)
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

    def is_stable(self, name: str, size: int, mtime_ns: int, now: float) -> bool:
        need = self.empty_timeout_s if size == 0 else self.stable_s
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



class FolderLock:
    """Only one watcher per folder: an exclusive lock on logs/watch.lock, released by the OS
    even when the process is killed."""

    def __init__(self, path: Path):
        self.path = path
        self._held = contextlib.ExitStack()

    def __enter__(self) -> "FolderLock":
        if not self._held.enter_context(exclusive_lock(self.path)):
            self._held.close()
            raise WatchLocked(f"Another watcher is already running on {self.path.parent.parent}; stop it first.")
        return self

    def __exit__(self, *exc: object) -> None:
        self._held.close()
