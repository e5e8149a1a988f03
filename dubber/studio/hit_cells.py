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
from ..spotting import (LONGEST_LENGTH_S, NO_HIT, SUSTAINED_KINDS, TIMECODE, SpottedHit, end_frame_after, hit_event,
                        named_frame, read_hit_list, read_hit_point, unused_length)
from ..plan import PlanOptions, cue_prompt, make_plan
from ..styles import get_style
from ..types import DubPlan
from .rows import COLUMNS, CUSTOM_STYLE, shot_label, style_of, timecode

HIT_LIST_NAME = "hits.txt"
SEPARATOR = "; "
# A drop-frame timecode (00:01:00;02), whose ";" stands before its frames and ends no entry.
_DROP_FRAME_TIMECODE = re.compile(r"(?<![\d:.])\d{1,2}:\d{2}:\d{2};\d{2}(?![\d:.])")
# The hit list's kind for an analysis's legacy "fast_motion" (a whoosh-like burst), which a hit list cannot name.
_LEGACY_KINDS = {"fast_motion": "whoosh"}
# A number written with a decimal comma ("0,5"): commas separate a hit's fields, so it would read
# as two numbers (strength 0, length 5 s) instead of one.
_DECIMAL_COMMA = re.compile(r"(?<![\d.,:;])\d+,\d+(?![\d.,])")


def _in_cue(events: Iterable[VisualEvent], cue: Any) -> list[VisualEvent]:
    return sorted((e for e in events if cue.start_frame <= e.frame < cue.end_frame), key=lambda e: (e.frame, e.kind))


def _length_text(event: VisualEvent, media: Any) -> str:
    """How long the event lasts, in seconds, as a hit list's LENGTH says it: to the hundredth, or
    with as many more digits as it takes to read back as the same frames (a one-frame whoosh lasts
    0.02 s at 60 fps, 0.004 s at 240 fps; three frames at 120 fps are 0.025 s, which 0.03 is not)."""
    length = min(LONGEST_LENGTH_S,
                 float(media.frame_time(min(event.end_frame, media.frame_count)) - media.frame_time(event.frame)))
    end = end_frame_after(event.frame, length, media)
    for digits in range(2, 7):
        text = f"{length:.{digits}f}"
        if float(text) > 0 and end_frame_after(event.frame, float(text), media) == end:
            return text
    return repr(length)


def hit_text(event: VisualEvent, media: Any) -> str:
    """How a cell shows one hit point: `TIMECODE KIND STRENGTH [LENGTH]`."""
    kind = _LEGACY_KINDS.get(event.kind, event.kind)
    text = f"{timecode(event.frame, media)} {kind} {event.strength:.2f}"
    return f"{text} {_length_text(event, media)}" if kind in SUSTAINED_KINDS else text


def cell_entries(text: str) -> list[str]:
    """The entries of a hits cell, each with its spaces made single: split at a new line or a ";"
    (with or without a space after it), but for the ";" inside a drop-frame timecode
    (00:01:00;02). `00:00:01:07;1.5` is two entries, as `4.2;1.5` is: a timecode with all four
    fields has no ";" left to take."""
    kept = {m.start() + m.group().index(";") for m in _DROP_FRAME_TIMECODE.finditer(text)}
    entries, start = [], 0
    for at, char in enumerate(text):
        if char == "\n" or (char == ";" and at not in kept):
            entries.append(text[start:at])
            start = at + 1
    entries.append(text[start:])
    return [" ".join(e.split()) for e in entries if e.strip()]


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
        InputError: an entry is not a hit point, it is not inside its row's shot, or it puts a kind
            on the frame of another entry of that kind (one sound of each kind plays on a frame:
            the editor picks which).
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
    first: dict[tuple[int, str], tuple[str, VisualEvent]] = {}   # (frame, kind): its first entry, and its hit
    for entry in cell_entries(text):
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
        # One sound of each kind plays on a frame (a flash as a whoosh starts plays both), in a hit
        # list as in detection: a second hit of one kind there would vanish, so the editor picks.
        kind = _LEGACY_KINDS.get(event.kind, event.kind)
        if (frame, kind) in first:
            other, before = first[(frame, kind)]
            if _hit_list_key(before) == _hit_list_key(event):
                continue   # the same hit typed twice
            if before not in by_text.values() or event not in by_text.values():   # not both as shown
                raise InputError(f"Shot {shot}'s hits {other!r} and {entry!r} both put a {kind} on one frame, "
                                 f"{timecode(frame, media)}, where one {kind} plays; keep one of them.")
        first.setdefault((frame, kind), (entry, event))
        events.append(event)
    return events


def hit_notes(plan: DubPlan, analysis: Any, rows: Sequence[Sequence[Any]], hits: Sequence[VisualEvent] | None,
              before: Sequence[VisualEvent] | None, muted: Sequence[int]) -> list[str]:
    """The status's sentences on the hits cells `rows` hold (read by `read_hits` as `hits`): a
    length typed for a kind that does not last, which no sound uses (the cell shows none after the
    render, and `dub --hits` notes it too), and hit points edited (unlike `before`, the last take's;
    None: as detected) in a `muted` shot, which are not heard."""
    media, notes = analysis.media, []
    unused = []
    for cue, values in zip(plan.cues, rows):
        for entry in cell_entries(str(dict(zip(COLUMNS, values)).get("hits") or "")):
            hit = read_hit_point(entry, entry)
            if unused_length(hit):
                frame = named_frame(_counted_as_shown(hit, media), media)
                unused.append(f"shot {shot_label(cue)}'s {hit.kind} at {timecode(frame, media)}")
    if unused:
        lengths = "length typed for" if len(unused) == 1 else "lengths typed for"
        notes.append(f"The {lengths} {_listed(unused)} {'is' if len(unused) == 1 else 'are'} not used: only a "
                     f"{', '.join(SUSTAINED_KINDS[:-1])} or {SUSTAINED_KINDS[-1]} lasts.")

    def in_cue(events: Sequence[VisualEvent] | None, cue: Any) -> list[tuple]:
        return sorted(_hit_list_key(e) for e in _in_cue(analysis.events if events is None else events, cue))
    quiet = [shot_label(c) for c in plan.cues if c.index in muted and in_cue(hits, c) != in_cue(before, c)]
    if len(quiet) == 1:
        notes.append(f"Shot {quiet[0]} is muted, so the hits you edited there are not heard; unmute it to hear them.")
    elif quiet:
        notes.append(f"Shots {_listed(quiet)} are muted, so the hits you edited there are not heard; unmute them "
                     "to hear them.")
    return notes


def _listed(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


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
            line += f" {_length_text(event, media)}"
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
