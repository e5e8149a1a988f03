"""The tune's material: a motif of rhythm cells and scale steps, its variations, and the forms it
takes in a scene (thinned for a calm one, cut short where a change of key comes first).

Pure functions of their arguments and a seeded generator.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Rhythm cells in beats: what a tune is made of (dotted, syncopated, even, held).
CELLS: tuple[tuple[float, ...], ...] = ((1.0, 0.5, 0.5), (0.5, 0.5, 1.0), (1.5, 0.5), (0.75, 0.25, 1.0),
                                        (0.5, 1.0, 0.5), (2.0,), (1.0, 1.0), (0.5, 0.5, 0.5, 0.5),
                                        (1.0, 2.0), (0.25, 0.25, 0.5, 1.0), (3.0,), (1.5, 1.5))
VARIATIONS = ("state", "sequence", "invert", "retrograde", "augment", "diminish", "fragment", "free")


@dataclass(frozen=True)
class Motif:
    rhythm: tuple[float, ...]   # beats
    steps: tuple[int, ...]      # scale steps between consecutive notes (len(rhythm) - 1)


def make_motif(rng: np.random.Generator) -> Motif:
    rhythm = CELLS[int(rng.integers(len(CELLS)))] + CELLS[int(rng.integers(len(CELLS)))]
    steps = tuple(int(s) for s in rng.choice((-2, -1, -1, 1, 1, 2, 3, -3), size=len(rhythm) - 1))
    return Motif(rhythm, steps)


def vary(motif: Motif, how: str, rng: np.random.Generator) -> Motif:
    """One variation of the motif (see VARIATIONS)."""
    if how == "invert":
        return Motif(motif.rhythm, tuple(-s for s in motif.steps))
    if how == "retrograde":
        return Motif(motif.rhythm[::-1], tuple(-s for s in motif.steps[::-1]))
    if how == "augment":
        return Motif(tuple(2 * r for r in motif.rhythm), motif.steps)
    if how == "diminish":
        return Motif(tuple(r / 2 for r in motif.rhythm) * 2, motif.steps + (int(rng.choice((-1, 1))),) + motif.steps)
    if how == "fragment":
        half = max(1, len(motif.rhythm) // 2)
        return Motif(motif.rhythm[:half] * 2, motif.steps[:half - 1] + (int(rng.choice((-2, 2))),) + motif.steps[:half - 1])
    if how == "free":
        return make_motif(rng)
    return motif


def simplified(motif: Motif, notes_per_beat: float) -> Motif:
    """The motif with its shortest notes tied into the note before them until it plays at most
    `notes_per_beat`: the same tune and contour in longer values, as an arranger thins a figure
    for a calmer scene. The first note always stays."""
    rhythm, steps = list(motif.rhythm), list(motif.steps)
    while len(rhythm) > 1 and len(rhythm) / sum(rhythm) > notes_per_beat:
        k = min(range(1, len(rhythm)), key=lambda j: (rhythm[j], -j))
        rhythm[k - 1] += rhythm.pop(k)
        moved = steps.pop(k - 1)
        if k - 1 < len(steps):
            steps[k - 1] += moved   # the next note is still reached from where the tied one led
    return Motif(tuple(rhythm), tuple(steps))


def unsquared(motif: Motif, rng: np.random.Generator) -> Motif:
    """The motif as it is, or, where every note of it lasts a whole number of beats (a square
    figure: stated and varied phrase after phrase it strikes beat after beat, and the onset curve
    reads as a click track), with one pair of notes played long-short, the second half a beat
    late: (1, 1, 2) as (1.5, 0.5, 2), as a pianist dots a square tune. The same notes, as many, in
    the same length. The thinning of a calm scene (`simplified`) squares most figures: it ties the
    short notes of a dotted or syncopated cell first."""
    rhythm = list(motif.rhythm)
    if len(rhythm) < 2 or any(abs(r - round(r)) > 1e-9 for r in rhythm):
        return motif
    k = int(rng.integers(len(rhythm) - 1))
    rhythm[k], rhythm[k + 1] = rhythm[k] + 0.5, rhythm[k + 1] - 0.5
    return Motif(tuple(rhythm), motif.steps)


def opening(rhythm: tuple[float, ...], room: float) -> list[float]:
    """The note values from the start of `rhythm` that fit in `room` beats."""
    fitting: list[float] = []
    for length in rhythm:
        if sum(fitting) + length > room + 1e-9:
            break
        fitting.append(length)
    return fitting


def theme_in(motif: Motif, notes_per_beat: float, room: float) -> tuple[Motif, bool]:
    """The theme in at most `room` beats, and whether it is cut short: whole, thinned for the
    scene's pace (`simplified`), where it fits; else its opening notes, in halved values where
    the plain ones leave fewer than two (no note shorter than a sixteenth), with the last one
    held towards the end of the room (see `compose.Composer._phrase`), so a statement that a change of
    key comes to cut short closes on a held note instead of breaking off mid-figure."""
    form = simplified(motif, notes_per_beat)
    if sum(form.rhythm) <= room + 1e-9:
        return form, False
    rhythm = opening(form.rhythm, room)
    halved = Motif(tuple(r / 2 for r in form.rhythm), form.steps)
    if len(rhythm) < 2 and min(halved.rhythm) >= 0.25:
        form, rhythm = halved, opening(halved.rhythm, room)
    if not rhythm:
        return Motif((room,), ()), True
    rhythm[-1] += room - sum(rhythm)
    return Motif(tuple(rhythm), form.steps[:len(rhythm) - 1]), True
