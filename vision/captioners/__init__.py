"""Captioners: one sound-relevant caption, with vocabulary tags, per shot of an analysed video.

    from vision.captioners import get_captioner
    captions = get_captioner("clip", model="openai/clip-vit-base-patch32").caption(analysis)

Registered names: "motion" (words for the ear from motion and events; no weights), "clip"
(zero-shot tags from a CLIP/SigLIP model) and "vlm" (a sentence from a Qwen2.5-VL chat model).
"auto" picks "vlm" when its packages and weights are already on this machine, else "motion".
Importing this package never imports torch or transformers; the learned captioners import them
when their weights load.
"""
from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

from ..errors import ModelIncomplete, ModelUnavailable
from ._base import Captioner
from ._loading import DEFAULT_MODELS, DEFAULT_VLM_MODEL, DeviceUnavailable, fetch_model, resolve_model_dir
from .clip import ClipCaptioner, ClipOptions
from .motion import MotionCaptioner, MotionOptions
from .vlm import VlmCaptioner, VlmOptions
from .vocabulary import TAG_NAMES, VOCABULARY, SoundTag

CAPTIONERS: dict[str, type[Captioner]] = {c.NAME: c for c in (MotionCaptioner, ClipCaptioner, VlmCaptioner)}
# Python packages each captioner needs beyond the base install (checked without importing them).
REQUIREMENTS: dict[str, tuple[str, ...]] = {
    "motion": (),
    "clip": ("torch", "transformers"),
    "vlm": ("torch", "transformers"),
}
AUTO = "auto"
CAPTIONER_CHOICES: tuple[str, ...] = (AUTO, *CAPTIONERS)  # what a user may name


def resolve_captioner(name: str, model: str | None = None) -> str:
    """The captioner `name` stands for: "auto" is "vlm" when torch, transformers and the vlm
    weights (`model`, or the default) are already on this machine, else "motion". Nothing is
    downloaded and torch is not imported; other names stand for themselves."""
    if name != AUTO:
        return name
    if _missing_packages("vlm"):
        return "motion"
    try:
        resolve_model_dir(model or DEFAULT_VLM_MODEL, what="vision-language model", example=DEFAULT_VLM_MODEL)
    except ModelUnavailable:   # a download cut short included: present is not usable
        return "motion"
    return "vlm"


def auto_passed_over(name: str, model: str | None = None) -> str | None:
    """Why "auto" captions with motion although vlm weights are on this machine (they are
    incomplete: a download cut short), as a sentence for the user; None when that is not so."""
    if name != AUTO or _missing_packages("vlm"):
        return None
    try:
        resolve_model_dir(model or DEFAULT_VLM_MODEL, what="vision-language model", example=DEFAULT_VLM_MODEL)
    except ModelIncomplete as err:
        return f"motion captioner: {str(err)[:1].lower()}{str(err)[1:]}"
    except ModelUnavailable:
        pass
    return None


def available_captioners() -> tuple[str, ...]:
    """Names of the captioners whose Python dependencies are installed (weights not checked)."""
    return tuple(name for name in CAPTIONERS if not _missing_packages(name))


def get_captioner(name: str, **options) -> Captioner:
    """A ready captioner.

    Args:
        name: one of CAPTIONER_CHOICES ("auto", "motion", "clip", "vlm"); "auto" as in
            `resolve_captioner`, with the options of the captioner it picks (a `model` option
            names the vlm weights to look for; options the motion captioner lacks are dropped
            when it is picked).
        **options: fields of that captioner's options dataclass (MotionOptions, ClipOptions,
            VlmOptions), e.g. model="path/or/hub-id", device="cuda".

    Raises:
        ValueError: unknown name, unknown option or invalid option value.
        ModelUnavailable: the captioner's packages or weights are not on this machine.
        DeviceUnavailable: the requested device or precision is not available.
    """
    if name == AUTO:
        name = resolve_captioner(name, options.get("model"))
        if name == "motion":
            known = {f.name for f in dataclasses.fields(MotionOptions)}
            options = {k: v for k, v in options.items() if k in known}
    cls = CAPTIONERS.get(name)
    if cls is None:
        raise ValueError(f"Unknown captioner {name!r}; choose one of {', '.join(CAPTIONER_CHOICES)}.")
    missing = _missing_packages(name)
    if missing:
        raise ModelUnavailable(
            f"The {name} captioner needs {' and '.join(missing)}; install them with `pip install 'dubber[ml]'`.")
    valid = [f.name for f in dataclasses.fields(cls.Options)]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"Unknown option(s) {', '.join(unknown)} for the {name} captioner; "
                         f"valid options: {', '.join(valid)}.")
    return cls(cls.Options(**options))


def download(name: str, model: str | None = None) -> Path:
    """Fetch a learned captioner's weights into the Hugging Face cache (for `dub models download`).

    Args:
        name: "clip" or "vlm".
        model: a Hub id; None for the captioner's default model.

    Returns:
        The local folder holding the model.

    Raises:
        ValueError: `name` has no weights to fetch.
        ModelUnavailable: offline, no network, or no such repo.
    """
    if name not in DEFAULT_MODELS:
        raise ValueError(f"Only {' and '.join(DEFAULT_MODELS)} captioners have weights to fetch, not {name!r}.")
    return fetch_model(model or DEFAULT_MODELS[name])


def _missing_packages(name: str) -> tuple[str, ...]:
    return tuple(p for p in REQUIREMENTS[name] if importlib.util.find_spec(p) is None)


__all__ = [
    "AUTO", "CAPTIONERS", "CAPTIONER_CHOICES", "Captioner", "ClipCaptioner", "ClipOptions", "DEFAULT_MODELS",
    "DeviceUnavailable",
    "MotionCaptioner", "MotionOptions", "SoundTag", "TAG_NAMES", "VOCABULARY", "VlmCaptioner", "VlmOptions",
    "available_captioners", "download", "get_captioner", "resolve_captioner",
]
