"""The `vlm` captioner: one sentence of audible action per shot from a vision-language model.

Default model: Qwen2.5-VL-3B-Instruct through transformers. Each shot's keyframes go into one
chat turn, in order, with the shot's length and the visual events already measured, and the
model is asked for one sentence describing what we would hear (movement, impacts, effects; no
dialogue). Decoding is greedy and short; shots are batched with left padding. The reply is
cleaned (labels, quotes and control characters removed, first sentence kept); a reply with no
words falls back to the `motion` caption of the shot, marked as such.

The model inputs are assembled here from the tokenizer, the image processor and the chat
template rather than through `AutoProcessor`: transformers' Qwen2.5-VL processor insists on
a video processor, which needs torchvision, and torchvision cannot be installed beside the CPU
build of torch this project pins. The assembly is the documented one: each image placeholder
is repeated once per merged vision patch (grid t*h*w / merge_size**2) and marked in
`mm_token_type_ids` for the 3-D rotary positions.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ModelUnavailable
from ..types import Shot, ShotCaption, ShotKeyframes, VideoAnalysis
from ._base import Captioner
from ._loading import DEFAULT_VLM_MODEL, load_or_explain, resolve_model_dir, resolve_placement
from .motion import describe_shot, event_phrases
from .vocabulary import join_phrases, tags_in_text

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

SYSTEM_PROMPT = ("You help a sound designer score cartoons. You look at frames from one shot and say, "
                 "in plain words, what the audience would hear.")
USER_PROMPT = ("{frames} from one {duration_s:.1f}-second cartoon shot.{events} "
               "In one short sentence, describe the action we would hear: movements, impacts and sound "
               "effects. No dialogue, no speech, no on-screen text.")
_MODEL_CLASSES = {"qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration", "qwen2_vl": "Qwen2VLForConditionalGeneration"}
_TEMPLATE_FILES = ("chat_template.jinja", "chat_template.json")
_LABEL = re.compile(r"^(?:caption|sound|sounds|audio|answer|description|assistant)\s*:\s*", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")
_EDGE_CHARS = " \t\"'`*_-,;:\u201c\u201d\u2018\u2019"


@dataclass(frozen=True)
class VlmOptions:
    """Settings of the `vlm` captioner.

    Attributes:
        model: a local model folder or a Hugging Face Hub id (a Qwen2.5-VL or Qwen2-VL chat model).
        max_new_tokens: reply budget per shot, in tokens.
        batch_size: shots generated together.
        max_pixels: largest keyframe area fed to the vision tower (pixels; bounds tokens per image).
        max_chars: captions longer than this are cut at a word boundary.
        device: "cpu", "cuda" or "cuda:N".
        dtype: "float32", or "float16"/"bfloat16" on CUDA.
        allow_download: fetch the model from the Hub when it is not cached (off by default, and
            always off while HF_HUB_OFFLINE is set).
    """

    model: str = DEFAULT_VLM_MODEL
    max_new_tokens: int = 40
    batch_size: int = 4
    max_pixels: int = 256 * 28 * 28
    max_chars: int = 200
    device: str = "cpu"
    dtype: str = "float32"
    allow_download: bool = False

    def __post_init__(self) -> None:
        for name in ("max_new_tokens", "batch_size", "max_chars"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_pixels < 56 * 56:
            raise ValueError(f"max_pixels must be at least {56 * 56}, got {self.max_pixels}")


@dataclass(frozen=True)
class _Loaded:
    model: Any
    tokenizer: Any
    image_processor: Any
    chat_template: str
    image_token: str
    image_token_id: int
    device: Any
    dtype: Any


@dataclass(frozen=True)
class ShotRequest:
    """One shot to caption: its keyframes (RGB uint8, in order) and the user turn's text."""

    shot: Shot
    images: tuple
    text: str


