"""Behaviour of the AudioStory model modules on tiny random models (no fixtures, no downloads)."""
from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from audiostory_core.config import (  # noqa: E402
    AgentConfig, AudioStoryConfig, DiTConfig, FusionConfig, LLMConfig, LoRAConfig,
    QwenResamplerConfig, SpecialTokenIds, TextEncoderConfig, VAEConfig, WhisperResamplerConfig,
)
from audiostory_core.errors import CheckpointMismatch  # noqa: E402
from audiostory_core.keys import from_checkpoint_key, to_checkpoint_key, to_checkpoint_state_dict  # noqa: E402

MANIFEST = Path(
    os.environ.get("AUDIOSTORY_FIXTURES", Path(__file__).resolve().parents[1].parent / "shared/conformance/audiostory")
) / "06_full_size_manifest"


def tiny_config(with_t5: bool = True) -> AudioStoryConfig:
    return AudioStoryConfig(
        llm=LLMConfig(vocab_size=48, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                      bos_token_id=0, eos_token_id=1, pad_token_id=0),
        lora=LoRAConfig(r=4, lora_alpha=8),
        agent=AgentConfig(model_dims=32, tgt_audio_dim=16, num_t5_tokens=4, num_aud_tokens=2),
        fusion=FusionConfig(embed_dim=16, num_heads=4),
        dit=DiTConfig(num_layers=1, num_single_layers=1, attention_head_dim=16, joint_attention_dim=16,
                      num_attention_heads=2, audio_seq_len=8, text_embedding_dim=16, axes_dims_rope=(4, 6, 6)),
        text_encoder=TextEncoderConfig(vocab_size=20, d_model=16, d_kv=4, d_ff=32, num_layers=1, num_heads=2)
        if with_t5 else None,
        vae=VAEConfig(encoder_hidden_size=4, downsampling_ratios=(2, 2), channel_multiples=(1, 2),
                      decoder_channels=4, sampling_rate=8),
    )


