"""On-disk cache of every pipeline stage, so a rerun (or a run killed half-way) does no work twice.

Layout under the cache root (default `~/.cache/dubber`, or `$DUB_CACHE_DIR`):

    CACHEDIR.TAG               marks the folder as a cache (backup tools skip it; `dub cache` checks it)
    analysis/<key>.json        VideoAnalysis.to_dict()
    plan/<key>.json            DubPlan.to_dict()
    render/<key>/meta.json     who rendered (backend, model id, notes)
    render/<key>/cue-<index>-<cue hash>.npz   one rendered cue, stems as float32 arrays (AudioStory:
                               a GPU's work; the score engine's audio is rendered again instead)
    work/<pid>@<host>-<random>/   a running job's film-length tracks on disk (removed when it
                               ends; one a killed job left is removed by the next job on its machine)

Keys are hashes of the input's content fingerprint and of the settings that change the stage's
result, so editing one cue of a plan re-renders that cue alone. Every file is written under a
temporary name and renamed, so a crash (even `kill -9`) leaves either a whole entry or none.
`dub cache info` and `dub cache clean` report and remove these files and nothing else.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import re
import tempfile
import time
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from .atomic import TEMP_NAME_PATTERN, atomic_output
from .errors import DubError, InputError, OutputError
from .types import Cue, CueAudio, DubPlan, ProgressFn, RenderResult

log = logging.getLogger(__name__)

CACHE_VERSION = 2            # bump when a cached format or a stage's meaning changes
EDGE_BYTES = 1 << 20         # 1 MiB read from each end of the input for the fast fingerprint
_HASH_BLOCK = 1 << 22        # 4 MiB read size for the full hash
KEY_HEX = 24                 # hex digits kept from sha256 for file names
CACHE_TAG = "CACHEDIR.TAG"
# The first line is the cache directory tagging convention's fixed signature (bford.info/cachedir).
_TAG_TEXT = ("Signature: 8a477f597d28d172789f06886806bc55\n"
             "# dubber stage cache: analyses, plans and rendered cues, all of which can be recomputed.\n")
STAGE_FOLDERS = ("analysis", "plan", "render")
WORK_FOLDER = "work"         # running jobs' scratch tracks (dubber.media.tracks), not cache entries


def default_cache_dir() -> Path:
    """`$DUB_CACHE_DIR` when set, else `~/.cache/dubber` (XDG_CACHE_HOME honoured)."""
    env = os.environ.get("DUB_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "dubber"


def content_fingerprint(path: str | os.PathLike) -> str:
    """What a file holds, whatever its name, place or date: its size and its first and last MiB
    (which tell apart any two real videos). A copy of the file has the same."""
    path = Path(path)
    size = path.stat().st_size
    return _with_edges(hashlib.sha256(f"content:{size}".encode()), path, size)


def _with_edges(h: "hashlib._Hash", path: Path, size: int) -> str:
    """`h` fed the first and last EDGE_BYTES of the file (`size` bytes long), as a key."""
    with path.open("rb") as f:
        h.update(f.read(EDGE_BYTES))
        if size > EDGE_BYTES:
            f.seek(max(EDGE_BYTES, size - EDGE_BYTES))
            h.update(f.read(EDGE_BYTES))
    return h.hexdigest()[:KEY_HEX]


def fingerprint(path: str | os.PathLike, full: bool = False) -> str:
    """Content fingerprint of a file.

    Fast mode hashes the size, the modification time and the first and last MiB, which tells
    apart any two real videos without reading gigabytes. `full=True` hashes every byte (and
    ignores the modification time, so a copied file keeps its cache).
    """
    path = Path(path)
    st = path.stat()
    h = hashlib.sha256()
    if full:
        h.update(b"full")
        with path.open("rb") as f:
            for block in iter(lambda: f.read(_HASH_BLOCK), b""):
                h.update(block)
        return h.hexdigest()[:KEY_HEX]
    h.update(f"fast:{st.st_size}:{st.st_mtime_ns}".encode())
    return _with_edges(h, path, st.st_size)


def settings_key(*parts: Any) -> str:
    """Stable hash of JSON-serialisable settings (dict key order does not matter)."""
    text = json.dumps([CACHE_VERSION, *parts], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:KEY_HEX]


def render_key(analysis: Any, plan: DubPlan, *parts: Any) -> str:
    """Key of a render store: `parts` (input, backend, model...) plus everything a backend reads
    besides a cue's own fields, which name each cue's file instead. That is every plan-level field
    (style, seed, sample rate, length, instruction: a hand-edited plan changing only these must not
    reuse the old cues) and the analysis the backend is handed (shots, events, motion drive the
    score engine)."""
    plan_fields = {k: v for k, v in plan.to_dict().items() if k != "cues"}
    return settings_key("render", *parts, plan_fields, analysis.to_dict())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` through the one atomic writer (a temporary sibling, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_output(path) as temp:
            temp.write_bytes(data)
    except OutputError as err:   # to the cache a failed write is an OSError: a miss next time, not a failed run
        raise OSError(str(err)) from err


class StageCache:
    """JSON results of the analysis and plan stages, and the per-cue render stores.

    With `enabled=False` nothing is read or written; with `force=True` nothing is read but
    fresh results are written (so `--force` refreshes the cache).
    """

    def __init__(self, root: str | os.PathLike | None = None, *, enabled: bool = True, force: bool = False):
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()
        self.enabled = enabled
        self.force = force

    def load_json(self, stage: str, key: str) -> dict[str, Any] | None:
        if not self.enabled or self.force:
            return None
        path = self.root / stage / f"{key}.json"
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            log.warning("Ignoring unreadable cache entry %s (%s).", path, err)
            return None

    def save_json(self, stage: str, key: str, data: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        path = self.root / stage / f"{key}.json"
        try:
            atomic_write_bytes(path, json.dumps(data, indent=1).encode("utf-8"))
            if not (self.root / CACHE_TAG).exists():
                atomic_write_bytes(self.root / CACHE_TAG, _TAG_TEXT.encode("ascii"))
        except OSError as err:
            # A cache that cannot be written slows the next run down; it must not fail this one.
            log.warning("Could not write cache entry %s (%s).", path, err)

    def unwritable(self) -> str | None:
        """Why nothing can be kept in this cache (one phrase), or None when it is off or takes files."""
        if not self.enabled:
            return None
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=".probe-"):
                pass
        except OSError as err:
            return (err.strerror or str(err)).lower()
        return None

    def work_root(self) -> Path:
        """Where running jobs keep their scratch tracks (each in a folder of its own, removed
        when the job ends): on the cache's disk, whether or not the cache is in use."""
        return self.root / WORK_FOLDER

    def cue_store(self, key: str) -> "CueStore":
        return CueStore(self.root / "render" / key, enabled=self.enabled, force=self.force)


