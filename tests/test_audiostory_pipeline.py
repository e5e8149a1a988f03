"""AudioStoryPipeline on a tiny random-weight model (CPU): both generation modes end to end,
and the one-pass prefill against step-by-step KV-cache decoding."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from audiostory_core import tokenizer as tk  # noqa: E402
from audiostory_core.errors import InvalidRequest  # noqa: E402
from audiostory_core.llm import AudioStoryAgent, ForcedContinuationProcessor, clip_spans  # noqa: E402
from audiostory_core.pipeline import (  # noqa: E402
    AudioStoryPipeline,
    ClipConditions,
    ClipCue,
    plan_parts,
)
from audiostory_core.testing import free_processor, free_script  # noqa: E402


@pytest.fixture(scope="module")
def pipe():
    return AudioStoryPipeline.debug(seed=0)


def _conditions_by_decoding(pipe, ids, n_prompt):
    """Reference: KV-cache greedy decoding of the forced continuation, one token per step."""
    prompt = torch.tensor([ids[:n_prompt]])
    procs = pipe.agent.logits_processors(
        pipe.tokens, 1.0, extra=[ForcedContinuationProcessor(n_prompt, ids[n_prompt:])])
    out = pipe.agent.generate(prompt, procs, pipe.tokens.eos, max_new_tokens=len(ids) - n_prompt)
    assert out.generated_ids.tolist() == list(ids[n_prompt:])
    spans = clip_spans(out.generated_ids.tolist(), pipe.tokens)
    sem, res = AudioStoryAgent.query_features(out.hidden_states, spans)
    return pipe.fusion(*pipe.agent.project(sem, res))


def test_prefill_conditions_equal_step_by_step_decoding(pipe):
    cues = [ClipCue("dog barks twice", 24_000), ClipCue("rain on a tin roof", 30_000),
            ClipCue("thunder rolls", 12_345)]
    render = pipe.generate_cues(cues, summary="a stormy night", seed=3)
    ids, n_prompt = pipe.story_sequence(render.story)
    with torch.no_grad():
        reference = _conditions_by_decoding(pipe, ids + [pipe.tokens.eos[0]], n_prompt)
    assert reference.shape == render.conditions.text.shape == (3, 8, 16)
    torch.testing.assert_close(render.conditions.text, reference.float(), atol=1e-4, rtol=1e-4)
    # The conditions depend on the caption: clips are not interchangeable.
    assert (reference[0] - reference[1]).abs().max() > 100 * (render.conditions.text - reference).abs().max()


def test_generate_cues_exact_lengths_and_long_cue_split(pipe):
    window = pipe.max_part_samples(48_000)
    cues = [ClipCue("a door slams", 12_345), ClipCue("a car drives past slowly", int(window * 2.4)),
            ClipCue("birds chirp", 1)]
    render = pipe.generate_cues(cues, summary="street scene", seed=1)
    assert render.sample_rate == 48_000
    assert [w.shape for w in render.waveforms] == [(2, c.num_samples) for c in cues]
    assert all(w.dtype == np.float32 and np.isfinite(w).all() for w in render.waveforms)
    assert all(np.abs(w).max() > 0 for w in render.waveforms)
    # The long cue became 3 overlapping parts, each within the DiT window.
    assert render.conditions.cue_index == (0, 1, 1, 1, 2)
    assert max(render.conditions.part_samples) <= window
    assert render.seeds == (1, 2, 3)


def test_split_cue_timestamps_add_up_to_the_cue_like_official_clips(pipe):
    import re

    long_samples = int(pipe.max_part_samples(48_000) * 2.4)
    render = pipe.generate_cues([ClipCue("a car drives past", long_samples), ClipCue("a horn", 24_000)],
                                num_steps=1)
    ids, _ = pipe.story_sequence(render.story)
    written = tk.decode(pipe.tokenizer, ids)
    stamps = [float(x) for x in re.findall(r"<timestamp>([\d.]+)</timestamp>", written)]
    total = float(re.search(r"The total duration is ([\d.]+) seconds", written).group(1))
    assert render.conditions.cue_index == (0, 0, 0, 1) and len(stamps) == 4
    # Timestamps are differences of boundaries rounded to 0.1 s: they add up to the stated total.
    assert sum(stamps) == pytest.approx(total, abs=1e-9)
    assert sum(stamps[:3]) == pytest.approx(long_samples / 48_000, abs=0.05)
    assert stamps[3] == 0.5 and total == pytest.approx(long_samples / 48_000 + 0.5, abs=0.05)
    # The DiT renders each part whole: a continued part runs the cross-fade (0.25 s) past its stamp.
    assert render.conditions.duration_s == tuple(n / 48_000 for n in render.conditions.part_samples)
    for stamp, dit_s in zip(stamps[:2], render.conditions.duration_s[:2]):
        assert dit_s == pytest.approx(stamp + 0.25, abs=0.1)


def test_instruction_without_summary_names_each_clip_once(pipe):
    from audiostory_core import prompts

    cues = [ClipCue("A car passes.", 48_000), ClipCue("A car passes.", 48_000), ClipCue("a horn", 24_000)]
    render = pipe.generate_cues(cues, lead=prompts.DUBBING_LEAD, num_steps=1)
    ids, n_prompt = pipe.story_sequence(render.story)
    prompt = tk.decode(pipe.tokenizer, ids[:n_prompt])
    assert ("<|im_start|>user\nGenerate a classic Tom and Jerry style soundtrack for a moment in the cartoon "
            "that includes a car passes. a horn. The total duration is 2.5 seconds.<|im_end|>") in prompt


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_keeps_the_rope_angles_of_late_positions(dtype):
    from audiostory_core.model import build_audiostory
    from audiostory_core.pipeline import debug_config

    model = build_audiostory(debug_config(len(tk.debug_tokenizer())))
    positions, probe = torch.arange(1500, 1504)[None], torch.zeros(1, 4, 8)
    want = model.agent.llm.model.rotary_emb(probe, positions)
    model.to(dtype=dtype)
    assert model.agent.llm.model.embed_tokens.weight.dtype == dtype
    for got, ref in zip(model.agent.llm.model.rotary_emb(probe, positions), want):
        torch.testing.assert_close(got, ref, atol=1e-6, rtol=0)


def test_generate_cues_is_reproducible_per_cue_seed(pipe):
    cues = [ClipCue("footsteps on gravel", 20_000, seed=11), ClipCue("a bell rings", 20_000)]
    first = pipe.generate_cues(cues, seed=5)
    again = pipe.generate_cues(cues, seed=5)
    other = pipe.generate_cues(cues, seed=6)  # changes only the second cue's seed
    np.testing.assert_array_equal(first.waveforms[1], again.waveforms[1])
    np.testing.assert_allclose(first.waveforms[0], other.waveforms[0], atol=1e-5)
    assert np.abs(first.waveforms[1] - other.waveforms[1]).max() > 1e-3


def test_render_reuses_conditions_and_same_noise_option(pipe):
    render = pipe.generate_cues([ClipCue("wind howls", 20_000)], seed=0)
    c = render.conditions
    twin = ClipConditions(torch.cat([c.text, c.text]), c.duration_s * 2, c.part_samples * 2, (0, 1), c.sample_rate)
    same = pipe.render(twin, seeds=(7, 8), same_noise=True)
    own = pipe.render(twin, seeds=(7, 8))
    np.testing.assert_allclose(same[0], same[1], atol=1e-5)
    assert np.abs(own[0] - own[1]).max() > 1e-3
    # Re-rendering with the cue's own seed reproduces generate_cues without the LLM.
    np.testing.assert_allclose(pipe.render(c, seeds=render.seeds)[0], render.waveforms[0], atol=1e-5)


@pytest.mark.parametrize("cues, kwargs", [
    ([], {}),
    ([ClipCue("ok", 0)], {}),
    ([ClipCue("   ", 100)], {}),
    ([ClipCue("a <t5> tag", 100)], {}),
    ([ClipCue("ok", 100, sounds="a <|gen|> tag")], {}),
    ([ClipCue("ok", 100)], {"sample_rate": 0}),
    ([ClipCue("ok", 100)], {"guidance_scale": 1.0}),
])
def test_generate_cues_rejects_bad_requests(pipe, cues, kwargs):
    with pytest.raises(InvalidRequest):
        pipe.generate_cues(cues, **kwargs)


def test_plan_parts_covers_exactly():
    for total in (10, 99, 100, 101, 250, 1001):
        parts = plan_parts(total, max_part_samples=100, overlap_samples=20)
        assert max(parts) <= 100
        assert len(parts) == 1 or min(parts) > 20  # every part can be cross-faded
        assert sum(parts) - 20 * (len(parts) - 1) == total


def test_free_generate_parses_plan_and_crossfades(pipe):
    instruction = "a dog barks, then rain falls"
    script = free_script(pipe, [("dog barks", 0.6), ("rain falls", 0.5)], reasoning="first a dog, then rain.")
    result = pipe.generate(instruction, 1.1, extra_processors=[free_processor(pipe, instruction, 1.1, script)])
    assert result.reasoning == "first a dog, then rain."
    assert result.captions == ("dog barks", "rain falls")
    assert result.durations_s == (0.6, 0.5)
    # The constraints, not the script, wrote the query chains.
    chain = "<t5>" + "".join(tk.t5_token(k) for k in range(8)) + "</t5><aud>"
    assert result.generated_text.count(chain) == 2
    # Clip 0 runs 0.25 s longer (cross-fade), trimmed to int(0.85*256) = 217 samples at 256 Hz,
    # clip 1 to 128; at 8 kHz: 217/256*8000 + 4000 - 2000 (overlap) samples.
    assert result.sample_rate == 8000
    assert abs(result.waveform.shape[-1] - (217 / 256 * 8000 + 4000 - 2000)) <= 2
    assert result.waveform.shape[0] == 2 and np.isfinite(result.waveform).all()


def test_free_generate_without_clips_fails_clearly(pipe):
    from audiostory_core.errors import GenerationFailed

    instruction = "silence"
    script = tk.encode(pipe.tokenizer, "nothing") + [pipe.tokens.think_close, pipe.tokens.eos[0]]
    with pytest.raises(GenerationFailed, match="no complete audio clip"):
        pipe.generate(instruction, 1.0, extra_processors=[free_processor(pipe, instruction, 1.0, script)])


def test_free_generate_refuses_a_clip_without_length(pipe):
    from audiostory_core.errors import GenerationFailed

    instruction = "a dog barks"
    script = free_script(pipe, [("dog barks", 0.0)])
    with pytest.raises(GenerationFailed, match="duration of 0.0 s; reword the instruction"):
        pipe.generate(instruction, 1.0, extra_processors=[free_processor(pipe, instruction, 1.0, script)])


def test_partial_vae_decode_equals_full_window_decode(pipe):
    from audiostory_core.vae import decode_latents

    latents = torch.randn(3, 64, 8, generator=torch.Generator().manual_seed(0))
    keep = [1, 40, 256]  # samples at 256 Hz: a single one, a short clip, the whole window
    full = decode_latents(pipe.vae, latents)
    for got, n, want in zip(pipe._decode(latents, keep), keep, full):
        assert got.shape == (2, n)
        np.testing.assert_allclose(got, want[:, :n].numpy(), atol=1e-6)
    # The margin matters: half of it changes the kept samples.
    from audiostory_core.pipeline import decode_margin_frames

    frames = 40 // 4 + decode_margin_frames((2, 2)) // 2
    short = decode_latents(pipe.vae, latents[1:2, :frames])[0, :, :40]
    assert not np.allclose(short.numpy(), full[1, :, :40].numpy(), atol=1e-6)


# --------------------------------------------------------------------------------------------
# The free mode against the recorded official chain (fixture 07)
# --------------------------------------------------------------------------------------------
FIXTURES = next((p for p in (Path(__file__).resolve().parents[1] / "shared/conformance/audiostory",
                              Path(__file__).resolve().parents[2] / "shared/conformance/audiostory",
                              Path("/work/shared/conformance/audiostory")) if p.is_dir()),
                Path("/work/shared/conformance/audiostory"))


def _json(name):
    return json.loads((FIXTURES / name / "config.json").read_text())


def _fixture_tokenizer(vocab):
    """The fixtures' word-level tokenizer: ids < 49 ordinary words, 49.. special tokens."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(),
        pre_tokenizers.Split(Regex(r"\d+\.\d+|\w+|[^\w\s]"), behavior="isolated")])
    tok = PreTrainedTokenizerFast(tokenizer_object=core)
    tok.add_tokens(sorted((t for t, i in vocab.items() if i >= 49), key=vocab.get), special_tokens=True)
    return tok


