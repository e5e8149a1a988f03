"""Editor timelines of a dub: OpenTimelineIO (.otio) and, through OTIO's adapter, FCPXML.

Every range is expressed at the TIMELINE rate (the video's frame rate), including the WAV
references: FCP7 XML and AAF writers reject sample-rate ranges, and editors conform by frames.
A cue's clip points into the full-length mix WAV at the cue's own offset, so the timeline lines
up with the muxed file frame for frame.

When the video states a start timecode, the timeline starts there and the picture's (and the
original sound's) source range begins at that timecode, so editors relink media by timecode.
"""
from __future__ import annotations

import logging
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from vision.types import MediaInfo

from ..errors import OutputError
from ..types import Cue, DubPlan

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


ZERO_TIMECODE = "00:00:00:00"
# Apple's names of the formats FCP knows, by frame size; other sizes keep the adapter's name.
_FCPX_FORMAT_SIZES: dict[tuple[int, int], str] = {(1280, 720): "720p", (1920, 1080): "1080p",
                                                  (3840, 2160): "3840x2160p", (4096, 2160): "4096x2160p"}


@dataclass(frozen=True)
class TimelineOptions:
    """`start_timecode` is the timeline's global start ("01:00:00:00" is the broadcast habit);
    None starts where the video's own timecode does (zero when it has none).
    `stem_tracks` adds one disabled track per stem (music, fx) for editors who remix."""

    name: str = "dub"
    start_timecode: str | None = None
    stem_tracks: bool = False


@dataclass(frozen=True)
class TimelineMedia:
    """Files the timeline points at: the picture, the mixed dub WAV, optional stem WAVs, and the
    file whose audio is the original sound (usually the source video; None: no "Original" track).
    `video_has_audio`: whether the picture file carries sound; None: yes when it is not the
    analysed source (a dubbed output always has the dub), else whatever the source has.
    """

    video_path: str
    mix_path: str
    stem_paths: Mapping[str, str] | None = None
    original_path: str | None = None
    video_has_audio: bool | None = None

    def picture_has_audio(self, media: MediaInfo) -> bool:
        if self.video_has_audio is not None:
            return self.video_has_audio
        return Path(self.video_path).resolve() != Path(media.path).resolve() or media.has_audio


def _otio() -> Any:
    import opentimelineio

    return opentimelineio


def _url(path: str | os.PathLike[str]) -> str:
    return Path(path).resolve().as_uri()


def _range(start_frame: int, frames: int, rate: float) -> "otio.opentime.TimeRange":
    ot = _otio().opentime
    return ot.TimeRange(ot.RationalTime(start_frame, rate), ot.RationalTime(frames, rate))


def _reference(path: str, media: MediaInfo, rate: float, first_frame: int = 0) -> "otio.schema.ExternalReference":
    return _otio().schema.ExternalReference(target_url=_url(path),
                                            available_range=_range(first_frame, media.frame_count, rate))


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


def _whole_file_track(name: str, kind: str, path: str, media: MediaInfo, rate: float,
                      first_frame: int) -> "otio.schema.Track":
    """One clip of a whole source file, its range counted from the file's own first frame
    number (its start timecode)."""
    schema = _otio().schema
    track = schema.Track(name=name, kind=kind)
    track.append(schema.Clip(name=name.lower() if kind == schema.TrackKind.Audio else Path(path).stem,
                             media_reference=_reference(path, media, rate, first_frame),
                             source_range=_range(first_frame, media.frame_count, rate)))
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


def media_first_frame(media: MediaInfo) -> int:
    """Frame number of the video's first frame by its own timecode (0 without one). A timecode
    the rate cannot express (a VFR average) is ignored with a warning: the file still plays."""
    if not media.start_timecode:
        return 0
    try:
        return round(_start_time(media.start_timecode, float(media.fps)).value)
    except OutputError:
        log.warning("ignoring the video's start timecode %s: not valid at %.3f fps",
                    media.start_timecode, float(media.fps))
        return 0


