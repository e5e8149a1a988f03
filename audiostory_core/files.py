"""Reading a checkpoint's files so that a damaged or unreadable one is named in one sentence.

The libraries below report a bad file in their own words, and some not as a bad file at all:
safetensors says "No such file" for a file this user may not open, torch's zip reader raises
RuntimeError, the tokenizers library a bare Exception. `reading` and `read_error` turn each of
these into `CheckpointDamaged` (the content is wrong) or `WeightsNotFound` (the file is absent,
reason INCOMPLETE, or this user may not read it, reason UNREADABLE), naming the file and the fix.
Nothing here imports torch, so `hub` may look inside the weights before any loading
(`stored_names`).
"""
from __future__ import annotations

import contextlib
import json
import os
import pickle
import pickletools
import re
import struct
import zipfile
from pathlib import Path
from typing import Any, Iterator

from .errors import INCOMPLETE, UNREADABLE, AudioStoryError, CheckpointDamaged, WeightsNotFound

REDOWNLOAD = "download it again"
MAX_WHY_CHARS = 80                        # a library's own words kept in a sentence, at most
MAX_SAFETENSORS_HEADER_BYTES = 100 << 20  # safetensors' own limit on the JSON header
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
# torch's weights-only unpickler names each class or function a pickle would have to run: "Unsupported
# global" for one it does not know, "unsupported GLOBAL ... is blocked" for one it refuses outright
# (os.system, the usual payload of a booby-trapped checkpoint).
_UNSAFE_PICKLE_MARKER = "unsupported global"


@contextlib.contextmanager
def reading(path: str | os.PathLike) -> Iterator[None]:
    """Turn a failure to read the file `path` inside the block into one sentence naming it.

    Raises:
        CheckpointDamaged: the file is cut short, corrupt or holds Python objects.
        WeightsNotFound: the file is absent (INCOMPLETE) or this user may not read it (UNREADABLE).
    """
    try:
        yield
    except AudioStoryError:   # already one sentence (InvalidRequest is also a ValueError)
        raise
    except _read_errors() as err:
        raise read_error(path, err) from err


def _read_errors() -> tuple[type[BaseException], ...]:
    # RuntimeError: torch's zip reader; EOFError and UnpicklingError: a cut-short or unsafe pickle.
    errors: tuple[type[BaseException], ...] = (OSError, ValueError, RuntimeError, EOFError, pickle.UnpicklingError)
    try:
        from safetensors import SafetensorError
    except ImportError:
        return errors
    return errors + (SafetensorError,)


def read_error(path: str | os.PathLike, err: BaseException) -> AudioStoryError:
    """The one-sentence error for `err`, raised while reading the file `path`."""
    path = Path(path)
    # What opening the file says is the truth: safetensors reports a permission error as "No such file".
    err = _open_error(path) or err
    if isinstance(err, FileNotFoundError):
        return WeightsNotFound(f"The file {path} does not exist; download the checkpoint again.", reason=INCOMPLETE)
    if isinstance(err, OSError):
        return unreadable(path, err)
    if isinstance(err, json.JSONDecodeError):
        return CheckpointDamaged(path, f"is not valid JSON (line {err.lineno})")
    if isinstance(err, pickle.UnpicklingError) and _UNSAFE_PICKLE_MARKER in str(err).lower():
        return CheckpointDamaged(path, "is not a plain weights file (it holds Python objects), so it was not loaded",
                                 "download it again from a source you trust")
    return CheckpointDamaged(path, f"is damaged or incomplete ({short_reason(err)})")


def unreadable(path: str | os.PathLike, err: OSError | None = None) -> WeightsNotFound:
    """WeightsNotFound (UNREADABLE) naming what this user may not read on the way to `path`: the
    first folder that may not be entered, else `path` itself. `err` None: permission denied."""
    path = Path(os.path.abspath(path))
    culprit = blocked_part(path) or path
    kind = "folder" if os.path.isdir(culprit) else "file"
    if err is None or isinstance(err, PermissionError):
        why, fix = "permission denied", "make it readable by this user"
    else:
        why, fix = (err.strerror or type(err).__name__).lower(), "check the disk it is on"
    detail = f"The {kind} {culprit} cannot be read ({why})"
    return WeightsNotFound(f"{detail}; {fix}.", reason=UNREADABLE, detail=detail)


def blocked_part(path: str | os.PathLike) -> Path | None:
    """The first existing folder on the way to `path` that this user may not enter, else `path`
    itself when it exists and may not be read (a folder: listed and entered); None otherwise."""
    path = Path(os.path.abspath(path))
    for folder in reversed(path.parents):
        if not os.path.exists(folder):
            return None
        if not os.access(folder, os.X_OK):
            return folder
    if not os.path.exists(path):
        return None
    wanted = os.R_OK | (os.X_OK if os.path.isdir(path) else 0)
    return None if os.access(path, wanted) else path


def _open_error(path: Path) -> OSError | None:
    try:
        with open(path, "rb"):
            return None
    except OSError as err:
        return err


