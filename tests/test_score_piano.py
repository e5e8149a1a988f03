"""A lone piano accompanies like a pianist, not a metronome: every note a piano plays is heard as
an onset, so chords struck on every beat (the pad re-struck to fill each rest of the tune) made
the silent-film score tick at its beat (onset autocorrelation 0.23-0.37 on a 28 s clip with long
shots and one blow, against 0.08-0.16 for real cartoon scores)."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from dubber import sound_measures as sm
from dubber.backends.score import compose_score
from dubber.backends.score.compose import DECAYING

from test_score import SR, analysis_with, render

FPS = Fraction(1199, 50)
# Long shots and a single blow, as in the opening of a 1928 short: the music is on its own.
LONG_SHOTS = dict(events=((576, "impact", 0.8),), cuts=(113, 449, 625), frames=672, fps=FPS)


@pytest.mark.parametrize("motion", [0.4, 0.7])
@pytest.mark.parametrize("seed", range(4))
def test_the_silent_film_piano_does_not_tick_on_the_beat(seed, motion):
    _, _, music, _ = render(analysis_with(**LONG_SHOTS, motion=motion), seed=seed, style="silent-film")
    assert sm.periodicity(music, SR) <= 0.18


def test_a_struck_accompaniment_places_its_chords_as_a_pianist_would():
    """Fewer chords than beats, and many of them off the bass's bar lines (on the afterbeat, off
    the beat, or rolled): not a chord on every beat, nor always together with the bass."""
    analysis = analysis_with(**LONG_SHOTS)
    for seed in range(3):
        score = compose_score(analysis, "silent-film", seed, analysis.media.duration_s)
        ends = [*(s.start_s for s in score.shots[1:]), score.duration_s]
        beats = sum((end - shot.start_s) * shot.start_bpm / 60.0 for shot, end in zip(score.shots, ends))
        chords = sorted({round(n.start_s, 3) for n in score.notes if n.role == "harmony" and n.part.program in DECAYING})
        bass = np.array([n.start_s for n in score.notes if n.role == "bass"])
        with_bass = sum(float(np.min(np.abs(bass - t))) < 0.01 for t in chords)
        assert len(chords) < 0.6 * beats, (seed, len(chords), beats)
        assert with_bass < 0.75 * len(chords), (seed, with_bass, len(chords))
