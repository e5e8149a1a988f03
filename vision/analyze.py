"""`analyze(path)`: one decode pass gives shots, keyframes and motion events; then captions.

    from vision import analyze
    analysis = analyze("cartoon.mp4", captioner="motion")
    analysis.shots, analysis.events, analysis.captions

Steps: 1. probe the file (fails early on a bad input); 2. resolve the captioner (fails early on
a missing model); 3. decode every frame once, feeding the cut and transition detector, the
keyframe sampler and the motion tracker; 4. turn the per-frame curves into events; 5. caption
the shots. Memory stays flat in the video's length: pictures are held only in short rings, and
per frame only a few numbers are kept.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from vision.errors import VideoUnreadable
from vision.events import MotionOptions
from vision.frames import ANALYSIS_WIDTH, KEYFRAME_SHORT_SIDE, KeyframeSampler, decode, keyframe_image
from vision.motion import MotionTracker
from vision.probe import probe
from vision.shots import CutDetector, CutOptions, shots_from_cuts
from vision.types import ANALYSIS_VERSION, MediaInfo, VideoAnalysis

log = logging.getLogger(__name__)

ProgressFn = Callable[[str, int, int], None]
DEFAULT_MIN_SHOT_FRAMES = 8
KEYFRAME_CANDIDATES_PER_S = 6  # pictures per second offered to the keyframe sampler at most


@dataclass(frozen=True)
class AnalysisOptions:
    """Finer settings of the analysis pass (the common ones are `analyze` arguments)."""

    cuts: CutOptions = field(default_factory=CutOptions)
    motion: MotionOptions = field(default_factory=MotionOptions)
    analysis_width: int = ANALYSIS_WIDTH  # px, width of the picture cuts and motion are read from
    keyframe_short_side: int = KEYFRAME_SHORT_SIDE  # px
    progress_every: int = 24  # frames between progress calls


def analyze(path: str | os.PathLike, *, captioner: str | None = "motion",
            min_shot_frames: int = DEFAULT_MIN_SHOT_FRAMES, keyframes_per_shot: int = 3,
            progress: ProgressFn | None = None, captioner_options: dict[str, Any] | None = None,
            options: AnalysisOptions = AnalysisOptions(), media: MediaInfo | None = None) -> VideoAnalysis:
    """Analyse a video: shots, visual events, motion curve, keyframes and captions.

    Args:
        path: the video file.
        captioner: a name from `vision.captioners` ("auto", "motion", "clip", "vlm"), or None
            for no captions (the fastest analysis).
        min_shot_frames: no shot shorter than this many frames (except the last).
        keyframes_per_shot: pictures kept per shot for the captioner (0 keeps none).
        progress: called as progress(stage, done, total), stage "decode" (frames) then "caption".
        captioner_options: fields of the captioner's options dataclass.
        options: finer settings; `min_shot_frames` overrides `options.cuts.min_shot_frames`.
        media: the file's MediaInfo when the caller probed it already (a file is probed once per job).

    Returns:
        VideoAnalysis with `keyframes` filled (in memory only; not part of its JSON).

    Raises:
        VideoError subclasses: the file is missing, not a video, or cannot be decoded.
        ValueError: an unknown captioner or option.
    """
    # 1. Check inputs and the file, before any decoding.
    if keyframes_per_shot < 0:
        raise ValueError(f"keyframes_per_shot must be >= 0, got {keyframes_per_shot}")
    cut_options = dataclasses.replace(options.cuts, min_shot_frames=min_shot_frames)
    media = media if media is not None else probe(path)
    # 2. Resolve the captioner, and keep keyframes no bigger than it reads them.
    tagger = _captioner(captioner, captioner_options)
    if tagger is not None and tagger.KEYFRAME_SHORT_SIDE is not None:
        options = dataclasses.replace(options, keyframe_short_side=min(options.keyframe_short_side,
                                                                        tagger.KEYFRAME_SHORT_SIDE))
    report = progress or (lambda stage, done, total: None)
    # 3. + 4. One decode pass, then events from the curves.
    analysis = _analyse_pass(media, cut_options, keyframes_per_shot, report, options)
    settings = {**analysis.settings, **(tagger.settings() if tagger is not None else {"captioner": None})}
    analysis = dataclasses.replace(analysis, settings=settings)
    if tagger is None:
        return analysis
    # 5. Caption every shot.
    report("caption", 0, len(analysis.shots))
    captions = tagger.caption(analysis)
    report("caption", len(analysis.shots), len(analysis.shots))
    return dataclasses.replace(analysis, captions=tuple(captions))


def _captioner(name: str | None, captioner_options: dict[str, Any] | None):
    if name is None:
        return None
    from vision.captioners import get_captioner  # imported late: captioners are optional plug-ins

    return get_captioner(name, **(captioner_options or {}))


def _analyse_pass(media: MediaInfo, cut_options: CutOptions, keyframes_per_shot: int,
                  report: ProgressFn, options: AnalysisOptions) -> VideoAnalysis:
    detector = CutDetector(media.fps, cut_options)
    sampler = KeyframeSampler(keyframes_per_shot,
                              lambda f: keyframe_image(f, options.keyframe_short_side, media.rotation),
                              first_stride=max(1, round(media.fps / KEYFRAME_CANDIDATES_PER_S)))
    tracker = MotionTracker(options.motion, rate=float(media.fps))
    total, count = media.frame_count, 0
    colour = cut_options.detector != "structure"  # only PySceneDetect's detectors read colour
    for decoded in decode(media.path, options.analysis_width, colour=colour):
        # A frame that repeats the one before (pulldown, animation on twos) is no candidate cut.
        repeat = tracker.push(decoded.grey)
        for cut in detector.push(decoded.index, decoded.grey, repeat=repeat, bgr=decoded.small_bgr):
            sampler.close_shot(cut)
        sampler.offer(decoded.index, decoded.frame)
        count = decoded.index + 1
        if count % options.progress_every == 0:
            report("decode", count, max(total, count))
    for cut in detector.finish():
        sampler.close_shot(cut)
    report("decode", count, count)
    media = _settle_frame_count(media, count)
    shots = shots_from_cuts(detector.cuts, count)
    keyframes = sampler.finish(count)
    assert len(keyframes) == len(shots), f"{len(keyframes)=} != {len(shots)=}"
    motion = tracker.finish(shots, options.motion)
    settings = {"analysis_version": ANALYSIS_VERSION, "cut_detector": cut_options.detector,
                "cut_threshold": cut_options.threshold,
                "min_shot_frames": cut_options.min_shot_frames, "keyframes_per_shot": keyframes_per_shot,
                "analysis_width": options.analysis_width, "motion_scale": round(motion.scale, 6)}
    return VideoAnalysis(media=media, shots=shots, events=motion.events, motion=motion.curve, captions=(),
                         settings=settings, keyframes=keyframes, transitions=detector.transitions)


def _settle_frame_count(media: MediaInfo, decoded: int) -> MediaInfo:
    """The decoder has the last word on how many frames there are."""
    if decoded == 0:
        raise VideoUnreadable(f"{media.path} has no decodable frames; the file is damaged, so re-export it.")
    if decoded == media.frame_count:
        return media
    log.warning("%s: %d frames decoded, the container lists %d; using the decoded count",
                media.path, decoded, media.frame_count)
    pts, fps = media.frame_pts, media.fps
    if pts is not None and decoded < len(pts):
        # VFR: the last decoded frame ends where the next listed one starts, and the average
        # rate is re-derived so that frame_time(frame_count) is that end, after every frame.
        fps = Fraction(decoded) / (Fraction(pts[decoded]) * media.time_base)
        pts = pts[:decoded]
    elif pts is not None:
        pts = None   # more frames than timestamps: frame times fall back to the average rate
    return dataclasses.replace(media, frame_count=decoded, frame_pts=pts, fps=fps, duration_s=float(decoded / fps))
