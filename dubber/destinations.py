"""Where every file of a run goes, decided and checked before any work starts (never over the
input, never over another dub's files, never over a file without --overwrite), and the files of a
replaced dub that the new one did not write again."""
from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import OutputError
from .options import (DubOptions, NAME_MAX_BYTES, check_output_file, check_writable_folder,
                      default_output_path)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Destinations:
    """Where each file of a run goes; decided (and checked) before any work starts."""

    video: Path
    manifest: Path
    stems: Path | None
    timeline_stem: Path | None   # <folder>/<name>; .otio/.fcpxml/.srt are added to it
    # Files an earlier, interrupted run of this job was publishing: replaced without --force.
    replaceable: frozenset[Path] = frozenset()
    # Files the run reads besides the video (a plan, a hit list, a SoundFont), each with the words
    # that name it: no output ever replaces one, --overwrite or not.
    reads: tuple[tuple[Path, str], ...] = ()

    def export_paths(self) -> Any:
        from .export.deliverables import ExportPaths

        # Stem WAVs carry the output's name, so the stems of several videos can share a folder.
        return ExportPaths(manifest=self.manifest, stems_dir=self.stems, timeline_stem=self.timeline_stem,
                           stems_prefix=f"{self.video.with_suffix('').name}.")

    def files(self) -> list[Path]:
        out = [self.video, self.manifest]
        if self.stems is not None:
            out.append(self.export_paths().wav_file("mix"))
        if self.timeline_stem is not None:
            out += [self.timeline_stem.with_name(self.timeline_stem.name + s) for s in (".otio", ".fcpxml", ".srt")]
        return out

    def check_replace(self, target: Path, input_path: Path, force: bool) -> None:
        """Refuse to write over the input or a file the run reads ever, or over an existing file
        without --overwrite (or --force)."""
        if target.exists() and os.path.samefile(target, input_path):
            raise OutputError(f"An output ({target.name}) would overwrite the input; choose another name with -o.")
        for path, what in self.reads:
            if target.exists() and path.exists() and os.path.samefile(target, path):
                raise OutputError(f"An output ({target.name}) would overwrite {what}, which this run reads; "
                                  "choose another name with -o.")
        if target.exists() and not force and target not in self.replaceable:
            raise OutputError(f"{target} already exists; pass --overwrite to replace it or choose another name with -o.")


def plan_destinations(video_path: Path, out_path: str | os.PathLike | None, options: DubOptions) -> Destinations:
    """Every output path of a run, checked: never the input, never an existing file without force."""
    from .atomic import WORKING_MARK, commit_record_path, complete_pending, sweep_stale

    if out_path is None:
        from vision.probe import picture_codec

        out_given = default_output_path(video_path, picture_codec(video_path))
    else:
        out_given = Path(out_path)
    manifest = out_given.expanduser().absolute().with_suffix(".json")
    # An earlier run of this job cut short while publishing its files is completed first; its
    # files are then this job's own, and leftovers of killed runs are swept.
    replaceable = frozenset(complete_pending(manifest))
    sweep_stale(manifest.parent)
    replace_outputs = options.force or options.overwrite
    out = check_output_file(out_given, video_path, replace_outputs or out_given.expanduser().absolute() in replaceable)
    base = out.with_suffix("")
    # Every name written from the output's, each under a temporary name first: the video, the
    # sound it is muxed from (a hidden working file), the hidden commit record beside the
    # manifest, and the .fcpxml or a stem WAV (".original.wav", and stems a backend names more
    # freely; 16 bytes cover them). A name the file system refuses must fail now, not after the work.
    extra = 16 if (options.stems_dir or options.timeline) else len(".fcpxml")
    names = (out.name, base.name + WORKING_MARK + ".wav", commit_record_path(base.with_name(base.name + ".json")).name)
    if max(len(base.name.encode()) + extra, *(len(name.encode()) for name in names)) > NAME_MAX_BYTES:
        raise OutputError(f"The output name {out.name} is too long for the file system; choose a shorter one with -o.")
    stems = Path(options.stems_dir).expanduser().absolute() if options.stems_dir else None
    if stems is None and options.timeline:
        stems = base.with_name(base.name + "_stems")   # timelines point at a mix WAV that must persist
    dest = Destinations(video=out, manifest=base.with_name(base.name + ".json"), stems=stems,
                         timeline_stem=base if options.timeline else None, replaceable=replaceable,
                         reads=files_read(options))
    _check_not_anothers(dest.manifest, out)
    _check_stems_not_anothers(dest, video_path)
    for f in dest.files()[1:]:
        dest.check_replace(f, video_path, replace_outputs)
    if stems is not None:
        sweep_stale(stems)
        if stems.exists() and not stems.is_dir():
            raise OutputError(f"The stems location {stems} is a file; give a folder with --stems.")
        check_writable_folder(stems, what="stems", new_parents=True)
    return dest


