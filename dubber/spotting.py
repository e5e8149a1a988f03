"""Hit points a person spots: the frames the soundtrack must hit, read from a small hit list and
laid over (or in place of) the events the picture analysis found.

A sound editor's spotting session, or an animator's exposure sheet, names the frames of contact
the detectors may miss. A hit list is a text or CSV file, one hit point a line:

    WHEN [KIND [STRENGTH [LENGTH]]]        fields separated by commas, tabs or spaces; # comments

WHEN is seconds from the first frame (`12.5` or `12.5s`), a frame number counted from 0 (`300f`),
or a timecode (`00:00:12:12`, `;` before the frames for drop-frame) read against the file's own
start timecode when it has one. KIND is an event kind (default impact), STRENGTH 0..1 (default
0.8), LENGTH the seconds a sustained kind (whoosh, run, shake) lasts (default 0.4; one shorter
than a frame lasts that frame; an instantaneous kind has none, and a length written for one is
named in the run's notes). Lines of one kind on one frame play once, the strongest; lines of
different kinds on one frame all play, as detected events do. KIND `none`
says there is nothing to hit there: the detected events of that instant are dropped and no sound
takes their place (a dance step the analysis took for a blow). A JSON file
holds the same as a list of objects ({"t" | "frame" | "timecode", "kind", "strength",
"length_s"}), or {"hits": [...]}.

An editor's timeline is a hit list too: every marker on a picture clip of an OpenTimelineIO file
(.otio, which DaVinci Resolve exports) is a hit point at the frame of the source it marks, and
every marker on the timeline itself one at its timeline time. Its kind and strength are
those the dub's own markers carry (`dub.kind`, `dub.strength` in their metadata), else read from
its name ("landing 0.9", "none"), else an impact; a sustained kind lasts as long as the marker.
The shot markers the Resolve script places ("Shot 2") mark no hit.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

from vision.types import EVENT_KINDS, MediaInfo, VideoAnalysis, VisualEvent

from .errors import InputError, one_line

DEFAULT_KIND = "impact"
DEFAULT_STRENGTH = 0.8
DEFAULT_LENGTH_S = 0.4
LONGEST_LENGTH_S = 60.0   # a LENGTH is above 0 s and at most this; one shorter than a frame lasts that frame
SUSTAINED_KINDS = ("whoosh", "run", "shake")
# A detected event this close to a spotted one is the same moment: the spotted one is kept.
SAME_MOMENT_S = 0.25
MAX_HITS = 100_000
HEADER_WORDS = ("time", "t", "when", "frame", "timecode", "tc", "seconds", "time_s")
SPOT_KINDS = tuple(k for k in EVENT_KINDS if k != "fast_motion")
NO_HIT = "none"   # a spotted instant with nothing to hit: the detected events there go
_SECONDS = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)s?$")
_FRAME = re.compile(r"^(\d+)f$")
TIMECODE = re.compile(r"^\d{1,2}:\d{2}:\d{2}[:;]\d{2}$")   # HH:MM:SS:FF, ";" before drop-frame frames
TIMELINE_SUFFIXES = (".otio",)
# The markers the Resolve script puts on each shot's first frame ("Shot 2"): no hit is marked there.
_SHOT_MARKER = re.compile(r"^shot \d+$", re.IGNORECASE)


@dataclass(frozen=True)
class SpottedHit:
    """One line of a hit list, before it is placed on a video's frames."""

    when: str          # as written: seconds, "<n>f" or a timecode
    kind: str
    strength: float
    length_s: float
    where: str         # "file:line" for messages
    length_written: bool = False   # a LENGTH was written (an instantaneous kind does not use it)


