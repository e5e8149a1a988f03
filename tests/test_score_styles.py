"""Style instrumentation: each style's score is written for its own orchestra (read from the notes)."""
from __future__ import annotations

import numpy as np
import pytest

from dubber import sound_measures as sm
from dubber.backends.score import compose_score
from dubber.backends.score.compose import MODES, melody_range
from dubber.backends.score.notation import Note, Part, Room
from dubber.backends.score.render import RENDER_RATE, load_soundfont, smf_bytes, synthesize
from dubber.styles import BIG_HITS, KIND_SOUNDS, SMALL_HITS, STYLES

from test_score import analysis_with, render

PIANO, ORGAN, MUTED_TRUMPET, ALTO_SAX, TENOR_SAX = 0, 19, 59, 65, 66
PIZZICATO, XYLOPHONE, TIMPANI, ORCH_HIT = 45, 13, 47, 55
# Enough events and motion for runs, hits and several sections.
BUSY = ((20, "whoosh", 0.9), (31, "impact", 0.9), (70, "landing", 0.8), (101, "impact", 0.5), (150, "run", 0.9),
        (205, "explosion", 1.0), (236, "impact", 0.7), (262, "flash", 0.6), (290, "shake", 0.8), (300, "impact", 0.9))


def music_programs(style: str, seed: int = 0) -> set[int]:
    analysis = analysis_with(events=BUSY, frames=600)
    score = compose_score(analysis, style, seed, 600 / float(analysis.media.fps))
    return {n.part.program for n in score.notes if n.part.stem == "music"}


@pytest.mark.parametrize("style", sorted(STYLES))
def test_music_uses_only_the_style_orchestra(style):
    orchestra = STYLES[style].orchestra
    allowed = {*orchestra.melody, *orchestra.busy_melody, *orchestra.bass, *orchestra.harmony, *orchestra.runs,
               orchestra.suspense}
    used = set().union(*(music_programs(style, seed) for seed in range(3)))
    assert used and used <= allowed, used - allowed
    assert set(orchestra.modes) <= set(MODES)


def test_silent_film_is_piano_or_theatre_organ_only():
    assert set().union(*(music_programs("silent-film", s) for s in range(4))) <= {PIANO, ORGAN}


def test_noir_melody_is_muted_trumpet_or_saxophone():
    analysis = analysis_with(events=BUSY, frames=600, motion=0.1)
    for seed in range(3):
        score = compose_score(analysis, "noir", seed, 25.0)
        assert {n.part.program for n in score.notes if n.role == "melody"} <= {MUTED_TRUMPET, ALTO_SAX, TENOR_SAX, 56}


def test_tom_and_jerry_has_its_studio_orchestra_and_orchestral_hits():
    analysis = analysis_with(events=BUSY, frames=600, motion=0.7)
    programs, hits = set(), set()
    for seed in range(4):
        score = compose_score(analysis, "tom-and-jerry", seed, 25.0)
        programs |= {n.part.program for n in score.notes if n.part.stem == "music"}
        hits |= {n.part.program for n in score.notes if n.role.startswith("hit:") and not n.part.drums}
    assert {PIZZICATO, XYLOPHONE} & programs and 48 in programs          # pizzicato/xylophone, strings
    assert {TIMPANI, ORCH_HIT} <= hits


def test_nature_is_gentler_than_tom_and_jerry():
    analysis = analysis_with(events=BUSY, frames=600)
    loud = compose_score(analysis, "tom-and-jerry", 0, 25.0)
    soft = compose_score(analysis, "nature", 0, 25.0)

    def mean_hit_velocity(score):
        hits = [n.velocity for n in score.notes if n.role.startswith("hit:")]
        return sum(hits) / len(hits)

    assert mean_hit_velocity(soft) < mean_hit_velocity(loud)
    assert STYLES["nature"].orchestra.tempo_bpm[1] < STYLES["tom-and-jerry"].orchestra.tempo_bpm[1]


def every_hit_table():
    for style in STYLES.values():
        yield from (*style.orchestra.big_hits, *style.orchestra.small_hits,
                    *(h for _, hits in style.orchestra.kind_sounds for h in hits))
    yield from (*BIG_HITS, *SMALL_HITS, *(h for hits in KIND_SOUNDS.values() for h in hits))


