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
from ..spotting import NO_HIT, SUSTAINED_KINDS, frame_of, hit_event, read_hit_list, read_hit_point
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


def _in_cue(events: Iterable[VisualEvent], cue: Any) -> list[VisualEvent]:
    return sorted((e for e in events if cue.start_frame <= e.frame < cue.end_frame), key=lambda e: (e.frame, e.kind))


def _length_s(event: VisualEvent, media: Any) -> float:
    return float(media.frame_time(min(event.end_frame, media.frame_count)) - media.frame_time(event.frame))


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
    that very hit (its exact strength and its place on screen). Two hits on one frame play once,
    the stronger, as in a hit list.

    Raises:
        InputError: an entry is not a hit point, or it is not inside its row's shot.
    """
    known = [*analysis.events, *(shown or ())]
    hits: dict[int, VisualEvent] = {}
    for cue, values in zip(plan.cues, rows):
        cell = dict(zip(COLUMNS, values)).get("hits")
        for event in _read_cell("" if cell is None else str(cell), cue, plan, analysis.media, known):
            if event.frame not in hits or hits[event.frame].strength < event.strength:
                hits[event.frame] = event
    found = tuple(sorted(hits.values(), key=lambda e: (e.frame, e.kind)))
    return None if same_hits(found, analysis.events) else found


def _read_cell(text: str, cue: Any, plan: DubPlan, media: Any, known: Sequence[VisualEvent]) -> list[VisualEvent]:
    shot = shot_label(cue)
    by_text = {hit_text(e, media): e for e in _in_cue(known, cue)}
    events = []
    for entry in (" ".join(e.split()) for e in _ENTRY_BREAK.split(text)):
        if not entry:
            continue
        where = f"Shot {shot}'s hit {entry!r}"
        hit = read_hit_point(entry, where)
        try:
            frame = frame_of(hit, media)
        except InputError as err:
            if "not on the video" not in str(err):   # a timecode this video's rate cannot count: spotting's sentence
                raise
            raise InputError(f"{where} is off the video, which ends at {timecode(media.frame_count, media)}; write "
                             f"a time inside shot {shot}, {_span(cue, media)}.") from None
        if not cue.start_frame <= frame < cue.end_frame:
            there = next(c for c in plan.cues if c.start_frame <= frame < c.end_frame)
            raise InputError(f"{where} falls in shot {shot_label(there)}, not in shot {shot}; type it in shot "
                             f"{shot_label(there)}'s row, or write a time inside shot {shot}, {_span(cue, media)}.")
        event = hit_event(hit, media)
        if event is not None:   # a `none` entry places nothing
            events.append(by_text.get(hit_text(event, media), event))
    return events


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
            length = min(_LONGEST_LENGTH_S, max(_SHORTEST_LENGTH_S, _length_s(event, media)))
            line += f" {length!r}"
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
