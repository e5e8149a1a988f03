"""AudioStoryPipeline: text → long audio, and shot-locked rendering of timed cues.

Two modes share one set of components (agent, fusion, detokenizer, VAE, tokenizer):

* `generate(instruction, total_duration_s)` is the official behaviour (spec §1): the LLM
  writes its own storyline and clip plan (greedy, repetition penalty 1.05, forced query
  chains, EOS stop, ≤ 1600 new tokens); each clip is denoised, decoded, trimmed (+3 s overlap
  for all but the last), resampled to 32 kHz and cross-faded into one track.
* `generate_cues(cues, ...)` is shot-locked: every cue fixes its caption and length, so the
  whole teacher-forced sequence (prompt, storyline, per-clip caption, duration and query
  tokens) goes through the LLM in ONE prefill pass, and all clips are denoised together, the
  unconditional and conditional halves in one batch per step. Cues longer than the DiT's
  window (≈ 30 s) are split into overlapping parts and cross-faded back.

Device and dtype are read from the components; `from_pretrained` decides them once via
`device.resolve_device`.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from . import prompts
from . import tokenizer as tk
from .errors import GenerationFailed, InvalidRequest

if TYPE_CHECKING:
    from .config import AudioStoryConfig
    from .flux_dit import FluxDetokenizer
    from .fusion import QueryFusion
    from .hub import CheckpointFiles
    from .llm import AudioStoryAgent
    from .model import AudioStory

log = logging.getLogger(__name__)

CUE_SAMPLE_RATE = 48_000        # Hz, default delivery rate of shot-locked cues
RESAMPLE_MARGIN_SAMPLES = 256   # VAE-rate samples decoded past a cue's end, so the resampler's
                                # filter tail never falls inside the delivered audio
MIN_MARGIN_SAMPLES = 4          # the least margin that still guarantees enough output samples
DIT_BATCH_CLIPS = 16            # clips per DiT call (the CFG batch is twice that)
VAE_BATCH_CLIPS = 4             # clips per VAE decode: in float32 one activation of its last block
                                # is ~0.7 GB per 30 s clip, and a residual unit holds several
# Where a user raises the free-mode token limit: there is no command-line option for it.
_MORE_TOKENS = ("raise max_new_tokens in the checkpoint's generation_config.json (or the sampling section of its "
                "config.yaml)")
_STRUCTURAL_TEXT = ("<|", "<t5", "</t5", "<aud", "</aud", "<timestamp", "</timestamp")


# --------------------------------------------------------------------------------------------
# Inputs and results
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClipCue:
    """One shot-locked cue: what it sounds like and exactly how many samples it lasts."""

    caption: str                # the clip caption the model reads after `<|gen|>`
    num_samples: int
    seed: int | None = None     # noise seed of this cue; None derives it from the call's seed
    story: str | None = None    # the storyline point's "Story Details"; None: the caption
    sounds: str | None = None   # the storyline point's "Sound Effects"; None: the caption

    def text(self) -> prompts.ClipText:
        caption = self.caption.strip()
        return prompts.ClipText(story=(self.story or caption).strip(), sounds=(self.sounds or caption).strip(),
                                caption=caption)


@dataclass(frozen=True)
class ClipConditions:
    """Per-clip DiT conditioning, reusable to re-render without running the LLM again."""

    text: torch.Tensor              # [n_parts, N_t5, D] fused query features, CPU float32
    duration_s: tuple[float, ...]   # DiT duration of each part: its whole length in seconds
    part_samples: tuple[int, ...]   # length of each part at `sample_rate`
    cue_index: tuple[int, ...]      # cue each part belongs to (parts of a cue are consecutive)
    sample_rate: int


@dataclass(frozen=True)
class CueRender:
    """Result of `generate_cues`: one waveform per cue, exactly the requested length."""

    waveforms: tuple[np.ndarray, ...]   # each float32 [channels, num_samples]
    sample_rate: int
    conditions: ClipConditions
    seeds: tuple[int, ...]              # noise seed of each cue
    story: prompts.StoryText | None = None   # the text the language model read


def _only_cues(conditions: ClipConditions, seeds: tuple[int, ...],
               only: Sequence[int]) -> tuple[ClipConditions, tuple[int, ...]]:
    """The conditions and seeds of the cues at positions `only`, renumbered in that order."""
    n_cues = len(seeds)
    picked = [int(i) for i in only]
    if not picked or len(set(picked)) != len(picked) or not all(0 <= i < n_cues for i in picked):
        raise InvalidRequest(f"Cues to render must be distinct positions among the {n_cues} cues, got {list(only)}.")
    order = {cue: k for k, cue in enumerate(picked)}
    rows = sorted((k for k, cue in enumerate(conditions.cue_index) if cue in order),
                  key=lambda k: (order[conditions.cue_index[k]], k))
    kept = ClipConditions(conditions.text[rows], tuple(conditions.duration_s[k] for k in rows),
                          tuple(conditions.part_samples[k] for k in rows),
                          tuple(order[conditions.cue_index[k]] for k in rows), conditions.sample_rate)
    return kept, tuple(seeds[i] for i in picked)


@dataclass(frozen=True)
class StoryResult:
    """Result of the free `generate` mode."""

    reasoning: str                  # storyline text before `<|/think|>`
    captions: tuple[str, ...]       # clip captions, timestamp removed
    durations_s: tuple[float, ...]  # clip durations the model wrote
    waveform: np.ndarray            # float32 [channels, samples], cross-faded
    sample_rate: int
    generated_text: str             # everything the model wrote, special tokens kept


# --------------------------------------------------------------------------------------------
# Pure helpers
# --------------------------------------------------------------------------------------------
def plan_parts(num_samples: int, max_part_samples: int, overlap_samples: int) -> tuple[int, ...]:
    """Split a cue into the fewest parts of ≤ max samples that overlap by `overlap_samples`;
    cross-fading them back gives exactly `num_samples`."""
    if num_samples <= max_part_samples:
        return (num_samples,)
    step = max_part_samples - overlap_samples
    count = math.ceil((num_samples - overlap_samples) / step)
    length = math.ceil((num_samples + (count - 1) * overlap_samples) / count)
    parts = [length] * (count - 1)
    parts.append(num_samples - (count - 1) * (length - overlap_samples))
    return tuple(parts)


def story_durations(part_samples: Sequence[int], part_cue: Sequence[int], overlap_samples: int,
                    sample_rate: int) -> tuple[float, ...]:
    """The `<timestamp>` value of each part, in seconds: the time it adds to the story.

    The official runner writes a clip's own length X and renders every clip but the last
    X + cross-fade long (spec §1.4, §1.7). A part followed by another part of its cue is that
    case: its timestamp leaves out the overlap, so the timestamps of a cue add up to its length.
    """
    out = []
    for k, (n, cue) in enumerate(zip(part_samples, part_cue)):
        continued = k + 1 < len(part_cue) and part_cue[k + 1] == cue
        out.append((n - overlap_samples if continued else n) / sample_rate)
    return tuple(out)


def debug_config(vocab_size: int, sampling: dict | None = None) -> "AudioStoryConfig":
    """Tiny config with the full model's structure: 8 semantic + 4 residual query tokens, a
    2-layer LLM, a 1+1-block DiT over 64 latent frames and a 256 Hz VAE (1.0 s window)."""
    from .config import AudioStoryConfig

    return AudioStoryConfig.from_dict({
        "llm": {"vocab_size": vocab_size, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 8192,
                "bos_token_id": 256, "eos_token_id": 258, "pad_token_id": 256},
        "lora": {"r": 4, "lora_alpha": 8},
        "agent": {"model_dims": 32, "tgt_audio_dim": 16, "num_t5_tokens": 8, "num_aud_tokens": 4},
        "fusion": {"embed_dim": 16, "num_heads": 2},
        "dit": {"num_layers": 1, "num_single_layers": 1, "in_channels": 8, "attention_head_dim": 16,
                "num_attention_heads": 2, "joint_attention_dim": 16, "text_embedding_dim": 16,
                "axes_dims_rope": [4, 6, 6], "audio_seq_len": 64, "max_duration": 1.0,
                "duration_internal_dim": 16},
        "text_encoder": {"vocab_size": 40, "d_model": 16, "d_kv": 4, "d_ff": 32, "num_layers": 1, "num_heads": 4},
        "vae": {"encoder_hidden_size": 4, "downsampling_ratios": [2, 2], "channel_multiples": [1, 2],
                "decoder_channels": 4, "decoder_input_channels": 8, "audio_channels": 2, "sampling_rate": 256},
        "sampling": {"num_inference_steps": 3, "guidance_scale": 4.0, "crossfade_s": 0.25,
                     "output_sampling_rate": 8000, "max_new_tokens": 400, **(sampling or {})},
    })


def decode_margin_frames(downsampling_ratios: Sequence[int]) -> int:
    """Latent frames past a clip's end that still reach its last sample through the Oobleck
    decoder: the first conv (±3 frames), per upsampling block the transposed conv (±1 frame at
    the previous rate) and the dilated convs (±3·(1+3+9) samples at the new rate), then the
    last conv (±3 samples); rounded up with 2 frames to spare (12 frames for the real VAE)."""
    radius, rate = 3.0, 1
    for stride in reversed(list(downsampling_ratios)):
        radius += 1.0 / rate
        rate *= stride
        radius += 39.0 / rate
    return math.ceil(radius + 3.0 / rate) + 2


def _release_memory(device: torch.device) -> None:
    # Activations were dropped by reference; hand the cached blocks back so the next stage's
    # large buffers are not fragmented around them. (No gc.collect: it costs ~0.25 s per call.)
    if device.type == "cuda":
        torch.cuda.empty_cache()


# --------------------------------------------------------------------------------------------
# The pipeline
# --------------------------------------------------------------------------------------------
class AudioStoryPipeline:
    """AudioStory-3B inference: components in, audio out (see the module docstring)."""

    def __init__(self, *, agent: "AudioStoryAgent", fusion: "QueryFusion", detokenizer: "FluxDetokenizer",
                 vae, tokenizer, config: "AudioStoryConfig"):
        self.agent, self.fusion, self.detokenizer = agent, fusion, detokenizer
        self.vae, self.tokenizer, self.config = vae, tokenizer, config
        self.tokens = tk.special_ids(tokenizer, config.agent.num_t5_tokens, config.agent.num_aud_tokens)

    @classmethod
    def from_model(cls, model: "AudioStory", vae, tokenizer) -> "AudioStoryPipeline":
        return cls(agent=model.agent, fusion=model.fusion, detokenizer=model.detokenizer,
                   vae=vae, tokenizer=tokenizer, config=model.cfg)

    @classmethod
    def from_pretrained(cls, path_or_repo: str | None = None, device: str | None = None,
                        dtype: str | None = None, cache_dir: str | None = None,
                        files: "CheckpointFiles | None" = None) -> "AudioStoryPipeline":
        """Load AudioStory-3B from a folder or the Hub (default TencentARC/AudioStory-3B).

        Every size and setting is read from the checkpoint's own files (see `checkpoint`), so a
        smaller model in the official layout (e.g. `testing.write_tiny_checkpoint`) loads too.
        `files`: the checkpoint's files when the caller has located them already (`hub.locate`),
        so nothing is looked up, or fetched, a second time.

        Raises:
            DeviceUnavailable: a CUDA-only device/dtype on a machine without CUDA.
            WeightsNotFound: the weights are absent and cannot be downloaded here.
            CheckpointMismatch: the weights do not match the model (every key listed).
        """
        from . import checkpoint, hub
        from .device import resolve_device

        placement = resolve_device(device, dtype)
        files = files if files is not None else hub.locate(path_or_repo)
        model = checkpoint.load_model(files, placement, cache_dir)
        vae = checkpoint.load_vae(files, placement, model.cfg.vae)
        tok = checkpoint.load_tokenizer(files, model.cfg)
        return cls.from_model(model, vae, tok)

    @classmethod
    def debug(cls, seed: int = 0, sampling: dict | None = None) -> "AudioStoryPipeline":
        """A tiny random-weight pipeline (CPU, float32, seconds to run) for tests and demos.

        Same code path as the real model; its 256 Hz VAE and 1 s DiT window keep it small.
        `sampling` overrides SamplingConfig fields.
        """
        from .model import build_audiostory
        from .vae import build_vae

        tok = tk.debug_tokenizer(n_t5_vocab=10, n_aud_vocab=6)
        cfg = debug_config(len(tok), sampling)
        torch.manual_seed(seed)
        model = build_audiostory(cfg)
        model.agent.merge_lora_()
        return cls.from_model(model, build_vae(cfg.vae), tok)

    # -- derived sizes -------------------------------------------------------------------------
    @property
    def stop_token_ids(self) -> tuple[int, ...]:
        """Where free decoding stops: the checkpoint's generation_config.json EOS ids when it
        names them, else the tokenizer's `<|im_end|>` and `<|endoftext|>`."""
        return tuple(self.config.sampling.stop_token_ids) or self.tokens.eos

    @property
    def device(self) -> torch.device:
        return self.detokenizer.device

    @property
    def vae_rate(self) -> int:
        return int(self.vae.config.sampling_rate)

    @property
    def window_samples(self) -> int:
        """VAE-rate samples one DiT pass produces (645 × 2048 = 1,320,960 ≈ 29.95 s)."""
        return self.config.dit.audio_seq_len * math.prod(self.vae.config.downsampling_ratios)

    def max_part_samples(self, sample_rate: int) -> int:
        usable = min(self.window_samples - MIN_MARGIN_SAMPLES,
                     int(self.config.dit.max_duration * self.vae_rate))
        return int(usable * sample_rate // self.vae_rate)

    # -- free mode -----------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, instruction: str, total_duration_s: float, *, seed: int | None = None,
                 num_steps: int | None = None, guidance_scale: float | None = None,
                 max_new_tokens: int | None = None, lead: str = prompts.DEFAULT_LEAD,
                 extra_processors: Sequence = ()) -> StoryResult:
        """Text → long audio, as the official runner does it (spec §1).

        Args:
            instruction: what the whole soundtrack tells (the caption part of the template).
            total_duration_s: requested total length in seconds (written into the prompt).
            seed: noise seed, the same for every clip (official); default config.sampling.seed.
            num_steps, guidance_scale, max_new_tokens: default to config.sampling.
            lead: the template's lead phrase.
            extra_processors: logits processors applied after the built-in ones.

        Returns:
            StoryResult with the waveform at config.sampling.output_sampling_rate.

        Raises:
            InvalidRequest: empty instruction or a non-positive duration.
            GenerationFailed: the model wrote no well-formed clip.
        """
        from .llm import reasoning_span
        from .vae import duration_to_samples

        s = self.config.sampling
        # 1. Check inputs
        limit = self._check_story(instruction, total_duration_s, max_new_tokens)
        steps, guidance = self._sampling_args(num_steps, guidance_scale)
        seed = s.seed if seed is None else int(seed)
        # 2. Prompt and greedy decoding with the query-chain constraints
        prompt = prompts.chat_prompt(prompts.instruction_text(instruction, total_duration_s, lead))
        prompt_ids = torch.tensor([tk.encode(self.tokenizer, prompt)], device=self._llm_device)
        procs = self.agent.logits_processors(self.tokens, s.repetition_penalty, extra=list(extra_processors))
        log.info("Writing the storyline and clip plan (up to %d tokens).", limit)
        out = self.agent.generate(prompt_ids, procs, self.stop_token_ids, max_new_tokens=limit)
        # 3. Parse the clip plan and take the query rows
        generated = out.generated_ids.tolist()
        captions, durations, semantic, residual = self._parse_plan(generated, out.hidden_states)
        reasoning = tk.decode(self.tokenizer, generated[reasoning_span(generated, self.tokens)])
        del out
        _release_memory(self.device)
        # 4. Per-clip conditions; every clip but the last runs crossfade_s longer (spec §1.7)
        text = self.fusion(*self.agent.project(semantic, residual))  # [n, N_t5, D]
        dit_s = [d + s.crossfade_s for d in durations[:-1]] + [durations[-1]]
        # 5. Denoise all clips together from the same noise (official behaviour, spec §1.8)
        noise = self._same_noise(seed, len(dit_s))
        latents = self._denoise(text, dit_s, noise, steps, guidance)
        # 6. Decode, trim to int(d·rate), resample, cross-fade
        waves = self._decode(latents, [duration_to_samples(d, self.vae_rate) for d in dit_s])
        rate = int(s.output_sampling_rate)
        clips = [torch.from_numpy(self._resample(w, rate)) for w in waves]
        track = _crossfade(clips, int(s.crossfade_s * rate))
        return StoryResult(reasoning, tuple(captions), tuple(durations), track, rate,
                           tk.decode(self.tokenizer, generated))

    def _check_story(self, instruction: str, total_duration_s: float, max_new_tokens: int | None) -> int:
        """Validate the free-mode request; returns the token limit."""
        if not isinstance(instruction, str) or not instruction.strip():
            raise InvalidRequest("The instruction is empty; describe the soundtrack in a sentence.")
        if not (isinstance(total_duration_s, (int, float)) and math.isfinite(total_duration_s)
                and total_duration_s > 0):
            raise InvalidRequest(f"The total duration must be a positive number of seconds, got {total_duration_s!r}.")
        limit = int(max_new_tokens if max_new_tokens is not None else self.config.sampling.max_new_tokens)
        if limit < 1:
            raise InvalidRequest(f"max_new_tokens must be at least 1, got {max_new_tokens}.")
        return limit

    def _parse_plan(self, generated: list[int], hidden: torch.Tensor):
        # Greedy decoding ignores the seed (it only draws the noise), so the fixes named below
        # change what the model reads or how long it may write.
        from .llm import AudioStoryAgent, clip_spans

        try:
            spans = clip_spans(generated, self.tokens)
        except ValueError as err:
            raise GenerationFailed(f"The model wrote a malformed clip plan ({err}); reword the instruction "
                                   f"or {_MORE_TOKENS}.") from err
        if not spans or spans[-1].residual.stop > hidden.shape[0]:
            raise GenerationFailed(
                f"The model wrote no complete audio clip in {len(generated)} tokens; reword the "
                f"instruction, ask for a shorter total duration or {_MORE_TOKENS}.")
        captions, durations = [], []
        for span in spans:
            text = tk.decode(self.tokenizer, generated[span.caption])
            try:
                content, dur = tk.split_caption_duration(text)
            except ValueError as err:
                raise GenerationFailed(f"Clip caption {text!r} has no duration tag; reword the instruction.") from err
            if not (math.isfinite(dur) and dur > 0):
                raise GenerationFailed(f"Clip caption {text!r} gives a duration of {dur} s; reword the instruction.")
            captions.append(content)
            durations.append(dur)
        semantic, residual = AudioStoryAgent.query_features(hidden, spans)
        return captions, durations, semantic, residual

    # -- shot-locked mode ----------------------------------------------------------------------
    @torch.no_grad()
    def generate_cues(self, cues: Sequence[ClipCue], *, lead: str = prompts.DEFAULT_LEAD,
                      summary: str | None = None, sample_rate: int = CUE_SAMPLE_RATE, seed: int = 0,
                      same_noise: bool = False, num_steps: int | None = None,
                      guidance_scale: float | None = None, only: Sequence[int] | None = None) -> CueRender:
        """Render timed cues whose captions and lengths are fixed (one LLM prefill, batched DiT).

        The model reads the text of `prompts.compose_story`: the instruction (`lead` + `summary`
        + total duration), a storyline point per clip and each clip's caption and duration.

        Args:
            cues: the cues in time order.
            lead: the instruction's lead phrase (e.g. `prompts.DUBBING_LEAD`), ending in a space.
            summary: what the whole soundtrack tells; default: the cue captions in order.
            sample_rate: rate of the returned waveforms, Hz.
            seed: base seed; cue i without its own seed uses seed + i.
            same_noise: start every clip from the same noise (`seed`; cue seeds are ignored), as the
                official runner does.
            num_steps, guidance_scale: default to config.sampling.
            only: positions in `cues` of the cues to denoise and decode (None: all). The language
                model still reads every cue, so a long soundtrack rendered a few cues at a time
                is conditioned on its one storyline, as if rendered at once; each cue keeps its
                own seed.

        Returns:
            CueRender with one float32 [channels, cue.num_samples] waveform per cue rendered (those
            of `only`, in its order) and the text read.

        Raises:
            InvalidRequest: empty cue list, bad captions, lengths, rate or a too-long sequence.
        """
        # 1. Check inputs (nothing runs before every check passed)
        steps, guidance = self._sampling_args(num_steps, guidance_scale)
        if not isinstance(lead, str) or not (summary is None or isinstance(summary, str)):
            raise InvalidRequest("The lead and the summary must be text.")
        parts, overlap = self._check_cues(cues, sample_rate)
        if same_noise:
            seeds = (int(seed),) * len(cues)
        else:
            seeds = tuple(int(c.seed) if c.seed is not None else int(seed) + i for i, c in enumerate(cues))
        # 2. Clip list: long cues become overlapping parts
        part_cue = tuple(i for i, p in enumerate(parts) for _ in p)
        part_samples = tuple(n for p in parts for n in p)
        part_s = tuple(n / sample_rate for n in part_samples)
        story = prompts.compose_story([cues[i].text() for i in part_cue],
                                      story_durations(part_samples, part_cue, overlap, sample_rate), lead, summary)
        # 3. Teacher-forced sequence, then ONE prefill pass for every clip's query rows
        ids, n_prompt = self.story_sequence(story)
        log.info("Rendering %d cue(s) as %d clip(s): one prefill of %d tokens, %d DiT steps.",
                 len(cues), len(part_cue), len(ids), steps)
        text = self.conditions_from_sequence(ids, n_prompt)  # [n_parts, N_t5, D]
        _release_memory(self.device)
        conditions = ClipConditions(text.float().cpu(), part_s, part_samples, part_cue, int(sample_rate))
        if only is not None:
            conditions, seeds = _only_cues(conditions, seeds, only)
        # 4.-6. Denoise all clips together, decode, fit to exact lengths and join parts
        waves = self.render(conditions, seeds, same_noise=same_noise, num_steps=steps,
                            guidance_scale=guidance, overlap_samples=overlap)
        return CueRender(waves, int(sample_rate), conditions, seeds, story)

    def render(self, conditions: ClipConditions, seeds: Sequence[int], *, same_noise: bool = False,
               num_steps: int | None = None, guidance_scale: float | None = None,
               overlap_samples: int | None = None) -> tuple[np.ndarray, ...]:
        """Denoise and decode precomputed conditions; one waveform per cue (see generate_cues)."""
        steps, guidance = self._sampling_args(num_steps, guidance_scale)
        n_cues = max(conditions.cue_index) + 1
        if len(seeds) != n_cues:
            raise InvalidRequest(f"{len(seeds)} seeds were given for {n_cues} cues; give one per cue.")
        if overlap_samples is None:
            overlap_samples = int(self.config.sampling.crossfade_s * conditions.sample_rate)
        # 4. Noise: per cue from its own seed (parts draw consecutively), or the same for all
        if same_noise:
            noise = self._same_noise(int(seeds[0]), len(conditions.cue_index))
        else:
            noise = self._per_cue_noise(seeds, conditions.cue_index)
        latents = self._denoise(conditions.text, conditions.duration_s, noise, steps, guidance)
        # 5. Decode just past each part's end and resample to exactly its length
        rate = conditions.sample_rate
        needed = [min(self.window_samples, math.ceil(n * self.vae_rate / rate) + RESAMPLE_MARGIN_SAMPLES)
                  for n in conditions.part_samples]
        waves = self._decode(latents, needed)
        del latents
        parts = [torch.from_numpy(_fit(self._resample(w, rate), n))
                 for w, n in zip(waves, conditions.part_samples)]
        # 6. Cross-fade the parts of each cue back together
        out = []
        for cue in range(n_cues):
            pieces = [p for p, c in zip(parts, conditions.cue_index) if c == cue]
            out.append(_crossfade(pieces, overlap_samples))
        return tuple(out)

    def _check_cues(self, cues: Sequence[ClipCue], sample_rate: int) -> tuple[list[tuple[int, ...]], int]:
        if not cues:
            raise InvalidRequest("No cues were given; pass at least one ClipCue.")
        if not isinstance(sample_rate, int) or sample_rate <= 0:
            raise InvalidRequest(f"The sample rate must be a positive integer in Hz, got {sample_rate!r}.")
        for i, cue in enumerate(cues):
            if not isinstance(cue.caption, str) or not cue.caption.strip():
                raise InvalidRequest(f"Cue {i} has an empty caption; describe its sound in words.")
            texts = [t for t in (cue.caption, cue.story, cue.sounds) if t is not None]
            if not all(isinstance(t, str) for t in texts):
                raise InvalidRequest(f"Cue {i}'s story and sounds must be text.")
            if any(mark in t for t in texts for mark in _STRUCTURAL_TEXT):
                raise InvalidRequest(f"Cue {i}'s caption contains model control tokens; remove the <…> tags.")
            if not isinstance(cue.num_samples, (int, np.integer)) or cue.num_samples <= 0:
                raise InvalidRequest(f"Cue {i} must last a positive whole number of samples, got {cue.num_samples!r}.")
        max_part = self.max_part_samples(sample_rate)
        overlap = int(self.config.sampling.crossfade_s * sample_rate)
        if any(c.num_samples > max_part for c in cues) and not 0 < overlap < max_part // 2:
            raise InvalidRequest(
                f"A cue is longer than the {max_part / sample_rate:.2f} s window but the cross-fade of "
                f"{self.config.sampling.crossfade_s} s cannot split it; shorten the cue or the cross-fade.")
        return [plan_parts(int(c.num_samples), max_part, overlap) for c in cues], overlap

    def story_sequence(self, story: prompts.StoryText) -> tuple[list[int], int]:
        """Token ids of a composed clip plan and the prompt's length (see `tokenizer.story_ids`).

        Raises:
            InvalidRequest: the sequence is longer than the model's context.
        """
        ids, n_prompt = tk.story_ids(self.tokenizer, self.tokens, story)
        limit = self.config.llm.max_position_embeddings
        if len(ids) > limit:
            raise InvalidRequest(f"The cue list needs {len(ids)} tokens but the model reads at most {limit}; "
                                 "render the cues in smaller groups.")
        return ids, n_prompt

    def conditions_from_sequence(self, ids: Sequence[int], n_prompt: int) -> torch.Tensor:
        """One causal prefill over a complete sequence → fused per-clip conditions [n, N_t5, D].

        Position n_prompt + j of the prefill has generated token j as input, the same state a
        KV-cache decoder keeps for it (spec §4), so this equals step-by-step decoding.
        """
        from .llm import AudioStoryAgent, clip_spans

        spans = clip_spans(ids[n_prompt:], self.tokens)
        last = n_prompt + spans[-1].residual.stop  # nothing after the last query row is needed
        batch = torch.tensor([list(ids[:last])], device=self._llm_device)
        hidden = self.agent.final_hidden_states(batch)[0, n_prompt:]  # [G, H]
        semantic, residual = AudioStoryAgent.query_features(hidden, spans)
        del hidden
        return self.fusion(*self.agent.project(semantic, residual))

    # -- shared stages -------------------------------------------------------------------------
    @property
    def _llm_device(self) -> torch.device:
        return self.agent.llm.model.embed_tokens.weight.device

    def _sampling_args(self, num_steps: int | None, guidance_scale: float | None) -> tuple[int, float]:
        s = self.config.sampling
        steps = int(s.num_inference_steps if num_steps is None else num_steps)
        guidance = float(s.guidance_scale if guidance_scale is None else guidance_scale)
        if steps < 1:
            raise InvalidRequest(f"num_steps must be at least 1, got {num_steps}.")
        if guidance <= 1.0:
            # The official non-CFG branch cannot run (spec §8.2-3); keep results comparable.
            raise InvalidRequest(f"guidance_scale must be above 1 (default 4.0), got {guidance_scale}.")
        return steps, guidance

    def _latent_shape(self) -> tuple[int, int]:
        return self.config.dit.audio_seq_len, self.config.dit.in_channels

    def _same_noise(self, seed: int, count: int) -> torch.Tensor:
        from .sampler import initial_noise

        return initial_noise(seed, count, *self._latent_shape())  # [count, S, C]

    def _per_cue_noise(self, seeds: Sequence[int], cue_index: Sequence[int]) -> torch.Tensor:
        chunks = []
        for cue, seed in enumerate(seeds):
            n = sum(1 for c in cue_index if c == cue)
            gen = torch.Generator(device="cpu").manual_seed(int(seed))
            chunks.append(torch.randn(n, *self._latent_shape(), generator=gen, dtype=torch.float32))
        return torch.cat(chunks)  # [n_parts, S, C], drawn on the CPU like the official noise

    def _denoise(self, text: torch.Tensor, durations_s: Sequence[float], noise: torch.Tensor,
                 steps: int, guidance: float) -> torch.Tensor:
        """All clips together: [n, N_t5, D] conditions + [n, S, C] noise → latents [n, S, C]."""
        out = []
        for start in range(0, text.shape[0], DIT_BATCH_CLIPS):
            sl = slice(start, start + DIT_BATCH_CLIPS)
            dur = torch.tensor(list(durations_s[sl]), dtype=torch.float32, device=self.device)
            out.append(self.detokenizer.sample(text[sl].to(self.device), dur, noise[sl].to(self.device),
                                               steps, guidance))
        return torch.cat(out)

    def _decode(self, latents: torch.Tensor, keep_samples: Sequence[int]) -> list[np.ndarray]:
        """Latents [n, S, C] → per clip float32 [channels, keep_i] at the VAE rate.

        Only the frames a clip keeps, plus the decoder's receptive field, are decoded: the kept
        samples equal those of a full-window decode, for a fraction of the work on short clips.
        """
        from .vae import decode_latents

        ratios = self.vae.config.downsampling_ratios
        hop, margin = math.prod(ratios), decode_margin_frames(ratios)
        waves = []
        for start in range(0, latents.shape[0], VAE_BATCH_CLIPS):
            keep = keep_samples[start:start + VAE_BATCH_CLIPS]
            frames = min(latents.shape[1], math.ceil(max(keep) / hop) + margin)
            batch = decode_latents(self.vae, latents[start:start + VAE_BATCH_CLIPS, :frames])  # [b, ch, frames·hop]
            waves += [wave[:, :n].float().cpu().numpy() for wave, n in zip(batch, keep)]
            del batch
        return waves

    def _resample(self, wave: np.ndarray, rate: int) -> np.ndarray:
        from .vae import resample

        return resample(wave, self.vae_rate, rate).astype(np.float32, copy=False)


def _fit(wave: np.ndarray, num_samples: int) -> np.ndarray:
    if wave.shape[-1] < num_samples:
        raise AssertionError(f"resampled clip has {wave.shape[-1]} samples, needs {num_samples}")
    return np.ascontiguousarray(wave[:, :num_samples])


def _crossfade(clips: Sequence[torch.Tensor], overlap_samples: int) -> np.ndarray:
    from .vae import crossfade_concat

    return crossfade_concat(list(clips), overlap_samples).numpy().astype(np.float32, copy=False)
