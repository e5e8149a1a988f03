"""The three resampler modules that appear in the AudioStory code base (spec §2.6).

None of them runs on the text-to-long-audio path; they exist so that checkpoints which
carry their weights load strictly, and for the audio-input (continuation) path.

* `PerceiverResampler`: IP-Adapter style Perceiver (`detokenizer/resampler.py`).
* `QwenVisualResampler`: Qwen-VL cross-attention resampler (`tokenizer/qwen_visual.py`),
  the `input_resampler` / `output_resampler` type inherited from SEED-X.
* `WhisperResamplerLlava`: token-axis adaptive average pooling + 2-layer GELU MLP
  (`tokenizer/modeling_whisper.py`), the Whisper-feature adapter of the agent.

Attribute names equal the original state-dict keys.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .config import PerceiverResamplerConfig, QwenResamplerConfig, WhisperResamplerConfig


# --------------------------------------------------------------------------------------------
# Perceiver resampler
# --------------------------------------------------------------------------------------------
def _feed_forward(dim: int, mult: int) -> nn.Sequential:
    inner = dim * mult
    return nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, inner, bias=False), nn.GELU(),
                         nn.Linear(inner, dim, bias=False))


class PerceiverAttention(nn.Module):
    """Latents attend to [inputs; latents]; q and k are both scaled by dim_head^-1/4."""

    def __init__(self, dim: int, dim_head: int, heads: int):
        super().__init__()
        self.heads, self.dim_head = heads, dim_head
        inner = dim_head * heads
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, inner * 2, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def _heads(self, t: torch.Tensor) -> torch.Tensor:  # [B, L, h*d] -> [B, h, L, d]
        b, length, _ = t.shape
        return t.view(b, length, self.heads, self.dim_head).transpose(1, 2)

    def forward(self, x: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        x, latents = self.norm1(x), self.norm2(latents)  # [B, N, dim], [B, Q, dim]
        q = self._heads(self.to_q(latents))  # [B, h, Q, d]
        k, v = self.to_kv(torch.cat([x, latents], dim=-2)).chunk(2, dim=-1)
        k, v = self._heads(k), self._heads(v)  # [B, h, N+Q, d]
        scale = 1.0 / math.sqrt(math.sqrt(self.dim_head))
        weight = (q * scale) @ (k * scale).transpose(-2, -1)  # [B, h, Q, N+Q]
        weight = torch.softmax(weight.float(), dim=-1).to(weight.dtype)
        out = (weight @ v).transpose(1, 2).flatten(2)  # [B, Q, h*d]
        return self.to_out(out)


class PerceiverResampler(nn.Module):
    """[B, N, embedding_dim] → [B, num_queries, output_dim]."""

    def __init__(self, cfg: PerceiverResamplerConfig):
        super().__init__()
        self.latents = nn.Parameter(torch.randn(1, cfg.num_queries, cfg.dim) / cfg.dim ** 0.5)
        self.proj_in = nn.Linear(cfg.embedding_dim, cfg.dim)
        self.proj_out = nn.Linear(cfg.dim, cfg.output_dim)
        self.norm_out = nn.LayerNorm(cfg.output_dim)
        self.layers = nn.ModuleList(
            nn.ModuleList([PerceiverAttention(cfg.dim, cfg.dim_head, cfg.heads), _feed_forward(cfg.dim, cfg.ff_mult)])
            for _ in range(cfg.depth)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        latents = self.latents.repeat(x.shape[0], 1, 1)  # [B, Q, dim]
        x = self.proj_in(x)  # [B, N, dim]
        for attn, ff in self.layers:
            latents = attn(x, latents) + latents
            latents = ff(latents) + latents
        return self.norm_out(self.proj_out(latents))  # [B, Q, output_dim]


# --------------------------------------------------------------------------------------------
# Qwen-VL resampler
# --------------------------------------------------------------------------------------------
def sincos_2d(embed_dim: int, grid_size: int) -> np.ndarray:
    """Fixed 2-D sin-cos table [grid², embed_dim]: half the channels encode y, half x."""
    def one_axis(dim: int, pos: np.ndarray) -> np.ndarray:
        omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
        angles = np.outer(pos.reshape(-1), omega)  # [M, dim/2]
        return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)

    ys, xs = np.meshgrid(np.arange(grid_size, dtype=np.float32), np.arange(grid_size, dtype=np.float32), indexing="ij")
    return np.concatenate([one_axis(embed_dim // 2, xs), one_axis(embed_dim // 2, ys)], axis=1)


def resize_pos_embed(pos: torch.Tensor, length: int) -> torch.Tensor:
    """[g², E] → [length, E]; bicubic resize of the square grid when `length` ≠ g²."""
    src, tgt = int(math.sqrt(pos.shape[0])), int(math.sqrt(length))
    if src == tgt:
        return pos
    grid = pos.float().reshape(1, src, src, -1).permute(0, 3, 1, 2)  # [1, E, g, g]
    grid = F.interpolate(grid, size=(tgt, tgt), mode="bicubic", align_corners=False)
    return grid.permute(0, 2, 3, 1).flatten(0, 2).to(pos.dtype)  # [tgt², E]


class QwenVisualResampler(nn.Module):
    """grid² learned queries cross-attend to a (square) token sequence: [B, L, kv] → [B, g², E]."""

    def __init__(self, cfg: QwenResamplerConfig):
        super().__init__()
        n_queries = cfg.grid_size ** 2
        table = torch.from_numpy(sincos_2d(cfg.embed_dim, cfg.grid_size)).float()
        self.pos_embed = nn.Parameter(table, requires_grad=False)  # stored as a parameter (spec §2.6)
        self.query = nn.Parameter(torch.zeros(n_queries, cfg.embed_dim))
        nn.init.trunc_normal_(self.query, std=0.02)
        if cfg.kv_dim is not None and cfg.kv_dim != cfg.embed_dim:
            self.kv_proj = nn.Linear(cfg.kv_dim, cfg.embed_dim, bias=False)
        else:
            self.kv_proj = nn.Identity()
        self.attn = nn.MultiheadAttention(cfg.embed_dim, cfg.num_heads)
        self.ln_q = nn.LayerNorm(cfg.embed_dim)
        self.ln_kv = nn.LayerNorm(cfg.embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pos_k = resize_pos_embed(self.pos_embed, x.shape[1])  # [L, E]
        x = self.ln_kv(self.kv_proj(x)).permute(1, 0, 2)  # [L, B, E] sequence-first
        q = self.ln_q(self.query).unsqueeze(1).expand(-1, x.shape[1], -1)  # [g², B, E]
        out = self.attn(q + self.pos_embed.unsqueeze(1), x + pos_k.unsqueeze(1), x, need_weights=False)[0]
        return out.permute(1, 0, 2)  # [B, g², E]


# --------------------------------------------------------------------------------------------
# Whisper resampler
# --------------------------------------------------------------------------------------------
class WhisperResamplerLlava(nn.Module):
    """[B, N, ori_dim] → adaptive-average-pool the token axis to token_num → GELU MLP → [B, T, tgt]."""

    def __init__(self, cfg: WhisperResamplerConfig):
        super().__init__()
        self.token_num = cfg.token_num
        self.aud_projector = nn.Sequential(
            nn.Linear(cfg.ori_embed_dim, cfg.tgt_embed_dim), nn.GELU(), nn.Linear(cfg.tgt_embed_dim, cfg.tgt_embed_dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # A 2-D pool to [token_num, ori_dim] on a 3-D tensor pools only the token axis.
        pooled = F.adaptive_avg_pool1d(x.transpose(1, 2), self.token_num).transpose(1, 2)  # [B, T, ori]
        return self.aud_projector(pooled)
