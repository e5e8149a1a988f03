"""Editor timelines of a dub, as OpenTimelineIO (.otio); `dubber.export.fcpxml` writes them as FCPXML.

Every range is expressed at the TIMELINE rate (the video's frame rate; for a variable-rate video the
standard rate nearest its average, see `timecode_rate`), including the WAV
references: FCP7 XML and AAF writers reject sample-rate ranges, and editors conform by frames.
A cue's clip points into the full-length mix WAV at the cue's own offset, so the timeline lines
up with the muxed file frame for frame.

When the video states a start timecode, the timeline starts there and the picture's (and the
original sound's) source range begins at that timecode, so editors relink media by timecode. The
WAVs are addressed by their own start (their Broadcast WAV TimeReference, `TimelineMedia`), which
the dub's WAVs set to that same timecode.

The source's own sound is always laid in whole from the source file, untouched, as "<input>
original". When the dub kept it (`--keep-original`), the mix holds it too, lowered and ducked under
the new sound: that bed is the "<input> original ducked" stem track, and it plays, while the
untouched track is there, off, for an editor who re-balances from the clean production sound.
"""
from __future__ import annotations

import logging
import math
import os
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Collection, Iterable, Iterator, Mapping
from urllib.parse import urlsplit
from urllib.request import url2pathname

from vision.types import MediaInfo, VisualEvent

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


# A variable-rate video whose average is within this factor of a standard rate gets a timeline
# at that rate (see `timecode_rate`).
VFR_CONFORM_TOLERANCE = 1.05

ZERO_TIMECODE = "00:00:00:00"


@dataclass(frozen=True)
class TimelineOptions:
    """How the timeline is laid out.

    Attributes:
        name: the timeline's name; None names it after the input ("<input> dub").
        start_timecode: the timeline's global start ("01:00:00:00" is the broadcast habit); None
            starts where the video's own timecode does (zero when it has none).
        stem_tracks: one track per stem (music, fx), enabled, with the mix on a disabled track of
            its own, so an editor can rebalance; False: the mix alone, enabled.
        keep_original: the original sound is heard: through the mix or its ducked stem when the
            mix holds it (`TimelineMedia.stem_paths` has "original"), the untouched source's track
            then there but disabled so it does not play twice; else through that track.
            False: the untouched track is there but disabled.
        muted_cues: indices of cues the mix leaves silent. Their clips say so in their metadata
            (`dub.muted`) and are disabled on the music and fx tracks (and on the mix, unless it
            holds the original sound, which plays there instead), so an editor sees the mute.
        hit_markers: the picture's events (detected and spotted), each a marker on the picture
            clip at its frame, named by kind and strength (`dub.kind`, `dub.strength` in its
            metadata): the editor sees what the soundtrack hits, moves or removes markers, adds
            some, and gives the timeline back as a hit list (`dub --hits TIMELINE.otio`).
    """

    name: str | None = None
    start_timecode: str | None = None
    stem_tracks: bool = True
    keep_original: bool = False
    muted_cues: tuple[int, ...] = ()
    hit_markers: tuple[VisualEvent, ...] = ()


@dataclass(frozen=True)
class TimelineMedia:
    """Files the timeline points at: the picture, the mixed dub WAV, optional stem WAVs (an
    "original" stem is the source's sound as the mix holds it, ducked), and the file whose audio is
    the untouched original sound (usually the source video; None: no "<input> original" track).
    `video_has_audio`: whether the picture file carries sound; None: yes when it is not the
    analysed source (a dubbed output always has the dub), else whatever the source has.
    `wav_time_reference_samples`: where the mix and stem WAVs start, as their Broadcast WAV
    TimeReference says: samples since midnight at the plan's sample rate (0: they start at zero).
    """

    video_path: str
    mix_path: str
    stem_paths: Mapping[str, str] | None = None
    original_path: str | None = None
    video_has_audio: bool | None = None
    wav_time_reference_samples: int = 0

    def picture_has_audio(self, media: MediaInfo) -> bool:
        if self.video_has_audio is not None:
            return self.video_has_audio
        return Path(self.video_path).resolve() != Path(media.path).resolve() or media.has_audio


