"""LoRA and "modules to save" wrappers with the PEFT 0.4.0 key layout of the AudioStory checkpoint.

The released LLM weights are stored un-merged (spec §2.1, §3.2):

* a LoRA-wrapped Linear keeps its own `weight`/`bias` (no `base_layer.` level) and adds
  `lora_A.default.weight` [r, in] and `lora_B.default.weight` [out, r];
  `y = x Wᵀ + b + (alpha / r) · B(A(x))` (dropout is inactive at inference);
* each RMSNorm named in `modules_to_save` becomes `original_module` (frozen copy, ignored)
  plus `modules_to_save.default` (the trained copy, used in forward).

`apply_lora_` builds that layout on a plain HF model so a checkpoint loads strictly;
`merge_lora_` folds it back into plain `nn.Linear` / norm modules once weights are loaded
(`W ← W + scaling · B A`), which is what inference runs. Both work in place on the module
tree and keep device and dtype of the existing parameters.
"""
from __future__ import annotations

import copy
import logging
from typing import Iterable

import torch
from torch import nn
from torch.nn import functional as F

logger = logging.getLogger(__name__)

ADAPTER = "default"  # the PEFT adapter name baked into the checkpoint keys


class LoRALinear(nn.Linear):
    """`nn.Linear` plus an un-merged low-rank update (PEFT 0.4.0 names)."""

    def __init__(self, in_features: int, out_features: int, r: int, scaling: float,
                 bias: bool = True, device=None, dtype=None):
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.r = r
        self.scaling = scaling
        self.lora_A = nn.ModuleDict({ADAPTER: nn.Linear(in_features, r, bias=False, device=device, dtype=dtype)})
        self.lora_B = nn.ModuleDict({ADAPTER: nn.Linear(r, out_features, bias=False, device=device, dtype=dtype)})
        # PEFT init: A random, B zero, so a fresh adapter is the identity update.
        nn.init.zeros_(self.lora_B[ADAPTER].weight)

    @classmethod
    def wrap(cls, linear: nn.Linear, r: int, scaling: float) -> "LoRALinear":
        """A LoRALinear that shares `linear`'s weight and bias tensors."""
        w = linear.weight
        out = cls(linear.in_features, linear.out_features, r, scaling,
                  bias=linear.bias is not None, device=w.device, dtype=w.dtype)
        out.weight = linear.weight
        if linear.bias is not None:
            out.bias = linear.bias
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [..., in] -> [..., out]
        base = F.linear(x, self.weight, self.bias)
        update = self.lora_B[ADAPTER](self.lora_A[ADAPTER](x))
        return base + update * self.scaling

    def merged(self) -> nn.Linear:
        """A plain `nn.Linear` computing the same function (`W + scaling · B A`)."""
        w = self.weight
        # Built on the meta device and materialised empty: a 3B model's worth of default
        # (Kaiming) initialisation would be thrown away by the copy below.
        out = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None,
                        device="meta", dtype=w.dtype).to_empty(device=w.device)
        with torch.no_grad():
            delta = self.lora_B[ADAPTER].weight.float() @ self.lora_A[ADAPTER].weight.float()
            out.weight.copy_((w.float() + self.scaling * delta).to(w.dtype))
            if self.bias is not None:
                out.bias.copy_(self.bias)
        return out


class ModulesToSaveWrapper(nn.Module):
    """A frozen `original_module` plus a trained copy `modules_to_save.default` used in forward."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.original_module = module
        self.modules_to_save = nn.ModuleDict({ADAPTER: copy.deepcopy(module)})
        for p in self.original_module.parameters():
            p.requires_grad_(False)

    @property
    def active(self) -> nn.Module:
        return self.modules_to_save[ADAPTER]

    def forward(self, *args, **kwargs):
        return self.active(*args, **kwargs)


def _named_children_matching(model: nn.Module, names: Iterable[str]):
    """(parent, child name, child) for every module whose own attribute name is in `names`."""
    wanted = set(names)
    for parent in list(model.modules()):
        for child_name, child in list(parent.named_children()):
            if child_name in wanted:
                yield parent, child_name, child


def apply_lora_(model: nn.Module, r: int, scaling: float, target_modules: Iterable[str],
                modules_to_save: Iterable[str] = ()) -> nn.Module:
    """Wrap matching Linears with `LoRALinear` and matching modules with `ModulesToSaveWrapper`.

    Matching is by the module's own attribute name (PEFT's suffix match), e.g. every
    `q_proj` of every layer, and `norm` (the final RMSNorm only: per-layer norms are named
    `input_layernorm` / `post_attention_layernorm`).
    """
    for parent, name, child in _named_children_matching(model, target_modules):
        if isinstance(child, nn.Linear) and not isinstance(child, LoRALinear):
            setattr(parent, name, LoRALinear.wrap(child, r, scaling))
    for parent, name, child in _named_children_matching(model, modules_to_save):
        if not isinstance(child, ModulesToSaveWrapper):
            setattr(parent, name, ModulesToSaveWrapper(child))
    return model


def merge_lora_(model: nn.Module) -> nn.Module:
    """Replace every `LoRALinear` by its merged Linear and every wrapper by its trained copy."""
    n_lora = n_saved = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, LoRALinear):
                setattr(parent, name, child.merged())
                n_lora += 1
            elif isinstance(child, ModulesToSaveWrapper):
                setattr(parent, name, child.active)
                n_saved += 1
    logger.debug("merged %d LoRA linears and %d saved modules", n_lora, n_saved)
    return model


def has_unmerged_lora(model: nn.Module) -> bool:
    return any(isinstance(m, (LoRALinear, ModulesToSaveWrapper)) for m in model.modules())
