"""Loudness to a target with a true-peak ceiling, for tracks that live on disk (dubber.media.tracks).

Measured as ITU-R BS.1770 says (K-weighted integrated loudness with its two gates, true peak
from 4x oversampling), a block at a time: memory does not grow with the length of the film.

The track gets a static gain to the target and passes a true-peak limiter (look-ahead gain
reduction with smooth attack and release); gain and limiting repeat until loudness is within
LUFS_TOLERANCE of the target and the true peak is at or under the ceiling. The ceiling always
holds; limiting never goes deeper than MAX_LIMITER_DB, so material that would need more (clicks in
silence) ends up quieter than the target, with a warning.

True peaks scale with gain, so each track keeps, per block of PEAK_BLOCK samples, an upper bound
of its true peak (the worst phase gain of the interpolator times the largest nearby sample); the
4x interpolation runs only on blocks whose bound some pass's gain could take over the ceiling,
and its per-sample peaks are kept on disk. The limiter's gain is 1 wherever no sample within its
attack and release is over the ceiling, so its curve is computed and stored on disk only around
the blocks that are; everywhere else the gain is the static gain alone. After limiting, the
exact peak is found block by block from the loudest bound down, which stops long before the
whole track is oversampled. One gain curve serves the mix and every stem, so stems sum to the
mix; the limiter watches the stems' peaks too (stems that partly cancel in the sum would each
peak above the ceiling otherwise).
"""
from __future__ import annotations

import bisect
import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Sequence

import numpy as np
import pyloudnorm
from scipy import signal
from scipy.ndimage import minimum_filter1d

from .media.tracks import Track, new_track

log = logging.getLogger(__name__)

LUFS_TOLERANCE = 0.2        # LU, how close the loop aims (the promise to users is +-0.5 LU)
MAX_PASSES = 8              # gain+limit passes before giving up on a target
MAX_EXTRA_GAIN_DB = 12.0    # most gain the loop adds beyond plain normalisation (all of it limited)
MAX_LIMITER_DB = 12.0       # deepest limiting allowed; beyond it loudness falls short of the target
OVERSAMPLE = 4              # true-peak detection rate multiple (as ITU-R BS.1770 annex 2)
PEAK_REACH = 10             # samples either side that one interpolated value depends on
PEAK_BLOCK = 2048           # samples per block of the true-peak bounds
BOUND_CHUNK_BLOCKS = 256    # blocks read from disk together
LIMITER_ATTACK_MS = 5.0     # gain falls over this look-ahead before a peak
LIMITER_RELEASE_MS = 40.0   # ... and holds, then recovers over about this long after it
LIMITER_BLOCK = 1 << 18     # samples of limiter gain computed at a time (about 5 s at 48 kHz)
GATE_BLOCK_S = 0.4          # s, BS.1770 gating block
GATE_HOP_S = 0.1            # s, ... started every 100 ms (75 % overlap)
ABSOLUTE_GATE_LUFS = -70.0  # blocks quieter than this never count
RELATIVE_GATE_LU = 10.0     # ... nor blocks this far under the ungated loudness
CHANNEL_GAINS = (1.0, 1.0, 1.0, 1.41, 1.41)   # BS.1770 weights: L, R, C, Ls, Rs
LOUDNESS_CHUNK_HOPS = 50    # hops per measured chunk (5 s): loudness memory is flat in length
# After a limited span the K-weighting filters still ring with what the limiter took away; half a
# second on, their slowest poles (the 38 Hz high-pass: a double pole of radius 0.995 at 48 kHz) have
# let it fall to 1e-48 of itself, so the energy there is the unlimited track's times the gain squared.
REFILTER_TAIL_S = 0.5


# ---------------------------------------------------------------------------- measurement
@lru_cache(maxsize=1)
def _interpolator() -> np.ndarray:
    """4x interpolation filter: 81-tap windowed sinc cut at the original Nyquist frequency."""
    taps = signal.firwin(OVERSAMPLE * 20 + 1, 1.0 / OVERSAMPLE, window=("kaiser", 5.0)) * OVERSAMPLE
    return taps.astype(np.float32)


