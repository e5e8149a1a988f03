"""The Flux detokenizer (`Flux_T5`, TangoFlux-style MM-DiT) of AudioStory (spec §1.8, §2.4).

Sub-modules keep the checkpoint-native names (spec §3.2):

* `transformer`: `diffusers.FluxTransformer2DModel` (6 double + 18 single blocks, width 1024,
  RoPE axes 16/56/56, no guidance embedding) predicting the flow velocity of Oobleck latents;
* `fc`: Linear + ReLU on the mean of the text rows → `pooled_projections`;
* `duration_emebdder` (sic, the typo is in the checkpoint keys): Fourier features of the
  clip duration → one extra text token;
* `text_encoder`: optional Flan-T5 encoder, only ever used to embed the empty string for the
  unconditional CFG branch. That sequence is a constant: it is computed once and cached
  (or supplied with `set_uncond_embeds`).

Conditioning for one clip: text rows C [L, D] (the fused query features) → encoder sequence
[C; duration token] [L+1, D], pooled = fc(mean(C)). Sampling itself lives in `sampler.py`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import nn

from .config import DiTConfig, TextEncoderConfig
from .sampler import FlowLossOutput, StepRecord, flow_match_loss, sample_flow_euler

logger = logging.getLogger(__name__)


class DurationEmbedder(nn.Module):
    """Seconds [B] → [B, 1, D]: clamp to [min, max], normalise to [0, 1], `[t, sin, cos]` Fourier
    features (`weights` [internal/2]) and a Linear (internal + 1 → D)."""

    def __init__(self, dim: int, min_value: float, max_value: float, internal_dim: int = 256):
        super().__init__()
        from diffusers.pipelines.stable_audio.modeling_stable_audio import StableAudioPositionalEmbedding

        self.dim, self.min_value, self.max_value = dim, float(min_value), float(max_value)
        self.time_positional_embedding = nn.Sequential(
            StableAudioPositionalEmbedding(internal_dim), nn.Linear(internal_dim + 1, dim)
        )

    def forward(self, seconds: torch.Tensor) -> torch.Tensor:
        span = self.max_value - self.min_value
        t = (seconds.clamp(self.min_value, self.max_value) - self.min_value) / span  # [B] in [0, 1]
        t = t.to(self.time_positional_embedding[1].weight.dtype)
        return self.time_positional_embedding(t).view(-1, 1, self.dim)  # [B, 1, D]


@dataclass(frozen=True)
class DiTCondition:
    """Everything the transformer needs besides the latents and the timestep."""

    encoder_hidden_states: torch.Tensor  # [B, L+1, D] text rows then the duration token
    pooled_projections: torch.Tensor  # [B, D] fc(mean of the L text rows)
    txt_ids: torch.Tensor  # [L+1, 3] zeros
    img_ids: torch.Tensor  # [S, 3] frame index on all three RoPE axes


class FluxDetokenizer(nn.Module):
    """`Flux_T5`: condition assembly + `FluxTransformer2DModel` velocity + CFG sampling."""

    def __init__(self, cfg: DiTConfig, text_encoder_cfg: Optional[TextEncoderConfig] = None):
        super().__init__()
        from diffusers import FluxTransformer2DModel

        self.cfg = cfg
        width = cfg.text_embedding_dim
        self.text_encoder = self._build_text_encoder(text_encoder_cfg)
        self.fc = nn.Sequential(nn.Linear(width, cfg.joint_attention_dim), nn.ReLU())
        self.duration_emebdder = DurationEmbedder(width, 0.0, cfg.max_duration, cfg.duration_internal_dim)
        self.transformer = FluxTransformer2DModel(
            in_channels=cfg.in_channels, num_layers=cfg.num_layers, num_single_layers=cfg.num_single_layers,
            attention_head_dim=cfg.attention_head_dim, num_attention_heads=cfg.num_attention_heads,
            joint_attention_dim=cfg.joint_attention_dim, pooled_projection_dim=width,
            guidance_embeds=False, axes_dims_rope=tuple(cfg.axes_dims_rope),
        )
        self._uncond: dict[tuple, torch.Tensor] = {}

    @staticmethod
    def _build_text_encoder(cfg: Optional[TextEncoderConfig]) -> Optional[nn.Module]:
        if cfg is None:
            return None
        from transformers import T5EncoderModel

        return T5EncoderModel(cfg.to_hf()).eval()

    @property
    def dtype(self) -> torch.dtype:
        return self.fc[0].weight.dtype

    @property
    def device(self) -> torch.device:
        return self.fc[0].weight.device

    # -- unconditional branch (spec §1.8 step 3) -------------------------------------------
    def uncond_text_ids(self, num_tokens: int) -> tuple[torch.LongTensor, torch.LongTensor]:
        """T5 ids and mask of `""` padded to `num_tokens`: `[</s>, pad, …]`, `[1, 0, …]` (both [1, L])."""
        enc_cfg = self.text_encoder.config if self.text_encoder is not None else None
        eos = enc_cfg.eos_token_id if enc_cfg is not None else 1
        pad = enc_cfg.pad_token_id if enc_cfg is not None else 0
        ids = torch.full((1, num_tokens), pad, dtype=torch.long)
        ids[0, 0] = eos
        mask = torch.zeros((1, num_tokens), dtype=torch.long)
        mask[0, 0] = 1
        return ids, mask

    def set_uncond_embeds(self, embeds: torch.Tensor) -> None:
        """Supply T5("") [1, L, D] computed elsewhere (e.g. a cache file) instead of the encoder."""
        self._uncond = {(embeds.shape[1],): embeds.detach()}

    @torch.no_grad()
    def uncond_embeds(self, num_tokens: int) -> torch.Tensor:
        """T5 encoder output of the empty string, all `num_tokens` rows kept → [1, L, D].

        AudioStory quirk: the padded rows are kept and never masked later (spec §1.8 step 3).

        Raises:
            RuntimeError: there is neither a text encoder nor a supplied sequence of that length.
        """
        key = (num_tokens,)
        if key not in self._uncond:
            if self.text_encoder is None:
                raise RuntimeError(
                    f"No T5 text encoder is loaded; load one or call set_uncond_embeds with a [1, {num_tokens}, D] tensor."
                )
            ids, mask = self.uncond_text_ids(num_tokens)
            device = next(self.text_encoder.parameters()).device
            out = self.text_encoder(input_ids=ids.to(device), attention_mask=mask.to(device))
            self._uncond[key] = out.last_hidden_state
        return self._uncond[key].to(device=self.device, dtype=self.dtype)

    # -- conditioning (spec §1.8 steps 2-7) ------------------------------------------------
    def embed_duration(self, duration_s: torch.Tensor) -> torch.Tensor:
        """[B] seconds → [B, 1, D]."""
        return self.duration_emebdder(duration_s.to(self.device))

    def pooled_projection(self, text: torch.Tensor) -> torch.Tensor:
        """[B, L, D] → [B, D]: ReLU(fc(mean over rows)); the mean includes padded rows."""
        return self.fc(torch.nanmean(text, dim=1))

    def position_ids(self, text_len: int, audio_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        """txt_ids [text_len, 3] zeros; img_ids [audio_len, 3] with (s, s, s) per frame."""
        txt_ids = torch.zeros(text_len, 3, device=self.device)
        frames = torch.arange(audio_len, device=self.device)
        return txt_ids, frames[:, None].expand(audio_len, 3).contiguous()

    def condition(self, text: torch.Tensor, duration_s: torch.Tensor) -> DiTCondition:
        """text [B, L, D] + duration [B] s → `DiTCondition` (sequence [B, L+1, D], pooled [B, D])."""
        text = text.to(device=self.device, dtype=self.dtype)
        pooled = self.pooled_projection(text)  # [B, D]
        duration = self.embed_duration(duration_s).to(text.dtype)  # [B, 1, D]
        sequence = torch.cat([text, duration], dim=1)  # [B, L+1, D]
        txt_ids, img_ids = self.position_ids(sequence.shape[1], self.cfg.audio_seq_len)
        return DiTCondition(sequence, pooled, txt_ids, img_ids)

    def velocity(self, latents: torch.Tensor, timestep: torch.Tensor, cond: DiTCondition) -> torch.Tensor:
        """Latents [B, S, C], flow time [B] or [1] in [0, 1] → velocity [B, S, C].

        The transformer multiplies the timestep by 1000 internally (spec §1.8 step 10).
        """
        timestep = timestep.to(device=self.device, dtype=torch.float32).expand(latents.shape[0])
        return self.transformer(
            hidden_states=latents.to(device=self.device, dtype=self.dtype),
            encoder_hidden_states=cond.encoder_hidden_states,
            pooled_projections=cond.pooled_projections,
            timestep=timestep,
            img_ids=cond.img_ids,
            txt_ids=cond.txt_ids,
            guidance=None,
            return_dict=False,
        )[0]

    # -- sampling (spec §1.8) -------------------------------------------------------------
    def cfg_condition(self, text: torch.Tensor, duration_s: torch.Tensor) -> DiTCondition:
        """Condition of the doubled batch `[T5("") × B; text]` (uncond first), same durations."""
        batch, length = text.shape[:2]
        uncond = self.uncond_embeds(length).expand(batch, -1, -1)  # [B, L, D]
        duration_s = duration_s.reshape(-1).expand(batch)
        return self.condition(torch.cat([uncond, text.to(uncond.dtype)]), torch.cat([duration_s, duration_s]))

    @torch.no_grad()
    def sample(self, text: torch.Tensor, duration_s: torch.Tensor, noise: torch.Tensor,
               num_steps: int, guidance_scale: float,
               on_step: Optional[Callable[[StepRecord], None]] = None) -> torch.Tensor:
        """Denoise `noise` [B, S, C] under per-clip conditions text [B, L, D] and durations [B] s.

        Args:
            guidance_scale: CFG scale g; the unconditional branch is T5("") (spec §1.8 step 3).
                g ≤ 1 runs the conditional branch alone (the original code crashes there, §8.2-3).
            on_step: receives a `StepRecord` after every Euler step (for tests and progress).

        Returns:
            Latents [B, S, C] in the transformer's dtype.
        """
        if guidance_scale > 1.0:
            cond = self.cfg_condition(text, duration_s)
        else:
            cond = self.condition(text, duration_s.reshape(-1).expand(text.shape[0]))

        def velocity_fn(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
            return self.velocity(x, t, cond)

        return sample_flow_euler(velocity_fn, noise.to(self.device), num_steps, guidance_scale, on_step)

    # -- training objective (spec §6.1) ---------------------------------------------------
    def training_loss(self, latents: torch.Tensor, text: torch.Tensor, duration_s: torch.Tensor,
                      noise: torch.Tensor, u: torch.Tensor) -> FlowLossOutput:
        """Flow-matching loss for clean latents [B, S, C] given the random draws (noise, u [B])."""
        cond = self.condition(text, duration_s)

        def velocity_fn(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
            return self.velocity(x, t, cond)

        return flow_match_loss(velocity_fn, latents.to(self.device), noise.to(self.device), u.to(self.device))