class VlmCaptioner(Captioner):
    """Free-text captions of each shot from a vision-language chat model."""

    NAME = "vlm"
    Options = VlmOptions

    def __init__(self, options: VlmOptions | None = None) -> None:
        super().__init__(options)
        # Fail before any video is decoded when the weights are missing.
        self.model_dir = resolve_model_dir(self.options.model, what="vision-language model",
                                           example=DEFAULT_VLM_MODEL, allow_download=self.options.allow_download)
        model_class_name(self.model_dir)
        self.device, self.dtype = resolve_placement(self.options.device, self.options.dtype)
        self._loaded: _Loaded | None = None

    def caption(self, analysis: VideoAnalysis) -> tuple[ShotCaption, ...]:
        keyframes = {k.shot_index: k for k in analysis.keyframes if k.images}
        requests = [ShotRequest(s, keyframes[s.index].images, user_prompt(analysis, s, len(keyframes[s.index].images)))
                    for s in analysis.shots if s.index in keyframes]
        replies: dict[int, str] = {}
        for start in range(0, len(requests), self.options.batch_size):
            batch = requests[start:start + self.options.batch_size]
            replies.update(zip((r.shot.index for r in batch), self.generate(batch)))
        return tuple(self._shot_caption(analysis, shot, replies.get(shot.index), keyframes.get(shot.index))
                     for shot in analysis.shots)

    def generate(self, requests: list[ShotRequest]) -> list[str]:
        """The model's raw replies, one per request, decoded without special tokens."""
        import torch

        if not requests:
            return []
        loaded = self._load()
        inputs = _model_inputs(loaded, requests)
        with torch.inference_mode():
            out = loaded.model.generate(
                **inputs, max_new_tokens=self.options.max_new_tokens, do_sample=False,
                temperature=None, top_p=None, top_k=None,
                pad_token_id=_pad_id(loaded.tokenizer))                       # (B, L + new)
        new_tokens = out[:, inputs["input_ids"].shape[1]:]
        return loaded.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)

    def _shot_caption(self, analysis: VideoAnalysis, shot: Shot, reply: str | None,
                      keyframes: ShotKeyframes | None) -> ShotCaption:
        text = clean_caption(reply, self.options.max_chars) if reply is not None else None
        if text is None:
            why = "has no keyframes" if reply is None else f"got an empty reply ({reply!r})"
            log.warning("Shot %d %s; using the motion caption.", shot.index, why)
            return describe_shot(analysis, shot, keyframes)
        tags = tags_in_text(text)
        # A tag named in the model's own sentence; the score marks presence, not a probability.
        return ShotCaption(shot.index, text, tags, tuple(1.0 for _ in tags), self.NAME)

    def _load(self) -> _Loaded:
        if self._loaded is None:
            self._loaded = load_or_explain(_load_model, self.model_dir, self.options.max_pixels, self.device,
                                           self.dtype, what="vision-language model")
        return self._loaded


def user_prompt(analysis: VideoAnalysis, shot: Shot, count: int) -> str:
    """The user turn for one shot: frame count, length and the visual events already found."""
    media = analysis.media
    found = event_phrases(analysis.events_in(shot), shot, media)
    events = f" Visual analysis found {join_phrases(found)}." if found else ""
    duration_s = float(media.frame_time(shot.end_frame) - media.frame_time(shot.start_frame))
    frames = "This frame comes" if count == 1 else f"These {count} frames, in order, come"
    return USER_PROMPT.format(frames=frames, duration_s=duration_s, events=events)


def clean_caption(reply: str, max_chars: int = 200) -> str | None:
    """One tidy sentence from a model reply, or None when the reply holds no words.

    Turns control characters and undecodable bytes into spaces; drops a leading "Caption:"-style
    label and wrapping quotes or markdown; keeps the first sentence; capitalises it and ends it with a full stop.
    """
    text = "".join(ch if ch.isprintable() and ch != "\ufffd" else " " for ch in reply)
    text = _LABEL.sub("", " ".join(text.split()).strip(_EDGE_CHARS))
    end = _SENTENCE_END.search(text)
    text = (text[:end.start()] if end else text).strip(_EDGE_CHARS)
    if not re.search(r"[^\W\d_]{2,}", text):
        return None
    if len(text) > max_chars:
        text = text[:max_chars].rsplit(" ", 1)[0].rstrip(_EDGE_CHARS)
    return text[0].upper() + text[1:] + "."