def otio_module() -> Any:
    import opentimelineio

    return opentimelineio


def _url(path: str | os.PathLike[str]) -> str:
    return Path(path).resolve().as_uri()


def default_timeline_name(media: MediaInfo) -> str:
    return f"{input_label(media)} dub"


def input_label(media: MediaInfo) -> str:
    """What tracks and timelines are named after: the input file's name without its extension."""
    return Path(media.path).stem


def _stem_order(stem: str) -> tuple[int, str]:
    """The original sound, then music above effects, as on a mixing desk; other stems after them by name."""
    known = ("original", "music", "fx")
    return (known.index(stem) if stem in known else len(known), stem)


def _frame_at(media: MediaInfo, frame: int, rate: Fraction) -> int:
    """Frame `frame` of the video as a frame number at the timeline's `rate`: itself at the
    video's own constant rate, else its exact time rounded to the timeline's frame grid."""
    if rate == media.fps and not media.is_vfr:
        return frame
    return round(media.frame_time(frame) * rate)


def frame_timecode(media: MediaInfo, frame: int) -> str:
    """The time code an editor reads at frame `frame` of the video: counted from the file's own
    start time code at its `timecode_rate`, drop-frame when that time code is (";")."""
    ot = otio_module().opentime
    rate = timecode_rate(media)
    at = media_first_frame(media, rate) + _frame_at(media, frame, rate)
    drop = ";" in (media.start_timecode or "")
    try:
        return ot.to_timecode(ot.RationalTime(at, float(rate)), float(rate), drop)
    except ValueError:   # a rate SMPTE time code cannot count (a VFR average far from any standard)
        seconds, frames = divmod(at, max(1, round(rate)))
        return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}:{frames:02d}"


def _range(start_frame: int, frames: int, rate: float) -> "otio.opentime.TimeRange":
    ot = otio_module().opentime
    return ot.TimeRange(ot.RationalTime(start_frame, rate), ot.RationalTime(frames, rate))


def _reference(path: str, media: MediaInfo, rate: Fraction, first_frame: int = 0) -> "otio.schema.ExternalReference":
    return otio_module().schema.ExternalReference(target_url=_url(path), available_range=_range(
        first_frame, _frame_at(media, media.frame_count, rate), float(rate)))


def cue_clip_name(cue: Cue) -> str:
    """Unique, readable clip name: shot number, plus the part of a split shot."""
    base = f"shot_{cue.shot_index:03d}"
    return base if cue.parts == 1 else f"{base}_part{cue.part + 1}"


def _cue_metadata(cue: Cue, plan: DubPlan, muted: bool = False) -> dict[str, Any]:
    return {"cue": cue.index, "shot": cue.shot_index, "part": cue.part, "parts": cue.parts,
            "caption": cue.caption, "prompt": cue.prompt, "seed": cue.seed, "style": plan.style,
            "start_sample": cue.start_sample, "num_samples": cue.num_samples,
            "sample_rate": plan.sample_rate, "muted": muted}


def _cue_track(name: str, wav_path: str, plan: DubPlan, media: MediaInfo, rate: Fraction, wav_first_frame: int,
               suffix: str = "", muted: Collection[int] = (), silent_when_muted: bool = True) -> "otio.schema.Track":
    """One clip per cue into the full-length WAV, whose own first frame number is `wav_first_frame`.
    The clips of `muted` cues are disabled when `silent_when_muted` (the WAV holds nothing there)."""
    schema = otio_module().schema
    track = schema.Track(name=name, kind=schema.TrackKind.Audio)
    for cue in plan.cues:
        start, end = _frame_at(media, cue.start_frame, rate), _frame_at(media, cue.end_frame, rate)
        clip = schema.Clip(name=cue_clip_name(cue) + suffix,
                           media_reference=_reference(wav_path, media, rate, wav_first_frame),
                           source_range=_range(wav_first_frame + start, end - start, float(rate)))
        clip.metadata["dub"] = _cue_metadata(cue, plan, cue.index in muted)
        if cue.index in muted and silent_when_muted:
            clip.enabled = False
        track.append(clip)
    return track


