"""Helpers of the watch-folder tests: stand-in processors (watcher subprocesses import them as
tests.watch_helpers:copy_processor and tests.watch_helpers:slow_processor), distinct valid MP4s
made from one clip, atomic and slow drops into an inbox, the journal, and polling."""
from __future__ import annotations

import json
import os
import struct
import time
from pathlib import Path

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
