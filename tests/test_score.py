"""The score engine end to end: hits land on their frames in the rendered audio, determinism,
the backend contract, effects that never repeat, and a clear error for a bad SoundFont."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from dubber import sound_measures as sm
from dubber.backends import BackendOptions, available_backends, get_backend
from dubber.backends.base import check_render
from dubber.backends.score import ScoreBackend, compose_score
from dubber.errors import BackendUnavailable
from dubber.plan import make_plan
from vision.types import MediaInfo, Shot, VideoAnalysis, VisualEvent

NTSC = Fraction(24000, 1001)
SR = 48_000
# Irregularly spaced events, none on a cut, with the kinds vision reports.
EVENTS = ((31, "impact", 0.9), (70, "landing", 0.8), (101, "impact", 0.5), (163, "splash", 0.7),
          (205, "explosion", 1.0), (236, "impact", 0.7), (262, "flash", 0.6), (300, "impact", 0.9))
CUTS = (120, 190)


def analysis_with(events=EVENTS, cuts=CUTS, frames: int = 336, fps: Fraction = NTSC, motion: float = 0.4) -> VideoAnalysis:
    media = MediaInfo(path="v.mp4", duration_s=float(frames / fps), fps=fps, frame_count=frames, width=64, height=36)
    edges = [0, *cuts, frames]
    shots = tuple(Shot(i, a, b) for i, (a, b) in enumerate(zip(edges[:-1], edges[1:])))
    visual = tuple(VisualEvent(f, kind, s, f + 1) for f, kind, s in events)
    return VideoAnalysis(media=media, shots=shots, events=visual, motion=(motion,) * frames, captions=())


def render(analysis: VideoAnalysis, seed: int = 0, style: str = "tom-and-jerry"):
    from dubber.plan import PlanOptions

    plan = make_plan(analysis, PlanOptions(style=style, seed=seed))
    result = ScoreBackend().render(plan, analysis)
    check_render(plan, result)
    music = np.concatenate([c.stems["music"] for c in result.cues], axis=1)
    fx = np.concatenate([c.stems["fx"] for c in result.cues], axis=1)
    return plan, result, music, fx


@pytest.fixture(scope="module")
def rendered():
    return render(analysis_with())


def test_every_event_is_heard_within_one_frame_of_its_frame(rendered):
    plan, _, music, fx = rendered
    frame_s = float(1 / NTSC)
    found = sm.onsets(music + fx, SR)
    for frame, kind, _ in EVENTS:
        t = float(Fraction(frame) / NTSC)
        nearest = float(np.min(np.abs(found - t)))
        assert nearest <= frame_s, f"{kind} at frame {frame} ({t:.3f} s): nearest onset {nearest * 1000:.0f} ms away"


def test_sound_starts_at_the_event_not_before(rendered):
    """The effects stem is quiet just before each instantaneous event and loud just after it."""
    _, _, _, fx = rendered
    level = np.abs(fx).max(axis=0)
    for frame, kind, _ in EVENTS:
        at = round(Fraction(frame) / NTSC * SR)
        before = level[at - int(0.03 * SR):at - int(0.005 * SR)].max()
        after = level[at:at + int(0.06 * SR)].max()
        assert after > 4 * before, f"{kind} at frame {frame}: {before:.4f} before, {after:.4f} after"


def test_the_music_changes_key_at_every_cut_and_has_a_downbeat_there(rendered):
    plan, result, music, _ = rendered
    score = compose_score(analysis_with(), plan.style, plan.seed, plan.total_samples / SR)
    cut_s = [float(Fraction(c) / NTSC) for c in CUTS]
    starts = [s.start_s for s in score.shots]
    for t in cut_s:
        i = int(np.argmin(np.abs(np.asarray(starts) - t)))
        assert abs(starts[i] - t) < 1e-9 and score.shots[i].key_root != score.shots[i - 1].key_root
        assert any(abs(n.start_s - t) < 1e-6 for n in score.notes if n.role == "bass")
    found = sm.onsets(music, SR)
    assert all(np.min(np.abs(found - t)) <= float(1 / NTSC) for t in cut_s)


def test_a_shot_boundary_moved_in_the_plan_moves_the_music_with_it():
    """The timelines and subtitles cut where the plan's shots start; so does the score: a cut
    moved by hand from frame 120 to 140 sounds as if the picture cut there."""
    from dataclasses import replace

    from dubber.plan import PlanOptions

    analysis = analysis_with(events=())
    plan = make_plan(analysis, PlanOptions(seed=3))
    moved_to = 140
    cues = list(plan.cues)
    first, second = cues[0], cues[1]
    assert (first.end_frame, second.start_frame) == (120, 120)
    boundary = analysis.media.frame_to_sample(moved_to, SR)
    cues[0] = replace(first, end_frame=moved_to, num_samples=boundary - first.start_sample)
    cues[1] = replace(second, start_frame=moved_to, start_sample=boundary,
                      num_samples=second.start_sample + second.num_samples - boundary)
    edited = replace(plan, cues=tuple(cues))
    audio = lambda result: np.concatenate([c.stems["music"] for c in result.cues], axis=1)  # noqa: E731
    heard = audio(ScoreBackend().render(edited, analysis))
    cut_there = analysis_with(events=(), cuts=(moved_to, 190))
    as_if_cut_there = audio(ScoreBackend().render(make_plan(cut_there, PlanOptions(seed=3)), cut_there))
    assert np.array_equal(heard, as_if_cut_there)
    assert not np.array_equal(heard, audio(ScoreBackend().render(plan, analysis)))


def test_same_seed_same_audio_bit_for_bit_and_another_seed_differs(rendered):
    _, _, music, fx = rendered
    _, _, music2, fx2 = render(analysis_with())
    assert np.array_equal(music, music2) and np.array_equal(fx, fx2)
    _, _, music3, _ = render(analysis_with(), seed=1)
    assert not np.array_equal(music, music3)


def test_every_accepted_seed_gives_its_own_score():
    """Seeds run up to 2**63 - 1: one 2**32 above another must not wrap round to the same score."""
    _, _, music, _ = render(analysis_with())
    _, _, big, _ = render(analysis_with(), seed=2**32)
    _, _, biggest, _ = render(analysis_with(), seed=2**63 - 1)
    assert not np.array_equal(music, big) and not np.array_equal(big, biggest)


def test_consecutive_impacts_sound_different(rendered):
    _, _, _, fx = rendered
    impacts = [float(Fraction(f) / NTSC) for f, kind, _ in EVENTS if kind == "impact"]
    for a, b in zip(impacts, impacts[1:]):
        assert sm.hit_sameness(fx, SR, a, b) < 0.95


def test_a_flurry_of_blows_is_hit_blow_by_blow_without_a_click_track():
    blows = tuple((96 + 8 * k, "impact", 0.8) for k in range(9))   # a punch every 1/3 s
    _, _, music, fx = render(analysis_with(events=blows, cuts=(60,), frames=480, fps=Fraction(24)))
    mix = music + fx
    found = sm.onsets(mix, SR)
    assert all(np.min(np.abs(found - f / 24)) <= 0.1 for f, _, _ in blows)
    impacts = [f / 24 for f, _, _ in blows]
    assert max(sm.hit_sameness(fx, SR, a, b) for a, b in zip(impacts, impacts[1:])) < 0.95
    # The music holds a tremolo under the flurry instead of ticking along with it.
    assert sm.periodicity(music, SR) <= 0.2
    score = compose_score(analysis_with(events=blows, cuts=(60,), frames=480, fps=Fraction(24)), "tom-and-jerry", 0, 20.0)
    first, last = blows[0][0] / 24, blows[-1][0] / 24
    assert not [n for n in score.notes if n.role == "melody" and first < n.start_s <= last]
    bed = sorted((n for n in score.notes if n.role == "tremolo"), key=lambda n: n.start_s)
    assert bed[0].start_s < first and max(n.end_s for n in bed) > last
    starts = sorted({n.start_s for n in bed})
    assert all(max(n.end_s for n in bed if n.start_s < b) >= b for b in starts[1:]), "the bed has a gap"
    # The bed follows the harmony: more than one chord under a flurry that crosses bar lines.
    chords = {frozenset(n.pitch % 12 for n in bed if n.start_s == t) for t in starts}
    assert len(starts) > 1 and len(chords) > 1


def test_the_inside_of_a_flurry_is_a_figure_not_one_repeated_bonk():
    """Nine blows a third of a second apart: the tuned notes of the inner blows move every time,
    mostly one way (a ladder, not a loop), and no two blows in a row share their tick."""
    blows = tuple((96 + 8 * k, "impact", 0.8) for k in range(9))
    analysis = analysis_with(events=blows, cuts=(60,), frames=480, fps=Fraction(24))
    for seed in range(10):   # every pair of voices the figure can be given
        score = compose_score(analysis, "tom-and-jerry", seed, 20.0)
        inner = [f / 24 for f, _, _ in blows[:-1]]
        tuned, ticks = [], []
        for t in inner:
            at = [n for n in score.stem_notes("fx") if abs(n.start_s - t) < 1e-9]
            tuned += [n.pitch for n in at if not n.part.drums]
            ticks += [n.pitch for n in at if n.part.drums]
        assert len(tuned) == len(ticks) == len(inner)
        steps = np.diff(tuned)
        assert np.all(steps != 0), f"seed {seed}: a blow repeats the pitch before it: {tuned}"
        assert max(np.sum(steps > 0), np.sum(steps < 0)) >= len(steps) - 2, f"seed {seed}: not a figure: {tuned}"
        assert all(a != b for a, b in zip(ticks, ticks[1:]))
        programs = [n.part.program for t in inner for n in score.stem_notes("fx")
                    if abs(n.start_s - t) < 1e-9 and not n.part.drums]
        assert len(set(programs)) == 2 and all(a != b for a, b in zip(programs, programs[1:]))
        payoff = [n for n in score.stem_notes("fx") if abs(n.start_s - blows[-1][0] / 24) < 1e-9]
        assert any(n.part.drums and n.pitch == 49 for n in payoff), "the flurry's last blow lands on a crash"


def test_stems_have_the_contract_shape_and_the_manifest_names_the_bank(rendered):
    plan, result, music, fx = rendered
    assert result.backend == "score" and music.shape == fx.shape == (2, plan.total_samples)
    assert result.model_id == "soundfont:TimGM6mb.sf2"
    assert "SoundFont TimGM6mb.sf2, licence GPL-2.0" in result.notes[0]
    assert np.max(np.abs(music + fx)) <= 0.9 + 1e-6 and np.abs(music).max() > 0.01 and np.abs(fx).max() > 0.01


def test_the_manifest_records_the_bank_that_played_and_a_rerun_keeps_it(tmp_path, sample_24p, monkeypatch):
    """The manifest has a field of its own saying which SoundFont played the score: its name,
    licence, where it is, and its SHA-256 (checked here against the file itself), also when a
    rerun takes the analysis from the cache and plays the score again, to the same bytes."""
    import hashlib
    import json
    import shutil
    from pathlib import Path

    import dubber
    import vision
    from dubber.backends.score.render import default_soundfont_path

    clip = Path(shutil.copyfile(sample_24p[0], tmp_path / "clip.mp4"))
    bank = default_soundfont_path()
    for name in ("a", "b"):
        result = dubber.dub(clip, tmp_path / f"{name}.mp4", dubber.DubOptions(
            backend="score", cache_dir=str(tmp_path / "cache"), stems_dir=str(tmp_path / name)))
        recorded = json.loads(Path(result.outputs["manifest"]).read_text())["render"]["sound_bank"]
        assert recorded == {"name": "TimGM6mb.sf2", "licence": "GPL-2.0", "path": str(bank.resolve()),
                            "sha256": hashlib.sha256(bank.read_bytes()).hexdigest()}
        # The rerun must not look at the picture again: the analysis comes from the cache.
        monkeypatch.setattr(vision, "analyze", lambda *a, **k: pytest.fail("the video was analysed twice"))
    assert (tmp_path / "a" / "a.mix.wav").read_bytes() == (tmp_path / "b" / "b.mix.wav").read_bytes()
    assert not list((tmp_path / "cache").glob("render/*/cue-*.npz"))   # the score's audio is not kept


def test_registry_names_score_and_takes_a_soundfont(tmp_path):
    assert "score" in available_backends() and "sketch" not in available_backends()
    bad = tmp_path / "bank.sf2"
    bad.write_bytes(b"not a soundfont at all")
    with pytest.raises(BackendUnavailable, match="not a SoundFont 2 bank"):
        get_backend("score", BackendOptions(soundfont=str(bad)))
    with pytest.raises(BackendUnavailable, match="does not exist"):
        get_backend("score", BackendOptions(soundfont=str(tmp_path / "missing.sf2")))


def test_another_bank_is_used_when_given(tmp_path):
    from dubber.backends.score.render import default_soundfont_path

    copy = tmp_path / "MyBank.sf2"
    copy.write_bytes(default_soundfont_path().read_bytes())
    backend = get_backend("score", BackendOptions(soundfont=str(copy)))
    analysis = analysis_with(frames=96, cuts=(), events=((40, "impact", 0.9),))
    result = backend.render(make_plan(analysis), analysis)
    # The bytes are the default bank's, so its licence holds under any name.
    assert result.model_id == "soundfont:MyBank.sf2" and "MyBank.sf2, licence GPL-2.0" in result.notes[0]


def test_the_music_swells_with_the_action_within_a_shot():
    """One long shot, still for its first half and busy for its second: the band plays louder
    where things move (measured on the rendered music, the shot's overall energy being one)."""
    frames = 480
    analysis = analysis_with(events=(), cuts=(), frames=frames)
    motion = tuple(0.1 if f < frames // 2 else 0.7 for f in range(frames))
    analysis = VideoAnalysis(media=analysis.media, shots=analysis.shots, events=(), motion=motion, captions=())
    half = frames // 2 / float(NTSC)
    louder = []
    for seed in range(3):
        _, _, music, _ = render(analysis, seed=seed)
        mono = music.mean(axis=0)
        cut = int(half * SR)
        # leave a second either side of the change and the last second (the close)
        still = mono[int(1.0 * SR):cut - SR]
        busy = mono[cut + SR:mono.size - SR]
        louder.append(10 * np.log10(np.mean(busy ** 2) / np.mean(still ** 2)))
    assert min(louder) >= 2.0, np.round(louder, 1)


def test_no_events_and_no_cuts_still_gives_music_of_the_right_length():
    analysis = analysis_with(events=(), cuts=(), frames=120, motion=0.0)
    plan, _, music, fx = render(analysis)
    assert music.shape[1] == plan.total_samples and np.abs(music).max() > 0.01 and not np.any(fx)


def test_long_scores_render_in_chunks_with_every_note_in_place():
    from dubber.backends.score.notation import Note, Part, Room
    from dubber.backends.score.render import CHUNK_S, load_soundfont, render_notes

    times = [1.0, CHUNK_S - 0.05, CHUNK_S + 7.3, 2 * CHUNK_S + 12.0]
    notes = [Note(Part(0, "fx", drums=True), 38, t, t + 0.2, 120, "hit:impact") for t in times]
    rooms = [Room(0.0, 30), Room(CHUNK_S + 5.0, 90), Room(10 * CHUNK_S, 10)]   # one far past the end
    total = int((2 * CHUNK_S + 20.0) * SR)
    audio = render_notes(notes, rooms, load_soundfont(), total, SR)
    assert audio.shape == (2, total)
    found = sm.onsets(audio, SR)
    assert len(found) == len(times) and np.max(np.abs(found - np.asarray(times))) <= 0.02
    assert np.abs(audio[:, int((CHUNK_S - 0.05) * SR):int(CHUNK_S * SR) + 2400]).max() > 0.01   # across the seam


def test_effects_apart_are_synthesized_only_where_they_ring(monkeypatch):
    """The synthesizer costs as much time for silence as for sound: hits far apart are rendered
    as separate stretches, none past the film's end, and sound exactly where one render of the
    whole film puts them, with silence between."""
    from dubber.backends.score import render as synth
    from dubber.backends.score.notation import Note, Part, Room

    times = [1.0, 2.5, 12.0, 29.0]                       # the first two ring into each other
    notes = [Note(Part(0, "fx", drums=True), 38, t, t + 0.2, 120, "hit:impact") for t in times]
    total = 30 * SR                                        # the last hit rings past the end
    asked: list[float] = []
    real_smf = synth.smf_bytes
    monkeypatch.setattr(synth, "smf_bytes", lambda n, r, end_s: asked.append(end_s) or real_smf(n, r, end_s))
    audio = synth.render_notes(notes, [Room(0.0, 40)], synth.load_soundfont(), total, SR)
    assert len(asked) == 3
    assert sum(asked) <= (2.7 + synth.TAIL_S + 0.04) + (0.2 + synth.TAIL_S + 0.04) + 1.04   # not 30 s and more
    whole = synth.synthesize(real_smf(notes, [Room(0.0, 40)], total / SR), synth.load_soundfont())[:, :total]
    for t in times:
        # Each hit sounds as in the whole film's render, sample for sample, on the same block of
        # the synthesizer or the one beside it (its clock breaks ties at a block's start: 1.3 ms).
        at = int(t * SR)
        here = audio[:, at:at + 4800]
        assert np.abs(here).max() > 0.05
        assert min(np.abs(here - whole[:, at + shift:at + shift + 4800]).max() for shift in (-64, 0, 64)) < 1e-3
    quiet = audio[:, int(8.0 * SR):int(11.9 * SR)]
    assert np.abs(quiet).max() < 1e-4                       # rung out before the next stretch


def test_a_stretch_of_music_longer_than_a_chunk_is_cut_with_every_note_in_place():
    from dubber.backends.score.notation import Note, Part, Room
    from dubber.backends.score.render import CHUNK_S, load_soundfont, render_notes, stretches

    times = np.arange(0.5, 2 * CHUNK_S + 10.0, 1.5).tolist()   # never silent for long: chunks cut it
    notes = [Note(Part(0, "fx", drums=True), 38, t, t + 0.2, 120, "hit:impact") for t in times]
    cut = stretches(notes)
    assert len(cut) == 3 and all(s[1][-1].start_s - s[1][0].start_s < CHUNK_S for s in cut)
    assert [n for _, part, _ in cut for n in part] == notes
    total = int((2 * CHUNK_S + 12.0) * SR)
    audio = render_notes(notes, [Room(0.0, 30)], load_soundfont(), total, SR)
    found = sm.onsets(audio, SR)
    assert len(found) == len(times) and np.max(np.abs(found - np.asarray(times))) <= 0.02


def test_a_missing_soundfont_is_refused_before_any_work(tmp_path):
    from dubber.api import DubOptions, check_options
    from dubber.errors import InputError

    with pytest.raises(InputError, match="does not exist; pass an .sf2 file with --soundfont"):
        check_options(DubOptions(backend="score", soundfont=str(tmp_path / "none.sf2")))