def read_hit_list(path: str | os.PathLike) -> tuple[SpottedHit, ...]:
    """Every hit point of a hit list file, checked for form (not yet against a video).

    Raises:
        InputError: the file is missing or unreadable, or a line is not a hit point.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise InputError(f"The hit list {file} does not exist; give a text, CSV or JSON file of hit points.")
    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"Cannot read the hit list {file} ({err}); save it as UTF-8 text.") from err
    suffix = file.suffix.lower()
    if suffix in TIMELINE_SUFFIXES:
        hits = _from_timeline(file)
        if not hits:
            raise InputError(f"The timeline {file} has no markers on its picture; mark the hits in your editor "
                             "and export the timeline again.")
    else:
        hits = _from_json(text, file) if suffix == ".json" else _from_lines(text, file)
    if not hits:
        raise InputError(f"The hit list {file} holds no hit points; write one time a line, e.g. 12.5, impact.")
    if len(hits) > MAX_HITS:
        raise InputError(f"The hit list {file} holds {len(hits)} hit points, more than {MAX_HITS}.")
    return tuple(hits)


def _from_lines(text: str, file: Path) -> list[SpottedHit]:
    hits = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = [f for f in re.split(r"[,\t ]+", line.split("#", 1)[0].strip()) if f]
        if not fields:
            continue
        where = f"{file.name}:{number}"
        if not hits and fields[0].lower() in HEADER_WORDS:
            continue   # a CSV header row (time, kind, ...)
        hits.append(_hit_of_fields(fields, where))
    return hits


def _from_json(text: str, file: Path) -> list[SpottedHit]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"The hit list {file} is not valid JSON ({err.msg} at line {err.lineno}).") from err
    items = data.get("hits") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise InputError(f"The hit list {file} must be a JSON list of hit points, or {{\"hits\": [...]}}.")
    hits = []
    for number, item in enumerate(items, start=1):
        where = f"{file.name}: hit {number}"
        if not isinstance(item, dict):
            raise InputError(f"{where} is not an object like {{\"t\": 12.5, \"kind\": \"impact\"}}.")
        keys = [k for k in ("t", "time_s", "frame", "timecode") if k in item]
        if len(keys) != 1:
            raise InputError(f"{where} needs exactly one of t, frame or timecode.")
        value = item[keys[0]]
        when = f"{value}f" if keys[0] == "frame" else str(value)
        hits.append(_hit(when, item.get("kind"), item.get("strength"), item.get("length_s"), where=where))
    return hits


def _from_timeline(file: Path) -> list[SpottedHit]:
    """The markers of an editor's timeline as hit points (see the module's docstring)."""
    import opentimelineio as otio

    try:
        timeline = otio.adapters.read_from_file(str(file))
    except Exception as err:   # each adapter raises its own kinds of error on a damaged file
        raise InputError(f"Cannot read the timeline {file}; export it again from your editor. "
                         f"OpenTimelineIO says: {one_line(err)}") from err
    if not isinstance(timeline, otio.schema.Timeline):
        raise InputError(f"{file} holds no single timeline; export one timeline from your editor.")
    marked = [(m, m.marked_range.start_time) for track in timeline.video_tracks() for clip in track.find_clips()
              for m in clip.markers]
    start = timeline.global_start_time or otio.opentime.RationalTime(0, timeline.duration().rate)
    marked += [(m, start + m.marked_range.start_time) for m in timeline.tracks.markers]
    marked = [(m, at) for m, at in marked if not _SHOT_MARKER.match((m.name or "").strip())]
    return [_marker_hit(marker, at, file) for marker, at in sorted(marked, key=lambda pair: pair[1].to_seconds())]


def _marker_hit(marker: Any, at: Any, file: Path) -> SpottedHit:
    import opentimelineio as otio

    when = otio.opentime.to_timecode(at, at.rate)
    words = (marker.name or "").lower().split()
    dub = dict(marker.metadata.get("dub") or {}) if hasattr(marker.metadata, "get") else {}
    named = bool(words) and words[0] in (*SPOT_KINDS, NO_HIT)
    kind = dub.get("kind") or (words[0] if named else DEFAULT_KIND)
    # A strength only after a kind ("landing 0.9"): an editor's plain marker is numbered ("Marker 2",
    # as Resolve names a new one), and that number is no strength.
    strength = dub.get("strength", words[1] if named and len(words) > 1 and _SECONDS.match(words[1]) else None)
    length = marker.marked_range.duration.to_seconds() if kind in SUSTAINED_KINDS else None
    return _hit(when, kind, strength, length or None, where=f"{file.name}: marker {marker.name!r} at {when}")


def _is_when(text: str) -> bool:
    return bool(_SECONDS.match(text) or _FRAME.match(text) or TIMECODE.match(text))


def _number(value: Any, name: str, where: str, low: float, high: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{where}: the {name} {value!r} is not a number.") from None
    if not low <= number <= high:
        raise InputError(f"{where}: the {name} {number:g} is outside {low:g}..{high:g}.")
    return number


def _hit(when: Any, kind: Any, strength: Any, length: Any, *, where: str) -> SpottedHit:
    when = str(when).strip().lower()
    if not _is_when(when):
        raise InputError(f"{where}: {when!r} is no time; write seconds (12.5), a frame (300f) or a "
                         "timecode (00:00:12:12).")
    kind = DEFAULT_KIND if kind in (None, "") else str(kind).strip().lower()
    if kind not in SPOT_KINDS and kind != NO_HIT:
        if kind.isdigit() and _SECONDS.match(when) and "." not in when:   # "12,5": a decimal comma split in two
            raise InputError(f"{where}: {when},{kind} reads as time {when} and kind {kind!r}; write seconds with a "
                             f"point ({when}.{kind}), since commas separate the fields.")
        raise InputError(f"{where}: unknown kind {kind!r}; use one of {', '.join(SPOT_KINDS)}, or {NO_HIT} "
                         "for an instant with nothing to hit.")
    strength = DEFAULT_STRENGTH if strength in (None, "") else _number(strength, "strength", where, 0.0, 1.0)
    written = length not in (None, "")
    length = _number(length, "length", where, 0.0, LONGEST_LENGTH_S) if written else DEFAULT_LENGTH_S
    if length == 0:
        raise InputError(f"{where}: the length 0 lasts no time; write seconds above 0 (one shorter than a frame "
                         f"lasts that frame), or leave it out for {DEFAULT_LENGTH_S:g} s.")
    return SpottedHit(when, kind, strength, length, where, written)


def read_hit_point(text: str, where: str) -> SpottedHit:
    """One hit point written as a line of a hit list is (`WHEN [KIND [STRENGTH [LENGTH]]]`, fields
    separated by commas, tabs or spaces), checked for form; `where` names it in messages.

    Raises:
        InputError: it is not a hit point.
    """
    return _hit_of_fields([f for f in re.split(r"[,\t ]+", text.strip()) if f], where)


def _hit_of_fields(fields: list[str], where: str) -> SpottedHit:
    if not fields or len(fields) > 4:
        raise InputError(f"{where}: {len(fields)} fields; a hit point is WHEN [KIND [STRENGTH [LENGTH]]].")
    kind, strength, length = fields[1:] + [None] * (4 - len(fields))
    return _hit(fields[0], kind, strength, length, where=where)


def hit_event(hit: SpottedHit, media: MediaInfo) -> VisualEvent | None:
    """The event a hit point places on this video: on its frame, a sustained kind lasting its
    length (at least that frame); None for `none`, which places nothing.

    Raises:
        InputError: the time is not on the video.
    """
    frame = frame_of(hit, media)
    if hit.kind == NO_HIT:
        return None
    end = end_frame_after(frame, hit.length_s, media) if hit.kind in SUSTAINED_KINDS else frame + 1
    return VisualEvent(frame, hit.kind, hit.strength, end)


def end_frame_after(frame: int, length_s: float, media: MediaInfo) -> int:
    """The end (exclusive) of a sustained hit starting on `frame` and lasting `length_s`: the frame
    starting nearest its end, at least one frame on, at most the video's end."""
    return min(media.frame_count, max(frame + 1, _frame_at(media.frame_time(frame) + Fraction(length_s), media)))


