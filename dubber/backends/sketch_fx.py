"""Sound effects, panning and room sound of the sketch renderer.

Effects start on their first sample with a fast attack, so where the renderer places them is
where the ear hears them: on the event's frame.
"""
from __future__ import annotations

import numpy as np
from scipy import signal
from scipy.ndimage import gaussian_filter1d

from .sketch_instruments import brass, butter_sos, midi_to_hz, piano, timpani

WHOOSH_MIN_S = 0.15   # s, a whoosh shorter than this reads as a click
WHOOSH_MAX_S = 2.0    # s, longer fast-motion ranges get a 2 s whoosh from their first frame
WHOOSH_BANDS_HZ = (250.0, 420.0, 700.0, 1200.0, 2000.0, 3400.0, 5600.0)
WIND_BAND_HZ = (150.0, 1800.0)   # Hz, outdoor air: no rumble, no hiss
WIND_GUST_S = 2.0                # s, smoothing of the gust curve: swells last a few seconds
WIND_CONTROL_HZ = 20.0           # Hz, rate of the gust and intensity curves
WIND_CHUNK_S = 10.0              # s, noise is made and filtered this much at a time (bounded memory)


def _time(num_samples: int, sr: int) -> np.ndarray:
    return np.arange(num_samples, dtype=np.float64) / sr


def bonk(strength: float, sr: int, rng: np.random.Generator, pitch_hz: float = 170.0) -> np.ndarray:
    """Cartoon impact: a thump whose pitch drops fast, plus a short crash of filtered noise."""
    n = int(0.45 * sr)
    t = _time(n, sr)
    freq = pitch_hz * (0.35 + 0.65 * np.exp(-t / 0.04))
    thump = np.sin(2 * np.pi * np.cumsum(freq) / sr) * np.exp(-t / 0.12)
    sos = butter_sos(2, (300.0, 4000.0), "band", sr)
    crash = signal.sosfilt(sos, rng.standard_normal(n)) * np.exp(-t / 0.045) * 2.5
    onset = np.clip(t / 0.0015, 0, 1)
    return (onset * (thump + crash) * (0.45 + 0.55 * strength)).astype(np.float32)


