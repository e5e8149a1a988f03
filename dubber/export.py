"""Everything a dub leaves behind besides the video: manifest, stems, captions, timelines.

- `<name>.dub.json`: the manifest (schema MANIFEST_SCHEMA): tool version, media facts, the whole
  analysis, the plan, who rendered it (backend, model id and revision), seeds, measured loudness
  and the files written, so automation never has to re-derive anything.
- `<name>_stems/mix.wav` and one WAV per stem, each the full length of the video.
- `<name>.srt`: shot captions timed from exact frame times.
- `<name>.otio` and `<name>.fcpxml`: editor timelines (see `dubber.timeline`).

Every file is written under a temporary name in its destination folder and renamed when
complete, so an interrupted export never leaves a file that looks finished.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from vision.types import MediaInfo, VideoAnalysis, fraction_to_str

from .errors import OutputError
from .srt import entries_from_plan, srt_text
from .timeline import (FcpxmlFacts, TimelineMedia, TimelineOptions, build_timeline, check_fcpxml_rate,
                       timeline_to_fcpxml, timeline_to_otio_json)
from .types import MANIFEST_SCHEMA, DubPlan, RenderResult, Soundtrack

log = logging.getLogger(__name__)

WAV_BITS = 24   # stems are delivered as 24-bit PCM, the editing-room default


# ----------------------------------------------------------------------------- atomic files

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


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to `path` (same extension, hidden name) and move it onto
    `path` when the block succeeds; on any error the temporary file is removed.

    Raises:
        OutputError: the destination folder is missing or read-only.
    """
    target = check_output_folder(path)
    temp = target.with_name(f".{target.stem}.{os.getpid()}-{secrets.token_hex(3)}.partial{target.suffix}")
    # O_EXCL: never reuse someone else's file. Not tempfile.mkstemp: its files are 0600 and a
    # rename keeps the mode, so outputs would be unreadable to the rest of a team; 0o666 lets
    # the umask decide, as for any new file.
    try:
        os.close(os.open(temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    except OSError as err:
        raise OutputError(f"Cannot write to {target.parent} ({err.strerror}); choose a writable output folder.") from err
    try:
        yield temp
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 text to `path` atomically. Returns the resolved path."""
    with atomic_output(path) as temp:
        with open(temp, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    return Path(path).expanduser().resolve()


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
    """Which files `export_all` writes. Timelines need the mix WAV, so they write it even when
    `stems` is off."""

    manifest: bool = True
    stems: bool = True
    srt: bool = True
    otio: bool = True
    fcpxml: bool = False
    timeline: TimelineOptions = TimelineOptions()


# ----------------------------------------------------------------------------- manifest

def tool_version() -> str:
    from . import __version__

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


def _relative(path: str | os.PathLike[str], base: Path) -> str:
    """Paths inside the manifest's folder are stored relative to it, so a folder can be moved."""
    resolved = Path(path).expanduser().resolve()
    try:
        return resolved.relative_to(base).as_posix()
    except ValueError:
        return str(resolved)


def _media_facts(media: MediaInfo) -> dict[str, Any]:
    return {"path": media.path, "duration_s": media.duration_s, "fps": fraction_to_str(media.fps),
            "frame_count": media.frame_count, "width": media.width, "height": media.height,
            "rotation": media.rotation, "is_vfr": media.is_vfr, "has_audio": media.has_audio,
            "video_codec": media.video_codec, "size_bytes": media.size_bytes,
            "start_timecode": media.start_timecode}


def _render_facts(render: RenderResult | None) -> dict[str, Any] | None:
    if render is None:
        return None
    stems = sorted({name for cue in render.cues for name in cue.stems})
    return {"backend": render.backend, "model_id": render.model_id, "model_revision": render.model_revision,
            "sample_rate": render.sample_rate, "stems": stems, "notes": list(render.notes),
            "free_timing_captions": list(render.free_timing_captions)}


def _loudness_facts(soundtrack: Soundtrack | None) -> dict[str, Any] | None:
    if soundtrack is None:
        return None
    return {"integrated_lufs": _finite(soundtrack.integrated_lufs),
            "true_peak_dbtp": _finite(soundtrack.true_peak_dbtp),
            "sample_rate": soundtrack.sample_rate, "total_samples": soundtrack.total_samples,
            "settings": dict(soundtrack.settings)}


def build_manifest(inputs: ExportInputs, outputs: Mapping[str, str | os.PathLike[str]],
                   manifest_dir: Path) -> dict[str, Any]:
    """The manifest as a JSON-ready dict; `outputs` maps a role ("video", "srt", "stem:fx") to a file."""
    plan = inputs.plan
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
        "outputs": {role: _relative(path, manifest_dir) for role, path in outputs.items()},
        "settings": dict(inputs.settings),
    }


def write_manifest(path: str | os.PathLike[str], inputs: ExportInputs,
                   outputs: Mapping[str, str | os.PathLike[str]]) -> Path:
    """Write the `dub.json` manifest atomically. Returns its path."""
    target = check_output_folder(path)
    manifest = build_manifest(inputs, outputs, target.parent)
    text = json.dumps(manifest, indent=2, ensure_ascii=False, default=_json_default, allow_nan=False)
    return atomic_write_text(target, text + "\n")


# ----------------------------------------------------------------------------- audio, captions, timelines

def _write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> Path:
    """24-bit WAV of float audio shaped (channels, samples), written atomically."""
    from .audio_io import write_wav   # soundfile loads only when stems are written

    write_wav(path, audio, sample_rate, bits=WAV_BITS)
    return path.resolve()


def write_stems(folder: str | os.PathLike[str], soundtrack: Soundtrack, *, stems: bool = True) -> dict[str, Path]:
    """Write `mix.wav` and (when `stems`) one WAV per stem into `folder` (created if needed).

    Returns:
        {"mix": path, "<stem>": path, ...}
    """
    out = Path(folder).expanduser()
    check_output_folder(out)   # the parent must exist and be writable
    out.mkdir(exist_ok=True)
    written = {"mix": _write_wav(out / "mix.wav", soundtrack.mix, soundtrack.sample_rate)}
    if stems:
        for name, audio in soundtrack.stems.items():
            written[name] = _write_wav(out / f"{name}.wav", audio, soundtrack.sample_rate)
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
    """The same timeline as FCPXML, through OTIO's fcpx_xml adapter. Returns the path.

    Raises:
        OutputError: the video's frame rate has no FCPXML format, or the adapter is missing.
    """
    timeline = build_timeline(plan, media, files, options)
    return atomic_write_text(path, timeline_to_fcpxml(timeline, media.fps, FcpxmlFacts.of(media, files)))


def export_all(folder: str | os.PathLike[str], basename: str, inputs: ExportInputs,
               options: ExportOptions = ExportOptions(),
               extra_outputs: Mapping[str, str | os.PathLike[str]] | None = None) -> list[Path]:
    """Write every requested export into `folder`, the manifest last so it lists them all.

    Args:
        folder: destination folder (must exist).
        basename: file name stem shared by the exports, e.g. "film.dub".
        inputs: analysis, plan, soundtrack and render results of the run.
        options: which files to write.
        extra_outputs: files written elsewhere to list in the manifest, e.g. {"video": out.mp4}.

    Returns:
        The paths written, manifest last.

    Raises:
        OutputError: the folder cannot be written, or a timeline format cannot express the video.
        ValueError: stems or timelines were requested without a soundtrack.
    """
    out = Path(folder).expanduser()
    media, plan = inputs.media, inputs.plan
    written: dict[str, Path] = {}
    wants_audio = options.stems or options.otio or options.fcpxml
    if wants_audio and inputs.soundtrack is None:
        raise ValueError("stems and timelines need the mixed soundtrack; pass ExportInputs.soundtrack")
    if options.fcpxml:
        check_fcpxml_rate(media.fps)   # refuse before writing anything, not half-way
    files: TimelineMedia | None = None
    if inputs.soundtrack is not None and wants_audio:
        stems = write_stems(out / f"{basename}_stems", inputs.soundtrack, stems=options.stems)
        written.update({"mix" if name == "mix" else f"stem:{name}": p for name, p in stems.items()})
        files = TimelineMedia(video_path=inputs.video_path or media.path, mix_path=str(stems["mix"]),
                              stem_paths={n: str(p) for n, p in stems.items() if n != "mix"},
                              original_path=media.path if media.has_audio else None)
    if options.srt:
        written["srt"] = write_srt(out / f"{basename}.srt", plan, media)
    if options.otio and files is not None:
        written["otio"] = write_otio(out / f"{basename}.otio", plan, media, files, options.timeline)
    if options.fcpxml and files is not None:
        written["fcpxml"] = write_fcpxml(out / f"{basename}.fcpxml", plan, media, files, options.timeline)
    if options.manifest:
        listed = {**{k: str(v) for k, v in (extra_outputs or {}).items()}, **{k: str(v) for k, v in written.items()}}
        written["manifest"] = write_manifest(out / f"{basename}.dub.json", inputs, listed)
    return list(written.values())
