"""The studio's hits column: the hit points the soundtrack plays in each shot, shown as text an
editor reads and types back, and the table's cells read back into the film's hit list, each entry
checked as a line of a hit list (`dub --hits`, `dubber.spotting`) is.

A cell lists its shot's hits in time order, "; " between them, each `TIMECODE KIND STRENGTH` and,
for a sustained kind, its length in seconds: `00:00:04:16 impact 0.80; 00:00:06:01 whoosh 0.62 0.50`.
An entry may be typed in any form a hit list takes (`4.2`, `101f landing 0.9`, a timecode).

When the cells hold what detection found, a take renders as it always did, with no hit list;
otherwise the cells are the take's whole hit list (`HIT_LIST_NAME` in its folder, `hits_only`).
"""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable, Sequence

from vision.types import VisualEvent

from ..atomic import atomic_write_text
from ..errors import InputError
from ..spotting import (NO_HIT, SUSTAINED_KINDS, TIMECODE, SpottedHit, hit_event, named_frame, read_hit_list,
                        read_hit_point)
from ..plan import PlanOptions, cue_prompt, make_plan
from ..styles import get_style
from ..types import DubPlan
from .rows import COLUMNS, CUSTOM_STYLE, shot_label, style_of, timecode

HIT_LIST_NAME = "hits.txt"
SEPARATOR = "; "
# Where one entry of a cell ends: a ";" before a space or the cell's end, any ";" that does not
# stand before a drop-frame timecode's frames (00:01:00;02), or a new line.
_ENTRY_BREAK = re.compile(r";(?=\s|$)|(?<!:\d\d);|\n")
# The hit list's kind for an analysis's legacy "fast_motion" (a whoosh-like burst), which a hit list cannot name.
_LEGACY_KINDS = {"fast_motion": "whoosh"}
_SHORTEST_LENGTH_S, _LONGEST_LENGTH_S = 0.04, 60.0   # what a hit list's LENGTH may be
# A number written with a decimal comma ("0,5"): commas separate a hit's fields, so it would read
# as two numbers (strength 0, length 5 s) instead of one.
_DECIMAL_COMMA = re.compile(r"(?<![\d.,:;])\d+,\d+(?![\d.,])")


def _in_cue(events: Iterable[VisualEvent], cue: Any) -> list[VisualEvent]:
    return sorted((e for e in events if cue.start_frame <= e.frame < cue.end_frame), key=lambda e: (e.frame, e.kind))


def _length_s(event: VisualEvent, media: Any) -> float:
    """How long the event lasts, as a hit list's LENGTH may say it: a whoosh on a 60 fps video's
    last frame lasts 0.017 s, which shown as such could not be typed back."""
    length = float(media.frame_time(min(event.end_frame, media.frame_count)) - media.frame_time(event.frame))
    return min(_LONGEST_LENGTH_S, max(_SHORTEST_LENGTH_S, length))


def hit_text(event: VisualEvent, media: Any) -> str:
    """How a cell shows one hit point: `TIMECODE KIND STRENGTH [LENGTH]`."""
    kind = _LEGACY_KINDS.get(event.kind, event.kind)
    text = f"{timecode(event.frame, media)} {kind} {event.strength:.2f}"
    return f"{text} {_length_s(event, media):.2f}" if kind in SUSTAINED_KINDS else text


def hit_cells(plan: DubPlan, events: Sequence[VisualEvent], media: Any) -> list[str]:
    """The hits column: one cell per cue, its hit points among `events` in time order."""
    return [SEPARATOR.join(hit_text(e, media) for e in _in_cue(events, cue)) for cue in plan.cues]


