"""Mixing: sample-exact placement, joins, ducking, loudness and true peak."""
from __future__ import annotations

import numpy as np
import pyloudnorm
import pytest
from scipy import signal

from dubber.mix import END_FADE_MS, MixOptions, mix
from dubber.options import LOUDNESS_PRESETS
from dubber.types import Cue, CueAudio, DubPlan, RenderResult

SR = 48_000


def make_plan(bounds: list[int], parts: tuple[int, ...] = ()) -> DubPlan:
    """Cues between consecutive sample bounds; `parts` marks cues continuing the previous shot."""
    cues, shot = [], -1
    for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        split = i in parts
        shot = shot if split else shot + 1
        part = (cues[-1].part + 1) if split else 0
        cues.append(Cue(i, shot, 0, 1, a, b - a, "", "", 0, part, 1))
    # Shots that were split: every part says how many parts its shot has.
    counts = {c.shot_index: sum(1 for d in cues if d.shot_index == c.shot_index) for c in cues}
    cues = [Cue(**{**c.to_dict(), "parts": counts[c.shot_index]}) for c in cues]
    return DubPlan(SR, bounds[-1], "24/1", "tom-and-jerry", 0, "", tuple(cues))


def make_render(plan: DubPlan, clips: list[np.ndarray], stem: str = "dub") -> RenderResult:
    cues = tuple(CueAudio(c.index, c.start_sample, {stem: clip.astype(np.float32)}) for c, clip in zip(plan.cues, clips))
    return RenderResult(backend="test", sample_rate=SR, cues=cues)


