"""Video analysis: read a video once and learn its shots, visual events, motion and captions.

    import vision
    media = vision.probe("cartoon.mp4")       # MediaInfo: exact fps, frame count, size, audio
    analysis = vision.analyze("cartoon.mp4")  # VideoAnalysis: shots, events, motion, captions

Captioners live in `vision.captioners` and load their models only when used; importing
`vision` never imports torch.
"""
from __future__ import annotations

# The functions are bound after their modules load, so `vision.probe` and `vision.analyze` name
# the functions (not the submodules of the same name) whatever is imported later.
from vision.analyze import AnalysisOptions, analyze
from vision.errors import ModelUnavailable, NotAVideo, VideoError, VideoNotFound, VideoUnreadable
from vision.probe import probe
from vision.types import (
    ANALYSIS_SCHEMA, MediaInfo, Shot, ShotCaption, ShotKeyframes, VideoAnalysis, VisualEvent,
)

__all__ = [
    "ANALYSIS_SCHEMA", "AnalysisOptions", "MediaInfo", "ModelUnavailable", "NotAVideo", "Shot", "ShotCaption",
    "ShotKeyframes", "VideoAnalysis", "VideoError", "VideoNotFound", "VideoUnreadable", "VisualEvent",
    "analyze", "probe",
]
