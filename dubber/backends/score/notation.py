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


# Where each General MIDI instrument the styles write for can be played (MIDI notes as they
# sound, from orchestration references): a note outside is moved by octaves into it, as an
# arranger would write it for that instrument. Programs not listed are left where they are
# (pianos, strings and pads cover the whole range the score uses).
PLAYABLE: dict[int, tuple[int, int]] = {
    8: (60, 108),    # celesta
    9: (79, 108),    # glockenspiel
    11: (53, 89),    # vibraphone
    12: (45, 96),    # marimba
    13: (65, 108),   # xylophone
    32: (28, 67),    # acoustic bass
    42: (36, 76),    # cello
    43: (28, 67),    # contrabass
    47: (38, 57),    # timpani
    56: (54, 82),    # trumpet
    57: (40, 77),    # trombone
    58: (28, 65),    # tuba
    59: (54, 82),    # muted trumpet
    60: (41, 77),    # french horn
    61: (41, 82),    # brass section
    64: (56, 87),    # soprano sax
    65: (49, 80),    # alto sax
    66: (44, 75),    # tenor sax
    67: (36, 68),    # baritone sax
    68: (58, 91),    # oboe
    70: (34, 75),    # bassoon
    71: (50, 94),    # clarinet
    72: (74, 108),   # piccolo
    73: (60, 96),    # flute
    74: (65, 96),    # recorder (alto and soprano)
    79: (60, 96),    # ocarina (the slide whistle's voice)
}


# Keys the default bank (TimGM6mb) leaves silent on an instrument it otherwise plays, found by
# rendering every key from 28 to 100 of every program the styles write for: a tune steps around them.
SILENT_KEYS: dict[int, frozenset[int]] = {65: frozenset({64})}   # alto saxophone E4


def playable(note: Note) -> Note:
    """`note` moved by octaves into its instrument's range (PLAYABLE), a glide kept inside it where
    the range allows; drums and unlisted instruments as they are."""
    span = PLAYABLE.get(note.part.program) if not note.part.drums else None
    if span is None:
        return note
    low, high = span
    top = max(note.pitch, note.pitch + int(round(note.glide)))
    bottom = min(note.pitch, note.pitch + int(round(note.glide)))
    pitch = note.pitch
    while bottom + (pitch - note.pitch) < low and top + (pitch - note.pitch) + 12 <= max(high, low + 12):
        pitch += 12
    while top + (pitch - note.pitch) > high and bottom + (pitch - note.pitch) - 12 >= min(low, high - 12):
        pitch -= 12
    if pitch == note.pitch:
        return note
    return Note(note.part, pitch, note.start_s, note.end_s, note.velocity, note.role, note.glide)


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