def music_like(num_samples: int, seed: int) -> np.ndarray:
    """Tones with note envelopes plus sharp hits: a crest factor that needs a limiter."""
    rng = np.random.default_rng(seed)
    t = np.arange(num_samples) / SR
    out = np.zeros((2, num_samples))
    for start in range(0, num_samples, SR // 4):
        f = 110 * 2 ** (rng.integers(0, 24) / 12)
        env = np.exp(-np.clip(t - start / SR, 0, None) / 0.3) * (t >= start / SR)
        out += np.sin(2 * np.pi * f * t) * env * rng.uniform(0.05, 0.2)
    crash = signal.butter(4, 14_000, "low", fs=SR, output="sos")  # recorded crashes are band-limited
    for hit in rng.integers(0, num_samples - 2000, 6):
        burst = signal.sosfilt(crash, rng.standard_normal(2000)) * np.exp(-np.arange(2000) / 200)
        out[:, hit:hit + 2000] += burst * 0.5
    return out.astype(np.float32)


def true_peak_resample_poly(x: np.ndarray) -> float:
    """dBTP by scipy's polyphase 4x interpolator (the mix module does its own filtering)."""
    up = signal.resample_poly(x.astype(np.float64), 4, 1, axis=-1)
    return 20 * np.log10(np.abs(up).max())


def test_loudness_presets():
    assert LOUDNESS_PRESETS["ebu-r128"] == -23.0 and LOUDNESS_PRESETS["atsc-a85"] == -24.0
    assert MixOptions().lufs == -16.0 and MixOptions().true_peak_db == -1.0


@pytest.mark.parametrize("target", [-16.0, -23.0])
def test_loudness_and_true_peak_targets(target):
    plan = make_plan([0, 3 * SR + 17, 7 * SR + 3, 10 * SR + 1])
    render = make_render(plan, [music_like(c.num_samples, i) for i, c in enumerate(plan.cues)])
    track = mix(render, plan, MixOptions(lufs=target))
    assert track.mix.shape == (2, plan.total_samples) and track.mix.dtype == np.float32
    measured = pyloudnorm.Meter(SR).integrated_loudness(track.mix.T.astype(np.float64))
    assert abs(measured - target) <= 0.5
    assert abs(track.integrated_lufs - measured) < 0.01
    assert true_peak_resample_poly(track.mix) <= -1.0
    assert track.true_peak_dbtp <= -1.0


def test_cue_first_sample_lands_on_its_start_sample():
    bounds = [0, 12_345, 30_001, 30_002 + 20_000, 96_007]
    plan = make_plan(bounds)
    rng = np.random.default_rng(3)
    clips = []
    for c in plan.cues:
        clip = rng.standard_normal((2, c.num_samples)).astype(np.float32) * 0.01
        clip[:, 0] = 0.8   # the impulse: a cue's first sample
        clips.append(clip)
    track = mix(make_render(plan, clips), plan, MixOptions(lufs=-30.0))
    assert track.total_samples == bounds[-1]
    for cue in plan.cues:
        lo = max(0, cue.start_sample - 200)
        for audio in (track.stems["dub"], track.mix):
            assert lo + int(np.argmax(np.abs(audio[0, lo:cue.start_sample + 200]))) == cue.start_sample


def test_cut_join_fades_the_outgoing_tail_only_within_the_crossfade():
    plan = make_plan([0, SR, 2 * SR])
    t = np.arange(SR) / SR
    tone = np.stack([np.sin(2 * np.pi * 300 * t)] * 2) * 0.5
    track = mix(make_render(plan, [tone, np.zeros((2, SR))]), plan, MixOptions(lufs=-20.0))
    dub = track.stems["dub"]
    gain = 10 ** (track.settings["gain_db"] / 20)
    fade = int(0.05 * SR)
    assert np.allclose(dub[:, :SR], tone * gain, atol=1e-5)        # the cue itself untouched
    assert np.abs(dub[:, SR + fade:]).max() == 0                   # nothing past the crossfade
    tail = dub[0, SR:SR + fade]
    assert abs(tail[0]) > 0.5 * abs(dub[0, SR - 1])                # no chop at the cut ...
    assert np.abs(tail[-fade // 10:]).max() < 0.2 * gain * 0.5     # ... but faded by its end
    assert np.abs(np.diff(dub[0, SR - 50:SR + 50])).max() < 2.5 * np.abs(np.diff(dub[0, :SR])).max()


def test_split_join_is_an_equal_power_crossfade():
    plan = make_plan([0, 2 * SR, 4 * SR], parts=(1,))
    t = np.arange(2 * SR) / SR
    a = np.stack([np.sin(2 * np.pi * 220 * t)] * 2) * 0.3
    b = np.stack([np.sin(2 * np.pi * 330 * t + 1.0)] * 2) * 0.3
    track = mix(make_render(plan, [a, b]), plan, MixOptions(lufs=-20.0, split_crossfade_ms=1000.0))
    dub = track.stems["dub"][0] / 10 ** (track.settings["gain_db"] / 20)
    assert abs(dub[2 * SR]) < 0.02                                 # incoming starts faded down

    def level(segment, freq):
        spectrum = np.abs(np.fft.rfft(segment * np.hanning(segment.size)))
        return spectrum[int(round(freq * segment.size / SR))]

    middle, after = dub[2 * SR + 20_000:2 * SR + 28_000], dub[3 * SR + 1000:3 * SR + 9000]
    assert level(middle, 220) > 0.3 * level(middle, 330)          # both playing mid-fade
    assert level(after, 220) < 0.01 * level(after, 330)            # only the new part after it


def test_a_continuous_render_sliced_into_cues_is_left_as_rendered():
    plan = make_plan([0, 20_011, 48_000])
    t = np.arange(48_000) / SR
    whole = (np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 550 * t)]) * 0.3).astype(np.float32)
    clips = [whole[:, c.start_sample:c.end_sample] for c in plan.cues]
    track = mix(make_render(plan, clips), plan, MixOptions(lufs=-20.0))
    gain = 10 ** (track.settings["gain_db"] / 20)
    end = int(END_FADE_MS * SR / 1000)    # the programme's last milliseconds fade out
    assert np.allclose(track.stems["dub"][:, :-end], whole[:, :-end] * gain, atol=1e-6)
    assert track.settings["seamless_joins"] == 1


