"""The score changes colour and breathes: a long shot full of motion does not turn into a loop
(chroma repetition and onset density measured on the rendered audio), calm tunes play longer
notes, the accompaniment moves between textures, and a slide whistle is not doubled by a run."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from dubber import sound_measures as sm
from dubber.backends.score import ScoreBackend, compose_score
from dubber.backends.score.foley import WHISTLE_GAP_S
from dubber.backends.score.motif import Motif, simplified
from dubber.plan import PlanOptions, make_plan
from vision.types import MediaInfo, Shot, VideoAnalysis, VisualEvent

FPS = Fraction(24)
SR = 48_000


def one_long_shot(seconds: int, events: tuple[tuple[int, str, float, int], ...], motion: float) -> VideoAnalysis:
    frames = seconds * 24
    media = MediaInfo(path="v.mp4", duration_s=float(seconds), fps=FPS, frame_count=frames, width=64, height=36)
    visual = tuple(VisualEvent(f, kind, strength, end) for f, kind, strength, end in events)
    return VideoAnalysis(media=media, shots=(Shot(0, 0, frames),), events=visual, motion=(motion,) * frames,
                         captions=())


def restless(seconds: int) -> tuple[tuple[int, str, float, int], ...]:
    """What a detector reports on a long chase: a whoosh, a dash or a shake every two seconds or
    so, each some frames long, with a blow now and then."""
    kinds = ("whoosh", "run", "whoosh", "shake", "run", "impact")
    events, frame, k = [], 20, 0
    while frame < seconds * 24 - 30:
        kind = kinds[k % len(kinds)]
        length = 1 if kind == "impact" else 8 + 3 * (k % 5)
        events.append((frame, kind, 0.55 + 0.08 * (k % 5), frame + length))
        frame += 41 + 13 * (k % 4)
        k += 1
    return tuple(events)


def mixed(analysis: VideoAnalysis, seed: int) -> np.ndarray:
    plan = make_plan(analysis, PlanOptions(style="tom-and-jerry", seed=seed))
    result = ScoreBackend().render(plan, analysis)
    return sum(np.concatenate([c.stems[name] for c in result.cues], axis=1) for name in ("music", "fx"))


@pytest.mark.parametrize("seed", range(4))
def test_a_long_shot_full_of_motion_does_not_turn_into_a_loop(seed):
    """32 s in one shot with a sustained event every two seconds: the chroma of 1 s blocks at
    least 2 s apart stays below 0.55 cosine (a held key and an oom-pah bass under every bar
    measure 0.57-0.65), and a random instant has no onset within 0.1 s most of the time: under
    0.4 (a chattering tune, sixteenths as written, measures 0.46-0.52; over 60 seeds this scene
    measures 0.22-0.37, with 0.35 passed in 1 render of 8 to 15 by how busy the seed's tune is)."""
    audio = mixed(one_long_shot(32, restless(32), motion=0.45), seed)
    assert sm.repetition(audio, SR) <= 0.55
    duration = audio.shape[1] / SR
    assert sm.chance_rate(sm.onsets(audio, SR), duration) <= 0.4


@pytest.mark.parametrize("seed", range(4))
def test_a_calm_shot_breathes_instead_of_chattering(seed):
    """24 s of a still shot with no events: whatever figure the seed's motif starts from, the tune
    plays it in values long enough that most instants have no onset within 0.1 s (a motif of
    sixteenths played as written measures 0.46-0.52 here)."""
    audio = mixed(one_long_shot(24, (), motion=0.05), seed)
    assert sm.chance_rate(sm.onsets(audio, SR), 24.0) <= 0.3


def test_a_figure_thinned_for_a_calm_scene_keeps_its_tune():
    """Sixteenth-note pairs tied into longer values: the notes left are the same pitches in the
    same order, the phrase lasts as long, and it plays no more notes a beat than asked."""
    motif = Motif((0.25, 0.25, 0.5, 1.0, 1.5, 0.5), (1, 2, -1, 3, -2))      # scale degrees 0 1 3 2 5 3
    thin = simplified(motif, 0.8)
    assert sum(thin.rhythm) == sum(motif.rhythm) and len(thin.rhythm) / sum(thin.rhythm) <= 0.8
    degrees = np.cumsum((0, *thin.steps))
    onsets = np.cumsum((0, *thin.rhythm[:-1]))
    original = dict(zip(np.cumsum((0, *motif.rhythm[:-1])), np.cumsum((0, *motif.steps))))
    assert [original[t] for t in onsets] == list(degrees) == [0, 2, 5]   # the notes on beats 0, 1 and 2
    assert simplified(motif, 4.0) == motif
    assert simplified(Motif((0.25,), ()), 0.1) == Motif((0.25,), ())


def test_the_accompaniment_changes_colour_within_a_long_shot():
    """Over 40 s of one shot the low bass under every bar gives way, section by section, to a
    lighter scoring (bass line in the cellos' register, or one note opening the section) and
    comes back: the bass register and the number of bass notes differ between sections."""
    analysis = one_long_shot(40, restless(40), motion=0.4)
    for seed in range(3):
        score = compose_score(analysis, "tom-and-jerry", seed, 40.0)
        starts = [s.start_s for s in score.shots] + [40.0]
        low_bass, bass_count = [], []
        for a, b in zip(starts, starts[1:]):
            bass = [n for n in score.notes if n.role == "bass" and a <= n.start_s < b]
            low_bass.append(any(n.pitch < 48 for n in bass))
            bass_count.append(len(bass) / (b - a))
        assert any(low_bass) and not all(low_bass), f"seed {seed}: low bass by section {low_bass}"
        assert max(bass_count) > 1.5 * min(bass_count)


def test_a_whoosh_with_a_slide_whistle_gets_no_run_under_it():
    """A strong whoosh is the slide whistle's; a weaker one gets the xylophone run instead."""
    strong, weak = (48, "whoosh", 0.9, 60), (192, "whoosh", 0.52, 204)
    score = compose_score(one_long_shot(12, (strong, weak), motion=0.4), "tom-and-jerry", 0, 12.0)
    for (frame, _, _, end), whistled in ((strong, True), (weak, False)):
        a, b = frame / 24, end / 24
        runs = [n for n in score.notes if n.role == "run" and a - 1e-9 <= n.start_s < b]
        whistles = [n for n in score.notes if n.role == "foley:whistle" and abs(n.start_s - a) < 1e-9]
        assert (len(whistles), bool(runs)) == ((1, False) if whistled else (0, True))


def dashes(seconds: int, every: int) -> tuple[tuple[int, str, float, int], ...]:
    """A chase as a detector reports it in a cartoon drawn dash by dash: a one-second run every
    `every` frames."""
    return tuple((f, "run", 0.8, f + 24) for f in range(12, seconds * 24 - 30, every))


@pytest.mark.parametrize("seed", range(4))
def test_a_chase_of_runs_does_not_tick(seed):
    """24 s of dashes, each with its xylophone run: the onset curve has no autocorrelation peak
    over 0.2 (runs clocked at even gaps measured 0.21-0.30 for three of these four seeds)."""
    audio = mixed(one_long_shot(24, dashes(24, 36), motion=0.5), seed)
    assert sm.periodicity(audio, SR) <= 0.2


def test_a_run_rushes_up_and_falls_away():
    """Runs alternate up and down; an upward run's notes come ever closer together into its top
    note, a downward run's spread out, and each lasts as long as its motion."""
    score = compose_score(one_long_shot(12, dashes(12, 72), motion=0.5), "tom-and-jerry", 0, 12.0)
    runs = []
    for frame, _, _, end in dashes(12, 72):
        notes = sorted((n for n in score.notes if n.role == "run" and frame / 24 - 1e-9 <= n.start_s < end / 24),
                       key=lambda n: n.start_s)
        runs.append(notes)
    assert len(runs) >= 3 and all(len(r) >= 5 for r in runs)
    for run in runs:
        gaps = np.diff([n.start_s for n in run])
        upward = run[-1].pitch > run[0].pitch
        assert np.all(np.diff(gaps) < 0) if upward else np.all(np.diff(gaps) > 0), (upward, gaps)
        assert run[-1].end_s - run[0].start_s == pytest.approx(1.0, abs=0.02)
    assert {run[-1].pitch > run[0].pitch for run in runs} == {True, False}


def test_a_scene_full_of_swings_whistles_now_and_then_the_strongest_first():
    """Eight strong swings two seconds apart: the slide whistle is a gag, so it plays over the
    strongest, and over no two swings within WHISTLE_GAP_S (6 s): here the two strongest alone, the
    others all lying closer to one of them; runs play over the others, never under it."""
    strengths = (0.7, 0.8, 0.95, 0.7, 0.75, 0.8, 0.9, 0.7)
    swings = tuple((24 + 48 * k, "whoosh", s, 24 + 48 * k + 10) for k, s in enumerate(strengths))
    score = compose_score(one_long_shot(17, swings, motion=0.5), "tom-and-jerry", 0, 17.0)
    whistled = sorted(n.start_s for n in score.notes if n.role == "foley:whistle")
    assert 5.0 in whistled and 13.0 in whistled   # the strongest swings (0.95 at 5 s, 0.9 at 13 s)
    assert whistled == [5.0, 13.0] and min(np.diff(whistled)) >= WHISTLE_GAP_S - 1e-9, whistled
    run_under = {frame / 24: any(n.role == "run" and frame / 24 - 1e-9 <= n.start_s < end / 24 for n in score.notes)
                 for frame, _, _, end in swings}
    assert not any(run_under[t] for t in whistled)
    assert sum(run_under.values()) >= 4


@pytest.mark.parametrize("seed", range(4))
def test_every_shot_opens_with_the_theme_whole(seed):
    """The tune one remembers: the first phrase after every cut (and the film's first) plays the
    score's motif note for note in its rhythm (thinned alike for a calm shot), with no note left
    out, in the new key; variations come after it."""
    from dubber.backends.score.compose import MODES, TEXTURES, TUNE_SLACK, Composer, ShotContext
    from dubber.backends.score.notation import Part
    from dubber.backends.score.tempo_map import build_tempo_map
    from dubber.styles import STYLES

    orchestra = STYLES["tom-and-jerry"].orchestra
    tempo = build_tempo_map([8.0], 16.0, [120.0, 132.0], (90.0, 150.0), np.random.default_rng(seed))
    composer = Composer(orchestra, tempo, np.random.default_rng(seed))
    for start, end, root in ((0.0, 8.0, 0), (8.0, 16.0, 3)):
        shot = ShotContext(start, end, 0.6, root, MODES["major"], Part(40), Part(43), Part(48), TEXTURES[0])
        composer.write_shot(shot, [], opens_shot=True)
        low, high = orchestra.notes_per_beat
        theme = simplified(composer.motif, TUNE_SLACK * (low + (high - low) * 0.6))
        tune = sorted((n for n in composer.notes if n.role == "melody" and start <= n.start_s < end),
                      key=lambda n: n.start_s)[:len(theme.rhythm)]
        onsets = [tempo.beat_at(n.start_s) - tempo.beat_at(start) for n in tune]
        assert len(tune) == len(theme.rhythm)
        assert np.allclose(onsets, np.cumsum((0.0, *theme.rhythm[:-1])), atol=1e-6), (onsets, theme.rhythm)
        assert all((n.pitch - root) % 12 in MODES["major"] for n in tune)


def test_a_still_shot_after_a_busy_one_opens_as_still_as_it_is():
    """The swell is read within each shot: the busy shot before a cut does not make the still
    one after it open loud (measured before: +20 velocity steps on its first half second)."""
    from dubber.backends.score.pace import motion_swell

    swell = motion_swell(np.r_[np.full(48, 0.9), np.full(48, 0.1)], 24.0, [(0.0, 2.0), (2.0, 4.0)])
    assert all(abs(swell(t)) < 1e-9 for t in np.arange(0.0, 4.0, 0.05))


def test_every_flurry_figure_climbs_or_falls_all_the_way():
    """Seven blows on one chord (a flurry of eight before its pay-off), for every pair of voices
    the figure can be given: each blow a chord tone past the one before, in one direction, never
    turning back (a vibraphone beside a xylophone shared too little range: it fell back after six)."""
    from dubber.backends.score.foley import SeriesFigure

    pairs = set()
    for seed in range(200):
        figure = SeriesFigure(np.random.default_rng(seed))
        pairs.add(figure.voices)
        pitches = [next(n.pitch for n in figure.blow(0.3 * k, 0.8, (0, 4, 7)) if not n.part.drums) for k in range(7)]
        steps = np.diff(pitches)
        assert np.all(steps > 0) or np.all(steps < 0), (seed, figure.voices, pitches)
    assert len(pairs) == 2


def test_a_shot_shorter_than_the_swell_window_is_scored():
    from dubber.backends.score.pace import motion_swell

    swell = motion_swell(np.r_[np.full(10, 0.2), np.full(14, 0.8), np.full(60, 0.4)], 24.0,
                         [(0.0, 10 / 24), (10 / 24, 1.0), (1.0, 3.5)])
    assert abs(swell(0.1)) < 1e-9 and abs(swell(0.5)) < 1e-9 and abs(swell(2.0)) < 1e-9


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("beats", [2, 3])
def test_a_theme_cut_short_by_a_change_of_key_closes_on_a_held_note(seed, beats):
    """A section too short for the whole theme (a long shot's key changes early) plays the
    theme's opening notes in its rhythm (in halved values where the plain ones leave fewer than
    two notes) and holds the last one, a tone of the chord under it, to the change of key: a
    phrase closed, instead of breaking off mid-figure and leaving the rest of the section to the
    pad."""
    from dubber.backends.score.compose import MODES, TEXTURES, TUNE_SLACK, Composer, ShotContext
    from dubber.backends.score.notation import Part
    from dubber.backends.score.tempo_map import build_tempo_map
    from dubber.styles import STYLES

    orchestra = STYLES["tom-and-jerry"].orchestra
    end_s = beats * 0.5                                   # at 120 bpm
    tempo = build_tempo_map([end_s], 6.0, [120.0, 120.0], (90.0, 150.0), np.random.default_rng(seed))
    composer = Composer(orchestra, tempo, np.random.default_rng(seed))
    low, high = orchestra.notes_per_beat
    theme = simplified(composer.motif, TUNE_SLACK * (low + (high - low) * 0.6))
    assert sum(theme.rhythm) > beats                      # the whole theme does not fit
    shot = ShotContext(0.0, end_s, 0.6, 0, MODES["major"], Part(40), Part(43), Part(48), TEXTURES[0])
    composer.write_shot(shot, [], opens_shot=True)
    tune = sorted((n for n in composer.notes if n.role == "melody"), key=lambda n: n.start_s)
    onsets = [tempo.beat_at(n.start_s) for n in tune]
    written = np.cumsum((0.0, *theme.rhythm))[:len(tune)]
    assert np.allclose(onsets, written, atol=1e-6) or np.allclose(onsets, written / 2, atol=1e-6), \
        (onsets, theme.rhythm)
    if (theme.rhythm[0] + theme.rhythm[1]) / 2 <= beats and min(theme.rhythm) >= 0.5:
        assert len(tune) >= 2, (onsets, theme.rhythm)     # its opening halved, not one long note
    last = tune[-1]
    assert last.end_s >= end_s - 0.1 * (end_s - last.start_s) - 1e-6, (last.start_s, last.end_s, theme.rhythm)
    chord = composer.chord_at(last.start_s)
    assert last.pitch % 12 in chord, (last.pitch, chord)


def _parallel_octaves(notes) -> tuple[int, int]:
    """(consecutive pairs of notes the tune and the bass strike together, of those pairs the ones
    where both are octaves (or unisons) and both voices move the same way)."""
    tune = {round(n.start_s, 3): n.pitch for n in notes if n.role == "melody"}
    together = [(tune[round(n.start_s, 3)], n.pitch) for n in sorted(notes, key=lambda n: n.start_s)
                if n.role == "bass" and round(n.start_s, 3) in tune]
    moving = [((t0, b0), (t1, b1)) for (t0, b0), (t1, b1) in zip(together, together[1:])]
    parallel = [p for p in moving if all((t - b) % 12 == 0 for t, b in p)
                and p[0][0] != p[1][0] and np.sign(p[1][0] - p[0][0]) == np.sign(p[1][1] - p[0][1])]
    return len(moving), len(parallel)


@pytest.mark.parametrize("style", ["tom-and-jerry", "silent-film", "noir"])
def test_the_tune_does_not_double_the_bass_in_parallel_octaves(style):
    """Where the bass strikes the bar's root, a tune drawn to the same root moves with it in
    octaves bar after bar, and the two outer voices sound as one (8-12 % of the moments they
    strike together, before). Over calm and busy scenes and several seeds, at most 3 %."""
    scenes = (one_long_shot(24, restless(24), motion=0.45), one_long_shot(24, (), motion=0.1),
              one_long_shot(24, restless(24)[::3], motion=0.25))
    moving = parallel = 0
    for analysis in scenes:
        for seed in range(4):
            score = compose_score(analysis, style, seed, analysis.media.duration_s)
            m, p = _parallel_octaves(score.notes)
            moving, parallel = moving + m, parallel + p
    # the two voices do meet often enough to judge (fewer in noir's long bars, where a one-bar
    # section in the open scoring leaves the bass out: 54 over these scores)
    assert moving >= 50, moving
    assert parallel <= 0.03 * moving, (parallel, moving)