def build_timeline(plan: DubPlan, media: MediaInfo, files: TimelineMedia,
                   options: TimelineOptions = TimelineOptions()) -> "otio.schema.Timeline":
    """An OTIO timeline: V1 the picture, "Original" audio when `files.original_path` is set, "Dub" with
    one clip per cue (caption, seed, shot in `metadata["dub"]`), optional disabled stem tracks.

    Raises:
        OutputError: `start_timecode` is not a valid timecode at the video's rate.
    """
    ot = _otio()
    rate = float(media.fps)
    first = media_first_frame(media)
    timeline = ot.schema.Timeline(name=options.name)
    if options.start_timecode is not None:
        start_timecode = options.start_timecode
        timeline.global_start_time = _start_time(start_timecode, rate)
    else:
        start_timecode = media.start_timecode if first else ZERO_TIMECODE
        timeline.global_start_time = ot.opentime.RationalTime(first, rate)
    timeline.metadata["dub"] = {"fps": plan.fps, "sample_rate": plan.sample_rate, "style": plan.style,
                                "seed": plan.seed, "instruction": plan.instruction,
                                "start_timecode": start_timecode, "source_timecode": media.start_timecode}
    timeline.tracks.append(_whole_file_track("V1", ot.schema.TrackKind.Video, files.video_path, media, rate,
                                             first))
    if files.original_path is not None:
        timeline.tracks.append(_whole_file_track("Original", ot.schema.TrackKind.Audio,
                                                 files.original_path, media, rate, first))
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


def _seconds_text(seconds: Fraction) -> str:
    """FCPXML's rational seconds: "0s", "5s", "1001/24000s"."""
    if seconds.denominator == 1:
        return f"{seconds.numerator}s"
    return f"{seconds.numerator}/{seconds.denominator}s"


def _frames_at(time: "otio.opentime.RationalTime", fps: Fraction) -> Fraction:
    """Exact seconds of a RationalTime whose value counts whole frames at `fps`."""
    return Fraction(round(time.value)) / fps


def _fix_connected_offsets(xml: str, timeline: "otio.schema.Timeline", fps: Fraction) -> str:
    """Rewrite connected-clip offsets with exact times.

    The adapter recomputes a connected clip's offset through an integer frame rate (23 for
    23.976), which drifts by most of a frame. A connected clip's offset is in its parent's
    source time: the picture clip sits at the start of the sequence with its source starting at
    the video's first frame number, so the offset is that start plus the clip's exact position.
    """
    source_start = _frames_at(_picture_clip(timeline).source_range.start_time, fps)
    for track in timeline.tracks:
        if track.kind != _otio().schema.TrackKind.Audio:
            continue
        for clip in track.find_clips():
            exact = source_start + _frames_at(clip.range_in_parent().start_time, fps)
            text = "0s" if exact == 0 else _seconds_text(exact)
            pattern = re.compile(r'(<clip name="' + re.escape(clip.name) + r'" offset=")[^"]*(")')
            xml = pattern.sub(lambda m: m.group(1) + text + m.group(2), xml, count=1)
    return xml


def _picture_clip(timeline: "otio.schema.Timeline") -> "otio.schema.Clip":
    return timeline.video_tracks()[0].find_clips()[0]


@dataclass(frozen=True)
class FcpxmlFacts:
    """What FCPXML states that an OTIO timeline does not carry: the frame size (as displayed,
    rotation applied) and whether the picture file has sound of its own (a dubbed output)."""

    width: int = 0
    height: int = 0
    picture_has_audio: bool = False

    @classmethod
    def of(cls, media: MediaInfo, files: TimelineMedia) -> "FcpxmlFacts":
        upright = media.rotation % 180 == 90
        width, height = (media.height, media.width) if upright else (media.width, media.height)
        return cls(width, height, files.picture_has_audio(media))


def _format_name(width: int, height: int, fps: Fraction) -> str | None:
    size = _FCPX_FORMAT_SIZES.get((width, height))
    if size is None:
        return None
    rate = f"{float(fps):.2f}".replace(".", "").rstrip("0") if fps.denominator != 1 else str(fps.numerator)
    return f"FFVideoFormat{size}{rate}"


