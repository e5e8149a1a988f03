"""Resamplers: a fixed number of outputs summarising a sequence of any length (spec §2.6).

None runs on the text-to-long-audio path. They exist so that checkpoints carrying their
weights load strictly, and for the audio-input (continuation) path. Each is described in the
spec and the `01_resampler` fixture notes; parameter names are the checkpoint's keys:

* `PerceiverResampler` [B, N, E_in] → [B, Q, E_out]: Q learned latents, refined by `depth` rounds
  of (latents attend to [inputs; latents]) + feed-forward, each with a residual, then projected.
* `QwenVisualResampler` [B, L, E_kv] → [B, g², E]: g² learned queries, one multi-head
  cross-attention over the (square-grid) inputs with 2-D sin-cos positions on queries and keys.
* `WhisperResamplerLlava` [B, N, E_in] → [B, T, E_out]: average the token axis down to T
  windows, then a two-layer GELU MLP.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .config import PerceiverResamplerConfig, QwenResamplerConfig, WhisperResamplerConfig


def gelu_mlp(dims: tuple[int, int, int], bias: bool = True) -> nn.Sequential:
    """Linear(d0 → d1) → exact GELU → Linear(d1 → d2), keys `0.*` and `2.*`."""
    return nn.Sequential(nn.Linear(dims[0], dims[1], bias=bias), nn.GELU(), nn.Linear(dims[1], dims[2], bias=bias))


# --------------------------------------------------------------------------------------------
# Perceiver
# --------------------------------------------------------------------------------------------
class LatentAttention(nn.Module):
    """The latents (queries) read the normalised inputs and themselves: keys and values come from
    the concatenation [inputs; latents]. No projection has a bias."""

    def __init__(self, dim: int, dim_head: int, heads: int):
        super().__init__()
        self.heads = heads
        width = dim_head * heads
        self.norm1 = nn.LayerNorm(dim)    # the inputs
        self.norm2 = nn.LayerNorm(dim)    # the latents
        self.to_q = nn.Linear(dim, width, bias=False)
        self.to_kv = nn.Linear(dim, 2 * width, bias=False)   # keys, then values
        self.to_out = nn.Linear(width, dim, bias=False)

    def forward(self, inputs: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        latents = self.norm2(latents)                                    # [B, Q, dim]
        context = torch.cat([self.norm1(inputs), latents], dim=1)        # [B, N+Q, dim]
        keys, values = self.to_kv(context).chunk(2, dim=-1)
        q, k, v = (split_heads(t, self.heads) for t in (self.to_q(latents), keys, values))   # [B, h, ·, d]
        # The reference scales q and k by d^(-1/4) each before their product: the usual 1/sqrt(d).
        return self.to_out(merge_heads(F.scaled_dot_product_attention(q, k, v)))   # [B, Q, dim]


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """[B, L, h·d] → [B, h, L, d]."""
    return x.unflatten(-1, (heads, -1)).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """[B, h, L, d] → [B, L, h·d]."""
    return x.transpose(1, 2).flatten(2)


def perceiver_feed_forward(dim: int, mult: int) -> nn.Sequential:
    """LayerNorm → Linear(×mult, no bias) → exact GELU → Linear (no bias): keys `0`, `1`, `3`."""
    return nn.Sequential(nn.LayerNorm(dim), *gelu_mlp((dim, dim * mult, dim), bias=False))


class PerceiverResampler(nn.Module):
    """[B, N, embedding_dim] → [B, num_queries, output_dim]."""

    def __init__(self, cfg: PerceiverResamplerConfig):
        super().__init__()
        self.latents = nn.Parameter(torch.randn(1, cfg.num_queries, cfg.dim) / math.sqrt(cfg.dim))
        self.proj_in = nn.Linear(cfg.embedding_dim, cfg.dim)
        self.layers = nn.ModuleList(
            nn.ModuleList([LatentAttention(cfg.dim, cfg.dim_head, cfg.heads),
                           perceiver_feed_forward(cfg.dim, cfg.ff_mult)])
            for _ in range(cfg.depth))
        self.proj_out = nn.Linear(cfg.dim, cfg.output_dim)
        self.norm_out = nn.LayerNorm(cfg.output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inputs = self.proj_in(x)                                   # [B, N, dim]
        latents = self.latents.expand(x.shape[0], -1, -1)          # [B, Q, dim]
        for attend, feed_forward in self.layers:
            latents = latents + attend(inputs, latents)
            latents = latents + feed_forward(latents)
        return self.norm_out(self.proj_out(latents))               # [B, Q, output_dim]


# --------------------------------------------------------------------------------------------
# Qwen-VL cross-attention resampler
# --------------------------------------------------------------------------------------------
def grid_positions(width: int, grid: int) -> torch.Tensor:
    """2-D sin-cos position table [grid², width] in row-major cell order: the first half of the
    channels encodes the column, the second half the row, each as [sin(p·ω), cos(p·ω)] with
    ω_i = 10000^(-i / (width/4))."""
    quarter = width // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)   # [W/4]
    rows, cols = torch.meshgrid(torch.arange(grid, dtype=torch.float64),
                                torch.arange(grid, dtype=torch.float64), indexing="ij")

    def encode(pos: torch.Tensor) -> torch.Tensor:                 # [g²] → [g², W/2]
        angles = pos.reshape(-1, 1) * omega
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    return torch.cat([encode(cols), encode(rows)], dim=1).float()


def resize_grid(table: torch.Tensor, cells: int) -> torch.Tensor:
    """A square-grid table [g², E] for `cells` = h² cells: itself, or resized bicubically
    (align_corners=False) when the grid differs."""
    src, dst = math.isqrt(table.shape[0]), math.isqrt(cells)
    if src == dst:
        return table
    image = table.float().reshape(1, src, src, -1).permute(0, 3, 1, 2)             # [1, E, g, g]
    image = F.interpolate(image, size=(dst, dst), mode="bicubic", align_corners=False)
    return image.permute(0, 2, 3, 1).reshape(dst * dst, -1).to(table.dtype)       # [h², E]


class QwenVisualResampler(nn.Module):
    """[B, L, kv_dim] → [B, grid², embed_dim]; L must be a square number of cells."""

    def __init__(self, cfg: QwenResamplerConfig):
        super().__init__()
        # A fixed table, but stored as a (frozen) parameter: it is a checkpoint key (spec §2.6).
        self.pos_embed = nn.Parameter(grid_positions(cfg.embed_dim, cfg.grid_size), requires_grad=False)
        self.query = nn.Parameter(nn.init.trunc_normal_(torch.zeros(cfg.grid_size ** 2, cfg.embed_dim), std=0.02))
        needs_projection = cfg.kv_dim is not None and cfg.kv_dim != cfg.embed_dim
        self.kv_proj = nn.Linear(cfg.kv_dim, cfg.embed_dim, bias=False) if needs_projection else nn.Identity()
        self.attn = nn.MultiheadAttention(cfg.embed_dim, cfg.num_heads)
        self.ln_q = nn.LayerNorm(cfg.embed_dim)
        self.ln_kv = nn.LayerNorm(cfg.embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        values = self.ln_kv(self.kv_proj(x)).transpose(0, 1)                 # [L, B, E] sequence-first
        keys = values + resize_grid(self.pos_embed, x.shape[1]).unsqueeze(1)  # positions on keys only
        queries = (self.ln_q(self.query) + self.pos_embed).unsqueeze(1).expand(-1, batch, -1)   # [g², B, E]
        out, _ = self.attn(queries, keys, values, need_weights=False)
        return out.transpose(0, 1)                                          # [B, g², E]


# --------------------------------------------------------------------------------------------
# Whisper-feature adapter
# --------------------------------------------------------------------------------------------
class WhisperResamplerLlava(nn.Module):
    """[B, N, ori_embed_dim] → [B, token_num, tgt_embed_dim]: mean over token_num adaptive
    windows of the token axis ([⌊iN/T⌋, ⌈(i+1)N/T⌉)), then the MLP `aud_projector`."""

    def __init__(self, cfg: WhisperResamplerConfig):
        super().__init__()
        self.token_num = cfg.token_num
        self.aud_projector = gelu_mlp((cfg.ori_embed_dim, cfg.tgt_embed_dim, cfg.tgt_embed_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.adaptive_avg_pool1d(x.transpose(1, 2), self.token_num).transpose(1, 2)   # [B, T, ori]
        return self.aud_projector(pooled)
