"""The top-level AudioStory module (`AudioStory_unified`, spec §0, §3.2).

    AudioStory
    ├── agent        AudioStoryAgent   (checkpoint prefix `seedx.`)
    │   ├── llm                Qwen2ForCausalLM + LoRA layout   (`seedx.llm.base_model.model.`)
    │   ├── projector          semantic MLP 2048 → 1024 → 1024
    │   ├── audio_projector    residual MLP 2048 → 1024 → 1024
    │   └── [input_resampler, output_resampler, whisper_resampler_llava]   optional
    ├── fusion       QueryFusion       (`multihead_attention.`)
    └── detokenizer  FluxDetokenizer   (`tangoflux.`: text_encoder?, fc, duration_emebdder, transformer)

The Oobleck VAE is a separate file and object (`vae.build_vae`). `keys.to_checkpoint_key`
maps every `state_dict()` name of this module onto the released checkpoint's key.
"""
from __future__ import annotations

import logging
from typing import Mapping, Optional

import torch
from torch import nn

from .config import AudioStoryConfig
from .flux_dit import FluxDetokenizer
from .fusion import QueryFusion
from .keys import TIED_ALIASES, check_keys, from_checkpoint_key, to_checkpoint_key
from .llm import AudioStoryAgent

logger = logging.getLogger(__name__)


class AudioStory(nn.Module):
    """Agent (LLM + projectors), bridge fusion and Flux detokenizer of AudioStory-3B."""

    def __init__(self, cfg: AudioStoryConfig):
        super().__init__()
        self.cfg = cfg
        self.agent = AudioStoryAgent(cfg.llm, cfg.lora, cfg.agent)
        self.fusion = QueryFusion(cfg.fusion)
        self.detokenizer = FluxDetokenizer(cfg.dit, cfg.text_encoder)

    # -- checkpoint layout -------------------------------------------------------------------
    def checkpoint_shapes(self) -> dict[str, tuple[int, ...]]:
        """Official checkpoint key → shape for every entry of `state_dict()`."""
        return {to_checkpoint_key(k): tuple(v.shape) for k, v in self.state_dict(keep_vars=True).items()}

    def load_checkpoint_state_dict(self, state: Mapping[str, torch.Tensor], source: str = "state dict",
                                   assign: bool = False) -> None:
        """Strictly load a state dict with official checkpoint keys.

        Only a missing alias of a tied weight is tolerated (it is filled from its twin).
        With `assign=True` (a model built on the meta device) tensors are adopted as they are.

        Raises:
            CheckpointMismatch: missing, unexpected or mis-shaped keys, all listed.
        """
        state = _fill_tied_aliases(state)
        expected = self.checkpoint_shapes()
        check_keys({k: tuple(v.shape) for k, v in state.items()}, expected, source)
        ours = {from_checkpoint_key(k): v for k, v in state.items()}
        self.load_state_dict(ours, strict=True, assign=assign)
        if assign:
            self._retie_and_rebuild_buffers()

    def _retie_and_rebuild_buffers(self) -> None:
        """After `assign=True`: re-tie the LM head and recompute non-persistent RoPE buffers."""
        llm = self.agent.llm
        if llm.config.tie_word_embeddings:
            llm.lm_head.weight = llm.model.embed_tokens.weight
        if llm.model.rotary_emb.inv_freq.is_meta:
            self.agent.rebuild_rope_(llm.model.embed_tokens.weight.device)


def _fill_tied_aliases(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = dict(state)
    for alias, source in TIED_ALIASES:
        if alias not in out and source in out:
            out[alias] = out[source]
    return out


def build_audiostory(cfg: Optional[AudioStoryConfig] = None, device: Optional[torch.device | str] = None,
                     dtype: Optional[torch.dtype] = None) -> AudioStory:
    """Build the module tree with random weights (fp32 on CPU unless told otherwise).

    `device="meta"` gives a shape-only tree for `load_checkpoint_state_dict(..., assign=True)`.
    """
    cfg = cfg or AudioStoryConfig.full_size()
    with torch.device(device or "cpu"):
        model = AudioStory(cfg)
    if dtype is not None:
        model = model.to(dtype=dtype)
    return model.eval()


def expected_checkpoint_shapes(cfg: Optional[AudioStoryConfig] = None) -> dict[str, tuple[int, ...]]:
    """Official key → shape of the full-size model (or `cfg`), built on the meta device."""
    return build_audiostory(cfg, device="meta").checkpoint_shapes()