@lru_cache(maxsize=1)
def _polyphase() -> tuple[np.ndarray, float, float]:
    """The interpolator split by output phase: (3, 2 * PEAK_REACH) taps of the in-between
    phases 1..3 (phase p at sample i is sum_k taps[p-1, k] * x[i + PEAK_REACH - k]), the on-sample
    phase's gain (its other taps sit on the sinc's zeros), and the largest phase's sum of |taps|:
    no interpolated value can exceed that many times the largest sample within PEAK_REACH."""
    taps = _interpolator()
    centre = (taps.size - 1) // 2
    phases = np.stack([taps[p::OVERSAMPLE][:2 * PEAK_REACH] for p in range(1, OVERSAMPLE)])
    worst = max(float(np.abs(taps[p::OVERSAMPLE]).sum()) for p in range(OVERSAMPLE))
    return phases.astype(np.float32), float(taps[centre]), worst


def _interpolated_peaks(padded: np.ndarray, out: np.ndarray) -> None:
    """Raise `out` (m,) to the largest |value| of the 4x-interpolated `padded` (channels,
    m + 2 * PEAK_REACH): samples PEAK_REACH .. PEAK_REACH + m, with their context either side."""
    phases, centre, _ = _polyphase()
    m = out.shape[-1]
    for channel in padded:
        np.maximum(out, np.abs(channel[PEAK_REACH:PEAK_REACH + m]) * centre, out=out)
        for taps in phases:
            # 'valid' output j is sum_k taps[k] * channel[j + len(taps) - 1 - k]; j = i + 1 puts
            # the phase between samples i and i + 1 of the segment.
            np.maximum(out, np.abs(np.convolve(channel, taps, mode="valid")[1:m + 1]), out=out)


def _segment(audio: np.ndarray, start: int, stop: int) -> np.ndarray:
    """audio[:, start - PEAK_REACH : stop + PEAK_REACH] as float32, zeros beyond the ends."""
    n = audio.shape[-1]
    lo, hi = max(start - PEAK_REACH, 0), min(stop + PEAK_REACH, n)
    seg = np.asarray(audio[:, lo:hi], dtype=np.float32)
    if lo == start - PEAK_REACH and hi == stop + PEAK_REACH:
        return seg
    return np.pad(seg, ((0, 0), (lo - (start - PEAK_REACH), stop + PEAK_REACH - hi)))


def oversampled_peaks(audio: np.ndarray, sr: int) -> np.ndarray:
    """Per-sample true peak: the largest |value| of the 4x-oversampled signal over all channels
    within each original sample period. audio (channels, n) -> (n,).

    `sr` is unused: the oversampling filter is defined relative to the sample rate."""
    audio = np.atleast_2d(audio)
    peaks = np.abs(audio).max(axis=0).astype(np.float32)                  # (n,)
    _interpolated_peaks(_segment(audio, 0, audio.shape[-1]), peaks)
    return peaks


def true_peak_db(audio: np.ndarray, sr: int) -> float:
    """True peak in dBTP (4x oversampled); -inf for silence."""
    if audio.size == 0:
        return float("-inf")
    peak = float(oversampled_peaks(audio, sr).max())
    return 20.0 * np.log10(peak) if peak > 0 else float("-inf")


def _to_db(value: float) -> float:
    return 20.0 * np.log10(value) if value > 0 else float("-inf")


def track_true_peak_db(track: Any) -> float:
    """Exact true peak in dBTP (4x oversampled) of a track read a block at a time (it has
    `num_samples`, `read(start, stop)` and `blocks(size)`, as an on-disk Track or a WAV file
    opened for reading does); -inf for silence. Every block is bounded from its samples, and only
    those whose bound could beat the loudest peak found are interpolated."""
    peaks = _TrackPeaks(track)
    unity = GainCurve(track.num_samples, 0.0)
    high, low = unity.block_extremes(peaks.bound.size)
    return _to_db(_weighted_true_peak(peaks, unity, high, low))