def read_hits(plan: DubPlan, analysis: Any, rows: Sequence[Sequence[Any]],
              shown: Sequence[VisualEvent] | None = None) -> tuple[VisualEvent, ...] | None:
    """The film's hit points as the table's hits cells give them (rows in `COLUMNS` order, one per
    cue of `plan`, checked by `apply_rows` first), or None when they are the ones detection gave
    (`analysis.events`). An entry that reads as a detected hit, or one the table `shown` holds, is
    that very hit (its exact strength and its place on screen). A hit typed twice is one hit.

    Raises:
        InputError: an entry is not a hit point, it is not inside its row's shot, or it falls on
            the frame of another entry (one sound plays on a frame: the editor picks which).
    """
    known = [*analysis.events, *(shown or ())]
    hits: list[VisualEvent] = []
    for cue, values in zip(plan.cues, rows):
        cell = dict(zip(COLUMNS, values)).get("hits")
        hits += _read_cell("" if cell is None else str(cell), cue, plan, analysis.media, known)
    found = tuple(sorted(hits, key=lambda e: (e.frame, e.kind)))
    return None if same_hits(found, analysis.events) else found


def _read_cell(text: str, cue: Any, plan: DubPlan, media: Any, known: Sequence[VisualEvent]) -> list[VisualEvent]:
    shot = shot_label(cue)
    by_text = {hit_text(e, media): e for e in _in_cue(known, cue)}
    events: list[VisualEvent] = []
    first: dict[int, tuple[str, VisualEvent]] = {}   # frame: the first entry on it, and its hit
    for entry in (" ".join(e.split()) for e in _ENTRY_BREAK.split(text)):
        if not entry:
            continue
        where = f"Shot {shot}'s hit {entry!r}"
        if (comma := _DECIMAL_COMMA.search(entry)) is not None:
            raise InputError(f"{where} writes {comma.group()} with a decimal comma; write "
                             f"{comma.group().replace(',', '.')}, since commas separate a hit's fields.")
        hit = _counted_as_shown(read_hit_point(entry, where), media)
        frame = named_frame(hit, media)
        if not 0 <= frame < media.frame_count:
            raise InputError(f"{where} is off the video, which ends at {timecode(media.frame_count, media)}; write "
                             f"a time inside shot {shot}, {_span(cue, media)}.")
        if not cue.start_frame <= frame < cue.end_frame:
            there = next(c for c in plan.cues if c.start_frame <= frame < c.end_frame)
            raise InputError(f"{where} falls in shot {shot_label(there)}, not in shot {shot}; type it in shot "
                             f"{shot_label(there)}'s row, or write a time inside shot {shot}, {_span(cue, media)}.")
        event = hit_event(hit, media)
        if event is None:   # a `none` entry places nothing
            continue
        event = by_text.get(hit_text(event, media), event)
        if frame in first:
            other, before = first[frame]
            if _hit_list_key(before) == _hit_list_key(event):
                continue   # the same hit typed twice
            # Detection may place two hits on one frame (a flash as a whoosh starts): shown back, both stay.
            if before not in by_text.values() or event not in by_text.values():
                raise InputError(f"Shot {shot}'s hits {other!r} and {entry!r} fall on one frame, "
                                 f"{timecode(frame, media)}, where one sound plays; keep one of them.")
        first.setdefault(frame, (entry, event))
        events.append(event)
    return events


def _counted_as_shown(hit: SpottedHit, media: Any) -> SpottedHit:
    """A typed timecode counted as the video's own start timecode is (as the cells show it),
    whichever mark stands before its frames: on a drop-frame video starting at 01:00:00;00,
    01:00:02:25 is the frame shown as 01:00:02;25, not one counted without drops from a start
    counted with them, 108 frames later. With no start timecode, either count starts at the first frame."""
    start = media.start_timecode or ""
    if not start or not TIMECODE.match(hit.when):
        return hit
    return replace(hit, when=f"{hit.when[:-3]}{';' if ';' in start else ':'}{hit.when[-2:]}")


def _span(cue: Any, media: Any) -> str:
    return f"{timecode(cue.start_frame, media)} to {timecode(cue.end_frame - 1, media)}"


