"""Through-composed music on the tempo map: keys per shot, harmony, a motif stated and varied,
bass and sustained harmony in a texture that changes from section to section, runs over
scurrying and tremolo under shakes. A tune plays in longer values the calmer its shot.

Every choice comes from a seeded generator, so one seed gives one score. Nothing repeats on a
grid: phrases follow the hit points (each anchor opens a bar and a phrase), the motif comes back
transposed, inverted, reversed, stretched or cut, and the key moves at every cut.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ...styles import Orchestra
from .hitpoints import HitPoint, series_spans
from .motif import VARIATIONS, Motif, make_motif, simplified, theme_in, unsquared, vary
from .notation import PLAYABLE, SILENT_KEYS, Note, Part, ShotMusic
from .tempo_map import TempoMap, bar_numbers

MODES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "lydian": (0, 2, 4, 6, 7, 9, 11),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
    "pentatonic": (0, 2, 4, 7, 9),
    "whole-tone": (0, 2, 4, 6, 8, 10),
    "blues": (0, 3, 5, 6, 7, 10),
}
# Where a chord (scale degree, 0-based) likes to go next: functional harmony, loosely.
NEXT_DEGREE: dict[int, tuple[int, ...]] = {0: (3, 4, 5, 1, 2), 1: (4, 4, 6), 2: (5, 3), 3: (4, 0, 1),
                                           4: (0, 5, 0), 5: (1, 3), 6: (0, 2)}
MELODY_RANGE = (60, 86)
MELODY_SPAN = 19            # semitones a tune keeps at least, where its instrument's compass allows
# The full band's bass line from E2: below it the semitones lie closer together than a chroma
# reading's analysis window can tell apart (librosa's 93 ms), so the bar's root reads as a smear
# over its neighbouring pitch classes under every chord, and every second of the score as much
# like any other (librosa's chroma repetition on the real clips of 20 s or more: 0.49 to 0.48 on
# average, the worst render 0.59 to 0.57).
BASS_RANGE = (40, 59)
HARMONY_RANGE = (53, 72)
BASS_HOME = 0.35            # where in its range (0 bottom .. 1 top) a bass line gravitates to
CLEAR_BEFORE_HIT_S = 0.18   # the tune keeps quiet this long before an event it does not land on
# On a bar line the tune reaches for the chord's root only when it is this many scale steps
# nearer than its third or fifth (never, as those lie two steps away): it stays on a root it is on.
ROOT_AWAY = 1.5
# The tune's metric accents, in velocity steps: a bar's first beat leans in, the other beats give
# way and a note between beats is lighter still, as a player phrases a tune against the bar. Notes
# of one loudness on every beat read as a click track (the onset curve's autocorrelation at the
# beat); with these the silent-film piano's periodicity on a long-shot clip goes over 0.2 in 4 of
# 60 renders instead of 9.
ACCENT_DOWN, ACCENT_WEAK, ACCENT_OFF = 6, 14, 20
SNAP_S = 0.1                # a tune note this close to an event moves onto it
RUN_FROM = 0.5              # weaker motion gets no run
RUN_NOTES_PER_S = 9.0
RUN_RUSH = 0.8              # an upward run's note k of n starts at (k / n) ** this of its length (quickening) ...
RUN_FALL = 1.25             # ... a downward run's at (k / n) ** this (slowing)
CALM_DENSITY = 0.5          # notes a beat under which a shot counts as calm ...
BUSY_DENSITY = 0.7          # ... and over which as busy
TUNE_SLACK = 1.5            # a phrase plays at most this many times the shot's wanted notes a beat
PHRASE_REST = 0.12          # chance that a note of a phrase is a rest
HARMONY_REST = 0.45         # share of bars the sustained harmony sits out
# The chord tones (0 root, 1 third, 2 fifth) a sustained pad voices: the root and the third, as
# an orchestrator thins a pad under a tune. The fifth adds no colour the bass's overtones do not
# already sound, and a full triad held under the tune and the bass made each bar's pitch content
# so even that one second of the score sounded much like any other (chroma repetition -0.025 on
# average on the real clips, with the third still saying major or minor). A struck accompaniment
# (piano, harp) plays the whole chord and lets it die away: STRUCK_TONES.
HARMONY_TONES = (0, 1)
STRUCK_TONES = (0, 1, 2)
# Velocity of the sustained harmony under the tune (plus HARMONY_ENERGY_VELOCITY times the
# section's energy): a pad a step under the tune, so the bar's chroma is the tune's line over
# the chord rather than the chord alone (repetition -0.013 on average).
HARMONY_VELOCITY = 22
HARMONY_ENERGY_VELOCITY = 16
# A struck accompaniment (piano, harp) places each bar's chord in one of these ways (see `_comp`),
# with these weights; a chord the bar before already had is left ringing this often.
COMP_PATTERNS = ("down", "after", "off", "rolled")
COMP_WEIGHTS = (0.25, 0.3, 0.2, 0.25)
COMP_AT = {"down": 0.0, "after": 1.0, "off": 0.5, "rolled": 0.0}   # beats after the bar line
COMP_TIE = 0.5
COMP_ROLL_S = 0.035         # between the notes of a rolled chord, bottom up
# Beats in a row that may each strike a note before the next beat that can be is left free (see
# `_free_a_beat`); a note landing this soon after a beat still counts as on it (a rolled chord).
PULSE_RUN = 2
ON_BEAT_S = 0.08
FLURRY_BED = 0.5            # strength of the tremolo bed under a flurry of blows
CARRY_GAP_S = 0.2           # the longest a section may go without a note sounding (see `_carry_through`)
CARRY_FROM = 0.1            # sections at least this busy (anything moving) are carried through; stiller ones may rest
PLUCK_S = 0.5               # a plucked or struck note (DECAYING) counts as sounding this long at most...
# ...but a piano's note rings on while its key is held (in the default bank 13 dB down after a
# second, a pizzicato's 29 dB down after half of one): a pianist does not strike again to fill it.
RING_S = {program: 1.0 for program in range(8)}
SWELL_VELOCITY = 20         # a moment busier than its shot (`pace.motion_swell`) plays this many velocity steps louder
SWELLING_ROLES = frozenset({"melody", "bass", "harmony"})   # runs and tremolo take their level from their event
# General MIDI programs whose sound dies away while the key is held: pianos and chromatic
# percussion, guitars and basses, pizzicato, harp, timpani, plucked and percussive ethnic ones.
DECAYING = frozenset((*range(0, 16), *range(24, 40), 45, 46, 47, *range(104, 120)))


def pad_tones(program: int) -> tuple[int, ...]:
    """The chord tones (0 root, 1 third, 2 fifth) the accompaniment voices on `program`: the
    whole chord where its notes die away (DECAYING), else the sustained pad's."""
    return STRUCK_TONES if program in DECAYING else HARMONY_TONES


