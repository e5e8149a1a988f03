"""Video analysis: read a video once and learn its shots, visual events, motion and captions.

    import vision
    media = vision.probe("cartoon.mp4")       # MediaInfo: exact fps, frame count, size, audio
    analysis = vision.analyze("cartoon.mp4")  # VideoAnalysis: shots, events, motion, captions

Captioners live in `vision.captioners` and load their models only when used; importing
`vision` never imports torch. The decoding stack (av, cv2, scenedetect) loads on first use of
`analyze` or `probe`, so `import vision.types` stays light for readers of analysis files.
"""
from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import Any

from vision.errors import ModelUnavailable, NotAVideo, VideoError, VideoNotFound, VideoUnreadable
from vision.types import (
    ANALYSIS_SCHEMA, ANALYSIS_VERSION, EVENT_KINDS, TRANSITION_KINDS, MediaInfo, Shot, ShotCaption, ShotKeyframes,
    Transition, VideoAnalysis, VisualEvent,
)

# Public names bound on first access, from the module that defines them. `vision.analyze` and
# `vision.probe` are the functions, not the submodules of the same name.
_LAZY = {"analyze": "vision.analyze", "AnalysisOptions": "vision.analyze", "probe": "vision.probe"}

__all__ = [
    "ANALYSIS_SCHEMA", "ANALYSIS_VERSION", "AnalysisOptions", "EVENT_KINDS", "MediaInfo", "ModelUnavailable",
    "NotAVideo", "Shot", "ShotCaption", "ShotKeyframes", "TRANSITION_KINDS", "Transition", "VideoAnalysis",
    "VideoError", "VideoNotFound", "VideoUnreadable", "VisualEvent", "analyze", "probe",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'vision' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(ModuleType):
    """Importing `vision.analyze` (the submodule) binds the function of that name on the package,
    where the import system would bind the submodule."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _LAZY and isinstance(value, ModuleType):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
