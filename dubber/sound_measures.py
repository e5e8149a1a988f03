"""Measures of a soundtrack against its picture, used by the tests, the review page and
bench/sound.py. numpy only.

- onsets: peaks of the log-mel spectral flux (the positive change of a 64-band log-mel
  spectrogram, 10 ms frames), picked against a local mean and a local maximum.
- sync: the share of picture events with an onset within `tolerance_s`, and the chance rate:
  the share of all instants with an onset that close (what a random event would score).
- periodicity: the largest normalised autocorrelation of the onset-strength curve over lags of
  0.15-1 s (a click grid or a loop scores high; rubato music low).
- repetition: the mean cosine between 12-bin chroma vectors of 1 s blocks at least 2 s apart
  (one key and one chord loop score high).
- hit sameness: the cosine between the mel magnitude spectra of the sounds at two instants.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

FRAME_HOP_S = 0.01          # s between analysis frames
FFT_S = 0.04                # s of one analysis window (rounded up to a power of two)
MEL_BANDS = 64
MEL_LOW_HZ, MEL_HIGH_HZ = 30.0, 16_000.0
DB_RANGE = 80.0             # log-mel floor under the loudest cell
PICK_MAX_S = 0.03           # an onset is the largest flux within this either side
PICK_MEAN_S = 0.1           # ... and exceeds the mean flux within this either side
PICK_DELTA = 0.07           # ... by this much (flux normalised to 0..1)
MIN_GAP_S = 0.03            # onsets closer than this are one
TOLERANCE_S = 0.1
PERIOD_LAGS_S = (0.15, 1.0)
CHROMA_BLOCK_S = 1.0
CHROMA_MIN_APART_S = 2.0
CHROMA_RANGE_HZ = (55.0, 5_000.0)
HIT_WINDOW_S = 0.25


def mono(audio: np.ndarray) -> np.ndarray:
    """float32 (samples,) of (channels, samples) or (samples,) audio; channels are averaged."""
    audio = np.asarray(audio, dtype=np.float32)
    return audio if audio.ndim == 1 else audio.mean(axis=0)


def _fft_size(sample_rate: int) -> int:
    return 1 << int(np.ceil(np.log2(FFT_S * sample_rate)))


def power_spectrogram(audio: np.ndarray, sample_rate: int, n_fft: int | None = None,
                      hop: int | None = None) -> tuple[np.ndarray, int]:
    """(|STFT|^2 shaped (frames, bins), hop in samples); frame t is centred on t * hop. The window
    and hop default to FFT_S and FRAME_HOP_S."""
    n_fft = n_fft or _fft_size(sample_rate)
    hop = hop or max(1, int(round(FRAME_HOP_S * sample_rate)))
    padded = np.pad(mono(audio), (n_fft // 2, n_fft // 2))
    return frame_power(padded, max(1, 1 + (padded.size - n_fft) // hop), n_fft, hop), hop


def frame_power(padded: np.ndarray, count: int, n_fft: int, hop: int) -> np.ndarray:
    """|rfft|^2 of `count` Hann-windowed frames of the mono signal `padded`, frame t starting at
    sample t * hop (the signal already padded by n_fft // 2 so that frame t is centred on t * hop
    of the sound), (count, n_fft // 2 + 1) float32."""
    window = np.hanning(n_fft).astype(np.float32)
    out = np.empty((count, n_fft // 2 + 1), dtype=np.float32)
    for start in range(0, count, 1024):
        idx = np.arange(start, min(count, start + 1024))[:, None] * hop + np.arange(n_fft)
        out[start:start + idx.shape[0]] = np.abs(np.fft.rfft(padded[idx] * window, axis=1)) ** 2
    return out


def _hz_to_mel(hz):
    return 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)


@lru_cache(maxsize=8)
def mel_filters(sample_rate: int, n_fft: int) -> np.ndarray:
    """Triangular mel filterbank, (bins, MEL_BANDS)."""
    high = min(MEL_HIGH_HZ, sample_rate / 2)
    edges_hz = 700.0 * (10 ** (np.linspace(_hz_to_mel(MEL_LOW_HZ), _hz_to_mel(high), MEL_BANDS + 2) / 2595.0) - 1)
    bins_hz = np.arange(n_fft // 2 + 1) * sample_rate / n_fft
    lower, centre, upper = edges_hz[:-2], edges_hz[1:-1], edges_hz[2:]
    rising = (bins_hz[:, None] - lower) / np.maximum(centre - lower, 1e-9)
    falling = (upper - bins_hz[:, None]) / np.maximum(upper - centre, 1e-9)
    return np.clip(np.minimum(rising, falling), 0.0, None).astype(np.float32)


def log_mel(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Log-mel spectrogram in dB, floored DB_RANGE under its loudest cell, (frames, MEL_BANDS)."""
    power, _ = power_spectrogram(audio, sample_rate)
    mel = power @ mel_filters(sample_rate, _fft_size(sample_rate))
    db = 10.0 * np.log10(mel + 1e-10)
    return np.maximum(db, db.max() - DB_RANGE)


def onset_strength(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Spectral flux of the log-mel spectrogram, one value per FRAME_HOP_S frame, normalised to 0..1."""
    db = log_mel(audio, sample_rate)
    flux = np.concatenate([[0.0], np.maximum(np.diff(db, axis=0), 0.0).mean(axis=1)])
    flux -= flux.min()
    top = flux.max()
    return flux / top if top > 0 else flux


def hop_s(sample_rate: int) -> float:
    """Seconds between analysis frames: FRAME_HOP_S rounded to whole samples (at 22.05 kHz, 220
    samples, 0.2 % short of 10 ms, which over five minutes would move an onset by 0.7 s)."""
    return max(1, int(round(FRAME_HOP_S * sample_rate))) / sample_rate


def pick_onsets(strength: np.ndarray, frame_s: float = FRAME_HOP_S) -> np.ndarray:
    """Onset times (s) from an onset-strength curve with a value every `frame_s` seconds (the
    `hop_s` of the sound's rate)."""
    reach_max = max(1, int(round(PICK_MAX_S / FRAME_HOP_S)))
    reach_mean = max(1, int(round(PICK_MEAN_S / FRAME_HOP_S)))
    padded = np.pad(strength, reach_max, mode="constant")
    local_max = np.max(np.lib.stride_tricks.sliding_window_view(padded, 2 * reach_max + 1), axis=1)
    kernel = np.ones(2 * reach_mean + 1) / (2 * reach_mean + 1)
    local_mean = np.convolve(np.pad(strength, reach_mean, mode="edge"), kernel, mode="valid")
    peaks = np.flatnonzero((strength >= local_max) & (strength >= local_mean + PICK_DELTA) & (strength > 0))
    kept: list[int] = []
    for p in peaks:
        if not kept or (p - kept[-1]) * FRAME_HOP_S >= MIN_GAP_S:
            kept.append(int(p))
    return np.asarray(kept, dtype=np.float64) * frame_s


def onsets(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Onset times (s) of `audio` ((channels, samples) or (samples,)) by log-mel spectral flux."""
    return pick_onsets(onset_strength(audio, sample_rate), hop_s(sample_rate))


def hit_flags(onset_s: Sequence[float], events_s: Sequence[float], tolerance_s: float = TOLERANCE_S) -> np.ndarray:
    """For each event, whether an onset lies within tolerance_s of it."""
    onset_s = np.sort(np.asarray(onset_s, dtype=np.float64))
    if onset_s.size == 0:
        return np.zeros(len(events_s), dtype=bool)
    events = np.asarray(events_s, dtype=np.float64)
    idx = np.clip(np.searchsorted(onset_s, events), 1, onset_s.size - 1) if onset_s.size > 1 else np.zeros(events.size, int)
    nearest = np.minimum(np.abs(onset_s[idx] - events), np.abs(onset_s[np.maximum(idx - 1, 0)] - events))
    return nearest <= tolerance_s + 1e-9


def hit_rate(onset_s: Sequence[float], events_s: Sequence[float], tolerance_s: float = TOLERANCE_S) -> float:
    """Share of events with an onset within tolerance_s (nan when there are no events)."""
    if len(events_s) == 0:
        return float("nan")
    return float(np.mean(hit_flags(onset_s, events_s, tolerance_s)))


def chance_rate(onset_s: Sequence[float], duration_s: float, tolerance_s: float = TOLERANCE_S) -> float:
    """Share of instants in [0, duration_s] with an onset within tolerance_s: the exact length of
    the union of the windows around the onsets, over the duration."""
    if duration_s <= 0:
        return float("nan")
    covered, reach = 0.0, -np.inf
    for t in np.sort(np.asarray(onset_s, dtype=np.float64)):
        lo, hi = max(t - tolerance_s, 0.0, reach), min(t + tolerance_s, duration_s)
        if hi > lo:
            covered += hi - lo
        reach = max(reach, hi)
    return covered / duration_s


def periodicity(audio: np.ndarray, sample_rate: int, lags_s: tuple[float, float] = PERIOD_LAGS_S) -> float:
    """Largest normalised autocorrelation (Pearson, per lag) of the onset-strength curve over the lags."""
    return periodicity_of(onset_strength(audio, sample_rate), lags_s)


def periodicity_of(strength: np.ndarray, lags_s: tuple[float, float] = PERIOD_LAGS_S) -> float:
    lo, hi = (int(round(s / FRAME_HOP_S)) for s in lags_s)
    best = 0.0
    for lag in range(lo, min(hi, strength.size - 2) + 1):
        a, b = strength[:-lag], strength[lag:]
        a, b = a - a.mean(), b - b.mean()
        denom = float(np.sqrt(np.dot(a, a) * np.dot(b, b)))
        if denom > 0:
            best = max(best, float(np.dot(a, b)) / denom)
    return best


def chroma_blocks(audio: np.ndarray, sample_rate: int, block_s: float = CHROMA_BLOCK_S) -> np.ndarray:
    """(blocks, 12) chroma energy per block_s block (rows of silent blocks are zero)."""
    power, _ = power_spectrogram(audio, sample_rate)
    return chroma_of(power, sample_rate, block_s)


def chroma_of(power: np.ndarray, sample_rate: int, block_s: float = CHROMA_BLOCK_S) -> np.ndarray:
    """`chroma_blocks` from the (frames, bins) power spectrogram of the sound, frame 0 first."""
    n_fft = _fft_size(sample_rate)
    hz = np.arange(power.shape[1]) * sample_rate / n_fft
    use = (hz >= CHROMA_RANGE_HZ[0]) & (hz <= CHROMA_RANGE_HZ[1])
    pitch_class = np.round(12 * np.log2(hz[use] / 440.0)).astype(int) % 12
    fold = np.zeros((use.sum(), 12), dtype=np.float32)
    fold[np.arange(use.sum()), pitch_class] = 1.0
    chroma = power[:, use] @ fold
    per_block = max(1, int(round(block_s / FRAME_HOP_S)))
    blocks = chroma.shape[0] // per_block
    return chroma[:blocks * per_block].reshape(blocks, per_block, 12).sum(axis=1)


def repetition(audio: np.ndarray, sample_rate: int) -> float:
    """Mean cosine between chroma of 1 s blocks at least 2 s apart (silent blocks left out)."""
    return repetition_of(chroma_blocks(audio, sample_rate))


def repetition_of(blocks: np.ndarray) -> float:
    """`repetition` from the (blocks, 12) chroma of `chroma_blocks`. The pairs are summed a few
    hundred rows at a time: a two-hour film has 7,200 blocks, 52 million pairs."""
    norms = np.linalg.norm(blocks, axis=1)
    keep = norms > norms.max() * 1e-3 if norms.size else norms > 0
    index = np.flatnonzero(keep)
    unit = blocks[index] / norms[index, None]
    apart = int(round(CHROMA_MIN_APART_S / CHROMA_BLOCK_S))
    total, count = 0.0, 0
    for start in range(0, index.size, 512):
        rows = slice(start, start + 512)
        mask = np.abs(index[rows, None] - index[None, :]) >= apart
        total += float((unit[rows] @ unit.T)[mask].sum(dtype=np.float64))
        count += int(mask.sum())
    return total / count if count else float("nan")


def spectrum_at(audio: np.ndarray, sample_rate: int, time_s: float, window_s: float = HIT_WINDOW_S) -> np.ndarray:
    """Mel magnitude spectrum of the sound in [time_s, time_s + window_s)."""
    a = int(round(time_s * sample_rate))
    piece = mono(audio)[max(a, 0):max(a, 0) + int(round(window_s * sample_rate))]
    power, _ = power_spectrogram(piece, sample_rate)
    return np.sqrt(power.mean(axis=0) @ mel_filters(sample_rate, _fft_size(sample_rate)))


def hit_sameness(audio: np.ndarray, sample_rate: int, first_s: float, second_s: float,
                 window_s: float = HIT_WINDOW_S) -> float:
    """Cosine (0..1) between the mel magnitude spectra of the sounds at two instants."""
    a = spectrum_at(audio, sample_rate, first_s, window_s)
    b = spectrum_at(audio, sample_rate, second_s, window_s)
    denom = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.dot(a, b) / denom) if denom > 0 else 0.0


@dataclass(frozen=True)
class SyncReport:
    """The sync and music figures of one soundtrack against its events."""

    duration_s: float
    onsets_s: tuple[float, ...]
    events_s: tuple[float, ...]
    hit: tuple[bool, ...]
    hit_rate: float
    chance_rate: float
    unmatched_onsets: int
    periodicity: float
    repetition: float

    def to_dict(self) -> dict:
        return {"duration_s": round(self.duration_s, 3), "onsets": len(self.onsets_s), "events": len(self.events_s),
                "hit_rate": _round(self.hit_rate), "chance_rate": _round(self.chance_rate),
                "unmatched_onsets": self.unmatched_onsets, "periodicity": _round(self.periodicity),
                "repetition": _round(self.repetition)}


def _round(value: float) -> float | None:
    return None if not np.isfinite(value) else round(float(value), 4)


def measure(audio: np.ndarray, sample_rate: int, events_s: Sequence[float],
            marks_s: Sequence[float] = (), tolerance_s: float = TOLERANCE_S) -> SyncReport:
    """All figures at once. `marks_s` (cuts, other hit points) count as matches for onsets, so
    `unmatched_onsets` is the number of onsets near no event and no mark."""
    return report_from(onset_strength(audio, sample_rate), chroma_blocks(audio, sample_rate),
                       mono(audio).size / sample_rate, events_s, marks_s, tolerance_s, hop_s(sample_rate))


def report_from(strength: np.ndarray, chroma: np.ndarray, duration: float, events_s: Sequence[float],
                marks_s: Sequence[float] = (), tolerance_s: float = TOLERANCE_S,
                frame_s: float = FRAME_HOP_S) -> SyncReport:
    """`measure`'s figures from the onset-strength curve (a value every `frame_s` seconds) and the
    chroma blocks of the sound."""
    found = pick_onsets(strength, frame_s)
    events = [float(e) for e in events_s]
    anything = np.asarray(events + [float(m) for m in marks_s])
    unmatched = int(np.sum(~hit_flags(anything, found, tolerance_s))) if anything.size else int(found.size)
    return SyncReport(duration, tuple(float(t) for t in found), tuple(events), tuple(bool(h) for h in hit_flags(found, events, tolerance_s)),
                      hit_rate(found, events, tolerance_s), chance_rate(found, duration, tolerance_s), unmatched,
                      periodicity_of(strength), repetition_of(chroma))