def _finish_fcpxml(xml: str, timeline: "otio.schema.Timeline", fps: Fraction, facts: FcpxmlFacts) -> str:
    """Add what the adapter leaves out: the sequence's start timecode (tcStart, with the spine
    moved to it), exact source starts of the picture, frame size and name of the format, and
    hasAudio on a picture asset that has sound."""
    head, body = xml.split("<!DOCTYPE fcpxml>", 1)
    root = ET.fromstring(body.strip())
    sequence = root.find(".//sequence")
    sequence_start = _frames_at(timeline.global_start_time, fps) if timeline.global_start_time else Fraction(0)
    sequence.set("tcStart", _seconds_text(sequence_start))
    start_timecode = str(timeline.metadata.get("dub", {}).get("start_timecode") or "")
    sequence.set("tcFormat", "DF" if ";" in start_timecode else "NDF")
    for item in sequence.find("spine"):
        item.set("offset", _seconds_text(sequence_start + _seconds(item.get("offset", "0s"))))
    clips = list(timeline.find_clips())
    starts = {c.name: _frames_at(c.source_range.start_time, fps) for c in clips}
    for element in root.iter("clip"):
        if starts.get(element.get("name")):
            element.set("start", _seconds_text(starts[element.get("name")]))
    available = {c.media_reference.target_url: _frames_at(c.media_reference.available_range.start_time, fps)
                 for c in clips}
    picture_url = _picture_clip(timeline).media_reference.target_url
    for asset in root.iter("asset"):
        if asset.get("src") in available:
            asset.set("start", _seconds_text(available[asset.get("src")]))
        if asset.get("src") == picture_url and facts.picture_has_audio:
            asset.set("hasAudio", "1")
    for element in root.iter("format"):
        if facts.width and facts.height:
            element.set("width", str(facts.width))
            element.set("height", str(facts.height))
        name = _format_name(facts.width, facts.height, fps)
        if name and not element.get("name"):
            element.set("name", name)
    return _pretty(root, head)


def _seconds(text: str) -> Fraction:
    return Fraction(text.removesuffix("s")) if text not in ("", "0s") else Fraction(0)


def _pretty(root: ET.Element, head: str) -> str:
    from xml.dom import minidom

    for element in root.iter():   # drop the adapter's indentation before indenting afresh
        if element.text is not None and not element.text.strip():
            element.text = None
        if element.tail is not None and not element.tail.strip():
            element.tail = None
    text = minidom.parseString(ET.tostring(root, encoding="unicode")).toprettyxml(indent="    ")
    return head.rstrip() + "\n<!DOCTYPE fcpxml>\n" + text.split("\n", 1)[1]


def check_fcpxml_rate(fps: Fraction) -> None:
    """Raises OutputError when FCPXML has no format for `fps` (the .otio timeline has no such limit)."""
    if fps not in FCPXML_FRAME_DURATIONS:
        rates = ", ".join(f"{float(r):.3f}".rstrip("0").rstrip(".") for r in FCPXML_FRAME_DURATIONS)
        raise OutputError(f"FCPXML supports only {rates} fps and this video runs at {float(fps):.3f}; "
                          "use the .otio timeline instead.")


def timeline_to_fcpxml(timeline: "otio.schema.Timeline", fps: Fraction, facts: FcpxmlFacts = FcpxmlFacts()) -> str:
    """FCPXML text of `timeline` through OTIO's fcpx_xml adapter, completed with `facts`.

    Raises:
        OutputError: the frame rate is not one FCPXML formats express, or the adapter is missing.
    """
    check_fcpxml_rate(fps)
    _fcpx_adapter_module(fps)
    xml = _otio().adapters.write_to_string(timeline, "fcpx_xml")
    return _finish_fcpxml(_fix_connected_offsets(xml, timeline, fps), timeline, fps, facts)
