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
from dubber.backends.score.notation import Part

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


def _long_shot_composer(program: int, seed: int, energy: float = 0.6):
    """A composer that has written one 16 s shot with no events, its harmony on `program`."""
    from dubber.backends.score.compose import MODES, TEXTURES, Composer, ShotContext
    from dubber.backends.score.notation import Part
    from dubber.backends.score.tempo_map import build_tempo_map
    from dubber.styles import STYLES

    orchestra = STYLES["silent-film"].orchestra
    tempo = build_tempo_map([], 16.0, [120.0], (90.0, 150.0), np.random.default_rng(seed))
    composer = Composer(orchestra, tempo, np.random.default_rng(seed))
    shot = ShotContext(0.0, 16.0, energy, 0, MODES["major"], Part(0), Part(0), Part(program), TEXTURES[0])
    composer.write_shot(shot, [], final=True, opens_shot=True)
    return composer, tempo


@pytest.mark.parametrize("energy", [0.2, 0.6])
@pytest.mark.parametrize("program", [0, 48])          # a piano, and strings that hold their tone
@pytest.mark.parametrize("seed", range(4))
def test_no_chord_is_held_into_a_bar_whose_chord_it_is_not_part_of(program, seed, energy):
    """The pad that fills the rests of a busy shot changes with the harmony at every bar line of
    the metre, not only at hit points: a chord held from one hit point to the next sounded E
    major against an F sharp minor bar (G sharp against A)."""
    composer, tempo = _long_shot_composer(program, seed, energy)
    if energy < 0.5:   # a stretch where nothing else plays: the pad alone fills it, bar after bar
        from dubber.backends.score.compose import MODES, ShotContext

        shot = ShotContext(0.0, 16.0, energy, 0, MODES["major"], Part(0), Part(0), Part(program))
        composer.notes = []
        composer._carry_through(shot, np.arange(tempo.beat_s.size - 1))
    bar_lines = [(float(tempo.beat_s[b]), composer.bar_chords.get(int(composer.bar[b])))
                 for b in np.flatnonzero(composer.beat_in_bar == 0)]
    wrong = [(n.pitch, round(n.start_s, 2), round(n.end_s, 2), round(t, 2), chord)
             for n in composer.notes if n.role == "harmony"
             for t, chord in bar_lines if chord and n.start_s + 0.05 < t < n.end_s - 0.05 and n.pitch % 12 not in chord]
    assert not wrong, wrong


@pytest.mark.parametrize("seed", range(4))
def test_a_rolled_chord_goes_from_the_bottom_up(seed):
    composer, _ = _long_shot_composer(0, seed)
    chords: dict[float, list] = {}
    for n in sorted((n for n in composer.notes if n.role == "harmony"), key=lambda n: n.start_s):
        key = next((k for k in chords if n.start_s - k < 0.1), n.start_s)
        chords.setdefault(key, []).append(n)
    rolled = [c for c in chords.values() if len({round(n.start_s, 4) for n in c}) == len(c) > 1]
    assert rolled
    for chord in rolled:
        pitches = [n.pitch for n in sorted(chord, key=lambda n: n.start_s)]
        assert pitches == sorted(pitches), pitches



def test_the_tune_leans_on_the_bar_and_lightens_between_beats():
    """A tune phrased against the bar, not the same loudness on every beat (which the onset curve
    reads as a click track): louder on a bar's first beat than on its other beats, and lighter
    still between beats."""
    loudness: dict[str, list[int]] = {"bar": [], "beat": [], "between": []}
    for seed in range(6):
        composer, tempo = _long_shot_composer(0, seed, energy=0.8)
        for note in (n for n in composer.notes if n.role == "melody"):
            position = float(tempo.beat_at(note.start_s))
            beat = int(round(position))
            where = "between" if abs(position - beat) > 1e-3 else "bar" if composer.downbeat[beat] else "beat"
            loudness[where].append(note.velocity)
    counts = {k: len(v) for k, v in loudness.items()}
    assert min(counts.values()) >= 10, counts
    mean = {k: float(np.mean(v)) for k, v in loudness.items()}
    assert mean["bar"] >= mean["beat"] + 12 and mean["beat"] >= mean["between"] + 3, mean