def _fixture_pipeline():
    from safetensors.torch import load_file

    from audiostory_core.config import AudioStoryConfig, VAEConfig
    from audiostory_core.model import build_audiostory
    from audiostory_core.vae import build_vae

    c02, c03, c04, c05 = (_json(n) for n in ("02_flux_dit", "03_fusion", "04_llm_agent", "05_oobleck_vae"))
    cfg = AudioStoryConfig.from_dict({
        "llm": c04["qwen2_config"], "lora": c04["lora"],
        "agent": {**c04["agent"], "num_t5_tokens": 8, "num_aud_tokens": 4},
        "fusion": c03, "dit": c02["flux_config"], "text_encoder": c02["t5_encoder_config"],
        "vae": c05["init_kwargs"],
        "sampling": {"num_inference_steps": 4, "guidance_scale": 4.0, "crossfade_s": 3.0,
                     "output_sampling_rate": 4},
    })
    state = {"seedx." + k: v for k, v in load_file(FIXTURES / "04_llm_agent/agent_state_dict.safetensors").items()}
    state.update({"tangoflux." + k: v for k, v in load_file(FIXTURES / "02_flux_dit/state_dict.safetensors").items()})
    state.update(load_file(FIXTURES / "03_fusion/state_dict.safetensors"))
    model = build_audiostory(cfg)
    model.load_checkpoint_state_dict(state, source="fixtures")
    model.agent.merge_lora_()
    vae = build_vae(VAEConfig.from_dict(c05["init_kwargs"]))
    vae.load_state_dict(load_file(FIXTURES / "05_oobleck_vae/state_dict.safetensors"), strict=True)
    return AudioStoryPipeline.from_model(model, vae, _fixture_tokenizer(c04["tokenizer"]["vocab"]))


@pytest.mark.skipif(not (FIXTURES / "07_end_to_end").is_dir(), reason="conformance fixtures not present")
def test_free_generate_reproduces_the_official_chain():
    from safetensors.torch import load_file

    io = load_file(FIXTURES / "07_end_to_end/pipeline_io.safetensors")
    pipe = _fixture_pipeline()
    instruction = "create a long audio of dog barks then rain falls with thunder."
    prompt = tk.encode(pipe.tokenizer, tk.chat_prompt(tk.instruction_text(instruction, 10.5, lead="")))
    assert prompt == io["input.prompt_input_ids"][0].tolist()
    forced = ForcedContinuationProcessor(len(prompt), io["input.forced_generated_ids"].tolist())
    result = pipe.generate(instruction, 10.5, lead="", extra_processors=[forced])
    assert result.captions == ("dog barks", "rain falls with thunder")
    assert result.durations_s == (4.5, 6.0)
    want = io["output.concatenated_waveform"].numpy()
    assert result.waveform.shape == want.shape == (2, 42)
    np.testing.assert_allclose(result.waveform, want, atol=5e-4)
