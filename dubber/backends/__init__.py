"""Render backends by name: the registry, and how `auto` picks one.

    get_backend("score", BackendOptions())       -> a DubBackend ready to render
    available_backends()                         -> ("audiostory", "score")
    choose_auto(model=None)                      -> ("score", "score backend: no CUDA GPU ...")

Backend modules are imported when asked for, so `import dubber.backends` stays light and the
AudioStory backend (torch) is never imported on the score engine's path.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

from ..errors import BackendUnavailable

if TYPE_CHECKING:
    from .base import DubBackend

log = logging.getLogger(__name__)

# name -> (module, class), or a class registered at run time. Order is the order `dub --help` lists them.
_REGISTRY: dict[str, "tuple[str, str] | type[DubBackend]"] = {
    "audiostory": ("dubber.backends.audiostory", "AudioStoryBackend"),
    "score": ("dubber.backends.score", "ScoreBackend"),
}
TIMINGS = ("shots", "free")


@dataclass(frozen=True)
class BackendOptions:
    """Per-run settings a backend may need.

    `model` is a local checkpoint folder or a Hub repo id (None: the official AudioStory-3B);
    `device` is "cpu", "cuda" or "cuda:N" (None: CUDA when present); `timing` is "shots" (one clip
    per plan cue, placed at the cue) or "free" (the model lays out its own clips); `soundfont` is
    the SF2 bank the score engine plays (None: its default bank).
    """

    model: str | None = None
    device: str | None = None
    timing: str = "shots"
    dtype: str | None = None
    soundfont: str | None = None

    def __post_init__(self) -> None:
        if self.timing not in TIMINGS:
            raise ValueError(f"unknown timing {self.timing!r}; choose one of {', '.join(TIMINGS)}")


def available_backends() -> tuple[str, ...]:
    """Names accepted by `get_backend` (plus "auto" on the command line)."""
    return tuple(_REGISTRY)


def get_backend(name: str, options: BackendOptions = BackendOptions()) -> "DubBackend":
    """Build the backend called `name`.

    Raises:
        BackendUnavailable: unknown name, or the backend cannot run here (its message says why).
    """
    if name not in _REGISTRY:
        raise BackendUnavailable(
            f"There is no render backend called {name!r}; choose one of: auto, {', '.join(_REGISTRY)}.")
    entry = _REGISTRY[name]
    if isinstance(entry, tuple):
        entry = getattr(importlib.import_module(entry[0]), entry[1])
    return entry(options)


def register_backend(name: str, backend_class: "type[DubBackend]") -> None:
    """Make a DubBackend subclass available under `name` (its constructor takes BackendOptions).

    Raises:
        ValueError: the name is taken by a built-in backend or is "auto".
    """
    if name == "auto" or name in ("audiostory", "score"):
        raise ValueError(f"{name!r} is a built-in backend name; choose another")
    _REGISTRY[name] = backend_class


def unregister_backend(name: str) -> None:
    """Remove a backend added with `register_backend` (built-ins stay)."""
    if name not in ("audiostory", "score"):
        _REGISTRY.pop(name, None)


def choose_auto(model: str | None = None, device: str | None = None) -> tuple[str, str]:
    """The backend `auto` picks, and why, in one line.

    AudioStory when torch is installed, its weights are on this machine and a CUDA GPU is present
    (CPU inference of a 3B model is too slow to be a default); the score engine otherwise.
    Never touches the network.
    """
    if device is not None and str(device).lower() == "cpu":
        return "score", "score backend: --device cpu was given and AudioStory needs a CUDA GPU to be practical"
    if importlib.util.find_spec("torch") is None:
        return "score", "score backend: torch is not installed (pip install 'dubber[ml]' for AudioStory)"
    found, why = weights_status(model)
    if not found:
        return "score", f"score backend: {why}"
    if not cuda_available():
        return "score", "score backend: AudioStory weights found but no CUDA GPU is available"
    return "audiostory", f"audiostory backend: weights in {why} and a CUDA GPU are available"


def cuda_available() -> bool:
    """Whether torch sees a CUDA device (False when torch is absent)."""
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def weights_status(model: str | None = None) -> tuple[bool, str]:
    """(found, where-or-why) for the AudioStory checkpoint, looking only at local files."""
    from audiostory_core import hub
    from audiostory_core.errors import AudioStoryError

    with _hub_offline():
        try:
            files = hub.locate(model)
        except AudioStoryError as err:
            return False, _short_reason(str(err))
    return True, str(files.model_dir)


def _short_reason(message: str) -> str:
    # The hub's sentence is written for a download attempt; here nothing is downloaded on purpose.
    if "not on this machine" in message or "offline" in message:
        return "AudioStory weights are not in the Hugging Face cache (run `dub models download`)"
    first = message.split(";")[0].rstrip(". ")
    return f"{first[0].lower()}{first[1:]} (run `dub models download`)" if first else "weights not found"


@contextlib.contextmanager
def _hub_offline() -> Iterator[None]:
    """Make Hub look-ups local-only for the duration (choosing a backend must never download)."""
    saved = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = saved
