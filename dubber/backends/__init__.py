"""Render backends by name: the registry, and how `auto` picks one.

    get_backend("score", BackendOptions())       -> a DubBackend ready to render
    available_backends()                         -> ("audiostory", "score")
    choose_auto(model=None)                      -> ("score", "score backend: no CUDA GPU ...")
    resolve_backend(DubOptions())                -> the same for a run's options, and errors for what was asked
    weights_availability(model=None)             -> Availability(available, reason, message, fix, location)

Backend modules are imported when asked for, so `import dubber.backends` stays light and the
AudioStory backend (torch) is never imported on the score engine's path.
"""
from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import BackendUnavailable

if TYPE_CHECKING:
    from ..options import DubOptions
    from .base import DubBackend

log = logging.getLogger(__name__)

# name -> (module, class), or a class registered at run time. Order is the order `dub --help` lists them.
_REGISTRY: dict[str, "tuple[str, str] | type[DubBackend]"] = {
    "audiostory": ("dubber.backends.audiostory", "AudioStoryBackend"),
    "score": ("dubber.backends.score", "ScoreBackend"),
}
_BUILT_IN = tuple(_REGISTRY)   # names register_backend may not take or remove
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
    if name == "auto" or name in _BUILT_IN:
        raise ValueError(f"{name!r} is a built-in backend name; choose another")
    _REGISTRY[name] = backend_class


def unregister_backend(name: str) -> None:
    """Remove a backend added with `register_backend` (built-ins stay)."""
    if name not in _BUILT_IN:
        _REGISTRY.pop(name, None)


# Why a backend can or cannot run here, as codes a caller branches on (Availability.reason);
# weight codes come from audiostory_core.errors (weights_not_cached, weights_incomplete, ...).
READY = "ready"
CPU_REQUESTED = "cpu_requested"
NO_TORCH = "no_torch"
NO_CUDA = "no_cuda"
DAMAGED = "weights_damaged"   # a weights file of the checkpoint is cut short or corrupt
_DOWNLOAD_FIX = "run `dub models download`"


@dataclass(frozen=True)
class Availability:
    """Whether a backend (or its weights) can run here.

    `reason` is a code to branch on (READY, NO_TORCH, NO_CUDA, CPU_REQUESTED or a weights code),
    `message` a phrase for a person (no fix in it), `fix` what to run to change it ("" if
    nothing helps), `location` the weights' folder when they were found.
    """

    available: bool
    reason: str
    message: str
    fix: str = ""
    location: str | None = None


def weights_availability(model: str | None = None) -> Availability:
    """Whether the AudioStory checkpoint (`model`, or the official one) is on this machine.

    Looks only at local files and the local Hub cache: nothing is downloaded, and the process
    environment is not touched (jobs of one watch folder or batch share it).
    """
    from audiostory_core import hub
    from audiostory_core.errors import NOT_CACHED, CheckpointDamaged, WeightsNotFound

    try:
        files = hub.locate(model, local_only=True)
    except CheckpointDamaged as err:   # there, but it would not load: said, and the score engine plays
        return Availability(False, DAMAGED, f"the file {err.path} {err.problem}", err.fix)
    except WeightsNotFound as err:
        if err.reason == NOT_CACHED:
            # `dub models download` fetches the official weights; another Hub id is the user's own.
            fix = _DOWNLOAD_FIX if model in (None, hub.REPO_ID) else f"run `hf download {model}`"
            return Availability(False, NOT_CACHED, "AudioStory weights are not in the Hugging Face cache", fix)
        detail = err.detail.rstrip(". ")
        # The fix the loader names (make a folder readable, fill or remove a part) where it has one.
        return Availability(False, err.reason, f"{detail[:1].lower()}{detail[1:]}", err.fix or _DOWNLOAD_FIX)
    return Availability(True, READY, f"weights in {files.model_dir}", location=str(files.model_dir))


def audiostory_availability(model: str | None = None, device: str | None = None) -> Availability:
    """Whether AudioStory is the practical choice here: torch, its weights and a CUDA GPU (CPU
    inference of a 3B model is too slow to be a default). Never touches the network."""
    if device is not None and str(device).lower() == "cpu":
        return Availability(False, CPU_REQUESTED,
                            "--device cpu was given and AudioStory needs a CUDA GPU to be practical")
    if importlib.util.find_spec("torch") is None:
        return Availability(False, NO_TORCH, "torch is not installed", "pip install 'dubber[ml]'")
    weights = weights_availability(model)
    # No GPU is the first reason: downloading the weights would not change the choice here.
    if not cuda_available():
        if weights.available:
            return Availability(False, NO_CUDA, "AudioStory weights found but no CUDA GPU is available",
                                location=weights.location)
        if model is not None:   # the user named weights: say what is wrong with them too
            return Availability(False, NO_CUDA, f"no CUDA GPU is available, and {weights.message} (--model)")
        return Availability(False, NO_CUDA, "no CUDA GPU is available, and AudioStory needs one as well as its weights")
    if not weights.available:
        return weights
    return Availability(True, READY, f"weights in {weights.location} and a CUDA GPU are available",
                        location=weights.location)