def test_the_programme_ends_without_a_click():
    """A note still sounding on the last frame fades to silence over the last 20 ms: the last
    sample is silent and the last 5 ms are far below the note, while everything before those
    20 ms is as placed; the stems still sum to the mix."""
    plan = make_plan([0, SR, 2 * SR])
    t = np.arange(SR) / SR
    loud = [(np.stack([np.sin(2 * np.pi * f * t)] * 2) * 0.4).astype(np.float32) for f in (220, 330)]
    track = mix(make_render(plan, loud), plan, MixOptions(lufs=-20.0))
    gain = 10 ** (track.settings["gain_db"] / 20)
    out = track.stems["dub"] / gain
    end = int(END_FADE_MS * SR / 1000)
    assert abs(out[:, -1]).max() < 1e-6
    assert np.sqrt(np.mean(out[:, -SR // 200:] ** 2)) < 0.1 * np.sqrt(np.mean(out[:, -SR // 10:-end] ** 2))
    assert np.allclose(out[:, SR + 2400:-end], loud[1][:, 2400:-end], atol=1e-5)
    assert np.allclose(track.mix, sum(track.stems.values()), atol=1e-6)


@pytest.mark.parametrize("target", [-30.0, -14.0])
def test_stems_sum_to_the_mix(target):
    plan = make_plan([0, 2 * SR, 4 * SR])
    clips = [music_like(c.num_samples, i) for i, c in enumerate(plan.cues)]
    cues = tuple(CueAudio(c.index, c.start_sample, {"music": clip, "fx": clip[::-1] * 0.5})
                 for c, clip in zip(plan.cues, clips))
    track = mix(RenderResult("test", SR, cues), plan, MixOptions(lufs=target))
    assert set(track.stems) == {"music", "fx"}
    assert (track.settings["limiter_db"] > 1.0) == (target > -20)   # limited or not, the sum holds
    assert np.allclose(track.stems["music"] + track.stems["fx"], track.mix, atol=1e-5)


def test_original_is_ducked_under_the_new_track():
    plan = make_plan([0, 3 * SR, 6 * SR, 9 * SR])
    rng = np.random.default_rng(1)
    quiet = np.zeros((2, 3 * SR), dtype=np.float32)
    busy = rng.standard_normal((2, 3 * SR)).astype(np.float32) * 0.1
    original = rng.standard_normal((2, plan.total_samples)).astype(np.float32) * 0.1
    options = MixOptions(lufs=-20.0, original_gain_db=-12.0, duck_db=-8.0)
    track = mix(make_render(plan, [quiet, busy, quiet]), plan, options, original=original)
    bed = track.stems["original"]
    gain_db = track.settings["gain_db"]

    def rel_db(a, b):
        return 20 * np.log10(np.sqrt(np.mean(a ** 2)) / np.sqrt(np.mean(b ** 2)))

    calm = slice(SR // 2, 2 * SR)
    ducked = slice(int(3.7 * SR), int(5.3 * SR))
    assert abs(rel_db(bed[:, calm], original[:, calm]) - (-12.0 + gain_db)) < 0.3
    assert abs(rel_db(bed[:, ducked], bed[:, calm]) - (-8.0)) < 0.5
    # The duck lets go after the new track stops.
    later = slice(int(7.5 * SR), 9 * SR)
    assert abs(rel_db(bed[:, later], bed[:, calm])) < 0.5


def test_the_original_sits_steadily_under_the_score_and_dips_under_effects():
    """--keep-original under the score engine's stems: while the music plays the production sound
    sits steadily half of duck_db down (it does not pump with the notes), an effect dips it the
    whole of duck_db, and it comes back up once the soundtrack stops."""
    plan = make_plan([0, 4 * SR, 8 * SR, 12 * SR])
    rng = np.random.default_rng(4)
    t = np.arange(4 * SR) / SR
    notes = np.zeros(4 * SR)
    for k, start in enumerate(np.arange(0.0, 4.0, 0.3)):   # notes that swell and die away, loud and soft
        notes += np.sin(2 * np.pi * 220 * 2 ** (k % 5 / 12) * t) * np.exp(-np.clip(t - start, 0, None) / 0.12) \
            * (t >= start) * (0.3 if k % 2 else 0.05)
    music = np.stack([notes, notes]).astype(np.float32)
    quiet = np.zeros((2, 4 * SR), dtype=np.float32)
    blow = quiet.copy()
    blow[:, 2 * SR:2 * SR + SR // 4] = rng.standard_normal((2, SR // 4)) * 0.3   # an effect at 6 s
    cues = [CueAudio(0, 0, {"music": music, "fx": quiet}), CueAudio(1, 4 * SR, {"music": music, "fx": blow}),
            CueAudio(2, 8 * SR, {"music": quiet, "fx": quiet})]
    original = np.full((2, plan.total_samples), 0.05, dtype=np.float32)
    track = mix(RenderResult("test", SR, tuple(cues)), plan, MixOptions(duck_db=-8.0, original_gain_db=-12.0),
                original=original)
    # the duck alone: the bed's level less its own gain and the mix's static gain
    gain_db = 20 * np.log10(np.abs(track.stems["original"][0, :int(11.9 * SR)]) / 0.05) - track.settings["gain_db"] + 12
    per_tenth = gain_db.reshape(-1, SR // 10).mean(axis=1)   # 0.1 s steps, short of the programme's end fade
    under_music = np.r_[per_tenth[5:55], per_tenth[66:78]]   # 0.5-5.5 s and 6.6-7.8 s: music, no effect
    assert np.all(np.abs(under_music - (-4.0)) < 0.5), np.round(under_music, 2)
    assert per_tenth[60:62].max() < -7.5   # under the effect
    assert np.all(np.abs(per_tenth[100:]) < 0.5)   # from 2 s after the music stops


@pytest.mark.parametrize("original, muted", [(False, ()), (True, ()), (True, (1,))])
def test_the_mix_reports_each_pass_over_the_film(original, muted):
    """A film's mix takes minutes: it reports each pass (every stem placed, the bed ducked, the
    loudness measured, each gain pass), rising steadily to a done that equals its total."""
    plan = make_plan([0, 2 * SR, 4 * SR, 6 * SR])
    clips = [music_like(2 * SR, seed) for seed in range(3)]
    render = RenderResult(backend="test", sample_rate=SR, cues=tuple(
        CueAudio(c.index, c.start_sample, {"music": clip, "fx": 0.5 * clip}) for c, clip in zip(plan.cues, clips)))
    bed = np.random.default_rng(2).standard_normal((2, plan.total_samples)).astype(np.float32) * 0.05
    reports: list[tuple[int, int]] = []
    mix(render, plan, MixOptions(), original=bed if original else None, muted=muted,
        progress=lambda done, total: reports.append((done, total)))
    done = [d for d, _ in reports]
    assert done == list(range(1, len(reports) + 1)) and all(d <= t for d, t in reports)
    assert reports[-1][0] == reports[-1][1]
    placings = 2 if muted else 1
    assert len(reports) >= placings * (2 + original) + 2    # stems (and bed), the measurement, a pass


def test_mono_original_is_accepted():
    plan = make_plan([0, SR])
    original = np.random.default_rng(2).standard_normal((1, SR)).astype(np.float32) * 0.1
    track = mix(make_render(plan, [np.zeros((2, SR))]), plan, MixOptions(), original=original)
    assert track.stems["original"].shape == (2, SR)


def test_silence_is_left_silent_and_reported():
    plan = make_plan([0, SR, 2 * SR + 5])
    track = mix(make_render(plan, [np.zeros((2, c.num_samples)) for c in plan.cues]), plan, MixOptions())
    assert track.mix.shape == (2, 2 * SR + 5)
    assert not np.any(track.mix) and np.isneginf(track.integrated_lufs)
    assert track.settings["silent"] is True


def test_short_soundtrack_still_normalised():
    plan = make_plan([0, 9600])  # 0.2 s, shorter than one loudness block
    t = np.arange(9600) / SR
    clip = np.stack([np.sin(2 * np.pi * 500 * t)] * 2) * 0.01
    track = mix(make_render(plan, [clip]), plan, MixOptions(lufs=-20.0))
    assert track.mix.shape == (2, 9600) and np.isfinite(track.integrated_lufs)
    assert abs(track.integrated_lufs + 20.0) <= 0.5


def test_mismatched_inputs_are_rejected():
    plan = make_plan([0, SR])
    with pytest.raises(ValueError):
        mix(make_render(plan, [np.zeros((2, SR - 1))]), plan)
    with pytest.raises(ValueError):
        mix(RenderResult("test", 44_100, make_render(plan, [np.zeros((2, SR))]).cues), plan)
    with pytest.raises(ValueError):
        mix(make_render(plan, [np.zeros((2, SR))]), plan, original=np.zeros((2, SR + 1)))
    with pytest.raises(ValueError):
        MixOptions(true_peak_db=0.5)


@pytest.mark.parametrize("preset", ["web", "atsc-a85"])
def test_score_render_meets_loudness_presets(preset):
    from fractions import Fraction

    from dubber.backends.score import ScoreBackend
    from vision.types import MediaInfo, Shot, VideoAnalysis, VisualEvent

    fps, frames = Fraction(25), 200
    media = MediaInfo(path="v.mp4", duration_s=8.0, fps=fps, frame_count=frames, width=64, height=36)
    analysis = VideoAnalysis(media=media, shots=(Shot(0, 0, 90), Shot(1, 90, 200)),
                             events=(VisualEvent(40, "impact", 1.0, 41), VisualEvent(150, "flash", 0.7, 151)),
                             motion=tuple(np.linspace(0, 1, frames)), captions=())
    bounds = [media.frame_to_sample(f, SR) for f in (0, 90, 200)]
    plan = make_plan(bounds)
    track = mix(ScoreBackend().render(plan, analysis), plan, MixOptions(lufs=LOUDNESS_PRESETS[preset]))
    measured = pyloudnorm.Meter(SR).integrated_loudness(track.mix.T.astype(np.float64))
    assert abs(measured - LOUDNESS_PRESETS[preset]) <= 0.5
    assert true_peak_resample_poly(track.mix) <= -1.0


def test_an_atsc_delivery_peaks_at_most_minus_two_dbtp():
    """--lufs atsc is A/85: -24 LUFS with true peaks at or under -2 dBTP (measured here by scipy's
    4x interpolation), where the other targets keep -1 dBTP."""
    from dubber.options import resolve_lufs, resolve_true_peak

    assert [resolve_true_peak(v) for v in ("atsc", "atsc-a85", "ebu", "web", -18)] == [-2.0, -2.0, -1.0, -1.0, -1.0]
    plan = make_plan([0, 6 * SR])
    loud = music_like(6 * SR, seed=5)
    track = mix(make_render(plan, [loud]), plan, MixOptions(lufs=resolve_lufs("atsc"),
                                                            true_peak_db=resolve_true_peak("atsc")))
    assert true_peak_resample_poly(track.mix) <= -2.0
    assert abs(pyloudnorm.Meter(SR).integrated_loudness(track.mix.T.astype(np.float64)) + 24.0) <= 0.5


def test_true_peak_ceiling_holds_even_when_loudness_cannot_be_reached():
    # Two clicks in silence: no gain can make this -16 LUFS without breaking the ceiling.
    plan = make_plan([0, 2 * SR])
    clip = np.zeros((2, 2 * SR), dtype=np.float32)
    clip[:, [SR // 2, SR]] = 0.5
    track = mix(make_render(plan, [clip]), plan, MixOptions())
    assert true_peak_resample_poly(track.mix) <= -1.0
    assert track.settings["gain_db"] < 80 and track.settings["limiter_db"] < 20  # no runaway gain
    assert np.allclose(track.stems["dub"], track.mix, atol=1e-6)


@pytest.mark.parametrize("against, own, reachable", [(0.4, 0.5, True), (0.7, 0.3, False)])
def test_stems_that_cancel_in_the_mix_stay_under_the_ceiling(against, own, reachable):
    # Effects partly in opposite phase to the music: the sum is quieter than either stem, so
    # gaining the sum to the target alone would push each stem past the ceiling or full scale.
    plan = make_plan([0, 3 * SR, 6 * SR])
    music = [music_like(c.num_samples, i) for i, c in enumerate(plan.cues)]
    fx = [-against * m + own * music_like(m.shape[-1], 10 + i) for i, m in enumerate(music)]
    cues = tuple(CueAudio(c.index, c.start_sample, {"music": m, "fx": f})
                 for c, m, f in zip(plan.cues, music, fx))
    track = mix(RenderResult("test", SR, cues), plan, MixOptions(lufs=-14.0))
    for name, stem in track.stems.items():
        assert np.abs(stem).max() < 0.9, name
        assert true_peak_resample_poly(stem) <= -0.95, name
    assert true_peak_resample_poly(track.mix) <= -1.0
    assert np.allclose(track.stems["music"] + track.stems["fx"], track.mix, atol=1e-5)
    measured = pyloudnorm.Meter(SR).integrated_loudness(track.mix.T.astype(np.float64))
    # Loudness gives way only when the stems would need more than the deepest allowed limiting.
    assert (abs(measured - -14.0) <= 0.5) == reachable, measured


def test_a_minute_of_stems_meets_streaming_and_broadcast_targets():
    # A minute of music and effects (the limiter's block-wise peak search must find every
    # over-the-ceiling peak, not only those in the first blocks). Mixing speed is a benchmark
    # question (bench/pipeline.py), not a test.
    plan = make_plan([0, 20 * SR, 40 * SR, 60 * SR])

    def stem(seed: int) -> np.ndarray:   # 20 s: a 5 s phrase played four times
        return np.tile(music_like(5 * SR, seed), (1, 4))

    cues = tuple(CueAudio(c.index, c.start_sample, {"music": stem(i), "fx": 0.5 * stem(10 + i)[:, ::-1].copy()})
                 for i, c in enumerate(plan.cues))
    for target in (-16.0, -23.0):
        track = mix(RenderResult("test", SR, cues), plan, MixOptions(lufs=target))
        measured = pyloudnorm.Meter(SR).integrated_loudness(track.mix.T.astype(np.float64))
        assert abs(measured - target) <= 0.5 and true_peak_resample_poly(track.mix) <= -1.0
        for name, audio in track.stems.items():
            assert true_peak_resample_poly(audio) <= -1.0, name


def test_a_muted_cue_that_opens_on_a_hit_after_silence_is_silent_from_its_first_sample():
    """A shot muted to drop its wrong hit: the hit on its first frame does not sound, even for
    the crossfade's length, when the cue before it ends in silence (nothing there to carry on)."""
    plan = make_plan([0, 2 * SR, 4 * SR])
    before = music_like(2 * SR, 1)
    before[:, -SR // 10:] = 0.0   # the first cue has died away before the cut
    hit = np.zeros((2, 2 * SR), dtype=np.float32)
    hit[:, :2000] = np.random.default_rng(3).standard_normal(2000) * np.exp(-np.arange(2000) / 400) * 0.8
    track = mix(make_render(plan, [before, hit]), plan, MixOptions(), muted=(1,))
    assert np.max(np.abs(track.mix[:, 2 * SR:])) == 0.0


def test_the_loudness_loop_measures_each_pass_as_the_whole_gained_track_measures():
    """Each gain-and-limit pass measures loudness by filtering again only around the limiter's
    spans; the figure must be the one a full K-weighted measurement of the gained track gives,
    with limited peaks on chunk edges, near the end, and a trim applied."""
    from dubber.loudness import LOUDNESS_CHUNK_HOPS, GATE_HOP_S, GainCurve, _KWeighted, track_lufs
    from dubber.media.tracks import new_track

    n = 17 * SR + 123
    audio = music_like(n, 5)
    chunk = int(GATE_HOP_S * SR) * LOUDNESS_CHUNK_HOPS
    track = new_track("mix", 2, n)
    track.write(0, audio)
    curve = new_track("limiter", 1, n)
    spans = [(chunk - 3000, chunk + 4000), (2 * chunk + 10, 2 * chunk + 9000), (n - 5000, n)]
    for a, b in spans:
        dip = 1.0 - 0.6 * np.hanning(b - a)   # the limiter pulls down and lets go within its span
        curve.write(a, dip[None, :].astype(np.float32))
    weighted = _KWeighted(track, SR)
    assert abs(weighted.lufs - track_lufs(track, SR)) < 1e-9
    for gain_db, trim in ((0.0, 1.0), (7.5, 1.0), (-4.0, 0.8)):
        gain = GainCurve(n, gain_db, curve, spans, trim=trim)
        whole = pyloudnorm.Meter(SR).integrated_loudness((audio * gain.read(0, n)).T.astype(np.float64))
        assert abs(weighted.lufs_under(gain) - whole) < 1e-4
        assert abs(weighted.lufs_under(gain) - track_lufs(track, SR, gain)) < 1e-6
