"""The AudioStory agent: Qwen2.5 + LoRA, query-token decoding, hidden-state extraction, projectors.

Re-implements `AudioStory_llm` of TencentARC/AudioStory (spec §1.5, §1.6, §2.1, §2.2, §4):

* `build_qwen2` makes a `transformers.Qwen2ForCausalLM` (SDPA attention) and, when a LoRA
  config is given, the PEFT 0.4.0 layout of `lora.py` so the released keys load strictly;
* `QueryChainProcessor` is the constraint that forces `<t5> <t5_00000> … </t5>` and
  `<aud> <aud_00000> … </aud>` once the model opens a block;
* `AudioStoryAgent.generate` is greedy decoding with a KV cache that keeps the final-norm
  hidden state of every generated token fed back as input (H[j] ↔ generated[j]);
* `clip_spans` / `query_features` cut the per-clip semantic (64) and residual (8) rows out of H;
* `projector` / `audio_projector` (`mlp2x_gelu`, model_dims → 1024 → 1024) map them to the
  fusion width.

Device and dtype follow the module's parameters; nothing here moves tensors to a fixed device.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from torch import nn
from torch.nn import functional as F
from transformers import LogitsProcessor, LogitsProcessorList, RepetitionPenaltyLogitsProcessor

from .config import AgentConfig, LLMConfig, LoRAConfig, SpecialTokenIds
from .lora import apply_lora_, has_unmerged_lora, merge_lora_
from .resamplers import QwenVisualResampler, WhisperResamplerLlava

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------
def build_qwen2(llm_cfg: LLMConfig, lora_cfg: Optional[LoRAConfig] = None) -> nn.Module:
    """A randomly initialised `Qwen2ForCausalLM` (tied head), LoRA-wrapped when `lora_cfg` is set.

    Built on the current default device (use `with torch.device("meta")` for a shape-only build).
    """
    from transformers import Qwen2ForCausalLM

    hf_cfg = llm_cfg.to_hf()
    hf_cfg._attn_implementation = "sdpa"
    model = Qwen2ForCausalLM(hf_cfg)
    if lora_cfg is not None:
        apply_lora_(model, lora_cfg.r, lora_cfg.scaling, lora_cfg.target_modules, lora_cfg.modules_to_save)
    return model.eval()


def mlp2x_gelu(in_dim: int, out_dim: int) -> nn.Sequential:
    """`build_audio_projector('mlp2x_gelu')`: Linear → exact GELU → Linear (keys `0.*`, `2.*`)."""
    return nn.Sequential(nn.Linear(in_dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim))


class QueryChainProcessor(LogitsProcessor):
    """Forces a fixed token chain `[open, body_0 … body_{N-1}, close]` once `open` was emitted.

    AudioStory quirk: outside a chain the body and closing logits are set to 0.0, not -inf,
    and the forced token gets `max(logits) + 10` rather than certainty (spec §4).
    """

    def __init__(self, chain: Sequence[int]):
        if len(chain) < 2:
            raise ValueError("a query chain needs at least an opening and a closing token")
        self.chain = tuple(int(t) for t in chain)
        self._next = {tok: self.chain[i + 1] for i, tok in enumerate(self.chain[:-1])}
        self._suppressed = torch.tensor(self.chain[1:])

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        scores = scores.clone()  # scores: [B, V]
        for row in range(input_ids.shape[0]):
            nxt = self._next.get(int(input_ids[row, -1]))
            if nxt is not None:
                scores[row, nxt] = scores[row].max() + 10.0
            else:
                scores[row, self._suppressed.to(scores.device)] = 0.0
        return scores


class ForcedContinuationProcessor(LogitsProcessor):
    """Makes greedy decoding emit a given continuation: every other logit becomes -inf.

    Used for teacher-forced runs (a fixed clip plan, conformance checks).
    """

    def __init__(self, prompt_len: int, continuation: Sequence[int]):
        self.prompt_len = prompt_len
        self.continuation = [int(t) for t in continuation]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        step = input_ids.shape[1] - self.prompt_len
        if step >= len(self.continuation):
            return scores
        forced = torch.full_like(scores, float("-inf"))
        forced[:, self.continuation[step]] = 0.0
        return forced


# --------------------------------------------------------------------------------------------
# Output parsing (spec §1.6, §1.7)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClipSpan:
    """Index ranges into the generated ids (and into H) that belong to one clip."""

    caption: slice  # between <|gen|> and <t5>, incl. the <timestamp>…</timestamp> tag
    semantic: slice  # the N_t5 positions of <t5_00000> … <t5_{N-1}>
    residual: slice  # the N_aud positions of <aud_00000> … <aud_{M-1}>


def _positions(ids: Sequence[int], token: int) -> list[int]:
    return [i for i, t in enumerate(ids) if t == token]


def clip_spans(generated_ids: Sequence[int], tokens: SpecialTokenIds) -> list[ClipSpan]:
    """Per-clip spans: the i-th `<|gen|>`, `</t5>` and `</aud>` belong to clip i (spec §1.6).

    Raises:
        ValueError: fewer `<|gen|>` or `</aud>` than `</t5>` (malformed LLM output).
    """
    ids = [int(t) for t in generated_ids]
    gen, t5_end, aud_end = (_positions(ids, t) for t in (tokens.gen_open, tokens.t5_close, tokens.aud_close))
    n_t5, n_aud = len(tokens.t5_body), len(tokens.aud_body)
    if len(gen) < len(t5_end) or len(aud_end) < len(t5_end):
        raise ValueError(f"malformed clip plan: {len(gen)} <|gen|>, {len(t5_end)} </t5>, {len(aud_end)} </aud>")
    return [
        ClipSpan(caption=slice(g + 1, e - n_t5 - 1), semantic=slice(e - n_t5, e), residual=slice(a - n_aud, a))
        for g, e, a in zip(gen, t5_end, aud_end)
    ]


def reasoning_span(generated_ids: Sequence[int], tokens: SpecialTokenIds) -> slice:
    """Everything before the first `<|/think|>` (empty when it is missing).

    AudioStory quirk: the official fallback looks for a literal "<>" token, which no tokenizer
    holds, so a missing `<|/think|>` means no reasoning text (spec §8.2 item 7).
    """
    ids = [int(t) for t in generated_ids]
    return slice(0, ids.index(tokens.think_close)) if tokens.think_close in ids else slice(0, 0)


# --------------------------------------------------------------------------------------------
# The agent
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AgentGeneration:
    """Result of `AudioStoryAgent.generate` (batch size 1)."""

    sequences: torch.LongTensor  # [1, P + G] prompt followed by generated ids
    generated_ids: torch.LongTensor  # [G]
    hidden_states: torch.Tensor  # [G-1, H] final-norm state with generated[j] as input


@dataclass(frozen=True)
class TrainingPathOutput:
    lm_loss: torch.Tensor  # [] shifted next-token cross-entropy
    recon_t5: torch.Tensor  # [B, n_clips * N_t5, D], already divided by t5_feature_scale
    recon_audio: torch.Tensor  # [B, n_clips * N_aud, D], same


class AudioStoryAgent(nn.Module):
    """`AudioStory_llm`: LLM + semantic/residual projectors (+ optional unused resamplers)."""

    def __init__(self, llm_cfg: LLMConfig, lora_cfg: Optional[LoRAConfig], agent_cfg: AgentConfig):
        super().__init__()
        self.agent_cfg = agent_cfg
        self.llm = build_qwen2(llm_cfg, lora_cfg)
        self.projector = mlp2x_gelu(agent_cfg.model_dims, agent_cfg.tgt_audio_dim)
        self.audio_projector = mlp2x_gelu(agent_cfg.model_dims, agent_cfg.tgt_audio_dim)
        # Inherited from SEED-X; never called on the text-to-audio path (spec §2.6).
        if agent_cfg.input_resampler is not None:
            self.input_resampler = QwenVisualResampler(agent_cfg.input_resampler)
        if agent_cfg.output_resampler is not None:
            self.output_resampler = QwenVisualResampler(agent_cfg.output_resampler)
        if agent_cfg.whisper_resampler is not None:
            self.whisper_resampler_llava = WhisperResamplerLlava(agent_cfg.whisper_resampler)

    def _apply(self, fn, recurse: bool = True):
        # `.to(dtype)` / `.half()` would round Qwen's RoPE frequencies (a float32 buffer, as
        # transformers builds them) too: in bfloat16 the rotation angle of a position past ~1000
        # is then off by radians. Rebuild them in float32 after every cast; only the weights and
        # activations run in half precision.
        super()._apply(fn, recurse)
        inv_freq = self.llm.model.rotary_emb.inv_freq
        if inv_freq.dtype != torch.float32:
            self.rebuild_rope_(inv_freq.device)
        return self

    def rebuild_rope_(self, device: torch.device | str) -> None:
        """Recompute the LLM's non-persistent RoPE frequencies, in float32, on `device`."""
        rotary = self.llm.model.rotary_emb
        with torch.device(device):
            self.llm.model.rotary_emb = type(rotary)(self.llm.config)

    # -- LLM forward ---------------------------------------------------------------------
    def merge_lora_(self) -> "AudioStoryAgent":
        """Fold LoRA into the base weights and keep only the trained norm copies (in place)."""
        merge_lora_(self.llm)
        return self

    @property
    def is_merged(self) -> bool:
        return not has_unmerged_lora(self.llm)

    def final_hidden_states(self, input_ids: torch.LongTensor) -> torch.Tensor:
        """[B, T] ids → [B, T, H] last-layer states after the final RMSNorm (no cache)."""
        return self.llm.model(input_ids=input_ids, use_cache=False).last_hidden_state

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """[..., H] → [..., V] with the (tied) LM head."""
        return self.llm.lm_head(hidden)

    # -- decoding --------------------------------------------------------------------------
    def logits_processors(self, tokens: SpecialTokenIds, repetition_penalty: float = 1.0,
                          extra: Sequence[LogitsProcessor] = ()) -> LogitsProcessorList:
        """HF's repetition penalty first, then the semantic and residual chains (spec §1.5)."""
        procs: list[LogitsProcessor] = []
        if repetition_penalty != 1.0:
            procs.append(RepetitionPenaltyLogitsProcessor(repetition_penalty))
        procs += [QueryChainProcessor(tokens.t5_chain), QueryChainProcessor(tokens.aud_chain)]
        return LogitsProcessorList(procs + list(extra))

    @torch.no_grad()
    def generate(self, prompt_ids: torch.LongTensor, processors: LogitsProcessorList,
                 eos_ids: Sequence[int], max_new_tokens: int = 1600) -> AgentGeneration:
        """Greedy decoding with a KV cache, keeping the final-norm state of each fed-back token.

        Args:
            prompt_ids: [1, P] token ids (no BOS is added).
            processors: from `logits_processors` (plus any forcing processor).
            eos_ids: stop tokens (`<|im_end|>`, `<|endoftext|>`).
            max_new_tokens: hard limit on generated tokens.
        """
        if prompt_ids.dim() != 2 or prompt_ids.shape[0] != 1:
            raise ValueError(f"generate takes one prompt of shape [1, P], got {list(prompt_ids.shape)}")
        out = self.llm.model(input_ids=prompt_ids, use_cache=True)
        cache, h_last = out.cache, out.last_hidden_state[:, -1]  # h_last: [1, H]
        seq, kept, stop = prompt_ids, [], {int(t) for t in eos_ids}
        for step in range(int(max_new_tokens)):
            scores = processors(seq, self.logits(h_last).float())  # [1, V]
            nxt = scores.argmax(dim=-1, keepdim=True)  # [1, 1]
            seq = torch.cat([seq, nxt.to(seq.dtype)], dim=1)
            if int(nxt) in stop or step == int(max_new_tokens) - 1:
                break  # the last generated token is never fed back (as in HF generate)
            out = self.llm.model(input_ids=nxt, cache=cache, use_cache=True)
            cache, h_last = out.cache, out.last_hidden_state[:, -1]
            kept.append(h_last[0])  # state whose input is the token just generated
        generated = seq[0, prompt_ids.shape[1]:]
        width = self.llm.config.hidden_size
        hidden = torch.stack(kept) if kept else h_last.new_zeros(0, width)
        return AgentGeneration(sequences=seq, generated_ids=generated, hidden_states=hidden)

    # -- query features (spec §1.6) ------------------------------------------------------
    @staticmethod
    def query_features(hidden: torch.Tensor, spans: Sequence[ClipSpan]) -> tuple[torch.Tensor, torch.Tensor]:
        """H [G-1, H] → semantic rows [n, N_t5, H] and residual rows [n, N_aud, H]."""
        sem = torch.stack([hidden[s.semantic] for s in spans])
        res = torch.stack([hidden[s.residual] for s in spans])
        return sem, res

    def project(self, semantic: torch.Tensor, residual: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[n, N_t5, H], [n, N_aud, H] → [n, N_t5, D], [n, N_aud, D].

        AudioStory quirk: no division by t5_feature_scale on the generate path; the fusion
        divides once (spec §1.6 step 3).
        """
        return self.projector(semantic), self.audio_projector(residual)

    # -- training path (`get_last_hidden_states`) ------------------------------------------
    def training_outputs(self, input_ids: torch.LongTensor, t5_mask: torch.Tensor,
                         aud_mask: torch.Tensor) -> TrainingPathOutput:
        """LM loss with labels = input_ids and the masked, projected, scaled query features.

        AudioStory quirk: the training path divides by t5_feature_scale here *and* again in
        the fusion (spec §1.6, §8.2 item 9); inference divides once.
        """
        hidden = self.final_hidden_states(input_ids)  # [B, T, H]
        logits = self.logits(hidden).float()  # [B, T, V]
        lm_loss = F.cross_entropy(logits[:, :-1].flatten(0, 1), input_ids[:, 1:].flatten())
        batch, scale = input_ids.shape[0], self.agent_cfg.t5_feature_scale
        recon_t5 = self.projector(hidden[t5_mask.bool()]).view(batch, -1, self.agent_cfg.tgt_audio_dim)
        recon_aud = self.audio_projector(hidden[aud_mask.bool()]).view(batch, -1, self.agent_cfg.tgt_audio_dim)
        return TrainingPathOutput(lm_loss=lm_loss, recon_t5=recon_t5 / scale, recon_audio=recon_aud / scale)