def integrated_lufs(audio: np.ndarray, sr: int) -> float:
    """Integrated loudness (LUFS, ITU-R BS.1770 with pyloudnorm's K-weighting filters), measured
    in chunks so memory does not grow with the length; -inf for silence. A clip shorter than one
    400 ms gating block is measured as a loop of itself."""
    audio = np.atleast_2d(audio)
    if audio.size == 0:
        return float("-inf")
    block = int(GATE_BLOCK_S * sr) + 1
    if audio.shape[-1] < block:
        audio = np.tile(audio, (1, -(-block // audio.shape[-1])))
    return _chunked_lufs(lambda a, b: audio[:, a:b], audio.shape[0], audio.shape[-1], sr)


@lru_cache(maxsize=8)
def _k_weighting(sr: int) -> tuple[tuple[np.ndarray, np.ndarray, float], ...]:
    """(b, a, passband gain) of each K-weighting stage at `sr`, as pyloudnorm designs them."""
    return tuple((f.b, f.a, f.passband_gain) for f in pyloudnorm.Meter(sr)._filters.values())


def _weighted_hops(y: np.ndarray, states: list[np.ndarray], sr: int) -> np.ndarray:
    """K-weight `y` (channels, samples) from the filters' `states` (updated in place) and return
    the channel-weighted sum of squares per GATE_HOP_S hop (a short last hop as it is)."""
    hop = int(round(GATE_HOP_S * sr))
    gains = np.array([CHANNEL_GAINS[min(i, len(CHANNEL_GAINS) - 1)] for i in range(y.shape[0])])[:, None]
    for i, (b, a, gain) in enumerate(_k_weighting(sr)):
        y, states[i] = signal.lfilter(b, a, y, axis=-1, zi=states[i])
        y *= gain
    power = (np.square(y) * gains).sum(axis=0)
    hops = -(-power.shape[-1] // hop)
    padded = np.zeros(hops * hop)
    padded[:power.shape[-1]] = power
    return padded.reshape(hops, hop).sum(axis=1)


def _hop_energies(chunk_of, channels: int, n: int, sr: int,
                  chunk_states: list[list[np.ndarray]] | None = None) -> np.ndarray:
    """Channel-weighted sum of squares of the K-weighted signal per 100 ms hop (hops,). The
    filters run chunk by chunk with their state carried over, so the result equals filtering
    the whole track at once. `chunk_states`, when given, receives the filters' state at the
    start of every chunk."""
    hop = int(round(GATE_HOP_S * sr))
    states = [np.zeros((channels, max(len(b), len(a)) - 1)) for b, a, _ in _k_weighting(sr)]
    step = hop * LOUDNESS_CHUNK_HOPS
    energies = np.zeros(-(-n // hop))
    for start in range(0, n, step):
        if chunk_states is not None:
            chunk_states.append([s.copy() for s in states])
        y = np.asarray(chunk_of(start, min(start + step, n)), dtype=np.float64)   # (channels, <= step)
        hops = _weighted_hops(y, states, sr)
        energies[start // hop:start // hop + hops.size] = hops
    return energies


def _gated_lufs(energies: np.ndarray, n: int, sr: int) -> float:
    """BS.1770 gating over 400 ms blocks every 100 ms (block count and zero-padded last block as
    pyloudnorm counts them), from per-hop energies."""
    hop = int(round(GATE_HOP_S * sr))
    per_block = int(round(GATE_BLOCK_S / GATE_HOP_S))
    count = int(np.round((n / sr - GATE_BLOCK_S) / GATE_HOP_S)) + 1
    padded = np.zeros(count + per_block)
    padded[:min(energies.size, padded.size)] = energies[:padded.size]
    sums = np.convolve(padded, np.ones(per_block), mode="full")[per_block - 1:per_block - 1 + count]
    z = sums / (per_block * hop)                                     # mean square per block
    with np.errstate(divide="ignore"):
        loudness = -0.691 + 10.0 * np.log10(z)
    gated = z[loudness >= ABSOLUTE_GATE_LUFS]
    if gated.size == 0:
        return float("-inf")
    relative = -0.691 + 10.0 * np.log10(gated.mean()) - RELATIVE_GATE_LU
    final = z[(loudness > relative) & (loudness > ABSOLUTE_GATE_LUFS)]
    if final.size == 0:
        return float("-inf")
    return float(-0.691 + 10.0 * np.log10(final.mean()))


def _chunked_lufs(chunk_of, channels: int, n: int, sr: int) -> float:
    return _gated_lufs(_hop_energies(chunk_of, channels, n, sr), n, sr)


def track_lufs(track: Any, sr: int, gain: "GainCurve | None" = None) -> float:
    """Integrated loudness of an on-disk track (times `gain` when given), read 5 s at a time."""
    n = track.num_samples
    if n < int(GATE_BLOCK_S * sr) + 1:
        audio = track.read(0, n)
        return integrated_lufs(audio if gain is None else audio * gain.read(0, n), sr)
    if gain is None:
        return _chunked_lufs(track.read, track.channels, n, sr)
    return _chunked_lufs(lambda a, b: track.read(a, b) * gain.read(a, b), track.channels, n, sr)


class _KWeighted:
    """A track's K-weighted energy per hop at unity gain, and the filters' state at the start of
    every measured chunk: what the loudness of the track under any of the loop's gain curves
    needs. Outside the limiter's spans a curve is one constant, and the filters are linear, so
    there the energy is this one times the constant squared; only from the chunk where a span
    starts to REFILTER_TAIL_S after it ends is the track filtered again (from that chunk's state,
    scaled by the constant). Each pass of the loop then reads a few seconds around the limited
    peaks instead of the whole film. A track shorter than one gating block is measured whole
    (as a loop of itself, see `track_lufs`) each time."""

    def __init__(self, track: Any, sr: int) -> None:
        self.track, self.sr, self.num_samples = track, sr, track.num_samples
        self.short = self.num_samples < int(GATE_BLOCK_S * sr) + 1
        self.chunk_states: list[list[np.ndarray]] = []
        self.energies = None if self.short else _hop_energies(track.read, track.channels, self.num_samples, sr,
                                                              self.chunk_states)

    @property
    def lufs(self) -> float:
        if self.energies is None:
            return track_lufs(self.track, self.sr)
        return _gated_lufs(self.energies, self.num_samples, self.sr)

    def lufs_under(self, gain: "GainCurve") -> float:
        """Integrated loudness of the track times `gain`."""
        if self.energies is None:
            return track_lufs(self.track, self.sr, gain)
        n, sr = self.num_samples, self.sr
        hop = int(round(GATE_HOP_S * sr))
        step = hop * LOUDNESS_CHUNK_HOPS
        constant = float(gain.static) * float(gain.trim)     # the gain outside the limiter's spans
        energies = self.energies * constant ** 2
        for start, stop in self._refiltered(gain.spans, hop, step):
            states = [s * constant for s in self.chunk_states[start // step]]
            for a in range(start, stop, step):
                b = min(a + step, stop)
                y = np.asarray(self.track.read(a, b), dtype=np.float64) * gain.read(a, b)
                hops = _weighted_hops(y, states, sr)
                energies[a // hop:a // hop + hops.size] = hops
        return _gated_lufs(energies, n, sr)

    def _refiltered(self, spans: Sequence[tuple[int, int]], hop: int, step: int) -> list[tuple[int, int]]:
        """[start, stop) sample ranges to filter again: from the start of the chunk each span
        starts in to REFILTER_TAIL_S after it ends (on a hop), overlapping ranges merged."""
        tail = int(REFILTER_TAIL_S * self.sr)
        out: list[tuple[int, int]] = []
        for a, b in sorted(spans):
            start, stop = a // step * step, min(self.num_samples, -(-(b + tail) // hop) * hop)
            if out and start <= out[-1][1]:
                out[-1] = (out[-1][0], max(out[-1][1], stop))
            else:
                out.append((start, stop))
        return out


def _runs(indices: np.ndarray) -> list[tuple[int, int]]:
    """Sorted block indices as [start, stop) runs of consecutive blocks."""
    if indices.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(indices) > 1)
    starts = np.concatenate([[indices[0]], indices[breaks + 1]])
    stops = np.concatenate([indices[breaks], [indices[-1]]]) + 1
    return list(zip(starts.tolist(), stops.tolist()))


def _split_runs(runs: list[tuple[int, int]], most: int) -> list[tuple[int, int]]:
    """Runs cut into pieces of at most `most` blocks."""
    return [(a, min(a + most, stop)) for start, stop in runs for a in range(start, stop, most)]


def _neighbours(values: np.ndarray, fn) -> np.ndarray:
    """fn (np.maximum / np.minimum) of each block's value and its two neighbours'."""
    if values.size == 0:
        return values
    edged = np.concatenate([values[:1], values, values[-1:]])
    return fn(fn(edged[:-2], edged[1:-1]), edged[2:])


def _block_max(values: np.ndarray) -> np.ndarray:
    """Max of `values` (n,) over each PEAK_BLOCK (the last one may be short)."""
    count, whole = -(-values.shape[-1] // PEAK_BLOCK), values.shape[-1] // PEAK_BLOCK
    out = np.empty(count, dtype=np.float32)
    out[:whole] = values[:whole * PEAK_BLOCK].reshape(whole, PEAK_BLOCK).max(axis=1)
    if whole < count:
        out[whole] = values[whole * PEAK_BLOCK:].max()
    return out


def _track_segment(track: Any, start: int, stop: int) -> np.ndarray:
    """track[:, start - PEAK_REACH : stop + PEAK_REACH] as float32, zeros beyond the ends."""
    lo, hi = max(start - PEAK_REACH, 0), min(stop + PEAK_REACH, track.num_samples)
    seg = track.read(lo, hi)
    return np.pad(seg, ((0, 0), (lo - (start - PEAK_REACH), stop + PEAK_REACH - hi)))


class _TrackPeaks:
    """True-peak facts of one track on disk: per block, the sample peak and an upper bound of
    the true peak; per sample, the exact true peak (on disk) of the blocks made exact."""

    def __init__(self, track: Any) -> None:
        self.track = track
        n = track.num_samples
        step = PEAK_BLOCK * BOUND_CHUNK_BLOCKS
        parts = [_block_max(np.abs(audio).max(axis=0)) for _, audio in track.blocks(step)]
        sample_block = np.concatenate(parts) if parts else np.zeros(0, np.float32)    # (blocks,)
        worst = _polyphase()[2]
        self.sample_max = float(sample_block.max(initial=0.0))
        self.bound = _neighbours(sample_block, np.maximum) * np.float32(worst)
        self.exact = np.zeros(self.bound.shape, dtype=bool)
        self.exact_max = np.zeros(self.bound.shape, dtype=np.float32)
        self.peaks: Track | None = None      # per-sample true peaks where exact, zeros elsewhere
        self.num_samples = n

    def make_exact_above(self, level: float) -> None:
        """Interpolate every block whose bound exceeds `level` (once per block)."""
        todo = np.flatnonzero((self.bound > level) & ~self.exact)
        if todo.size and self.peaks is None:
            self.peaks = new_track("peaks", 1, self.num_samples)
        for start, stop in _split_runs(_runs(todo), BOUND_CHUNK_BLOCKS):
            a, b = start * PEAK_BLOCK, min(stop * PEAK_BLOCK, self.num_samples)
            seg = _track_segment(self.track, a, b)
            peaks = np.abs(seg[:, PEAK_REACH:PEAK_REACH + b - a]).max(axis=0) * np.float32(max(1.0, _polyphase()[1]))
            _interpolated_peaks(seg, peaks)
            self.peaks.write(a, peaks[None, :])
            self.exact_max[start:stop] = _block_max(peaks)
        self.exact[todo] = True

    def exact_peaks(self, start: int, stop: int) -> np.ndarray:
        """Per-sample true peaks over [start, stop): exact in exact blocks, 0 elsewhere."""
        if self.peaks is None:
            return np.zeros(max(0, stop - start), dtype=np.float32)
        return self.peaks.read(start, stop)[0]

    def upper(self) -> np.ndarray:
        """Per block, an upper bound of the true peak (exact where computed)."""
        return np.where(self.exact, self.exact_max, self.bound)


class GainCurve:
    """Per-sample gain of a soundtrack: a static gain times the limiter's curve, which is 1
    outside `spans` and kept on disk (`curve`, one channel) inside them; `trim` scales the
    curve where loudness gave way to the ceiling. Read a block at a time."""

    def __init__(self, num_samples: int, gain_db: float, curve: Track | None = None,
                 spans: Sequence[tuple[int, int]] = (), trim: float = 1.0, lowest: float = 1.0) -> None:
        self.num_samples = num_samples
        self.gain_db = float(gain_db)
        self.static = np.float32(10 ** (gain_db / 20))
        self.curve = curve
        self.spans = list(spans)
        self._starts = [a for a, _ in self.spans]
        self.trim = np.float32(trim)
        self.lowest = float(lowest)      # least value of the limiter curve (1 when it did nothing)

    def limiter(self, start: int, stop: int) -> np.ndarray:
        """The limiter curve (times the trim) over [start, stop), float32."""
        out = np.ones(max(0, stop - start), dtype=np.float32)
        first = max(0, bisect.bisect_right(self._starts, start) - 1)
        for a, b in self.spans[first:]:
            if a >= stop:
                break
            lo, hi = max(a, start), min(b, stop)
            if lo < hi:
                out[lo - start:hi - start] = self.curve.read(lo, hi)[0]
        if self.trim != 1:
            out *= self.trim
        return out

    def read(self, start: int, stop: int) -> np.ndarray:
        """Gain per sample over [start, stop), float32 (static gain times the limiter curve)."""
        return self.limiter(start, stop) * self.static

    def trimmed(self, trim_db: float) -> "GainCurve":
        return GainCurve(self.num_samples, self.gain_db, self.curve, self.spans,
                         float(self.trim) * 10 ** (trim_db / 20), self.lowest)

    @property
    def limiter_db(self) -> float:
        """Deepest limiter gain reduction, dB (0 when the limiter did nothing)."""
        low = self.lowest * float(self.trim)
        return 0.0 if low >= 1.0 else float(-20 * np.log10(max(low, 1e-12)))

    def touched(self, blocks: int) -> np.ndarray:
        """Per PEAK_BLOCK block, whether the limiter curve reaches into it (elsewhere the gain is
        one constant)."""
        mask = np.zeros(blocks, dtype=bool)
        for a, b in self.spans:
            mask[a // PEAK_BLOCK:-(-b // PEAK_BLOCK)] = True
        return mask

    def block_extremes(self, blocks: int) -> tuple[np.ndarray, np.ndarray]:
        """(largest, least) gain in each PEAK_BLOCK block."""
        value = np.float32(self.trim * self.static) if self.trim != 1 else self.static
        high = np.full(blocks, value, dtype=np.float32)
        low = high.copy()
        for start, stop in _split_runs(_runs(np.flatnonzero(self.touched(blocks))), BOUND_CHUNK_BLOCKS):
            weight = self.read(start * PEAK_BLOCK, min(stop * PEAK_BLOCK, self.num_samples))
            high[start:stop] = _block_max(weight)
            low[start:stop] = -_block_max(-weight)
        return high, low


def _window_filter(fn, values: np.ndarray, ahead: int, behind: int) -> np.ndarray:
    """fn (min or max filter) over the window [i - behind, i + ahead] of each i."""
    size = ahead + behind + 1
    return fn(values, size=size, origin=behind - size // 2, mode="nearest")


def _edge_read(read, start: int, stop: int, n: int) -> np.ndarray:
    """read(a, b) (n,)-shaped over [start, stop), the values at the ends repeating beyond them."""
    lo, hi = max(start, 0), min(stop, n)
    return np.pad(read(lo, hi), (lo - start, stop - hi), mode="edge")


def _limiter_span(joint, n: int, gain: np.float32, ceiling: np.float32, start: int, stop: int,
                  attack: int, release: int, kernel: np.ndarray) -> np.ndarray:
    """Limiter gain over [start, stop). The gain needed at each sample (ceiling / its gained true
    peak) is held with a minimum over [i - release, i + attack] and then averaged over
    [i - attack, i + release]; every value in that average saw the peak at i, so the peak stays
    at or under the ceiling, and the gain moves smoothly. Peaks beyond the track's ends repeat
    the end values."""
    lo, hi = max(start - attack, 0), min(stop + release, n)
    peaks = _edge_read(joint, lo - release, hi + attack, n) * gain
    need = np.minimum(np.float32(1.0), ceiling / np.maximum(peaks, np.float32(1e-12)), dtype=np.float32)
    held = _window_filter(minimum_filter1d, need, ahead=attack, behind=release)[release:release + hi - lo]
    held = np.pad(held, (lo - (start - attack), stop + release - hi), mode="edge")
    return np.minimum(signal.oaconvolve(held, kernel[::-1], mode="valid"), 1.0).astype(np.float32)


def _limiter_kernel(sr: int) -> tuple[int, int, np.ndarray]:
    attack, release = int(LIMITER_ATTACK_MS * sr / 1000), int(LIMITER_RELEASE_MS * sr / 1000)
    kernel = np.hanning(attack + release + 3)[1:-1]
    return attack, release, (kernel / kernel.sum()).astype(np.float32)


def _limiter_curve(tracks: Sequence[_TrackPeaks], sr: int, gain_db: float, ceiling_db: float) -> GainCurve:
    """The static gain and the limiter curve that holds every track under `ceiling_db` dBTP."""
    n = tracks[0].num_samples
    gain, ceiling = np.float32(10 ** (gain_db / 20)), np.float32(10 ** (ceiling_db / 20))
    level = float(ceiling) / float(gain)
    for t in tracks:
        t.make_exact_above(level)
    hot = np.zeros(tracks[0].bound.shape, dtype=bool)
    for t in tracks:
        hot |= t.exact & (t.exact_max * gain > ceiling)
    if not hot.any():
        return GainCurve(n, gain_db)
    attack, release, kernel = _limiter_kernel(sr)
    reach = -(-(attack + release) // PEAK_BLOCK) + 1
    grown = np.zeros_like(hot)
    for a, b in _runs(np.flatnonzero(hot)):
        grown[max(0, a - reach):b + reach] = True
    # Every track's exact peaks; a block not exact in a track is under the level there (need 1).
    def joint(a: int, b: int) -> np.ndarray:
        out = tracks[0].exact_peaks(a, b)
        for t in tracks[1:]:
            np.maximum(out, t.exact_peaks(a, b), out=out)
        return out

    curve = new_track("limiter", 1, n)
    spans, lowest = [], 1.0
    for a, b in _runs(np.flatnonzero(grown)):
        span = (a * PEAK_BLOCK, min(b * PEAK_BLOCK, n))
        for start in range(span[0], span[1], LIMITER_BLOCK):
            stop = min(start + LIMITER_BLOCK, span[1])
            piece = _limiter_span(joint, n, gain, ceiling, start, stop, attack, release, kernel)
            curve.write(start, piece[None, :])
            lowest = min(lowest, float(piece.min()))
        spans.append(span)
    return GainCurve(n, gain_db, curve, spans, lowest=lowest)


def _weighted_true_peak(peaks: _TrackPeaks, weight: GainCurve, high: np.ndarray, low: np.ndarray) -> float:
    """Exact true peak (linear) of track * weight, weight a smooth gain curve.

    In a block the peak is at most the largest product of the weight and the track's own true
    peak (per sample where the limiter acts, else per block), plus what the weight's swing within
    the block and its neighbours can add through the filter; blocks are interpolated loudest
    bound first until no remaining bound can beat the largest exact peak found."""
    if peaks.bound.size == 0:
        return 0.0
    spread = _neighbours(high, np.maximum) - _neighbours(low, np.minimum)
    block_bound = high * peaks.upper()
    best = float((low * peaks.exact_max).max(initial=0.0))         # a lower bound
    n = peaks.num_samples
    # Where the limiter's curve moves, per-sample products bound the block far more tightly.
    for start, stop in _split_runs(_runs(np.flatnonzero(weight.touched(peaks.bound.size))), BOUND_CHUNK_BLOCKS):
        a, b = start * PEAK_BLOCK, min(stop * PEAK_BLOCK, n)
        w = weight.read(a, b)
        exact = np.repeat(peaks.exact[start:stop], PEAK_BLOCK)[:b - a]
        found = peaks.exact_peaks(a, b)
        upper = np.where(exact, found, np.repeat(peaks.bound[start:stop], PEAK_BLOCK)[:b - a])
        block_bound[start:stop] = _block_max(w * upper)
        best = max(best, float((w * found).max(initial=0.0)))
    block_bound += peaks.bound * spread
    for block in np.argsort(block_bound)[::-1]:
        if block_bound[block] <= best:
            break
        a, b = block * PEAK_BLOCK, min((block + 1) * PEAK_BLOCK, n)
        lo, hi = max(a - PEAK_REACH, 0), min(b + PEAK_REACH, n)
        gain = np.pad(weight.read(lo, hi), (lo - (a - PEAK_REACH), b + PEAK_REACH - hi))
        seg = _track_segment(peaks.track, a, b) * gain
        out = np.zeros(b - a, dtype=np.float32)
        _interpolated_peaks(seg, out)
        best = max(best, float(out.max()))
    return best


@dataclass(frozen=True)
class LoudnessResult:
    """The gain curve found (static gain and limiter), and what the gained track measures;
    `stems_true_peak_db` is the loudest stem's true peak under the same curve (-inf without stems)."""

    gain: GainCurve
    lufs: float
    true_peak_db: float
    stems_true_peak_db: float = float("-inf")

    @property
    def gain_db(self) -> float:
        return self.gain.gain_db

    @property
    def limiter_db(self) -> float:
        return self.gain.limiter_db

    @property
    def highest_peak_db(self) -> float:
        """True peak of the loudest of the mix and its stems, dBTP."""
        return max(self.true_peak_db, self.stems_true_peak_db)


def _gain_and_limit(mix: _TrackPeaks, stems: Sequence[_TrackPeaks], sr: int, gain_db: float,
                    ceiling_db: float, weighted: _KWeighted) -> LoudnessResult:
    curve = _limiter_curve([mix, *stems], sr, gain_db, ceiling_db)
    high, low = curve.block_extremes(mix.bound.size)
    ceiling = 10 ** (ceiling_db / 20)
    # Only a stem that could reach the ceiling needs measuring after limiting.
    hot = [stem for stem in stems if stem.sample_max * float(curve.static) > 0.5 * ceiling]
    stems_peak = max((_to_db(_weighted_true_peak(stem, curve, high, low)) for stem in hot), default=float("-inf"))
    mix_peak = _to_db(_weighted_true_peak(mix, curve, high, low))
    return LoudnessResult(curve, weighted.lufs_under(curve), mix_peak, stems_peak)


def normalize_tracks(mix: Any, stems: Sequence[Any], sr: int, target_lufs: float,
                     ceiling_db: float, on_pass: Callable[[], None] = lambda: None) -> tuple[LoudnessResult, int]:
    """The gain curve that brings the on-disk `mix` to `target_lufs` with its true peak, and
    each of `stems`' (tracks that get the same curve), at or under `ceiling_db` dBTP, repeating
    gain and limiting until both hold. Returns the result and the number of passes.

    The ceiling always holds; loudness gives way (with a warning) when reaching it would take
    more than MAX_LIMITER_DB of limiting, e.g. a few clicks in silence. Silence (loudness -inf)
    gets gain 0 dB. `on_pass` is called after the first measurement and after each gain and
    limiter pass (progress on long films).
    """
    weighted = _KWeighted(mix, sr)
    measured = weighted.lufs
    peaks = _TrackPeaks(mix)
    on_pass()
    if not np.isfinite(measured):
        unity = GainCurve(mix.num_samples, 0.0)
        high, low = unity.block_extremes(peaks.bound.size)
        return LoudnessResult(unity, float("-inf"), _to_db(_weighted_true_peak(peaks, unity, high, low))), 0
    return _search_gain(peaks, [_TrackPeaks(s) for s in stems], sr, measured, target_lufs, ceiling_db, weighted,
                        on_pass)


def _search_gain(mix: _TrackPeaks, stems: list[_TrackPeaks], sr: int, measured: float, target_lufs: float,
                 ceiling_db: float, weighted: _KWeighted,
                 on_pass: Callable[[], None] = lambda: None) -> tuple[LoudnessResult, int]:
    """The gain and limiter passes of normalize_tracks."""
    gain_db = target_lufs - measured
    upper_db = gain_db + MAX_EXTRA_GAIN_DB
    margin_db, previous_lufs = 0.05, None
    for passes in range(1, MAX_PASSES + 1):
        result = _gain_and_limit(mix, stems, sr, gain_db, ceiling_db - margin_db, weighted)
        on_pass()
        too_deep = result.limiter_db > MAX_LIMITER_DB + 0.1
        if not too_deep and abs(result.lufs - target_lufs) <= LUFS_TOLERANCE and result.highest_peak_db <= ceiling_db:
            return result, passes
        if too_deep:
            upper_db = gain_db - (result.limiter_db - MAX_LIMITER_DB)
        elif result.highest_peak_db > ceiling_db:
            margin_db += result.highest_peak_db - ceiling_db + 0.05
        elif previous_lufs is not None and result.lufs < target_lufs and result.lufs - previous_lufs < 0.05:
            break                                   # more gain would only feed the limiter
        previous_lufs = result.lufs
        gain_db = min(gain_db + target_lufs - result.lufs, upper_db)
    log.warning("loudness %.1f LUFS / %.2f dBTP after %d passes (target %.1f LUFS, %.1f dBTP)",
                result.lufs, result.highest_peak_db, passes, target_lufs, ceiling_db)
    if result.highest_peak_db > ceiling_db:
        # The ceiling is a hard promise; loudness is the one to give way.
        trim_db = ceiling_db - result.highest_peak_db - 0.01
        result = LoudnessResult(result.gain.trimmed(trim_db), result.lufs + trim_db, result.true_peak_db + trim_db,
                                result.stems_true_peak_db + trim_db)
    return result, passes