def test_hit_tables_are_valid_general_midi():
    for hit in every_hit_table():
        assert hit.register in ("low", "mid", "high")
        for layer in hit.layers:
            assert 0 <= layer.program <= 127 and (not layer.drum or 35 <= layer.program <= 81)


def test_every_pitched_effect_layer_sounds_in_the_default_bank_across_its_register():
    """A layer may be played anywhere in its octave (the harmony and the shift pick the note); the
    default bank must sound there, lowest and highest note alike (its "Whistle" is silent above
    G5, which is why no effect uses it)."""
    from dubber.backends.score.foley import SERIES_VOICES, SLIDE_WHISTLE, series_band
    from dubber.backends.score.notation import Note, Part
    from dubber.backends.score.render import load_soundfont, render_notes

    bank = load_soundfont()
    wanted: set[tuple[int, int]] = set()
    for hit in every_hit_table():
        for layer in hit.layers:
            if not layer.drum:
                low = 12 * (layer.octave + 1)
                wanted |= {(layer.program, low), (layer.program, min(127, low + 11))}
    wanted |= {(voice, pitch) for pair in SERIES_VOICES for voice in pair for pitch in series_band(pair)}
    wanted |= {(SLIDE_WHISTLE, 72), (SLIDE_WHISTLE, 95)}     # the whistle's lowest start, highest end
    silent = []
    for program, pitch in sorted(wanted):
        audio = render_notes([Note(Part(program, "fx"), pitch, 0.0, 0.3, 100)], [], bank, 24_000, 48_000)
        if float(np.sqrt(np.mean(audio ** 2))) < 1e-3:
            silent.append((program, pitch))
    assert not silent, f"(program, pitch) pairs the default bank leaves silent: {silent}"


