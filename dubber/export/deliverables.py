"""Everything a dub leaves behind besides the video: manifest, stems, captions, timelines.

`export_all` writes them where an `ExportPaths` says (`ExportPaths.in_folder` gives the usual layout):

- the manifest (schema MANIFEST_SCHEMA, e.g. `<name>.dub.json`): tool version, media facts, the
  whole analysis, the plan, who rendered it (backend, model id and revision), seeds, measured
  loudness and the files written, so automation never has to re-derive anything.
- a stems folder with `mix.wav` and one WAV per stem, each the full length of the video, written
  a block at a time from the soundtrack's tracks on disk. They are Broadcast WAVs whose
  TimeReference is the video's start timecode, so software that places sound by timecode puts
  them at the picture's first frame.
- `<timeline stem>.srt`: shot captions timed from exact frame times.
- `<timeline stem>.otio` and `.fcpxml`: editor timelines (see `dubber.export.timeline`).

Every file is written under a temporary name in its destination folder and renamed when
complete, so an interrupted export never leaves a file that looks finished.
"""
from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from vision.types import MediaInfo, VideoAnalysis, fraction_to_str

from ..atomic import OutputTransaction, atomic_write_text, check_output_folder, commit_record_path
from ..errors import OutputError
from ..types import MANIFEST_SCHEMA, DubPlan, RenderResult, Soundtrack, is_manifest
from .srt import entries_from_plan, srt_text
from .fcpxml import FcpxmlFacts, fcpxml_rate, timeline_to_fcpxml
from .timeline import (TimelineMedia, TimelineOptions, build_timeline, ignored_timecode_note, media_start_samples,
                       timeline_to_otio_json)

log = logging.getLogger(__name__)

WAV_BITS = 24   # stems are delivered as 24-bit PCM, the editing-room default


# ----------------------------------------------------------------------------- what to export

@dataclass(frozen=True)
class ExportInputs:
    """The results of a dub run that the exports describe.

    `video_path` is the picture the timelines reference (default: the analysed input);
    `settings` are the run's options, recorded verbatim in the manifest.
    """

    analysis: VideoAnalysis
    plan: DubPlan
    soundtrack: Soundtrack | None = None
    render: RenderResult | None = None
    video_path: str | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)

    @property
    def media(self) -> MediaInfo:
        return self.analysis.media


@dataclass(frozen=True)
class ExportOptions:
    """Which files `export_all` writes besides those its `ExportPaths` leave out.

    Attributes:
        stems: one WAV per stem next to `mix.wav` (the mix is written whenever a stems folder is given).
        srt, otio, fcpxml: the timeline files written under the timeline stem.
        skip_unsupported_fcpxml: when FCPXML cannot be written (its adapter missing), leave it out
            and say why in `ExportResult.notes` instead of raising. A frame rate Final Cut has no
            format for is conformed to the nearest one it has (said in the notes), never refused.
        timeline: how the .otio/.fcpxml timelines are laid out.
    """

    stems: bool = True
    srt: bool = True
    otio: bool = True
    fcpxml: bool = False
    skip_unsupported_fcpxml: bool = False
    timeline: TimelineOptions = TimelineOptions()


