"""Synthesised instrument voices of the sketch renderer.

Every voice is a pure function `voice(freq_hz, dur_s, sr, rng) -> float32 mono note` whose result
includes the note's own decay tail. Notes are short arrays built with whole-array numpy maths
(additive partials, FM, Karplus-Strong computed one delay-line period at a time), so a minute of
music costs a few hundred small array operations, and the renderer caches notes it repeats.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Callable

import numpy as np
from scipy import signal

Voice = Callable[[float, float, int, np.random.Generator], np.ndarray]

A4_HZ = 440.0
A4_MIDI = 69


@lru_cache(maxsize=256)
def butter_sos(order: int, cutoff_hz: float | tuple[float, float], btype: str, sr: int) -> np.ndarray:
    """Butterworth sections, memoised: the same few filters are asked for again and again."""
    return signal.butter(order, cutoff_hz, btype=btype, fs=sr, output="sos")


def midi_to_hz(midi: float) -> float:
    return A4_HZ * 2.0 ** ((midi - A4_MIDI) / 12.0)


def _time(num_samples: int, sr: int) -> np.ndarray:
    return np.arange(num_samples, dtype=np.float64) / sr


def _attack_release(num_samples: int, sr: int, attack_s: float, hold_s: float, release_s: float) -> np.ndarray:
    """Linear attack, flat hold, raised-cosine release; zero after the release."""
    env = np.ones(num_samples)
    attack = min(num_samples, max(1, int(attack_s * sr)))
    env[:attack] = np.arange(attack) / attack
    start = int(max(hold_s, 0.0) * sr)
    if start < num_samples:
        release = min(num_samples - start, max(1, int(release_s * sr)))
        env[start:start + release] *= 0.5 * (1.0 + np.cos(np.pi * np.arange(release) / max(1, int(release_s * sr))))
        env[start + release:] = 0.0
    return env


def _partials(freq_hz: float, ratios, amps, decays_s, t: np.ndarray) -> np.ndarray:
    """Sum of exponentially decaying sine partials; partials above 20 kHz are dropped."""
    ratios, amps, decays_s = (np.asarray(v, dtype=np.float64) for v in (ratios, amps, decays_s))
    keep = ratios * freq_hz < 20_000.0
    phases = 2.0 * np.pi * freq_hz * np.outer(ratios[keep], t)             # (partials, samples)
    env = np.exp(-np.outer(1.0 / decays_s[keep], t))                       # (partials, samples)
    return (amps[keep, None] * env * np.sin(phases)).sum(axis=0)


def _finish(note: np.ndarray) -> np.ndarray:
    peak = float(np.max(np.abs(note))) if note.size else 0.0
    return (note / peak).astype(np.float32) if peak > 0 else note.astype(np.float32)


def _karplus_strong(freq_hz: float, num_samples: int, sr: int, rng: np.random.Generator,
                    t60_s: float, brightness: float) -> np.ndarray:
    """Plucked string: a noise burst circulating in a damped delay line.

    y[n] = g * (y[n-N] + y[n-N-1]) / 2 only looks back at least N samples, so a whole period
    (block of N samples) is computed at once. The loop's pitch is sr / (N + 0.5); the note is
    re-sampled by the small remaining ratio so every pitch is in tune.
    """
    period = max(2, int(sr / freq_hz - 0.5))
    loop_hz = sr / (period + 0.5)
    ratio = freq_hz / loop_hz                                  # >= 1, so we read faster
    need = int(num_samples * ratio) + 2
    blocks = -(-need // period) + 1
    y = np.zeros(blocks * period + 1)                          # y[0] is the zero before time 0
    burst = rng.uniform(-1.0, 1.0, period)
    # A darker excitation (one-pole smoothing) gives a rounder, pizzicato-like pluck.
    burst = signal.lfilter([1.0 - (1.0 - brightness) * 0.9], [1.0, -(1.0 - brightness) * 0.9], burst)
    y[1:period + 1] = burst - burst.mean()
    gain = 0.001 ** (1.0 / max(loop_hz * t60_s, 1.0))
    for k in range(1, blocks):
        lo = k * period + 1
        y[lo:lo + period] = gain * 0.5 * (y[lo - period:lo] + y[lo - period - 1:lo - 1])
    src = np.arange(num_samples) * ratio
    return np.interp(src, np.arange(y.size - 1), y[1:])


def pizzicato(freq_hz: float, dur_s: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    n = int((min(dur_s, 0.5) + 0.35) * sr)
    note = _karplus_strong(freq_hz, n, sr, rng, t60_s=0.45, brightness=0.45)
    return _finish(note * _attack_release(n, sr, 0.002, n / sr - 0.06, 0.06))


def pluck_bass(freq_hz: float, dur_s: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    n = int((dur_s + 0.12) * sr)
    string = _karplus_strong(freq_hz, n, sr, rng, t60_s=1.2, brightness=0.3)
    # A sine at the fundamental gives the body a small speaker still reproduces as pitch.
    body = np.sin(2 * np.pi * freq_hz * _time(n, sr)) * np.exp(-_time(n, sr) / 0.5)
    return _finish((string / (np.max(np.abs(string)) + 1e-9) + 0.6 * body)
                   * _attack_release(n, sr, 0.004, dur_s, 0.1))


def xylophone(freq_hz: float, dur_s: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    n = int(0.45 * sr)
    t = _time(n, sr)
    # A tuned bar: strong fundamental, the 3rd harmonic tuned in, then inharmonic modes.
    note = _partials(freq_hz, (1.0, 3.0, 6.27, 10.3), (1.0, 0.45, 0.16, 0.07), (0.18, 0.07, 0.03, 0.015), t)
    click = rng.standard_normal(n) * np.exp(-t / 0.002) * 0.4
    return _finish(note + click)


def marimba(freq_hz: float, dur_s: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    n = int(0.7 * sr)
    t = _time(n, sr)
    note = _partials(freq_hz, (1.0, 3.93, 9.54), (1.0, 0.25, 0.05), (0.35, 0.08, 0.02), t)
    return _finish(note * np.clip(t / 0.003, 0, 1))


def string_pad(freq_hz: float, dur_s: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Section strings: three detuned sawtooths with slow vibrato through a low-pass filter."""
    n = int((dur_s + 0.5) * sr)
    t = _time(n, sr)
    vibrato = 1.0 + 0.003 * np.sin(2 * np.pi * 5.2 * t + rng.uniform(0, 2 * np.pi))
    base_phase = np.cumsum(freq_hz * vibrato) / sr                         # cycles
    saws = np.zeros(n)
    for detune in (-0.004, 0.0, 0.0045):
        saws += 2.0 * np.mod(base_phase * (1.0 + detune) + rng.uniform(), 1.0) - 1.0
    sos = butter_sos(2, min(2800.0, freq_hz * 6), "low", sr)
    body = signal.sosfilt(sos, saws)
    return _finish(body * _attack_release(n, sr, 0.25, dur_s, 0.45))