def hit_list_digest(path: str | os.PathLike) -> str:
    """What identifies a hit list's content in cache keys."""
    return hashlib.sha256(Path(path).expanduser().read_bytes()).hexdigest()[:16]


def frame_of(hit: SpottedHit, media: MediaInfo) -> int:
    """The frame index a hit point names on this video.

    Raises:
        InputError: the time is not on the video (before its start or past its end).
    """
    frame = named_frame(hit, media)
    if not 0 <= frame < media.frame_count:
        end = float(media.frame_time(media.frame_count))
        said = hit.when if not re.fullmatch(r"[0-9.]+", hit.when) else f"{hit.when} s"   # a bare number is seconds
        raise InputError(f"{said} ({hit.where}) is not on the video, which has frames 0..{media.frame_count - 1} "
                         f"({end:.3f} s).")
    return frame


def named_frame(hit: SpottedHit, media: MediaInfo) -> int:
    """The frame a hit point's time names, counted from the video's first frame, whether or not
    the video has it (negative before its start, `frame_count` or more past its end).

    Raises:
        InputError: a timecode this video's rate cannot count.
    """
    when = hit.when
    if (match := _FRAME.match(when)) is not None:
        return int(match.group(1))
    if TIMECODE.match(when):
        return _timecode_frame(when, media, hit.where)
    return _frame_at(Fraction(when.rstrip("s")), media)