class CueStore:
    """Rendered cues of one (plan settings, backend) combination, one file per cue."""

    def __init__(self, folder: Path, *, enabled: bool = True, force: bool = False):
        self.folder = folder
        self.enabled = enabled
        self.force = force

    def path_for(self, cue: Cue) -> Path:
        return self.folder / f"cue-{cue.index:05d}-{settings_key(cue.to_dict())}.npz"

    def load(self, cue: Cue) -> CueAudio | None:
        """The cached audio of `cue`, or None when absent, forced, or unreadable."""
        if not self.enabled or self.force:
            return None
        path = self.path_for(cue)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                stems = {name: np.ascontiguousarray(data[name], dtype=np.float32) for name in data.files}
        except (OSError, ValueError, zipfile.BadZipFile) as err:
            log.warning("Ignoring unreadable cached cue %s (%s).", path, err)
            return None
        if not stems or any(a.shape[-1] != cue.num_samples for a in stems.values()):
            return None
        return CueAudio(cue_index=cue.index, start_sample=cue.start_sample, stems=stems)

    def save(self, cue: Cue, audio: CueAudio) -> bool:
        """Write the audio of `cue`; False when the cache is off or the write failed."""
        if not self.enabled:
            return False
        buf = io.BytesIO()
        np.savez(buf, **{name: np.asarray(a, dtype=np.float32) for name, a in audio.stems.items()})
        try:
            atomic_write_bytes(self.path_for(cue), buf.getvalue())
        except OSError as err:
            log.warning("Could not cache cue %d in %s (%s).", cue.index, self.folder, err)
            return False
        return True

    def on_disk(self, cue: Cue, audio: CueAudio) -> CueAudio:
        """`audio` (just saved or loaded for `cue`) as a CueAudio whose stems are read from its
        cache file when used, so a film's rendered cues need not all stay in memory until the mix."""
        return CueAudio(cue_index=audio.cue_index, start_sample=audio.start_sample,
                        stems=StoredStems(self.path_for(cue), tuple(audio.stems)))

    def load_meta(self) -> dict[str, Any] | None:
        try:
            return json.loads((self.folder / "meta.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def save_meta(self, meta: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        try:
            atomic_write_bytes(self.folder / "meta.json", json.dumps(meta, indent=1).encode("utf-8"))
        except OSError as err:
            log.warning("Could not write %s (%s).", self.folder / "meta.json", err)


class CacheEntryLost(DubError):
    """A cue's cache file went missing or changed while the run that wrote it still needed it."""


class StoredStems(Mapping[str, np.ndarray]):
    """The stems of one cached cue, each read from its file when asked for (float32, as saved)."""

    def __init__(self, path: Path, names: tuple[str, ...]) -> None:
        self.path = path
        self._names = names

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._names:
            raise KeyError(name)
        try:
            with np.load(self.path, allow_pickle=False) as data:
                return np.ascontiguousarray(data[name], dtype=np.float32)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
            raise CacheEntryLost(f"The cached cue {self.path} was removed or damaged during the run ({err}); "
                                 "run the same command again.") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


# ----------------------------------------------------------------------------- maintenance

TEMP_GRACE_S = 3600.0   # s; a temporary file this young may belong to a run writing right now
_KEY = f"[0-9a-f]{{{KEY_HEX}}}"
_TEMP = TEMP_NAME_PATTERN     # the atomic writer's temporary names
_STAGE_FILE = re.compile(rf"{_KEY}\.json|{_TEMP}")
_RENDER_FILE = re.compile(rf"cue-\d{{5}}-{_KEY}\.npz|meta\.json|{_TEMP}")


@dataclass(frozen=True)
class CacheEntry:
    """One file of the cache: `kind` is "analysis", "plan", "cue", "meta" or "temp"."""

    kind: str
    path: Path
    size_bytes: int
    mtime_s: float


@dataclass(frozen=True)
class CacheSummary:
    """What a cache folder holds (`dub cache info`)."""

    root: Path
    size_bytes: int
    analyses: int
    plans: int
    cues: int
    render_sets: int   # folders of cues, one per (video, backend, plan settings)
    stage_bytes: Mapping[str, int] = field(default_factory=dict)   # "analysis", "plan", "render"


@dataclass(frozen=True)
class CleanResult:
    """What `clean_cache` did."""

    root: Path
    removed_files: int
    freed_bytes: int
    kept_files: int


def _scan(folder: Path) -> list[os.DirEntry]:
    if folder.is_symlink():   # never follow a link out of the cache
        return []
    try:
        with os.scandir(folder) as entries:
            return list(entries)
    except (FileNotFoundError, NotADirectoryError):
        return []


def _is_tagged(root: Path) -> bool:
    try:
        text = (root / CACHE_TAG).read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    # Another tool's tagged cache is not ours: the tag must also name us.
    return text.startswith(_TAG_TEXT.split("\n")[0]) and "dubber" in text


def check_cache_dir(root: str | os.PathLike | None = None) -> Path:
    """The cache folder (resolved), after checking it is one: tagged by us, or holding nothing but
    the stage folders. A missing folder is an empty cache.

    Raises:
        InputError: the path is a file, or a folder that does not look like a dubber cache.
    """
    path = Path(root).expanduser() if root is not None else default_cache_dir()
    if not path.exists():
        return path.absolute()
    if not path.is_dir():
        raise InputError(f"The cache location {path} is a file, not a folder; pass the cache folder with --cache-dir.")
    ours = (*STAGE_FOLDERS, WORK_FOLDER, CACHE_TAG)
    strangers = sorted(e.name for e in _scan(path) if e.name not in ours and not re.fullmatch(_TEMP, e.name))
    if strangers and not _is_tagged(path):
        raise InputError(f"{path} does not look like a dubber cache (it holds {strangers[0]!r}); "
                         "pass the cache folder with --cache-dir.")
    return path.resolve()


def _entries_in(folder: Path, pattern: re.Pattern, kind: str) -> list[CacheEntry]:
    found = []
    for e in _scan(folder):
        if e.is_file(follow_symlinks=False) and pattern.fullmatch(e.name):
            st = e.stat(follow_symlinks=False)
            name_kind = "temp" if e.name.startswith(".") else ("meta" if e.name == "meta.json" else kind)
            found.append(CacheEntry(name_kind, Path(e.path), st.st_size, st.st_mtime))
    return found


def cache_entries(root: Path) -> list[CacheEntry]:
    """Every file of ours under a checked cache folder; anything else found there is left out."""
    found = _entries_in(root / "analysis", _STAGE_FILE, "analysis") + _entries_in(root / "plan", _STAGE_FILE, "plan")
    for sub in _scan(root / "render"):
        if sub.is_dir(follow_symlinks=False) and re.fullmatch(_KEY, sub.name):
            found += _entries_in(Path(sub.path), _RENDER_FILE, "cue")
    return found


def cache_summary(root: str | os.PathLike | None = None) -> CacheSummary:
    """Size and contents of the cache folder (default: `default_cache_dir()`).

    Raises:
        InputError: the folder does not look like a dubber cache.
    """
    path = check_cache_dir(root)
    entries = cache_entries(path)
    cues = [e for e in entries if e.kind == "cue"]
    return CacheSummary(root=path, size_bytes=sum(e.size_bytes for e in entries),
                        analyses=sum(e.kind == "analysis" for e in entries),
                        plans=sum(e.kind == "plan" for e in entries), cues=len(cues),
                        render_sets=len({e.path.parent for e in cues}), stage_bytes=_stage_bytes(path, entries))


def _stage_bytes(root: Path, entries: list[CacheEntry]) -> dict[str, int]:
    """Bytes per stage folder (a cue's metadata and temporary files count with their stage)."""
    sizes = {stage: 0 for stage in STAGE_FOLDERS}
    for e in entries:
        stage = e.path.relative_to(root).parts[0]
        sizes[stage] = sizes.get(stage, 0) + e.size_bytes
    return sizes


def _to_remove(entries: list[CacheEntry], cutoff_s: float, now_s: float) -> list[CacheEntry]:
    young_temp_s = now_s - TEMP_GRACE_S
    chosen = [e for e in entries if e.kind not in ("meta", "temp") and e.mtime_s < cutoff_s]
    chosen += [e for e in entries if e.kind == "temp" and e.mtime_s < min(cutoff_s, young_temp_s)]
    # A render set's meta.json goes with its last cue.
    gone = {e.path for e in chosen}
    kept_sets = {e.path.parent for e in entries if e.kind == "cue" and e.path not in gone}
    return chosen + [e for e in entries if e.kind == "meta" and e.path.parent not in kept_sets]


def clean_cache(root: str | os.PathLike | None = None, older_than_s: float | None = None,
                now_s: float | None = None) -> CleanResult:
    """Delete cache entries: all of them, or those written more than `older_than_s` seconds ago.
    Only the cache's own files are touched (analysis/plan JSON, cue files, their metadata,
    leftover temporary files); emptied render folders are removed.

    Raises:
        InputError: the folder does not look like a dubber cache.
    """
    path = check_cache_dir(root)
    now_s = time.time() if now_s is None else now_s
    entries = cache_entries(path)
    cutoff_s = now_s - older_than_s if older_than_s is not None else float("inf")
    removed, freed = 0, 0
    for entry in _to_remove(entries, cutoff_s, now_s):
        try:
            entry.path.unlink()
        except OSError as err:
            log.warning("Could not remove %s (%s).", entry.path, err)
            continue
        removed, freed = removed + 1, freed + entry.size_bytes
    for folder in {e.path.parent for e in entries if e.kind in ("cue", "meta")}:
        with contextlib.suppress(OSError):
            folder.rmdir()   # only when empty
    return CleanResult(root=path, removed_files=removed, freed_bytes=freed, kept_files=len(entries) - removed)


# ----------------------------------------------------------------------------- cached rendering

def _label(stage: str, backend: Any) -> str:
    # A backend reporting its steps as "render" shows up under its own name instead.
    return backend.NAME if stage == "render" else stage


def _groups(cues: tuple, size: int | None) -> list[tuple]:
    size = size or len(cues)
    return [cues[i:i + size] for i in range(0, len(cues), size)]


def render_cached(backend: Any, plan: DubPlan, analysis: Any, store: CueStore, progress: ProgressFn,
                  group_size: int | None, *, whole_timeline: bool = False) -> tuple[RenderResult, int]:
    """Render every cue of `plan`, taking cached cues from `store` and caching new ones as soon
    as their group is done (so a killed run resumes at the first group not yet rendered). A
    backend that does not cache its audio (`CACHES_AUDIO`, the score engine) renders every cue.
    `group_size` cues go to each backend call (None: all of them in one call). A `whole_timeline`
    backend draws the whole soundtrack on every call, so the cues not cached go to it in one call.

    Returns:
        (RenderResult for the whole plan, number of cues that came from the cache)
    """
    from .backends.base import check_render

    if not getattr(backend, "CACHES_AUDIO", True):
        return _render_uncached(backend, plan, analysis, progress), 0
    # A cached cue is checked by reading it whole, then kept as a reference to its file: the
    # mix reads each cue when it places it, so a film's cues are never all in memory at once.
    audio = {c.index: store.on_disk(c, a) for c in plan.cues if (a := store.load(c)) is not None}
    from_cache = len(audio)
    progress("render", len(audio), len(plan.cues))
    meta = store.load_meta() or {}
    missing = tuple(c for c in plan.cues if c.index not in audio)
    position = {c.index: k for k, c in enumerate(plan.cues)}

    def steps(stage: str, done: int, total: int) -> None:
        progress(f"render/{_label(stage, backend)}", done, total)

    for group in [missing] if whole_timeline else _groups(plan.cues, group_size):
        if all(c.index in audio for c in group):
            continue
        sub_plan = replace(plan, cues=group)
        if hasattr(backend, "render_cues"):   # the rest of the plan as context
            result = backend.render_cues(plan, analysis, [position[c.index] for c in group], steps)
        else:
            result = backend.render(sub_plan, analysis, steps)
        check_render(sub_plan, result)
        for cue, cue_audio in zip(group, result.cues):
            audio[cue.index] = store.on_disk(cue, cue_audio) if store.save(cue, cue_audio) else cue_audio
        meta = {"backend": result.backend, "model_id": result.model_id, "model_revision": result.model_revision,
                "notes": list(result.notes), "free_timing_captions": list(result.free_timing_captions),
                "sound_bank": dict(result.sound_bank) if result.sound_bank else None}
        store.save_meta(meta)
        del result, sub_plan   # the backend's arrays go now; the cues are read back from the cache
        progress("render", len(audio), len(plan.cues))
    result = RenderResult(backend=meta.get("backend", backend.NAME), sample_rate=plan.sample_rate,
                          cues=tuple(audio[c.index] for c in plan.cues), model_id=meta.get("model_id"),
                          model_revision=meta.get("model_revision"), notes=tuple(meta.get("notes", ())),
                          free_timing_captions=tuple(meta.get("free_timing_captions", ())),
                          sound_bank=meta.get("sound_bank"))
    return result, from_cache


def _render_uncached(backend: Any, plan: DubPlan, analysis: Any, progress: ProgressFn) -> RenderResult:
    """A backend that keeps nothing (the score engine) renders the whole timeline again from the
    cached analysis (identical audio) in one call; its own steps move the cue count along."""
    from .backends.base import check_render

    count = len(plan.cues)

    def whole(stage: str, done: int, total: int) -> None:
        progress(f"render/{_label(stage, backend)}", done, total)
        progress("render", min(count, count * done // max(1, total)), count)

    result = backend.render(plan, analysis, whole)
    check_render(plan, result)
    progress("render", count, count)
    return result
