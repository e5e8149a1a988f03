"""The score engine: a cartoon orchestra that hits the action, rendered from a SoundFont on any CPU.

What a cartoon studio composer did with a bar sheet and a click track, as a chain of pure seeded
functions (hit points -> tempo map -> composition -> effects -> one `Score`), then one render:

1. hitpoints.py   cuts and visual events as hit points; the strongest become tempo anchors.
2. tempo_map.py   a whole number of beats between anchors, rubato inside, a beat on every anchor.
3. compose.py     a key per shot (it moves at every cut), harmony, a motif stated and varied,
                  bass, sustained harmony, runs over scurrying, tremolo under shakes.
4. foley.py       a sound for every event by kind and strength, never the same twice in a row.
5. render.py      General MIDI through a SoundFont (TimGM6mb from the pretty_midi wheel by
                  default), music and effects as two stems; the music dips under strong effects.

Deterministic: the same plan (style, seed) and analysis give the same audio, bit for bit.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from vision.types import VideoAnalysis

from ...ducking import Ducker, duck_gain
from ...errors import BackendUnavailable
from ...types import CueAudio, DubPlan, ProgressFn, RenderResult, no_progress
from ..base import DubBackend
from .engine import compose_score
from .notation import Score
from .render import SoundFont, SoundFontError, load_soundfont, render_notes

__all__ = ["ScoreBackend", "ScoreOptions", "compose_score", "load_soundfont", "Score"]

log = logging.getLogger(__name__)
KEY_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
PEAK_CEILING = 0.9                      # the stems together peak at most here
BLOCK = 1 << 20                         # samples per block when scanning the whole timeline
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


def slice_cues(plan: DubPlan, music: np.ndarray, fx: np.ndarray) -> tuple[CueAudio, ...]:
    """Cut the timeline into the plan's cues; a cue running past the timeline is padded."""
    cues = []
    for cue in plan.cues:
        stems = {}
        for name, track in (("music", music), ("fx", fx)):
            avail = track[:, cue.start_sample:cue.end_sample]
            if avail.shape[-1] == cue.num_samples:
                stems[name] = avail   # a view: the timeline is not copied a second time
                continue
            part = np.zeros((2, cue.num_samples), dtype=np.float32)
            part[:, :avail.shape[-1]] = avail
            stems[name] = part
        cues.append(CueAudio(cue_index=cue.index, start_sample=cue.start_sample, stems=stems))
    return tuple(cues)


def tail_envelope(notes, total_samples: int, sample_rate: int) -> np.ndarray:
    """Gain (float32, per sample) that lets each effect ring TAIL_HOLD_S past its note and then
    fades it out over TAIL_FADE_S, as an editor trims effect tails: long drum and reverb tails
    would otherwise blur every hit into the next and into the music."""
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
    gain = np.empty(total_samples, dtype=np.float32)
    centres = np.arange(frames) * hop
    for a in range(0, total_samples, BLOCK):
        at = np.arange(a, min(total_samples, a + BLOCK))
        gain[a:a + at.size] = np.interp(at, centres, env)
    return gain


def describe(score: Score, bank: SoundFont, plan: DubPlan) -> str:
    keys = ", ".join(f"{KEY_NAMES[s.key_root]} {s.mode}" for s in score.shots[:6])
    more = "" if len(score.shots) <= 6 else f" (+{len(score.shots) - 6} more)"
    return (f"score engine, style {plan.style}, seed {plan.seed}, SoundFont {bank.describe()}; "
            f"{len(score.notes)} notes, keys by shot: {keys}{more}")


class ScoreBackend(DubBackend):
    """An orchestral cartoon score and effects from a SoundFont, on any CPU, far under real time."""

    NAME = "score"
    RENDERS_WHOLE_TIMELINE = True

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
        score = compose_score(analysis, plan.style, plan.seed, total / sr)
        progress("render", 1, steps)
        music = render_notes(list(score.stem_notes("music")), list(score.rooms), self.soundfont, total, sr)
        progress("render", 2, steps)
        fx_notes = score.stem_notes("fx")
        fx = render_notes(list(fx_notes), list(score.rooms), self.soundfont, total, sr)
        fx *= tail_envelope(fx_notes, total, sr)[None, :]
        progress("render", 3, steps)
        music, fx = self._balance(music, fx, sr)
        cues = slice_cues(plan, music, fx)
        progress("render", steps, steps)
        note = describe(score, self.soundfont, plan)
        log.info("%s", note)
        return RenderResult(backend=self.NAME, sample_rate=sr, cues=cues, model_id=f"soundfont:{self.soundfont.name}",
                            notes=(note,), sound_bank=self.soundfont.facts())

    def _balance(self, music: np.ndarray, fx: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
        """Music dips under strong effects; both stems keep their balance under PEAK_CEILING."""
        if self.options.duck_music and fx.size and np.any(fx):
            music *= duck_gain(fx, sr, MUSIC_UNDER_FX)[None, :]
        music *= np.float32(10 ** (self.options.music_gain_db / 20))
        fx *= np.float32(10 ** (self.options.fx_gain_db / 20))
        peak = max((float(np.max(np.abs(music[:, a:a + BLOCK] + fx[:, a:a + BLOCK])))
                    for a in range(0, music.shape[1], BLOCK)), default=0.0)
        if peak > PEAK_CEILING:
            scale = np.float32(PEAK_CEILING / peak)
            music *= scale
            fx *= scale
        return music, fx