def choose_auto(model: str | None = None, device: str | None = None) -> tuple[str, str]:
    """The backend `auto` picks, and why, in one line: AudioStory when `audiostory_availability`
    says so, the score engine otherwise. Never touches the network."""
    status = audiostory_availability(model, device)
    if status.available:
        return "audiostory", f"audiostory backend: {status.message}"
    fix = f" ({status.fix})" if status.fix else ""
    return "score", f"score backend: {status.message}{fix}"


def resolve_backend(options: "DubOptions") -> tuple[str, str]:
    """(backend name, one-line reason) for these options; `auto` decides here.

    Raises:
        BackendUnavailable: audiostory was asked for but its weights or torch are missing.
    """
    if options.backend == "auto":
        if options.timing == "free":
            status = audiostory_availability(options.model, options.device)
            if not status.available:
                fix, why = (f" or {status.fix}" if status.fix else ""), "cannot run here"
                if status.reason in (NO_CUDA, CPU_REQUESTED) and weights_availability(options.model).available:
                    # the weights are here: only `auto` declines the CPU, a user may still choose it
                    fix, why = " or pass --backend audiostory to run it on the CPU (slowly)", "auto does not choose here"
                raise BackendUnavailable(f"Free timing needs the audiostory backend, which {why}: "
                                         f"{status.message}; drop --timing free{fix}.")
            return "audiostory", f"audiostory backend: {status.message}"
        return choose_auto(options.model, options.device)
    if options.backend == "audiostory":
        if importlib.util.find_spec("torch") is None:
            raise BackendUnavailable("The audiostory backend needs torch; install it with pip install 'dubber[ml]'.")
        weights = weights_availability(options.model)
        if not weights.available:
            raise BackendUnavailable(_missing_weights_message(options.model, weights))
        return "audiostory", f"audiostory backend: chosen with --backend ({weights.message})"
    return options.backend, f"{options.backend} backend: chosen with --backend"


def _missing_weights_message(model: str | None, weights: Availability) -> str:
    """The error sentence for `--backend audiostory` without usable weights. A folder given with
    --model is described, not called "not on this machine"."""
    from audiostory_core.errors import NOT_CACHED

    if weights.reason != NOT_CACHED:
        return f"{weights.message[:1].upper()}{weights.message[1:]}; {weights.fix}."
    from audiostory_core.hub import REPO_ID

    if model is None or model == REPO_ID:
        return (f"The AudioStory weights ({REPO_ID}) are not on this machine; "
                "run `dub models download` or pass --model with a checkpoint folder.")
    # Another Hub id (or a folder path mistyped into one): `dub models download` fetches the
    # official weights, not these.
    return (f"The AudioStory weights ({model}) are not on this machine; run `hf download {model}`, or pass "
            f"--model with a checkpoint folder (there is no folder {model} here).")


def build_backend(name: str, options: "DubOptions") -> "DubBackend":
    """The backend `name`, set up with a run's model, device, timing and SoundFont."""
    return get_backend(name, BackendOptions(model=options.model, device=options.device, dtype=options.precision,
                                            timing=options.timing,
                                            soundfont=options.soundfont))


# What a Linux machine shows when it has a GPU driver torch could use: NVIDIA's, AMD's (ROCm
# builds of torch answer as CUDA), or WSL's GPU bridge.
_GPU_DRIVER_PATHS = ("/proc/driver/nvidia/version", "/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/dxg")


def cuda_available() -> bool:
    """Whether torch sees a CUDA device (False when torch is absent).

    Where no GPU driver can be (macOS; Linux with none of its device files) the answer comes
    without importing torch: choosing the score engine on a laptop that holds the weights must
    not cost torch's second of import."""
    if importlib.util.find_spec("torch") is None or sys.platform == "darwin":
        return False
    if sys.platform.startswith("linux") and not any(os.path.exists(p) for p in _GPU_DRIVER_PATHS):
        return False
    import torch

    return bool(torch.cuda.is_available())
