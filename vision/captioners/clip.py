"""The `clip` captioner: zero-shot sound tags from a CLIP or SigLIP model (transformers).

Every vocabulary entry becomes a text prompt describing what the sound looks like on screen
("a cartoon scene of a door slamming shut, with the sound of door slam"). The prompts are
embedded once per captioner; every keyframe of every shot is embedded in batches; a shot's
image embedding is the normalised mean of its keyframes'. Scores are the model's own: a
softmax over the vocabulary for CLIP, an independent sigmoid per tag for SigLIP (whose
checkpoints carry a `logit_bias`). The caption is composed from the top tags' phrases.

Weights come from a local folder or the Hugging Face cache (see `_loading`); torch and
transformers are imported only when the model loads.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ModelUnavailable
from ..types import ShotCaption, VideoAnalysis
from ._base import Captioner
from ._loading import DEFAULT_CLIP_MODEL, load_or_explain, resolve_model_dir, resolve_placement
from .motion import describe_shot
from .vocabulary import VOCABULARY, join_phrases

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

DEFAULT_PROMPT = "a cartoon scene of {sight}, with the sound of {name}"
CAPTION_TAGS = 3           # at most this many tags are named in the caption text
_SIGLIP_TEXT_LENGTH = 64   # SigLIP text towers were trained on max-length padded prompts


@dataclass(frozen=True)
class ClipOptions:
    """Settings of the `clip` captioner.

    Attributes:
        model: a local model folder or a Hugging Face Hub id (CLIP or SigLIP).
        top_k: tags kept per shot.
        batch_size: keyframes embedded per forward pass (across shots).
        prompt: text template per vocabulary entry; may use {name}, {sight} and {phrase}.
        device: "cpu", "cuda" or "cuda:N".
        dtype: "float32", or "float16"/"bfloat16" on CUDA.
        allow_download: fetch the model from the Hub when it is not cached (off by default, and
            always off while HF_HUB_OFFLINE is set).
    """

    model: str = DEFAULT_CLIP_MODEL
    top_k: int = 5
    batch_size: int = 32
    prompt: str = DEFAULT_PROMPT
    device: str = "cpu"
    dtype: str = "float32"
    allow_download: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.top_k <= len(VOCABULARY):
            raise ValueError(f"top_k must be between 1 and {len(VOCABULARY)}, got {self.top_k}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        try:
            self.prompt.format(name="x", sight="x", phrase="x")
        except (KeyError, IndexError) as err:
            raise ValueError(f"prompt may only use {{name}}, {{sight}} and {{phrase}}: {self.prompt!r}") from err


@dataclass
class _Loaded:
    model: Any
    processor: Any
    device: Any
    dtype: Any
    sigmoid: bool
    text_embeds: Any = field(default=None)   # (T, D), unit norm, computed once


class ClipCaptioner(Captioner):
    """Zero-shot tagging of each shot's keyframes against the sound vocabulary."""

    NAME = "clip"
    Options = ClipOptions

    def __init__(self, options: ClipOptions | None = None) -> None:
        super().__init__(options)
        # Fail before any video is decoded when the weights are missing.
        self.model_dir = resolve_model_dir(self.options.model, what="CLIP model", example=DEFAULT_CLIP_MODEL,
                                           allow_download=self.options.allow_download)
        self.device, self.dtype = resolve_placement(self.options.device, self.options.dtype)
        self._loaded: _Loaded | None = None

    def caption(self, analysis: VideoAnalysis) -> tuple[ShotCaption, ...]:
        keyframes = {k.shot_index: k for k in analysis.keyframes if k.images}
        pictured = [s.index for s in analysis.shots if s.index in keyframes]
        rows = dict(zip(pictured, self.score_shots([keyframes[i].images for i in pictured]))) if pictured else {}
        out = []
        for shot in analysis.shots:
            if shot.index in rows:
                out.append(self._caption_from_scores(shot.index, rows[shot.index]))
            else:
                log.warning("Shot %d has no keyframes; using the motion caption.", shot.index)
                out.append(describe_shot(analysis, shot, None))
        return tuple(out)

    def score_shots(self, shots_images: list[tuple]) -> np.ndarray:
        """Scores (S, T) of every vocabulary tag for each shot's keyframes, in vocabulary order."""
        import torch

        counts = [len(images) for images in shots_images]
        if not counts or min(counts) == 0:
            raise ValueError(f"every shot needs at least one keyframe to score, got counts {counts}")
        loaded = self._load()
        flat = [np.asarray(img) for images in shots_images for img in images]
        with torch.inference_mode():
            image_embeds = self._embed_images(loaded, flat)                     # (N, D)
            shot_embeds = torch.stack([chunk.mean(0) for chunk in image_embeds.split(counts)])  # (S, D)
            shot_embeds = torch.nn.functional.normalize(shot_embeds, dim=-1)
            logits = self._logits(loaded, shot_embeds)                          # (S, T)
            probs = torch.sigmoid(logits) if loaded.sigmoid else logits.softmax(dim=-1)
        return probs.float().cpu().numpy()

    def _caption_from_scores(self, shot_index: int, row: np.ndarray) -> ShotCaption:
        top = np.argsort(-row, kind="stable")[:self.options.top_k]
        tags = tuple(VOCABULARY[i].name for i in top)
        # Name only the tags that stand out: those within a third of the best score.
        named = [i for i in top[:CAPTION_TAGS] if row[i] >= row[top[0]] / 3]
        text = compose_caption([VOCABULARY[i].phrase for i in named])
        return ShotCaption(shot_index, text, tags, tuple(round(float(row[i]), 4) for i in top), self.NAME)

    def _load(self) -> _Loaded:
        if self._loaded is None:
            self._loaded = load_or_explain(_load_model, self.model_dir, self.device, self.dtype, what="CLIP model")
            self._loaded.text_embeds = self._embed_prompts(self._loaded)
        return self._loaded

    def _embed_prompts(self, loaded: _Loaded) -> "torch.Tensor":
        import torch

        prompts = [self.options.prompt.format(name=t.name, sight=t.sight, phrase=t.phrase) for t in VOCABULARY]
        padding = ({"padding": "max_length", "max_length": _SIGLIP_TEXT_LENGTH} if loaded.sigmoid
                   else {"padding": True})
        tokens = loaded.processor(text=prompts, return_tensors="pt", truncation=True, **padding)
        tokens = {k: v.to(loaded.device) for k, v in tokens.items()}
        with torch.inference_mode():
            embeds = _pooled(loaded.model.get_text_features(**tokens))          # (T, D)
        return torch.nn.functional.normalize(embeds.float(), dim=-1)

    def _embed_images(self, loaded: _Loaded, images: list[np.ndarray]) -> "torch.Tensor":
        import torch

        chunks = []
        for start in range(0, len(images), self.options.batch_size):
            batch = loaded.processor(images=images[start:start + self.options.batch_size], return_tensors="pt")
            # pixel_values (B, 3, H, W), plus patch masks and shapes for processors that emit them
            inputs = {k: v.to(loaded.device, loaded.dtype) if v.is_floating_point() else v.to(loaded.device)
                      for k, v in batch.items()}
            chunks.append(_pooled(loaded.model.get_image_features(**inputs)).float())
        return torch.nn.functional.normalize(torch.cat(chunks), dim=-1)        # (N, D)

    @staticmethod
    def _logits(loaded: _Loaded, shot_embeds: "torch.Tensor") -> "torch.Tensor":
        logits = shot_embeds @ loaded.text_embeds.T * loaded.model.logit_scale.float().exp()
        bias = getattr(loaded.model, "logit_bias", None)
        return logits + bias.float() if bias is not None else logits


