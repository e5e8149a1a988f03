"""What the studio keeps on disk so a project outlives the page: which video (by content), style and
seed a project folder holds, the table's latest edits, and a record of each finished take.

    <project>/project.json              {"schema", "source", "video", "style", "seed"[, "one_shot"]}
    <project>/edits.json                {"schema", "plan", "muted", "page"[, "hits"]}: the table as last edited
    <project>/takes/take-NNN/take.json  what the page shows of a take: its files, backend, counts, mutes,
                                        and the hit list it was rendered from, if any ("hit_list")

A take folder without take.json is one whose render did not finish, and is not offered. `project`
arguments are `dubber.studio.project.Project`s. No gradio here.
"""
from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

from vision.types import VisualEvent

from ..atomic import atomic_write_text
from ..errors import OutputError
from ..types import DubPlan

log = logging.getLogger(__name__)

STORE_SCHEMA = 1
PROJECT_FILE = "project.json"
EDITS_FILE = "edits.json"
TAKE_FILE = "take.json"
_TAKE_FOLDER = re.compile(r"take-(\d+)")


def take_number(name: str) -> int | None:
    match = _TAKE_FOLDER.fullmatch(name)
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class Take:
    """One render of a project: every file it wrote and how much of it the cache made free."""

    folder: Path
    video: Path
    outputs: Mapping[str, str]
    spectrogram: Path | None
    backend: str
    cues: int
    cues_from_cache: int
    notes: tuple[str, ...]
    caches_audio: bool = True  # False: every shot is played again from the cached analysis
    muted: tuple[int, ...] = ()
    hit_list: Path | None = None   # the hit list it was rendered from; None: the detected hits

    @property
    def number(self) -> int:
        return take_number(self.folder.name) or 0


def _read(path: Path) -> dict[str, Any] | None:
    """The JSON object in `path`, or None when it is missing, unreadable or of another schema: the
    studio then starts that part afresh rather than refuse to open the video."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        log.warning("Ignoring %s (%s).", path, err)
        return None
    return data if isinstance(data, dict) and data.get("schema") == STORE_SCHEMA else None


def _write(path: Path, data: Mapping[str, Any]) -> None:
    atomic_write_text(path, json.dumps({"schema": STORE_SCHEMA, **data}, indent=2, ensure_ascii=False) + "\n")


def write_project_record(folder: Path, source: str, video: Path, style: str, seed: int,
                         one_shot: bool = False) -> None:
    """`one_shot`: a script's dub (the `dub` endpoint), which opening the video never returns to."""
    _write(folder / PROJECT_FILE, {"source": source, "video": video.name, "style": style, "seed": seed,
                                   **({"one_shot": True} if one_shot else {})})


def read_project_record(folder: Path) -> dict[str, Any] | None:
    """What project.json says `folder` holds (source, video, style, seed), or None when it holds
    no readable record of a project."""
    record = _read(folder / PROJECT_FILE)
    if record is None or not all(isinstance(record.get(k), str) for k in ("source", "video", "style")):
        return None
    return record if isinstance(record.get("seed"), int) else None


def _last_activity_ns(folder: Path) -> int:
    """When the project was last edited or rendered (its record files' newest modification)."""
    files = [folder / PROJECT_FILE, folder / EDITS_FILE, *folder.glob(f"takes/*/{TAKE_FILE}")]
    return max((p.stat().st_mtime_ns for p in files if p.is_file()), default=0)


def find_project(projects: Path, source: str, style: str, seed: int) -> tuple[Path, Path] | None:
    """The project folder (and its video) that already holds a video with content fingerprint
    `source` planned with `style` and `seed`; the most recently worked on when several do. Its
    video copy may be gone (removed to free space): the caller has the same content to put back."""
    found = []
    for record_path in projects.glob(f"*/{PROJECT_FILE}"):
        record = _read(record_path)
        if record is None or (record.get("source"), record.get("style"), record.get("seed")) != (source, style, seed):
            continue
        if record.get("one_shot"):   # a script's dub is not the project an editor works on
            continue
        folder = record_path.parent
        video = folder / str(record.get("video", ""))
        if video.parent == folder:
            found.append((_last_activity_ns(folder), folder, video))
    if not found:
        return None
    _, folder, video = max(found, key=lambda f: f[0])
    return folder, video


