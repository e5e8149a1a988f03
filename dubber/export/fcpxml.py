"""FCPXML of a dub's timeline, written through OpenTimelineIO's adapter and then finished the way
Final Cut Pro and DaVinci Resolve read it: the connected clips' offsets exact, the media at its own
timecode, only the project in the document, assets named after their files, the video's own rate
kept, and the tracks that are off in the .otio disabled here too.
"""
from __future__ import annotations

import logging
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vision.types import MediaInfo

from ..errors import OutputError
from .timeline import FCPXML_FRAME_DURATIONS, TimelineMedia, file_url_path, frame_grid_rate, otio_module

if TYPE_CHECKING:  # opentimelineio is imported where it is used, to keep `import dubber` light
    import opentimelineio as otio

log = logging.getLogger(__name__)

# Apple's names of the formats FCP knows, by frame size; other sizes keep the adapter's name.
_FCPX_FORMAT_SIZES: dict[tuple[int, int], str] = {(1280, 720): "720p", (1920, 1080): "1080p",
                                                  (3840, 2160): "3840x2160p", (4096, 2160): "4096x2160p"}


def _fcpx_adapter_module(fps: Fraction) -> Any:
    """The fcpx_xml adapter module, taught the exact float of NTSC rates.

    The adapter looks frame rates up by int() or by float key (23.98, 29.97, ...), so the exact
    24000/1001 misses its table; adding the exact float key makes it pick the right format.
    """
    ot = otio_module()
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
        if track.kind != otio_module().schema.TrackKind.Audio:
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
    # The video files' own constant rate, kept on their assets when the project is conformed to
    # another; None: they share the project's format.
    video_fps: Fraction | None = None

    @classmethod
    def of(cls, media: MediaInfo, files: TimelineMedia) -> "FcpxmlFacts":
        upright = media.rotation % 180 == 90
        width, height = (media.height, media.width) if upright else (media.width, media.height)
        return cls(width, height, files.picture_has_audio(media), None if media.is_vfr else media.fps)


def _format_name(width: int, height: int, fps: Fraction) -> str | None:
    size = _FCPX_FORMAT_SIZES.get((width, height))
    if size is None:
        return None
    rate = f"{float(fps):.2f}".replace(".", "").rstrip("0") if fps.denominator != 1 else str(fps.numerator)
    return f"FFVideoFormat{size}{rate}"


def _finish_fcpxml(xml: str, timeline: "otio.schema.Timeline", fps: Fraction, facts: FcpxmlFacts,
                   names: dict[str, str] | None = None) -> str:
    """Add what the adapter leaves out: the sequence's start timecode (tcStart, with the spine
    moved to it), exact source starts of the picture, frame size and name of the format, and
    hasAudio on a picture asset that has sound; make every marker a standard one (not a to-do);
    keep only the project beside the resources, with
    each asset named after its file; then give back the real names of `names` ({token: name},
    see `_with_plain_names`)."""
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
    _media_at_its_timecode(root)
    for element in root.iter("format"):
        if facts.width and facts.height:
            element.set("width", str(facts.width))
            element.set("height", str(facts.height))
        name = _format_name(facts.width, facts.height, fps)
        if name and not element.get("name"):
            element.set("name", name)
    if facts.video_fps is not None and facts.video_fps != fps:
        _keep_video_rate(root, facts, {picture_url} | _original_urls(timeline))
    _disable_tracks(root, timeline)
    _audio_roles(root, timeline)
    _standard_markers(root)
    _keep_only_the_project(root)
    _name_assets_after_their_files(root)
    for element in root.iter():
        for key, value in element.attrib.items():
            if value in (names or {}):
                element.set(key, names[value])
    return _pretty(root, head)


