"""Tempo maps that put beats on hit points.

Between two consecutive anchors (hit points a beat must land on) the music plays a whole number
of beats. The tempo inside that span bends smoothly (a piecewise-linear curve with a few random
knots: rubato, accelerando into a hit, a breath after it) and is then scaled so the phase reaches
exactly that whole number at the next anchor. Beat k of a span is where the integrated tempo
crosses k, so the anchor itself is a beat by construction, to the sample.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

GRID_S = 0.001          # s, resolution of the phase integration between knots
KNOT_EVERY_S = 2.5      # s, about one tempo knot this often inside a span
RUBATO = 0.12           # knots deviate up to this fraction from the span's mean tempo
ENTRY_REACH = 1.3       # a span may start at most this factor off its own tempo to join the one before


@dataclass(frozen=True)
class TempoSpan:
    """Beats [first_beat, first_beat + beats) of the map, from start_s to end_s."""

    start_s: float
    end_s: float
    beats: int
    mean_bpm: float


@dataclass(frozen=True)
class TempoMap:
    """Every beat of the timeline. `beat_s[i]` is the time of beat i; `bar_start[i]` says whether
    beat i opens a bar (bars restart on every anchor, so every hit point is a downbeat)."""

    beat_s: np.ndarray
    bar_start: np.ndarray
    spans: tuple[TempoSpan, ...]

    def time_of(self, beat: float) -> float:
        """Time (s) of a fractional beat position, interpolated between its two beats."""
        i = int(np.clip(np.floor(beat), 0, self.beat_s.size - 2))
        frac = beat - i
        return float(self.beat_s[i] + frac * (self.beat_s[i + 1] - self.beat_s[i]))

    def beat_at(self, time_s: float) -> float:
        """Fractional beat position of a time (inverse of `time_of`)."""
        return float(np.interp(time_s, self.beat_s, np.arange(self.beat_s.size)))

    def bpm_at(self, beat: int) -> float:
        i = int(np.clip(beat, 0, self.beat_s.size - 2))
        return 60.0 / float(self.beat_s[i + 1] - self.beat_s[i])


def beats_for_span(length_s: float, target_bpm: float, bpm_range: tuple[float, float]) -> int:
    """Whole number of beats for a span: nearest to the target tempo, kept inside the range
    when the range allows a whole number at all (a short span always gets at least one)."""
    low, high = bpm_range
    best = max(1, round(length_s * target_bpm / 60.0))
    fits = [n for n in range(max(1, int(length_s * low / 60.0)), int(length_s * high / 60.0) + 2)
            if low <= 60.0 * n / length_s <= high]
    if fits:
        best = min(fits, key=lambda n: abs(60.0 * n / length_s - target_bpm))
    return best


def span_beats(length_s: float, beats: int, rng: np.random.Generator, entry_bpm: float | None = None,
               rubato: float = RUBATO) -> np.ndarray:
    """Beat times (s from the span start) of `beats` beats with rubato; the last one at length_s.
    `entry_bpm`: the tempo the music arrives with (the end of the span before, in the same shot):
    the span starts from it, as near as ENTRY_REACH allows, and bends to its own tempo over its
    first stretch (an accelerando or a broadening into the next hit, not a jolt on the bar line).
    `rubato`: how far (a fraction of the span's tempo) its knots may pull and push."""
    knots = max(2, int(round(length_s / KNOT_EVERY_S)) + 1)
    knot_s = np.linspace(0.0, length_s, knots)
    shape = 1.0 + rubato * rng.uniform(-1.0, 1.0, knots)
    if entry_bpm is not None:
        # The beats counted over the span are linear in the first knot's value x (its hat
        # function covers half the first knot interval): rest + half * x. Scaled to `beats`, the
        # tempo at the start is beats * x / (rest + half * x); solve that for the entry tempo.
        half = 0.5 * (knot_s[1] - knot_s[0])
        rest = float(np.sum(0.5 * (np.r_[0.0, shape[1:-1]] + shape[1:]) * np.diff(knot_s)))
        per_s = entry_bpm / 60.0
        if beats - per_s * half > 0:
            others = float(np.mean(shape[1:]))
            shape[0] = np.clip(per_s * rest / (beats - per_s * half), others / ENTRY_REACH, others * ENTRY_REACH)
    grid = np.linspace(0.0, length_s, max(2, int(np.ceil(length_s / GRID_S)) + 1))
    tempo = np.interp(grid, knot_s, shape)
    phase = np.concatenate([[0.0], np.cumsum(0.5 * (tempo[1:] + tempo[:-1]) * np.diff(grid))])
    phase *= beats / phase[-1]          # exactly `beats` beats at the end of the span
    times = np.interp(np.arange(beats + 1, dtype=np.float64), phase, grid)
    times[0], times[-1] = 0.0, length_s
    return times


def build_tempo_map(anchors_s: list[float], end_s: float, target_bpm: list[float],
                    bpm_range: tuple[float, float], rng: np.random.Generator | Sequence[np.random.Generator],
                    bends_in: Sequence[bool] | None = None, rubato: float = RUBATO) -> TempoMap:
    """The tempo map from time 0 to end_s with a beat on every anchor.

    Args:
        anchors_s: times that must be beats (0 is added); each opens a new bar.
        end_s: end of the timeline; the last span plays on to it (its end need not be a beat).
        target_bpm: the wanted tempo for each span (len == number of spans), e.g. by shot energy.
        bpm_range: the slowest and fastest tempo allowed where a whole number of beats fits.
        rng: seeded generator for the rubato, or one per span (so a span's rubato depends on no
            other span's draws: the engine's, see `engine`).
        bends_in: per span, whether it goes on from the tempo the span before ends with (inside
            one shot) and bends into its own over its first stretch, rather than change at once
            (at a cut). Its beat count still follows its own target: a span squeezed into one
            beat between two close hit points does not pass its tempo on.
        rubato: how far each span's tempo pulls and pushes around its mean (see `span_beats`).
    """
    edges = sorted({0.0, *(a for a in anchors_s if 0.0 < a < end_s)}) + [end_s]
    if len(target_bpm) != len(edges) - 1:
        raise ValueError(f"{len(target_bpm)} tempos for {len(edges) - 1} spans")
    beats: list[np.ndarray] = []
    starts: list[np.ndarray] = []
    spans: list[TempoSpan] = []
    entry: float | None = None   # the tempo the span before ends with
    bends = list(bends_in) if bends_in is not None else [False] * len(target_bpm)
    rngs = list(rng) if isinstance(rng, Sequence) else [rng] * len(target_bpm)
    if len(rngs) != len(target_bpm):
        raise ValueError(f"{len(rngs)} generators for {len(target_bpm)} spans")
    for (start, end), bpm, bend, span_rng in zip(zip(edges[:-1], edges[1:]), target_bpm, bends, rngs):
        length = end - start
        # A span that goes on from the one before aims halfway (in ratio) between its own tempo
        # and the one it arrives with: no jolt at the hit point, and no drift away from the shot.
        wanted = float(np.sqrt(bpm * entry)) if bend and entry is not None else bpm
        count = beats_for_span(length, wanted, bpm_range)
        last = end == end_s
        if last:   # the final span need not end on a beat: play on at the target tempo
            count = max(1, int(np.ceil(length * bpm / 60.0)))
            length = count * 60.0 / bpm
        times = start + span_beats(length, count, span_rng, entry if bend else None, rubato)
        entry = 60.0 / float(times[-1] - times[-2])
        beats.append(times[:-1])
        starts.append(np.arange(count) == 0)
        spans.append(TempoSpan(start, end, count, 60.0 * count / length))
    beats.append(times[-1:])   # one closing beat, so every beat has a successor
    starts.append(np.array([False]))
    return TempoMap(np.concatenate(beats), np.concatenate(starts), tuple(spans))


def bar_numbers(tempo: TempoMap, meter: int) -> tuple[np.ndarray, np.ndarray]:
    """(bar index, beat in bar) for every beat: bars of `meter` beats restart at each anchor."""
    bar = np.zeros(tempo.beat_s.size, dtype=np.int64)
    pos = np.zeros(tempo.beat_s.size, dtype=np.int64)
    current, in_bar = -1, 0
    for i, opens in enumerate(tempo.bar_start):
        if opens or in_bar == meter:
            current, in_bar = current + 1, 0
        bar[i], pos[i] = current, in_bar
        in_bar += 1
    return bar, pos