@dataclass(frozen=True)
class ExportPaths:
    """Where `export_all` writes; each None leaves that group of files out.

    Attributes:
        manifest: the manifest file; the outputs it lists are recorded relative to its folder.
        stems_dir: folder for `mix.wav` and the stem WAVs, created (parents too) when missing.
            Timelines reference the mix, so .otio/.fcpxml need it.
        timeline_stem: `<folder>/<name>`; ".srt", ".otio" and ".fcpxml" are appended to it.
    """

    manifest: Path | None = None
    stems_dir: Path | None = None
    timeline_stem: Path | None = None
    # Put before each WAV's name ("film.dub." gives film.dub.mix.wav, film.dub.music.wav), so the
    # stems of several videos can share one folder.
    stems_prefix: str = ""

    def wav_file(self, name: str) -> Path:
        """The WAV of stem `name` ("mix" for the mix) in the stems folder."""
        if self.stems_dir is None:
            raise ValueError("no stems folder was given")
        return Path(self.stems_dir).expanduser().absolute() / f"{self.stems_prefix}{name}.wav"

    @classmethod
    def in_folder(cls, folder: str | os.PathLike[str], basename: str) -> "ExportPaths":
        """All exports side by side in `folder`: `<basename>.dub.json`, `<basename>_stems/`,
        `<basename>.srt`, `<basename>.otio`, `<basename>.fcpxml`."""
        out = Path(folder).expanduser()
        return cls(manifest=out / f"{basename}.dub.json", stems_dir=out / f"{basename}_stems",
                   timeline_stem=out / basename)

    def timeline_file(self, suffix: str) -> Path:
        """The timeline stem with `suffix` (".otio", ...) appended, not substituted: names may hold dots."""
        if self.timeline_stem is None:
            raise ValueError("no timeline stem was given")
        return self.timeline_stem.with_name(self.timeline_stem.name + suffix)


@dataclass(frozen=True)
class ExportResult:
    """What `export_all` wrote: `outputs` maps a role ("video", "mix", "stem:fx", "srt", "otio",
    "fcpxml", "manifest") to its file, the extra outputs first and the manifest last; `notes` say
    which requested files were left out, and why."""

    outputs: dict[str, Path]
    notes: tuple[str, ...] = ()


# ----------------------------------------------------------------------------- manifest

def tool_version() -> str:
    from .. import __version__

    return __version__


def _finite(value: float | None) -> float | None:
    """JSON has no infinities: silence measures -inf LUFS and is recorded as null."""
    if value is None or not math.isfinite(float(value)):
        return None
    return round(float(value), 3)


def _json_default(value: Any) -> Any:
    if isinstance(value, Fraction):
        return fraction_to_str(value)
    if isinstance(value, (Path, os.PathLike)):
        return os.fspath(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"cannot record {type(value).__name__} in the manifest")


def relative_to_manifest(path: str | os.PathLike[str], manifest_dir: Path) -> str:
    """How the manifest records `path`: relative to the manifest's folder (`manifest_dir`), also
    when it lies beside that folder ("../stems/x.mix.wav"), so a project moved or copied whole
    keeps every output it names, as the review page's links do; absolute only where no relative
    path leads (another drive)."""
    resolved = Path(path).expanduser().resolve()
    try:
        return resolved.relative_to(manifest_dir).as_posix()
    except ValueError:
        pass
    try:
        return Path(os.path.relpath(resolved, manifest_dir.resolve())).as_posix()
    except ValueError:   # Windows: another drive
        return str(resolved)


def _media_facts(media: MediaInfo) -> dict[str, Any]:
    return {"path": media.path, "duration_s": media.duration_s, "fps": fraction_to_str(media.fps),
            "frame_count": media.frame_count, "width": media.width, "height": media.height,
            "rotation": media.rotation, "is_vfr": media.is_vfr, "has_audio": media.has_audio,
            "video_codec": media.video_codec, "size_bytes": media.size_bytes,
            "start_timecode": media.start_timecode, "video_start_s": media.video_start_s}


def _render_facts(render: RenderResult | None) -> dict[str, Any] | None:
    if render is None:
        return None
    stems = sorted({name for cue in render.cues for name in cue.stems})
    return {"backend": render.backend, "model_id": render.model_id, "model_revision": render.model_revision,
            "sample_rate": render.sample_rate, "stems": stems, "notes": list(render.notes),
            "free_timing_captions": list(render.free_timing_captions),
            "sound_bank": dict(render.sound_bank) if render.sound_bank else None}


def _loudness_facts(soundtrack: Soundtrack | None) -> dict[str, Any] | None:
    if soundtrack is None:
        return None
    return {"integrated_lufs": _finite(soundtrack.integrated_lufs),
            "true_peak_dbtp": _finite(soundtrack.true_peak_dbtp),
            "sample_rate": soundtrack.sample_rate, "total_samples": soundtrack.total_samples,
            "settings": dict(soundtrack.settings)}


