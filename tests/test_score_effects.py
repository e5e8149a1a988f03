"""The effects stem as a sound editor hears it: consecutive blows and falls never sound alike."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from dubber import sound_measures as sm
from dubber.backends.score import ScoreBackend
from dubber.mix import MixOptions, mix
from dubber.plan import PlanOptions, make_plan
from vision.types import MediaInfo, Shot, VideoAnalysis, VisualEvent

FPS = Fraction(24)
FRAMES = 24 * 16
# Blows and falls 1.5-2 s apart, each but one with the picture shaking for a few frames after it,
# as a fight cut by the analysis reads: impact, landing, impact, landing, ...
CONTACTS = ((36, "impact"), (78, "landing"), (120, "impact"), (168, "landing"), (210, "landing"),
            (252, "impact"), (300, "impact"), (342, "landing"))


def _analysis() -> VideoAnalysis:
    media = MediaInfo(path="fight.mp4", duration_s=float(FRAMES / FPS), fps=FPS, frame_count=FRAMES, width=64, height=36)
    events = []
    for k, (frame, kind) in enumerate(CONTACTS):
        events.append(VisualEvent(frame, kind, 0.8 if k % 2 else 1.0, frame + 1))
        if k != 3:
            events.append(VisualEvent(frame + 1, "shake", 0.9, frame + 7))
    return VideoAnalysis(media=media, shots=(Shot(0, 0, 180), Shot(1, 180, FRAMES)), events=tuple(events),
                         motion=(0.5,) * FRAMES, captions=())


@pytest.mark.parametrize("seed", range(4))
def test_no_two_consecutive_contacts_sound_alike(seed):
    analysis = _analysis()
    plan = make_plan(analysis, PlanOptions(style="tom-and-jerry", seed=seed))
    track = mix(ScoreBackend().render(plan, analysis), plan, MixOptions())
    fx = track.stems["fx"]
    times = [float(Fraction(frame) / FPS) for frame, _ in CONTACTS]
    sameness = [sm.hit_sameness(fx, plan.sample_rate, a, b) for a, b in zip(times, times[1:])]
    assert max(sameness) < 0.95, np.round(sameness, 3)
