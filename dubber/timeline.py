"""Editor timelines of a dub: OpenTimelineIO (.otio) and, through OTIO's adapter, FCPXML.

Every range is expressed at the TIMELINE rate (the video's frame rate), including the WAV
references: FCP7 XML and AAF writers reject sample-rate ranges, and editors conform by frames.
A cue's clip points into the full-length mix WAV at the cue's own offset, so the timeline lines
up with the muxed file frame for frame.
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from vision.types import MediaInfo

from .errors import OutputError
from .types import Cue, DubPlan

if TYPE_CHECKING:  # opentimelineio is imported where it is used, to keep `import dubber` light
    import opentimelineio as otio

log = logging.getLogger(__name__)

# Exact frame rates FCPXML's adapter can express, with the frameDuration FCP expects.
FCPXML_FRAME_DURATIONS: dict[Fraction, str] = {
    Fraction(24000, 1001): "1001/24000s",
    Fraction(24): "25/600s",
    Fraction(25): "1/25s",
    Fraction(30000, 1001): "1001/30000s",
    Fraction(30): "100/3000s",
    Fraction(50): "1/50s",
    Fraction(60000, 1001): "1001/60000s",
    Fraction(60): "1/60s",
}


@dataclass(frozen=True)
class TimelineOptions:
    """`start_timecode` is the timeline's global start ("01:00:00:00" is the broadcast habit);
    `stem_tracks` adds one disabled track per stem (music, fx) for editors who remix."""

    name: str = "dub"
    start_timecode: str = "00:00:00:00"
    stem_tracks: bool = False


@dataclass(frozen=True)
class TimelineMedia:
    """Files the timeline points at: the picture, the mixed dub WAV, optional stem WAVs, and the
    file whose audio is the original sound (usually the source video; None: no "Original" track).
    """

    video_path: str
    mix_path: str
    stem_paths: Mapping[str, str] | None = None
    original_path: str | None = None


def _otio() -> Any:
    import opentimelineio

    return opentimelineio


def _url(path: str | os.PathLike[str]) -> str:
    return Path(path).resolve().as_uri()


def _range(start_frame: int, frames: int, rate: float) -> "otio.opentime.TimeRange":
    ot = _otio().opentime
    return ot.TimeRange(ot.RationalTime(start_frame, rate), ot.RationalTime(frames, rate))


def _reference(path: str, media: MediaInfo, rate: float) -> "otio.schema.ExternalReference":
    return _otio().schema.ExternalReference(target_url=_url(path),
                                            available_range=_range(0, media.frame_count, rate))


def cue_clip_name(cue: Cue) -> str:
    """Unique, readable clip name: shot number, plus the part of a split shot."""
    base = f"shot_{cue.shot_index:03d}"
    return base if cue.parts == 1 else f"{base}_part{cue.part + 1}"


def _cue_metadata(cue: Cue, plan: DubPlan) -> dict[str, Any]:
    return {"cue": cue.index, "shot": cue.shot_index, "part": cue.part, "parts": cue.parts,
            "caption": cue.caption, "prompt": cue.prompt, "seed": cue.seed, "style": plan.style,
            "start_sample": cue.start_sample, "num_samples": cue.num_samples,
            "sample_rate": plan.sample_rate}


def _cue_track(name: str, wav_path: str, plan: DubPlan, media: MediaInfo, rate: float,
               suffix: str = "") -> "otio.schema.Track":
    schema = _otio().schema
    track = schema.Track(name=name, kind=schema.TrackKind.Audio)
    for cue in plan.cues:
        clip = schema.Clip(name=cue_clip_name(cue) + suffix, media_reference=_reference(wav_path, media, rate),
                           source_range=_range(cue.start_frame, cue.end_frame - cue.start_frame, rate))
        clip.metadata["dub"] = _cue_metadata(cue, plan)
        track.append(clip)
    return track


def _whole_file_track(name: str, kind: str, path: str, media: MediaInfo, rate: float) -> "otio.schema.Track":
    schema = _otio().schema
    track = schema.Track(name=name, kind=kind)
    track.append(schema.Clip(name=name.lower() if kind == schema.TrackKind.Audio else Path(path).stem,
                             media_reference=_reference(path, media, rate),
                             source_range=_range(0, media.frame_count, rate)))
    return track


def _start_time(timecode: str, rate: float) -> "otio.opentime.RationalTime":
    ot = _otio().opentime
    if timecode.replace(":", "").replace(";", "").strip("0") == "" and timecode:
        return ot.RationalTime(0, rate)   # zero needs no SMPTE rate (15 fps, VFR averages)
    try:
        return ot.from_timecode(timecode, rate)
    except ValueError as err:
        raise OutputError(f"Start timecode {timecode!r} is not valid at {rate:.3f} fps; use HH:MM:SS:FF "
                          "at a SMPTE rate, or 00:00:00:00.") from err


def build_timeline(plan: DubPlan, media: MediaInfo, files: TimelineMedia,
                   options: TimelineOptions = TimelineOptions()) -> "otio.schema.Timeline":
    """An OTIO timeline: V1 the picture, "Original" audio when `files.original_path` is set, "Dub" with
    one clip per cue (caption, seed, shot in `metadata["dub"]`), optional disabled stem tracks.

    Raises:
        OutputError: `start_timecode` is not a valid timecode at the video's rate.
    """
    ot = _otio()
    rate = float(media.fps)
    timeline = ot.schema.Timeline(name=options.name)
    timeline.global_start_time = _start_time(options.start_timecode, rate)
    timeline.metadata["dub"] = {"fps": plan.fps, "sample_rate": plan.sample_rate, "style": plan.style,
                                "seed": plan.seed, "instruction": plan.instruction}
    timeline.tracks.append(_whole_file_track("V1", ot.schema.TrackKind.Video, files.video_path, media, rate))
    if files.original_path is not None:
        timeline.tracks.append(_whole_file_track("Original", ot.schema.TrackKind.Audio,
                                                 files.original_path, media, rate))
    timeline.tracks.append(_cue_track("Dub", files.mix_path, plan, media, rate))
    if options.stem_tracks:
        for stem, path in (files.stem_paths or {}).items():
            track = _cue_track(f"Dub {stem}", path, plan, media, rate, suffix=f"_{stem}")
            track.enabled = False   # the mix already contains them; enable to remix
            timeline.tracks.append(track)
    return timeline


def timeline_to_otio_json(timeline: "otio.schema.Timeline") -> str:
    return _otio().adapters.write_to_string(timeline, "otio_json")


# ----------------------------------------------------------------------------- FCPXML

def _fcpx_adapter_module(fps: Fraction) -> Any:
    """The fcpx_xml adapter module, taught the exact float of NTSC rates.

    The adapter looks frame rates up by int() or by float key (23.98, 29.97, ...), so the exact
    24000/1001 misses its table; adding the exact float key makes it pick the right format.
    """
    ot = _otio()
    try:
        module = ot.adapters.from_name("fcpx_xml").module()
    except Exception as err:  # the adapter is an optional plug-in; any load failure means "absent"
        raise OutputError("FCPXML export needs the otio-fcpx-xml-adapter package; "
                          "install it with pip install otio-fcpx-xml-adapter.") from err
    table = module.FRAMERATE_FRAMEDURATION
    table.setdefault(float(fps), FCPXML_FRAME_DURATIONS[fps])
    return module


def _fix_connected_offsets(xml: str, timeline: "otio.schema.Timeline", fps: Fraction) -> str:
    """Rewrite connected-clip offsets with exact times.

    The adapter recomputes a connected clip's offset through an integer frame rate (23 for
    23.976), which drifts by most of a frame; the picture clip sits at 0 with start 0, so a
    connected clip's offset is simply its exact start on the timeline.
    """
    for track in timeline.tracks:
        if track.kind != _otio().schema.TrackKind.Audio:
            continue
        for clip in track.find_clips():
            start = clip.range_in_parent().start_time
            exact = Fraction(round(start.value)) / fps   # values are whole frames at the timeline rate
            text = "0s" if exact == 0 else f"{exact.numerator}/{exact.denominator}s"
            pattern = re.compile(r'(<clip name="' + re.escape(clip.name) + r'" offset=")[^"]*(")')
            xml = pattern.sub(lambda m: m.group(1) + text + m.group(2), xml, count=1)
    return xml


def check_fcpxml_rate(fps: Fraction) -> None:
    """Raises OutputError when FCPXML has no format for `fps` (the .otio timeline has no such limit)."""
    if fps not in FCPXML_FRAME_DURATIONS:
        rates = ", ".join(f"{float(r):.3f}".rstrip("0").rstrip(".") for r in FCPXML_FRAME_DURATIONS)
        raise OutputError(f"FCPXML supports only {rates} fps and this video runs at {float(fps):.3f}; "
                          "use the .otio timeline instead.")


def timeline_to_fcpxml(timeline: "otio.schema.Timeline", fps: Fraction) -> str:
    """FCPXML text of `timeline` through OTIO's fcpx_xml adapter.

    Raises:
        OutputError: the frame rate is not one FCPXML formats express, or the adapter is missing.
    """
    check_fcpxml_rate(fps)
    _fcpx_adapter_module(fps)
    xml = _otio().adapters.write_to_string(timeline, "fcpx_xml")
    return _fix_connected_offsets(xml, timeline, fps)