def _whole_file_track(name: str, kind: str, path: str, media: MediaInfo, rate: Fraction,
                      first_frame: int, clip_name: str) -> "otio.schema.Track":
    """One clip of a whole source file, its range counted from the file's own first frame
    number (its start timecode)."""
    schema = otio_module().schema
    track = schema.Track(name=name, kind=kind)
    track.append(schema.Clip(name=clip_name, media_reference=_reference(path, media, rate, first_frame),
                             source_range=_range(first_frame, _frame_at(media, media.frame_count, rate), float(rate))))
    return track


# Marker colours by event kind, from OTIO's set (which Resolve and Premiere map to their own).
HIT_MARKER_COLOURS = {"impact": "RED", "landing": "ORANGE", "explosion": "MAGENTA", "flash": "YELLOW",
                      "splash": "CYAN", "whoosh": "GREEN", "run": "GREEN", "shake": "PURPLE"}


def _hit_marker(event: VisualEvent, media: MediaInfo, rate: Fraction, first_frame: int) -> "otio.schema.Marker":
    """A marker on the picture clip (in the source file's own time) over the frames of `event`."""
    ot = otio_module()
    start = _frame_at(media, event.frame, rate)
    end = max(start + 1, _frame_at(media, min(event.end_frame, media.frame_count), rate))
    return ot.schema.Marker(name=f"{event.kind} {event.strength:.2f}", marked_range=_range(first_frame + start,
                                                                                          end - start, float(rate)),
                            color=HIT_MARKER_COLOURS.get(event.kind, "WHITE"),
                            metadata={"dub": {"kind": event.kind, "strength": round(float(event.strength), 4)}})


def _start_time(timecode: str, rate: float) -> "otio.opentime.RationalTime":
    ot = otio_module().opentime
    if timecode.replace(":", "").replace(";", "").strip("0") == "" and timecode:
        return ot.RationalTime(0, rate)   # zero needs no SMPTE rate (15 fps, VFR averages)
    try:
        return ot.from_timecode(timecode, rate)
    except ValueError as err:
        raise OutputError(f"Start timecode {timecode!r} is not valid at {rate:.3f} fps; use HH:MM:SS:FF "
                          "at a SMPTE rate, or 00:00:00:00.") from err


def _timecode_frame(media: MediaInfo, rate: Fraction) -> int | None:
    """Frame number (at `rate`) of the video's start timecode; 0 without one. At a constant rate
    with no SMPTE count of its own (23.98 written as 1199/50, 15 fps) the frames are counted as
    the file's timecode track counts them (`nominal_timecode_frame`). None when the timecode
    cannot be read at `rate`: a variable-rate average far from any standard rate has no frames a
    timecode could count."""
    if not media.start_timecode:
        return 0
    try:
        return round(_start_time(media.start_timecode, float(rate)).value)
    except OutputError:
        return None if rate != media.fps or media.is_vfr else nominal_timecode_frame(media.start_timecode, rate)


def ignored_timecode_note(media: MediaInfo) -> str | None:
    """One line for the user when the video's start timecode cannot be kept (see `_timecode_frame`)."""
    rate = timecode_rate(media)
    if _timecode_frame(media, rate) is not None:
        return None
    why = (f"it cannot be counted at the video's variable rate of {float(rate):.3f} fps on average" if media.is_vfr
           else f"it is not a timecode {float(rate):.3f} fps can count")
    return (f"the timeline and the WAVs start at 00:00:00:00, not at the video's timecode {media.start_timecode}: "
            f"{why}")


