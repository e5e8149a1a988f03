"""Weight files: pickles opened safely, safetensors written atomically and read lazily, and the
cache of safetensors copies made from pickles.

A `pytorch_model.bin` is opened only with `torch.load(weights_only=True, mmap=True)` and
converted once to safetensors in a cache folder ($AUDIOSTORY_CACHE, else
$XDG_CACHE_HOME/audiostory); later runs read the copy lazily. Tensors sharing memory are stored
once and listed as aliases in the file's metadata. One copy is kept per checkpoint on this
machine: a copy of a pickle since replaced, moved or deleted is removed when the next is made.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from .errors import CacheUnwritable, CheckpointDamaged, WeightsNotFound
from .files import reading
from .keys import Shape

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

CACHE_ENV = "AUDIOSTORY_CACHE"
ALIAS_METADATA_KEY = "audiostory.aliases"


def default_cache_dir() -> Path:
    """Where converted weights live: $AUDIOSTORY_CACHE, else $XDG_CACHE_HOME/audiostory."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "audiostory"


# --------------------------------------------------------------------------------------------
# Reading weight files
# --------------------------------------------------------------------------------------------
def load_pickle(path: str | os.PathLike) -> dict[str, "torch.Tensor"]:
    """Open a `pytorch_model.bin` safely (no code execution) and memory-mapped.

    Raises:
        WeightsNotFound: the file is missing or this user may not read it.
        CheckpointDamaged: the file is cut short or corrupt, holds no tensor dict, or holds
            Python objects (which only unsafe unpickling would build).
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsNotFound(f"The weights file {path} does not exist; download the checkpoint again.")
    with reading(path):
        obj = _load_weights_only(path)
    return _tensor_dict(obj, path)


def _load_weights_only(path: Path) -> Any:
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as err:
        if "mmap" not in str(err):
            raise
    # Legacy (non-zip) pickles cannot be memory-mapped; weights_only still applies.
    return torch.load(path, map_location="cpu", weights_only=True)


def _tensor_dict(obj: Any, path: Path) -> dict[str, "torch.Tensor"]:
    import torch

    for wrapper in ("state_dict", "module", "model"):
        if isinstance(obj, Mapping) and len(obj) == 1 and isinstance(obj.get(wrapper), Mapping):
            obj = obj[wrapper]
    if not isinstance(obj, Mapping):
        raise CheckpointDamaged(path, f"holds a {type(obj).__name__} where named tensors are expected")
    skipped = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if skipped:
        log.warning("Ignoring %d non-tensor entries in %s: %s", len(skipped), path, skipped[:5])
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def save_safetensors(tensors: Mapping[str, "torch.Tensor"], out_path: str | os.PathLike) -> Path:
    """Write tensors to safetensors atomically; tensors sharing memory are stored once.

    The file is written under a hidden temporary name in the destination folder, flushed to disk
    and renamed; it gets mode 0o666 less the umask, as any new file does. `audiostory_core` stands
    alone (it may not import the dubbing tool), so this is its own writer, with the dubbing tool's
    rules and temporary names (".<stem>.<pid>-<hex>.partial<suffix>": stale ones are swept alike).
    """
    from safetensors.torch import save_file

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    unique, aliases = _dedupe(tensors)
    metadata = {"format": "pt", ALIAS_METADATA_KEY: json.dumps(aliases, sort_keys=True)}
    tmp = out_path.with_name(f".{out_path.stem}.{os.getpid()}-{secrets.token_hex(3)}.partial{out_path.suffix}")
    try:   # created inside: an interrupt raised as the create returns still removes it
        os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))   # not mkstemp: that makes it 0600
        mode = tmp.stat().st_mode & 0o777   # 0o666 less the umask
        save_file(unique, str(tmp), metadata=metadata)
        os.chmod(tmp, mode)   # the safetensors writer recreates the file private
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)
    return out_path


def _dedupe(tensors: Mapping[str, "torch.Tensor"]) -> tuple[dict[str, "torch.Tensor"], dict[str, str]]:
    unique: dict[str, "torch.Tensor"] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple, str] = {}
    storages: set[int] = set()
    for key in sorted(tensors):
        t = tensors[key]
        ident = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.stride(), t.dtype)
        if t.numel() and ident in seen:
            aliases[key] = seen[ident]
            continue
        ptr = t.untyped_storage().data_ptr()
        # A view into a storage another tensor already uses must be written as its own copy.
        unique[key] = t.contiguous().clone() if (t.numel() and ptr in storages) else t.contiguous()
        seen[ident] = key
        storages.add(ptr)
    return unique, aliases


def converted_path(bin_path: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Path:
    """Cache location of a pickle's safetensors copy: named after where the pickle is (one copy
    per checkpoint on this machine) and keyed by its size and mtime (a replaced file is converted
    again)."""
    bin_path = Path(bin_path).resolve()
    st = bin_path.stat()
    where = hashlib.sha256(str(bin_path).encode()).hexdigest()[:8]
    version = hashlib.sha256(f"{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:8]
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return root / "converted" / f"{bin_path.parent.name}-{bin_path.stem}-{where}-{version}.safetensors"


def as_safetensors(weights: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Path:
    """The safetensors file to read for `weights`: itself, or its (once converted) cached copy."""
    weights = Path(weights)
    if weights.suffix == ".safetensors":
        if not weights.is_file():
            raise WeightsNotFound(f"The weights file {weights} does not exist; download the checkpoint again.")
        return weights
    out = converted_path(weights, cache_dir)
    if out.is_file() and not _whole(out):
        # Only a copy: the pickle it came from is still here, so it is made again.
        log.warning("The converted copy %s is damaged; converting %s again.", out, weights)
        out.unlink(missing_ok=True)
    if not out.is_file():
        log.info("Converting %s to safetensors at %s (one time).", weights, out)
        tensors = load_pickle(weights)
        source = out.with_suffix(SOURCE_SUFFIX)
        try:
            # What the copy is made from is said before the copy appears: another run pruning
            # this folder in between would take a copy that says nothing for one nobody reads.
            out.parent.mkdir(parents=True, exist_ok=True)
            source.write_text(str(weights.resolve()), encoding="utf-8")
            save_safetensors(tensors, out)
        except OSError as err:
            with contextlib.suppress(OSError):
                source.unlink(missing_ok=True)
            raise CacheUnwritable(out.parent, err) from None
        prune_conversions(out)
    return out


def _whole(copy: Path) -> bool:
    """Whether a safetensors file's header reads and covers the file (no tensor data is read)."""
    try:
        read_shapes(copy)
    except CheckpointDamaged:
        return False
    return True