def _frame_at(seconds: Fraction, media: MediaInfo) -> int:
    """The frame starting nearest `seconds` from the first frame (a time written to the
    millisecond names the frame it rounds from); frame_count past the end."""
    low, high = 0, media.frame_count
    while high - low > 1:   # frame times need not be evenly spaced (variable frame rate)
        middle = (low + high) // 2
        if media.frame_time(middle) <= seconds:
            low = middle
        else:
            high = middle
    if seconds >= media.frame_time(media.frame_count):
        return media.frame_count
    nearer_next = high < media.frame_count and media.frame_time(high) - seconds < seconds - media.frame_time(low)
    return high if nearer_next else low


def _timecode_frame(text: str, media: MediaInfo, where: str) -> int:
    """The frame a timecode names, counted as the video's own timecode counts: at the rate an
    editor reads it at (`timecode_rate`), and at a rate with no SMPTE count of its own (23.98
    written as 1199/50) in whole frames a second, as its timecode track, the WAVs and the studio
    (`export.timeline.frame_timecode`) do. A variable-rate video's timecode counts frames of that
    rate, not the video's own: the frame named is the one starting nearest that time."""
    from .export.timeline import media_first_frame, nominal_timecode_frame, timecode_rate

    import opentimelineio as otio

    rate = timecode_rate(media)
    try:   # OTIO reads ";" before the frames as drop-frame
        count = round(otio.opentime.from_timecode(text, float(rate)).value)
    except ValueError:
        count = nominal_timecode_frame(text, rate)
    else:
        _refuse_skipped_label(text, rate, where)
    if count is None:
        raise InputError(f"{where}: the timecode {text} cannot be read at this video's {float(rate):.3f} fps; "
                         "give seconds instead (e.g. 12.5).")
    count -= media_first_frame(media)
    if not media.is_vfr or count < 0:   # before the first frame: no frame, and frame_of says so
        return count
    return _frame_at(Fraction(count) / rate, media)


def _refuse_skipped_label(text: str, rate: Fraction, where: str) -> None:
    """A drop-frame timecode names no frame where its count skips: frames 00 and 01 (00 to 03 at
    59.94) of each minute but every tenth. OpenTimelineIO reads one as a frame before it; refused
    here, naming the frames either side."""
    import opentimelineio as otio

    ot = otio.opentime
    _, minutes, seconds, frames = (int(part) for part in re.split(r"[:;]", text))
    skipped = round(rate) // 15   # labels skipped a minute: 2 at 29.97, 4 at 59.94
    if ";" not in text or seconds or minutes % 10 == 0 or frames >= skipped:
        return
    first = f"{text[:-2]}{skipped:02d}"
    before = ot.to_timecode(ot.from_timecode(first, float(rate)) - ot.RationalTime(1, float(rate)), float(rate), True)
    labels = "00 and 01" if skipped == 2 else f"00 to {skipped - 1:02d}"
    raise InputError(f"{where}: the timecode {text} names no frame, since drop-frame timecode skips frames {labels} "
                     f"of each minute but every tenth; write {first}, that minute's first frame, or {before}, the "
                     "frame before it.")