def files_read(options: DubOptions) -> tuple[tuple[Path, str], ...]:
    """The files besides the video that a run with `options` reads, with the words naming each."""
    given = ((options.plan_path, "the plan given with --plan"), (options.hits_path, "the hit list given with --hits"),
             (options.soundfont, "the SoundFont given with --soundfont"))
    return tuple((Path(path).expanduser().absolute(), what) for path, what in given if path)


def _recorded_outputs(manifest: Path) -> dict[str, Path]:
    """The outputs an earlier dub's manifest at `manifest` lists, by role; {} when there is none
    or it is not one of ours."""
    from .export.deliverables import read_recorded_outputs

    return read_recorded_outputs(manifest)


def earlier_outputs(dest: Destinations) -> list[Path]:
    """The files an earlier dub to this output listed in its manifest, and its review page. Only
    what a dub of this output names after it (`<name>.otio`, `<name>.music.wav`, ...): a manifest
    is data, and a path in it never makes us delete anything else."""
    base = dest.video.with_suffix("").name + "."
    files = [f for f in _recorded_outputs(dest.manifest).values() if f.name.startswith(base)]
    return files + [dest.video.with_suffix(".review.html")]


def remove_earlier_outputs(earlier: list[Path], written: set[Path], input_path: Path,
                           reads: tuple[tuple[Path, str], ...] = ()) -> None:
    """Remove the files of a replaced dub that this run did not write again. Never the input or
    another file the run read (`Destinations.reads`), never a file just written; a folder only
    when the removed files were all it held (the <output>_stems folder of a dub made with
    --timeline, replaced by one without)."""
    written = {p.absolute() for p in written}
    kept = [input_path, *(path for path, _ in reads)]
    emptied: set[Path] = set()
    for old in earlier:
        if old in written or not old.is_file() or old.is_symlink():
            continue
        with contextlib.suppress(OSError):
            if any(path.exists() and os.path.samefile(old, path) for path in kept):
                continue
            old.unlink()
            emptied.add(old.parent)
            log.info("removed %s, left by the dub this run replaced", old)
    for folder in emptied:
        with contextlib.suppress(OSError):   # not empty (the user's files, this run's): it stays
            folder.rmdir()


def _check_not_anothers(manifest: Path, video: Path) -> None:
    """Refuse, even with --overwrite, a name whose manifest and sidecars belong to another output
    beside it (sub.mkv after sub.mp4 both name sub.json): replacing them would orphan that video."""
    theirs = _recorded_outputs(manifest).get("video")
    if theirs is not None and theirs != video and theirs.name != video.name and theirs.is_file():
        raise OutputError(f"{manifest.name} is the manifest of {theirs.name}, another dub in that folder, and "
                          f"{video.name} would share it; choose another name with -o.")


def _check_stems_not_anothers(dest: Destinations, input_path: Path) -> None:
    """Refuse, even with --overwrite, stems in the stems folder under this output's name that an
    earlier dub to this output did not write (its manifest does not list them): two outputs of one
    name in different folders (x/out.mp4, y/out.mp4) would share `out.mix.wav` in a shared stems
    folder, and replacing it would swap the other dub's stems for these."""
    if dest.stems is None or not dest.stems.is_dir():
        return
    prefix = dest.export_paths().stems_prefix
    ours = set(_recorded_outputs(dest.manifest).values()) | set(dest.replaceable)
    # `<output name>.<role>.wav`: the role has no dot, so "a.dub.v2.mix.wav" is not a stem of a.dub.mp4
    theirs = sorted(p for p in dest.stems.glob("*.wav") if p.name.startswith(prefix)
                    and "." not in p.name[len(prefix):-len(".wav")] and p.absolute() not in ours
                    and not os.path.samefile(p, input_path))   # the input has its own refusal
    if theirs:
        raise OutputError(f"{theirs[0]} is no stem of an earlier dub to {dest.video.name} ({dest.manifest.name} does "
                          "not list it), so it may be another dub's; choose another --stems folder or output name, "
                          "or remove it.")