def save_edits(folder: Path, plan: DubPlan, muted: tuple[int, ...], page: str = "",
               hits: tuple[VisualEvent, ...] | None = None) -> None:
    """`page`: the opening (`Project.page`) that saved them; `hits`: the hits column's hit points,
    None when they are the detected ones."""
    _write(folder / EDITS_FILE, {"plan": plan.to_dict(), "muted": list(muted), "page": page,
                                 "hits": None if hits is None else [asdict(e) for e in hits]})


def edits_written_by(folder: Path) -> tuple[str, int] | None:
    """(the page that saved the table's edits, when, in ns), or None when none are saved."""
    data = _read(folder / EDITS_FILE)
    if data is None:
        return None
    try:
        return str(data.get("page", "")), (folder / EDITS_FILE).stat().st_mtime_ns
    except OSError:
        return None


def load_edits(folder: Path) -> tuple[DubPlan, tuple[int, ...], tuple[VisualEvent, ...] | None] | None:
    """The table's saved edits: its plan, muted cue indices and hit points (None: the detected
    ones, as in a record saved before hits could be edited), or None."""
    data = _read(folder / EDITS_FILE)
    if data is None:
        return None
    try:
        hits = data.get("hits")
        return (DubPlan.from_dict(data["plan"]), tuple(int(i) for i in data["muted"]),
                None if hits is None else tuple(VisualEvent(**dict(e)) for e in hits))
    except (KeyError, TypeError, ValueError) as err:
        log.warning("Ignoring the saved edits in %s (%s).", folder, err)
        return None


def save_take_record(folder: Path, record: Mapping[str, Any]) -> None:
    """Write a finished take's record; paths inside the take folder are kept relative to it, so the
    work folder can move."""
    def inside(value: Any) -> Any:
        return os.path.relpath(value, folder) if isinstance(value, (str, Path)) and value else value

    data = dict(record)
    data["video"], data["spectrogram"] = inside(data["video"]), inside(data["spectrogram"])
    data["hit_list"] = inside(data.get("hit_list"))
    data["outputs"] = {role: inside(p) for role, p in data["outputs"].items()}
    _write(folder / TAKE_FILE, data)


def load_take_record(folder: Path) -> dict[str, Any] | None:
    """A take's record with its paths made absolute again, or None for a take that did not finish."""
    data = _read(folder / TAKE_FILE)
    if data is None:
        return None
    try:
        data["video"] = folder / data["video"]
        data["spectrogram"] = folder / data["spectrogram"] if data.get("spectrogram") else None
        data["hit_list"] = folder / data["hit_list"] if data.get("hit_list") else None
        data["outputs"] = {role: str(folder / p) for role, p in data["outputs"].items()}
    except (KeyError, TypeError, AttributeError) as err:
        log.warning("Ignoring the take record in %s (%s).", folder, err)
        return None
    return data


def load_take(folder: Path) -> Take | None:
    """A finished take of a project, read back from its folder (None: not a finished take)."""
    record = load_take_record(folder)
    if record is None:
        return None
    try:
        return Take(folder=folder, video=record["video"], outputs=record["outputs"], spectrogram=record["spectrogram"],
                    backend=str(record["backend"]), cues=int(record["cues"]),
                    cues_from_cache=int(record["cues_from_cache"]), notes=tuple(record.get("notes", ())),
                    caches_audio=bool(record.get("caches_audio", True)),
                    muted=tuple(int(i) for i in record.get("muted", ())), hit_list=record["hit_list"])
    except (KeyError, TypeError, ValueError) as err:
        log.warning("Ignoring the take in %s (%s).", folder, err)
        return None


def list_takes(project: Any) -> tuple[Take, ...]:
    """The project's finished takes still on disk, oldest first."""
    folders = sorted((n, p) for p in (project.folder / "takes").glob("take-*") if (n := take_number(p.name)))
    return tuple(t for _, p in folders if (t := load_take(p)) is not None)


def find_take(project: Any, name: str) -> Take:
    """The project's take named `name` ("take-002").

    Raises:
        OutputError: no such finished take in the project folder (removed, or not a take's name).
    """
    take = load_take(project.folder / "takes" / name) if take_number(str(name)) else None
    if take is None:
        raise OutputError(f"The take {name!r} is not in the project folder {project.folder}; choose another take.")
    return take
