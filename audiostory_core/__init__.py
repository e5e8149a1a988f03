"""AudioStory (arXiv 2508.20088) re-implemented: text → long audio, and shot-locked cue rendering.

    import audiostory_core as asc
    pipe = asc.load()                                   # TencentARC/AudioStory-3B, local or Hub
    story = pipe.generate("a storm passes over a harbour", 40.0)
    cues = pipe.generate_cues([asc.ClipCue("a door slams", 48_000)], lead=asc.DUBBING_LEAD)

Public names are re-exported lazily: `import audiostory_core` imports neither torch nor
transformers; the first use of a name loads the module that defines it.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    # pipeline
    "AudioStoryPipeline": "pipeline", "ClipCue": "pipeline", "ClipConditions": "pipeline",
    "CueRender": "pipeline", "StoryResult": "pipeline", "CUE_SAMPLE_RATE": "pipeline",
    # model and configuration
    "AudioStory": "model", "build_audiostory": "model", "AudioStoryConfig": "config",
    "SamplingConfig": "config",
    # device, weights, tokenizer
    "Placement": "device", "resolve_device": "device",
    "REPO_ID": "hub", "CheckpointFiles": "hub", "locate": "hub", "download": "hub",
    "expected_shapes": "checkpoint", "load_model": "checkpoint", "load_vae": "checkpoint",
    "load_tokenizer": "checkpoint",
    "extend_tokenizer": "tokenizer", "check_full_size_ids": "tokenizer",
    # the text the language model reads (no torch)
    "ClipText": "prompts", "StoryText": "prompts", "compose_story": "prompts", "DUBBING_LEAD": "prompts",
    # errors
    "AudioStoryError": "errors", "WeightsNotFound": "errors", "DeviceUnavailable": "errors",
    "CheckpointMismatch": "errors", "CheckpointDamaged": "errors", "InvalidRequest": "errors",
    "GenerationFailed": "errors",
}

__all__ = sorted([*_EXPORTS, "load"])

if TYPE_CHECKING:
    from .checkpoint import expected_shapes, load_model, load_tokenizer, load_vae
    from .config import AudioStoryConfig, SamplingConfig
    from .device import Placement, resolve_device
    from .errors import (AudioStoryError, CheckpointDamaged, CheckpointMismatch, DeviceUnavailable,
                         GenerationFailed, InvalidRequest, WeightsNotFound)
    from .hub import REPO_ID, CheckpointFiles, download, locate
    from .model import AudioStory, build_audiostory
    from .pipeline import CUE_SAMPLE_RATE, AudioStoryPipeline, ClipConditions, ClipCue, CueRender, StoryResult
    from .prompts import DUBBING_LEAD, ClipText, StoryText, compose_story
    from .tokenizer import check_full_size_ids, extend_tokenizer


def load(path_or_repo: str | None = None, device: str | None = None,
         dtype: str | None = None) -> "AudioStoryPipeline":
    """Load AudioStory-3B from a folder or the Hub (default TencentARC/AudioStory-3B).

    Args:
        path_or_repo: checkpoint folder or Hub repo id.
        device: "cpu", "cuda" or "cuda:N"; None picks CUDA when present.
        dtype: "float32", "float16" or "bfloat16"; None picks float32 on CPU, float16 on CUDA.

    Raises:
        DeviceUnavailable, WeightsNotFound, CheckpointMismatch, CheckpointDamaged: each with a
            one-sentence fix.
    """
    from .pipeline import AudioStoryPipeline

    return AudioStoryPipeline.from_pretrained(path_or_repo, device=device, dtype=dtype)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'audiostory_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