SOURCE_SUFFIX = ".source"   # beside each converted copy: the pickle it was made from
# A conversion writes without pause, so a hidden file of the folder (our partial copy, the
# safetensors writer's own temporary) untouched this long is left by a run that was killed.
STALE_WRITE_S = 3600.0


def remove_stale_leftovers(folder: Path, stale_s: float = STALE_WRITE_S) -> list[tuple[Path, int]]:
    """Remove what killed conversions left in `folder`, untouched for `stale_s`: hidden files (each
    the size of the weights) and `.source` notes whose copy never appeared (a note is written
    before its copy, so a young one may belong to a conversion under way). Returns them with sizes."""
    import time

    removed = []
    for path in folder.iterdir() if folder.is_dir() else ():
        try:
            stat = path.stat()
            stale = time.time() - stat.st_mtime >= stale_s
            orphan_note = path.suffix == SOURCE_SUFFIX and not path.with_suffix(".safetensors").exists()
            if path.is_file() and stale and (path.name.startswith(".") or orphan_note):
                path.unlink()
                removed.append((path, stat.st_size))
        except OSError:
            continue
    return removed


def prune_conversions(keep: Path) -> list[Path]:
    """Remove the converted copies beside `keep` that nothing will read again, and return them:
    earlier copies of the same pickle (replaced or touched since), copies whose pickle is gone
    (a checkpoint moved or deleted), and copies that do not say what they were made from.
    Copies of other checkpoints still on disk stay. Each copy is the size of the weights."""
    same_file = keep.name.rsplit("-", 1)[0] + "-"
    removed = []
    for copy in keep.parent.glob("*.safetensors"):
        if copy == keep or copy.name.startswith("."):   # "." names: a copy still being written
            continue
        source = copy.with_suffix(SOURCE_SUFFIX)
        try:
            made_from = source.read_text(encoding="utf-8").strip()
        except OSError:
            made_from = ""
        if copy.name.startswith(same_file) or not made_from or not Path(made_from).is_file():
            for path in (copy, source):
                try:
                    path.unlink(missing_ok=True)
                except OSError as err:
                    log.warning("Could not remove the converted copy %s (%s).", path, err)
            removed.append(copy)
    removed += [path for path, _ in remove_stale_leftovers(keep.parent)]
    return removed


