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


@pytest.mark.parametrize("seed", range(4))
def test_every_pitched_hit_is_a_tone_of_the_chord_the_music_plays_there(seed):
    """A stab lands in the key of the music under it: each pitched note of a hit is a tone of the
    bar's chord as the bass and pads play it, not a chord moved by some semitones (a hit a tone
    off the harmony sounds like a wrong note, not a gag). Tuned drums included."""
    from dubber.backends.score.compose import MODES
    from dubber.backends.score.engine import compose_score

    analysis = _analysis()
    score = compose_score(analysis, "tom-and-jerry", seed, FRAMES / 24)
    hits = [n for n in score.notes if n.role.startswith("hit:") and not n.part.drums]
    assert len(hits) >= 12
    for note in hits:
        section = max((s for s in score.shots if s.start_s <= note.start_s + 1e-9), key=lambda s: s.start_s)
        key = {(section.key_root + step) % 12 for step in MODES[section.mode]}
        assert note.pitch % 12 in key, (note, section)
        # the harmony written around it: the bass and pads of the moment
        around = {n.pitch % 12 for n in score.notes if n.role in ("bass", "harmony")
                  and n.start_s - 1e-6 <= note.start_s < n.end_s}
        if len(around) >= 3:
            assert note.pitch % 12 in around, (note, sorted(around))


def test_the_tune_sounds_a_tone_of_the_chord_on_each_downbeat():
    """Where the ear weighs the harmony (a bar's first beat), the tune plays a tone of the chord
    the bass and pads play there, not a tone a second away from it held against them. The pads
    voice the root and the third (compose.HARMONY_TONES), the bass the root: the chord's fifth
    is the tone a third above the pads' third."""
    from dubber.backends.score.engine import compose_score

    checked = 0
    for seed in range(6):
        score = compose_score(_analysis(), "tom-and-jerry", seed, FRAMES / 24)
        for tune in (n for n in score.notes if n.role == "melody"):
            # a bar's first beat: the bass and the pads' chord struck together there
            struck = [n for n in score.notes if n.role in ("harmony", "bass") and abs(n.start_s - tune.start_s) < 1e-6]
            pads = {n.pitch % 12 for n in struck if n.role == "harmony"}
            roots = {n.pitch % 12 for n in struck if n.role == "bass"} & pads
            if len(pads) >= 2 and roots:
                checked += 1
                root = roots.pop()
                third = next(pc for pc in pads if pc != root)
                chord = {root, third, (third + 3) % 12, (third + 4) % 12}
                assert tune.pitch % 12 in chord, (seed, tune, sorted(pads))
    assert checked >= 12


@pytest.mark.parametrize("seed", range(4))
def test_the_score_closes_on_its_tonic_and_keeps_the_tunes_voice_within_a_shot(seed):
    """The last bar is the home chord of the last key (the dominant before it), so the score ends
    rather than stops; and the tune changes instrument with the picture, at a cut, not at every
    key change inside a shot."""
    from dubber.backends.score.engine import compose_score

    score = compose_score(_analysis(), "tom-and-jerry", seed, FRAMES / 24)
    last = score.shots[-1]
    roots = sorted((n for n in score.notes if n.role == "bass"), key=lambda n: n.start_s)
    assert roots[-1].pitch % 12 == last.key_root, (roots[-1], last)
    cut_s = 180 / 24
    for before, after in zip(score.shots, score.shots[1:]):
        if abs(after.start_s - cut_s) > 1e-6:
            assert after.melody_program == before.melody_program, (before, after)


@pytest.mark.parametrize("style", ["tom-and-jerry", "noir", "silent-film", "nature", "sci-fi"])
def test_every_note_lies_where_its_instrument_can_play_it(style):
    """A piccolo below its lowest note, a glockenspiel an octave under its range or a trombone slide
    starting above its top are notes no player could give: each is written an octave over, the
    same pitch class, the glide inside the range as well."""
    from dubber.backends.score.engine import compose_score
    from dubber.backends.score.notation import PLAYABLE

    seen = 0
    for seed in range(3):
        score = compose_score(_analysis(), style, seed, FRAMES / 24)
        for note in score.notes:
            span = PLAYABLE.get(note.part.program) if not note.part.drums else None
            if span is None:
                continue
            seen += 1
            ends = (note.pitch, note.pitch + round(note.glide))
            assert span[0] <= min(ends) and max(ends) <= span[1], (style, seed, note)
    assert seen >= 10


@pytest.mark.parametrize("texture", range(3))
def test_the_last_chord_stands_on_its_root_in_every_texture(texture):
    """In the lightest texture the bass only opens a section; the film's last bar still gets its
    root under it, so the close is heard as one."""
    from dubber.backends.score.compose import MODES, TEXTURES, Composer, ShotContext
    from dubber.backends.score.notation import Part
    from dubber.backends.score.tempo_map import build_tempo_map
    from dubber.styles import STYLES

    tempo = build_tempo_map([], 10.0, [120.0], (90.0, 150.0), np.random.default_rng(0))
    composer = Composer(STYLES["tom-and-jerry"].orchestra, tempo, np.random.default_rng(1))
    shot = ShotContext(0.0, 10.0, 0.6, 2, MODES["major"], Part(40), Part(43), Part(48), TEXTURES[texture])
    composer.write_shot(shot, [], final=True)
    last_bar_start = float(tempo.beat_s[np.flatnonzero(composer.bar == composer.bar[tempo.beat_s < 10.0].max())[0]])
    bass = sorted((n for n in composer.notes if n.role == "bass"), key=lambda n: n.start_s)
    assert bass[-1].start_s >= last_bar_start - 1e-9 and bass[-1].pitch % 12 == 2, (bass[-1], last_bar_start)