@dataclass(frozen=True)
class Texture:
    """How full the accompaniment of a section is, as an orchestrator would mark it: where the bass
    line sits (MIDI range) and whether it plays every bar or only opens the section, and where the
    sustained chords are voiced."""

    name: str
    bass_range: tuple[int, int]
    bass_every_bar: bool
    harmony_range: tuple[int, int]


# The whole band with the bass in its own octave; a lighter scoring with the bass line taken up
# by the cellos and the chords by the violins; and the tune over high strings with one bass note
# opening the section (none in a section of one bar). Cartoon scores change colour like this from
# phrase to phrase: a low bass under every bar of every section is the sound of a dance band loop,
# not of an orchestra.
TEXTURES: tuple[Texture, ...] = (
    Texture("tutti", BASS_RANGE, True, HARMONY_RANGE),
    Texture("light", (48, 65), True, (60, 79)),
    Texture("open", (48, 65), False, (60, 79)),
)
TEXTURE_KEEP = 0.35         # weight of keeping the texture of the section before, against 1 for a change


@dataclass
class ShotContext:
    """What the composer knows while writing one shot."""

    start_s: float
    end_s: float
    energy: float
    root: int
    scale: tuple[int, ...]
    melody: Part
    bass: Part
    harmony: Part
    texture: Texture = TEXTURES[0]


def heard_until(note: Note) -> float:
    """When `note` stops being heard: a plucked or struck one dies away (PLUCK_S, RING_S) before its end."""
    if note.part.program in DECAYING:
        return note.start_s + min(note.end_s - note.start_s, RING_S.get(note.part.program, PLUCK_S))
    return note.end_s


def melody_range(program: int) -> tuple[int, int]:
    """Where the tune is written for `program`: MELODY_RANGE cut to the instrument's compass
    (notation.PLAYABLE), reaching down below it only as far as it takes to keep an octave and a
    fifth. A tune written above a tenor saxophone's compass was folded down an octave note by
    note when played, and leapt a ninth and back where it crossed the top of the instrument."""
    low, high = PLAYABLE.get(program, MELODY_RANGE)
    top = min(high, max(MELODY_RANGE[1], low + MELODY_SPAN))
    bottom = max(low, min(MELODY_RANGE[0], top - MELODY_SPAN))
    return bottom, top


def scale_pitches(root: int, scale: tuple[int, ...], low: int, high: int) -> list[int]:
    pcs = {(root + s) % 12 for s in scale}
    return [m for m in range(low, high + 1) if m % 12 in pcs]


def chord_pcs(root: int, scale: tuple[int, ...], degree: int) -> tuple[int, int, int]:
    """A triad stacked in thirds of the scale on `degree` (0-based), as pitch classes."""
    n = len(scale)
    return tuple((root + scale[(degree + k) % n]) % 12 for k in (0, 2, 4))  # type: ignore[return-value]


def plan_keys(orchestra: Orchestra, rngs: list[np.random.Generator]) -> list[tuple[int, str]]:
    """(key root, mode) per section, each drawn from its section's own generator (`rngs`, in time
    order): a new key at every cut, moving by the style's modulations to a key not heard in the
    last three sections. A section's key depends on the sections up to it only."""
    if not rngs:
        return []
    root = int(rngs[0].choice(orchestra.roots))
    keys: list[tuple[int, str]] = []
    for rng in rngs:
        if keys:
            recent = {k for k, _ in keys[-3:]}
            moves = [m for m in orchestra.modulations if (root + m) % 12 not in recent] or list(orchestra.modulations)
            root = (root + int(rng.choice(moves))) % 12
        keys.append((root, str(rng.choice(orchestra.modes))))
    return keys


