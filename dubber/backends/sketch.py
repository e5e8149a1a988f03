"""The sketch backend: a procedural cartoon temp track rendered with numpy on any CPU.

It writes a music bed in one key whose tempo and note density follow the picture's motion
curve (calm: sustained pads and sparse plucks; busy: bouncy bass and xylophone; frantic: fast
staccato runs), answers movement with runs (mickey-mousing), and puts effects on the exact
sample of each visual event: a bonk on impacts, a whoosh over fast motion, a zing on flashes,
and an orchestral stinger on every cut. The nature style is gentler: marimba, soft pads and
birdsong over a bed of wind that picks up with the motion, with a soft piano chord on cuts.
Bars restart on each cut, so every shot starts on a downbeat. The whole timeline is rendered once and sliced per cue, so phrases flow across cues.
Output is deterministic for a plan seed.
"""
from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy.ndimage import gaussian_filter1d

from vision.types import MediaInfo, VideoAnalysis

from ..styles import DEFAULT_STYLE
from ..types import CueAudio, DubPlan, ProgressFn, RenderResult, no_progress
from .base import DubBackend
from .sketch_fx import add_reverb, bonk, pan_gains, room_impulse, stinger, whoosh, wind, zing
from .sketch_instruments import VOICES, midi_to_hz

log = logging.getLogger(__name__)

KEY_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
CALM_BELOW = 0.25       # smoothed motion under this is calm
FRANTIC_FROM = 0.6      # smoothed motion from this up is frantic; between the two is busy
TEMPO_SMOOTH_S = 1.5    # s, Gaussian sigma of the motion curve that drives tempo
DENSITY_SMOOTH_S = 0.2  # s, sigma of the curve that drives note density (answers movement quickly)
CONTROL_HOP_S = 0.01    # s, resolution of the tempo integration
STEPS_PER_BEAT = 4      # the grid is in sixteenth notes
STEPS_PER_BAR = 16
MUSIC_RMS = 0.1         # linear RMS the music bed is set to before the fx are added (-20 dBFS)
FX_GAIN = 0.5           # fx level relative to a full-scale effect sample
AMBIENCE_RMS = 0.08     # linear RMS of an ambience bed at full strength, before FX_GAIN (under the music)
PEAK_CEILING = 0.9      # the rendered stems sum to at most this peak
SUSTAINED_VOICES = frozenset({"string_pad", "soft_pad", "fm_pad", "theremin"})
SUSTAIN_S = 4.5         # s, longest sustained note; longer ones are cut (a bar is shorter)
SUSTAIN_RELEASE_S = 0.45


@dataclass(frozen=True)
class StyleSpec:
    """How one style sounds: scale, harmony, tempo and which voice plays each part."""

    scale: tuple[int, ...]                      # semitones above the key root
    progression: tuple[tuple[int, ...], ...]    # one chord per bar, semitones above the key root
    base_bpm: float
    tempo_gain: float                           # tempo at full motion = base_bpm * (1 + tempo_gain)
    pad: str | None
    bass: str
    calm_figure: str
    busy_figure: str
    run_voice: str
    extra: str | None                           # "theremin", "birds" or None
    stride: bool                                # ragtime left hand (oom-pah) instead of a bass line
    stinger_voice: str
    laser_flash: bool
    impact_hz: float
    roots: tuple[int, ...]                      # allowed key roots (pitch classes)
    ambience: str | None = None                 # "wind" lays an outdoor bed into the fx stem
    stinger_gain: float = 0.8                   # level of the hit on each cut


MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)
PENTATONIC = (0, 2, 4, 7, 9)

