"""Frame-exact hard cuts from PySceneDetect detectors fed with our own decoded frames.

PySceneDetect scores each frame against the previous one; every frame over the threshold is a
candidate cut. A candidate only becomes a cut when the picture does not come back within a few
frames: a flash, a glitch or a one-frame insert changes the picture and then returns to it,
while a cut does not. Candidates closer than `min_shot_frames` to the previous cut are dropped.

Repeated frames (24p shown at 30 or 60 fps by repeating pictures, animation on twos) are passed
over: the detector sees each distinct picture once, so "the frame before" is the last different
picture and the transient check counts pictures, not repeats. A flash two pictures long lasts
five frames at 60 fps yet is still two pictures.
"""
from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from fractions import Fraction

import cv2
import numpy as np
from scenedetect import FrameTimecode
from scenedetect.detectors import AdaptiveDetector, ContentDetector

from vision.types import Shot

log = logging.getLogger(__name__)

DETECTORS = ("content", "adaptive")
_THUMB_SIZE = (64, 36)  # px; enough to tell "same picture" from "different picture"


@dataclass(frozen=True)
class CutOptions:
    """How cuts are found.

    detector: "content" (PySceneDetect ContentDetector) or "adaptive" (AdaptiveDetector).
    threshold: the detector's score threshold; None keeps PySceneDetect's default.
    min_shot_frames: no cut closer than this to the previous one (frames).
    transient_frames: a change that returns within this many distinct pictures is not a cut.
    return_ratio: "returns" means the distance to the picture before the change falls below
        this fraction of the change itself.
    """

    detector: str = "content"
    threshold: float | None = None
    min_shot_frames: int = 8
    transient_frames: int = 4
    return_ratio: float = 0.4

    def __post_init__(self) -> None:
        if self.detector not in DETECTORS:
            raise ValueError(f"unknown cut detector {self.detector!r}; choose one of {DETECTORS}")
        if self.min_shot_frames < 1 or self.transient_frames < 1:
            raise ValueError("min_shot_frames and transient_frames must be at least 1")


def _make_detector(options: CutOptions):
    # min_scene_len=0 turns PySceneDetect's own length filter off: we apply ours after the
    # transient check, which needs every raw candidate.
    if options.detector == "adaptive":
        kwargs = {} if options.threshold is None else {"adaptive_threshold": options.threshold}
        return AdaptiveDetector(min_scene_len=0, **kwargs)
    kwargs = {} if options.threshold is None else {"threshold": options.threshold}
    return ContentDetector(min_scene_len=0, **kwargs)


def _thumb(bgr: np.ndarray) -> np.ndarray:
    small = cv2.resize(bgr, _THUMB_SIZE, interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_BGR2HSV).astype(np.int16)


def _distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean())


class CutDetector:
    """Online cut detection: `push` every frame in order, then `finish`.

    `push` returns cuts as they are confirmed (a few frames late, once the transient check can
    be made), so per-shot consumers can close a shot while the decode pass goes on.
    """

    def __init__(self, fps: Fraction, options: CutOptions = CutOptions()):
        self.options = options
        self._fps = fps
        self._detector = _make_detector(options)
        self._thumbs: deque[tuple[int, np.ndarray]] = deque(maxlen=options.transient_frames + 16)
        self._pending: list[int] = []
        self._cuts: list[int] = []
        self._transient_until = -1  # candidates up to this frame belong to a rejected transient

    @property
    def cuts(self) -> tuple[int, ...]:
        return tuple(self._cuts)

    def push(self, index: int, bgr: np.ndarray, repeat: bool = False) -> list[int]:
        """Feed frame `index`; `repeat` marks a frame that repeats the previous picture."""
        if repeat:  # nothing changed on screen: no candidate, and the transient clock stands still
            return []
        self._thumbs.append((index, _thumb(bgr)))
        found = self._detector.process_frame(FrameTimecode(index, self._fps), bgr)
        self._pending.extend(tc.frame_num for tc in found if tc.frame_num > 0)
        return self._resolve(final=False)

    def finish(self) -> list[int]:
        """Confirm what is still pending at the end of the video."""
        return self._resolve(final=True)

    def _pictures_after(self, candidate: int) -> list[tuple[int, np.ndarray]]:
        return [(index, thumb) for index, thumb in self._thumbs if index > candidate]

    def _resolve(self, final: bool) -> list[int]:
        confirmed: list[int] = []
        wait = self.options.transient_frames
        while self._pending and (final or len(self._pictures_after(self._pending[0])) >= wait):
            candidate = self._pending.pop(0)
            if candidate <= self._transient_until:
                continue
            back = self._returns_at(candidate)
            if back is not None:
                log.debug("change at frame %d returns at %d: not a cut", candidate, back)
                self._transient_until = back
                continue
            previous = self._cuts[-1] if self._cuts else 0
            if candidate - previous >= self.options.min_shot_frames:
                self._cuts.append(candidate)
                confirmed.append(candidate)
        return confirmed

    def _returns_at(self, candidate: int) -> int | None:
        """First picture after `candidate` that looks like the picture before it again, if any."""
        before = next((thumb for index, thumb in reversed(self._thumbs) if index < candidate), None)
        at = next((thumb for index, thumb in self._thumbs if index == candidate), None)
        if before is None or at is None:
            return None
        change = _distance(before, at)
        for index, thumb in self._pictures_after(candidate)[:self.options.transient_frames]:
            if _distance(before, thumb) < self.options.return_ratio * change:
                return index
        return None


def shots_from_cuts(cuts: tuple[int, ...] | list[int], frame_count: int) -> tuple[Shot, ...]:
    """Shots [start, end) between sorted cut frames; the first starts at 0, the last ends at frame_count."""
    bounds = [0, *[c for c in cuts if 0 < c < frame_count], frame_count]
    return tuple(Shot(i, a, b) for i, (a, b) in enumerate(zip(bounds, bounds[1:])))
