"""The score as data: parts, notes with exact times, rooms. Composed by pure functions, rendered
at the edge (render.py). Times are seconds from the start of the soundtrack."""
from __future__ import annotations

from dataclasses import dataclass

STEMS = ("music", "fx")
BEND_RANGE = 12      # semitones a glissando may travel either way (the synthesizer's bend range)


@dataclass(frozen=True)
class Part:
    """One instrument line: a General MIDI program (0-based) or the percussion kit (`drums`)."""

    program: int
    stem: str = "music"
    drums: bool = False

    def __post_init__(self) -> None:
        if self.stem not in STEMS:
            raise ValueError(f"unknown stem {self.stem!r}; expected one of {STEMS}")
        if not 0 <= self.program <= 127:
            raise ValueError(f"GM program out of range: {self.program}")


@dataclass(frozen=True)
class Note:
    """One sounding note. `role` says what it is for ("melody", "bass", "hit:impact", ...).
    `glide`: semitones the pitch slides by, evenly from the start to the end of the note (a
    glissando: a trombone fall, a slide whistle); 0 for a note that holds its pitch."""

    part: Part
    pitch: int
    start_s: float
    end_s: float
    velocity: int
    role: str = ""
    glide: float = 0.0

    def __post_init__(self) -> None:
        if not (0 <= self.pitch <= 127 and 1 <= self.velocity <= 127):
            raise ValueError(f"note out of MIDI range: pitch {self.pitch}, velocity {self.velocity}")
        if not 0.0 <= self.start_s < self.end_s:
            raise ValueError(f"bad note span [{self.start_s}, {self.end_s})")
        if abs(self.glide) > BEND_RANGE or (self.glide and self.part.drums):
            raise ValueError(f"a glide of {self.glide} semitones cannot be played on this part")


@dataclass(frozen=True)
class Room:
    """From `start_s` on, every part sends `reverb` (0-127) to the synthesizer's reverb."""

    start_s: float
    reverb: int


@dataclass(frozen=True)
class ShotMusic:
    """What the composer chose for one shot (for the manifest, the review page and the tests)."""

    start_s: float
    key_root: int        # pitch class
    mode: str
    start_bpm: float
    melody_program: int


@dataclass(frozen=True)
class Score:
    notes: tuple[Note, ...]
    rooms: tuple[Room, ...]
    shots: tuple[ShotMusic, ...]
    duration_s: float

    def stem_notes(self, stem: str) -> tuple[Note, ...]:
        return tuple(n for n in self.notes if n.part.stem == stem)
