"""Oobleck VAE decode and the clip post-processing of AudioStory (spec §1.9, §2.5).

* `build_vae`: `diffusers.AutoencoderOobleck` (Stable Audio Open config by default);
* `decode_latents`: DiT latents [B, S, 64] → waveform [B, channels, S · hop], no latent scaling;
* `trim_to_duration`: keep `int(duration_s · rate)` samples;
* `resample`: soxr (the high-quality resampler librosa ≥ 0.10 uses by default);
* `crossfade_concat`: linear cross-fade of consecutive clips over a fixed overlap.
"""
from __future__ import annotations

import logging
import warnings
from typing import Sequence

import numpy as np
import torch

from .config import VAEConfig

logger = logging.getLogger(__name__)


def build_vae(cfg: VAEConfig = VAEConfig()):
    """A randomly initialised `AutoencoderOobleck` with the given config (eval mode)."""
    from diffusers import AutoencoderOobleck

    # diffusers builds the convolutions with the old `weight_norm` API; its deprecation notice
    # would otherwise land on the user's terminal on every load (the checkpoint keys need it).
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*weight_norm.*", category=FutureWarning)
        return AutoencoderOobleck(**cfg.to_kwargs()).eval()


@torch.no_grad()
def decode_latents(vae, latents: torch.Tensor) -> torch.Tensor:
    """[B, S, C] latents (any device/dtype) → [B, audio_channels, S · hop] waveform in the VAE dtype."""
    param = next(vae.parameters())
    channels_first = latents.transpose(1, 2).to(device=param.device, dtype=param.dtype)  # [B, C, S]
    return vae.decode(channels_first).sample


def duration_to_samples(duration_s: float, sampling_rate: int) -> int:
    """AudioStory trims with `int(d · rate)` (truncation, spec §1.9 step 2)."""
    if duration_s < 0:
        raise ValueError(f"duration must be non-negative, got {duration_s} s")
    return int(duration_s * sampling_rate)


def trim_to_duration(wave: torch.Tensor, duration_s: float, sampling_rate: int) -> torch.Tensor:
    """[..., N] → [..., min(N, int(d · rate))]."""
    return wave[..., : duration_to_samples(duration_s, sampling_rate)]


def resample(wave: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """[channels, N] float → [channels, M] with soxr HQ (spec §1.9 step 3)."""
    import soxr

    if from_rate == to_rate:
        return np.asarray(wave)
    out = soxr.resample(np.asarray(wave, dtype=np.float32).T, from_rate, to_rate, quality="HQ")
    return np.ascontiguousarray(out.T)


def crossfade_concat(clips: Sequence[torch.Tensor], overlap_samples: int) -> torch.Tensor:
    """Join clips [channels, N_i] with a linear cross-fade of `overlap_samples`.

    The running result's last `overlap` samples are faded out with `linspace(1, 0)` and the
    next clip's first `overlap` samples faded in with `linspace(0, 1)`, then summed.
    AudioStory quirk: when either piece is shorter than the overlap the clips are simply
    concatenated (spec §1.9 step 4).
    """
    if not clips:
        raise ValueError("crossfade_concat needs at least one clip")
    out = clips[0]
    for clip in clips[1:]:
        n = overlap_samples
        if n <= 0 or out.shape[-1] < n or clip.shape[-1] < n:
            out = torch.cat([out, clip], dim=-1)
            continue
        fade_out = torch.linspace(1.0, 0.0, n, device=out.device, dtype=out.dtype)
        fade_in = torch.linspace(0.0, 1.0, n, device=out.device, dtype=out.dtype)
        mixed = out[..., -n:] * fade_out + clip[..., :n] * fade_in
        out = torch.cat([out[..., :-n], mixed, clip[..., n:]], dim=-1)
    return out