def spot(analysis: VideoAnalysis, hits: tuple[SpottedHit, ...], only: bool = False) -> VideoAnalysis:
    """The analysis with the spotted hit points among its events. `only`: the spotted events
    replace every detected one; otherwise a detected event of the same instant (within
    SAME_MOMENT_S) gives way to the spotted one, or goes where a `none` line says there is
    nothing to hit, and the rest stay.

    Raises:
        InputError: a hit point is not on the video.
    """
    media = analysis.media
    near = max(1, round(SAME_MOMENT_S * float(media.fps)))
    for hit in hits:   # the first line off the video is the one named, whatever its kind
        frame_of(hit, media)
    nothing = sorted({frame_of(hit, media) for hit in hits if hit.kind == NO_HIT})
    # One sound of each kind plays on a frame, as with detected events (a flash as a whoosh starts).
    placed: dict[tuple[int, str], VisualEvent] = {}
    shared: set[int] = set()   # frames two spotted hits of one kind fell on (12.5 s and 300f at 24 fps)
    for hit in (h for h in hits if h.kind != NO_HIT):
        event = hit_event(hit, media)
        key = (event.frame, event.kind)
        if key in placed:
            shared.add(event.frame)
        if key not in placed or placed[key].strength < event.strength:
            placed[key] = event
    spotted = sorted(placed.values(), key=lambda e: (e.frame, e.kind))
    unused = [hit.where for hit in hits if unused_length(hit)]
    taken = [s.frame for s in spotted] + nothing
    kept = [] if only else [e for e in analysis.events if not any(abs(e.frame - f) <= near for f in taken)]
    events = tuple(sorted(kept + spotted, key=lambda e: (e.frame, e.kind)))
    # The manifest keeps the list itself, not only the path of a file that may change later.
    record = [{"frame": e.frame, "end_frame": e.end_frame, "kind": e.kind, "strength": e.strength} for e in spotted]
    return replace(analysis, events=events, settings={**analysis.settings, "spotted_hits": record,
                                                      "spotted_nothing": nothing, "spotted_hits_only": bool(only),
                                                      "spotted_hits_on_one_frame": sorted(shared),
                                                      "spotted_lengths_unused": unused})


def unused_length(hit: SpottedHit) -> bool:
    """Whether a hit point gives a length its kind does not use (only a sustained kind lasts)."""
    return hit.length_written and hit.kind not in SUSTAINED_KINDS


def spotting_notes(analysis: VideoAnalysis) -> list[str]:
    """The run's sentences about its hit list: hits that shared a frame, lengths not used."""
    return shared_frame_note(analysis) + unused_length_note(analysis)


def shared_frame_note(analysis: VideoAnalysis) -> list[str]:
    """A sentence for spotted hits of one kind that fell on one frame and so play once, or none."""
    frames = analysis.settings.get("spotted_hits_on_one_frame") or []
    if not frames:
        return []
    fps = float(analysis.media.fps)
    where = ", ".join(f"frame {f} ({f / fps:.2f} s)" for f in frames[:4]) + (", ..." if len(frames) > 4 else "")
    return [f"more than one spotted hit of one kind falls on {where}; one sound of each kind plays there, the "
            "strongest hit's"]


def unused_length_note(analysis: VideoAnalysis) -> list[str]:
    """A sentence for lengths written for hits of an instantaneous kind, which no sound uses, or none."""
    lines = analysis.settings.get("spotted_lengths_unused") or []
    if not lines:
        return []
    where = ", ".join(lines[:4]) + (", ..." if len(lines) > 4 else "")
    return [f"the length given at {where} is not used: only a {', '.join(SUSTAINED_KINDS[:-1])} or "
            f"{SUSTAINED_KINDS[-1]} lasts"]
