"""The effects stem: a sound for every visual event, by kind and strength, never the same twice
in a row, plus the foley music does not do (whooshes, splashes, thuds, footsteps).

Impacts get an orchestral hit (big for strong blows) or a dry stab (weak blows, and the inside of
a fast series of blows, whose last blow gets the big one: a series of ringing hits would mask
itself). Every hit is voiced on the harmony of the moment and moved in pitch, so two blows in a
row differ in instrument, pitch and layering.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ...styles import BIG_HITS, SMALL_HITS, Hit, Layer, Orchestra
from .hitpoints import SERIES_GAP_S, HitPoint
from .notation import Note, Part

BIG_FROM_STRENGTH = 0.55
STEP_S = 0.27               # s between footsteps, before jitter
FOOTSTEPS_FROM = 0.6        # weaker runs get no footsteps (the music's run carries them)
FOOTSTEPS_MAX_S = 1.5       # a long run gets its first steps; the music carries the rest
SLIDE_S = 0.32              # a trombone slide this long falls into a landing
DRUMS = Part(0, "fx", drums=True)
TROMBONE = 57

ChordAt = Callable[[float], tuple[int, int, int]]


def _pitch(pc: int, octave: int) -> int:
    return int(np.clip(12 * (octave + 1) + pc % 12, 0, 127))


def realise(hit: Hit, point: HitPoint, chord: tuple[int, int, int], shift: int, level: float) -> list[Note]:
    """The notes of one hit at a hit point, voiced on `chord`, moved by `shift` semitones."""
    notes = []
    velocity = 62 + 62 * float(np.clip(point.strength, 0.0, 1.0))
    for layer in hit.layers:
        for pitch in _layer_pitches(layer, chord, shift):
            vel = int(np.clip(velocity * layer.level * level, 1, 127))
            part = DRUMS if layer.drum else Part(layer.program, "fx")
            notes.append(Note(part, pitch, point.time_s, point.time_s + layer.length_s, vel, f"hit:{point.kind}"))
    return notes


def _layer_pitches(layer: Layer, chord: tuple[int, int, int], shift: int) -> list[int]:
    if layer.drum:
        return [layer.program]
    if layer.voicing == "fixed":
        return [_pitch(shift, layer.octave)]
    if layer.voicing == "chord":
        return [_pitch(pc + shift, layer.octave) for pc in chord]
    index = {"root": 0, "top": 1, "fifth": 2}[layer.voicing]
    return [_pitch(chord[index] + shift, layer.octave)]


def _in_series(impacts: list[HitPoint], i: int) -> tuple[bool, bool]:
    """(part of a fast series, last of it) for impact i."""
    before = i > 0 and impacts[i].time_s - impacts[i - 1].time_s < SERIES_GAP_S
    after = i + 1 < len(impacts) and impacts[i + 1].time_s - impacts[i].time_s < SERIES_GAP_S
    return before or after, before and not after


def _sounds(hit: Hit) -> set[tuple[int, bool]]:
    return {(layer.program, layer.drum) for layer in hit.layers}


def _choose(pool: tuple[Hit, ...], previous: Hit | None, rng: np.random.Generator) -> Hit:
    """A hit from the pool sharing no instrument with the previous one of its kind (or at least
    not the same hit), so two in a row never sound alike."""
    if previous is None:
        return pool[int(rng.integers(len(pool)))]
    apart = [h for h in pool if h.register != previous.register]
    options = [h for h in apart if not _sounds(h) & _sounds(previous)] or apart
    options = options or [h for h in pool if h.name != previous.name] or list(pool)
    return options[int(rng.integers(len(options)))]


def event_sounds(points: list[HitPoint], orchestra: Orchestra, chord_at: ChordAt,
                 rng: np.random.Generator) -> list[Note]:
    """Every note of the effects stem for these hit points (cuts are ignored here)."""
    notes: list[Note] = []
    impacts = [p for p in points if p.kind == "impact"]
    previous: dict[str, Hit] = {}
    last_shift = 0
    for point in points:
        if point.kind == "cut":
            continue
        if point.kind == "run":
            if point.strength >= FOOTSTEPS_FROM:
                notes += footsteps(point, orchestra, rng)
            continue
        if point.kind == "impact":
            series, last = _in_series(impacts, impacts.index(point))
            big = last or (point.strength >= BIG_FROM_STRENGTH and not series)
            pool = BIG_HITS + SMALL_HITS[-1:] if big else SMALL_HITS
            if series and not last:   # uneven accents: a series of blows is not a click track
                point = HitPoint(point.time_s, point.kind, point.strength * float(rng.uniform(0.55, 0.9)),
                                 point.end_s, point.x)
        else:
            pool = orchestra.sounds_for(point.kind) or SMALL_HITS
        group = "impact" if point.kind == "impact" else point.kind
        hit = _choose(pool, previous.get(group), rng)
        previous[group] = hit
        shift = int(rng.choice([s for s in (-5, -3, -2, 0, 2, 3, 5) if s != last_shift]))
        last_shift = shift
        if point.kind == "landing":
            notes += slide_down(point, chord_at(point.time_s), orchestra)
        notes += realise(hit, point, chord_at(point.time_s), shift, orchestra.hit_level)
    return notes


def footsteps(point: HitPoint, orchestra: Orchestra, rng: np.random.Generator) -> list[Note]:
    """Running feet over the span of a run: alternating blocks, a little uneven, as drawn feet are."""
    notes, t, k = [], point.time_s, 0
    end = min(max(point.end_s, point.time_s + 0.3), point.time_s + FOOTSTEPS_MAX_S)
    while t < end:
        key = orchestra.footsteps[k % len(orchestra.footsteps)]
        velocity = int(np.clip(55 + 45 * point.strength + rng.integers(-8, 9), 1, 127))
        notes.append(Note(DRUMS, key, t, t + 0.1, velocity, "foley:run"))
        t += STEP_S * float(rng.uniform(0.75, 1.3))
        k += 1
    return notes


def slide_down(point: HitPoint, chord: tuple[int, int, int], orchestra: Orchestra) -> list[Note]:
    """A trombone falling a sixth into a landing, ending just before the thud."""
    part = Part(TROMBONE, "fx")
    top = _pitch(chord[0], 4) + 9
    start = max(0.0, point.time_s - SLIDE_S)
    count = 6
    gap = (point.time_s - 0.04 - start) / count
    if gap <= 0.01:
        return []
    velocity = int(np.clip(50 + 40 * point.strength * orchestra.hit_level, 1, 127))
    return [Note(part, top - round(9 * k / (count - 1)), start + k * gap, start + (k + 1) * gap, velocity, "foley:slide")
            for k in range(count)]
