"""Numerical conformance runner: compares the AudioStory modules with recorded reference outputs.

    python -m audiostory_core.conformance /path/to/conformance/audiostory

A fixture tree holds one folder per component (resamplers, Flux DiT, fusion, LLM agent,
Oobleck VAE, full-size key manifest, end-to-end chain), each with a `config.json` and
`.safetensors` files of inputs, intermediates and outputs. Folders are recognised by the
files they contain, every shape and setting is read from them, and every check runs the
same model classes the generation pipeline uses. One line is printed per check; the exit
status is 0 only when every check passes.

Tolerances follow the fixture notes: 1e-5 for single modules, 1e-4 for DiT / LLM forwards,
2e-4 for the sampler output, 5e-4 for the end-to-end chain, exact for ids, noise and keys.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Mapping, Optional

import torch

logger = logging.getLogger(__name__)

EXACT, MODULE, FORWARD, SAMPLER, CHAIN = 0.0, 1e-5, 1e-4, 2e-4, 5e-4


@dataclass(frozen=True)
class CheckResult:
    name: str
    max_abs_error: float
    tolerance: float
    detail: str = ""

    @property
    def passed(self) -> bool:
        return math.isfinite(self.max_abs_error) and self.max_abs_error <= self.tolerance

    def line(self) -> str:
        status = "PASS" if self.passed else "FAIL"
        extra = f"  ({self.detail})" if self.detail else ""
        return f"{status}  {self.name:<58} max_abs_err={self.max_abs_error:.3e}  tol={self.tolerance:.1e}{extra}"


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------
def _load(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


def _config(folder: Path) -> dict:
    return json.loads((folder / "config.json").read_text())


def _compare(name: str, got: torch.Tensor, want: torch.Tensor, tol: float) -> CheckResult:
    got, want = torch.as_tensor(got).detach().cpu(), torch.as_tensor(want).detach().cpu()
    if got.shape != want.shape:
        return CheckResult(name, math.inf, tol, f"shape {list(got.shape)} != {list(want.shape)}")
    if got.numel() == 0:
        return CheckResult(name, 0.0, tol)
    err = (got.double() - want.double()).abs().max().item()
    return CheckResult(name, err if math.isfinite(err) else math.inf, tol)


def _same(name: str, got, want) -> CheckResult:
    return CheckResult(name, 0.0 if got == want else 1.0, EXACT, "" if got == want else f"{got!r} != {want!r}")


def _same_text(name: str, got: list[str], want: list[str]) -> CheckResult:
    """Texts equal up to whitespace (token-by-token decoding spaces out punctuation)."""
    return _same(name, ["".join(t.split()) for t in got], ["".join(t.split()) for t in want])


# --------------------------------------------------------------------------------------------
# 01: resamplers
# --------------------------------------------------------------------------------------------
def _resampler_builders() -> dict[str, Callable]:
    from . import config as C
    from . import resamplers as R

    return {
        "perceiver_resampler": lambda kw: R.PerceiverResampler(C.PerceiverResamplerConfig.from_dict(kw)),
        "qwen_visual_resampler": lambda kw: R.QwenVisualResampler(C.QwenResamplerConfig.from_dict(kw)),
        "whisper_resampler_llava": lambda kw: R.WhisperResamplerLlava(C.WhisperResamplerConfig.from_dict(kw)),
    }


def check_resamplers(folder: Path) -> list[CheckResult]:
    cfg, results = _config(folder), []
    for name, build in _resampler_builders().items():
        io_path = folder / f"{name}_io.safetensors"
        if name not in cfg or not io_path.exists():
            continue
        module = build(cfg[name]["init_kwargs"]).eval()
        module.load_state_dict(_load(folder / f"{name}_state_dict.safetensors"), strict=True)
        io = _load(io_path)
        with torch.no_grad():
            for key in sorted(k for k in io if k.startswith("input.")):
                out_key = "output." + key.split(".", 1)[1].replace("x", "y", 1)
                results.append(_compare(f"{folder.name}.{name}.{out_key}", module(io[key]), io[out_key], MODULE))
    return results


# --------------------------------------------------------------------------------------------
# 02 / 02b: Flux detokenizer
# --------------------------------------------------------------------------------------------
def _flux_configs(cfg: Mapping):
    from .config import DiTConfig, TextEncoderConfig

    dit = DiTConfig.from_dict(cfg["flux_config"])
    enc = TextEncoderConfig.from_dict(cfg["t5_encoder_config"]) if "t5_encoder_config" in cfg else None
    return dit, enc


def build_detokenizer(folder: Path):
    """The `FluxDetokenizer` of a fixture folder, weights loaded strictly."""
    from .flux_dit import FluxDetokenizer

    dit, enc = _flux_configs(_config(folder))
    model = FluxDetokenizer(dit, enc).eval()
    model.load_state_dict(_load(folder / "state_dict.safetensors"), strict=True)
    return model


def _check_transformer_forward(prefix: str, model, io) -> list[CheckResult]:
    with torch.no_grad():
        out = model.transformer(
            hidden_states=io["input.hidden_states"], encoder_hidden_states=io["input.encoder_hidden_states"],
            pooled_projections=io["input.pooled_projections"], timestep=io["input.timestep"],
            img_ids=io["input.img_ids"][0], txt_ids=io["input.txt_ids"][0], return_dict=False,
        )[0]
    txt_ids, img_ids = model.position_ids(io["input.txt_ids"].shape[1], io["input.img_ids"].shape[1])
    return [
        _compare(f"{prefix}.transformer_forward.sample", out, io["output.sample"], FORWARD),
        _compare(f"{prefix}.transformer_forward.txt_ids", txt_ids, io["input.txt_ids"][0].float(), EXACT),
        _compare(f"{prefix}.transformer_forward.img_ids", img_ids, io["input.img_ids"][0], EXACT),
    ]


def _check_conditioning(prefix: str, model, io) -> list[CheckResult]:
    p = f"{prefix}.conditioning"
    with torch.no_grad():
        text, dur = io["input.t5_tokens"], io["input.duration_seconds"]
        cond = model.condition(text, dur)
        sample = model.velocity(io["input.latents"], io["input.timestep"], cond)
        return [
            _compare(f"{p}.duration_hidden_states", model.embed_duration(dur), io["output.duration_hidden_states"], MODULE),
            _compare(f"{p}.pooled_mean", text.mean(dim=1), io["output.pooled_mean"], MODULE),
            _compare(f"{p}.pooled_projection", cond.pooled_projections, io["output.pooled_projection"], MODULE),
            _compare(f"{p}.encoder_hidden_states", cond.encoder_hidden_states, io["output.encoder_hidden_states"], MODULE),
            _compare(f"{p}.sample", sample, io["output.sample"], FORWARD),
        ]


def _check_uncond(p: str, model, io, length: int) -> list[CheckResult]:
    ids, mask = model.uncond_text_ids(length)
    return [
        _compare(f"{p}.uncond_t5_input_ids", ids, io["intermediate.uncond_t5_input_ids"], EXACT),
        _compare(f"{p}.uncond_t5_attention_mask", mask, io["intermediate.uncond_t5_attention_mask"], EXACT),
        _compare(f"{p}.uncond_t5_embeds", model.uncond_embeds(length), io["intermediate.uncond_t5_embeds"], FORWARD),
    ]


def _check_schedule(p: str, io, steps: int) -> list[CheckResult]:
    from .sampler import make_scheduler

    scheduler = make_scheduler(steps)
    return [
        _compare(f"{p}.scheduler_sigmas", scheduler.sigmas, io["intermediate.scheduler_sigmas"], 1e-7),
        _compare(f"{p}.scheduler_timesteps", scheduler.timesteps, io["intermediate.scheduler_timesteps"], 1e-4),
    ]


def _check_steps(p: str, records, io) -> list[CheckResult]:
    results = []
    for rec in records:
        s = f"intermediate.step{rec.index}"
        if f"{s}.latents_out" not in io:
            continue
        results += [
            _compare(f"{p}.step{rec.index}.timestep", rec.timestep, io[f"{s}.transformer_timestep_input"], EXACT),
            _compare(f"{p}.step{rec.index}.latents_in", rec.latents_in, io[f"{s}.latents_in"], FORWARD),
            _compare(f"{p}.step{rec.index}.noise_pred_uncond_cond", rec.velocity_raw, io[f"{s}.noise_pred_uncond_cond"], FORWARD),
            _compare(f"{p}.step{rec.index}.noise_pred_guided", rec.velocity, io[f"{s}.noise_pred_guided"], FORWARD),
            _compare(f"{p}.step{rec.index}.latents_out", rec.latents_out, io[f"{s}.latents_out"], FORWARD),
        ]
    return results


def _check_sampling(prefix: str, model, io, settings: Mapping) -> list[CheckResult]:
    from .sampler import initial_noise

    p = f"{prefix}.sampling"
    text, dur = io["input.T5_tokens_seedx"], io["input.duration_seconds"]
    steps, scale = int(settings["num_inference_steps"]), float(settings["guidance_scale"])
    noise = initial_noise(int(settings.get("seed", 0)), text.shape[0], model.cfg.audio_seq_len, model.cfg.in_channels)
    results = [_compare(f"{p}.initial_noise", noise, io["input.initial_noise"], EXACT)]
    results += _check_uncond(p, model, io, text.shape[1]) + _check_schedule(p, io, steps)
    cond = model.cfg_condition(text, dur)
    results += [
        _compare(f"{p}.pooled_projections", cond.pooled_projections, io["intermediate.pooled_projections"], MODULE),
        _compare(f"{p}.encoder_hidden_states", cond.encoder_hidden_states, io["intermediate.encoder_hidden_states"], MODULE),
    ]
    records: list = []
    latents = model.sample(text, dur, noise, steps, scale, on_step=records.append)
    results += _check_steps(p, records, io)
    results.append(_compare(f"{p}.latents", latents, io["output.latents"], SAMPLER))
    return results


def _check_training_loss(prefix: str, model, io, settings: Mapping) -> list[CheckResult]:
    from .sampler import draw_training_noise, training_generator

    p, results = f"{prefix}.training_loss", []
    latents = io["input.latents"]
    if "torch_manual_seed_before_call" in settings:
        gen = training_generator(int(settings["torch_manual_seed_before_call"]), latents)
        noise, u = draw_training_noise(latents, gen)
        results += [_compare(f"{p}.random.noise", noise, io["random.noise"], EXACT),
                    _compare(f"{p}.random.u_logit_normal", u, io["random.u_logit_normal"], EXACT)]
    with torch.no_grad():
        out = model.training_loss(latents, io["input.t5_tokens"], io["input.duration_seconds"],
                                  io["random.noise"], io["random.u_logit_normal"])
    return results + [
        _compare(f"{p}.timesteps_1000", out.timesteps, io["intermediate.timesteps_1000"], EXACT),
        _compare(f"{p}.noisy_model_input", out.noisy, io["intermediate.noisy_model_input"], MODULE),
        _compare(f"{p}.model_pred", out.prediction, io["intermediate.model_pred"], FORWARD),
        _compare(f"{p}.loss", out.loss.reshape(1), io["output.loss"], MODULE),
    ]


def check_flux(folder: Path) -> list[CheckResult]:
    cfg, model, prefix = _config(folder), build_detokenizer(folder), folder.name
    results = _check_transformer_forward(prefix, model, _load(folder / "transformer_forward.safetensors"))
    for fname, fn in (("conditioning_forward", _check_conditioning),):
        if (folder / f"{fname}.safetensors").exists():
            results += fn(prefix, model, _load(folder / f"{fname}.safetensors"))
    if (folder / "sampling.safetensors").exists():
        results += _check_sampling(prefix, model, _load(folder / "sampling.safetensors"), cfg.get("sampling", {}))
    if (folder / "training_loss.safetensors").exists():
        io = _load(folder / "training_loss.safetensors")
        results += _check_training_loss(prefix, model, io, cfg.get("training_loss", {}))
    return results


# --------------------------------------------------------------------------------------------
# 03: fusion
# --------------------------------------------------------------------------------------------
def _fusion_config(cfg: Mapping):
    from .config import FusionConfig

    return FusionConfig.from_dict(cfg)


def check_fusion(folder: Path) -> list[CheckResult]:
    from .fusion import QueryFusion

    fusion = QueryFusion(_fusion_config(_config(folder))).eval()
    state = {k.removeprefix("multihead_attention."): v for k, v in _load(folder / "state_dict.safetensors").items()}
    fusion.multihead_attention.load_state_dict(state, strict=True)
    io, p = _load(folder / "fusion_io.safetensors"), folder.name
    sem, res = io["input.output_t5_tokens"], io["input.output_aud_tokens"]
    with torch.no_grad():
        attn, weights = fusion.attend(sem, res)
        fused = fusion(sem, res)
    return [
        _compare(f"{p}.attn_output", attn, io["intermediate.attn_output"], MODULE),
        _compare(f"{p}.attn_weights_head_avg", weights, io["intermediate.attn_weights_head_avg"], MODULE),
        _compare(f"{p}.t5_fused_embeds", fused, io["output.t5_fused_embeds"], MODULE),
    ]


# --------------------------------------------------------------------------------------------
# 04: LLM agent
# --------------------------------------------------------------------------------------------
def _agent_configs(cfg: Mapping):
    from .config import AgentConfig, LLMConfig, LoRAConfig, SpecialTokenIds

    llm = LLMConfig.from_dict(cfg["qwen2_config"])
    lora = LoRAConfig.from_dict(cfg["lora"]) if cfg.get("lora") else None
    n_t5, n_aud = int(cfg["num_t5_gen_tokens"]), int(cfg["num_aud_gen_tokens"])
    agent = replace(AgentConfig.from_dict(cfg["agent"]), num_t5_tokens=n_t5, num_aud_tokens=n_aud)
    tokens = SpecialTokenIds.from_vocab(cfg["tokenizer"]["vocab"], n_t5, n_aud)
    return llm, lora, agent, tokens


def build_agent(folder: Path):
    """The `AudioStoryAgent` of a fixture folder, un-merged, loaded strictly through `keys`."""
    from .keys import from_checkpoint_key
    from .llm import AudioStoryAgent

    llm, lora, agent_cfg, _ = _agent_configs(_config(folder))
    agent = AudioStoryAgent(llm, lora, agent_cfg).eval()
    state = {from_checkpoint_key("seedx." + k).removeprefix("agent."): v
             for k, v in _load(folder / "agent_state_dict.safetensors").items()}
    agent.load_state_dict(state, strict=True)
    return agent


def _decode(ids: Iterable[int], vocab: Mapping[str, int]) -> str:
    inverse = {v: k for k, v in vocab.items()}
    return " ".join(inverse[int(i)] for i in ids)


def forced_generation(agent, prompt_ids: torch.Tensor, forced: torch.Tensor, tokens):
    """Teacher-forced run of the real decoding loop (constraints first, then the forcing)."""
    from .llm import ForcedContinuationProcessor

    force = ForcedContinuationProcessor(prompt_ids.shape[1], forced.tolist())
    procs = agent.logits_processors(tokens, repetition_penalty=1.0, extra=[force])
    return agent.generate(prompt_ids, procs, tokens.eos, max_new_tokens=len(forced))


def _check_forward(p: str, agent, io, label: str) -> list[CheckResult]:
    with torch.no_grad():
        hidden = agent.final_hidden_states(io["input.input_ids"])
        logits = agent.logits(hidden)
    return [_compare(f"{p}.forward.last_hidden_state ({label})", hidden, io["output.last_hidden_state"], FORWARD),
            _compare(f"{p}.forward.logits ({label})", logits, io["output.logits"], FORWARD)]


def _check_training_path(p: str, agent, io) -> list[CheckResult]:
    with torch.no_grad():
        out = agent.training_outputs(io["input.input_ids"], io["input.ids_t5_gen_mask"], io["input.ids_aud_gen_mask"])
    return [_compare(f"{p}.training.lm_loss", out.lm_loss.reshape(1), io["output.lm_loss"], MODULE),
            _compare(f"{p}.training.recon_t5_embeds", out.recon_t5, io["output.recon_t5_embeds"], MODULE),
            _compare(f"{p}.training.recon_audio_embeds", out.recon_audio, io["output.recon_audio_embeds"], MODULE)]


def _check_generate(p: str, agent, io, cfg: Mapping, tokens) -> list[CheckResult]:
    from .llm import clip_spans, reasoning_span

    gen = forced_generation(agent, io["input.prompt_input_ids"], io["input.forced_generated_ids"], tokens)
    spans = clip_spans(gen.generated_ids.tolist(), tokens)
    sem, res = agent.query_features(gen.hidden_states, spans)
    with torch.no_grad():
        t5_feat, aud_feat = agent.project(sem, res)
    vocab, ids = cfg["tokenizer"]["vocab"], gen.generated_ids.tolist()
    expected = cfg.get("generate_outputs", {})
    results = [
        _compare(f"{p}.generate.sequences", gen.sequences, io["output.sequences"], EXACT),
        _compare(f"{p}.generate.last_hidden_states", gen.hidden_states, io["intermediate.last_hidden_states_generate"], FORWARD),
        _compare(f"{p}.generate.t5_query_hidden_states", sem, io["intermediate.t5_query_hidden_states"], FORWARD),
        _compare(f"{p}.generate.aud_query_hidden_states", res, io["intermediate.aud_query_hidden_states"], FORWARD),
        _compare(f"{p}.generate.t5_gen_feat", t5_feat, io["output.t5_gen_feat"], FORWARD),
        _compare(f"{p}.generate.aud_gen_feat", aud_feat, io["output.aud_gen_feat"], FORWARD),
    ]
    if "caption_list" in expected:
        captions = [_decode(ids[s.caption], vocab) for s in spans]
        results.append(_same_text(f"{p}.generate.captions", captions, expected["caption_list"]))
    if "generated_reasoning" in expected:
        reasoning = _decode(ids[reasoning_span(ids, tokens)], vocab)
        results.append(_same_text(f"{p}.generate.reasoning", [reasoning], [expected["generated_reasoning"]]))
    return results


def _check_merged_state(p: str, agent, folder: Path) -> list[CheckResult]:
    path = folder / "qwen2_merged_state_dict.safetensors"
    if not path.exists():
        return []
    want, got = _load(path), agent.llm.state_dict()
    keys_ok = _same(f"{p}.merged_state_dict.keys", sorted(got), sorted(want))
    errs = [(got[k].double() - want[k].double()).abs().max().item() for k in want if k in got]
    return [keys_ok, CheckResult(f"{p}.merged_state_dict.values", max(errs, default=math.inf), MODULE)]


def check_agent(folder: Path) -> list[CheckResult]:
    cfg, p = _config(folder), folder.name
    tokens = _agent_configs(cfg)[3]
    agent = build_agent(folder)
    forward_io = _load(folder / "forward_io.safetensors")
    results = _check_forward(p, agent, forward_io, "unmerged LoRA")
    if (folder / "training_path_io.safetensors").exists():
        results += _check_training_path(p, agent, _load(folder / "training_path_io.safetensors"))
    agent.merge_lora_()
    results += _check_merged_state(p, agent, folder)
    results += _check_forward(p, agent, forward_io, "merged LoRA")
    if (folder / "generate_io.safetensors").exists():
        results += _check_generate(p, agent, _load(folder / "generate_io.safetensors"), cfg, tokens)
    return results


# --------------------------------------------------------------------------------------------
# 05: VAE
# --------------------------------------------------------------------------------------------
def build_fixture_vae(folder: Path):
    from .config import VAEConfig
    from .vae import build_vae

    vae = build_vae(VAEConfig.from_dict(_config(folder)["init_kwargs"]))
    vae.load_state_dict(_load(folder / "state_dict.safetensors"), strict=True)
    return vae


def check_vae(folder: Path) -> list[CheckResult]:
    from .vae import decode_latents

    vae, io = build_fixture_vae(folder), _load(folder / "decode_io.safetensors")
    wave = decode_latents(vae, io["input.latents_BCT"].transpose(1, 2))
    return [_compare(f"{folder.name}.decode.waveform", wave, io["output.waveform"], MODULE)]


# --------------------------------------------------------------------------------------------
# 06: full-size manifest
# --------------------------------------------------------------------------------------------
def _manifest_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    data = json.loads(path.read_text())
    data = data.get("keys", data)
    return {k: tuple(v[0]) for k, v in data.items() if not k.startswith("_")}


def _manifest_diff(name: str, got: Mapping, want: Mapping) -> CheckResult:
    missing = [k for k in want if k not in got]
    extra = [k for k in got if k not in want]
    shapes = [k for k in want if k in got and tuple(got[k]) != tuple(want[k])]
    bad = len(missing) + len(extra) + len(shapes)
    detail = f"{len(want)} keys; missing {missing[:3]}, extra {extra[:3]}, shape {shapes[:3]}" if bad else f"{len(want)} keys"
    return CheckResult(name, float(bad), EXACT, detail)


def check_manifest(folder: Path) -> list[CheckResult]:
    from .model import expected_checkpoint_shapes
    from .vae import build_vae

    results = [_manifest_diff(f"{folder.name}.top_level_keys_and_shapes", expected_checkpoint_shapes(),
                              _manifest_shapes(folder / "manifest_top_level_model.json"))]
    vae_path = folder / "manifest_oobleck_vae.json"
    if vae_path.exists():
        with torch.device("meta"):
            vae_shapes = {k: tuple(v.shape) for k, v in build_vae().state_dict().items()}
        results.append(_manifest_diff(f"{folder.name}.oobleck_vae_keys_and_shapes", vae_shapes, _manifest_shapes(vae_path)))
    return results


# --------------------------------------------------------------------------------------------
# 07: end to end
# --------------------------------------------------------------------------------------------
def _e2e_config(folder: Path):
    """AudioStoryConfig assembled from the folders named in `uses_weights_from`."""
    from .config import AudioStoryConfig, VAEConfig

    sources = {Path(p).parent.name: (folder / p).resolve() for p in _config(folder)["uses_weights_from"]}
    cfgs = {name: _config(path.parent) for name, path in sources.items()}
    by_kind = {_kind_of(path.parent): name for name, path in sources.items()}
    llm, lora, agent, tokens = _agent_configs(cfgs[by_kind["agent"]])
    dit, enc = _flux_configs(cfgs[by_kind["flux"]])
    fusion = _fusion_config(cfgs[by_kind["fusion"]])
    vae = VAEConfig.from_dict(cfgs[by_kind["vae"]]["init_kwargs"])
    cfg = AudioStoryConfig(llm=llm, lora=lora, agent=agent, fusion=fusion, dit=dit, text_encoder=enc, vae=vae)
    return cfg, tokens, sources, by_kind, cfgs[by_kind["agent"]]


def _kind_of(folder: Path) -> str:
    for marker, kind in (("agent_state_dict.safetensors", "agent"), ("transformer_forward.safetensors", "flux"),
                         ("fusion_io.safetensors", "fusion"), ("decode_io.safetensors", "vae")):
        if (folder / marker).exists():
            return kind
    raise FileNotFoundError(f"{folder} is not a recognised weight folder")


def _e2e_checkpoint(sources: Mapping[str, Path], by_kind: Mapping[str, str]) -> dict[str, torch.Tensor]:
    """The component state dicts under the official checkpoint prefixes."""
    state = {"seedx." + k: v for k, v in _load(sources[by_kind["agent"]]).items()}
    state.update({"tangoflux." + k: v for k, v in _load(sources[by_kind["flux"]]).items()})
    state.update(_load(sources[by_kind["fusion"]]))
    return state


def _e2e_clips(model, io, agent_cfg: Mapping, tokens, settings: Mapping):
    """LLM → spans → fused conditions, captions and per-clip DiT durations."""
    from .llm import clip_spans
    from .tokenizer import split_caption_duration

    gen = forced_generation(model.agent, io["input.prompt_input_ids"], io["input.forced_generated_ids"], tokens)
    ids = gen.generated_ids.tolist()
    spans = clip_spans(ids, tokens)
    semantic, residual = model.agent.project(*model.agent.query_features(gen.hidden_states, spans))
    fused = model.fusion(semantic, residual)
    captions = [_decode(ids[s.caption], agent_cfg["tokenizer"]["vocab"]) for s in spans]
    parsed = [split_caption_duration(c) for c in captions]
    crossfade = float(settings["crossfade_sec"])
    # AudioStory quirk: every clip but the last is generated crossfade seconds longer (spec §1.7).
    durations = [d + (crossfade if i < len(parsed) - 1 else 0.0) for i, (_, d) in enumerate(parsed)]
    return semantic, residual, fused, captions, parsed, durations


def check_end_to_end(folder: Path) -> list[CheckResult]:
    from .model import build_audiostory
    from .sampler import initial_noise
    from .vae import crossfade_concat, decode_latents, trim_to_duration

    cfg, tokens, sources, by_kind, agent_cfg = _e2e_config(folder)
    settings, io, p = _config(folder), _load(folder / "pipeline_io.safetensors"), folder.name
    model = build_audiostory(cfg)
    model.load_checkpoint_state_dict(_e2e_checkpoint(sources, by_kind), source="fixture weights")
    model.agent.merge_lora_()
    vae = build_fixture_vae(sources[by_kind["vae"]].parent)
    sem, res, fused, captions, parsed, durations = _e2e_clips(model, io, agent_cfg, tokens, settings)
    results = [_compare(f"{p}.output_t5_tokens", sem, io["intermediate.output_t5_tokens"], CHAIN),
               _compare(f"{p}.output_aud_tokens", res, io["intermediate.output_aud_tokens"], CHAIN),
               _compare(f"{p}.t5_fused_embeds", fused, io["intermediate.t5_fused_embeds"], CHAIN)]
    clips = settings.get("clips", [])
    results.append(_same_text(f"{p}.captions", captions, [c["caption"] for c in clips]))
    results.append(_same_text(f"{p}.contents", [c for c, _ in parsed], [c["content"] for c in clips]))
    results.append(_same(f"{p}.durations_used", durations, [c["duration_used"] for c in clips]))
    # All clips denoised together in one batch; each starts from the same seeded noise.
    n, dit = len(durations), model.detokenizer.cfg
    noise = initial_noise(int(settings.get("flow_seed_per_clip", 0)), n, dit.audio_seq_len, dit.in_channels)
    latents = model.detokenizer.sample(fused, torch.tensor(durations), noise, int(settings["num_inference_steps"]),
                                       float(settings["guidance_scale"]))
    waves = decode_latents(vae, latents)  # [n, channels, samples]
    rate = int(vae.config.sampling_rate)
    trimmed = [trim_to_duration(waves[i], durations[i], rate) for i in range(n)]
    for i in range(n):
        c = f"intermediate.clip{i}"
        results += [_compare(f"{p}.clip{i}.initial_noise", noise[i:i + 1], io[f"{c}.initial_noise"], EXACT),
                    _compare(f"{p}.clip{i}.latents", latents[i:i + 1], io[f"{c}.latents"], CHAIN),
                    _compare(f"{p}.clip{i}.waveform_untrimmed", waves[i], io[f"{c}.waveform_untrimmed"], CHAIN),
                    _compare(f"{p}.clip{i}.waveform_trimmed", trimmed[i], io[f"{c}.waveform_trimmed"], CHAIN)]
    joined = crossfade_concat(trimmed, int(float(settings["crossfade_sec"]) * rate))
    results.append(_compare(f"{p}.concatenated_waveform", joined, io["output.concatenated_waveform"], CHAIN))
    return results

# --------------------------------------------------------------------------------------------
# Dispatch
# --------------------------------------------------------------------------------------------
_KINDS: tuple[tuple[str, Callable[[Path], list[CheckResult]]], ...] = (
    ("perceiver_resampler_io.safetensors", check_resamplers),
    ("qwen_visual_resampler_io.safetensors", check_resamplers),
    ("whisper_resampler_llava_io.safetensors", check_resamplers),
    ("transformer_forward.safetensors", check_flux),
    ("fusion_io.safetensors", check_fusion),
    ("agent_state_dict.safetensors", check_agent),
    ("decode_io.safetensors", check_vae),
    ("manifest_top_level_model.json", check_manifest),
    ("pipeline_io.safetensors", check_end_to_end),
)


def check_folder(folder: Path) -> list[CheckResult]:
    """All checks of one fixture folder (none when the folder is not recognised)."""
    for marker, fn in _KINDS:
        if (folder / marker).exists():
            try:
                with torch.no_grad():
                    return fn(folder)
            except Exception as exc:  # a crash is a failed check, reported with its cause
                logger.exception("checks of %s crashed", folder)
                return [CheckResult(f"{folder.name}.error", math.inf, EXACT, f"{type(exc).__name__}: {exc}")]
    return []


def run_fixture_tree(root: Path) -> list[CheckResult]:
    """Run every recognised fixture folder under `root` (sorted by name)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"fixture folder {root} does not exist")
    results: list[CheckResult] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        results += check_folder(folder)
    return results


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m audiostory_core.conformance", description=__doc__.splitlines()[0])
    parser.add_argument("fixtures", type=Path, help="fixture tree (e.g. shared/conformance/audiostory)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    torch.manual_seed(0)
    results = run_fixture_tree(args.fixtures)
    for r in results:
        print(r.line())
    failed = sum(not r.passed for r in results)
    print(f"{len(results) - failed}/{len(results)} checks passed")
    return 0 if results and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
