"""Where the watch folder's files live: ROOT's folders and the output folder, set up and checked
at startup (`prepare_root`), and whether a job failed because of where its output goes (the
output folder gone, read-only or full) rather than because of its file (`output_trouble`).

Such a file is no bad file: it goes back to the inbox and waits for the folder
(dubber.watch.watcher), where a bad file goes to failed/. A worker's failure comes back as its
one sentence, not as an errno, so the folder itself is tried first (a file made and written
there), and the failure's sentence is read second."""
from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from .journal import FOLDERS
from ..atomic import FULL_DISK_ERRNOS
from ..errors import InputError, OutputError

_READ_ONLY = {errno.EROFS, errno.EACCES, errno.EPERM}
# How a write error's sentence names the same conditions (dubber.atomic.write_error, ffmpeg's own).
_FULL_WORDS = ("is full", "no space left", "disk quota exceeded", "file too large")
_READ_ONLY_WORDS = ("read-only file system", "permission denied", "not writable")
PROBE_BYTES = 64 << 10   # written by the check: a disk with only a few blocks left counts as full
# ROOT's folders whose files the watcher takes or moves: outputs written there would be taken
# for new drops (inbox/), moved with the originals, or dubbed again.
WORKING_FOLDERS = ("inbox", "processing", "done", "failed")


def prepare_root(root: Path, out_dir: str | None = None) -> tuple[Path, str | None, bool]:
    """Create ROOT's folders and the output folder; refuse a ROOT or output that is a file, and a
    ROOT whose parent folder does not exist (a mistyped path is not made into a folder tree).
    Returns both as absolute paths, and whether ROOT was set up as a watch folder just now."""
    from ..options import check_writable_folder

    root = Path(root).expanduser().absolute()
    if root.exists() and not root.is_dir():
        raise InputError(f"{root} is a file; give a folder to watch.")
    if not root.exists() and not root.parent.exists():
        raise InputError(f"Cannot set up a watch folder at {root}: the folder {root.parent} does not exist; "
                         "check the path for a typo, or create that folder first.")
    if not root.exists() and not root.parent.is_dir():
        raise InputError(f"Cannot set up a watch folder at {root}: {root.parent} is a file; give a path in a folder.")
    if root.parent.name != "" and all((root.parent / name).is_dir() for name in FOLDERS) and root.name in FOLDERS:
        # `dub watch ROOT/inbox`, a slip: a second watch folder would be set up inside the first
        raise InputError(f"{root} is the {root.name} folder of the watch folder {root.parent}; "
                         f"watch {root.parent} instead.")
    out = Path(out_dir).expanduser().absolute() if out_dir is not None else None
    if out is not None and out.exists() and not out.is_dir():
        raise OutputError(f"The watch output {out} is a file; give a folder with -o.")
    if out is not None:
        _refuse_output_in_working_folders(root, out)
        check_writable_folder(out, what="watch output", new_parents=True)
        out.mkdir(parents=True, exist_ok=True)
    new = not (root / "inbox").is_dir()
    try:
        root.mkdir(exist_ok=True)
        for name in FOLDERS:
            (root / name).mkdir(exist_ok=True)
    except OSError as err:   # a read-only share, a folder of another user
        raise OutputError(f"Cannot set up the watch folder {root}: {err.filename} cannot be made "
                          f"({(err.strerror or str(err)).lower()}); give a folder this user can write.") from None
    return root, None if out is None else str(out), new


def _refuse_output_in_working_folders(root: Path, out: Path) -> None:
    real_out = out.resolve()
    for name in WORKING_FOLDERS:
        folder = (root / name).resolve()
        if real_out == folder or folder in real_out.parents:
            raise OutputError(f"The watch output {out} is inside {root / name}, whose files the watcher takes "
                              f"and moves; give -o a folder outside {name}/, or leave it out to use {root / 'output'}.")


def output_trouble(out: Path, err: BaseException) -> str | None:
    """One sentence naming the output folder when its storage is why `err` happened, else None."""
    kind = _probe(out) or _said_of(out, err)
    if kind is None:
        return None
    fix = {"gone": "is gone (an unmounted share, or deleted); mount or create it again",
           "read-only": "is read-only; make it writable again or restart with another -o",
           "full": "is full; free some space there or restart with another -o"}[kind]
    return f"The watch output folder {out} {fix}."


def _kind_of(code: int | None) -> str | None:
    return "full" if code in FULL_DISK_ERRNOS else "read-only" if code in _READ_ONLY else None


def _probe(out: Path) -> str | None:
    """What keeps a file from being written in `out` now, or None when one can be."""
    if not out.is_dir():
        return "gone"
    try:
        fd, temp = tempfile.mkstemp(dir=out, prefix=".dub-write-check-")
    except FileNotFoundError:
        return "gone"
    except OSError as err:
        return _kind_of(err.errno) or "read-only"
    try:
        os.write(fd, bytes(PROBE_BYTES))
        os.fsync(fd)
    except OSError as err:
        return _kind_of(err.errno)
    finally:
        os.close(fd)
        os.unlink(temp)
    return None


def _said_of(out: Path, err: BaseException) -> str | None:
    """The condition `err` reports of a file in `out` (a worker's sentence names the staging
    folder inside it), or None when it names no such condition there."""
    filename = getattr(err, "filename", None)
    text = f"{err} {filename or ''}"
    if str(out) not in text and str(out.resolve()) not in text:   # writers name paths resolved
        return None
    if isinstance(err, OSError) and (kind := _kind_of(err.errno)):
        return kind
    lower = text.lower()
    if any(words in lower for words in _FULL_WORDS):
        return "full"
    if any(words in lower for words in _READ_ONLY_WORDS):
        return "read-only"
    return None
