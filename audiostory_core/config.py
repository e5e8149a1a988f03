"""Frozen configuration dataclasses of the AudioStory-3B re-implementation.

Every default is the full-size value of the released model (arXiv 2508.20088; spec
`audiostory-spec.md` §2 and the reconstructed configs of the 06_full_size_manifest fixture).
Tiny test models are made with `from_dict` (unknown keys are ignored, so a fixture's
`config.json` section can be passed as is) or `dataclasses.replace`.

Nothing here imports torch at module level: `import audiostory_core.config` stays cheap.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional


def _pick(cls, data: Mapping[str, Any]) -> dict[str, Any]:
    """Keep only the keys that are fields of `cls`, converting lists to tuples."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k in names}


# --------------------------------------------------------------------------------------------
# Language model (spec §2.1)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LLMConfig:
    """Qwen2.5-3B-Instruct hyper-parameters, vocabulary already resized to 152,277."""

    vocab_size: int = 152277
    hidden_size: int = 2048
    intermediate_size: int = 11008
    num_hidden_layers: int = 36
    num_attention_heads: int = 16
    num_key_value_heads: int = 2
    max_position_embeddings: int = 32768
    rope_theta: float = 1_000_000.0
    rms_norm_eps: float = 1e-6
    tie_word_embeddings: bool = True
    hidden_act: str = "silu"
    bos_token_id: int = 151643
    eos_token_id: int = 151645
    pad_token_id: int = 151643

    def __post_init__(self):
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by the head count")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "LLMConfig":
        return cls(**_pick(cls, data))

    def to_hf(self):
        """The equivalent `transformers.Qwen2Config` (eager attention is not forced: SDPA)."""
        from transformers import Qwen2Config

        kwargs = dataclasses.asdict(self)
        theta = kwargs.pop("rope_theta")
        cfg = Qwen2Config(**kwargs, rope_parameters={"rope_type": "default", "rope_theta": theta})
        return cfg


@dataclass(frozen=True)
class LoRAConfig:
    """LoRA setup of `configs/audiostory_llm_qwen25_3b_lora.yaml` (spec §2.1)."""

    r: int = 32
    lora_alpha: float = 32.0
    target_modules: tuple[str, ...] = (
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
    )
    modules_to_save: tuple[str, ...] = ("input_layernorm", "post_attention_layernorm", "norm")

    @property
    def scaling(self) -> float:
        return self.lora_alpha / self.r

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "LoRAConfig":
        return cls(**_pick(cls, data))


# --------------------------------------------------------------------------------------------
# Optional resamplers (spec §2.6); none is used on the text-to-audio path
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class QwenResamplerConfig:
    """Qwen-VL style cross-attention resampler (`qwen_visual.Resampler`)."""

    grid_size: int
    embed_dim: int
    num_heads: int
    kv_dim: Optional[int] = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "QwenResamplerConfig":
        return cls(**_pick(cls, data))


@dataclass(frozen=True)
class WhisperResamplerConfig:
    """Average-pool + 2-layer GELU MLP on Whisper features (`Whisper_Resampler_llava`)."""

    token_num: int
    ori_embed_dim: int
    tgt_embed_dim: int

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "WhisperResamplerConfig":
        return cls(**_pick(cls, data))


@dataclass(frozen=True)
class PerceiverResamplerConfig:
    """Perceiver resampler of the detokenizer package (`detokenizer/resampler.py`)."""

    dim: int
    depth: int
    dim_head: int
    heads: int
    num_queries: int
    embedding_dim: int
    output_dim: int
    ff_mult: int = 4

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PerceiverResamplerConfig":
        return cls(**_pick(cls, data))


# --------------------------------------------------------------------------------------------
# Agent: projectors, query counts (spec §1.6, §2.2) and fusion (spec §2.3)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AgentConfig:
    """`AudioStory_llm` settings around the LLM."""

    model_dims: int = 2048
    tgt_audio_dim: int = 1024
    t5_feature_scale: float = 10.0
    num_t5_tokens: int = 64
    num_aud_tokens: int = 8
    input_resampler: Optional[QwenResamplerConfig] = None
    output_resampler: Optional[QwenResamplerConfig] = None
    whisper_resampler: Optional[WhisperResamplerConfig] = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "AgentConfig":
        kwargs = _pick(cls, data)
        for name in ("input_resampler", "output_resampler"):
            if isinstance(data.get(name), Mapping):
                kwargs[name] = QwenResamplerConfig.from_dict(data[name])
        whisper = data.get("whisper_resampler") or data.get("whisper_resampler_llava")
        if isinstance(whisper, Mapping):
            kwargs["whisper_resampler"] = WhisperResamplerConfig.from_dict(whisper)
        return cls(**kwargs)