def soft_pad(freq_hz: float, dur_s: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Flute-like pad: mostly fundamental, breathy noise, slow swell."""
    n = int((dur_s + 0.7) * sr)
    t = _time(n, sr)
    tone = _partials(freq_hz, (1.0, 2.0, 3.0), (1.0, 0.18, 0.06), (1e9, 1e9, 1e9), t)
    sos = butter_sos(2, (freq_hz * 0.8, freq_hz * 3.0), "band", sr)
    breath = signal.sosfilt(sos, rng.standard_normal(n)) * 0.25
    return _finish((tone + breath) * _attack_release(n, sr, 0.5, dur_s, 0.7))


def fm_pad(freq_hz: float, dur_s: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Two-operator FM pad whose modulation index breathes slowly (a glassy synth texture)."""
    n = int((dur_s + 0.8) * sr)
    t = _time(n, sr)
    index = 1.2 + 0.9 * np.sin(2 * np.pi * 0.35 * t + rng.uniform(0, 2 * np.pi))
    mod = np.sin(2 * np.pi * freq_hz * 2.005 * t)
    tone = np.sin(2 * np.pi * freq_hz * t + index * mod) + 0.5 * np.sin(2 * np.pi * freq_hz * 1.003 * t)
    return _finish(tone * _attack_release(n, sr, 0.4, dur_s, 0.8))


def fm_bell(freq_hz: float, dur_s: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    n = int(0.8 * sr)
    t = _time(n, sr)
    index = 3.5 * np.exp(-t / 0.08)
    tone = np.sin(2 * np.pi * freq_hz * t + index * np.sin(2 * np.pi * freq_hz * 3.5 * t))
    return _finish(tone * np.exp(-t / 0.25) * np.clip(t / 0.002, 0, 1))


def theremin(freq_hz: float, dur_s: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Gliding sine with wide vibrato; it slides up into the note from a third below."""
    n = int((dur_s + 0.3) * sr)
    t = _time(n, sr)
    glide = 2.0 ** (-(4.0 / 12.0) * np.exp(-t / 0.09))
    vibrato = 2.0 ** (0.35 / 12.0 * np.sin(2 * np.pi * 5.8 * t) * np.clip(t / 0.4, 0, 1))
    phase = 2 * np.pi * np.cumsum(freq_hz * glide * vibrato) / sr
    tone = np.sin(phase) + 0.12 * np.sin(2 * phase)
    return _finish(tone * _attack_release(n, sr, 0.12, dur_s, 0.3))


def piano(freq_hz: float, dur_s: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Struck string: slightly stretched partials, higher ones dying faster, damper at note-off."""
    n = int((dur_s + 0.12) * sr)
    t = _time(n, sr)
    k = np.arange(1, 11, dtype=np.float64)
    ratios = k * np.sqrt(1.0 + 0.0004 * k ** 2)
    tau = 1.4 * (261.6 / freq_hz) ** 0.4 / k ** 0.7
    note = _partials(freq_hz, ratios, 1.0 / k ** 1.3, tau, t)
    hammer = rng.standard_normal(n) * np.exp(-t / 0.003) * 0.15
    return _finish((note + hammer) * _attack_release(n, sr, 0.002, dur_s, 0.1))


def brass(freq_hz: float, dur_s: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Brass stab: harmonics whose brightness blooms and fades (an opening-closing filter)."""
    n = int((dur_s + 0.25) * sr)
    t = _time(n, sr)
    k = np.arange(1, 17, dtype=np.float64)
    keep = k * freq_hz < 18_000
    k = k[keep]
    bloom = np.clip(t / 0.03, 0, 1) * np.exp(-t / 0.5)                     # brightness over time
    amps = np.exp(-np.outer(k - 1, 1.0 / (0.4 + 3.5 * bloom))) / k[:, None]  # (harmonics, samples)
    tone = (amps * np.sin(2 * np.pi * freq_hz * np.outer(k, t))).sum(axis=0)
    return _finish(tone * _attack_release(n, sr, 0.015, dur_s, 0.25))


def timpani(freq_hz: float, dur_s: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    n = int(1.4 * sr)
    t = _time(n, sr)
    drop = 1.0 + 0.04 * np.exp(-t / 0.05)                                  # head tension settles
    phase = 2 * np.pi * np.cumsum(freq_hz * drop) / sr
    membrane = (np.sin(phase) * np.exp(-t / 0.6) + 0.5 * np.sin(1.5 * phase) * np.exp(-t / 0.3)
                + 0.25 * np.sin(1.99 * phase) * np.exp(-t / 0.2))
    sos = butter_sos(2, 900.0, "low", sr)
    thud = signal.sosfilt(sos, rng.standard_normal(n)) * np.exp(-t / 0.03) * 2.0
    return _finish(membrane + thud)


def bird_chirp(freq_hz: float, dur_s: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """A quick downward whistle with a fast warble, like a small songbird."""
    n = int(max(dur_s, 0.05) * sr)
    t = _time(n, sr)
    sweep = 1.0 + 0.5 * (1.0 - t / t[-1])
    warble = 1.0 + 0.06 * np.sin(2 * np.pi * 28.0 * t)
    phase = 2 * np.pi * np.cumsum(freq_hz * sweep * warble) / sr
    return _finish(np.sin(phase) * np.hanning(n))


VOICES: dict[str, Voice] = {
    "pizzicato": pizzicato,
    "pluck_bass": pluck_bass,
    "xylophone": xylophone,
    "marimba": marimba,
    "string_pad": string_pad,
    "soft_pad": soft_pad,
    "fm_pad": fm_pad,
    "fm_bell": fm_bell,
    "theremin": theremin,
    "piano": piano,
    "brass": brass,
    "timpani": timpani,
    "bird_chirp": bird_chirp,
}
