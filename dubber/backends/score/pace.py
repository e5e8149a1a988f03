"""How busy the picture is, as the music reads it: a shot's energy (its tempo, density and
texture follow it) and the swell and hush of the action within the shot (its dynamics follow it).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .hitpoints import HitPoint

SWELL_S = 1.0               # the music's dynamics follow the picture's motion averaged over this long ...
SWELL_SPAN = 0.2            # ... a moment this much busier (or stiller) than its shot's average (curve units) ...


def shot_energy(motion: np.ndarray, events: list[HitPoint], start_s: float, end_s: float, fps: float) -> float:
    """0..1: how busy a shot is, from its motion curve and how many events it has per second."""
    a, b = int(start_s * fps), max(int(start_s * fps) + 1, int(end_s * fps))
    moving = float(np.mean(motion[a:b])) if motion[a:b].size else 0.0
    rate = sum(1 for e in events if start_s <= e.time_s < end_s) / max(end_s - start_s, 0.5)
    return float(np.clip(0.6 * moving + 0.25 * rate, 0.0, 1.0))


def motion_swell(motion: np.ndarray, fps: float, shots: list[tuple[float, float]]) -> Callable[[float], float]:
    """-1..1 at a time: how much busier the picture is then (its motion curve averaged over
    SWELL_S) than on average in its shot, in units of SWELL_SPAN. The shot's overall level is
    the composer's already (`shot_energy`); this is the swell and hush within it, as a
    conductor follows the action on the screen."""
    if motion.size == 0 or fps <= 0:
        return lambda time_s: 0.0
    window = np.ones(max(1, int(round(SWELL_S * fps))))
    swell = np.zeros(motion.size)
    for start, end in shots:   # slices, not masks: a feature film has a thousand shots
        inside = slice(int(np.ceil(start * fps - 1e-6)), int(np.ceil(end * fps - 1e-6)))
        part = motion[inside]
        if part.size:
            # averaged within the shot, over the frames there are: a busy shot's motion does not
            # swell the first bars of a still one after the cut
            near = window[:part.size]   # ("same" gives the longer of the two: a shot under a second long)
            smooth = np.convolve(part, near, mode="same") / np.convolve(np.ones_like(part), near, mode="same")
            swell[inside] = np.clip((smooth - smooth.mean()) / SWELL_SPAN, -1.0, 1.0)

    def at(time_s: float) -> float:
        return float(swell[int(np.clip(time_s * fps, 0, swell.size - 1))])
    return at