def nominal_timecode_frame(timecode: str, rate: Fraction) -> int | None:
    """Frame number of a non-drop HH:MM:SS:FF counted at `rate` rounded to whole frames a second,
    as a video's timecode track counts frames at any rate (a 1199/50 video counts 24 a second, as
    23.976 does); None for anything else (a drop-frame timecode at a rate that has none)."""
    parts = re.fullmatch(r"(\d+):(\d\d):(\d\d):(\d+)", timecode.strip())
    base = max(1, round(rate))
    if parts is None:
        return None
    hours, minutes, seconds, frames = (int(p) for p in parts.groups())
    if minutes >= 60 or seconds >= 60 or frames >= base:
        return None
    return ((hours * 60 + minutes) * 60 + seconds) * base + frames


def timecode_rate(media: MediaInfo) -> Fraction:
    """The rate an editor counts the video's frames and timecode at: its own when constant. A
    variable-rate file whose every frame starts on a standard rate's frame grid (dropped or held
    frames of a constant-rate capture, 25 and 50 fps joined) is that rate, as its FCPXML is
    (`frame_grid_rate`). Another (a phone's, a screen recording) is conformed to the standard
    rate nearest its average, within 5 %, as editors do; its timecode (a phone writes the time
    of day) is read at that rate. Further off, the average stays."""
    if not media.is_vfr:
        return media.fps
    grid = frame_grid_rate(media)
    if grid is not None:
        return grid
    nearest = min(FCPXML_FRAME_DURATIONS, key=lambda rate: abs(math.log(rate / media.fps)))
    return nearest if abs(math.log(nearest / media.fps)) <= math.log(VFR_CONFORM_TOLERANCE) else media.fps


def media_first_frame(media: MediaInfo, rate: Fraction | None = None) -> int:
    """Frame number (at `rate`, default `timecode_rate`) of the video's first frame by its own
    timecode (0 without one). A timecode the rate cannot express is ignored with a warning: the
    file still plays."""
    rate = rate or timecode_rate(media)
    frame = _timecode_frame(media, rate)
    if frame is None:
        log.warning("ignoring the video's start timecode %s: not valid at %.3f fps", media.start_timecode, float(rate))
        return 0
    return frame


def timecode_clock_rate(rate: Fraction) -> Fraction:
    """The standard rate at which a timecode counted at `rate` is read as a time of day: `rate`
    itself at 24, 25, 30, 24000/1001 and the like. Another constant rate counts round(rate)
    frames a second (`nominal_timecode_frame`), and every tool reads that count at the standard
    rate of the count nearest the video: 24000/1001 for 23.98 written as 1199/50 (as Final Cut
    and any 23.976 DAW read its timecode), 30000/1001 for 2997/100, 15 for 15."""
    base = max(1, round(rate))
    return min((Fraction(base), Fraction(base * 1000, 1001)), key=lambda standard: abs(standard - rate))


def media_start_samples(media: MediaInfo, sample_rate: int) -> int:
    """The video's start timecode as samples since midnight at `sample_rate` (what a Broadcast
    WAV that starts with the picture gives as TimeReference): its first frame number at the
    video's `timecode_rate`, timed at the standard rate that timecode is read at
    (`timecode_clock_rate`), so sound spotted by it lands where those tools put the picture;
    0 without a timecode or with one that rate cannot express (the timeline, which reads it
    too, says so: the WAVs of one run would repeat the warning)."""
    rate = timecode_rate(media)
    return round(Fraction(_timecode_frame(media, rate) or 0) * sample_rate / timecode_clock_rate(rate))


def _wav_first_frame(files: TimelineMedia, plan: DubPlan, rate: Fraction) -> int:
    """The frame number (at the timeline's `rate`) of the WAVs' first sample, from their
    TimeReference read as timecode at that rate (the inverse of `media_start_samples`)."""
    return round(Fraction(files.wav_time_reference_samples) * timecode_clock_rate(rate) / plan.sample_rate)


# The role each sound plays, as Final Cut sorts audio (its built-in roles, then a subrole):
# music and effects stems, the production sound (untouched or ducked), and the mix of them all.
STEM_ROLES = {"music": "music", "fx": "effects", "original": "dialogue"}
MIX_ROLE = "music.mix"


def _with_role(track: "otio.schema.Track", role: str) -> "otio.schema.Track":
    track.metadata["dub"] = {**track.metadata.get("dub", {}), "role": role}
    return track


