"""The score engine: a cartoon orchestra that hits the action, rendered from a SoundFont on any CPU.

What a cartoon studio composer did with a bar sheet and a click track, as a chain of pure seeded
functions (hit points -> tempo map -> composition -> effects -> one `Score`), then one render:

1. hitpoints.py   cuts and visual events as hit points; the strongest become tempo anchors.
2. tempo_map.py   a whole number of beats between anchors, rubato inside, a beat on every anchor.
3. compose.py     a key per shot (it moves at every cut), harmony, a motif stated and varied,
                  bass and sustained harmony whose texture changes section by section, runs
                  over scurrying (not under a slide whistle), tremolo under shakes.
4. foley.py       a sound for every event by kind and strength, never the same twice in a row.
5. render.py      General MIDI through a SoundFont (TimGM6mb from the pretty_midi wheel by
                  default), music and effects as two stems; the music dips under strong effects.
                  The stems are tracks on disk (dubber.media.tracks), a film's worth never in
                  memory; each cue's stems are read from them when the mix places it.

Deterministic: the same plan (style, seed) and analysis give the same audio, bit for bit.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Iterator, Mapping

import numpy as np

from vision.types import Shot, VideoAnalysis

from ...ducking import LEVEL_BLOCK_FRAMES, Ducker, duck_amount, duck_gain_span, frame_samples, key_level_db_of_blocks
from ...media.tracks import Track, new_track
from ...errors import BackendUnavailable
from ...plan import shot_starts
from ...types import CueAudio, DubPlan, ProgressFn, RenderResult, no_progress
from ..base import DubBackend
from .engine import compose_score
from .notation import Score
from .render import SoundFont, SoundFontError, load_soundfont, render_notes_into

__all__ = ["ScoreBackend", "ScoreOptions", "compose_score", "load_soundfont", "Score"]

log = logging.getLogger(__name__)
KEY_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
PEAK_CEILING = 0.9                      # the stems together peak at most here
TAIL_HOLD_S = 0.5                       # an effect rings this long past its note ...
TAIL_FADE_S = 0.7                       # ... then fades out over this long
MUSIC_UNDER_FX = Ducker(depth_db=-7.0, threshold_db=-14.0, attack_ms=10.0, hold_ms=80.0, release_ms=300.0)


@dataclass(frozen=True)
class ScoreOptions:
    """`soundfont`: an .sf2 path (None: the default bank). Gains in dB on each stem."""

    soundfont: str | None = None
    music_gain_db: float = 0.0
    fx_gain_db: float = 0.0
    duck_music: bool = True


class TrackSlices(Mapping[str, np.ndarray]):
    """The stems of one cue: its samples of each timeline track on disk, read when asked for
    (times the timeline's balance `scale`); a cue running past the timeline is padded."""

    def __init__(self, tracks: Mapping[str, Track], start: int, num_samples: int, scale: np.float32) -> None:
        self.tracks, self.start, self.num_samples, self.scale = tracks, start, num_samples, scale

    def __getitem__(self, name: str) -> np.ndarray:
        part = self.tracks[name].read(self.start, self.start + self.num_samples)
        if part.shape[-1] < self.num_samples:
            part = np.pad(part, ((0, 0), (0, self.num_samples - part.shape[-1])))
        return part * self.scale if self.scale != 1 else part

    def __iter__(self) -> Iterator[str]:
        return iter(self.tracks)

    def __len__(self) -> int:
        return len(self.tracks)

    def release(self, name: str | None = None) -> None:
        """Remove the timeline's track of stem `name` (None: every stem) from disk; every cue of
        the render shares them. Once placed by the mix, a film's stems need not take its disk
        until the job ends. The names stay."""
        for stem, track in self.tracks.items():
            if name is None or stem == name:
                track.close()


def slice_cues(plan: DubPlan, music: Track, fx: Track, scale: float = 1.0) -> tuple[CueAudio, ...]:
    """Cut the timeline into the plan's cues: each cue's stems are read from the tracks when used."""
    tracks = {"music": music, "fx": fx}
    return tuple(CueAudio(cue_index=cue.index, start_sample=cue.start_sample,
                          stems=TrackSlices(tracks, cue.start_sample, cue.num_samples, np.float32(scale)))
                 for cue in plan.cues)


def tail_frames(notes, total_samples: int, sample_rate: int) -> np.ndarray:
    """Per 10 ms frame, the gain that lets each effect ring TAIL_HOLD_S past its note and then
    fades it out over TAIL_FADE_S, as an editor trims effect tails: long drum and reverb tails
    would otherwise blur every hit into the next and into the music (see `tail_gain`)."""
    hop = max(1, sample_rate // 100)
    frames = total_samples // hop + 1
    env = np.zeros(frames)
    fade = 0.5 * (1 + np.cos(np.linspace(0, np.pi, max(1, int(TAIL_FADE_S * 100)))))
    for note in notes:
        a = int(note.start_s * 100)
        b = int((note.end_s + TAIL_HOLD_S) * 100)
        env[a:b] = 1.0
        piece = fade[:max(0, min(fade.size, frames - b))]
        env[b:b + piece.size] = np.maximum(env[b:b + piece.size], piece)
    return env


def tail_gain(env: np.ndarray, sample_rate: int, start: int, stop: int) -> np.ndarray:
    """Samples [start, stop) of the tail gain (float32) from its frames (`tail_frames`)."""
    hop = max(1, sample_rate // 100)
    return np.interp(np.arange(start, stop), np.arange(env.size) * hop, env).astype(np.float32)


def tail_envelope(notes, total_samples: int, sample_rate: int) -> np.ndarray:
    """The whole tail gain (float32, per sample) of `tail_frames`."""
    return tail_gain(tail_frames(notes, total_samples, sample_rate), sample_rate, 0, total_samples)


def describe(score: Score, bank: SoundFont, plan: DubPlan) -> str:
    keys = ", ".join(f"{KEY_NAMES[s.key_root]} {s.mode}" for s in score.shots[:6])
    more = "" if len(score.shots) <= 6 else f" (+{len(score.shots) - 6} more)"
    return (f"score engine, style {plan.style}, seed {plan.seed}, SoundFont {bank.describe()}; "
            f"{len(score.notes)} notes, keys by shot: {keys}{more}")


def shots_of_plan(plan: DubPlan, analysis: VideoAnalysis) -> VideoAnalysis:
    """The analysis with the plan's shots (`shot_starts`): the music changes where the timelines
    and subtitles cut, also when a boundary was moved by hand or sits in a dissolve's middle."""
    starts = shot_starts(plan)
    ends = starts[1:] + [analysis.media.frame_count]
    shots = tuple(Shot(i, a, b) for i, (a, b) in enumerate(zip(starts, ends)) if b > a)
    return replace(analysis, shots=shots) if shots else analysis


class ScoreBackend(DubBackend):
    """An orchestral cartoon score and effects from a SoundFont, on any CPU, far under real time."""

    NAME = "score"
    RENDERS_WHOLE_TIMELINE = True
    # Composing is a fraction of a second per ten minutes and synthesis well under real time,
    # while the audio would take 2.8 GB of cache per hour of video: the cached analysis is what
    # a rerun reuses, and the same analysis, style and seed give the same audio bit for bit.
    CACHES_AUDIO = False
    # The score is composed for the whole film from the plan's style and seed and the analysis:
    # no cue's caption, prompt or seed is read.
    CUE_EDITS: frozenset[str] = frozenset()

    def __init__(self, options: object | None = None, score: ScoreOptions | None = None) -> None:
        # `options` is the registry's BackendOptions; only its soundfont applies here.
        if score is None:
            score = ScoreOptions(soundfont=getattr(options, "soundfont", None))
        self.options = score
        try:
            self.soundfont = load_soundfont(score.soundfont)
        except SoundFontError as err:
            raise BackendUnavailable(str(err)) from None

    def render(self, plan: DubPlan, analysis: VideoAnalysis, progress: ProgressFn = no_progress) -> RenderResult:
        """Compose the whole timeline once, render it, and cut it into one CueAudio per cue.

        Returns stems "music" and "fx", float32 (2, cue.num_samples) at plan.sample_rate.
        """
        sr, total = plan.sample_rate, plan.total_samples
        if sr <= 0 or total < 0:
            raise ValueError(f"bad plan timing: sample_rate={sr}, total_samples={total}")
        steps = 4
        progress("render", 0, steps)
        score = compose_score(shots_of_plan(plan, analysis), plan.style, plan.seed, total / sr)
        progress("render", 1, steps)
        music = new_track("music", 2, total)
        render_notes_into(music, list(score.stem_notes("music")), list(score.rooms), self.soundfont, sr)
        progress("render", 2, steps)
        fx_notes = score.stem_notes("fx")
        fx = new_track("fx", 2, total)
        render_notes_into(fx, list(fx_notes), list(score.rooms), self.soundfont, sr)
        progress("render", 3, steps)
        scale = self._balance(music, fx, tail_frames(fx_notes, total, sr), sr)
        cues = slice_cues(plan, music, fx, scale)
        progress("render", steps, steps)
        note = describe(score, self.soundfont, plan)
        log.info("%s", note)
        return RenderResult(backend=self.NAME, sample_rate=sr, cues=cues, model_id=f"soundfont:{self.soundfont.name}",
                            notes=(note,), sound_bank=self.soundfont.facts())

    def _balance(self, music: Track, fx: Track, tails: np.ndarray, sr: int) -> float:
        """Effect tails trimmed; the music dips under strong effects; the stem gains applied (all
        in place, a block at a time). Returns the scale that keeps the two stems together under
        PEAK_CEILING (applied as the cues are read)."""
        total = music.num_samples
        step = frame_samples(sr) * LEVEL_BLOCK_FRAMES        # whole side-chain frames per block
        fx_heard = False

        def trimmed_fx():
            nonlocal fx_heard
            for a in range(0, total, step):
                block = fx.read(a, a + step) * tail_gain(tails, sr, a, min(a + step, total))[None, :]
                fx.write(a, block)
                fx_heard = fx_heard or bool(np.any(block))
                yield a, block

        levels = key_level_db_of_blocks(trimmed_fx(), total, sr)
        duck = self.options.duck_music and fx_heard
        amount = duck_amount(levels, MUSIC_UNDER_FX) if duck else None
        music_gain = np.float32(10 ** (self.options.music_gain_db / 20))
        fx_gain = np.float32(10 ** (self.options.fx_gain_db / 20))
        peak = 0.0
        for a in range(0, total, step):
            b = min(a + step, total)
            m = music.read(a, b)
            if amount is not None:
                m *= duck_gain_span(amount, sr, MUSIC_UNDER_FX, a, b)[None, :]
            m *= music_gain
            music.write(a, m)
            f = fx.read(a, b)
            if fx_gain != 1:
                f *= fx_gain
                fx.write(a, f)
            if m.size:
                peak = max(peak, float(np.max(np.abs(m + f))))
        return PEAK_CEILING / peak if peak > PEAK_CEILING else 1.0
