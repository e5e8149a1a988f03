"""`dub bundle OUT.json`: a dub's timeline and every file it plays, in one .otioz to hand on.

The .otio beside a dub names its media by absolute path, so it opens where it was written and
needs relinking anywhere else. An .otioz (OpenTimelineIO's bundle: the timeline plus a media/
folder, in one zip) carries the picture, the stems, the mix and the source's own sound with it;
DaVinci Resolve imports it with its media linked (File > Import > Timeline), on any machine.

    dub bundle film.dub.json                 # film.otioz beside the .otio
    dub bundle film.dub.json -o /share/film.otioz
"""
from __future__ import annotations

import os
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..atomic import atomic_output
from ..errors import InputError, OutputError
from .timeline import Move, media_references, moved_target, referenced_path

BUNDLE_SUFFIX = ".otioz"


@dataclass(frozen=True)
class Bundle:
    """A written bundle: where it is, and the media files it carries."""

    path: Path
    media: tuple[Path, ...]

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size


def default_bundle_path(otio_path: Path) -> Path:
    return otio_path.with_suffix(BUNDLE_SUFFIX)


def write_bundle(manifest_path: str | os.PathLike, out_path: str | os.PathLike | None = None,
                 overwrite: bool = False) -> Bundle:
    """Write the .otioz of the dub whose manifest is `manifest_path` (beside its .otio unless
    `out_path`; a folder takes the default name inside it).

    Raises:
        InputError: the manifest is unusable, the dub has no .otio timeline, or a file the
            timeline plays is missing.
        OutputError: a file is already where the bundle goes (and not `overwrite`), or it cannot
            be written.
    """
    import opentimelineio as otio

    from ..review import load_manifest
    from .deliverables import recorded_outputs

    manifest_file = Path(manifest_path)
    manifest = load_manifest(manifest_file)
    timeline_file = recorded_outputs(manifest, manifest_file.parent).get("otio")
    if timeline_file is None:
        raise InputError(f"{manifest_file.name} lists no .otio timeline; dub the video again with --timeline "
                         "to bundle it.")
    try:
        timeline = otio.adapters.read_from_file(str(timeline_file), "otio_json")
    except FileNotFoundError:
        raise InputError(f"the timeline {timeline_file} is not where {manifest_file.name} says; "
                         "move it back beside the manifest.") from None
    except (otio.exceptions.OTIOError, ValueError) as err:
        raise InputError(f"{timeline_file.name} is not a readable .otio timeline ({err}).") from None
    timeline = _where_the_files_are_now(timeline, manifest, manifest_file.parent.absolute())
    media = _media_of(timeline)
    missing = [str(path) for path in media if not path.is_file()]
    if missing:
        raise InputError(f"the timeline plays files that are not there: {', '.join(missing)}; "
                         "move them back or dub the video again.")
    default = default_bundle_path(timeline_file)
    target = Path(out_path) if out_path is not None else default
    if target.is_dir() or str(out_path or "").endswith(("/", os.sep)):   # `-o handoff/`, there or not yet
        target = target / default.name
    if target.suffix.lower() != BUNDLE_SUFFIX:
        raise OutputError(f"A bundle is an {BUNDLE_SUFFIX} file, and {target.name} is not one; give -o a name "
                          f"ending in {BUNDLE_SUFFIX}, or a folder (ending in /).")
    if not target.parent.is_dir() and target.parent.parent.is_dir():   # one missing folder is made, as for a dub
        target.parent.mkdir()
    if target.exists() and not overwrite:
        raise OutputError(f"{target} already exists; pass --overwrite to replace it or choose another name.")
    with tempfile.TemporaryDirectory(prefix="dub-bundle-") as links:
        timeline = _with_unique_names(timeline, media, Path(links))
        try:
            with atomic_output(target) as partial:   # a bundle cut short never looks finished
                partial.unlink()   # the bundler makes its file itself and will not replace one (the name is ours alone)
                otio.adapters.write_to_file(timeline, str(partial), adapter_name="otioz")
        except (otio.exceptions.OTIOError, ValueError) as err:
            raise OutputError(f"OpenTimelineIO could not bundle this timeline ({err}).") from None
    return Bundle(target, media)


def _with_unique_names(timeline, media: tuple[Path, ...], links: Path):
    """`timeline`, or a copy whose media all have different file names.

    The bundle keeps one media/ folder, and its writer refuses two files of one name: a dub
    written as out/film.mp4 from film.mp4 plays both. The later ones are reached through links
    named film-2.mp4, film-3.mp4, ... in `links`, so each is stored under a name of its own."""
    names: dict[str, int] = {}
    renamed: dict[Path, Path] = {}
    for path in media:
        count = names[path.name] = names.get(path.name, 0) + 1
        if count > 1:
            link = links / f"{path.stem}-{count}{path.suffix}"
            try:
                os.symlink(path.resolve(), link)
            except OSError:   # no symbolic links here (Windows without the right): a hard link
                try:
                    os.link(path, link)
                except OSError as err:
                    raise OutputError(f"{path.name} is the name of two files the timeline plays, and no link "
                                      f"could give one of them another name ({err.strerror or err}).") from None
            renamed[path] = link
    if not renamed:
        return timeline
    copy = timeline.deepcopy()
    for reference in media_references(copy):
        path = referenced_path(reference.target_url)
        if path in renamed:
            reference.target_url = str(renamed[path])
    return copy


def _where_the_files_are_now(timeline, manifest: dict, folder: Path):
    """`timeline`, or a copy whose clips play the files of the dub's folder where it is now.

    The .otio names the files where they were written. A dub's folder moved or copied whole
    (its manifest names its outputs relative to itself) still holds them, and a copy's bundle
    must carry the copy's files, never the original's. The folder the dub was written in is the
    one the timeline's references put the manifest's outputs in (most of them agree: the
    picture, the stems, the mix); every file the timeline plays from inside it is taken from the
    same place inside `folder`. Files it plays from elsewhere (a source beside the output folder)
    stay where they are."""
    outputs = manifest.get("outputs") if isinstance(manifest.get("outputs"), dict) else {}
    inside = [Path(rel) for rel in outputs.values()
              if isinstance(rel, str) and not Path(rel).is_absolute() and ".." not in Path(rel).parts]
    votes: Counter[Path] = Counter()
    for reference in media_references(timeline):
        path = referenced_path(reference.target_url)
        for rel in inside:
            if path is not None and len(path.parts) > len(rel.parts) and path.parts[-len(rel.parts):] == rel.parts:
                votes[Path(*path.parts[:-len(rel.parts)])] += 1
    if not votes:
        return timeline
    written_in = votes.most_common(1)[0][0]
    if written_in == folder:
        return timeline
    moves = (Move(written_in, folder),)  # as written: the .otio names its files with links resolved
    copy = timeline.deepcopy()
    for reference in media_references(copy):
        reference.target_url = moved_target(reference.target_url, moves) or reference.target_url
    return copy


def _media_of(timeline) -> tuple[Path, ...]:
    """Every file the timeline's clips play, once each, in the order they first appear."""
    paths = (referenced_path(reference.target_url) for reference in media_references(timeline))
    return tuple(dict.fromkeys(path for path in paths if path is not None))