def _model_inputs(loaded: _Loaded, requests: list[ShotRequest]) -> dict[str, "torch.Tensor"]:
    prompts = [_render_chat(loaded, len(r.images), r.text) for r in requests]
    flat = [np.asarray(img) for r in requests for img in r.images]
    vision = loaded.image_processor(images=flat, return_tensors="pt")
    grid = vision["image_grid_thw"]                                         # (N, 3): t, h, w patches
    merge = int(loaded.image_processor.merge_size)
    per_image = (grid.prod(dim=-1) // (merge * merge)).tolist()           # LLM tokens per image
    prompts = _expand_image_tokens(prompts, loaded.image_token, per_image)
    enc = loaded.tokenizer(prompts, padding=True, return_tensors="pt")    # left padded
    inputs = {
        "input_ids": enc["input_ids"],
        "attention_mask": enc["attention_mask"],
        "mm_token_type_ids": (enc["input_ids"] == loaded.image_token_id).int(),  # 1 = image token
        "pixel_values": vision["pixel_values"].to(loaded.dtype),          # (sum patches, C*T*P*P)
        "image_grid_thw": grid,
    }
    return {k: v.to(loaded.device) for k, v in inputs.items()}


def _pad_id(tokenizer: Any) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def _render_chat(loaded: _Loaded, image_count: int, text: str) -> str:
    content = [{"type": "image"} for _ in range(image_count)] + [{"type": "text", "text": text}]
    messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": content}]
    prompt = loaded.tokenizer.apply_chat_template(
        messages, chat_template=loaded.chat_template, tokenize=False, add_generation_prompt=True)
    if prompt.count(loaded.image_token) != image_count:
        raise ModelUnavailable(
            f"The chat template of the vision-language model places {prompt.count(loaded.image_token)} "
            f"image slots for {image_count} images; use a Qwen2.5-VL or Qwen2-VL chat model.")
    return prompt


def _expand_image_tokens(prompts: list[str], image_token: str, per_image: list[int]) -> list[str]:
    counts = iter(per_image)
    out = []
    for prompt in prompts:
        pieces = prompt.split(image_token)
        out.append(pieces[0] + "".join(image_token * next(counts) + piece for piece in pieces[1:]))
    leftover = sum(1 for _ in counts)
    assert leftover == 0, f"{leftover} images without a slot in the prompts"
    return out


def model_class_name(model_dir: Path) -> str:
    """The transformers class that runs the chat model in `model_dir` (read from its config.json).

    Raises:
        ModelUnavailable: the folder holds another kind of model.
    """
    model_type = json.loads((model_dir / "config.json").read_text(encoding="utf-8")).get("model_type")
    if model_type not in _MODEL_CLASSES:
        raise ModelUnavailable(
            f"{model_dir} holds a {model_type!r} model; the vlm captioner runs Qwen2.5-VL or "
            f"Qwen2-VL chat models such as {DEFAULT_VLM_MODEL}.")
    return _MODEL_CLASSES[model_type]


def _load_model(model_dir: Path, max_pixels: int, device: "torch.device", dtype: "torch.dtype") -> _Loaded:
    import transformers
    from transformers import AutoConfig, AutoImageProcessor, AutoTokenizer

    model_class = getattr(transformers, model_class_name(model_dir))
    log.info("Loading the vision-language captioner from %s on %s.", model_dir, device)
    config = AutoConfig.from_pretrained(model_dir, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True, padding_side="left")
    image_processor = AutoImageProcessor.from_pretrained(model_dir, local_files_only=True,
                                                         max_pixels=max_pixels)
    model = model_class.from_pretrained(model_dir, local_files_only=True, dtype=dtype).to(device).eval()
    image_token = tokenizer.convert_ids_to_tokens(config.image_token_id)
    return _Loaded(model, tokenizer, image_processor, _chat_template(tokenizer, model_dir), image_token,
                   int(config.image_token_id), device, dtype)


def _chat_template(tokenizer: Any, model_dir: Path) -> str:
    # Vision chat models often keep the template beside the processor, not in the tokenizer.
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.chat_template
    for name in _TEMPLATE_FILES:
        path = model_dir / name
        if path.is_file():
            raw = path.read_text(encoding="utf-8")
            return json.loads(raw)["chat_template"] if name.endswith(".json") else raw
    raise ModelUnavailable(
        f"The vision-language model in {model_dir} has no chat template; use an instruction-tuned "
        f"chat model such as {DEFAULT_VLM_MODEL}.")
