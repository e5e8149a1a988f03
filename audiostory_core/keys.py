"""The one renaming between `AudioStory` module names and the official checkpoint keys.

The official `pytorch_model.bin` holds `AudioStory_unified.state_dict()` (spec §3.2):
`seedx.llm.base_model.model.…` (PEFT-wrapped Qwen2), `seedx.projector.*`, `tangoflux.*`
(Flux_T5) and `multihead_attention.*` (the bridge fuser). Below the prefix, our modules use
the checkpoint-native names (HF Qwen2, PEFT 0.4.0 LoRA layout, diffusers Flux, the
`duration_emebdder` typo), so only the prefix changes. Both functions are pure.
"""
from __future__ import annotations

from typing import Mapping, TypeVar

from .errors import CheckpointMismatch

V = TypeVar("V")
Shape = tuple[int, ...]
LLM_PREFIX = "seedx.llm.base_model.model."
DDP_PREFIX = "module."   # what torch's DistributedDataParallel puts before every key it saves
T5_PREFIX = "tangoflux.text_encoder."   # the flan-t5-large encoder, absent from some .bin files

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


def strip_ddp_prefix(key: str) -> str:
    """`module.seedx.projector.0.weight` → `seedx.projector.0.weight` (nested wrappers too)."""
    while key.startswith(DDP_PREFIX):
        key = key[len(DDP_PREFIX):]
    return key


# The trained parts of the LLM; everything else under LLM_PREFIX is the frozen base model.
_TRAINED_LLM_MARKERS = (".lora_A.", ".lora_B.", ".modules_to_save.", "model.embed_tokens.", "lm_head.")


def is_frozen_base_key(key: str) -> bool:
    """Whether a checkpoint key holds a frozen weight of the base LLM (Qwen2.5-3B-Instruct), which
    fine-tuning scripts leave out of their files: the LoRA-wrapped Linears' own weights and
    biases and the `original_module` norms. The resized embedding, LoRA and the trained norm
    copies are AudioStory's own."""
    return key.startswith(LLM_PREFIX) and not any(m in key for m in _TRAINED_LLM_MARKERS)


def checkpoint_key_of_base(name: str, expected: Mapping[str, Shape]) -> str | None:
    """The checkpoint key a transformers Qwen2 weight (`model.layers.0.input_layernorm.weight`)
    stands for: the same name under LLM_PREFIX, or, for a norm, its `original_module` copy;
    None for a weight that is not frozen (e.g. the embedding, whose vocabulary was resized)."""
    for key in (LLM_PREFIX + name, LLM_PREFIX + name.removesuffix("weight") + "original_module.weight"):
        if key in expected and is_frozen_base_key(key):
            return key
    return None


def check_keys(found: Mapping[str, Shape], expected: Mapping[str, Shape], source: str, hint: str = "") -> None:
    """Raise unless `found` has exactly the keys and shapes of `expected`.

    Raises:
        CheckpointMismatch: naming the first missing or mis-shaped key and listing the others.
    """
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    mismatched = [(k, tuple(found[k]), tuple(expected[k])) for k in expected
                  if k in found and tuple(found[k]) != tuple(expected[k])]
    if missing or unexpected or mismatched:
        raise CheckpointMismatch(source, missing, unexpected, mismatched, hint=hint)
