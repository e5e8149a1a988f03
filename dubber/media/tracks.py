"""Film-length audio tracks kept on disk, read and written a block at a time.

A two-hour soundtrack is 2.8 GB per stereo float32 track; the renderer, the mix and the exports
each handle several. They live as raw files in the job's work folder and are read and written
with explicit positioned reads and writes (os.pread / os.pwrite): the kernel's page cache holds
what is hot, and none of it counts as the process's own memory, as a memory map's touched
pages would.

    with work_folder(cache_root / "work"):      # the job's scratch folder, removed at the end
        track = new_track("music", channels=2, num_samples=n)
        track.add(start, block)                 # block (channels, m) float32
        track.read(a, b)                        # (channels, b - a) float32

Samples are stored interleaved (frame after frame), little-endian float32. A new track is a
sparse file of zeros: silence costs no disk until something is written there.
"""
from __future__ import annotations

import contextlib
import contextvars
import os
import shutil
import socket
import tempfile
import weakref
from pathlib import Path
from typing import Iterator

import numpy as np

from ..atomic import FULL_DISK_ERRNOS, pid_alive
from ..errors import OutputError

BLOCK_SAMPLES = 1 << 18          # samples per channel in one block of a pass (about 5.5 s at 48 kHz)
_SAMPLE = np.dtype("<f4")
_WORK_PREFIX = "dub-work-"
_HOST = socket.gethostname().replace("/", "_") or "host"   # work folders are swept by the machine that made them

# The folder new tracks go to while a job runs (None: a private folder in the system temp dir).
_current_folder: contextvars.ContextVar["Path | None"] = contextvars.ContextVar("dub_work_folder", default=None)


