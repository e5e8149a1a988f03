"""A finished job's timelines and manifest, pointed at where its files end up.

A job writes into a staging folder inside output/ and dubs the claimed copy in processing/; the
watcher then renames the folder into place and moves the original to done/. The .otio names
its media by absolute path, the .fcpxml by absolute file:// URL, and the manifest names the input
by absolute path (as a single `dub` writes them, so they open from anywhere), so before the rename every
reference into the staging folder or to the claimed file is rewritten to its final place. Each
file is parsed, changed where a reference moves, and written back whole through a temporary and
a rename; an editor never sees half a timeline.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Callable

from ..atomic import atomic_write_text
from ..export.timeline import Move, media_references, moved_path, moved_target, moved_url
from ..types import is_manifest

log = logging.getLogger(__name__)


class _Unreadable(Exception):
    """A file named like a timeline or manifest that does not parse as one."""


def relocate_references(folder: Path, moves: tuple[Move, ...]) -> int:
    """Point every .otio, .fcpxml and dub manifest under `folder` at where `moves` put the files
    they name. A file that cannot be parsed (a custom processor's own format) is left as written,
    with a warning. Returns how many references changed.

    Raises:
        OutputError: a rewritten file cannot be written back.
    """
    rewriters: dict[str, Callable[[Path, tuple[Move, ...]], int]] = {
        ".otio": _relocate_otio, ".fcpxml": _relocate_fcpxml, ".json": _relocate_manifest}
    changed = 0
    for path in sorted(folder.rglob("*")):
        rewrite = rewriters.get(path.suffix.lower())
        if rewrite is None or not path.is_file():
            continue
        try:
            changed += rewrite(path, moves)
        except _Unreadable as err:
            log.warning("%s could not be read (%s); its media references are left as written", path.name, err)
    return changed


def _relocate_otio(path: Path, moves: tuple[Move, ...]) -> int:
    import opentimelineio as otio

    try:
        timeline = otio.adapters.read_from_file(str(path), "otio_json")
    except (otio.exceptions.OTIOError, ValueError) as err:
        raise _Unreadable(err) from None
    changed = 0
    for reference in media_references(timeline):
        new = moved_target(reference.target_url, moves)
        if new is not None:
            reference.target_url = new
            changed += 1
    if changed:
        atomic_write_text(path, otio.adapters.write_to_string(timeline, "otio_json"))
    return changed


def _relocate_fcpxml(path: Path, moves: tuple[Move, ...]) -> int:
    """Every `src` (asset, media-rep); the DOCTYPE Final Cut requires is kept."""
    from xml.dom import minidom
    from xml.parsers.expat import ExpatError

    try:
        document = minidom.parseString(path.read_bytes())
    except ExpatError as err:
        raise _Unreadable(err) from None
    changed = 0
    for element in document.getElementsByTagName("*"):
        new = moved_url(element.getAttribute("src"), moves) if element.hasAttribute("src") else None
        if new is not None:
            element.setAttribute("src", new)
            changed += 1
    if changed:
        # The nodes before the root (the DOCTYPE) one a line, as written; the root keeps its layout.
        nodes = [node.toxml() for node in document.childNodes]
        atomic_write_text(path, "\n".join(['<?xml version="1.0" encoding="UTF-8"?>', *nodes]) + "\n")
    return changed


def _relocate_manifest(path: Path, moves: tuple[Move, ...]) -> int:
    """Absolute paths anywhere in a dub manifest (its input's, in `media` and `analysis`); paths
    relative to the manifest move with its folder. Other JSON files are not ours to change."""
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:   # not JSON, or not UTF-8
        raise _Unreadable(err) from None
    if not is_manifest(manifest):
        return 0
    relocated, changed = _relocate_values(manifest, moves)
    if changed:
        atomic_write_text(path, json.dumps(relocated, indent=2, ensure_ascii=False, allow_nan=False) + "\n")
    return changed


def _relocate_values(value: Any, moves: tuple[Move, ...]) -> tuple[Any, int]:
    """`value` with each string that is a whole absolute path under a move replaced; and how many."""
    if isinstance(value, dict):
        items = {key: _relocate_values(item, moves) for key, item in value.items()}
        return {key: item for key, (item, _) in items.items()}, sum(n for _, n in items.values())
    if isinstance(value, list):
        items_list = [_relocate_values(item, moves) for item in value]
        return [item for item, _ in items_list], sum(n for _, n in items_list)
    if isinstance(value, str) and "\n" not in value and os.path.isabs(value):
        new = moved_path(Path(value), moves)
        if new is not None:
            return str(new), 1
    return value, 0