@dataclass(frozen=True)
class FusionConfig:
    """Bridge fuser: one `nn.MultiheadAttention` then division by `t5_feature_scale`."""

    embed_dim: int = 1024
    num_heads: int = 8
    t5_feature_scale: float = 10.0

    def __post_init__(self):
        if self.embed_dim % self.num_heads:
            raise ValueError(f"fusion embed_dim {self.embed_dim} not divisible by {self.num_heads} heads")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "FusionConfig":
        return cls(**_pick(cls, data))


# --------------------------------------------------------------------------------------------
# Flux detokenizer (spec §2.4) and its frozen T5 text encoder
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DiTConfig:
    """`Flux_T5` hyper-parameters (TangoFlux-style MM-DiT over Oobleck latents)."""

    num_layers: int = 6
    num_single_layers: int = 18
    in_channels: int = 64
    attention_head_dim: int = 128
    joint_attention_dim: int = 1024
    num_attention_heads: int = 8
    audio_seq_len: int = 645  # latent frames; 645 * 2048 / 44100 = 29.95 s
    max_duration: float = 30.0  # seconds; duration embedder clamp
    text_embedding_dim: int = 1024  # AudioStory quirk: hard-coded in Flux_T5 (spec §2.4)
    axes_dims_rope: tuple[int, int, int] = (16, 56, 56)
    duration_internal_dim: int = 256  # Fourier features: 128 sin + 128 cos (+1 raw)

    def __post_init__(self):
        if sum(self.axes_dims_rope) != self.attention_head_dim:
            raise ValueError(f"axes_dims_rope {self.axes_dims_rope} must sum to attention_head_dim")
        if self.joint_attention_dim != self.text_embedding_dim:
            raise ValueError("joint_attention_dim must equal text_embedding_dim (fc feeds pooled text)")

    @property
    def inner_dim(self) -> int:
        return self.num_attention_heads * self.attention_head_dim

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DiTConfig":
        kwargs = _pick(cls, data)
        kwargs.setdefault("text_embedding_dim", kwargs.get("joint_attention_dim", 1024))
        return cls(**kwargs)


@dataclass(frozen=True)
class TextEncoderConfig:
    """T5 encoder used only to embed the empty string (google/flan-t5-large)."""

    vocab_size: int = 32128
    d_model: int = 1024
    d_kv: int = 64
    d_ff: int = 2816
    num_layers: int = 24
    num_heads: int = 16
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    feed_forward_proj: str = "gated-gelu"
    layer_norm_epsilon: float = 1e-6
    pad_token_id: int = 0
    eos_token_id: int = 1

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TextEncoderConfig":
        return cls(**_pick(cls, data))

    def to_hf(self):
        from transformers import T5Config

        return T5Config(**dataclasses.asdict(self), is_encoder_decoder=False, use_cache=False)


# --------------------------------------------------------------------------------------------
# VAE (spec §2.5)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VAEConfig:
    """`diffusers.AutoencoderOobleck` arguments; defaults = Stable Audio Open VAE."""

    encoder_hidden_size: int = 128
    downsampling_ratios: tuple[int, ...] = (2, 4, 4, 8, 8)
    channel_multiples: tuple[int, ...] = (1, 2, 4, 8, 16)
    decoder_channels: int = 128
    decoder_input_channels: int = 64
    audio_channels: int = 2
    sampling_rate: int = 44100

    @property
    def hop_length(self) -> int:
        hop = 1
        for ratio in self.downsampling_ratios:
            hop *= ratio
        return hop

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "VAEConfig":
        return cls(**_pick(cls, data))

    def to_kwargs(self) -> dict[str, Any]:
        kwargs = dataclasses.asdict(self)
        kwargs["downsampling_ratios"] = list(self.downsampling_ratios)
        kwargs["channel_multiples"] = list(self.channel_multiples)
        return kwargs