def plan_textures(energies: list[float], rng: np.random.Generator) -> list[Texture]:
    """A texture per section: the busier the section, the likelier the full band; the texture of
    the section before is kept less often than changed, so the colour moves with the phrases."""
    out: list[Texture] = []
    for energy in energies:
        weights = np.array([0.3 + energy, 0.6, max(0.1, 0.55 - 0.5 * energy)])
        if out:
            weights[TEXTURES.index(out[-1])] *= TEXTURE_KEEP
        out.append(TEXTURES[int(rng.choice(len(TEXTURES), p=weights / weights.sum()))])
    return out


def pick_program(choices: tuple[int, ...], shot: int, previous: int | None, rng: np.random.Generator) -> int:
    options = [p for p in choices if p != previous] or list(choices)
    return int(options[int(rng.integers(len(options)))]) if shot else int(choices[0])


class Composer:
    """Writes the music stem for one style and seed on a given tempo map."""

    def __init__(self, orchestra: Orchestra, tempo: TempoMap, rng: np.random.Generator,
                 swell: Callable[[float], float] = lambda time_s: 0.0) -> None:
        """`swell`: -1..1 per time, the dynamics within a shot (see `pace.motion_swell`)."""
        self.orchestra, self.tempo, self.rng, self.swell = orchestra, tempo, rng, swell
        self.bar, self.beat_in_bar = bar_numbers(tempo, orchestra.meter)
        self.downbeat = self.beat_in_bar == 0   # the first beat of each bar of the metre
        self.motif = make_motif(rng)
        self.last_variation = "state"
        self.notes: list[Note] = []
        self.bar_chords: dict[int, tuple[int, int, int]] = {}   # the harmony, bar by bar, as written
        self.last_bass: int | None = None

    # -- harmony ------------------------------------------------------------------------------
    def progression(self, shot: ShotContext, bars: list[int], final: bool = False) -> dict[int, tuple[int, int, int]]:
        """Chord (pitch classes) per bar of the shot: starts on the tonic and ends on the dominant,
        which the next section's key answers; the film's last section closes instead, the
        dominant then the tonic (a full close: the score ends, it does not stop)."""
        chords: dict[int, tuple[int, int, int]] = {}
        degree = 0
        n = len(shot.scale)
        for k, bar in enumerate(bars):
            if final and len(bars) >= 2 and k >= len(bars) - 2:
                degree = 4 % n if k == len(bars) - 2 else 0
            elif k == len(bars) - 1 and len(bars) > 2:
                degree = 4 % n
            chords[bar] = chord_pcs(shot.root, shot.scale, degree % n)
            degree = int(self.rng.choice(NEXT_DEGREE.get(degree % 7, (0,))))
        return chords

    # -- parts --------------------------------------------------------------------------------
    def write_shot(self, shot: ShotContext, events: list[HitPoint], final: bool = False,
                   opens_shot: bool = False, rng: np.random.Generator | None = None) -> None:
        """Write one section; `final`: the film's last, which closes on the tonic; `opens_shot`:
        the first section after a cut (or of the film), whose tune opens with the theme; `rng`:
        the section's own generator (see `engine`), from here on the composer's."""
        if rng is not None:
            self.rng = rng
        beats = np.flatnonzero((self.tempo.beat_s >= shot.start_s - 1e-9) & (self.tempo.beat_s < shot.end_s - 1e-9))
        if beats.size == 0:
            return
        bars = sorted({int(self.bar[b]) for b in beats})
        chords = self.progression(shot, bars, final)
        self.bar_chords.update(chords)
        self._bass_and_harmony(shot, beats, chords, final)
        theme_end_s = self._melody(shot, beats, chords, events, opens_shot)
        if shot.energy >= CARRY_FROM:
            self._carry_through(shot, beats)
        self._free_a_beat(shot, beats, events, theme_end_s)

    def _free_a_beat(self, shot: ShotContext, beats: np.ndarray, events: list[HitPoint], theme_end_s: float) -> None:
        """Leave a beat free after PULSE_RUN beats in a row that each strike a note. Each part on
        its own keeps off a grid, but together (the bass on the bar line, the tune or a chord on
        the beat between) they can strike beat after beat, and the music ticks like a metronome:
        a silent-film piano's onset curve peaked at its beat (0.25-0.35) where its left hand and
        the tune took turns. The next beat whose notes are alone in it (nothing else before the
        beat after), none of them the bass, a hit point or the theme (it ends at `theme_end_s`),
        has them pushed half a beat later: a chord where `_comp`'s "off" places it, a tune note
        syncopated, as a ragtime player's right hand does over a steady left."""
        hits = [e.time_s for e in events if not e.sustained and shot.start_s <= e.time_s < shot.end_s]
        first = max(0, int(beats[0]) - PULSE_RUN)   # a run goes on across a section's start
        from_s = float(self.tempo.beat_s[first])
        struck = [k for k, n in enumerate(self.notes) if n.role in ("melody", "bass", "harmony")
                  and from_s - 1e-9 <= n.start_s < shot.end_s]
        # The music notes that can ring over one of these beats, found once, not for every beat
        # (by index: a note pushed below is read as it is now).
        sounding = [k for k, n in enumerate(self.notes)
                    if n.part.stem == "music" and n.end_s > from_s and n.start_s < shot.end_s]
        run = 0
        for beat in range(first, int(beats[-1]) + 1):
            at, next_at = (float(t) for t in self.tempo.beat_s[[beat, min(beat + 1, self.tempo.beat_s.size - 1)]])
            on = [k for k in struck if at - 1e-6 <= self.notes[k].start_s < at + ON_BEAT_S]
            later = self.tempo.time_of(beat + 0.5) - at
            movable = (run >= PULSE_RUN and on and beat >= beats[0] and not self.tempo.bar_start[beat]
                       and all(self._may_push(self.notes[k], theme_end_s) for k in on)
                       and not any(at + ON_BEAT_S <= self.notes[k].start_s < next_at for k in struck)
                       and not any(abs(t - at) < SNAP_S for t in hits)
                       # and a note struck before rings on over the half beat: no dead air opens
                       and any(n.start_s < at - 1e-6 and heard_until(n) >= at + later
                               for n in (self.notes[k] for k in sounding) if n.end_s > at))
            if not movable:
                run = run + 1 if on else 0
                continue
            for k in on:
                n = self.notes[k]
                self.notes[k] = Note(n.part, n.pitch, n.start_s + later, max(n.end_s, n.start_s + later + 0.05),
                                     n.velocity, n.role, n.glide)
            run = 0

    @staticmethod
    def _may_push(note: Note, theme_end_s: float) -> bool:
        """Whether `_free_a_beat` may move `note`: a chord of the accompaniment, or a tune note after the theme."""
        return note.role == "harmony" or (note.role == "melody" and note.start_s >= theme_end_s - 1e-9)

    def _carry_through(self, shot: ShotContext, beats: np.ndarray) -> None:
        """Fill every stretch of the section where no note sounds (the tune resting or cleared
        before a hit, the bar's pad sitting out, a plucked bass died away) with the pad on the
        bar's chord, from the half beat where the stretch begins up to the next note or the cut:
        a cartoon score never drops out while something moves on screen, and chance rests lined
        up at a section's end would otherwise leave a second of dead air before the cut. A pad
        that dies away itself (a piano) is struck again once a bar, where an accompanist would
        place it (see `_comp`), and left ringing where the chord does not change; a sustained one
        is held from bar line to bar line."""
        covered = sorted((n.start_s, heard_until(n))
                         for n in self.notes if n.end_s > shot.start_s and n.start_s < shot.end_s)
        gaps, reach = [], shot.start_s
        for start, end in covered:
            if start - reach > CARRY_GAP_S:
                gaps.append((reach, start))
            reach = max(reach, end)
        if shot.end_s - reach > CARRY_GAP_S:
            gaps.append((reach, shot.end_s))
        velocity = int(32 + 16 * shot.energy)
        decaying = shot.harmony.program in DECAYING
        bar_lines = beats[self.downbeat[beats]]
        struck = bar_times = [float(t) for t in self.tempo.beat_s[bar_lines]]
        if decaying:   # placed in the bar as an accompanist would (see `_comp`)
            lengths = np.diff([*bar_lines.tolist(), int(beats[-1]) + 1])
            struck = [self._comp_place(line, length)[0] for line, length in zip(bar_lines.tolist(), lengths.tolist())]
        for gap_start, gap_end in gaps:
            # in time with the tune: on the first half beat of the silence
            entry = self.tempo.time_of(np.ceil(2.0 * self.tempo.beat_at(max(gap_start - 0.05, 0.0))) / 2.0)
            if decaying and self._strike_sooner(shot.harmony, entry, gap_end):
                continue
            # then the chord of every bar that opens after the entry (the entry is its own bar's)
            lines = [entry, *(t for t, bar_s in zip(struck, bar_times) if entry + 0.05 < bar_s and t < gap_end - 0.05)]
            if decaying:   # a chord the line before already struck is left ringing
                lines = [t for k, t in enumerate(lines)
                         if k == 0 or self.chord_at(t) != self.chord_at(lines[k - 1]) or self.rng.random() >= COMP_TIE]
            held: dict[int, list[float]] = {}      # pitch -> [start, end] of the pad note holding it
            pad: list[tuple[int, list[float]]] = []
            for a, b in zip(lines, lines[1:] + [gap_end]):
                if decaying:   # released at the bar line: a chord placed late in the next bar is not held into it
                    b = min([b, *(t for t in bar_times if a + 0.05 < t)])
                chord = self.chord_at(a)
                if chord is None:
                    continue
                sounding = {}
                for pc in (chord[k] for k in pad_tones(shot.harmony.program)):
                    pitch = next(m for m in range(*shot.texture.harmony_range) if m % 12 == pc)
                    # a tone the next chord shares is held over the bar line, not struck again
                    span = held.get(pitch) if shot.harmony.program not in DECAYING else None
                    if span is not None and abs(span[1] - a) < 1e-9:
                        span[1] = b
                    else:
                        span = [a, b]
                        pad.append((pitch, span))
                    sounding[pitch] = span
                held = sounding
            for pitch, (a, b) in pad:
                self._strike(shot.harmony, pitch, a, b, velocity)

    def _strike_sooner(self, part: Part, entry_s: float, gap_end_s: float) -> bool:
        """Where a silence ends at a chord `part` strikes later in the same bar, strike that chord
        at `entry_s`, where the silence begins, and let it ring on: the bar's chord struck twice,
        a beat apart, only ticks. False (nothing moved) where the silence ends in another bar or
        at no such chord."""
        later = [k for k, n in enumerate(self.notes)
                 if n.part == part and n.role == "harmony" and gap_end_s - 1e-6 <= n.start_s < gap_end_s + 0.1]
        if not later or self._bar_at(entry_s) != self._bar_at(gap_end_s):
            return False
        sooner = entry_s - gap_end_s
        for k in later:
            n = self.notes[k]
            self.notes[k] = Note(n.part, n.pitch, n.start_s + sooner, n.end_s, n.velocity, n.role, n.glide)
        return True

    def _bar_at(self, time_s: float) -> int:
        return int(self.bar[int(np.clip(np.floor(self.tempo.beat_at(time_s) + 1e-6), 0, self.bar.size - 1))])

    def _comp_place(self, first_beat: int, bar_beats: int) -> tuple[float, str]:
        """(time, pattern) of a struck chord in the bar that opens on `first_beat` and lasts
        `bar_beats` beats: one of COMP_PATTERNS, never later than half a beat before the bar ends."""
        pattern = str(self.rng.choice(COMP_PATTERNS, p=COMP_WEIGHTS))
        return self.tempo.time_of(first_beat + min(COMP_AT[pattern], bar_beats - 0.5)), pattern

    def _strike(self, part: Part, pitch: int, start_s: float, end_s: float, velocity: int) -> None:
        """Add a pad note that never overlaps a note of the same key on its instrument (a key
        is one string or pipe; two notes on it at once are one played twice): a note already
        held there is released where this one speaks (unless it only just began, and then it
        already sounds), and this one ends where the next such note begins."""
        kept = []
        for n in self.notes:
            if n.part.program == part.program and n.pitch == pitch and not n.part.drums:
                if n.start_s < start_s < n.end_s:
                    if start_s - n.start_s < 0.02:
                        return   # struck already
                    n = Note(n.part, n.pitch, n.start_s, start_s, n.velocity, n.role, n.glide)
                elif start_s <= n.start_s < end_s:
                    end_s = n.start_s
            kept.append(n)
        self.notes = kept
        self._add(part, pitch, start_s, end_s, velocity, "harmony")

    def _bar_beats(self, beats: np.ndarray) -> list[np.ndarray]:
        return [beats[self.bar[beats] == b] for b in sorted(set(self.bar[beats].tolist()))]

    def _bass_and_harmony(self, shot: ShotContext, beats: np.ndarray, chords: dict, final: bool = False) -> None:
        texture = shot.texture
        bars = self._bar_beats(beats)
        for k, bar_beats in enumerate(bars):
            start = float(self.tempo.beat_s[bar_beats[0]])
            end = min(float(self.tempo.beat_s[min(bar_beats[-1] + 1, self.tempo.beat_s.size - 1)]), shot.end_s)
            if end - start < 0.05:
                continue
            chord = chords[int(self.bar[bar_beats[0]])]
            velocity = int(58 + 30 * shot.energy)
            busy = shot.energy > 0.35 and bar_beats.size >= 3
            # drawn for every bar, played or not, so a section's texture leaves the rest of the score as it is
            with_fifth = busy and self.rng.random() < 0.6
            closing = final and k == len(bars) - 1   # the film's last chord stands on its root, whatever the texture
            with_fifth = with_fifth and not closing
            # An open section's one bass note opens it, but where the section is one bar that note
            # would be the bar's bass, as in the light scoring: there the bass rests, so the open
            # colour is heard (at a calm tempo a section of about SECTION_S is often one bar).
            if texture.bass_every_bar or (k == 0 and len(bars) > 1) or closing:
                root = self._bass_note(chord[0], texture.bass_range)
                self._add(shot.bass, root, start, start + (0.5 if busy else 0.9) * (end - start), velocity, "bass")
                if with_fifth:
                    at = float(self.tempo.beat_s[bar_beats[bar_beats.size // 2]])
                    fifth = min((m for m in range(*texture.bass_range) if m % 12 == chord[2]),
                                key=lambda m: (abs(m - root), m))
                    self._add(shot.bass, fifth, at, at + 0.45 * (end - at), velocity - 8, "bass")
            if self.rng.random() < HARMONY_REST:
                continue   # a bar without the pad: the tune and bass alone
            voicing = [next(m for m in range(*texture.harmony_range) if m % 12 == chord[k])
                       for k in pad_tones(shot.harmony.program)]
            if shot.harmony.program in DECAYING:
                self._comp(shot, bar_beats, voicing, end, chord == chords.get(int(self.bar[bar_beats[0]]) - 1))
                continue
            for pitch in voicing:
                self._add(shot.harmony, pitch, start, end,
                          int(HARMONY_VELOCITY + HARMONY_ENERGY_VELOCITY * shot.energy), "harmony")

    def _comp(self, shot: ShotContext, bar_beats: np.ndarray, voicing: list[int], end_s: float,
              same_chord: bool) -> None:
        """The chord of one bar on an instrument whose sound dies away (a piano, a harp), played as
        an accompanist plays it rather than struck on every downbeat with the bass, which ticks
        like a metronome: on the downbeat, on the afterbeat, pushed off the beat, rolled from the
        bottom up, or, when the bar before had the same chord, left ringing."""
        bar_s = float(self.tempo.beat_s[int(bar_beats[0])])
        if same_chord and self.rng.random() < COMP_TIE and self._ring_on(shot.harmony, bar_s, end_s):
            return
        start, pattern = self._comp_place(int(bar_beats[0]), bar_beats.size)
        if end_s - start < 0.1:
            start = bar_s
        spread = COMP_ROLL_S if pattern == "rolled" else 0.0
        velocity = int(32 + 16 * shot.energy)
        for k, pitch in enumerate(sorted(voicing)):   # a roll goes from the bottom up
            self._strike(shot.harmony, pitch, start + k * spread, end_s, velocity)

    def _ring_on(self, part: Part, bar_s: float, end_s: float) -> bool:
        """Hold the chord that ends at the bar line `bar_s` on `part` on to `end_s`: the key held
        down through a bar that keeps its chord. False when no chord ends there (the bar before
        rested), and nothing is held."""
        held = [k for k, n in enumerate(self.notes)
                if n.part == part and n.role == "harmony" and abs(n.end_s - bar_s) < 1e-6]
        for k in held:
            n = self.notes[k]
            self.notes[k] = Note(n.part, n.pitch, n.start_s, end_s, n.velocity, n.role, n.glide)
        return bool(held)

    def _bass_note(self, pitch_class: int, bass_range: tuple[int, int]) -> int:
        """The chord root in the bass's range nearest a point between the bass note before and the
        lower part of the range (BASS_HOME): the line moves by step and small leap rather than
        dropping to the bottom octave every bar, and still comes back down to where its weight is."""
        low, high = bass_range
        home = low + BASS_HOME * (high - low)
        wanted = home if self.last_bass is None else 0.5 * (self.last_bass + home)
        options = [m for m in range(low, high) if m % 12 == pitch_class]
        self.last_bass = min(options, key=lambda m: (abs(m - wanted), m))
        return self.last_bass

    def _melody(self, shot: ShotContext, beats: np.ndarray, chords: dict, events: list[HitPoint],
                opens_shot: bool = False) -> float:
        """Write the section's tune; returns when its opening theme ends (its start if it has none)."""
        low, high = self.orchestra.notes_per_beat
        density = low + (high - low) * shot.energy
        tones = self._tune_tones(shot)
        first, last = float(beats[0]), float(beats[-1] + 1)
        position = first
        index = len(tones) // 2
        theme = opens_shot   # a new shot opens with the theme, whole, in its new key: the tune one recognises
        theme_end_s = shot.start_s
        while position < last - 0.5:
            closing = False
            if theme:
                motif, closing = theme_in(self.motif, TUNE_SLACK * density, last - position)
            else:
                motif = unsquared(simplified(self._next_motif(density), TUNE_SLACK * density), self.rng)
            chord = chords[int(self.bar[int(min(position, beats[-1]))])]
            index = self._chord_index(tones, chord, index, on_bar_line=self._on_bar_line(position))
            position = self._phrase(shot, motif, position, last, tones, index, rest=0.0 if theme else PHRASE_REST,
                                    closing=closing)
            if theme:
                theme, self.last_variation = False, "state"
                theme_end_s = self.tempo.time_of(position)
            position += float(self.rng.choice((0.5, 1.0, 1.0, 1.5, 2.0)))   # breathe between phrases
            index = int(np.clip(index + self.rng.integers(-3, 4), 2, len(tones) - 3))
        self._fit_to_events(events, shot)
        return theme_end_s

    def _next_motif(self, density: float) -> Motif:
        # calm tunes come back stretched, busy ones quickened
        weights = np.array([3, 2, 2, 1.5, 2.0 if density < CALM_DENSITY else 0.3, 1.5 if density > BUSY_DENSITY else 0.2,
                            1.5, 2.0])
        weights[VARIATIONS.index(self.last_variation)] *= 0.2
        how = str(self.rng.choice(VARIATIONS, p=weights / weights.sum()))
        self.last_variation = how
        return vary(self.motif, how, self.rng)

    def _phrase(self, shot: ShotContext, motif: Motif, position: float, last: float, tones: list[int],
                index: int, rest: float, closing: bool = False) -> float:
        """Play one statement of `motif` from beat `position`; each note is a rest with chance `rest`.
        `closing`: its last note closes the phrase, held on a tone of the chord under it up to the
        next bar line at most (the harmony may change there)."""
        for k, length in enumerate(motif.rhythm):
            if position + length > last + 1e-9:
                break
            start_s, end_s = self.tempo.time_of(position), self.tempo.time_of(position + length)
            index = self._on_the_chord(position, tones, index)
            pitch = tones[index]
            if closing and k == len(motif.rhythm) - 1:
                pitch = self._chord_tone_near(pitch, start_s, shot)
                end_s = self.tempo.time_of(min(position + length, self._next_bar_line(position)))
            if self.rng.random() >= rest:   # sparser tunes in calm shots
                # a tune note on a hit point (where the tempo map restarts the bar) is accented
                accent = 14 if abs(position - round(position)) < 1e-6 and self.tempo.bar_start[int(round(position))] else 0
                accent += self._metric_accent(position)
                velocity = int(np.clip(62 + 34 * shot.energy + accent + self.rng.integers(-6, 7), 30, 120))
                self._add(shot.melody, pitch, start_s, start_s + 0.92 * (end_s - start_s), velocity, "melody")
            if k < len(motif.steps):
                index = int(np.clip(index + motif.steps[k], 0, len(tones) - 1))
            position += length
        return position

    def _metric_accent(self, position: float) -> int:
        """The velocity steps a tune note at beat `position` gains (a downbeat of the metre) or loses
        (another beat, or between beats): see ACCENT_DOWN."""
        beat = int(np.floor(position + 1e-6))
        if abs(position - beat) > 1e-6:
            return -ACCENT_OFF
        if beat < self.downbeat.size and self.downbeat[beat]:
            return ACCENT_DOWN
        return -ACCENT_WEAK

    def _next_bar_line(self, position: float) -> float:
        """The beat of the first downbeat after beat `position` (the timeline's last beat if none)."""
        after = int(np.floor(position)) + 1
        later = np.flatnonzero(self.downbeat[after:])
        return float(after + later[0]) if later.size else float(self.downbeat.size - 1)

    def _on_the_chord(self, position: float, tones: list[int], index: int) -> int:
        """The tune's note (an index into `tones`) for beat `position`: on a strong beat (the
        bar's first, or the middle of a bar of four) the nearest tone of the bar's chord, so the
        tune and the harmony agree where the ear weighs them; passing notes fall between. On the
        bar line, where the bass strikes the chord's root, the tune takes the third or the fifth
        unless it is on the root already: a tune drawn to the root doubles the bass in octaves
        bar after bar, and the two outer voices then move as one."""
        beat = int(round(position))
        if abs(position - beat) > 1e-6 or beat >= self.bar.size:
            return index
        if self.beat_in_bar[beat] not in (0, self.orchestra.meter // 2 if self.orchestra.meter >= 4 else 0):
            return index
        chord = self.bar_chords.get(int(self.bar[beat]))
        return self._chord_index(tones, chord, index, self._on_bar_line(position)) if chord else index

    def _on_bar_line(self, position: float) -> bool:
        """Whether beat `position` is the first beat of a bar of the metre, where the bass strikes."""
        beat = int(round(position))
        return abs(position - beat) < 1e-6 and beat < self.downbeat.size and bool(self.downbeat[beat])

    @staticmethod
    def _chord_index(tones: list[int], chord: tuple[int, int, int], index: int, on_bar_line: bool) -> int:
        """The tone of `chord` nearest tones[index] (an index into `tones`); on a bar line, where
        the bass strikes the root, the root only when the tune is on it already (ROOT_AWAY)."""
        root = chord[0] if on_bar_line else None
        near = [j for j, m in enumerate(tones) if m % 12 in chord]
        return min(near, key=lambda j: (abs(j - index) + (ROOT_AWAY if tones[j] % 12 == root else 0.0), j)) \
            if near else index

    @staticmethod
    def _tune_tones(shot: ShotContext) -> list[int]:
        """The scale's tones in the tune's range for its instrument, less any the bank leaves silent."""
        silent = SILENT_KEYS.get(shot.melody.program, frozenset())
        tones = scale_pitches(shot.root, shot.scale, *melody_range(shot.melody.program))
        return [m for m in tones if m not in silent]

    def _chord_tone_near(self, pitch: int, time_s: float, shot: ShotContext) -> int:
        """The tone of the chord sounding at `time_s` nearest `pitch` in the tune's range (the
        pitch itself when it is one, or when no chord is written there)."""
        chord = self.chord_at(time_s)
        if chord is None or pitch % 12 in chord:
            return pitch
        tones = [m for m in self._tune_tones(shot) if m % 12 in chord]
        return min(tones, key=lambda m: (abs(m - pitch), m)) if tones else pitch

    def _fit_to_events(self, events: list[HitPoint], shot: ShotContext) -> None:
        """Mickey-mousing: a tune note close to an event moves onto it; notes just before an
        event it cannot reach are dropped, so the hit speaks on its own."""
        hits = [e.time_s for e in events if shot.start_s <= e.time_s < shot.end_s and not e.sustained]
        if not hits:
            return
        flurries = series_spans(events)
        kept: list[Note] = []
        for note in self.notes:
            if note.role != "melody" or not shot.start_s <= note.start_s < shot.end_s:
                kept.append(note)
                continue
            if any(a - CLEAR_BEFORE_HIT_S < note.start_s < b + SNAP_S for a, b in flurries):
                continue   # a flurry of blows belongs to the effects
            # and a note held into one is let go before its first blow: a loud held tune note
            # (an accented piccolo) hid that blow from the onset detector
            into = [a - CLEAR_BEFORE_HIT_S for a, b in flurries if note.start_s < a - CLEAR_BEFORE_HIT_S < note.end_s]
            if into and min(into) - note.start_s < 0.05:
                continue
            if into:
                note = Note(note.part, note.pitch, note.start_s, min(into), note.velocity, note.role)
            nearest = min(hits, key=lambda t: abs(t - note.start_s))
            gap = note.start_s - nearest
            if abs(gap) <= SNAP_S and nearest < note.end_s - 0.03:
                # moved onto the hit, which opens a bar: a tone of that bar's chord
                pitch = self._chord_tone_near(note.pitch, nearest, shot)
                kept.append(Note(note.part, pitch, nearest, note.end_s, note.velocity, note.role))
            elif -CLEAR_BEFORE_HIT_S < gap < 0:
                continue
            else:
                kept.append(note)
        self.notes = kept

    def runs(self, points: list[HitPoint], tones_for, program: int, whistled: frozenset[float],
             rng: np.random.Generator | None = None) -> None:
        """Scale runs over scurrying and whooshes: up or down, as long as the motion lasts. A whoosh
        starting at a time in `whistled` has the slide whistle of the effects, and a run under the
        whistle's glide would only blur it, so it gets none. `rng`: the runs' own generator (else
        the composer's)."""
        rng = rng if rng is not None else self.rng
        part = Part(program)
        upward = True
        for point in points:
            if point.kind not in ("run", "whoosh") or point.end_s - point.time_s < 0.15 or point.strength < RUN_FROM:
                continue
            if point.kind == "whoosh" and point.time_s in whistled:
                continue
            length = min(point.end_s - point.time_s, 1.0)
            tones = tones_for(point.time_s)
            count = int(np.clip(round(length * RUN_NOTES_PER_S), 3, min(10, len(tones))))
            start = int(rng.integers(0, max(1, len(tones) - count)))
            run = tones[start:start + count] if upward else tones[start:start + count][::-1]
            # A run is played, not clocked: it rushes up into its top note and falls away from
            # its first, so no two gaps are the same and no click grid forms under it.
            shape = RUN_RUSH if upward else RUN_FALL
            times = [point.time_s + length * (k / count) ** shape for k in range(count + 1)]
            for pitch, at, until in zip(run, times, times[1:]):
                self._add(part, pitch, at, at + 0.9 * (until - at), int(60 + 40 * point.strength), "run")
            upward = not upward

    def chord_at(self, time_s: float) -> tuple[int, int, int] | None:
        """The chord of the bar sounding at time_s (None before the first bar written)."""
        beat = int(np.clip(np.searchsorted(self.tempo.beat_s, time_s + 1e-9) - 1, 0, self.bar.size - 1))
        return self.bar_chords.get(int(self.bar[beat]))

    def tremolo(self, points: list[HitPoint], chord_for, program: int) -> None:
        """Tremolo strings held under shakes, and under every flurry of blows (the agitated bed
        the blows land on, so a flurry reads as one gesture rather than a click track). The bed
        moves with the harmony: a new chord at every bar line inside it, each voice moving to the
        nearest tone of the next chord, as a string section would."""
        part = Part(program)
        spans = [(p.time_s, max(p.end_s, p.time_s + 0.8), p.strength) for p in points if p.kind == "shake"]
        spans += [(a - 0.25, b + 0.4, FLURRY_BED) for a, b in series_spans(points)]
        downbeats = self.tempo.beat_s[self.downbeat]
        for start, end, strength in spans:
            start = max(start, 0.0)
            edges = [start, *(float(t) for t in downbeats if start + 0.3 < t < end - 0.3), end]
            voicing: list[int] = []
            for a, b in zip(edges, edges[1:]):
                chord = self.chord_at(a) or chord_for(a)
                voicing = self._lead_voices(voicing, chord)
                for pitch in voicing:
                    self._add(part, pitch, a, b, int(40 + 50 * strength), "tremolo")

    @staticmethod
    def _lead_voices(previous: list[int], chord: tuple[int, int, int]) -> list[int]:
        """The chord in HARMONY_RANGE, each voice as close as it can get to the one before."""
        if not previous:
            return [next(m for m in range(*HARMONY_RANGE) if m % 12 == pc) for pc in chord]
        options = [m for m in range(*HARMONY_RANGE) if m % 12 in set(chord)]
        voices: list[int] = []
        for old in previous:
            free = [m for m in options if m not in voices] or options
            voices.append(min(free, key=lambda m: (abs(m - old), m)))
        return voices

    def _add(self, part: Part, pitch: int, start_s: float, end_s: float, velocity: int, role: str) -> None:
        if role in SWELLING_ROLES:
            velocity += int(round(SWELL_VELOCITY * self.swell(start_s)))
        if end_s - start_s >= 0.02:
            self.notes.append(Note(part, int(pitch), float(start_s), float(end_s), int(np.clip(velocity, 1, 127)), role))


def describe_shot(shot: ShotContext, tempo: TempoMap) -> ShotMusic:
    first_beat = int(np.searchsorted(tempo.beat_s, shot.start_s - 1e-9))
    return ShotMusic(shot.start_s, shot.root, next((k for k, v in MODES.items() if v == shot.scale), "major"),
                     round(tempo.bpm_at(first_beat), 2), shot.melody.program)