SKETCH_STYLES: dict[str, StyleSpec] = {
    "tom-and-jerry": StyleSpec(
        MAJOR, ((0, 4, 7), (9, 12, 16), (2, 5, 9), (7, 11, 14, 17)), 104.0, 0.75, "string_pad",
        "pluck_bass", "pizzicato", "xylophone", "xylophone", None, False, "brass", False, 170.0,
        (0, 2, 5, 7, 10)),
    "silent-film": StyleSpec(
        MAJOR, ((0, 4, 7), (9, 13, 16, 19), (2, 6, 9, 12), (7, 11, 14, 17)), 96.0, 0.6, None,
        "piano", "piano", "piano", "piano", None, True, "piano", False, 150.0, (0, 5, 7, 10, 3)),
    "sci-fi": StyleSpec(
        MINOR, ((0, 3, 7), (8, 12, 15), (5, 8, 12), (7, 11, 14)), 88.0, 0.7, "fm_pad",
        "pluck_bass", "fm_bell", "fm_bell", "fm_bell", "theremin", False, "brass", True, 120.0,
        (1, 4, 6, 9, 11)),
    "nature": StyleSpec(
        PENTATONIC, ((0, 4, 7), (5, 9, 12), (9, 12, 16), (5, 9, 12)), 76.0, 0.5, "soft_pad",
        "pluck_bass", "marimba", "marimba", "marimba", "birds", False, "piano", False, 260.0,
        (0, 2, 4, 7, 9), ambience="wind", stinger_gain=0.35),
    "noir": StyleSpec(
        (0, 2, 3, 5, 6, 7, 10), ((0, 3, 7, 10), (5, 8, 12, 15), (0, 3, 7, 10), (7, 11, 14, 17)), 80.0, 0.55,
        "soft_pad", "pluck_bass", "piano", "brass", "piano", None, False, "brass", False, 140.0,
        (2, 4, 7, 9)),
}

BASS_RANGE = (36, 52)
PAD_RANGE = (55, 72)
FIGURE_RANGE = (69, 91)
CALM_FIGURE_RANGE = (60, 80)


class Note(NamedTuple):
    start_sample: int
    voice: str
    midi: int
    dur_s: float
    velocity: float
    pan: float


class Grid(NamedTuple):
    """The sixteenth-note grid of the whole timeline, one entry per step."""

    sample: np.ndarray       # int, where the step starts
    step_in_bar: np.ndarray  # int, 0..15
    bar: np.ndarray          # int, bar number over the whole video (bars restart on cuts)
    step_s: np.ndarray       # float, length of one sixteenth at this tempo
    density: np.ndarray      # float, fast-smoothed motion (note density)
    energy: np.ndarray       # float, slow-smoothed motion (tempo and texture)


@dataclass(frozen=True)
class SketchOptions:
    """Levels of the sketch render; the mix sets the final loudness."""

    music_gain_db: float = 0.0
    fx_gain_db: float = 0.0
    reverb: bool = True


def style_spec(name: str) -> StyleSpec:
    """The style for `name`; an unknown style falls back to the default with a warning."""
    if name in SKETCH_STYLES:
        return SKETCH_STYLES[name]
    log.warning("sketch renderer has no style %r; using %r (choices: %s)", name, DEFAULT_STYLE,
                ", ".join(SKETCH_STYLES))
    return SKETCH_STYLES[DEFAULT_STYLE]


def _rng(seed: int, *salt: object) -> np.random.Generator:
    words = [zlib.crc32(str(s).encode()) for s in salt]
    return np.random.default_rng(np.random.SeedSequence([seed & 0xFFFFFFFF, *words]))


# ---------------------------------------------------------------------------- motion and time
class Motion(NamedTuple):
    frame_sample: np.ndarray  # float, start sample of each frame (for control curves, not placement)
    slow: np.ndarray          # per frame, drives tempo and texture
    fast: np.ndarray          # per frame, drives note density


def frame_start_samples(media: MediaInfo, sr: int) -> np.ndarray:
    """Start of every frame in samples, as floats: the frame grid for CFR video, each frame's
    own time for VFR (where frame k is not at k / fps)."""
    count = max(media.frame_count, 1)
    if media.frame_pts is not None and len(media.frame_pts) >= count:
        return np.asarray(media.frame_pts[:count], dtype=np.float64) * float(media.time_base * sr)
    return np.arange(count) * (sr / float(media.fps))


def motion_curves(analysis: VideoAnalysis, sr: int) -> Motion:
    media = analysis.media
    count = max(media.frame_count, 1)
    raw = np.zeros(count)
    given = np.clip(np.asarray(analysis.motion, dtype=np.float64), 0.0, 1.0)[:count]
    raw[:given.size] = given
    fps = float(media.fps)   # smoothing widths are in frames at the average rate
    frame_sample = frame_start_samples(media, sr)
    slow = gaussian_filter1d(raw, TEMPO_SMOOTH_S * fps, mode="nearest")
    # The density curve follows the peak of nearby motion so a short burst still reads as busy.
    fast = gaussian_filter1d(raw, DENSITY_SMOOTH_S * fps, mode="nearest")
    fast = np.maximum(fast, 0.8 * raw)
    return Motion(frame_sample, slow, fast)