def whoosh(num_samples: int, strength: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Air rushing past: noise through band-pass filters whose centre sweeps up, then down.

    A bank of fixed band-passes with moving gains stands in for one moving filter, so the
    whole whoosh is a few vectorised filter calls.
    """
    n = int(np.clip(num_samples, WHOOSH_MIN_S * sr, WHOOSH_MAX_S * sr))
    u = np.linspace(0.0, 1.0, n)
    centre = np.log(WHOOSH_BANDS_HZ[1]) + (np.log(WHOOSH_BANDS_HZ[-2]) - np.log(WHOOSH_BANDS_HZ[1])) * np.sin(np.pi * u)
    noise = rng.standard_normal(n)
    out = np.zeros(n)
    for band_hz in WHOOSH_BANDS_HZ:
        sos = butter_sos(2, (band_hz / 1.3, band_hz * 1.3), "band", sr)
        gain = np.exp(-0.5 * ((np.log(band_hz) - centre) / 0.45) ** 2)
        out += signal.sosfilt(sos, noise) * gain
    # Quick 15 ms rise so the whoosh is heard from the first frame, swelling to the middle.
    env = np.clip(u * n / (0.015 * sr), 0, 1) * (0.35 + 0.65 * np.sin(np.pi * u) ** 0.7)
    return (out * env * 2.5 * (0.4 + 0.6 * strength)).astype(np.float32)


def zing(strength: float, sr: int, rng: np.random.Generator, laser: bool = False) -> np.ndarray:
    """Bright rising tone for a flash; `laser` makes it a falling FM zap instead."""
    n = int(0.4 * sr)
    t = _time(n, sr)
    if laser:
        freq = 3200.0 * np.exp(-t / 0.09) + 300.0
        phase = 2 * np.pi * np.cumsum(freq) / sr
        tone = np.sin(phase + 2.0 * np.sin(phase * 1.5))
    else:
        freq = 1100.0 * 2.0 ** (1.6 * np.clip(t / 0.15, 0, 1)) * (1 + 0.01 * np.sin(2 * np.pi * 30 * t))
        phase = 2 * np.pi * np.cumsum(freq) / sr
        tone = np.sin(phase) + 0.3 * np.sin(2 * phase) + 0.15 * np.sin(3 * phase)
    env = np.clip(t / 0.002, 0, 1) * np.exp(-t / 0.12)
    return (tone * env * 0.6 * (0.5 + 0.5 * strength)).astype(np.float32)


def stinger(root_midi: int, chord: tuple[int, ...], sr: int, rng: np.random.Generator,
            voice: str = "brass") -> np.ndarray:
    """Orchestral hit for a cut: a timpani stroke on the root under a short chord stab."""
    drum = timpani(midi_to_hz(root_midi), 1.0, sr, rng)
    stab_dur_s = 0.18
    stab = np.zeros(int((stab_dur_s + 0.3) * sr))
    for offset in chord:
        make = brass if voice == "brass" else piano
        note = make(midi_to_hz(root_midi + 24 + offset), stab_dur_s, sr, rng)
        stab[:note.size] += note[:stab.size]
    out = np.zeros(max(drum.size, stab.size))
    out[:drum.size] += 0.9 * drum
    out[:stab.size] += 0.45 * stab
    return out.astype(np.float32)


def wind(num_samples: int, sr: int, rng: np.random.Generator, curve_samples: np.ndarray,
         curve: np.ndarray) -> np.ndarray:
    """Outdoor air under a nature bed: band-passed noise, different in each ear, in slow gusts.

    `curve` (values in [0, 1] at sample positions `curve_samples`) is the picture's motion:
    the wind picks up with it. Returns float32 (2, num_samples), RMS about 1 where the gusts
    and the motion are both at their strongest.
    """
    steps = int(np.ceil(num_samples * WIND_CONTROL_HZ / sr)) + 2
    control_samples = np.arange(steps) * (sr / WIND_CONTROL_HZ)
    gusts = gaussian_filter1d(rng.standard_normal(steps), WIND_GUST_S * WIND_CONTROL_HZ, mode="wrap")
    gusts = 0.5 + 0.5 * np.tanh(gusts / (gusts.std() + 1e-9))            # 0 still .. 1 gusting
    motion = np.clip(np.interp(control_samples, curve_samples, curve), 0.0, 1.0)
    level = (0.3 + 0.7 * gusts) * (0.5 + 0.5 * motion)
    sos = butter_sos(2, WIND_BAND_HZ, "band", sr)
    norm = 1.0 / np.sqrt(2.0 * (WIND_BAND_HZ[1] - WIND_BAND_HZ[0]) / sr)  # unit white noise -> RMS 1
    state = np.zeros((sos.shape[0], 2, 2))                                 # (sections, channels, 2)
    out = np.empty((2, num_samples), dtype=np.float32)
    chunk = int(WIND_CHUNK_S * sr)
    for start in range(0, num_samples, chunk):
        end = min(num_samples, start + chunk)
        band, state = signal.sosfilt(sos, rng.standard_normal((2, end - start)), axis=-1, zi=state)
        out[:, start:end] = band * (norm * np.interp(np.arange(start, end), control_samples, level))
    return out


def pan_gains(pan: float) -> tuple[float, float]:
    """Equal-power pan law: pan -1 is hard left, 0 centre (-3 dB each side), +1 hard right."""
    angle = (np.clip(pan, -1.0, 1.0) + 1.0) * np.pi / 4.0
    return float(np.cos(angle)), float(np.sin(angle))


def room_impulse(sr: int, length_s: float, rt60_s: float, seed: int) -> np.ndarray:
    """Stereo impulse response of a small hall: decorrelated decaying noise per channel,
    darker as it decays, with a 12 ms pre-delay. Shape (2, samples)."""
    rng = np.random.default_rng(seed)
    n = int(length_s * sr)
    t = _time(n, sr)
    decay = np.exp(-6.91 * t / rt60_s)                       # -60 dB at rt60
    sos = butter_sos(1, 3500.0, "low", sr)
    tails = signal.sosfilt(sos, rng.standard_normal((2, n)), axis=-1) * decay
    pre_delay = int(0.012 * sr)
    ir = np.zeros((2, n + pre_delay))
    ir[:, pre_delay:] = tails
    return (ir / np.sqrt(np.sum(ir ** 2, axis=-1, keepdims=True))).astype(np.float32)


def add_reverb(dry: np.ndarray, sr: int, ir: np.ndarray, wet: float) -> np.ndarray:
    """dry (2, n) plus `wet` times its mono sum convolved with a stereo impulse response
    sampled at sr / 2. The room is dark (its tail is low-passed at 3.5 kHz), so the send is
    folded to half rate by averaging sample pairs and the return brought back by linear
    interpolation: half the convolution work for the same sound."""
    n = dry.shape[-1]
    mono = dry.mean(axis=0, dtype=np.float32)
    half = mono[:n - n % 2].reshape(-1, 2).mean(axis=1)                  # (n // 2,)
    tail = signal.oaconvolve(half[None, :], ir, axes=-1)[:, :half.size]  # (2, n // 2)
    at = (np.arange(n) - 0.5) / 2.0                                       # output time in half-rate samples
    grid = np.arange(half.size)
    back = np.stack([np.interp(at, grid, tail[c]) for c in range(2)])
    return (dry + wet * back).astype(np.float32)