def compose_caption(phrases: list[str]) -> str:
    """Caption text from the best tags' phrases, most likely first."""
    if not phrases:
        return "A cartoon scene."
    return f"A cartoon scene with {join_phrases(phrases)}."


def _pooled(output: Any) -> "torch.Tensor":
    # transformers 5 returns a ModelOutput whose pooler_output is the projected embedding;
    # older releases returned the tensor itself.
    return output.pooler_output if hasattr(output, "pooler_output") else output


def _load_model(model_dir: Path, device: "torch.device", dtype: "torch.dtype") -> _Loaded:
    from transformers import AutoModel, AutoProcessor

    log.info("Loading the CLIP captioner from %s on %s.", model_dir, device)
    processor = AutoProcessor.from_pretrained(model_dir, local_files_only=True)
    model = AutoModel.from_pretrained(model_dir, local_files_only=True, dtype=dtype).to(device).eval()
    if not (hasattr(model, "get_image_features") and hasattr(model, "get_text_features")):
        raise ModelUnavailable(
            f"{model_dir} holds a {type(model).__name__}, not a CLIP or SigLIP image-text model; "
            "point the clip captioner at a CLIP or SigLIP model.")
    return _Loaded(model, processor, device, dtype, sigmoid=getattr(model, "logit_bias", None) is not None)