def short_reason(err: BaseException) -> str:
    """A short reason in the library's words: the last clause of its first sentence."""
    if isinstance(err, EOFError):
        return "it ends early"
    if isinstance(err, UnicodeDecodeError):
        return "it is not UTF-8 text"
    if isinstance(err, pickle.UnpicklingError):   # torch's message is advice, not a reason
        return "its pickle data cannot be parsed"
    if isinstance(err, KeyError) and err.args:
        return f"it has no {err.args[0]} entry"
    first = _ANSI_ESCAPE.sub("", str(err)).strip().split("\n")[0].split(". ")[0]
    clause = first.rsplit(": ", 1)[-1].strip(" .")
    return clause[:MAX_WHY_CHARS] or type(err).__name__


# --------------------------------------------------------------------------------------------
# Readers
# --------------------------------------------------------------------------------------------
def read_json(path: str | os.PathLike) -> dict[str, Any]:
    """A JSON file holding an object, parsed.

    Raises:
        CheckpointDamaged: not valid JSON, or not an object.
        WeightsNotFound: absent or unreadable (see `reading`).
    """
    with reading(path):
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise CheckpointDamaged(path, f"holds a JSON {type(data).__name__} where an object is expected")
    return data


def read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """A YAML file (`config.yaml`) parsed as plain data: Hydra `_target_` entries stay strings,
    nothing runs; anything but a mapping reads as an empty one.

    Raises:
        CheckpointDamaged: not valid YAML.
        WeightsNotFound: absent or unreadable (see `reading`).
    """
    import yaml

    with reading(path):
        text = Path(path).read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise CheckpointDamaged(path, f"is not valid YAML{where}") from err
    return data if isinstance(data, dict) else {}


def stored_names(path: str | os.PathLike) -> frozenset[str] | None:
    """The tensor names a weights file stores, read without loading a tensor: the header of a
    .safetensors file, or every string in the pickle of a zip `.bin` (a superset of its keys).
    None when the file cannot tell: a legacy pickle, or a file that cannot be read (loading it
    says why)."""
    try:
        if Path(path).suffix == ".safetensors":
            return frozenset(_safetensors_header(Path(path))) - {"__metadata__"}
        return _pickle_strings(Path(path))
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, struct.error):
        return None


def check_complete(path: str | os.PathLike) -> None:
    """Refuse a weights file that is cut short, from what its own index says, without reading a
    tensor: a .safetensors file's header and the end of its last tensor, a zip `.bin`'s central
    directory (at the end of the file) and where its last entry ends. A legacy pickle says
    nothing of its length and passes; loading it tells.

    Raises:
        CheckpointDamaged: the file is shorter than its index says, or has no index.
        WeightsNotFound: absent or unreadable (see `reading`).
    """
    path = Path(path)
    with reading(path):
        size = path.stat().st_size
        with open(path, "rb") as handle:
            start = handle.read(8)
        if len(start) < 8:
            raise CheckpointDamaged(path, f"is damaged or incomplete (it is {size} bytes long)")
        if path.suffix == ".safetensors":
            try:
                header = _safetensors_header(path)
                end = 8 + struct.unpack("<Q", start)[0] + max(
                    (int(entry["data_offsets"][1]) for name, entry in header.items() if name != "__metadata__"),
                    default=0)
            except (ValueError, AttributeError, KeyError, TypeError, IndexError) as err:   # not a header of tensors
                raise CheckpointDamaged(path, "is damaged or incomplete (its header is cut short or corrupt)") from err
            if end > size:
                raise CheckpointDamaged(path, f"is damaged or incomplete (it ends at byte {size}, its tensors at {end})")
            return
        if not start.startswith(b"PK\x03\x04"):
            return   # a legacy pickle: loading it tells
        try:
            with zipfile.ZipFile(path) as archive:
                last = max(archive.infolist(), key=lambda info: info.header_offset, default=None)
        except zipfile.BadZipFile as err:
            raise CheckpointDamaged(path, "is damaged or incomplete (the index at the end of the zip is "
                                          "missing: the file was cut short)") from err
        if last is not None and last.header_offset + last.compress_size > size:
            raise CheckpointDamaged(path, f"is damaged or incomplete (it ends at byte {size}, inside {last.filename})")


def _safetensors_header(path: Path) -> dict[str, Any]:
    with open(path, "rb") as handle:
        (size,) = struct.unpack("<Q", handle.read(8))
        if size > MAX_SAFETENSORS_HEADER_BYTES:
            raise ValueError(f"header of {size} bytes")
        return json.loads(handle.read(size))


def _pickle_strings(path: Path) -> frozenset[str] | None:
    # torch.save's zip layout: <name>/data.pkl holds the dict; the tensors' bytes are separate entries.
    with zipfile.ZipFile(path) as archive:
        name = next((n for n in archive.namelist() if n == "data.pkl" or n.endswith("/data.pkl")), None)
        if name is None:
            return None
        data = archive.read(name)
    return frozenset(arg for _, arg, _ in pickletools.genops(data) if isinstance(arg, str))
