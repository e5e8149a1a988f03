"""Bridge fuser between the agent's query features and the DiT condition (spec §1.6, §2.3).

`C = (S + MHA(query=S, key=R, value=R)) / t5_feature_scale` with one
`nn.MultiheadAttention(embed_dim=1024, num_heads=8)` (sequence-first, bias, no dropout).
The clip index is the attention batch, so each clip's semantic rows attend only to that
clip's own residual rows.
"""
from __future__ import annotations

import torch
from torch import nn

from .config import FusionConfig


class QueryFusion(nn.Module):
    """Semantic [n, L, E] + residual [n, M, E] → DiT text condition [n, L, E]."""

    def __init__(self, cfg: FusionConfig):
        super().__init__()
        self.t5_feature_scale = cfg.t5_feature_scale
        self.multihead_attention = nn.MultiheadAttention(cfg.embed_dim, cfg.num_heads)

    def attend(self, semantic: torch.Tensor, residual: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-attention output [n, L, E] and head-averaged weights [n, L, M]."""
        q = semantic.permute(1, 0, 2)  # [L, n, E] sequence-first
        kv = residual.permute(1, 0, 2)  # [M, n, E]
        out, weights = self.multihead_attention(q, kv, kv)
        return out.permute(1, 0, 2), weights

    def forward(self, semantic: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        attn, _ = self.attend(semantic, residual)
        # AudioStory quirk: divided once at inference, twice in the released training code (spec §1.6).
        return (semantic + attn) / self.t5_feature_scale
