"""Rectified-flow sampling and the flow-matching training objective (spec §1.8, §6.1).

Independent of the network: everything takes `velocity_fn(t, x)` where `t` is the flow
time as a float32 tensor of shape [1] (1 = pure noise, 0 = data; the DiT sees `t`, i.e. the
scheduler timestep divided by 1000) and `x` the latents [B, S, C].

The schedule and the Euler step are diffusers' `FlowMatchEulerDiscreteScheduler`
(`num_train_timesteps=1000`, shift 1, `sigmas = linspace(1, 1/N, N)` + a terminal 0), the
same object the original code uses, so the step arithmetic (fp32 update, cast back to the
velocity dtype) is the library's.

Classifier-free guidance: with `guidance_scale > 1`, `velocity_fn` is called on the doubled
batch `[x; x]` and must return `[v_uncond; v_cond]`; the two are mixed by `cfg_combine`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

VelocityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
NUM_TRAIN_TIMESTEPS = 1000


@dataclass(frozen=True)
class StepRecord:
    """What happened in one Euler step (handed to `on_step`)."""

    index: int
    timestep: torch.Tensor  # [1] flow time passed to velocity_fn (t_k / 1000)
    latents_in: torch.Tensor  # [B, S, C]
    velocity_raw: torch.Tensor  # [2B, S, C] (uncond; cond) with CFG, else [B, S, C]
    velocity: torch.Tensor  # [B, S, C] after guidance
    latents_out: torch.Tensor  # [B, S, C]


def make_scheduler(num_steps: int, device=None):
    """A diffusers flow-match scheduler set to `sigmas = linspace(1, 1/N, N)` (+ terminal 0)."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=NUM_TRAIN_TIMESTEPS)
    sigmas = np.linspace(1.0, 1.0 / num_steps, num_steps)
    scheduler.set_timesteps(sigmas=sigmas, device=device)
    return scheduler


def cfg_combine(v_uncond: torch.Tensor, v_cond: torch.Tensor, guidance_scale: float) -> torch.Tensor:
    """`v = v_u + g · (v_c − v_u)`."""
    return v_uncond + guidance_scale * (v_cond - v_uncond)


def _guided_velocity(velocity_fn: VelocityFn, t: torch.Tensor, x: torch.Tensor,
                     guidance_scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    if guidance_scale <= 1.0:
        raw = velocity_fn(t, x)
        return raw, raw
    raw = velocity_fn(t, torch.cat([x, x]))  # [2B, S, C]
    v_uncond, v_cond = raw.chunk(2)
    return raw, cfg_combine(v_uncond, v_cond, guidance_scale)


def sample_flow_euler(velocity_fn: VelocityFn, noise: torch.Tensor, num_steps: int,
                      guidance_scale: float = 1.0,
                      on_step: Optional[Callable[[StepRecord], None]] = None) -> torch.Tensor:
    """Integrate from noise (σ = 1) to data (σ = 0) with `num_steps` Euler steps.

    Args:
        velocity_fn: `(t [1], x) -> v`, see the module docstring for the CFG batch layout.
        noise: initial latents x₀ [B, S, C].
        num_steps: N Euler steps (AudioStory: 50).
        guidance_scale: CFG scale; ≤ 1 disables guidance (one call per step on x).
        on_step: called with a `StepRecord` after every step.

    Returns:
        Latents [B, S, C] (dtype of the velocity, as diffusers' step casts back).
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be at least 1, got {num_steps}")
    scheduler = make_scheduler(num_steps, device=noise.device)
    x = noise
    for index, t in enumerate(scheduler.timesteps):
        t_in = (t / NUM_TRAIN_TIMESTEPS).reshape(1).to(torch.float32)  # [1]
        raw, v = _guided_velocity(velocity_fn, t_in, x, guidance_scale)
        x_next = scheduler.step(v, t, x, return_dict=False)[0]
        if on_step is not None:
            on_step(StepRecord(index, t_in, x, raw, v, x_next))
        x = x_next
    return x


def initial_noise(seed: int, batch: int, seq_len: int, channels: int) -> torch.Tensor:
    """`torch.manual_seed(seed); torch.randn(1, S, C)` drawn on the CPU in float32 → [batch, S, C].

    AudioStory quirk: the seed is reset for every clip, so all clips share the same noise
    (spec §1.8 step 1, §8.2 item 4). A private generator leaves the global RNG untouched.
    """
    generator = torch.Generator(device="cpu").manual_seed(seed)
    noise = torch.randn(1, seq_len, channels, generator=generator, dtype=torch.float32)
    return noise.expand(batch, -1, -1).contiguous()


# --------------------------------------------------------------------------------------------
# Training objective
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FlowLossOutput:
    loss: torch.Tensor  # [] mean over elements per sample, then over the batch
    timesteps: torch.Tensor  # [B] training timesteps in {1000, …, 1}
    noisy: torch.Tensor  # [B, S, C] (1 − σ)·x + σ·ε
    prediction: torch.Tensor  # [B, S, C] velocity prediction


def training_generator(seed: int, latents: torch.Tensor) -> torch.Generator:
    """A seeded generator on the latents' device, the one `draw_training_noise` needs."""
    return torch.Generator(device=latents.device).manual_seed(int(seed))


def draw_training_noise(latents: torch.Tensor, generator: Optional[torch.Generator] = None):
    """ε ~ N(0, I) like `latents`, then u = sigmoid(N(0, 1)) per sample (logit-normal), in that
    order, both drawn on the latents' device.

    Raises:
        ValueError: `generator` lives on another device than the latents (torch cannot draw
            CUDA numbers from a CPU generator); make it with `training_generator`.
    """
    if generator is not None and generator.device != latents.device:
        raise ValueError(f"the random generator is on {generator.device} but the latents are on {latents.device}; "
                         "create it with training_generator(seed, latents)")
    noise = torch.randn(latents.shape, generator=generator, dtype=latents.dtype, device=latents.device)
    draws = torch.normal(0.0, 1.0, size=(latents.shape[0],), generator=generator, device=latents.device)
    return noise, torch.sigmoid(draws)


def flow_match_loss(velocity_fn: VelocityFn, latents: torch.Tensor, noise: torch.Tensor,
                    u: torch.Tensor) -> FlowLossOutput:
    """TangoFlux flow-matching loss: index = ⌊1000·u⌋ into the 1000-step table, σ = t/1000,
    x_σ = (1−σ)x + σε, target ε − x (spec §6.1)."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    table = FlowMatchEulerDiscreteScheduler(num_train_timesteps=NUM_TRAIN_TIMESTEPS)
    index = (u.cpu() * NUM_TRAIN_TIMESTEPS).long()
    timesteps = table.timesteps[index].to(latents.device)  # [B]
    sigmas = table.sigmas[index].to(device=latents.device, dtype=latents.dtype).view(-1, 1, 1)
    noisy = (1.0 - sigmas) * latents + sigmas * noise
    prediction = velocity_fn(timesteps / NUM_TRAIN_TIMESTEPS, noisy)
    target = noise - latents
    per_sample = ((prediction.float() - target.float()) ** 2).reshape(latents.shape[0], -1).mean(dim=1)
    return FlowLossOutput(per_sample.mean(), timesteps, noisy, prediction)