# --------------------------------------------------------------------------------------------
# Special token ids (spec §1.3, §4)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SpecialTokenIds:
    """Ids of the structural tokens the agent forces, parses and stops on."""

    t5_open: int
    t5_body: tuple[int, ...]
    t5_close: int
    aud_open: int
    aud_body: tuple[int, ...]
    aud_close: int
    gen_open: int
    gen_close: int
    think_open: int
    think_close: int
    eos: tuple[int, ...]

    @property
    def t5_chain(self) -> tuple[int, ...]:
        return (self.t5_open, *self.t5_body, self.t5_close)

    @property
    def aud_chain(self) -> tuple[int, ...]:
        return (self.aud_open, *self.aud_body, self.aud_close)

    @classmethod
    def from_vocab(cls, vocab: Mapping[str, int], num_t5: int, num_aud: int) -> "SpecialTokenIds":
        """Look the tokens up in a token -> id mapping (e.g. `tokenizer.get_vocab()`).

        Raises:
            KeyError: a structural token is missing from the vocabulary.
        """
        eos = tuple(vocab[t] for t in ("<|im_end|>", "<|endoftext|>") if t in vocab)
        return cls(
            t5_open=vocab["<t5>"],
            t5_body=tuple(vocab[f"<t5_{i:05d}>"] for i in range(num_t5)),
            t5_close=vocab["</t5>"],
            aud_open=vocab["<aud>"],
            aud_body=tuple(vocab[f"<aud_{i:05d}>"] for i in range(num_aud)),
            aud_close=vocab["</aud>"],
            gen_open=vocab["<|gen|>"],
            gen_close=vocab["<|/gen|>"],
            think_open=vocab["<|think|>"],
            think_close=vocab["<|/think|>"],
            eos=eos,
        )

    @classmethod
    def full_size(cls, num_t5: int = 64, num_aud: int = 8) -> "SpecialTokenIds":
        """Ids of the released tokenizer: 151,665 base ids + 612 added tokens in file order."""
        return cls(
            t5_open=151669,
            t5_body=tuple(range(151670, 151670 + num_t5)),
            t5_close=151665,
            aud_open=151770,
            aud_body=tuple(range(151772, 151772 + num_aud)),
            aud_close=151771,
            gen_open=152273,
            gen_close=152274,
            think_open=152275,
            think_close=152276,
            eos=(151645, 151643),
        )


# --------------------------------------------------------------------------------------------
# Sampling defaults of evaluate/inference.py (spec §1.8, §1.9)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SamplingConfig:
    num_inference_steps: int = 50
    guidance_scale: float = 4.0
    seed: int = 0  # AudioStory quirk: re-seeded for every clip (spec §1.8 step 1)
    crossfade_s: float = 3.0
    output_sampling_rate: int = 32000
    max_new_tokens: int = 1600
    repetition_penalty: float = 1.05
    stop_token_ids: tuple[int, ...] = ()   # empty: <|im_end|> and <|endoftext|> of the tokenizer


# --------------------------------------------------------------------------------------------
# Everything together
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AudioStoryConfig:
    """The whole model. `text_encoder=None` builds the DiT without its T5 encoder."""

    llm: LLMConfig = field(default_factory=LLMConfig)
    lora: Optional[LoRAConfig] = field(default_factory=LoRAConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    dit: DiTConfig = field(default_factory=DiTConfig)
    text_encoder: Optional[TextEncoderConfig] = field(default_factory=TextEncoderConfig)
    vae: VAEConfig = field(default_factory=VAEConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)

    def __post_init__(self):
        if self.agent.model_dims != self.llm.hidden_size:
            raise ValueError("agent.model_dims must equal the LLM hidden size (projector input)")
        if self.agent.tgt_audio_dim != self.fusion.embed_dim:
            raise ValueError("agent.tgt_audio_dim must equal fusion.embed_dim")
        if self.fusion.embed_dim != self.dit.text_embedding_dim:
            raise ValueError("fusion.embed_dim must equal dit.text_embedding_dim")
        if self.text_encoder is not None and self.text_encoder.d_model != self.dit.text_embedding_dim:
            raise ValueError("text_encoder.d_model must equal dit.text_embedding_dim")

    @classmethod
    def full_size(cls) -> "AudioStoryConfig":
        return cls()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "AudioStoryConfig":
        """Build from a nested dict with optional sections llm, lora, agent, fusion, dit,
        text_encoder, vae (a section given as None disables lora / text_encoder)."""
        parts: dict[str, Any] = {}
        table = {
            "llm": LLMConfig, "lora": LoRAConfig, "agent": AgentConfig, "fusion": FusionConfig,
            "dit": DiTConfig, "text_encoder": TextEncoderConfig, "vae": VAEConfig,
        }
        for name, klass in table.items():
            if name in data:
                parts[name] = None if data[name] is None else klass.from_dict(data[name])
        if "sampling" in data:
            parts["sampling"] = SamplingConfig(**_pick(SamplingConfig, data["sampling"]))
        return cls(**parts)
