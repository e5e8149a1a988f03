"""The sound measures on signals whose answer is known by construction."""
from __future__ import annotations

import numpy as np
import pytest

from dubber import sound_measures as sm

SR = 48_000


def clicks(times_s, total_s: float, freq: float = 1000.0, seed: int = 0) -> np.ndarray:
    """Short decaying tone bursts at the given times over faint noise."""
    rng = np.random.default_rng(seed)
    audio = 1e-4 * rng.standard_normal(int(total_s * SR)).astype(np.float32)
    n = int(0.08 * SR)
    burst = (np.sin(2 * np.pi * freq * np.arange(n) / SR) * np.exp(-np.arange(n) / (0.015 * SR))).astype(np.float32)
    for t in times_s:
        a = int(round(t * SR))
        audio[a:a + n] += 0.5 * burst[:audio.size - a]
    return audio


def chord(pitches, seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return sum(np.sin(2 * np.pi * 440 * 2 ** ((p - 69) / 12) * t) for p in pitches).astype(np.float32) * 0.1


def test_onsets_are_found_where_the_bursts_start():
    times = [0.5, 1.23, 2.0, 2.71, 3.9]
    found = sm.onsets(clicks(times, 5.0), SR)
    assert len(found) == len(times)
    assert np.max(np.abs(found - np.asarray(times))) <= 0.02


def test_hit_rate_and_chance_rate_exact_values():
    onsets = [1.0, 1.05, 3.0]
    assert sm.hit_rate(onsets, [1.08, 2.0, 2.95, 10.0]) == 0.5
    # windows [0.9, 1.15] and [2.9, 3.1] cover 0.45 s of 10 s
    assert sm.chance_rate(onsets, 10.0) == pytest.approx(0.045)
    assert sm.chance_rate([0.02], 1.0) == pytest.approx(0.12)     # clipped at the start
    assert np.isnan(sm.hit_rate(onsets, []))


def test_a_metronome_is_periodic_and_random_onsets_are_not():
    metronome = clicks(np.arange(0.2, 19.8, 0.5), 20.0)
    rng = np.random.default_rng(3)
    scattered = clicks(np.sort(rng.uniform(0.2, 19.8, 40)), 20.0)
    assert sm.periodicity(metronome, SR) > 0.6
    assert sm.periodicity(scattered, SR) < 0.2


def test_one_chord_repeats_and_moving_keys_do_not():
    same = np.concatenate([chord((60, 64, 67), 1.0) for _ in range(10)])
    keys = [(60, 64, 67), (61, 65, 68), (66, 70, 73), (63, 67, 70), (68, 71, 75), (62, 66, 69), (65, 68, 72),
            (70, 73, 77), (64, 68, 71), (67, 71, 74)]
    moving = np.concatenate([chord(k, 1.0) for k in keys])
    assert sm.repetition(same, SR) > 0.95
    assert sm.repetition(moving, SR) < 0.5


def test_hit_sameness_tells_two_sounds_apart():
    audio = clicks([1.0, 2.0], 4.0, freq=1000.0) + clicks([3.0], 4.0, freq=150.0, seed=1)
    assert sm.hit_sameness(audio, SR, 1.0, 2.0) > 0.95
    assert sm.hit_sameness(audio, SR, 1.0, 3.0) < 0.5


def test_measure_reports_every_figure():
    times = [0.5, 1.5, 2.5]
    report = sm.measure(clicks(times, 4.0), SR, events_s=[0.5, 1.52, 3.5], marks_s=[2.5])
    assert report.hit == (True, True, False) and report.hit_rate == pytest.approx(2 / 3)
    assert report.unmatched_onsets == 0 and len(report.onsets_s) == 3
    assert set(report.to_dict()) >= {"hit_rate", "chance_rate", "periodicity", "repetition", "unmatched_onsets"}


@pytest.mark.parametrize("rate", [22_050, 11_025])
def test_onsets_keep_their_time_at_rates_whose_hop_is_not_whole_milliseconds(rate):
    """Knocks at 10, 150 and 290 s of a 300 s sound at 22.05 kHz are read at those times (the
    analysis step is 220 samples there, not quite 10 ms)."""
    n = 300 * rate
    audio = np.zeros(n, np.float32)
    for t in (10.0, 150.0, 290.0):
        start = int(t * rate)
        audio[start:start + rate // 20] = np.random.default_rng(int(t)).standard_normal(rate // 20) * 0.5
    found = sm.onsets(audio, rate)
    assert len(found) == 3 and np.allclose(found, [10.0, 150.0, 290.0], atol=0.02), found
