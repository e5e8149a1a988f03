"""The one way dubber writes a file, and the one way a job publishes its files.

Every file is first written under a hidden temporary name in its destination folder
(`.<stem>.<pid>-<hex>.partial<suffix>`) and renamed onto its real name only when complete, so no
reader ever sees half a file. New files get mode 0o666 less the umask, like any other new file
(`tempfile.mkstemp` would make them 0600, unreadable to the rest of a team).

A job's outputs (video, stems, timelines, manifest) go through one `OutputTransaction`: all are
staged, then a commit record listing every rename is written, the renames run (manifest last),
and the record is removed. A job killed half-way through its renames leaves the record behind;
the next run of the same job completes it (`complete_pending`). Temporaries of processes that
no longer exist are swept by `sweep_stale`.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import secrets
from pathlib import Path
from typing import Iterator

from .errors import OutputError

log = logging.getLogger(__name__)

# ".<stem>.<pid>-<6 hex>.partial<suffix>": the pid says whose it is, so stale ones can be swept.
TEMP_NAME_PATTERN = r"\..+\.(\d+)-[0-9a-f]{6}\.partial(\.[^.]*)?"
_TEMP_NAME = re.compile(rf"^{TEMP_NAME_PATTERN}$")
TEMP_NAME_EXTRA_BYTES = 24   # what a temporary name adds to a file name, at most
FULL_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)   # a write that failed for want of room


def check_output_folder(path: str | os.PathLike[str]) -> Path:
    """The resolved output path, after checking its folder exists and can be written.

    Raises:
        OutputError: the folder is missing or read-only.
    """
    target = Path(path).expanduser().resolve()
    folder = target.parent
    if not folder.is_dir():
        raise OutputError(f"The output folder {folder} does not exist; create it or choose another output path.")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"The output folder {folder} is not writable; choose another output path.")
    return target


def public_path(path: Path) -> Path:
    """The file a temporary stands for (the path itself when it is no temporary of ours)."""
    match = _TEMP_NAME.match(path.name)
    if match is None:
        return path
    stem = path.name[1:match.start(1) - 1]
    return path.with_name(stem + (match.group(2) or ""))


# A transaction's working file (the dub's sound before it is muxed) is named after the output with
# this mark, so an error while writing it does not name a file the user never asked for.
WORKING_MARK = ".working"


def write_error(err: BaseException, target: Path) -> OutputError:
    """One sentence for a failed write: a full disk is named as such."""
    target = public_path(target)
    code = getattr(err, "errno", None)
    reason = getattr(err, "strerror", None) or str(err) or type(err).__name__
    what = target.name
    if target.stem.endswith(WORKING_MARK):
        what = f"a working file for {target.stem.removesuffix(WORKING_MARK)}"
    if code in FULL_DISK_ERRNOS:
        return OutputError(f"The disk holding {target.parent} is full ({reason}) while writing {what}; "
                           "free some space or choose another output folder.")
    return OutputError(f"Cannot write {what} in {target.parent} ({reason}); "
                       "check the folder is writable and has free space.")


def temp_path_for(target: Path) -> Path:
    """A fresh temporary name next to `target` (same suffix, hidden, tagged with our pid)."""
    return target.with_name(f".{target.stem}.{os.getpid()}-{secrets.token_hex(3)}.partial{target.suffix}")


def _create_temp(target: Path, temp: Path) -> Path:
    """Create the empty temporary file `temp` (named by `temp_path_for(target)`) and return it.

    Callers name the temporary and note it for removal before creating it: an interrupt is raised
    as the create returns, and a file created but not yet noted would be left behind.
    O_EXCL: never reuse someone else's file; 0o666 lets the umask decide the mode."""
    try:
        os.close(os.open(temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    except OSError as err:
        raise write_error(err, target) from err
    return temp


def _is_own_temp(path: Path) -> bool:
    """A temporary this process staged (written in place: it is already a temporary)."""
    match = _TEMP_NAME.match(path.name)
    return match is not None and int(match.group(1)) == os.getpid() and path.is_file()


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to `path` and move it onto `path` when the block succeeds; on
    any error the temporary file is removed. A path a transaction staged is written in place.

    Raises:
        OutputError: the destination folder is missing or read-only, or the disk is full.
    """
    given = Path(path).expanduser()
    if _is_own_temp(given):
        try:
            yield given
        except OSError as err:
            raise write_error(err, given) from err
        return
    target = check_output_folder(given)
    temp = temp_path_for(target)
    try:
        _create_temp(target, temp)
        yield temp
        os.replace(temp, target)
    except OSError as err:
        raise write_error(err, target) from err
    finally:
        temp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write `data` to `path` atomically, flushed to disk before the rename. Returns the resolved path."""
    with atomic_output(path) as temp:
        with open(temp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    return Path(path).expanduser().resolve()


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 text to `path` atomically, line ends as given. Returns the resolved path."""
    return atomic_write_bytes(path, text.encode("utf-8"))


# ----------------------------------------------------------------------------- one job's outputs

@contextlib.contextmanager
def exclusive_lock(path: Path, remove: bool = False) -> Iterator[bool]:
    """Hold an exclusive lock on `path` (created if missing) for the block; yields False at once,
    without waiting, when another process holds it. The OS releases it even when the holder is
    killed. `remove`: the holder deletes the file before letting go (no lock file is left)."""
    handle = open(path, "a+")   # a missing folder raises here: not a busy lock
    try:
        try:
            import fcntl

            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:   # Windows: msvcrt locks a byte range instead
            import msvcrt

            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
    except OSError:
        handle.close()
        yield False
        return
    try:
        yield True
    finally:
        if remove:
            with contextlib.suppress(OSError):
                os.unlink(path)
        handle.close()


def output_lock_path(folder: Path, manifest: Path) -> Path:
    """The lock (in `folder`) a run holds on its outputs, named from their manifest's full path,
    from its first check to its commit, so two runs never publish over one another."""
    digest = hashlib.sha256(os.fsencode(Path(manifest).resolve())).hexdigest()[:32]
    return Path(folder) / f"{digest}.lock"


def commit_record_path(manifest: Path) -> Path:
    """Where a job's commit record lives: hidden, next to its manifest."""
    return manifest.with_name(f".{manifest.name}.commit")


class OutputTransaction:
    """Every file of one job, staged under temporary names and published together, `last` last.

    Use as a context manager: leaving it without `commit()` (an error, an interrupt) removes
    every staged file and every folder it created.
    """

    def __init__(self, record: Path):
        self.record = record
        self._moves: list[tuple[Path, Path]] = []
        self._scratch: list[Path] = []
        self._made_dirs: list[Path] = []
        self._last: Path | None = None
        self._publishing = False
        self.committed = False

    def __enter__(self) -> "OutputTransaction":
        return self

    def __exit__(self, *exc: object) -> None:
        if self._publishing and not self.committed:
            _roll_forward(self.record)   # interrupted half-way through the renames: finish them
        elif not self.committed:
            self.abort()
        for scratch in self._scratch:
            scratch.unlink(missing_ok=True)

    def make_folder(self, folder: Path) -> None:
        """Create `folder` (and missing parents), removed again if the job does not commit."""
        missing = [p for p in (folder, *folder.parents) if not p.exists()]
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise OutputError(f"Cannot create the folder {folder} ({err.strerror}); choose a writable location.") from err
        self._made_dirs += reversed(missing)   # in the order they were made

    def stage(self, target: Path, *, last: bool = False) -> Path:
        """A temporary file (created, empty) that becomes `target` at commit."""
        target = target.expanduser().absolute()
        if target in self.targets():
            raise ValueError(f"{target} is staged twice")
        temp = temp_path_for(check_output_folder(target))
        self._moves.append((temp, target))   # before it exists (see _create_temp)
        _create_temp(target, temp)
        if last:
            self._last = target
        return temp

    def staged(self, target: Path) -> Path | None:
        """The temporary already staged for `target`, if any."""
        target = target.expanduser().absolute()
        return next((temp for temp, t in self._moves if t == target), None)

    def scratch(self, beside: Path, suffix: str) -> Path:
        """A temporary working file next to `beside`, removed when the transaction ends."""
        working = check_output_folder(beside.with_name(beside.stem + WORKING_MARK + suffix))
        temp = temp_path_for(working)
        self._scratch.append(temp)   # before it exists (see _create_temp)
        return _create_temp(working, temp)

    def targets(self) -> list[Path]:
        return [t for _, t in self._moves]

    def _ordered(self) -> list[tuple[Path, Path]]:
        return sorted(self._moves, key=lambda move: move[1] == self._last)   # stable: `last` to the end

    def commit(self) -> None:
        """Publish every staged file: write the record, rename each (`last` last), drop the record."""
        moves = self._ordered()
        record = {"moves": [[str(temp), str(target)] for temp, target in moves]}
        _write_record(self.record, record)
        self._publishing = True
        for temp, target in moves:
            try:
                os.replace(temp, target)
            except OSError as err:
                raise write_error(err, target) from err
        self.record.unlink(missing_ok=True)
        self.committed = True

    def abort(self) -> None:
        for temp, _ in self._moves:
            temp.unlink(missing_ok=True)
        for folder in reversed(self._made_dirs):
            with contextlib.suppress(OSError):
                folder.rmdir()   # only when still empty


def _write_record(path: Path, record: dict) -> None:
    with atomic_output(path) as temp:
        temp.write_text(json.dumps(record), encoding="utf-8")
        with open(temp, "rb+") as handle:
            os.fsync(handle.fileno())


def complete_pending(manifest: Path) -> list[Path]:
    """Finish a job whose commit was cut short: rename what is still staged, drop the record.

    Returns:
        Every file the unfinished job was publishing (the next run may replace them without --force).
    """
    return _roll_forward(commit_record_path(manifest))


def _roll_forward(record_path: Path) -> list[Path]:
    try:
        moves = json.loads(record_path.read_text(encoding="utf-8"))["moves"]
    except FileNotFoundError:
        return []
    except (OSError, ValueError, KeyError, TypeError):
        log.warning("ignoring an unreadable commit record %s", record_path)
        return []
    targets: list[Path] = []
    complete = True
    for temp_name, target_name in moves:
        temp, target = Path(temp_name), Path(target_name)
        targets.append(target)
        if not temp.exists():
            continue
        try:
            os.replace(temp, target)
            log.info("completed %s, left unfinished by an interrupted run", target)
        except OSError as err:   # the record stays: the next run of this job tries again
            complete = False
            log.warning("could not complete %s (%s)", target, err.strerror)
    if complete:
        record_path.unlink(missing_ok=True)
    return targets


def pid_alive(pid: int) -> bool:
    """Whether process `pid` runs on this machine (a process of another user counts). A process
    killed but not yet reaped by its parent (a zombie: a shell's `kill -9` then an immediate rerun)
    still answers a signal, yet will never write again: it counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return not _is_zombie(pid)   # someone else's process
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    """True where /proc says `pid` has exited and waits to be reaped (Linux; elsewhere False)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # "pid (command name) state ...": the name may hold spaces and parentheses, the state follows the last ")"
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def sweep_stale(folder: Path) -> list[Path]:
    """Remove temporaries in `folder` left by processes that no longer run. Returns what went."""
    removed: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP_NAME.match(entry.name)
        if match is None or not entry.is_file() or pid_alive(int(match.group(1))):
            continue
        with contextlib.suppress(OSError):
            entry.unlink()
            removed.append(entry)
            log.info("removed %s, left by an interrupted run", entry)
    return removed