def _audio_roles(root: ET.Element, timeline: "otio.schema.Timeline") -> None:
    """Give every audio clip the role of its track (`timeline.STEM_ROLES`): without one Final Cut
    files all of it under Dialogue, and the music and effects stems cannot be told apart in its
    roles, audio lanes and role-based exports."""
    role_of = {clip.media_reference.target_url: track.metadata.get("dub", {}).get("role")
               for track in timeline.audio_tracks() for clip in track.find_clips()}
    source_of = {asset.get("id"): asset.get("src") for asset in root.iter("asset")}
    for audio in root.iter("audio"):
        role = role_of.get(source_of.get(audio.get("ref")))
        if role:
            audio.set("role", role)


def _media_at_its_timecode(root: ET.Element) -> None:
    """Put each clip's media at its own time code inside the clip.

    A `clip` shows its local timeline from `start` on, and the adapter writes the media in it
    (the picture, or a gap carrying the sound) at offset 0, reading the asset from 0. Media that
    starts at a time code (an asset `start` of 3600 s for 01:00:00:00) then lies an hour before
    the window the clip shows: it would come in empty. The media goes to the clip's local time of
    its first frame, reading the asset from that frame, as Final Cut writes a compound clip."""
    asset_start = {a.get("id"): _seconds(a.get("start", "0s")) for a in root.iter("asset")}
    for clip in root.iter("clip"):
        for child in clip:
            if child.tag == "video":
                media = [child]
            elif child.tag == "gap":
                media = [a for a in child if a.tag == "audio"]
            else:
                continue
            starts = [asset_start.get(m.get("ref"), Fraction(0)) for m in media]
            for element, begins in zip(media, starts):
                if begins:
                    element.set("start", _seconds_text(begins))
            begins = max(starts, default=Fraction(0))
            if begins:
                child.set("offset", _seconds_text(begins + _seconds(child.get("offset", "0s"))))


def _standard_markers(root: ET.Element) -> None:
    """Hit and shot markers as standard markers. The adapter turns a marker's colour into
    `completed` (red 0, green 1), which makes it a to-do item in Final Cut: every impact an
    unfinished task, every whoosh a finished one. The kind is in the marker's name."""
    for marker in root.iter("marker"):
        marker.attrib.pop("completed", None)


def _keep_only_the_project(root: ET.Element) -> None:
    """Drop the adapter's browser clips beside the project: one whole-file `asset-clip` per
    timeline clip, named after a single shot, which Final Cut would import into the event as
    that many clips. The project references its assets in `resources` directly."""
    for holder in [root, *root.findall("event"), *root.findall("library/event")]:
        for element in holder.findall("asset-clip"):
            holder.remove(element)


def _name_assets_after_their_files(root: ET.Element) -> None:
    """The adapter names an asset after the first clip that uses it ("shot_000" for the whole
    mix); relink dialogs and the inspector show that name, so it becomes the file's own."""
    for asset in root.iter("asset"):
        path = file_url_path(asset.get("src", ""))
        if path:
            asset.set("name", Path(path).name)


def _original_urls(timeline: "otio.schema.Timeline") -> set[str]:
    return {c.media_reference.target_url for t in timeline.tracks if t.name.endswith(" original")
            for c in t.find_clips()}


def _keep_video_rate(root: ET.Element, facts: FcpxmlFacts, urls: set[str]) -> None:
    """Give the video assets a format at their own rate: the project is conformed, the media is not."""
    resources = root.find("resources")
    taken = {e.get("id") for e in root.iter() if e.get("id")}
    format_id = next(f"r{n}" for n in range(1, len(taken) + 2) if f"r{n}" not in taken)
    own = ET.Element("format", id=format_id, frameDuration=_seconds_text(1 / facts.video_fps))
    if facts.width and facts.height:
        own.set("width", str(facts.width))
        own.set("height", str(facts.height))
    resources.insert(0, own)
    for asset in root.iter("asset"):
        if asset.get("src") in urls:
            asset.set("format", format_id)