def _hit_list_key(event: VisualEvent) -> tuple:
    """What a hit list says of an event (its place on screen is no part of one)."""
    return event.frame, _LEGACY_KINDS.get(event.kind, event.kind), float(event.strength), event.end_frame


def same_hits(hits: Sequence[VisualEvent] | None, others: Sequence[VisualEvent] | None) -> bool:
    """Whether two films' hit points say the same (None: as detected, only like None)."""
    if hits is None or others is None:
        return hits is None and others is None

    def keys(events: Sequence[VisualEvent]) -> list[tuple]:
        return sorted(_hit_list_key(e) for e in events)
    return keys(hits) == keys(others)


def write_hit_list(hits: Sequence[VisualEvent], media: Any, path: Path) -> Path:
    """The hit list a take renders from: every hit, on its frame, with its exact strength and
    length. An empty one holds a `none`, since a hit list must hold a line."""
    lines = ["# The hit points of this take, from the studio's hits column: FRAME KIND STRENGTH [LENGTH_S]"]
    for event in sorted(hits, key=lambda e: (e.frame, e.kind)):
        _, kind, strength, _ = _hit_list_key(event)
        line = f"{event.frame}f {kind} {strength!r}"
        if kind in SUSTAINED_KINDS:
            line += f" {_length_s(event, media)!r}"
        lines.append(line)
    if not hits:
        lines.append(f"0f {NO_HIT}   # no hit anywhere in the film")
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def read_take_hits(path: Path, analysis: Any) -> tuple[VisualEvent, ...]:
    """The hit points a take's hit list holds, a detected hit among them as detected (with its place
    on screen, which a hit list does not keep).

    Raises:
        InputError: the list cannot be read, or does not fit this video.
    """
    placed = (hit_event(hit, analysis.media) for hit in read_hit_list(path))
    detected = {_hit_list_key(e): e for e in analysis.events}
    return tuple(detected.get(_hit_list_key(e), e) for e in placed if e is not None)


def with_hits(analysis: Any, hits: Sequence[VisualEvent] | None) -> Any:
    """The analysis with the hit points a take plays (None: as detected)."""
    return analysis if hits is None else replace(analysis, events=tuple(hits))


def captions_follow_hits(plan: DubPlan, analysis: Any, hits: Sequence[VisualEvent] | None,
                         earlier: Sequence[Sequence[VisualEvent] | None] = ()) -> DubPlan:
    """`plan` with each caption the planner wrote told again of `hits` (None: the detected ones),
    as `dub --hits` tells them: "a heavy fall at 10.9 s" appears where a landing was typed in, and
    AudioStory, which reads the captions, hears of it. A caption is the planner's when it reads as
    the planner tells that shot of the detected hits or of any of the `earlier` hit points (the
    ones the table showed, the last take's); one written by hand stays as it is. A prompt in the
    planner's wording follows its caption, in the style it ends with."""
    from vision.captioners.motion import retold

    def told(events: Sequence[VisualEvent] | None) -> list[str]:
        options = PlanOptions(style=plan.style, seed=plan.seed, sample_rate=plan.sample_rate)
        return [c.caption for c in make_plan(retold(with_hits(analysis, events)), options).cues]

    wanted = told(hits)
    if len(wanted) != len(plan.cues):
        return plan   # a plan cut otherwise than the planner cuts this analysis: nothing to match
    machine = [told(None), *(told(e) for e in earlier if e is not None)]
    cues = []
    for i, cue in enumerate(plan.cues):
        if cue.caption != wanted[i] and any(cue.caption == tellings[i] for tellings in machine):
            style = style_of(cue.prompt)
            if style != CUSTOM_STYLE and cue.prompt == cue_prompt(cue.caption, get_style(style)):
                cue = replace(cue, prompt=cue_prompt(wanted[i], get_style(style)))
            cue = replace(cue, caption=wanted[i])
        cues.append(cue)
    return replace(plan, cues=tuple(cues))