def test_every_layer_of_a_hit_is_heard_in_its_own_band():
    """A layer drowned by the others in every band is a sound nobody hears (the whoosh's breath
    under its pizzicato sat 12.7 dB under the rest of the hit in every octave band, the sci-fi
    impact's taiko 8.1 dB): in some octave band from 62.5 Hz to 16 kHz each layer comes within
    7 dB of the rest of its hit, in the default bank, played at a blow's usual strength."""
    from dubber.backends.score.foley import realise
    from dubber.backends.score.hitpoints import HitPoint
    from dubber.backends.score.render import load_soundfont, render_notes
    from dubber.styles import Hit

    bank, sr = load_soundfont(), 48_000
    point = HitPoint(0.05, "impact", 0.8, 0.1)
    edges = [62.5 * 2 ** k for k in range(9)]

    def bands(hit: Hit) -> np.ndarray:
        audio = render_notes(realise(hit, point, (0, 4, 7), 0, 1.0), [], bank, int(0.8 * sr), sr).mean(axis=0)
        power = np.abs(np.fft.rfft(audio[:sr // 2])) ** 2
        hz = np.fft.rfftfreq(sr // 2, 1 / sr)
        return np.array([10 * np.log10(power[(hz >= lo) & (hz < hi)].sum() + 1e-12) for lo, hi in zip(edges, edges[1:])])

    drowned = []
    for hit in {(h.name, h.layers): h for h in every_hit_table() if len(h.layers) > 1}.values():
        for i, layer in enumerate(hit.layers):
            rest = Hit(hit.name, hit.layers[:i] + hit.layers[i + 1:])
            margin = float(np.max(bands(Hit(hit.name, (layer,))) - bands(rest)))
            if margin < -7.0:
                drowned.append((hit.name, layer.program, layer.drum, round(margin, 1)))
    assert not drowned, drowned


# Blows a second or more apart (no flurry), strong and weak, over two shots.
BLOWS = tuple((f, "impact", s) for f, s in ((24, 0.9), (60, 0.4), (96, 0.8), (132, 0.3), (170, 0.95), (206, 0.5),
                                             (242, 0.7), (280, 0.35), (316, 0.85)))
ORCHESTRAL = {ORCH_HIT, TIMPANI, 61, 58, 60}   # orchestra hit, timpani, brass section, tuba, horns


@pytest.mark.parametrize("style", ["silent-film", "noir"])
def test_blows_are_played_by_the_style_band_not_the_cartoon_orchestra(style):
    """A silent film's pianist and trap drummer, a noir jazz band: no orchestral stab or timpani
    answers a blow there."""
    analysis = analysis_with(events=BLOWS, frames=340)
    used = set()
    for seed in range(4):
        score = compose_score(analysis, style, seed, 340 / float(analysis.media.fps))
        used |= {n.part.program for n in score.notes if n.role == "hit:impact" and not n.part.drums}
    assert used and not used & ORCHESTRAL, used & ORCHESTRAL
    if style == "silent-film":
        assert used <= {PIANO, 3}


@pytest.mark.parametrize("style", sorted(STYLES))
def test_blows_sit_over_the_music_alike_in_every_style(style):
    """Measured on the rendered stems: at every blow, the effects' first 80 ms against the music
    of the two seconds around it. A style whose bank instruments are quiet (a lone piano) must not
    get blows that jump 15 dB out of it, nor one whose hits are soft get blows lost under it.
    The style's balance is judged over the blows of four renders: in one render the middle blow
    of nine moves some 3 dB either way with what the tune plays on it (a held, accented wind note
    or a rest), and one render's median left the 2-10 dB band in 1 of 30 seeds (nature) to 1 in 5
    (noir, sci-fi) before any of these styles changed."""
    analysis = analysis_with(events=BLOWS, frames=340)

    def rms(x):
        return float(np.sqrt(np.mean(np.square(x)) + 1e-12))

    over = []
    for seed in range(1, 5):
        plan, _, music, fx = render(analysis, seed=seed, style=style)
        rate = plan.sample_rate
        for frame, _, _ in BLOWS:
            t = int(round(float(analysis.media.frame_time(frame)) * rate))
            over.append(20 * np.log10(rms(fx[:, t:t + int(0.08 * rate)]) / rms(music[:, max(0, t - rate):t + rate])))
    assert 2.0 <= float(np.median(over)) <= 10.0, (style, np.round(over, 1))


@pytest.mark.parametrize("program", [66, 65, 59, 72, 13])   # tenor and alto sax, muted trumpet, piccolo, xylophone
def test_a_tune_is_written_within_its_instrument_compass(program):
    """A tune written above a tenor saxophone's compass was folded down an octave note by note
    when played, leaping a ninth and back where it crossed the top: the tune is written where
    its instrument plays, and never on a key the default bank leaves silent (alto sax E4)."""
    from dubber.backends.score.compose import MODES, TEXTURES, Composer, ShotContext
    from dubber.backends.score.notation import PLAYABLE, SILENT_KEYS, Part
    from dubber.backends.score.tempo_map import build_tempo_map

    low, high = PLAYABLE[program]
    for seed in range(4):
        tempo = build_tempo_map([], 30.0, [110.0], (70.0, 140.0), np.random.default_rng(seed))
        composer = Composer(STYLES["noir"].orchestra, tempo, np.random.default_rng(seed))
        for start, end, root in ((0.0, 10.0, 4), (10.0, 20.0, 9), (20.0, 30.0, 2)):
            shot = ShotContext(start, end, 0.7, root, MODES["dorian"], Part(program), Part(32), Part(0), TEXTURES[0])
            composer.write_shot(shot, [], opens_shot=True)
        tune = [n.pitch for n in composer.notes if n.role == "melody"]
        assert tune and all(low <= p <= high for p in tune), (program, sorted(set(tune)))
        assert not set(tune) & SILENT_KEYS.get(program, set())


@pytest.mark.parametrize("program", sorted({*STYLES["tom-and-jerry"].orchestra.melody,
                                            *STYLES["tom-and-jerry"].orchestra.busy_melody}))
def test_a_held_tune_note_is_heard_as_one_note(program):
    """A tune note held for two seconds in the default bank sounds as one onset, not a string of
    them, low, middle and high in the tune's range: an instrument whose sample swells with a
    recorded vibrato (here the bank's flute gives 10-13 onsets, its oboe up to 9) makes every
    long note of a calm tune read as a flurry of notes that nothing on screen asks for."""
    low, high = melody_range(program)
    start_s, end_s = 0.5, 2.5
    for pitch in (low + (high - low) // 4, (low + high) // 2, high - (high - low) // 4):
        note = Note(Part(program), pitch, start_s, end_s, 90, "melody")
        audio = synthesize(smf_bytes([note], [Room(0.0, 0)], end_s + 1.0), load_soundfont())
        found = sm.onsets(audio, RENDER_RATE)
        # (the key's release may read as an onset of its own, at the note's end)
        held = found[(found > start_s - 0.05) & (found < end_s - 0.1)]
        assert len(held) == 1, f"program {program}, key {pitch}: onsets at {np.round(held, 2).tolist()} s in one note"