def _randomise_(module: torch.nn.Module, seed: int = 0) -> None:
    """Give every parameter (incl. LoRA-B zeros and norm ones) non-trivial values."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))


@pytest.fixture(scope="module")
def tiny_model():
    from audiostory_core.model import build_audiostory

    torch.manual_seed(0)
    model = build_audiostory(tiny_config())
    _randomise_(model)
    return model


# --------------------------------------------------------------------------------------------
# Full-size key layout
# --------------------------------------------------------------------------------------------
def _manifest(name: str) -> dict[str, tuple[int, ...]]:
    data = json.loads((MANIFEST / name).read_text())
    return {k: tuple(v[0]) for k, v in data.get("keys", data).items()}


@pytest.mark.skipif(not MANIFEST.is_dir(), reason="06_full_size_manifest fixture not found")
def test_full_size_meta_build_matches_the_1709_key_manifest():
    from audiostory_core.model import expected_checkpoint_shapes

    want = _manifest("manifest_top_level_model.json")
    got = expected_checkpoint_shapes()
    assert len(want) == 1709
    assert set(got) == set(want)
    assert {k: v for k, v in got.items() if want[k] != v} == {}


@pytest.mark.skipif(not MANIFEST.is_dir(), reason="06_full_size_manifest fixture not found")
def test_optional_resamplers_and_t5_change_the_key_set_as_documented():
    from audiostory_core.model import expected_checkpoint_shapes

    full = AudioStoryConfig.full_size()
    # The manifest's guessed resampler config: Qwen resampler grid 8 / 2048 / 16 heads, Whisper 64 → 2048.
    qwen = QwenResamplerConfig(grid_size=8, embed_dim=2048, num_heads=16, kv_dim=2048)
    agent = dataclasses.replace(full.agent, input_resampler=qwen, output_resampler=qwen,
                                whisper_resampler=WhisperResamplerConfig(64, 1280, 2048))
    got = expected_checkpoint_shapes(dataclasses.replace(full, agent=agent, text_encoder=None))
    want = {**_manifest("manifest_top_level_model.json"), **_manifest("manifest_resamplers_HYPOTHETICAL.json")}
    want = {k: v for k, v in want.items() if not k.startswith("tangoflux.text_encoder.")}
    assert got == want


# --------------------------------------------------------------------------------------------
# LoRA
# --------------------------------------------------------------------------------------------
def test_merged_lora_computes_the_same_function_as_unmerged(tiny_model):
    from audiostory_core.llm import AudioStoryAgent

    cfg = tiny_config()
    agent = AudioStoryAgent(cfg.llm, cfg.lora, cfg.agent).eval()
    agent.load_state_dict(tiny_model.agent.state_dict())
    plain = AudioStoryAgent(cfg.llm, None, cfg.agent).eval()  # same base weights, no adapter
    plain.load_state_dict({k: v for k, v in agent.state_dict().items() if "lora_" not in k
                           and "modules_to_save" not in k and "original_module" not in k}, strict=False)
    ids = torch.randint(0, cfg.llm.vocab_size, (2, 11), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        unmerged = agent.final_hidden_states(ids)
        agent.merge_lora_()
        merged = agent.final_hidden_states(ids)
        base = plain.final_hidden_states(ids)
    assert agent.is_merged
    assert torch.allclose(merged, unmerged, atol=1e-5)
    assert (merged - base).abs().max() > 1e-2  # the adapter really changes the output
    keys = set(agent.llm.state_dict())
    assert "model.layers.0.self_attn.q_proj.weight" in keys
    assert not any("lora_" in k or "modules_to_save" in k for k in keys)


def test_lora_update_uses_alpha_over_r():
    from audiostory_core.lora import LoRALinear

    layer = LoRALinear(3, 2, r=1, scaling=2.0, bias=False)
    with torch.no_grad():
        layer.weight.zero_()
        layer.lora_A["default"].weight.copy_(torch.tensor([[1.0, 0.0, 0.0]]))
        layer.lora_B["default"].weight.copy_(torch.tensor([[1.0], [3.0]]))
    x = torch.tensor([[2.0, 5.0, 7.0]])
    assert layer(x).tolist() == [[4.0, 12.0]]  # 2.0 · B(A x) = 2 · (2, 6)
    assert layer.merged()(x).tolist() == [[4.0, 12.0]]


# --------------------------------------------------------------------------------------------
# Sampler
# --------------------------------------------------------------------------------------------
def test_zero_velocity_returns_the_initial_latents():
    from audiostory_core.sampler import sample_flow_euler

    x0 = torch.randn(2, 5, 3)
    out = sample_flow_euler(lambda t, x: torch.zeros_like(x), x0, num_steps=7, guidance_scale=4.0)
    assert torch.equal(out, x0)


def test_constant_velocity_moves_latents_by_minus_v_and_cfg_scales_it():
    from audiostory_core.sampler import sample_flow_euler

    x0, v = torch.zeros(1, 4, 2), torch.full((1, 4, 2), 0.5)
    plain = sample_flow_euler(lambda t, x: v.expand_as(x), x0, num_steps=5, guidance_scale=1.0)
    assert torch.allclose(plain, -v, atol=1e-6)  # σ goes 1 → 0, so x₁ = x₀ − v

    def split(t, x):  # uncond half 0, cond half v
        return torch.cat([torch.zeros_like(x0), v])

    guided = sample_flow_euler(split, x0, num_steps=5, guidance_scale=3.0)
    assert torch.allclose(guided, -3.0 * v, atol=1e-6)


def test_schedule_is_linear_sigmas_with_terminal_zero():
    from audiostory_core.sampler import make_scheduler

    sched = make_scheduler(4)
    assert sched.sigmas.tolist() == [1.0, 0.75, 0.5, 0.25, 0.0]
    assert sched.timesteps.tolist() == [1000.0, 750.0, 500.0, 250.0]


def test_every_clip_gets_the_same_seeded_noise():
    from audiostory_core.sampler import initial_noise

    noise = initial_noise(0, 3, 6, 64)
    torch.manual_seed(0)
    assert torch.equal(noise[0], torch.randn(1, 6, 64)[0])
    assert torch.equal(noise[1], noise[2])


# --------------------------------------------------------------------------------------------
# Duration embedder and DiT conditioning
# --------------------------------------------------------------------------------------------
def test_duration_embedder_shape_clamp_and_fourier_values():
    from audiostory_core.flux_dit import DurationEmbedder

    emb = DurationEmbedder(dim=3, min_value=0.0, max_value=30.0, internal_dim=4)
    with torch.no_grad():
        emb.time_positional_embedding[0].weights.copy_(torch.tensor([1.0, 2.0]))
        lin = emb.time_positional_embedding[1]  # features: [t, sin(2πt·1), sin(2πt·2), cos(2πt·1), cos(2πt·2)]
        lin.weight.zero_(), lin.bias.zero_()
        lin.weight[0, 0], lin.weight[1, 1], lin.weight[2, 4] = 1.0, 1.0, 1.0
    out = emb(torch.tensor([7.5, 45.0, -2.0]))
    assert out.shape == (3, 1, 3)
    t = 7.5 / 30.0
    expected = [t, math.sin(2 * math.pi * t), math.cos(2 * math.pi * t * 2)]
    assert torch.allclose(out[0, 0], torch.tensor(expected), atol=1e-6)
    assert torch.allclose(out[1, 0], torch.tensor([1.0, 0.0, 1.0]), atol=1e-5)  # clamped to 30 s
    assert torch.allclose(out[2, 0], torch.tensor([0.0, 0.0, 1.0]), atol=1e-6)  # clamped to 0 s


def test_condition_appends_one_duration_token_and_pools_text_rows(tiny_model):
    det = tiny_model.detokenizer
    text = torch.randn(2, 4, 16)
    cond = det.condition(text, torch.tensor([3.0, 9.0]))
    assert cond.encoder_hidden_states.shape == (2, 5, 16)
    assert torch.equal(cond.encoder_hidden_states[:, :4], text)
    assert torch.allclose(cond.pooled_projections, torch.relu(det.fc[0](text.mean(dim=1))))
    assert cond.img_ids[:, 0].tolist() == list(range(8)) and torch.equal(cond.img_ids[:, 0], cond.img_ids[:, 2])


def test_uncond_t5_sequence_is_computed_once_and_can_be_supplied(tiny_model):
    det = tiny_model.detokenizer
    ids, mask = det.uncond_text_ids(4)
    assert ids.tolist() == [[1, 0, 0, 0]] and mask.tolist() == [[1, 0, 0, 0]]
    first = det.uncond_embeds(4)
    direct = det.text_encoder(input_ids=ids, attention_mask=mask).last_hidden_state
    assert first.shape == (1, 4, 16) and torch.allclose(first, direct)
    assert det.uncond_embeds(4) is first  # cached, not recomputed
    from audiostory_core.flux_dit import FluxDetokenizer

    bare = FluxDetokenizer(tiny_config().dit, None)
    with pytest.raises(RuntimeError, match="set_uncond_embeds"):
        bare.uncond_embeds(4)
    bare.set_uncond_embeds(first)
    assert torch.equal(bare.uncond_embeds(4), first)


def test_detokenizer_runs_in_bfloat16(tiny_model):
    from audiostory_core.flux_dit import FluxDetokenizer
    from audiostory_core.sampler import initial_noise

    det = FluxDetokenizer(tiny_config().dit, None)
    det.set_uncond_embeds(tiny_model.detokenizer.uncond_embeds(4))
    det = det.to(torch.bfloat16)
    out = det.sample(torch.randn(2, 4, 16), torch.tensor([2.0, 5.0]), initial_noise(0, 2, 8, 64), 2, 4.0)
    assert out.dtype == torch.bfloat16 and out.shape == (2, 8, 64) and torch.isfinite(out.float()).all()


# --------------------------------------------------------------------------------------------
# Query-token constraints and parsing
# --------------------------------------------------------------------------------------------
TOKENS = SpecialTokenIds(t5_open=10, t5_body=(11, 12, 13), t5_close=14, aud_open=20, aud_body=(21, 22),
                         aud_close=23, gen_open=30, gen_close=31, think_open=32, think_close=33, eos=(1,))


def test_constraint_forces_the_whole_query_chain_under_greedy_decoding():
    from audiostory_core.llm import QueryChainProcessor

    proc = QueryChainProcessor(TOKENS.t5_chain)
    gen = torch.Generator().manual_seed(3)
    seq = torch.tensor([[5, 10]])  # the model just opened a block
    for _ in range(4):
        scores = torch.randn(1, 40, generator=gen) * 5
        nxt = proc(seq, scores).argmax(-1, keepdim=True)
        seq = torch.cat([seq, nxt], dim=1)
    assert seq[0, 2:].tolist() == [11, 12, 13, 14]


def test_constraint_zeroes_body_and_closer_logits_outside_a_chain():
    from audiostory_core.llm import QueryChainProcessor

    scores = torch.full((1, 40), -3.0)
    out = QueryChainProcessor(TOKENS.t5_chain)(torch.tensor([[5, 6]]), scores)
    assert out[0, [11, 12, 13, 14]].tolist() == [0.0, 0.0, 0.0, 0.0]
    assert out[0, 10].item() == -3.0  # the opener stays free
    assert scores[0, 11].item() == -3.0  # the input is not modified


def test_generate_with_forced_plan_extracts_query_rows(tiny_model):
    from audiostory_core.llm import ForcedContinuationProcessor, clip_spans
    from audiostory_core.tokenizer import split_caption_duration

    tokens = dataclasses.replace(TOKENS, t5_body=(11, 12, 13, 15), aud_body=(21, 22))
    plan = [7, 33, 30, 8, 9, 10, 11, 12, 13, 15, 14, 20, 21, 22, 23, 31, 1]
    agent = tiny_model.agent
    procs = agent.logits_processors(tokens, 1.05, extra=[ForcedContinuationProcessor(3, plan)])
    out = agent.generate(torch.tensor([[2, 3, 4]]), procs, tokens.eos, max_new_tokens=40)
    assert out.generated_ids.tolist() == plan  # stops at EOS
    assert out.hidden_states.shape == (len(plan) - 1, 32)
    full = agent.final_hidden_states(out.sequences[:, :-1])[0, 3:]
    assert torch.allclose(out.hidden_states, full, atol=1e-5)  # cached == uncached
    (span,) = clip_spans(plan, tokens)
    assert plan[span.semantic] == [11, 12, 13, 15] and plan[span.residual] == [21, 22]
    assert plan[span.caption] == [8, 9]
    assert split_caption_duration("a dog barks <timestamp>4.5</timestamp>") == ("a dog barks", 4.5)


# --------------------------------------------------------------------------------------------
# Checkpoint layout and loading
# --------------------------------------------------------------------------------------------
def test_key_renaming_round_trips_and_hits_official_prefixes(tiny_model):
    names = list(tiny_model.state_dict())
    ckpt = [to_checkpoint_key(n) for n in names]
    assert [from_checkpoint_key(k) for k in ckpt] == names
    assert "seedx.llm.base_model.model.model.norm.modules_to_save.default.weight" in ckpt
    assert "seedx.llm.base_model.model.lm_head.weight" in ckpt
    assert "multihead_attention.in_proj_weight" in ckpt
    assert "tangoflux.duration_emebdder.time_positional_embedding.0.weights" in ckpt


def test_meta_build_with_assign_load_reproduces_the_model(tiny_model):
    from audiostory_core.model import build_audiostory

    state = to_checkpoint_state_dict(tiny_model.state_dict())
    state.pop("seedx.llm.base_model.model.lm_head.weight")  # a tied alias may be absent
    meta = build_audiostory(tiny_config(), device="meta")
    meta.load_checkpoint_state_dict(state, assign=True)
    leftovers = [n for n, t in [*meta.named_parameters(), *meta.named_buffers()] if t.is_meta]
    assert leftovers == []
    ids = torch.tensor([[3, 7, 9, 11]])
    with torch.no_grad():
        assert torch.allclose(meta.agent.final_hidden_states(ids), tiny_model.agent.final_hidden_states(ids), atol=1e-6)
    assert meta.agent.llm.lm_head.weight is meta.agent.llm.model.embed_tokens.weight


def test_strict_loading_names_missing_and_misshaped_keys(tiny_model):
    from audiostory_core.model import build_audiostory

    state = to_checkpoint_state_dict(tiny_model.state_dict())
    state.pop("tangoflux.fc.0.bias")
    state["multihead_attention.out_proj.bias"] = torch.zeros(3)
    target = build_audiostory(tiny_config(), device="meta")
    with pytest.raises(CheckpointMismatch) as err:
        target.load_checkpoint_state_dict(state, source="t.bin")
    assert err.value.missing == ("tangoflux.fc.0.bias",)
    assert err.value.mismatched[0][0] == "multihead_attention.out_proj.bias"


# --------------------------------------------------------------------------------------------
# Clip post-processing
# --------------------------------------------------------------------------------------------
def test_trim_and_linear_crossfade():
    from audiostory_core.vae import crossfade_concat, trim_to_duration

    a, b = torch.ones(2, 10), torch.full((2, 6), 3.0)
    assert trim_to_duration(torch.zeros(2, 48), 7.5, 4).shape == (2, 30)
    out = crossfade_concat([a, b], overlap_samples=3)
    assert out.shape == (2, 13)
    assert out[0, 7:10].tolist() == [1.0, 2.0, 3.0]  # 1·(1, .5, 0) + 3·(0, .5, 1)
    assert crossfade_concat([a, b], overlap_samples=8).shape == (2, 16)  # clip too short: plain concat


def test_vae_decode_upsamples_by_the_hop(tiny_model):
    from audiostory_core.vae import build_vae, decode_latents, resample

    cfg = tiny_config().vae
    wave = decode_latents(build_vae(cfg), torch.randn(1, 5, 64))
    assert wave.shape == (1, 2, 5 * cfg.hop_length)
    assert resample(wave[0].numpy(), 44100, 32000).shape == (2, 15)  # 20 samples · 32/44.1


def test_agent_generates_in_bfloat16_with_dtype_taken_from_its_weights():
    from audiostory_core.llm import AudioStoryAgent, ForcedContinuationProcessor

    cfg = tiny_config()
    agent = AudioStoryAgent(cfg.llm, cfg.lora, cfg.agent).merge_lora_().to(torch.bfloat16).eval()
    plan = [7, 10, 11, 12, 13, 15, 14, 1]
    tokens = dataclasses.replace(TOKENS, t5_body=(11, 12, 13, 15))
    procs = agent.logits_processors(tokens, 1.05, extra=[ForcedContinuationProcessor(2, plan)])
    out = agent.generate(torch.tensor([[2, 3]]), procs, tokens.eos, max_new_tokens=20)
    assert out.generated_ids.tolist() == plan
    assert out.hidden_states.dtype == torch.bfloat16 and out.hidden_states.shape == (7, 32)
    sem, _ = agent.project(out.hidden_states[2:6][None], out.hidden_states[:2][None])
    assert sem.dtype == torch.bfloat16 and torch.isfinite(sem.float()).all()


def test_training_noise_is_drawn_on_the_latents_device_with_a_generator_there():
    from types import SimpleNamespace

    from audiostory_core.sampler import draw_training_noise, training_generator

    latents = torch.zeros(3, 5, 4)
    gen = training_generator(7, latents)
    assert gen.device == latents.device
    noise, u = draw_training_noise(latents, gen)
    assert noise.device == u.device == latents.device and u.shape == (3,)
    # The same seed gives the same draws: noise first, then the logit-normal u.
    again_noise, again_u = draw_training_noise(latents, training_generator(7, latents))
    assert torch.equal(noise, again_noise) and torch.equal(u, again_u)
    # A generator on another device is refused before anything is drawn (CPU generator, CUDA latents).
    elsewhere = SimpleNamespace(device=torch.device("cuda", 0))
    with pytest.raises(ValueError, match="training_generator"):
        draw_training_noise(latents, elsewhere)