def _original_tracks(files: TimelineMedia, media: MediaInfo, rate: Fraction, first: int,
                     options: TimelineOptions) -> list["otio.schema.Track"]:
    """The untouched source sound, whole, from its own file, when there is one. It plays only when
    the original is kept and the mix does not already hold it (then its ducked stem plays)."""
    if files.original_path is None:
        return []
    track = _whole_file_track(f"{input_label(media)} original", otio_module().schema.TrackKind.Audio, files.original_path,
                              media, rate, first, "original")
    track.enabled = options.keep_original and "original" not in (files.stem_paths or {})
    return [_with_role(track, STEM_ROLES["original"])]


def _stem_track_name(media: MediaInfo, stem: str) -> str:
    """The "original" stem is the source's sound as mixed (lowered and ducked under the dub):
    named apart from the untouched "<input> original" track beside it."""
    return f"{input_label(media)} {'original ducked' if stem == 'original' else stem}"


def build_timeline(plan: DubPlan, media: MediaInfo, files: TimelineMedia,
                   options: TimelineOptions = TimelineOptions(), rate: Fraction | None = None) -> "otio.schema.Timeline":
    """An OTIO timeline named after the input: V1 the picture; "<input> original", the source's
    untouched sound (see `TimelineOptions.keep_original` for when it plays) when
    `files.original_path` is set; one track per stem ("<input> original ducked" when the mix holds
    the original, "<input> music", "<input> fx") and "<input> mix" (disabled when the stems are
    there), each with one clip per cue (caption, seed, shot in `metadata["dub"]`).

    Args:
        rate: the timeline's frame rate; None: the video's own. Another rate (a conform) places
            every clip at its exact time rounded to that rate's frames.

    Raises:
        OutputError: `start_timecode` is not a valid timecode at the timeline's rate.
    """
    ot = otio_module()
    timeline_rate = rate or timecode_rate(media)
    rate = float(timeline_rate)
    first = media_first_frame(media, timeline_rate)
    wav_first = _wav_first_frame(files, plan, timeline_rate)
    label = input_label(media)
    timeline = ot.schema.Timeline(name=options.name or default_timeline_name(media))
    if options.start_timecode is not None:
        start_timecode = options.start_timecode
        timeline.global_start_time = _start_time(start_timecode, rate)
    else:
        start_timecode = media.start_timecode if first else ZERO_TIMECODE
        timeline.global_start_time = ot.opentime.RationalTime(first, rate)
    timeline.metadata["dub"] = {"fps": plan.fps, "sample_rate": plan.sample_rate, "style": plan.style,
                                "seed": plan.seed, "instruction": plan.instruction,
                                "start_timecode": start_timecode, "source_timecode": media.start_timecode}
    picture = _whole_file_track("V1", ot.schema.TrackKind.Video, files.video_path, media, timeline_rate, first,
                                Path(files.video_path).stem)
    picture[0].markers.extend(_hit_marker(e, media, timeline_rate, first) for e in options.hit_markers)
    timeline.tracks.append(picture)
    stems = dict(files.stem_paths or {}) if options.stem_tracks else {}
    timeline.tracks.extend(_original_tracks(files, media, timeline_rate, first, options))
    muted = frozenset(options.muted_cues)
    for stem, path in sorted(stems.items(), key=lambda item: _stem_order(item[0])):
        # The ducked original comes up where a shot is muted: only the dub's own stems go silent.
        timeline.tracks.append(_with_role(
            _cue_track(_stem_track_name(media, stem), path, plan, media, timeline_rate, wav_first, suffix=f"_{stem}",
                       muted=muted, silent_when_muted=stem != "original"),
            STEM_ROLES.get(stem, "music")))   # a backend's own stem ("dub") is music
    mix = _cue_track(f"{label} mix", files.mix_path, plan, media, timeline_rate, wav_first, muted=muted,
                     silent_when_muted="original" not in (files.stem_paths or {}))
    mix.enabled = not stems   # the stems sum to the mix: enable it instead of them for a quick listen
    timeline.tracks.append(_with_role(mix, MIX_ROLE))
    return timeline