def cut_samples(analysis: VideoAnalysis, sr: int, total_samples: int) -> list[int]:
    cuts = {analysis.media.frame_to_sample(s.start_frame, sr) for s in analysis.shots if s.start_frame > 0}
    return sorted(c for c in cuts if 0 < c < total_samples)


def _segment_grid(start: int, end: int, style: StyleSpec, motion: Motion, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Grid step starts (samples) and step lengths (s) for one shot, its first step on `start`.

    Tempo follows the slow motion curve; beat phase is its running integral, and each sixteenth
    falls where the phase crosses a multiple of 1/4 beat.
    """
    hop = max(1, int(CONTROL_HOP_S * sr))
    pos = np.arange(start, end + hop, hop, dtype=np.float64)
    bpm = style.base_bpm * (1.0 + style.tempo_gain * np.interp(pos, motion.frame_sample, motion.slow))
    beats_per_hop = bpm / 60.0 * hop / sr
    phase = np.concatenate([[0.0], np.cumsum(beats_per_hop[:-1])])
    steps = np.arange(0.0, phase[-1], 1.0 / STEPS_PER_BEAT)
    at = np.interp(steps, phase, pos)
    keep = at < end
    step_s = 60.0 / np.interp(at[keep], pos, bpm) / STEPS_PER_BEAT
    return np.round(at[keep]).astype(np.int64), step_s


def build_grid(style: StyleSpec, motion: Motion, cuts: list[int], total_samples: int, sr: int) -> Grid:
    """Sixteenth-note grid over the timeline; every shot restarts on the first beat of a bar."""
    edges = [0, *cuts, total_samples]
    parts: list[tuple[np.ndarray, ...]] = []
    bar0 = 0
    for start, end in zip(edges[:-1], edges[1:]):
        samples, step_s = _segment_grid(start, end, style, motion, sr)
        k = np.arange(samples.size)
        parts.append((samples, k % STEPS_PER_BAR, bar0 + k // STEPS_PER_BAR, step_s))
        bar0 += -(-samples.size // STEPS_PER_BAR)
    sample, step_in_bar, bar, step_s = (np.concatenate(cols) for cols in zip(*parts))
    fast = np.interp(sample, motion.frame_sample, motion.fast)
    energy = np.interp(sample, motion.frame_sample, motion.slow)
    return Grid(sample, step_in_bar, bar, step_s, fast, energy)


# ---------------------------------------------------------------------------- composition
class Composer:
    """Writes the notes of the music bed, one part at a time, for one style, key and seed."""

    def __init__(self, style: StyleSpec, root: int, rng: np.random.Generator, sr: int) -> None:
        self.style, self.root, self.rng, self.sr = style, root, rng, sr
        self.scale_tones = self._tones(style.scale, FIGURE_RANGE)
        self.walk = len(self.scale_tones) // 2
        self.direction = 1

    def _tones(self, offsets, midi_range: tuple[int, int]) -> list[int]:
        lo, hi = midi_range
        pcs = {(self.root + o) % 12 for o in offsets}
        return [m for m in range(lo, hi) if m % 12 in pcs]

    def chord(self, bar: int) -> tuple[int, ...]:
        return self.style.progression[bar % len(self.style.progression)]

    def chord_tones(self, bar: int, midi_range: tuple[int, int]) -> list[int]:
        return self._tones(self.chord(bar), midi_range)

    def chord_root(self, bar: int, midi_range: tuple[int, int]) -> int:
        pc = (self.root + self.chord(bar)[0]) % 12
        return next(m for m in range(*midi_range) if m % 12 == pc)

    # -- parts ------------------------------------------------------------------------------
    def pad(self, grid: Grid, i: int) -> list[Note]:
        if self.style.pad is None or grid.step_in_bar[i] != 0:
            return []
        tones = self.chord_tones(int(grid.bar[i]), PAD_RANGE)[:4]
        dur_s = float(grid.step_s[i]) * STEPS_PER_BAR
        velocity = 0.3 * (1.0 - 0.5 * grid.energy[i])
        pans = np.linspace(-0.5, 0.5, len(tones))
        return [Note(int(grid.sample[i]), self.style.pad, m, dur_s, velocity, float(p)) for m, p in zip(tones, pans)]

    def bass(self, grid: Grid, i: int) -> list[Note]:
        step, bar, beat_s = int(grid.step_in_bar[i]), int(grid.bar[i]), float(grid.step_s[i]) * STEPS_PER_BEAT
        root = self.chord_root(bar, BASS_RANGE)
        fifth = root + 7
        level = _level(grid.energy[i])
        start = int(grid.sample[i])
        if self.style.stride:
            return self._stride(grid, i, root, fifth)
        if level == 0:
            pattern = {0: (root, 2.0, 0.55), 8: (fifth, 2.0, 0.4)}
        elif level == 1:
            pattern = {0: (root, 0.55, 0.6), 4: (fifth, 0.55, 0.5), 8: (root + 12, 0.55, 0.55), 12: (fifth, 0.55, 0.5)}
        else:
            walk = (root, root + 12, fifth, root + 12)
            pattern = {s: (walk[(s // 2) % 4], 0.4, 0.6 if s % 4 == 0 else 0.45) for s in range(0, 16, 2)}
        if step not in pattern:
            return []
        midi, beats, velocity = pattern[step]
        return [Note(start, self.style.bass, midi, beats * beat_s, velocity, 0.0)]

    def _stride(self, grid: Grid, i: int, root: int, fifth: int) -> list[Note]:
        """Ragtime left hand: bass note on beats 1 and 3, a mid chord on 2 and 4."""
        step, bar, beat_s = int(grid.step_in_bar[i]), int(grid.bar[i]), float(grid.step_s[i]) * STEPS_PER_BEAT
        start = int(grid.sample[i])
        if step in (0, 8):
            low = root if (step == 0 or bar % 2) else fifth - 12
            return [Note(start, "piano", low, 0.45 * beat_s, 0.6, -0.3)]
        if step in (4, 12):
            tones = self.chord_tones(bar, (55, 70))[:3]
            return [Note(start, "piano", m, 0.35 * beat_s, 0.35, -0.1) for m in tones]
        return []

    def figure(self, grid: Grid, i: int) -> list[Note]:
        """The busy top line: sparse plucks when calm, walking runs when busy or frantic.

        Its density follows the fast motion curve, so movement on screen gets notes.
        """
        step, fast = int(grid.step_in_bar[i]), float(grid.density[i])
        level = _level(max(fast, float(grid.energy[i])))
        if level == 0:
            on_grid, chance = step % 4 == 0, 0.25 + 0.6 * fast
        elif level == 1:
            on_grid = (step % 8 in (0, 3, 6)) if self.style.stride else step % 2 == 0
            chance = 0.6 + 0.4 * fast
        else:
            on_grid, chance = True, 0.92
        if not on_grid or self.rng.random() >= chance:
            return []
        return [self._figure_note(grid, i, level)]

    def _figure_note(self, grid: Grid, i: int, level: int) -> Note:
        step, bar, step_s = int(grid.step_in_bar[i]), int(grid.bar[i]), float(grid.step_s[i])
        start = int(grid.sample[i])
        if level == 0:
            midi = int(self.rng.choice(self.chord_tones(bar, CALM_FIGURE_RANGE)))
            return Note(start, self.style.calm_figure, midi, 2.0 * step_s, 0.5, -0.35)
        if step % 4 == 0:
            # Land on a chord tone on each beat so the runs outline the harmony.
            chord = set(m % 12 for m in self.chord_tones(bar, FIGURE_RANGE))
            near = [j for j, m in enumerate(self.scale_tones) if m % 12 in chord]
            self.walk = min(near, key=lambda j: abs(j - self.walk))
        else:
            self.walk += self.direction * int(self.rng.choice((1, 1, 1, 2)))
        if not 2 <= self.walk < len(self.scale_tones) - 2 or self.rng.random() < 0.12:
            self.direction = -self.direction
        self.walk = int(np.clip(self.walk, 0, len(self.scale_tones) - 1))
        accent = 0.12 if step % 4 == 0 else 0.0
        dur_s = (0.8 if level == 2 else 1.5) * step_s
        return Note(start, self.style.busy_figure, self.scale_tones[self.walk], dur_s, 0.42 + accent, 0.35)

    def extra(self, grid: Grid, i: int) -> list[Note]:
        if self.style.extra == "theremin":
            return self._theremin(grid, i)
        if self.style.extra == "birds":
            return self._birds(grid, i)
        return []

    def _theremin(self, grid: Grid, i: int) -> list[Note]:
        if grid.step_in_bar[i] % 8 != 0 or _level(grid.energy[i]) != 0 or self.rng.random() > 0.7:
            return []
        midi = int(self.rng.choice(self.chord_tones(int(grid.bar[i]), (67, 84))))
        return [Note(int(grid.sample[i]), "theremin", midi, 7.0 * float(grid.step_s[i]), 0.3, 0.2)]

    def _birds(self, grid: Grid, i: int) -> list[Note]:
        chance = 0.04 + 0.5 * float(grid.density[i])
        if grid.step_in_bar[i] % 2 or self.rng.random() > chance:
            return []
        start, pan = int(grid.sample[i]), float(self.rng.uniform(-0.8, 0.8))
        midi = int(self.rng.integers(86, 99))
        count = int(self.rng.integers(2, 5))
        gap = int(0.09 * self.sr)
        return [Note(start + k * gap, "bird_chirp", midi - k, 0.07, 0.25, pan) for k in range(count)]

    def run(self, start: int, end: int, strength: float, upward: bool) -> list[Note]:
        """Mickey-mousing: a quick scale run across a burst of fast motion."""
        sr = self.sr
        dur_s = float(np.clip((end - start) / sr, 0.15, 1.2))
        scale = self.scale_tones if upward else self.scale_tones[::-1]
        # As many notes as the burst needs (16 a second), but a run never wraps past the
        # figure range, so a short scale (pentatonic) plays fewer, longer notes over the burst.
        count = int(np.clip(round(dur_s * 16), 3, min(16, len(scale))))
        tones = scale[:count]
        gap = int(dur_s * sr / count)
        velocity = 0.4 + 0.3 * strength
        return [Note(start + k * gap, self.style.run_voice, m, gap / sr, velocity, 0.5 - k / count)
                for k, m in enumerate(tones)]


def _level(energy: float) -> int:
    return 0 if energy < CALM_BELOW else (1 if energy < FRANTIC_FROM else 2)


def compose(composer: Composer, grid: Grid, analysis: VideoAnalysis, total_samples: int) -> list[Note]:
    """Every note of the music bed: the grid parts, then runs over fast-motion events."""
    notes: list[Note] = []
    for i in range(grid.sample.size):
        for part in (composer.pad, composer.bass, composer.figure, composer.extra):
            notes.extend(part(grid, i))
    media, sr = analysis.media, composer.sr
    runs = [e for e in analysis.events if e.kind == "fast_motion" and e.frame < media.frame_count]
    for k, event in enumerate(runs):
        start = media.frame_to_sample(event.frame, sr)
        end = media.frame_to_sample(min(event.end_frame, media.frame_count), sr)
        notes.extend(composer.run(start, end, event.strength, upward=k % 2 == 0))
    return [n for n in notes if 0 <= n.start_sample < total_samples]


# ---------------------------------------------------------------------------- rendering
class NoteCache:
    """Synthesised notes by (voice, pitch, length), so a repeated note is computed once.

    Sustained voices, whose length follows the tempo and so rarely repeats, are synthesised once
    per pitch as a long tone and cut to each note's length with a release fade.
    """

    def __init__(self, sr: int, seed: int, sustain_s: float = SUSTAIN_S) -> None:
        self.sr, self.seed, self.sustain_s = sr, seed, sustain_s
        self._notes: dict[tuple[str, int, int], np.ndarray] = {}
        self._release: np.ndarray | None = None

    def get(self, voice: str, midi: int, dur_s: float) -> np.ndarray:
        if voice in SUSTAINED_VOICES:
            return self._sustained(voice, midi, dur_s)
        key = (voice, midi, int(round(dur_s * 20)))   # lengths rounded to 50 ms
        return self._synth(key, max(key[2], 1) / 20.0)

    def _synth(self, key: tuple[str, int, int], dur_s: float) -> np.ndarray:
        if key not in self._notes:
            rng = _rng(self.seed, *key)
            self._notes[key] = VOICES[key[0]](midi_to_hz(key[1]), dur_s, self.sr, rng)
        return self._notes[key]

    def _sustained(self, voice: str, midi: int, dur_s: float) -> np.ndarray:
        full = self._synth((voice, midi, -1), self.sustain_s)
        release = self._release_curve()
        hold = int(np.clip(dur_s * self.sr, 0, full.size - release.size))
        note = full[:hold + release.size].copy()
        note[hold:] *= release
        return note

    def _release_curve(self) -> np.ndarray:
        if self._release is None:
            n = int(SUSTAIN_RELEASE_S * self.sr)
            self._release = (0.5 * (1.0 + np.cos(np.pi * np.arange(n) / n))).astype(np.float32)
        return self._release


def place(out: np.ndarray, start: int, sound: np.ndarray, gain: float, pan: float) -> None:
    """Add a mono sound into the stereo buffer `out` at `start`, panned, cut at the end."""
    end = min(out.shape[-1], start + sound.size)
    if end <= start:
        return
    left, right = pan_gains(pan)
    chunk = sound[:end - start]
    out[0, start:end] += (gain * left) * chunk
    out[1, start:end] += (gain * right) * chunk


def render_notes(notes: list[Note], total_samples: int, sr: int, seed: int) -> np.ndarray:
    # Sustained tones are synthesised just long enough for the longest held note.
    held_s = max((n.dur_s for n in notes if n.voice in SUSTAINED_VOICES), default=0.0)
    cache = NoteCache(sr, seed, sustain_s=min(SUSTAIN_S, held_s + 0.05))
    music = np.zeros((2, total_samples), dtype=np.float32)
    for note in notes:
        sound = cache.get(note.voice, note.midi, note.dur_s)
        place(music, note.start_sample, sound, note.velocity, note.pan)
    return music


def render_fx(analysis: VideoAnalysis, composer: Composer, grid: Grid, cuts: list[int],
              total_samples: int, seed: int) -> np.ndarray:
    """Effects on the exact sample of each event's frame, and a stinger on every cut."""
    media, sr, style = analysis.media, composer.sr, composer.style
    fx = np.zeros((2, total_samples), dtype=np.float32)
    rng = _rng(seed, "fx")
    for event in sorted(analysis.events, key=lambda e: (e.frame, e.kind)):
        if event.frame >= media.frame_count:
            continue
        start = media.frame_to_sample(event.frame, sr)
        pan = float(rng.uniform(-0.3, 0.3))
        if event.kind == "impact":
            pitch = style.impact_hz * float(rng.uniform(0.8, 1.25))
            place(fx, start, bonk(event.strength, sr, rng, pitch), 1.0, pan)
        elif event.kind == "flash":
            place(fx, start, zing(event.strength, sr, rng, laser=style.laser_flash), 1.0, pan)
        else:
            end = media.frame_to_sample(min(event.end_frame, media.frame_count), sr)
            _place_whoosh(fx, start, whoosh(end - start, event.strength, sr, rng), rng)
    hits: dict[int, np.ndarray] = {}   # one stinger per chord, reused
    for cut in cuts:
        at = min(int(np.searchsorted(grid.sample, cut)), grid.sample.size - 1)
        bar = int(grid.bar[at]) if grid.sample.size else 0
        chord_index = bar % len(style.progression)
        if chord_index not in hits:
            root = composer.chord_root(bar, (40, 52))
            hits[chord_index] = stinger(root, composer.chord(bar), sr, rng, voice=style.stinger_voice)
        place(fx, cut, hits[chord_index], style.stinger_gain, 0.0)
    return fx


def _place_whoosh(fx: np.ndarray, start: int, sound: np.ndarray, rng: np.random.Generator) -> None:
    """A whoosh travels across the stereo field (left to right or back)."""
    end = min(fx.shape[-1], start + sound.size)
    if end <= start:
        return
    sweep = np.linspace(-0.7, 0.7, sound.size)[:end - start] * (1 if rng.random() < 0.5 else -1)
    angle = (sweep + 1.0) * np.pi / 4.0
    fx[0, start:end] += np.cos(angle) * sound[:end - start]
    fx[1, start:end] += np.sin(angle) * sound[:end - start]


def balance(music: np.ndarray, fx: np.ndarray, options: SketchOptions) -> tuple[np.ndarray, np.ndarray]:
    """Music to a fixed RMS, fx at a fixed level against it, both scaled down together if the
    sum would peak above PEAK_CEILING (the stems keep their balance)."""
    rms = float(np.sqrt(np.mean(np.square(music, dtype=np.float64)))) if music.size else 0.0
    music_gain = (MUSIC_RMS / rms if rms > 0 else 1.0) * 10 ** (options.music_gain_db / 20)
    fx_gain = FX_GAIN * 10 ** (options.fx_gain_db / 20)
    music *= np.float32(music_gain)
    fx *= np.float32(fx_gain)
    peak = float(np.max(np.abs(music + fx))) if music.size else 0.0
    if peak > PEAK_CEILING:
        scale = np.float32(PEAK_CEILING / peak)
        music *= scale
        fx *= scale
    return music, fx


def slice_cues(plan: DubPlan, music: np.ndarray, fx: np.ndarray) -> tuple[CueAudio, ...]:
    """Cut the timeline into the plan's cues; a cue running past the timeline is padded."""
    cues = []
    for cue in plan.cues:
        stems = {}
        for name, track in (("music", music), ("fx", fx)):
            part = np.zeros((2, cue.num_samples), dtype=np.float32)
            avail = track[:, cue.start_sample:cue.end_sample]
            part[:, :avail.shape[-1]] = avail
            stems[name] = part
        cues.append(CueAudio(cue_index=cue.index, start_sample=cue.start_sample, stems=stems))
    return tuple(cues)


class SketchBackend(DubBackend):
    """Procedural cartoon music and effects, on any CPU, in well under real time."""

    NAME = "sketch"
    RENDERS_WHOLE_TIMELINE = True

    def __init__(self, options: object | None = None, sketch: SketchOptions | None = None) -> None:
        # `options` is the registry's BackendOptions (model, device, timing): none of it applies
        # to a procedural renderer, so it is accepted and ignored.
        self.options = sketch or (options if isinstance(options, SketchOptions) else SketchOptions())

    def render(self, plan: DubPlan, analysis: VideoAnalysis, progress: ProgressFn = no_progress) -> RenderResult:
        """Render the plan's whole timeline once and cut it into one CueAudio per cue.

        Returns stems "music" and "fx", float32 (2, cue.num_samples) at plan.sample_rate.
        """
        sr, total, steps = plan.sample_rate, plan.total_samples, 5
        if sr <= 0 or total < 0:
            raise ValueError(f"bad plan timing: sample_rate={sr}, total_samples={total}")
        style = style_spec(plan.style)
        rng = _rng(plan.seed, "score", plan.style)
        root = int(rng.choice(style.roots))
        composer = Composer(style, root, rng, sr)
        progress("render", 0, steps)
        motion = motion_curves(analysis, sr)
        cuts = cut_samples(analysis, sr, total)
        grid = build_grid(style, motion, cuts, total, sr)
        notes = compose(composer, grid, analysis, total)
        progress("render", 1, steps)
        music = render_notes(notes, total, sr, plan.seed)
        progress("render", 2, steps)
        fx = render_fx(analysis, composer, grid, cuts, total, plan.seed)
        if style.ambience == "wind":
            fx += np.float32(AMBIENCE_RMS) * wind(total, sr, _rng(plan.seed, "wind"), motion.frame_sample, motion.slow)
        progress("render", 3, steps)
        if self.options.reverb and total > 0:
            # Cartoon effects stay dry and close; only the music sits in a room.
            music = add_reverb(music, sr, room_impulse(sr // 2, 1.1, 1.3, plan.seed), wet=0.25)
        music, fx = balance(music, fx, self.options)
        progress("render", 4, steps)
        cues = slice_cues(plan, music, fx)
        progress("render", steps, steps)
        key = f"{KEY_NAMES[root % 12]} {'minor' if style.scale == MINOR else 'major'}"
        log.info("sketch: style %s, key %s, %d notes, %d cuts", plan.style, key, len(notes), len(cuts))
        note = f"procedural sketch, style {plan.style}, key of {key}, seed {plan.seed}"
        return RenderResult(backend=self.NAME, sample_rate=sr, cues=cues, notes=(note,))