def recorded_outputs(manifest: Mapping[str, Any], folder: Path) -> dict[str, Path]:
    """Each output a manifest in `folder` names, by role, as an absolute path: relative to the
    folder as `build_manifest` records it, else where it was written when only that is still there
    (`outputs_at`: an output outside the folder, the output folder since moved without it)."""
    outputs, written_at = manifest.get("outputs"), manifest.get("outputs_at")
    if not isinstance(outputs, dict):
        return {}
    written_at = written_at if isinstance(written_at, dict) else {}
    found = {}
    for role, rel in outputs.items():
        if not isinstance(rel, str):
            continue
        path = Path(os.path.normpath(Path(folder, rel).absolute()))   # "../stems/..." normalised
        at = written_at.get(role)
        if not path.exists() and isinstance(at, str) and Path(at).is_file():
            path = Path(at)
        found[role] = path
    return found


def read_recorded_outputs(manifest_path: Path) -> dict[str, Path]:
    """`recorded_outputs` of the manifest file at `manifest_path`; {} when there is none, it
    cannot be read, or it is no dub manifest (a path in someone else's JSON is never ours)."""
    try:
        data = json.loads(Path(manifest_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return recorded_outputs(data, Path(manifest_path).parent) if is_manifest(data) else {}


def _recorded_paths(outputs: Mapping[str, str | os.PathLike[str]],
                    manifest_dir: Path) -> tuple[dict[str, str], dict[str, str]]:
    """How a manifest in `manifest_dir` records `outputs`: the `outputs` entries (relative to the
    folder) and the `outputs_at` ones. Outputs outside the manifest's folder (a shared stems folder)
    are also kept by where they are: moving the project whole keeps the relative link, moving the
    output folder alone the absolute one."""
    recorded = {role: relative_to_manifest(path, manifest_dir) for role, path in outputs.items()}
    outside = {role: str(Path(outputs[role]).expanduser().resolve()) for role, rel in recorded.items()
               if rel.startswith("../")}
    return recorded, outside


def add_recorded_output(manifest_path: str | os.PathLike[str], role: str, path: str | os.PathLike[str]) -> None:
    """List `path` among the outputs of the manifest at `manifest_path` under `role`, as
    `build_manifest` lists the files a dub writes, for a file written after the manifest (the
    review page). The manifest is replaced whole, atomically.

    Raises:
        OutputError: the manifest is gone, unreadable or no dub manifest, or cannot be written back.
    """
    file = Path(manifest_path)
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise OutputError(f"{file} cannot be read, so it does not list {Path(path).name}.") from None
    if not is_manifest(manifest) or not isinstance(manifest.get("outputs"), dict):
        raise OutputError(f"{file} is no dub manifest, so it does not list {Path(path).name}.")
    recorded, outside = _recorded_paths({role: path}, file.absolute().parent)
    manifest["outputs"] = {**manifest["outputs"], **recorded}
    written_at = manifest.get("outputs_at")
    written_at = {k: v for k, v in written_at.items() if k != role} if isinstance(written_at, dict) else {}
    written_at.update(outside)
    if written_at:
        manifest["outputs_at"] = written_at
    else:
        manifest.pop("outputs_at", None)
    text = json.dumps(manifest, indent=2, ensure_ascii=False, default=_json_default, allow_nan=False)
    atomic_write_text(file, text + "\n")


def build_manifest(inputs: ExportInputs, outputs: Mapping[str, str | os.PathLike[str]],
                   manifest_dir: Path) -> dict[str, Any]:
    """The manifest as a JSON-ready dict; `outputs` maps a role ("video", "srt", "stem:fx") to a file."""
    plan = inputs.plan
    recorded, outside = _recorded_paths(outputs, manifest_dir)
    return {
        "schema": MANIFEST_SCHEMA,
        "tool": {"name": "dubber", "version": tool_version()},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "media": _media_facts(inputs.media),
        "analysis": inputs.analysis.to_dict(),
        "plan": plan.to_dict(),
        "render": _render_facts(inputs.render),
        "seeds": {"base": plan.seed, "cues": [cue.seed for cue in plan.cues]},
        "loudness": _loudness_facts(inputs.soundtrack),
        "outputs": recorded,
        **({"outputs_at": outside} if outside else {}),
        "settings": dict(inputs.settings),
    }


def write_manifest(path: str | os.PathLike[str], inputs: ExportInputs,
                   outputs: Mapping[str, str | os.PathLike[str]]) -> Path:
    """Write the `dub.json` manifest atomically. Returns its path."""
    target = check_output_folder(path)
    return _write_manifest_to(target, target, inputs, outputs)


def _write_manifest_to(file: Path, target: Path, inputs: ExportInputs,
                       outputs: Mapping[str, str | os.PathLike[str]]) -> Path:
    """Write the manifest that will live at `target` into `file` (itself, or its staged temporary)."""
    manifest = build_manifest(inputs, outputs, target.parent)
    text = json.dumps(manifest, indent=2, ensure_ascii=False, default=_json_default, allow_nan=False)
    atomic_write_text(file, text + "\n")
    return target


# ----------------------------------------------------------------------------- audio, captions, timelines

def wav_time_reference(media: MediaInfo, soundtrack: Soundtrack) -> int:
    """The TimeReference of the soundtrack's WAVs: the video's start timecode in samples (0 without one)."""
    return media_start_samples(media, soundtrack.sample_rate)


def write_track_wav(path: Path, soundtrack: Soundtrack, name: str = "mix", time_reference_samples: int = 0) -> Path:
    """The final mix ("mix") or stem `name` as a 24-bit Broadcast WAV, written atomically a block at
    a time (the gain applied as the track is read from disk). `time_reference_samples` is where it
    starts, in samples since midnight (see `wav_time_reference`)."""
    from ..media.audio_io import write_wav_blocks   # soundfile loads only when stems are written
    from ..media.bwf import BroadcastInfo

    about = BroadcastInfo(time_reference_samples, "dub mix" if name == "mix" else f"dub {name} stem")
    write_wav_blocks(path, lambda a, b: soundtrack.read(name, a, b), soundtrack.channels, soundtrack.total_samples,
                     soundtrack.sample_rate, bits=WAV_BITS, broadcast=about)
    return path.resolve()


def write_stems(folder: str | os.PathLike[str], soundtrack: Soundtrack, *, stems: bool = True,
                prefix: str = "", time_reference_samples: int = 0) -> dict[str, Path]:
    """Write `<prefix>mix.wav` and (when `stems`) one `<prefix><stem>.wav` per stem into `folder`
    (created if needed), all published together, each starting at `time_reference_samples`
    (see `write_track_wav`).

    Returns:
        {"mix": path, "<stem>": path, ...}
    """
    paths = ExportPaths(stems_dir=Path(folder), stems_prefix=prefix)
    with OutputTransaction(commit_record_path(paths.wav_file("mix"))) as txn:
        written = _stage_wavs(txn, paths, soundtrack, stems, time_reference_samples)
        txn.commit()
    return written


def stage_mix(txn: OutputTransaction, paths: ExportPaths, soundtrack: Soundtrack,
              time_reference_samples: int = 0) -> Path:
    """Write the mix WAV into the transaction (once: the mux reads it, the stems folder keeps it),
    starting at `time_reference_samples` (see `write_track_wav`)."""
    target = paths.wav_file("mix")
    staged = txn.staged(target)
    if staged is None:
        txn.make_folder(target.parent)
        staged = txn.stage(target)
        write_track_wav(staged, soundtrack, time_reference_samples=time_reference_samples)
    return staged


def _stage_wavs(txn: OutputTransaction, paths: ExportPaths, soundtrack: Soundtrack, stems: bool,
                time_reference_samples: int) -> dict[str, Path]:
    stage_mix(txn, paths, soundtrack, time_reference_samples)
    written = {"mix": paths.wav_file("mix")}
    if stems:
        for name in soundtrack.stem_tracks:
            written[name] = paths.wav_file(name)
            write_track_wav(txn.stage(written[name]), soundtrack, name, time_reference_samples)
    return written


def write_srt(path: str | os.PathLike[str], plan: DubPlan, media: MediaInfo) -> Path:
    """Shot captions as SubRip, timed from exact frame times. Returns the path."""
    return atomic_write_text(path, srt_text(entries_from_plan(plan), media))


def write_otio(path: str | os.PathLike[str], plan: DubPlan, media: MediaInfo, files: TimelineMedia,
               options: TimelineOptions = TimelineOptions()) -> Path:
    """The OpenTimelineIO timeline of the dub (.otio JSON). Returns the path."""
    timeline = build_timeline(plan, media, files, options)
    return atomic_write_text(path, timeline_to_otio_json(timeline))


def write_fcpxml(path: str | os.PathLike[str], plan: DubPlan, media: MediaInfo, files: TimelineMedia,
                 options: TimelineOptions = TimelineOptions()) -> Path:
    """The same timeline as FCPXML, through OTIO's fcpx_xml adapter, at the nearest rate Final
    Cut accepts (see `fcpxml_rate`). Returns the path.

    Raises:
        OutputError: the adapter is missing.
    """
    return atomic_write_text(path, _fcpxml_text(plan, media, files, options)[0])


def _fcpxml_text(plan: DubPlan, media: MediaInfo, files: TimelineMedia,
                 options: TimelineOptions) -> tuple[str, str | None]:
    """The FCPXML document, and the line saying its project was conformed to another rate (or None)."""
    rate, conform = fcpxml_rate(media)
    timeline = build_timeline(plan, media, files, options, rate)
    return timeline_to_fcpxml(timeline, rate, FcpxmlFacts.of(media, files)), conform


# ----------------------------------------------------------------------------- everything at once

def _no_fcpxml(err: OutputError) -> str:
    return f"no FCPXML written: {err}"


def _check_request(paths: ExportPaths, inputs: ExportInputs, options: ExportOptions) -> None:
    """Refuse what cannot be completed before any file is written, not half-way."""
    timelines = paths.timeline_stem is not None and (options.otio or options.fcpxml)
    if timelines and paths.stems_dir is None:
        raise ValueError("timelines reference the mix WAV; give ExportPaths.stems_dir")
    for target in (paths.manifest, paths.timeline_stem):
        if target is not None:
            check_output_folder(target)   # its folder must exist and be writable


def _export_audio(txn: OutputTransaction, paths: ExportPaths, inputs: ExportInputs,
                  options: ExportOptions) -> tuple[dict[str, Path], TimelineMedia]:
    """The mix and stem WAVs by role, and the media a timeline of them references."""
    if inputs.soundtrack is None:   # the first file written: nothing is left half-done
        raise ValueError("stems and timelines need the mixed soundtrack; pass ExportInputs.soundtrack")
    media = inputs.media
    time_reference = wav_time_reference(media, inputs.soundtrack)
    stems = _stage_wavs(txn, paths, inputs.soundtrack, options.stems, time_reference)
    files = TimelineMedia(video_path=inputs.video_path or media.path, mix_path=str(stems["mix"]),
                          stem_paths={n: str(p) for n, p in stems.items() if n != "mix"},
                          original_path=media.path if media.has_audio else None,
                          wav_time_reference_samples=time_reference)
    return {"mix" if name == "mix" else f"stem:{name}": p for name, p in stems.items()}, files


def _export_timelines(txn: OutputTransaction, paths: ExportPaths, inputs: ExportInputs, files: TimelineMedia | None,
                      options: ExportOptions, fcpxml: bool) -> tuple[dict[str, Path], list[str]]:
    """The .srt, .otio and (when `fcpxml`) .fcpxml files by role, and why any was left out."""
    media, plan = inputs.media, inputs.plan
    written: dict[str, Path] = {}
    notes: list[str] = []
    layout = options.timeline
    if not layout.hit_markers:   # what the soundtrack hits, as markers an editor can move and give back
        layout = replace(layout, hit_markers=tuple(inputs.analysis.events))
    if not layout.muted_cues and inputs.settings.get("muted_cues"):
        # The run's muted shots (its options, as the manifest records them) show in the timelines.
        layout = replace(layout, muted_cues=tuple(int(i) for i in inputs.settings["muted_cues"]))

    def stage(suffix: str) -> Path:
        written[suffix[1:]] = paths.timeline_file(suffix).absolute()
        return txn.stage(written[suffix[1:]])

    if options.srt:
        write_srt(stage(".srt"), plan, media)
    if options.otio and files is not None:
        write_otio(stage(".otio"), plan, media, files, layout)
        notes += [note] if (note := ignored_timecode_note(media)) else []
    if fcpxml and files is not None:
        try:
            text, conform = _fcpxml_text(plan, media, files, layout)
        except OutputError as err:   # e.g. the adapter is not installed
            if not options.skip_unsupported_fcpxml:
                raise
            notes.append(_no_fcpxml(err))
        else:
            atomic_write_text(stage(".fcpxml"), text)
            notes += [conform] if conform else []
    return written, notes


def export_all(paths: ExportPaths, inputs: ExportInputs, options: ExportOptions = ExportOptions(),
               extra_outputs: Mapping[str, str | os.PathLike[str]] | None = None,
               transaction: OutputTransaction | None = None) -> ExportResult:
    """Write every requested export where `paths` say, the manifest last so it lists them all.

    Args:
        paths: where the manifest, stems and timelines go (None leaves a group out).
        inputs: analysis, plan, soundtrack and render results of the run.
        options: which files to write, and whether an FCPXML the video cannot have is an error.
        extra_outputs: files written elsewhere, listed first in the manifest and the result,
            e.g. {"video": out.mp4}.
        transaction: the job's transaction to stage every file into; the caller commits it.
            None: one of its own, committed here (every file appears together, manifest last).

    Returns:
        ExportResult: every output by role (the extra outputs included), and notes on files left out.

    Raises:
        OutputError: a destination cannot be written, or the FCPXML adapter is missing (unless
            `options.skip_unsupported_fcpxml`); nothing is written then.
        ValueError: stems or timelines were requested without a soundtrack or a stems folder.
    """
    _check_request(paths, inputs, options)
    if transaction is None:
        anchor = paths.manifest or (paths.timeline_file(".otio") if paths.timeline_stem else paths.wav_file("mix"))
        with OutputTransaction(commit_record_path(Path(anchor).expanduser().absolute())) as own:
            result = _stage_exports(own, paths, inputs, options, extra_outputs)
            own.commit()
        return result
    return _stage_exports(transaction, paths, inputs, options, extra_outputs)


def _stage_exports(txn: OutputTransaction, paths: ExportPaths, inputs: ExportInputs, options: ExportOptions,
                   extra_outputs: Mapping[str, str | os.PathLike[str]] | None) -> ExportResult:
    outputs: dict[str, Path] = {role: Path(p) for role, p in (extra_outputs or {}).items()}
    notes: list[str] = []
    files: TimelineMedia | None = None
    if paths.stems_dir is not None:
        audio, files = _export_audio(txn, paths, inputs, options)
        outputs.update(audio)
    if paths.timeline_stem is not None:
        timelines, timeline_notes = _export_timelines(txn, paths, inputs, files, options, options.fcpxml)
        outputs.update(timelines)
        notes += timeline_notes
    if paths.manifest is not None:
        manifest = Path(paths.manifest).expanduser().absolute()
        _write_manifest_to(txn.stage(manifest, last=True), manifest, inputs, outputs)
        outputs["manifest"] = manifest
    return ExportResult(outputs=outputs, notes=tuple(notes))
