"""The model and sampling configs of a checkpoint folder.

Reads sizes and settings out of the folder's config files: the base LLM's and T5's config.json,
the DiT's `Flux_detokenizer/config.json`, config.yaml (LoRA alpha, query counts, feature scale,
and an optional `sampling:` section), generation_config.json, and the weight shapes. The
released model's values (spec §3.1, §3.3) are only the defaults for what these files leave out.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from .errors import CheckpointMismatch
from .files import read_json
from .keys import Shape

if TYPE_CHECKING:
    from .config import AudioStoryConfig, SamplingConfig, VAEConfig


def _find(tree: Any, name: str) -> Any:
    """First value stored under key `name` anywhere in a nested dict/list tree (depth first)."""
    if isinstance(tree, Mapping):
        if name in tree:
            return tree[name]
        children = tree.values()
    elif isinstance(tree, list):
        children = tree
    else:
        return None
    for child in children:
        found = _find(child, name)
        if found is not None:
            return found
    return None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def config_from_files(yaml_cfg: Mapping[str, Any], flux_cfg: Mapping[str, Any], shapes: Mapping[str, Shape],
                      llm_json: Mapping[str, Any] | None = None, t5_json: Mapping[str, Any] | None = None,
                      vae: "VAEConfig | None" = None,
                      generation: Mapping[str, Any] | None = None) -> "AudioStoryConfig":
    """The model config of a checkpoint. Full-size defaults, overridden by the base LLM's and
    T5's config.json (architecture), the DiT's config.json, config.yaml (LoRA alpha, query
    counts, feature scale, sampling settings), the weight shapes (vocabulary size, LoRA rank),
    `vae` (see `checkpoint.vae_config`) and `generation` (see `generation_settings`).

    Raises:
        CheckpointMismatch: the DiT's latent width differs from the VAE's, or config.yaml's
            sampling section is invalid.
    """
    import dataclasses

    from .config import (AgentConfig, AudioStoryConfig, DiTConfig, FusionConfig, LLMConfig, LoRAConfig,
                         TextEncoderConfig)

    base = AudioStoryConfig.full_size()
    dit = DiTConfig.from_dict(flux_cfg)
    vae = vae or base.vae
    if dit.in_channels != vae.decoder_input_channels:
        raise CheckpointMismatch(
            "Flux_detokenizer", mismatched=[("config.json in_channels", (dit.in_channels,),
                                             (vae.decoder_input_channels,))],
            problem=f"config.json's in_channels {dit.in_channels} differs from the VAE's decoder_input_channels "
                    f"{vae.decoder_input_channels}")
    llm = LLMConfig.from_dict(_flat_rope(llm_json)) if llm_json else base.llm
    emb = shapes.get("seedx.llm.base_model.model.model.embed_tokens.weight")
    if emb:
        llm = dataclasses.replace(llm, vocab_size=emb[0], hidden_size=emb[1])
    lora_a = shapes.get("seedx.llm.base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight")
    rank = lora_a[0] if lora_a else base.lora.r
    alpha = _number(_find(yaml_cfg, "lora_alpha")) or float(rank)
    scale = _number(_find(yaml_cfg, "t5_feature_scale")) or base.agent.t5_feature_scale
    proj = shapes.get("seedx.projector.0.weight")
    width = proj[0] if proj else base.agent.tgt_audio_dim
    agent = AgentConfig(
        model_dims=llm.hidden_size, tgt_audio_dim=width, t5_feature_scale=scale,
        num_t5_tokens=int(_number(_find(yaml_cfg, "num_t5_out_tokens")) or base.agent.num_t5_tokens),
        num_aud_tokens=int(_number(_find(yaml_cfg, "num_aud_out_tokens")) or base.agent.num_aud_tokens),
        **_resampler_configs(yaml_cfg, shapes),
    )
    return AudioStoryConfig(
        llm=llm, lora=LoRAConfig(r=rank, lora_alpha=alpha), agent=agent,
        fusion=FusionConfig(embed_dim=width, num_heads=base.fusion.num_heads, t5_feature_scale=scale),
        dit=dit, vae=vae, sampling=sampling_config(yaml_cfg, generation),
        text_encoder=TextEncoderConfig.from_dict(t5_json) if t5_json else base.text_encoder,
    )


SAMPLING_SECTION = "sampling"
_POSITIVE_SETTINGS = ("num_inference_steps", "guidance_scale", "output_sampling_rate", "max_new_tokens",
                      "repetition_penalty")


def sampling_config(yaml_cfg: Mapping[str, Any], generation: Mapping[str, Any] | None = None) -> "SamplingConfig":
    """Decoding, denoising and cross-fade settings: the official runner's (spec §1.5-§1.9), then
    the same-named entries of an optional top-level `sampling:` section of config.yaml (absent
    from the released file; a smaller model needs e.g. a shorter cross-fade), then the decoding
    settings of the checkpoint's generation_config.json (`generation`, see `generation_settings`),
    which decide decoding as they do in transformers' `generate`.

    Raises:
        CheckpointMismatch: the section is not a mapping, names an unknown setting, or holds a
            value of the wrong kind.
    """
    import dataclasses

    from .config import SamplingConfig

    generation = dict(generation or {})
    section = yaml_cfg.get(SAMPLING_SECTION)
    if section is None:
        return dataclasses.replace(SamplingConfig(), **generation)
    if not isinstance(section, Mapping):
        raise CheckpointMismatch("config.yaml", unexpected=[f"{SAMPLING_SECTION} ({type(section).__name__})"],
                                 problem=f"its {SAMPLING_SECTION} section is a {type(section).__name__}, not a mapping",
                                 hint=f"fix or remove the {SAMPLING_SECTION} section of config.yaml")
    defaults = {f.name: getattr(SamplingConfig(), f.name) for f in dataclasses.fields(SamplingConfig)}
    unknown = [f"{SAMPLING_SECTION}.{k}" for k in section if k not in defaults]
    invalid = [f"{SAMPLING_SECTION}.{k}={v!r}" for k, v in section.items()
               if k in defaults and not _valid_setting(k, v, defaults[k])]
    if unknown or invalid:
        first = f"{unknown[0]} is not a known setting" if unknown else f"{invalid[0]} is not a valid setting"
        raise CheckpointMismatch("config.yaml", unexpected=unknown + invalid, problem=first,
                                 hint=f"fix or remove that entry of the {SAMPLING_SECTION} section of config.yaml")
    settings = {k: type(defaults[k])(v) for k, v in section.items()}
    return SamplingConfig(**{**settings, **generation})


def _valid_setting(name: str, value: Any, default: Any) -> bool:
    if isinstance(default, tuple):
        return isinstance(value, (list, tuple)) and all(_is_token_id(v) for v in value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(default, int) and not float(value).is_integer():
        return False
    return value > 0 if name in _POSITIVE_SETTINGS else value >= 0


def _is_token_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def generation_settings(path: str | os.PathLike | None) -> dict[str, Any]:
    """The decoding settings of a transformers generation_config.json, as SamplingConfig fields:
    `repetition_penalty`, `eos_token_id` (→ `stop_token_ids`) and `max_new_tokens`, each only
    when the file sets it (the released base model's file sets the first two: 1.05 and
    [151645, 151643], spec §1.5). No file: no settings.

    Raises:
        CheckpointMismatch: the file is unreadable or one of these values is of the wrong kind.
    """
    if path is None:
        return {}
    data = read_json(Path(path))
    out: dict[str, Any] = {}
    penalty, eos, limit = data.get("repetition_penalty"), data.get("eos_token_id"), data.get("max_new_tokens")
    if penalty is not None:
        out["repetition_penalty"] = penalty
    if eos is not None:
        out["stop_token_ids"] = [eos] if _is_token_id(eos) else eos
    if limit is not None:
        out["max_new_tokens"] = limit
    defaults = {"repetition_penalty": 1.0, "stop_token_ids": (), "max_new_tokens": 1}
    invalid = [f"{k}={v!r}" for k, v in out.items() if not _valid_setting(k, v, defaults[k])]
    if invalid:
        raise CheckpointMismatch(str(path), unexpected=invalid, problem=f"{invalid[0]} is not a valid setting",
                                 hint="fix or remove that entry of generation_config.json")
    if "stop_token_ids" in out:
        out["stop_token_ids"] = tuple(out["stop_token_ids"])
    return out


def _flat_rope(llm_json: Mapping[str, Any]) -> dict[str, Any]:
    # transformers 5 writes rope_theta inside rope_parameters; older configs at the top level.
    out = dict(llm_json)
    rope = out.get("rope_parameters")
    if isinstance(rope, Mapping) and "rope_theta" in rope:
        out.setdefault("rope_theta", rope["rope_theta"])
    return out


def _resampler_configs(yaml_cfg: Mapping[str, Any], shapes: Mapping[str, Shape]) -> dict[str, Any]:
    """Configs of the unused resamplers, rebuilt from the tensor shapes present (spec §3.4)."""
    from .config import QwenResamplerConfig, WhisperResamplerConfig

    out: dict[str, Any] = {}
    for name in ("input_resampler", "output_resampler"):
        query = shapes.get(f"seedx.{name}.query")
        if query is None:
            continue
        kv = shapes.get(f"seedx.{name}.kv_proj.weight")
        heads = _number(_find(_find(yaml_cfg, name), "num_heads")) or max(1, query[1] // 128)
        out[name] = QwenResamplerConfig(
            grid_size=round(query[0] ** 0.5), embed_dim=query[1], num_heads=int(heads),
            kv_dim=kv[1] if kv else None)
    first = shapes.get("seedx.whisper_resampler_llava.aud_projector.0.weight")
    if first is not None:
        tokens = _number(_find(yaml_cfg, "token_num")) or 300
        out["whisper_resampler"] = WhisperResamplerConfig(
            token_num=int(tokens), ori_embed_dim=first[1], tgt_embed_dim=first[0])
    return out

