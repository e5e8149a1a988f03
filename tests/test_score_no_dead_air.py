"""The score engine never leaves a moving shot in digital silence: rests that happen to line up
(the tune breathing or cleared before a hit, the pad sitting the bar out, a plucked bass died
away), or two notes of one key where the first one's release cut the second, used to leave up
to a second of exact zeros before a cut in the middle of a fight."""
from __future__ import annotations

import numpy as np
import pytest

from dubber.backends.score import ScoreBackend
from dubber.backends.score.pace import shot_energy
from dubber.backends.score.engine import shot_bounds
from dubber.backends.score.hitpoints import event_points
from dubber.hits import played_events
from dubber.plan import PlanOptions, make_plan
from vision.types import MediaInfo, Shot, VideoAnalysis, VisualEvent

FPS = 24
FRAMES = 960                                  # 40 s
CUTS = (290, 485, 606, 764)                   # a fight scene's cuts (frames)
BLOWS = (112, 144, 425, 452, 494, 502, 510, 518, 526, 534, 542, 550, 558, 806, 851, 893, 935)
LONGEST_SILENCE_S = 0.25
MOVING = 0.15                                 # shot energy of a shot where something happens


def fight() -> VideoAnalysis:
    """Shots and blows of a 40 s fight, with motion that rises and falls shot by shot."""
    media = MediaInfo(path="fight.mp4", duration_s=FRAMES / FPS, fps=FPS, frame_count=FRAMES, width=64, height=48)
    edges = [0, *CUTS, FRAMES]
    shots = tuple(Shot(i, a, b) for i, (a, b) in enumerate(zip(edges[:-1], edges[1:])))
    events = tuple(VisualEvent(f, "impact", 0.8, f + 1) for f in BLOWS)
    frames = np.arange(FRAMES)
    motion = 0.4 + 0.2 * np.sin(frames / 37.0) * np.cos(frames / 91.0)
    return VideoAnalysis(media=media, shots=shots, events=events, motion=tuple(float(m) for m in motion),
                         captions=())


def silences(music: np.ndarray, sample_rate: int, longer_than_s: float) -> list[tuple[float, float]]:
    """(start s, length s) of every run of exact zeros (both channels) longer than `longer_than_s`."""
    zero = np.all(music == 0, axis=0).astype(np.int8)
    edges = np.diff(np.concatenate([[0], zero, [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [(a / sample_rate, (b - a) / sample_rate) for a, b in zip(starts, stops)
            if (b - a) / sample_rate > longer_than_s]


@pytest.mark.parametrize("style", ["tom-and-jerry", "silent-film", "noir"])
def test_the_music_carries_through_every_moving_shot(style):
    analysis = fight()
    total_s = FRAMES / FPS
    events = event_points(played_events(analysis))
    motion = np.asarray(analysis.motion)
    moving = [(a, b) for a, b in shot_bounds(analysis, total_s)
              if shot_energy(motion, events, a, b, FPS) >= MOVING]
    assert len(moving) == len(CUTS) + 1
    backend = ScoreBackend()
    found = []
    for seed in range(6):
        plan = make_plan(analysis, PlanOptions(style=style, seed=seed))
        result = backend.render(plan, analysis)
        music = np.concatenate([np.asarray(c.stems["music"]) for c in result.cues], axis=1)
        for start, length in silences(music, plan.sample_rate, LONGEST_SILENCE_S):
            if any(a - 1e-6 <= start < b for a, b in moving):
                found.append(f"seed {seed}: {length:.2f} s of silence from {start:.2f} s")
    assert not found, found


@pytest.mark.parametrize("second_starts_s", [0.0, 0.3])
def test_a_key_struck_while_held_sounds_until_its_last_note_ends(second_starts_s):
    """The pad and the tune on one instrument can play the same key at once; the note that
    ends first must not take the other one's sound with it."""
    from dubber.backends.score.notation import Note, Part
    from dubber.backends.score.render import load_soundfont, render_notes

    sr = 48_000
    organ = Part(19)
    notes = [Note(organ, 71, 0.0, 0.6, 50, "harmony"), Note(organ, 71, second_starts_s, 2.0, 80, "melody")]
    audio = render_notes(notes, [], load_soundfont(), int(2.5 * sr), sr)
    held = audio[:, int(1.2 * sr):int(1.9 * sr)]
    before = audio[:, int(0.35 * sr):int(0.55 * sr)]
    assert np.sqrt(np.mean(held ** 2)) > 0.3 * np.sqrt(np.mean(before ** 2))