def timeline_to_otio_json(timeline: "otio.schema.Timeline") -> str:
    """The .otio text of `timeline`, its media named by plain absolute path.

    OTIO leaves the form of `target_url` open. DaVinci Resolve (20.2) refuses a timeline whose
    media are file:// URLs and imports the same file with plain paths, which is also the form of
    OTIO's own examples; FCPXML, which needs URLs, is written from the timeline as built."""
    return otio_module().adapters.write_to_string(_with_plain_paths(timeline), "otio_json")


def file_url_path(url: str) -> str | None:
    """The local path a file:// URL names, or None for any other text."""
    parts = urlsplit(url)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
        return None
    return url2pathname(parts.path)


def referenced_path(target: str) -> Path | None:
    """The local file an .otio media reference names, as a plain absolute path or a file:// URL;
    None for anything else (a relative path, another scheme, no reference)."""
    path = file_url_path(target)
    if path is None:
        path = target
    return Path(path) if path and Path(path).is_absolute() else None


@dataclass(frozen=True)
class Move:
    """A file or folder now at `old` that is (or will be) at `new`: a folder of outputs moved or
    copied, a watch-folder job filed."""

    old: Path
    new: Path

    @classmethod
    def of(cls, old: Path, new: Path) -> "Move":
        # The exporters write paths with symbolic links resolved; both sides are compared that way.
        return cls(old.resolve(), new.parent.resolve() / new.name)


def moved_path(path: Path, moves: Iterable[Move]) -> Path | None:
    """Where `path` will be after `moves`, or None when none of them carries it. The closest
    move wins: a file that moves out of a folder that moves goes where its own move says."""
    resolved = path.resolve()
    for move in sorted(moves, key=lambda m: len(m.old.parts), reverse=True):
        try:
            inside = resolved.relative_to(move.old)
        except ValueError:
            continue
        return move.new / inside
    return None


def moved_url(url: str, moves: Iterable[Move]) -> str | None:
    """The file:// URL of where `url`'s file will be, or None when it does not move."""
    path = file_url_path(url)
    new = None if path is None else moved_path(Path(path), moves)
    return None if new is None else new.as_uri()   # as the exporter writes its URLs


def moved_target(target: str, moves: Iterable[Move]) -> str | None:
    """Where an .otio media reference's file will be, in the form it was written (a plain
    absolute path, or a file:// URL in a timeline from elsewhere); None when it does not move."""
    if file_url_path(target) is not None:
        return moved_url(target, moves)
    path = referenced_path(target)
    new = None if path is None else moved_path(path, moves)
    return None if new is None else str(new)


def media_references(timeline: "otio.schema.Timeline") -> Iterator[Any]:
    """Every media reference of every clip that names a file (has a `target_url`)."""
    for clip in timeline.find_clips():
        for reference in clip.media_references().values():
            if getattr(reference, "target_url", None):
                yield reference


def _with_plain_paths(timeline: "otio.schema.Timeline") -> "otio.schema.Timeline":
    copy = timeline.deepcopy()
    for reference in media_references(copy):
        path = referenced_path(reference.target_url)
        if path is not None:
            reference.target_url = str(path)
    return copy


def frame_grid_rate(media: MediaInfo) -> Fraction | None:
    """The coarsest FCPXML rate on whose frame grid every frame of a variable-rate video starts,
    if one does: a constant-rate video with some pictures held over (an AVI's null frames, a
    capture's dropped frames) is that rate, exactly, with nothing conformed."""
    if not media.is_vfr or not media.frame_pts or media.time_base is None:
        return None
    first = media.frame_pts[0]
    for rate in sorted(FCPXML_FRAME_DURATIONS):
        ticks = Fraction(media.time_base) * rate  # frames of `rate` per tick of the file's clock
        if rate >= media.fps and all(((p - first) * ticks).denominator == 1 for p in media.frame_pts):
            return rate
    return None