def remove_converted_copies(older_than_s: float | None = None,
                            cache_dir: str | os.PathLike | None = None) -> list[tuple[Path, int]]:
    """Remove the converted copies written more than `older_than_s` seconds ago (all when None);
    returns each removed copy with its size. The next load converts its pickle again."""
    import time

    removed = []
    for copy in converted_copies(cache_dir):
        try:
            stat = copy.stat()
            if older_than_s is not None and time.time() - stat.st_mtime < older_than_s:
                continue
            copy.unlink()
            copy.with_suffix(SOURCE_SUFFIX).unlink(missing_ok=True)
        except OSError:
            continue
        removed.append((copy, stat.st_size))
    folder = (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / "converted"
    return removed + remove_stale_leftovers(folder)


def converted_copies(cache_dir: str | os.PathLike | None = None) -> list[Path]:
    """The converted copies of pickled weights kept in the cache (`as_safetensors`)."""
    folder = (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / "converted"
    return sorted(p for p in folder.glob("*.safetensors") if not p.name.startswith(".")) if folder.is_dir() else []


def read_shapes(st_path: str | os.PathLike) -> dict[str, Shape]:
    """Every key's shape (aliases included) from the safetensors header, reading no tensor data.

    Raises:
        CheckpointDamaged: the file is cut short or corrupt.
        WeightsNotFound: the file is missing or this user may not read it.
    """
    from safetensors import safe_open

    with reading(st_path), safe_open(str(st_path), framework="pt") as f:
        shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        aliases = _aliases(f.metadata())
    shapes.update({alias: shapes[target] for alias, target in aliases.items() if target in shapes})
    return shapes


def read_tensors(
    st_path: str | os.PathLike, keys: Iterable[str] | None = None, dtype: "torch.dtype | None" = None
) -> dict[str, "torch.Tensor"]:
    """Load tensors (aliases resolved), optionally only `keys`, floating ones cast to `dtype`.

    Raises:
        CheckpointDamaged: the file is cut short or corrupt.
        WeightsNotFound: the file is missing or this user may not read it.
    """
    from safetensors import safe_open

    out: dict[str, "torch.Tensor"] = {}
    with reading(st_path):   # the header is checked against the file's size when it is opened
        handle = safe_open(str(st_path), framework="pt")
    with handle as f:
        aliases = _aliases(f.metadata())
        wanted = list(keys) if keys is not None else list(f.keys()) + list(aliases)
        for key in wanted:
            t = f.get_tensor(aliases.get(key, key))
            out[key] = t.to(dtype) if dtype is not None and t.is_floating_point() else t
    return out


def _aliases(metadata: Mapping[str, str] | None) -> dict[str, str]:
    return json.loads((metadata or {}).get(ALIAS_METADATA_KEY, "{}"))
