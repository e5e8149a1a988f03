"""Mixing: rendered cues placed on the soundtrack to the sample, then set to a loudness target.

1. Placement. Each cue's first sample lands on `cue.start_sample`, untouched. At a join between
   two cues the outgoing cue is not chopped: it is extended past the boundary by its own last
   samples played backwards (a reflection, so the waveform stays continuous) under an
   equal-power cosine fade-out. At a picture cut the incoming cue enters at full level on its
   first sample, so a hit written on the cut frame stays on it; the overlap lasts
   `cut_crossfade_ms`. Where one shot was split into several cues (`cue.parts > 1`) there is
   no picture event at the join, so the incoming cue also fades in (sine curve) over
   `split_crossfade_ms`: a true equal-power crossfade (its first sample is still placed on its
   start sample, only faded). A join whose incoming waveform already
   continues the outgoing one (a backend that rendered one continuous timeline and sliced it)
   is left exactly as rendered.
2. Optional original-audio bed at `original_gain_db`, ducked by `duck_db` wherever the new
   track is sounding (a smoothed side-chain envelope of the new track).
3. Loudness: the sum is gained to `lufs` (ITU-R BS.1770 integrated, measured by pyloudnorm) and
   passed through a true-peak limiter (4x-oversampled peak detection, look-ahead gain reduction
   with smooth attack and release); gain and limiting repeat until loudness is within
   LUFS_TOLERANCE of the target and the true peak is at or under `true_peak_db`. The ceiling
   always holds; limiting never goes deeper than MAX_LIMITER_DB, so material that would need
   more (clicks in silence) ends up quieter than the target, with a warning.
   True peaks scale with gain, so each track's oversampled peak envelope is computed once, and
   only in blocks where some pass's gain could take it over the ceiling (a block's samples bound
   what the interpolation can reach); after limiting, the exact peak is found block by block
   from the loudest bound down, which stops long before the whole track is oversampled.
   Every stem gets the same static gain and the same limiter gain curve as the mix (the
   limiter's gain is one curve for all channels), so the stems sum to the final mix. The
   limiter watches each stem's peaks as well as the mix's: stems that partly cancel in the sum
   (music and effects in opposite phase) would otherwise each peak above the ceiling, or clip.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from typing import Callable, Mapping, Sequence

import numpy as np
import pyloudnorm
from scipy import signal
from scipy.ndimage import minimum_filter1d

from .ducking import Ducker
from .ducking import duck_gain
from .types import Cue, CueAudio, DubPlan, RenderResult, Soundtrack

log = logging.getLogger(__name__)

# Integrated loudness targets (LUFS): streaming/web, EBU R128 broadcast, ATSC A/85 (US TV).
LOUDNESS_PRESETS: dict[str, float] = {"web": -16.0, "ebu-r128": -23.0, "atsc-a85": -24.0}
LUFS_TOLERANCE = 0.2        # LU, how close the loop aims (the promise to users is +-0.5 LU)
MAX_PASSES = 8              # gain+limit passes before giving up on a target
MAX_EXTRA_GAIN_DB = 12.0    # most gain the loop adds beyond plain normalisation (all of it limited)
MAX_LIMITER_DB = 12.0       # deepest limiting allowed; beyond it loudness falls short of the target
OVERSAMPLE = 4              # true-peak detection rate multiple (as ITU-R BS.1770 annex 2)
PEAK_REACH = 10             # samples either side that one interpolated value depends on
PEAK_BLOCK = 2048           # samples per block of the lazy true-peak envelope
BOUND_CHUNK_BLOCKS = 256    # blocks whose bounds are computed together
LIMITER_ATTACK_MS = 5.0     # gain falls over this look-ahead before a peak
LIMITER_RELEASE_MS = 40.0   # ... and holds, then recovers over about this long after it
LIMITER_BLOCK = 1 << 18     # samples of limiter gain computed at a time (about 5 s at 48 kHz)
SEAMLESS_RATIO = 1.5        # a join is seamless if it misses the prediction by <= this x the curvature
SEAM_PROBE = 48             # samples each side of a join inspected for continuity
BED_DUCK_THRESHOLD_DB = -12.0   # the original bed ducks fully only where the new track is within ~this of its loud level
GATE_BLOCK_S = 0.4          # s, BS.1770 gating block
GATE_HOP_S = 0.1            # s, ... started every 100 ms (75 % overlap)
ABSOLUTE_GATE_LUFS = -70.0  # blocks quieter than this never count
RELATIVE_GATE_LU = 10.0     # ... nor blocks this far under the ungated loudness
CHANNEL_GAINS = (1.0, 1.0, 1.0, 1.41, 1.41)   # BS.1770 weights: L, R, C, Ls, Rs
LOUDNESS_CHUNK_HOPS = 50    # hops per measured chunk (5 s): loudness memory is flat in length


@dataclass(frozen=True)
class MixOptions:
    """How to mix. Levels in dB (LUFS for `lufs`, dBTP for `true_peak_db`), fades in ms."""

    lufs: float = -16.0
    true_peak_db: float = -1.0
    cut_crossfade_ms: float = 50.0
    split_crossfade_ms: float = 1000.0
    original_gain_db: float = -12.0
    duck_db: float = -8.0

    def __post_init__(self) -> None:
        if not -70.0 < self.lufs < 0.0:
            raise ValueError(f"lufs must be between -70 and 0 LUFS, got {self.lufs}")
        if self.true_peak_db > 0.0:
            raise ValueError(f"true_peak_db must be at most 0 dBTP, got {self.true_peak_db}")
        if self.cut_crossfade_ms < 0 or self.split_crossfade_ms < 0:
            raise ValueError("crossfade lengths must be zero or positive milliseconds")
        if self.duck_db > 0:
            raise ValueError(f"duck_db lowers the original, so it must be zero or negative, got {self.duck_db}")


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


class _PeakEnvelope:
    """The per-sample true peak of one track (`oversampled_peaks`), interpolated only where it
    can matter. Each block starts at its sample peak (a lower bound) with an upper bound
    (worst phase gain x the largest nearby sample); `above(level)` makes exact every block whose
    bound exceeds `level`, so the envelope is exact wherever the true peak could exceed it."""

    def __init__(self, audio: np.ndarray) -> None:
        self.audio = audio
        sample_peak = _sample_peak(audio)                                     # (n,)
        self.sample_max = float(sample_peak.max(initial=0.0))
        self.bound = _block_reduce(sample_peak, np.maximum) * np.float32(_polyphase()[2])  # (blocks,)
        # Each sample's on-sample value (a lower bound of its true peak) until made exact; the
        # per-sample peaks are kept once per track (a film's track is long).
        self.peaks = sample_peak
        self.peaks *= np.float32(max(1.0, _polyphase()[1]))
        self.exact = np.zeros(self.bound.shape, dtype=bool)

    def above(self, level: float) -> np.ndarray:
        todo = np.flatnonzero((self.bound > level) & ~self.exact)
        for start, stop in _runs(todo):
            a, b = start * PEAK_BLOCK, min(stop * PEAK_BLOCK, self.peaks.shape[-1])
            _interpolated_peaks(_segment(self.audio, a, b), self.peaks[a:b])
        self.exact[todo] = True
        return self.peaks

    def upper(self, first_block: int = 0, stop_block: int | None = None) -> np.ndarray:
        """Per-sample upper bound of the true peak over blocks [first_block, stop_block): exact
        where computed, else the block bound."""
        blocks = slice(first_block, stop_block)
        a, b = first_block * PEAK_BLOCK, self.peaks.shape[-1] if stop_block is None else stop_block * PEAK_BLOCK
        n = min(b, self.peaks.shape[-1]) - a
        bound = np.repeat(self.bound[blocks], PEAK_BLOCK)[:n]
        return np.where(np.repeat(self.exact[blocks], PEAK_BLOCK)[:n], self.peaks[a:a + n], bound)


def _sample_peak(audio: np.ndarray) -> np.ndarray:
    """Largest |sample| over channels at each sample (n,), a block at a time (no full |audio| copy)."""
    peak = np.empty(audio.shape[-1], dtype=np.float32)
    for start in range(0, audio.shape[-1], PEAK_BLOCK * BOUND_CHUNK_BLOCKS):
        stop = min(start + PEAK_BLOCK * BOUND_CHUNK_BLOCKS, audio.shape[-1])
        peak[start:stop] = np.abs(audio[:, start:stop]).max(axis=0)
    return peak


def _runs(indices: np.ndarray) -> list[tuple[int, int]]:
    """Sorted block indices as [start, stop) runs of consecutive blocks."""
    if indices.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(indices) > 1)
    starts = np.concatenate([[indices[0]], indices[breaks + 1]])
    stops = np.concatenate([indices[breaks], [indices[-1]]]) + 1
    return list(zip(starts.tolist(), stops.tolist()))


def _block_reduce(values: np.ndarray, fn) -> np.ndarray:
    """fn (np.maximum / np.minimum) of `values` (n,) over each PEAK_BLOCK and its two neighbours."""
    n = values.shape[-1]
    count, whole = -(-n // PEAK_BLOCK), n // PEAK_BLOCK
    if count == 0:
        return np.zeros(0, dtype=np.float32)
    # Whole blocks through a view (no copy as long as the film), then the short last block.
    block = np.empty(count, dtype=np.float32)
    block[:whole] = fn.reduce(np.ascontiguousarray(values[:whole * PEAK_BLOCK]).reshape(whole, PEAK_BLOCK), axis=1)
    if whole < count:
        block[whole] = fn.reduce(values[whole * PEAK_BLOCK:])
    edged = np.concatenate([block[:1], block, block[-1:]])
    return fn(fn(edged[:-2], edged[1:-1]), edged[2:])


def _weighted_true_peak(envelope: _PeakEnvelope, weight: np.ndarray,
                        spread: np.ndarray | None = None) -> float:
    """Exact true peak (linear) of envelope.audio * weight, weight (n,) a smooth gain curve.

    In a block the peak is at most the largest weight x (the track's own true peak) plus what the
    weight's swing within the block and its neighbours (`spread`, per block) can add through
    the filter; blocks are interpolated loudest bound first until no remaining bound can beat
    the largest exact peak found."""
    if spread is None:
        spread = _block_reduce(weight, np.maximum) - _block_reduce(weight, np.minimum)
    count, n = envelope.bound.shape[0], weight.shape[-1]
    block_bound = np.empty(count, dtype=np.float32)
    best = 0.0
    # A few hundred blocks at a time: the products are never as long as the film.
    for first in range(0, count, BOUND_CHUNK_BLOCKS):
        stop = min(first + BOUND_CHUNK_BLOCKS, count)
        a, b = first * PEAK_BLOCK, min(stop * PEAK_BLOCK, n)
        scaled = np.zeros((stop - first) * PEAK_BLOCK, dtype=np.float32)
        scaled[:b - a] = weight[a:b] * envelope.upper(first, stop)
        block_bound[first:stop] = scaled.reshape(stop - first, PEAK_BLOCK).max(axis=1)
        best = max(best, float((envelope.peaks[a:b] * weight[a:b]).max(initial=0.0)))   # a lower bound
    block_bound += envelope.bound * spread
    for block in np.argsort(block_bound)[::-1]:
        if block_bound[block] <= best:
            break
        a, b = block * PEAK_BLOCK, min((block + 1) * PEAK_BLOCK, weight.shape[-1])
        seg = _segment(envelope.audio, a, b) * _segment(weight[None, :], a, b)
        peaks = np.zeros(b - a, dtype=np.float32)
        _interpolated_peaks(seg, peaks)
        best = max(best, float(peaks.max()))
    return best


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


def _weighted_lufs(audio: np.ndarray, weight: np.ndarray, sr: int) -> float:
    """integrated_lufs(audio * weight) without materialising the product (weight (n,))."""
    if audio.shape[-1] < int(GATE_BLOCK_S * sr) + 1:
        return integrated_lufs(audio * weight, sr)
    return _chunked_lufs(lambda a, b: audio[:, a:b] * weight[a:b], audio.shape[0], audio.shape[-1], sr)


@lru_cache(maxsize=8)
def _k_weighting(sr: int) -> tuple[tuple[np.ndarray, np.ndarray, float], ...]:
    """(b, a, passband gain) of each K-weighting stage at `sr`, as pyloudnorm designs them."""
    return tuple((f.b, f.a, f.passband_gain) for f in pyloudnorm.Meter(sr)._filters.values())


def _hop_energies(chunk_of, channels: int, n: int, sr: int) -> np.ndarray:
    """Channel-weighted sum of squares of the K-weighted signal per 100 ms hop (hops,). The
    filters run chunk by chunk with their state carried over, so the result equals filtering
    the whole track at once."""
    hop = int(round(GATE_HOP_S * sr))
    stages = _k_weighting(sr)
    states = [np.zeros((channels, max(len(b), len(a)) - 1)) for b, a, _ in stages]
    gains = np.array([CHANNEL_GAINS[min(i, len(CHANNEL_GAINS) - 1)] for i in range(channels)])[:, None]
    step = hop * LOUDNESS_CHUNK_HOPS
    energies = np.zeros(-(-n // hop))
    for start in range(0, n, step):
        y = np.asarray(chunk_of(start, min(start + step, n)), dtype=np.float64)   # (channels, <= step)
        for i, (b, a, gain) in enumerate(stages):
            y, states[i] = signal.lfilter(b, a, y, axis=-1, zi=states[i])
            y *= gain
        power = (np.square(y) * gains).sum(axis=0)
        hops = -(-power.shape[-1] // hop)
        padded = np.zeros(hops * hop)
        padded[:power.shape[-1]] = power
        energies[start // hop:start // hop + hops] = padded.reshape(hops, hop).sum(axis=1)
    return energies


def _chunked_lufs(chunk_of, channels: int, n: int, sr: int) -> float:
    """BS.1770 gating over 400 ms blocks every 100 ms (block count and zero-padded last block as
    pyloudnorm counts them), from per-hop energies."""
    hop = int(round(GATE_HOP_S * sr))
    per_block = int(round(GATE_BLOCK_S / GATE_HOP_S))
    energies = _hop_energies(chunk_of, channels, n, sr)
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


# ---------------------------------------------------------------------------- placement
def _is_seamless(tail: np.ndarray, head: np.ndarray) -> bool:
    """Whether the incoming cue's `head` continues the outgoing cue's `tail` (their last and
    first millisecond or so): the first incoming sample is where the outgoing waveform was
    heading (linear prediction from its last two samples), within the curvature the waveform
    itself shows there, and the incoming side is not much quieter. Joining such cues as they
    are cannot click or chop."""
    if tail.shape[-1] < 4 or head.shape[-1] < 4:
        return False
    curvature = np.concatenate([np.abs(np.diff(tail, 2, axis=-1)), np.abs(np.diff(head, 2, axis=-1))], axis=-1)
    predicted = 2.0 * tail[:, -1] - tail[:, -2]
    miss = np.abs(head[:, 0] - predicted)
    # A cue that falls (nearly) silent while the outgoing one sounds would chop it: not seamless.
    level_kept = np.sqrt(np.mean(head ** 2)) >= 0.25 * np.sqrt(np.mean(tail ** 2))
    return bool(level_kept and np.all(miss <= SEAMLESS_RATIO * curvature.max(axis=-1) + 1e-7))


def _equal_power(length: int) -> tuple[np.ndarray, np.ndarray]:
    """(fade_out, fade_in) cosine/sine curves, fade_out**2 + fade_in**2 == 1."""
    angle = (np.arange(length, dtype=np.float32) + 0.5) / length * (np.pi / 2)
    return np.cos(angle), np.sin(angle)


def _join_samples(cue: Cue, nxt: Cue | None, total: int, sr: int, options: MixOptions) -> tuple[int, bool]:
    """(overlap length in samples, whether it is a split join) after `cue`."""
    split = nxt is not None and nxt.shot_index == cue.shot_index and nxt.parts > 1 and nxt.part == cue.part + 1
    ms = options.split_crossfade_ms if split else options.cut_crossfade_ms
    length = min(int(round(ms * sr / 1000.0)), cue.num_samples, total - cue.end_sample)
    if nxt is not None and nxt.start_sample == cue.end_sample:
        length = min(length, nxt.num_samples)
    return max(length, 0), split


def _place_stem(out: np.ndarray, plan: DubPlan, clip_of: Callable[[int], np.ndarray | None],
                options: MixOptions) -> int:
    """Add one stem of every cue into `out` (2, total); returns how many joins were seamless.
    `clip_of(i)` is that stem of cue i (None where it has none), asked for once per cue: a cue
    read from the cache is in memory only while it and its neighbour are placed."""
    seamless = 0
    cues = plan.cues
    ahead: tuple[int, np.ndarray | None] | None = None   # the next cue's clip, when a join read it
    for i, cue in enumerate(cues):
        clip = ahead[1] if ahead is not None and ahead[0] == i else clip_of(i)
        ahead = None
        if clip is None:
            continue
        out[:, cue.start_sample:cue.end_sample] += clip
        nxt = cues[i + 1] if i + 1 < len(cues) else None
        length, split = _join_samples(cue, nxt, plan.total_samples, plan.sample_rate, options)
        if length == 0:
            continue
        nxt_clip = None
        if nxt is not None and nxt.start_sample == cue.end_sample:
            nxt_clip = clip_of(i + 1)
            ahead = (i + 1, nxt_clip)
        if nxt_clip is not None and _is_seamless(clip[:, -SEAM_PROBE:], nxt_clip[:, :SEAM_PROBE]):
            seamless += 1
            continue
        fade_out, fade_in = _equal_power(length)
        out[:, cue.end_sample:cue.end_sample + length] += clip[:, ::-1][:, :length] * fade_out
        if split and nxt_clip is not None:
            # The incoming part's head is written already at unity; bring it to the sine curve.
            out[:, nxt.start_sample:nxt.start_sample + length] -= nxt_clip[:, :length] * (1.0 - fade_in)
    return seamless


def place_cues(render: RenderResult, plan: DubPlan, options: MixOptions) -> tuple[dict[str, np.ndarray], int]:
    """Every stem of the render as a (2, plan.total_samples) track, cues at their exact samples."""
    by_index = {c.cue_index: c for c in render.cues}
    names = sorted({name for c in render.cues for name in c.stems})
    stems: dict[str, np.ndarray] = {}
    seamless = 0
    for name in names:
        stems[name] = np.zeros((2, plan.total_samples), dtype=np.float32)
        seamless += _place_stem(stems[name], plan, _clips_of(by_index, plan, name), options)
    return stems, seamless


def _clips_of(by_index: Mapping[int, CueAudio], plan: DubPlan, name: str) -> Callable[[int], np.ndarray | None]:
    """Stem `name` of the plan's i-th cue, checked against the plan, read when asked for."""
    def clip_of(i: int) -> np.ndarray | None:
        cue = plan.cues[i]
        return _cue_stem(by_index.get(cue.index), cue, name)
    return clip_of


def _cue_stem(audio: CueAudio | None, cue: Cue, name: str) -> np.ndarray | None:
    if audio is None or name not in audio.stems:
        return None
    clip = _as_stereo(np.asarray(audio.stems[name], dtype=np.float32))
    if clip.shape[-1] != cue.num_samples or audio.start_sample != cue.start_sample:
        raise ValueError(f"cue {cue.index} stem {name!r} has {clip.shape[-1]} samples at {audio.start_sample}; "
                         f"the plan wants {cue.num_samples} at {cue.start_sample}")
    return clip


def _as_stereo(audio: np.ndarray) -> np.ndarray:
    if audio.ndim == 1:
        audio = audio[None, :]
    if audio.shape[0] == 1:
        return np.repeat(audio, 2, axis=0)
    if audio.shape[0] != 2:
        raise ValueError(f"expected mono or stereo (channels, samples), got shape {audio.shape}")
    return audio


def _window_filter(fn, values: np.ndarray, ahead: int, behind: int) -> np.ndarray:
    """fn (min or max filter) over the window [i - behind, i + ahead] of each i."""
    size = ahead + behind + 1
    return fn(values, size=size, origin=behind - size // 2, mode="nearest")


# ---------------------------------------------------------------------------- loudness
def limit(audio: np.ndarray, sr: int, ceiling_db: float, *, also: Sequence[np.ndarray] = ()) -> np.ndarray:
    """True-peak limiter gain: per-sample gain (n,) that brings `audio` under `ceiling_db` dBTP.

    `also` are tracks shaped like `audio` (the stems) that get the same gain and must stay under
    the ceiling too: stems that partly cancel in the mix can each peak above it.

    The gain needed at each sample (ceiling / oversampled peak) is held with a minimum over
    [i - release, i + attack] and then averaged over [i - attack, i + release]; every value in
    that average saw the peak at i, so the peak stays at or under the ceiling, and the gain
    moves smoothly (about attack + release on each side of a peak). The gain is the same for
    every channel, so applied to each stem it keeps the stems summing to the limited mix.
    """
    return _limiter_gain(_peak_envelope(audio, also, sr), sr, ceiling_db)


def _peak_envelope(audio: np.ndarray, also: Sequence[np.ndarray], sr: int) -> np.ndarray:
    """Per-sample true peak (n,) of the loudest of `audio` and the tracks in `also`."""
    peaks = oversampled_peaks(audio, sr)
    for track in also:
        np.maximum(peaks, oversampled_peaks(track, sr), out=peaks)
    return peaks


def _limiter_gain(peaks: np.ndarray, sr: int, ceiling_db: float) -> np.ndarray:
    """The gain curve of `limit` for a given per-sample peak envelope (n,)."""
    ceiling = np.float32(10 ** (ceiling_db / 20))
    n = peaks.shape[-1]
    if n == 0 or ceiling / max(np.float32(peaks.max()), np.float32(1e-12)) >= 1.0:
        return np.ones(n, dtype=np.float32)
    attack, release = int(LIMITER_ATTACK_MS * sr / 1000), int(LIMITER_RELEASE_MS * sr / 1000)
    kernel = np.hanning(attack + release + 3)[1:-1]
    kernel = (kernel / kernel.sum()).astype(np.float32)
    gain = np.empty(n, dtype=np.float32)
    # Block by block (the window reaches only attack + release samples past a block), so the
    # temporaries stay a block long whatever the length of the film.
    for start in range(0, n, LIMITER_BLOCK):
        stop = min(start + LIMITER_BLOCK, n)
        lo, hi = max(start - attack, 0), min(stop + release, n)
        held = _held_need(peaks, ceiling, lo, hi, attack, release)
        # Weighted mean of held[i - attack .. i + release]: only values that saw the peak; held
        # stays at its edge values beyond the track's ends.
        held = np.pad(held, (lo - (start - attack), stop + release - hi), mode="edge")
        block = signal.oaconvolve(held, kernel[::-1], mode="valid")
        gain[start:stop] = np.minimum(block, 1.0)
    return gain


def _held_need(peaks: np.ndarray, ceiling: np.float32, start: int, stop: int, attack: int, release: int) -> np.ndarray:
    """The limiter's held gain need for samples [start, stop): the least of ceiling / peak over
    [i - release, i + attack], peaks beyond the ends repeating the end values."""
    index = np.clip(np.arange(start - release, stop + attack), 0, peaks.shape[-1] - 1)
    need = np.minimum(np.float32(1.0), ceiling / np.maximum(peaks[index], np.float32(1e-12)), dtype=np.float32)
    return _window_filter(minimum_filter1d, need, ahead=attack, behind=release)[release:release + stop - start]


@dataclass(frozen=True)
class LoudnessResult:
    """Normalised audio, the static gain applied (dB), the limiter's gain curve (n,), and what
    the result measures; `stems_true_peak_db` is the loudest stem's true peak after the same
    gain and curve (-inf without stems). `audio` is None only inside the loudness loop, for a
    pass that was measured but not kept."""

    audio: np.ndarray | None
    gain_db: float
    limiter_gain: np.ndarray
    lufs: float
    true_peak_db: float
    stems_true_peak_db: float = float("-inf")

    @property
    def highest_peak_db(self) -> float:
        """True peak of the loudest of the mix and its stems, dBTP."""
        return max(self.true_peak_db, self.stems_true_peak_db)

    @property
    def limiter_db(self) -> float:
        """Deepest limiter gain reduction, dB (0 when the limiter did nothing)."""
        low = float(self.limiter_gain.min()) if self.limiter_gain.size else 1.0
        return 0.0 if low >= 1.0 else float(-20 * np.log10(max(low, 1e-12)))


@dataclass(frozen=True)
class _Tracks:
    """The mix before gain and the lazy true-peak envelopes of it and of its stems. True peaks
    scale with gain, so each envelope is interpolated at most once, and only where a pass's
    gain could take it over the ceiling."""

    audio: np.ndarray
    mix: _PeakEnvelope
    stems: tuple[_PeakEnvelope, ...]

    def joint_peaks(self, level: float) -> np.ndarray:
        """Per-sample true peak (n,) of the loudest track, exact wherever it exceeds `level`."""
        peaks = self.mix.above(level).copy()
        for stem in self.stems:
            np.maximum(peaks, stem.above(level), out=peaks)
        return peaks


def _gain_and_limit(tracks: _Tracks, sr: int, gain_db: float, ceiling_db: float) -> LoudnessResult:
    gain = np.float32(10 ** (gain_db / 20))
    ceiling = 10 ** (ceiling_db / 20)
    joint = tracks.joint_peaks(ceiling / float(gain))   # a fresh array: scaled in place
    joint *= gain
    curve = _limiter_gain(joint, sr, ceiling_db)
    del joint
    weight = gain * curve
    spread = _block_reduce(weight, np.maximum) - _block_reduce(weight, np.minimum)
    # Only a stem that could reach the ceiling needs measuring after limiting.
    hot = [stem for stem in tracks.stems if stem.sample_max * gain > 0.5 * ceiling]
    stems_peak = max((_to_db(_weighted_true_peak(stem, weight, spread)) for stem in hot), default=float("-inf"))
    mix_peak = _to_db(_weighted_true_peak(tracks.mix, weight, spread))
    # Measured without making the gained track: only the pass that is kept gets its audio.
    return LoudnessResult(None, gain_db, curve, _weighted_lufs(tracks.audio, weight, sr), mix_peak, stems_peak)


def _with_audio(result: LoudnessResult, audio: np.ndarray) -> LoudnessResult:
    """`result` with its audio: `audio` times the static gain and the limiter curve."""
    return replace(result, audio=audio * (result.limiter_gain * np.float32(10 ** (result.gain_db / 20))))


def normalize_loudness(audio: np.ndarray, sr: int, target_lufs: float, ceiling_db: float,
                       stems: Sequence[np.ndarray] = ()) -> tuple[LoudnessResult, int]:
    """Gain to `target_lufs` and limit to `ceiling_db` dBTP, repeating until both hold.
    Returns the result and the number of passes.

    `stems` (tracks shaped like `audio` that will get the same gain and limiter curve) are held
    under the ceiling too. The ceiling always holds; loudness gives way (with a warning) when
    reaching it would take more than MAX_LIMITER_DB of limiting, e.g. a few clicks in silence.
    Silence (loudness -inf) is returned unchanged with gain 0 dB.
    """
    result, passes = _loudness_curve(audio, sr, target_lufs, ceiling_db, stems)
    return (result if result.audio is not None else _with_audio(result, audio)), passes


def _loudness_curve(audio: np.ndarray, sr: int, target_lufs: float, ceiling_db: float,
                    stems: Sequence[np.ndarray] = ()) -> tuple[LoudnessResult, int]:
    """normalize_loudness without making the gained track: the result's audio is None, except
    for silence, which is returned as it is."""
    measured = integrated_lufs(audio, sr)
    if not np.isfinite(measured):
        return LoudnessResult(audio, 0.0, np.ones(audio.shape[-1], np.float32), float("-inf"),
                              true_peak_db(audio, sr)), 0
    # The peak envelopes are gone by the time the gained track is made: they are as long as it.
    return _search_gain(audio, stems, sr, measured, target_lufs, ceiling_db)


def _search_gain(audio: np.ndarray, stems: Sequence[np.ndarray], sr: int, measured: float, target_lufs: float,
                 ceiling_db: float) -> tuple[LoudnessResult, int]:
    """The gain and limiter passes of normalize_loudness; the result's audio is not made."""
    tracks = _Tracks(audio, _PeakEnvelope(audio), tuple(_PeakEnvelope(stem) for stem in stems))
    gain_db = target_lufs - measured
    upper_db = gain_db + MAX_EXTRA_GAIN_DB
    margin_db, previous_lufs = 0.05, None   # only the last pass's loudness is kept, not its curve
    for passes in range(1, MAX_PASSES + 1):
        result = None   # the last pass's gain curve (as long as the film) goes before the next is made
        result = _gain_and_limit(tracks, sr, gain_db, ceiling_db - margin_db)
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
        trim = np.float32(10 ** (trim_db / 20))
        result = LoudnessResult(None, result.gain_db, result.limiter_gain * trim,
                                result.lufs + trim_db, result.true_peak_db + trim_db,
                                result.stems_true_peak_db + trim_db)
    return result, passes


# ---------------------------------------------------------------------------- mix
def _sum(tracks) -> np.ndarray:
    tracks = list(tracks)
    total = tracks[0].copy()
    for track in tracks[1:]:
        total += track
    return total


def mix(render: RenderResult, plan: DubPlan, options: MixOptions = MixOptions(),
        original: np.ndarray | None = None) -> Soundtrack:
    """Mix a render into the final soundtrack.

    Args:
        render: one CueAudio per plan cue (any stems), at plan.sample_rate.
        plan: where each cue goes; the soundtrack is exactly plan.total_samples long.
        options: loudness, true-peak ceiling, crossfades (ms), original-bed levels (dB).
        original: the video's own audio (channels, plan.total_samples), kept as a ducked bed.

    Returns:
        Soundtrack whose stems (plus "original" when given) get the mix's gain and limiter
        curve, so they sum to the mix, and stay under the same true-peak ceiling;
        `integrated_lufs` is -inf when everything is silent.

    Raises:
        ValueError: the render does not match the plan (sample rate, cue lengths, original length).
    """
    sr, total = plan.sample_rate, plan.total_samples
    if render.sample_rate != sr:
        raise ValueError(f"render is at {render.sample_rate} Hz but the plan is at {sr} Hz")
    stems, seamless = place_cues(render, plan, options)
    new_track = _sum(stems.values()) if stems else np.zeros((2, total), dtype=np.float32)
    if original is not None:
        bed = _as_stereo(np.asarray(original, dtype=np.float32))
        if bed.shape[-1] != total:
            raise ValueError(f"original audio has {bed.shape[-1]} samples, the plan {total}")
        # Envelope ducking: the bed dips under loud music and effects and lets go when they stop.
        duck = duck_gain(new_track, sr, Ducker(depth_db=options.duck_db, threshold_db=BED_DUCK_THRESHOLD_DB))
        stems["original"] = bed * (np.float32(10 ** (options.original_gain_db / 20)) * duck)
    pre_limit = _sum(stems.values()) if original is not None else new_track
    del new_track   # with a bed, the sum without it is no longer needed
    # A lone stem is the mix itself; several can each peak above the mix where they cancel.
    held = list(stems.values()) if len(stems) > 1 else []
    result, passes = _loudness_curve(pre_limit, sr, options.lufs, options.true_peak_db, held)
    silent = not np.isfinite(result.lufs)
    if silent:
        log.warning("the soundtrack is silent; loudness normalisation was skipped")
    # The same static gain and the same limiter gain curve on the mix and every stem: they sum to
    # the mix. In place: these tracks were made here, and each is as long as the film.
    per_sample = result.limiter_gain * np.float32(10 ** (result.gain_db / 20))
    for track in (pre_limit, *stems.values()):
        track *= per_sample
    settings = {**asdict(options), "gain_db": float(result.gain_db), "limiter_db": round(result.limiter_db, 3),
                "passes": passes, "seamless_joins": seamless, "silent": silent}
    return Soundtrack(sample_rate=sr, mix=pre_limit, stems=stems,
                      integrated_lufs=result.lufs, true_peak_dbtp=result.true_peak_db, settings=settings)
