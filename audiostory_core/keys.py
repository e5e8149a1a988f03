"""The one renaming between `AudioStory` module names and the official checkpoint keys.

The official `pytorch_model.bin` holds `AudioStory_unified.state_dict()` (spec §3.2):
`seedx.llm.base_model.model.…` (PEFT-wrapped Qwen2), `seedx.projector.*`, `tangoflux.*`
(Flux_T5) and `multihead_attention.*` (the bridge fuser). Below the prefix, our modules use
the checkpoint-native names (HF Qwen2, PEFT 0.4.0 LoRA layout, diffusers Flux, the
`duration_emebdder` typo), so only the prefix changes. Both functions are pure.
"""
from __future__ import annotations

from typing import Mapping, TypeVar

V = TypeVar("V")

# (our module prefix, checkpoint prefix); the first match wins, most specific first.
_PREFIXES: tuple[tuple[str, str], ...] = (
    ("agent.llm.", "seedx.llm.base_model.model."),
    ("agent.", "seedx."),
    ("detokenizer.", "tangoflux."),
    ("fusion.multihead_attention.", "multihead_attention."),
)

# Tied parameters: the checkpoint stores both names; a converted file may keep only one.
TIED_ALIASES: tuple[tuple[str, str], ...] = (
    ("seedx.llm.base_model.model.lm_head.weight", "seedx.llm.base_model.model.model.embed_tokens.weight"),
    ("tangoflux.text_encoder.encoder.embed_tokens.weight", "tangoflux.text_encoder.shared.weight"),
)


def _swap(name: str, pairs, src: int) -> str:
    for pair in pairs:
        if name.startswith(pair[src]):
            return pair[1 - src] + name[len(pair[src]):]
    raise KeyError(f"no checkpoint prefix rule matches {name!r}")


def to_checkpoint_key(name: str) -> str:
    """`agent.llm.model.norm.modules_to_save.default.weight` →
    `seedx.llm.base_model.model.model.norm.modules_to_save.default.weight`."""
    return _swap(name, _PREFIXES, 0)


def from_checkpoint_key(key: str) -> str:
    """Inverse of `to_checkpoint_key`."""
    return _swap(key, _PREFIXES, 1)


def to_checkpoint_state_dict(state: Mapping[str, V]) -> dict[str, V]:
    return {to_checkpoint_key(k): v for k, v in state.items()}


def from_checkpoint_state_dict(state: Mapping[str, V]) -> dict[str, V]:
    return {from_checkpoint_key(k): v for k, v in state.items()}
