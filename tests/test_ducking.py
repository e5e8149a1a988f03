"""Envelope ducking: attack before the key, hold while it sounds, release when it stops."""
from __future__ import annotations

import numpy as np
import pytest

from dubber.ducking import Ducker, duck_gain

SR = 48_000


def burst(total_s: float, start_s: float, end_s: float, level: float = 0.5) -> np.ndarray:
    key = np.zeros((2, int(total_s * SR)), dtype=np.float32)
    a, b = int(start_s * SR), int(end_s * SR)
    key[:, a:b] = level * np.sin(2 * np.pi * 220 * np.arange(b - a) / SR)
    return key


def db(gain: np.ndarray) -> np.ndarray:
    return 20 * np.log10(gain)


def at(gain: np.ndarray, t: float) -> float:
    return float(db(gain)[int(t * SR)])


def test_dips_under_the_key_and_lets_go_after_hold_and_release():
    ducker = Ducker(depth_db=-12.0, attack_ms=20.0, hold_ms=100.0, release_ms=300.0)
    gain = duck_gain(burst(4.0, 1.0, 2.0), SR, ducker)
    assert at(gain, 0.5) == pytest.approx(0.0, abs=0.01)             # before: untouched
    assert at(gain, 1.0) <= -10.0                                      # look-ahead: most of the way down at the start
    assert at(gain, 1.5) == pytest.approx(-12.0, abs=0.2)            # held while the key sounds
    assert at(gain, 2.05) <= -11.0                                     # hold after it stops
    assert at(gain, 2.1 + 0.3) > -1.5                                  # released within release_ms
    assert at(gain, 3.5) == pytest.approx(0.0, abs=0.05)             # fully back: never stuck down
    assert np.all(gain <= 1.0 + 1e-6) and gain.dtype == np.float32 and gain.shape == (4 * SR,)


def test_attack_starts_before_the_key_and_release_is_gradual():
    gain = duck_gain(burst(3.0, 1.0, 1.5), SR, Ducker(depth_db=-10.0, attack_ms=40.0, hold_ms=0.0, release_ms=400.0))
    assert -10.0 < at(gain, 0.98) < -1.0                               # partway down 20 ms early
    after = db(gain)[int(1.52 * SR):int(2.0 * SR)]
    assert np.all(np.diff(after[::480]) >= -1e-6)                     # recovering monotonically
    assert at(gain, 1.6) < -3.0                                        # not a jump back


def test_a_soft_key_ducks_less_than_a_loud_one():
    key = burst(3.0, 0.5, 1.0, 0.5) + burst(3.0, 2.0, 2.5, 0.5 * 10 ** (-18 / 20))
    gain = duck_gain(key, SR, Ducker(depth_db=-12.0, threshold_db=-24.0))
    assert at(gain, 0.75) < at(gain, 2.25) < -0.5


def test_silence_and_empty_keys_leave_the_track_alone():
    assert np.all(duck_gain(np.zeros((2, SR), dtype=np.float32), SR) == 1.0)
    assert duck_gain(np.zeros((2, 0), dtype=np.float32), SR).shape == (0,)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        Ducker(depth_db=3.0)
    with pytest.raises(ValueError):
        Ducker(release_ms=-1.0)


def test_the_original_bed_comes_back_when_the_new_track_stops():
    """--keep-original: the bed under the mix recovers its level in a gap of the new track."""
    from test_mix import make_plan, make_render
    from dubber.mix import MixOptions, mix

    plan = make_plan([0, 6 * SR])
    new = burst(6.0, 0.5, 2.0) + burst(6.0, 4.5, 5.5)
    bed = np.full((2, 6 * SR), 0.05, dtype=np.float32)
    track = mix(make_render(plan, [new]), plan, MixOptions(duck_db=-10.0), original=bed)
    original = np.abs(track.stems["original"][0])
    under, gap = original[int(1.2 * SR)], original[int(3.5 * SR)]
    assert 20 * np.log10(gap / under) > 8.0