def _disable_tracks(root: ET.Element, timeline: "otio.schema.Timeline") -> None:
    """The adapter drops OTIO's track and clip switches: clips of a disabled track, and disabled
    clips (a muted shot's), come in disabled; a muted shot's clips carry a note saying so."""
    off = {c.name for t in timeline.tracks for c in t.find_clips() if not (t.enabled and c.enabled)}
    muted = {c.name for c in timeline.find_clips() if c.metadata.get("dub", {}).get("muted")}
    for element in root.iter("clip"):
        if element.get("name") in off:
            element.set("enabled", "0")
        if element.get("name") in muted and element.find("note") is None:
            note = ET.Element("note")
            note.text = "muted in the dub"
            element.insert(0, note)   # FCPXML wants a clip's note before its other children


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
    """Raises OutputError when FCPXML has no format for `fps` (see `fcpxml_rate` for the conform)."""
    if fps not in FCPXML_FRAME_DURATIONS:
        rates = ", ".join(f"{float(r):.3f}".rstrip("0").rstrip(".") for r in FCPXML_FRAME_DURATIONS)
        raise OutputError(f"FCPXML supports only {rates} fps and this timeline runs at {float(fps):.3f}.")


def fcpxml_rate(media: MediaInfo) -> tuple[Fraction, str | None]:
    """The FCPXML project's frame rate: the video's own when Final Cut has it, else the nearest one
    it has (as editors conform such media), with one line saying so.

    Returns:
        (project rate, None) or (nearest rate, the line that says a conform was made).
    """
    if media.fps in FCPXML_FRAME_DURATIONS and not media.is_vfr:
        return media.fps, None
    grid = frame_grid_rate(media)
    if grid is not None:
        return grid, None
    nearest = min(FCPXML_FRAME_DURATIONS, key=lambda rate: abs(math.log(rate / media.fps)))
    what = (f"has a variable frame rate, {float(media.fps):.3f} fps on average" if media.is_vfr
            else f"runs at {float(media.fps):.3f} fps and keeps that rate")
    return nearest, (f"the FCPXML project runs at {float(nearest):.3f} fps, the nearest rate Final Cut accepts "
                     f"(the video {what}); each clip starts on the project frame nearest its cut, at most half a frame off, "
                     "and its sound keeps its sync inside it")


def timeline_to_fcpxml(timeline: "otio.schema.Timeline", fps: Fraction, facts: FcpxmlFacts = FcpxmlFacts()) -> str:
    """FCPXML text of `timeline` through OTIO's fcpx_xml adapter, completed with `facts`.

    Raises:
        OutputError: the frame rate is not one FCPXML formats express, or the adapter is missing or fails.
    """
    check_fcpxml_rate(fps)
    _fcpx_adapter_module(fps)
    plain, names = _with_plain_names(timeline)
    try:
        xml = otio_module().adapters.write_to_string(plain, "fcpx_xml")
    except Exception as err:   # a fault of the plug-in on a valid timeline (it rounds frames in float)
        raise OutputError(f"OTIO's FCPXML adapter failed on this timeline ({type(err).__name__}); "
                          "the .otio timeline holds the same clips") from err
    return _finish_fcpxml(_fix_connected_offsets(xml, plain, fps), plain, fps, facts, names)


def _with_plain_names(timeline: "otio.schema.Timeline") -> tuple["otio.schema.Timeline", dict[str, str]]:
    """A copy of `timeline` whose names are plain tokens, and {token: real name}.

    The adapter finds its own elements again by name through ElementTree paths
    ("./asset-clip[@name='...']"), which cannot hold an apostrophe: "Tom's cat.mp4" would stop
    the export. Names go in as tokens and come back, escaped by ElementTree, in `_finish_fcpxml`.
    One name keeps one token, so clips the adapter matches by name still match."""
    copy = timeline.deepcopy()
    tokens: dict[str, str] = {}
    items = [copy, *copy.tracks, *copy.find_clips()]
    items += [clip.media_reference for clip in copy.find_clips() if clip.media_reference is not None]
    for item in items:
        if item.name:
            item.name = tokens.setdefault(item.name, f"dub-name-{len(tokens)}-")
    return copy, {token: name for name, token in tokens.items()}
