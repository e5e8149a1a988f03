"""Envelope ducking, as on a dubbing stage: one track dips under another and comes back.

A side-chain `key` (the effects, or the whole new soundtrack) is measured in short frames. Where
it sounds, the ducked track's gain falls by up to `depth_db`, in proportion to how far the key is
over its threshold (a loud effect ducks more than a soft one). The dip starts `attack_ms` before
the key (look-ahead, so a hit is never smeared by a late dip), stays down while the key sounds and
for `hold_ms` after it, then recovers over `release_ms`: the duck lets go when the key stops.

    gain = duck_gain(key, sample_rate, Ducker(depth_db=-12))   # (samples,) linear, <= 1
    ducked = track * gain
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
from scipy.ndimage import maximum_filter1d

FRAME_MS = 5.0          # resolution of the side-chain envelope
KNEE_DB = 12.0          # the key this far over the threshold ducks fully
LEVEL_BLOCK_FRAMES = 4096   # frames of the key read at a time


@dataclass(frozen=True)
class Ducker:
    """Envelope ducking settings. `threshold_db` is relative to the key's loud level (its 95th
    percentile frame), so the same settings work whatever the key's absolute level."""

    depth_db: float = -10.0
    threshold_db: float = -24.0
    attack_ms: float = 25.0
    hold_ms: float = 120.0
    release_ms: float = 350.0

    def __post_init__(self) -> None:
        if self.depth_db > 0:
            raise ValueError(f"depth_db lowers the ducked track, so it must be <= 0, got {self.depth_db}")
        if min(self.attack_ms, self.hold_ms, self.release_ms) < 0:
            raise ValueError("attack_ms, hold_ms and release_ms must be >= 0")


def key_level_db(key: np.ndarray, sample_rate: int) -> np.ndarray:
    """RMS level (dBFS) of the key per FRAME_MS frame; channels are averaged in power."""
    key = np.asarray(key, dtype=np.float32)
    key = key[None, :] if key.ndim == 1 else key
    step = frame_samples(sample_rate) * LEVEL_BLOCK_FRAMES
    return key_level_db_of_blocks(((a, key[:, a:a + step]) for a in range(0, key.shape[-1], step)),
                                  key.shape[-1], sample_rate)


def frame_samples(sample_rate: int) -> int:
    """Samples per side-chain frame."""
    return max(1, int(round(FRAME_MS * sample_rate / 1000)))


def key_level_db_of_blocks(blocks: Iterable[tuple[int, np.ndarray]], samples: int, sample_rate: int) -> np.ndarray:
    """`key_level_db` of a key read a block at a time: `blocks` yields (start, (channels, m)) in
    order, every start a whole number of frames, so a film-length key is never in memory."""
    hop = frame_samples(sample_rate)
    power = np.zeros(-(-samples // hop))
    for a, block in blocks:
        if a % hop:
            raise ValueError(f"a key block starts at sample {a}, not on a {hop}-sample frame")
        block = np.asarray(block, dtype=np.float64)
        block = block[None, :] if block.ndim == 1 else block
        padded = np.zeros((block.shape[0], -(-block.shape[1] // hop) * hop))
        padded[:, :block.shape[1]] = block
        power[a // hop:a // hop + padded.shape[1] // hop] = np.mean(np.square(padded), axis=0).reshape(-1, hop).mean(axis=1)
    return 10.0 * np.log10(power + 1e-20)


def duck_amount(level_db: np.ndarray, ducker: Ducker) -> np.ndarray:
    """0..1 per frame: how deep to duck, with look-ahead attack, hold and exponential release."""
    audible = level_db[level_db > -90.0]
    if audible.size == 0:
        return np.zeros_like(level_db)
    threshold = float(np.percentile(audible, 95)) + ducker.threshold_db
    want = np.clip((level_db - threshold) / KNEE_DB, 0.0, 1.0)
    hold = int(round(ducker.hold_ms / FRAME_MS))
    if hold:
        # the window [i - hold, i]: frame i stays as deep as any frame of the last `hold`
        want = maximum_filter1d(want, size=hold + 1, origin=hold // 2, mode="constant")
    attack = int(round(ducker.attack_ms / FRAME_MS))
    ramped = want.copy()
    for k in range(1, attack + 1):   # reach the depth by the key's first frame, ramping in linearly
        ramped[:-k] = np.maximum(ramped[:-k], want[k:] * (1.0 - k / (attack + 1)))
    release = np.exp(-FRAME_MS / max(ducker.release_ms / 3.0, 1e-6))   # ~95% recovered after release_ms
    out = np.empty_like(ramped)
    level = 0.0
    for i, value in enumerate(ramped):
        level = value if value >= level else max(value, level * release)
        out[i] = level
    return out


def duck_gain(key: np.ndarray, sample_rate: int, ducker: Ducker = Ducker()) -> np.ndarray:
    """Linear gain per sample (float32, shape (samples,)) for the track ducked under `key`.

    Args:
        key: the side-chain, (channels, samples) or (samples,).
        sample_rate: Hz.
        ducker: depth, threshold and timing.

    Returns:
        1.0 where the key is quiet, down to 10**(depth_db/20) under it.
    """
    samples = np.asarray(key).shape[-1]
    if samples == 0:
        return np.ones(0, dtype=np.float32)
    amount = duck_amount(key_level_db(key, sample_rate), ducker)
    return duck_gain_span(amount, sample_rate, ducker, 0, samples)


def duck_gain_span(amount: np.ndarray, sample_rate: int, ducker: Ducker, start: int, stop: int) -> np.ndarray:
    """Samples [start, stop) of the gain curve for per-frame `amount` (from `duck_amount`),
    float32; a film's curve is made a block at a time from its per-frame amounts."""
    hop = frame_samples(sample_rate)
    centres = (np.arange(amount.size) + 0.5) * hop
    gain = np.empty(max(0, stop - start), dtype=np.float32)
    step = 1 << 20
    for a in range(start, stop, step):
        at = np.arange(a, min(stop, a + step), dtype=np.float64)
        gain[a - start:a - start + at.size] = 10.0 ** (ducker.depth_db * np.interp(at, centres, amount) / 20.0)
    return gain