class Track:
    """A (channels, num_samples) float32 track in a file of its own, removed with the object."""

    def __init__(self, path: Path, channels: int, num_samples: int) -> None:
        self.path = Path(path)
        self.channels = int(channels)
        self.num_samples = int(num_samples)
        flags = os.O_RDWR | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)
        self._fd = os.open(self.path, flags, 0o600)
        os.ftruncate(self._fd, self.num_samples * self.channels * _SAMPLE.itemsize)
        self._closer = weakref.finalize(self, _remove, self._fd, self.path)

    @property
    def shape(self) -> tuple[int, int]:
        return self.channels, self.num_samples

    def _check_open(self) -> None:
        if not self._closer.alive:   # its descriptor number may belong to another file by now
            raise ValueError(f"the track {self.path.name} was closed")

    def _span(self, start: int, stop: int) -> tuple[int, int]:
        start, stop = max(0, int(start)), min(self.num_samples, int(stop))
        return start, max(start, stop)

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples [start, stop) as float32 (channels, n); the range is clipped to the track."""
        self._check_open()
        start, stop = self._span(start, stop)
        frame = self.channels * _SAMPLE.itemsize
        data = _pread_all(self._fd, (stop - start) * frame, start * frame)
        frames = np.frombuffer(data, dtype=_SAMPLE).reshape(stop - start, self.channels)
        return np.array(frames.T, dtype=np.float32, order="C")   # a writable copy, channels first

    def write(self, start: int, block: np.ndarray) -> None:
        """Put `block` (channels, n) at sample `start` (the part past the end is dropped)."""
        self._check_open()
        block = np.asarray(block, dtype=np.float32)
        if start < 0:
            block, start = block[:, -start:], 0
        block = block[:, :max(0, self.num_samples - start)]
        if block.shape[-1] == 0:
            return
        data = np.ascontiguousarray(block.T, dtype=_SAMPLE).tobytes()
        view, offset = memoryview(data), start * self.channels * _SAMPLE.itemsize
        try:
            while view:
                written = os.pwrite(self._fd, view, offset)
                view, offset = view[written:], offset + written
        except OSError as err:
            if err.errno not in FULL_DISK_ERRNOS:
                raise
            # A track is a sparse file: its disk is taken as it is written, long after the job
            # started, so a full scratch disk shows here, mid-render or mid-mix.
            track = self.path.stem.rpartition("-")[0] or self.path.stem   # "music" of music-x1y2z3
            raise OutputError(f"The disk holding the work folder {self.path.parent.parent} is full "
                              f"({err.strerror or err}) while writing the {track} track; free some space there "
                              "or give another --cache-dir.") from None

    def add(self, start: int, block: np.ndarray) -> None:
        """Add `block` (channels, n) into the track from sample `start` (float32 sums, as `+=`)."""
        block = np.asarray(block, dtype=np.float32)
        lo, hi = self._span(start, start + block.shape[-1])
        if hi <= lo:
            return
        current = self.read(lo, hi)
        current += block[:, lo - start:hi - start]
        self.write(lo, current)

    def blocks(self, size: int = BLOCK_SAMPLES) -> Iterator[tuple[int, np.ndarray]]:
        """(start, samples) for consecutive blocks of `size` samples over the whole track."""
        for start in range(0, self.num_samples, size):
            yield start, self.read(start, start + size)

    def to_array(self) -> np.ndarray:
        """The whole track in memory (for short tracks: tests, previews)."""
        return self.read(0, self.num_samples)

    def close(self) -> None:
        """Remove the file now rather than when the object goes."""
        self._closer()


def _remove(fd: int, path: Path) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)
    with contextlib.suppress(OSError):
        path.unlink()


def _pread_all(fd: int, size: int, offset: int) -> bytes:
    chunks, done = [], 0
    while done < size:
        chunk = os.pread(fd, size - done, offset + done)
        if not chunk:   # past the end of a file someone shortened: what is missing reads as silence
            chunks.append(bytes(size - done))
            break
        chunks.append(chunk)
        done += len(chunk)
    return b"".join(chunks) if len(chunks) != 1 else chunks[0]


# ----------------------------------------------------------------------------- the work folder

@contextlib.contextmanager
def work_folder(parent: Path | None = None) -> Iterator[Path]:
    """A scratch folder for this job's tracks, removed (with whatever is left in it) at the end.

    It is made in `parent` (created if missing; the stage cache's `work` folder for a job, on
    a disk with room, where the system temp dir may be small or in memory), or in the system
    temp dir when `parent` is None or cannot be written. Tracks made inside the `with`
    (new_track) land there.
    """
    folder = None
    if parent is not None:
        with contextlib.suppress(OSError):
            Path(parent).mkdir(parents=True, exist_ok=True)
            folder = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}@{_HOST}-", dir=parent))
    if folder is None:
        folder = Path(tempfile.mkdtemp(prefix=f"{_WORK_PREFIX}{os.getpid()}-"))
    token = _current_folder.set(folder)
    try:
        yield folder
    finally:
        _current_folder.reset(token)
        shutil.rmtree(folder, ignore_errors=True)


def new_track(name: str, channels: int, num_samples: int) -> Track:
    """A silent track in the current work folder (or a private temp folder outside a job)."""
    folder = _current_folder.get()
    if folder is None or not folder.is_dir():
        folder = _private_folder()
    handle, path = tempfile.mkstemp(prefix=f"{name}-", suffix=".f32", dir=folder)
    os.close(handle)
    return Track(Path(path), channels, num_samples)


_private: list[tempfile.TemporaryDirectory] = []


def _private_folder() -> Path:
    """A temp folder of this process for tracks made outside a job (removed at exit)."""
    if not _private or not Path(_private[0].name).is_dir():
        _private[:] = [tempfile.TemporaryDirectory(prefix=_WORK_PREFIX)]
    return Path(_private[0].name)


def sweep_work_folders(parent: Path) -> list[Path]:
    """Remove the work folders in `parent` (as `work_folder` makes them) left by processes of
    this machine that no longer run (a cache folder shared by several machines keeps theirs)."""
    removed = []
    with contextlib.suppress(OSError):
        for entry in Path(parent).iterdir():
            pid, _, rest = entry.name.partition("@")
            if not pid.isdigit() or rest.rsplit("-", 1)[0] != _HOST or not entry.is_dir() or entry.is_symlink():
                continue
            if not pid_alive(int(pid)):
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
    return removed

