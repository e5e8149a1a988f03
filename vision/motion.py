"""Per-frame activity, measured in the decode pass; `vision.events` reads the visual events
from it.

A few numbers per picture come out of the decode pass: activity (mean absolute grey difference
to the picture before, beyond a small noise floor, 0..1, after taking out the change of overall
brightness so film flicker is no motion), brightness and contrast (mean and standard deviation
of grey), where the change is (its centre, as fractions of the picture) and how much of the
picture it covers, the change against the distinct pictures two to four back (does a
transient come back?), the change in each cell of an 8 x 8 grid (64 half-precision numbers,
128 bytes) and each cell's mean grey and its spread (128 bytes). Memory grows by those numbers
per frame only. Everything else is read from the curves, shot by shot, after the pass
(`vision.events`).

The curves are sampled per distinct picture, not per frame. A frame that repeats the previous
one (24p shown at 30 or 60 fps by repeating pictures, animation on twos or threes) adds no
sample: its motion is zero only because the picture has not changed yet, and counting it would
make steady motion flicker between zero and its real level. The video's picture cadence (how
long a picture typically stays on screen while things move: 1/24 s for 24p at any frame rate) is
read from the distinct pictures around each repeat (a film may mix drawing schedules); a picture
held longer than that is real stillness and adds a
still sample once per cadence, so a dead stop followed by a hold reads the same at 24 or 60 fps.
At the native rate every frame is a sample, as before. Events found on the samples land on the
first frame that shows their picture; the per-frame curve gives every frame the value of the
picture it shows.
"""
from __future__ import annotations

import functools
from array import array
from collections import deque

import cv2
import numpy as np

from vision.events import GRID, HIT_KINDS, RETURN_PICTURES, MotionOptions, MotionResult, analyse_motion
from vision.types import Shot, VisualEvent


NOISE_FLOOR_LEVELS = 6  # 8-bit grey levels of frame-to-frame change ignored as noise
# A frame repeats the previous one when at most REPEAT_SHARE of its pixels changed by more than
# REPEAT_LEVELS, the mean change is at most REPEAT_NOISE_LEVELS (a picture held on screen and
# encoded again comes back with a fraction of a level of noise on every pixel), and the mean
# level moved by at most REPEAT_SHIFT_LEVELS (noise averages out; a fade moves the whole
# picture a level or more a frame, so it never reads as a repeat).
REPEAT_LEVELS = 12
REPEAT_SHARE = 0.002
REPEAT_NOISE_LEVELS = 1.0
REPEAT_SHIFT_LEVELS = 0.25
# A repeat becomes a still sample once a cadence less this many frames has gone by since the last
# sample: at the native rate (cadence about 1) every repeat is sampled; 24p at 30 fps (cadence
# 1.25) skips its single repeats.
CADENCE_SLACK_FRAMES = 0.1
CADENCE_WINDOW = 24  # frames either side of a repeat over which the picture cadence is read


def is_repeat(grey: np.ndarray, previous: np.ndarray, levels: tuple[float, float] | None = None) -> bool:
    """True when `grey` shows the same picture as `previous` (same shape), up to encoding noise.
    `levels`: the two pictures' mean grey levels when already known."""
    diff = cv2.absdiff(grey, previous)
    changed = cv2.countNonZero(cv2.threshold(diff, REPEAT_LEVELS, 255, cv2.THRESH_BINARY)[1])
    if changed > REPEAT_SHARE * diff.size or cv2.mean(diff)[0] > REPEAT_NOISE_LEVELS:
        return False
    grey_level, previous_level = levels or (cv2.mean(grey)[0], cv2.mean(previous)[0])
    return abs(grey_level - previous_level) <= REPEAT_SHIFT_LEVELS


class MotionTracker:
    """Collects, frame by frame, activity (against the frame before and against the last distinct
    picture), brightness, and whether the frame repeats the one before."""

    def __init__(self, options: MotionOptions = MotionOptions(), rate: float = 24.0) -> None:
        self.options = options
        self._rate = float(rate)  # frames per second
        self._previous: np.ndarray | None = None  # the frame before, to spot repeats
        self._reference: np.ndarray | None = None  # the last distinct picture
        self._previous_level = self._reference_level = 0.0  # their mean grey levels
        # Per-frame numbers live in typed arrays (8 bytes a number, not a 32-byte Python float in
        # a list): a two-hour film has some 170,000 frames.
        self._repeats = array("b")
        self._activity = array("d")  # against the frame before
        self._activity_ref = array("d")  # against the last distinct picture
        self._brightness = array("d")
        self._where = array("d")  # centre of the change (x, y per frame), fractions of the picture
        self._coverage = array("d")  # share of the picture that changed
        self._contrast = array("d")  # standard deviation of the grey picture, 0..1
        # Per frame, the change to the frame before in each cell of a GRID x GRID grid (float16,
        # 0..1): where in the picture something moved, for stops of one part of the picture.
        self._cells = bytearray()
        # Per frame, the mean grey of each cell and its spread (uint8 each): how each part of the
        # picture looks, to tell a shape that stopped in a cell at the picture's edge from one
        # that left the picture.
        self._looks = bytearray()
        # the last distinct pictures, each with its mean grey level
        self._pictures: deque[tuple[np.ndarray, float]] = deque(maxlen=RETURN_PICTURES + 1)
        # Per frame, activity against the distinct pictures 2, 3 .. RETURN_PICTURES + 1 back: a
        # picture that comes back after a one- to three-picture transient shows as a low value.
        self._returns = array("d")  # RETURN_PICTURES numbers per frame

    def push(self, grey: np.ndarray) -> bool:
        """Feed the next frame; returns True when it repeats the frame before."""
        previous, reference = self._previous, self._reference
        # Each picture's mean grey level is read once: the flicker-blind measures below all
        # need it, and the older pictures' levels are kept beside them.
        level = cv2.mean(grey)[0]
        repeat = (previous is not None and previous.shape == grey.shape
                  and is_repeat(grey, previous, (level, self._previous_level)))
        activity, where, coverage, cells = _activity_and_centre(grey, previous, level - self._previous_level)
        self._cells += cells.astype(np.float16).tobytes()
        self._looks += _cell_looks(grey).tobytes()
        self._activity.append(activity)
        self._where.extend(where)
        self._coverage.append(coverage)
        self._activity_ref.append(_activity(grey, reference, level - self._reference_level)
                                  if reference is not previous else activity)
        mean, std = cv2.meanStdDev(grey)
        self._brightness.append(float(mean[0, 0]) / 255.0)
        self._contrast.append(float(std[0, 0]) / 255.0)
        self._repeats.append(repeat)
        self._previous, self._previous_level = grey, level
        if not repeat:
            self._reference, self._reference_level = grey, level
            older = list(self._pictures)[:-1][::-1]  # 2, 3, ... pictures back, with their levels
            self._returns.extend(_rough_activity(grey, older[k][0], level - older[k][1]) if k < len(older) else activity
                                 for k in range(RETURN_PICTURES))
            self._pictures.append((grey, level))
        else:
            # the same picture as before, so the same distances to the older ones
            self._returns.extend(self._returns[-RETURN_PICTURES:] if self._returns else [activity] * RETURN_PICTURES)
        return repeat

    def finish(self, shots: tuple[Shot, ...], options: MotionOptions | None = None) -> MotionResult:
        """Events and the per-frame curve; `shots` must start on frames that were not repeats."""
        repeats = np.frombuffer(self._repeats, np.int8).astype(bool)
        frames = sample_frames(repeats)
        # A sample's motion is measured from the sample before: the frame before when that was
        # sampled too, else the picture the skipped repeats showed.
        after_gap = np.diff(frames, prepend=-1) > 1
        activity = np.where(after_gap, np.frombuffer(self._activity_ref)[frames], np.frombuffer(self._activity)[frames])
        options = options or self.options
        cadence = picture_cadence(repeats)
        result = analyse_motion(activity, np.frombuffer(self._brightness)[frames], _shots_on_samples(shots, frames),
                                options, rate=self._rate / cadence if self._rate else 24.0,
                                coverage=np.stack([np.frombuffer(self._coverage),
                                                   np.frombuffer(self._contrast)], axis=1)[frames],
                                returns=np.frombuffer(self._returns).reshape(-1, RETURN_PICTURES)[frames],
                                cells=np.frombuffer(self._cells, np.float16).reshape(-1, GRID * GRID)[frames],
                                looks=np.frombuffer(self._looks, np.uint8).reshape(-1, 2, GRID * GRID)[frames])
        return _back_to_frames(result, frames, len(self._repeats), np.frombuffer(self._where).reshape(-1, 2))


def _change(grey: np.ndarray, before: np.ndarray, shift: float | None = None) -> np.ndarray:
    # The picture as a whole getting brighter or darker (film flicker, a flash) is no motion:
    # the mean difference (`shift`, when already known) is taken out first. What is left below
    # the noise floor is grain.
    # (OpenCV calls throughout: this runs several times per frame on small pictures, where
    # numpy's per-call overhead would cost more than the arithmetic.)
    if shift is None:
        shift = cv2.mean(grey)[0] - cv2.mean(before)[0]
    diff = cv2.absdiff(cv2.subtract(grey, before, dtype=cv2.CV_32F), (shift, 0.0, 0.0, 0.0))
    return cv2.max(cv2.subtract(diff, (float(NOISE_FLOOR_LEVELS), 0.0, 0.0, 0.0)), 0.0)


def _activity(grey: np.ndarray, before: np.ndarray | None, shift: float | None = None) -> float:
    if before is None or before.shape != grey.shape:
        return 0.0
    return cv2.mean(_change(grey, before, shift))[0] / 255.0


def _rough_activity(grey: np.ndarray, before: np.ndarray, shift: float | None = None) -> float:
    """`_activity` to within about a grey level per pixel, in 8-bit arithmetic: the brightness
    shift is rounded to a whole level and applied to `before` (clipped at black and white).
    Good enough to tell whether an earlier picture came back; three of these run per frame."""
    if shift is None:
        shift = cv2.mean(grey)[0] - cv2.mean(before)[0]
    level = int(round(abs(shift)))
    moved = cv2.add(before, level) if shift >= 0 else cv2.subtract(before, level)
    return cv2.mean(cv2.subtract(cv2.absdiff(grey, moved), NOISE_FLOOR_LEVELS))[0] / 255.0


def _activity_and_centre(grey: np.ndarray, before: np.ndarray | None, shift: float | None = None
                         ) -> tuple[float, tuple[float, float], float, np.ndarray]:
    """Activity, the centre of the change (x, y as fractions; the middle when nothing moves),
    the share of the picture that changed, and the mean change per grid cell (GRID x GRID, 0..1)."""
    if before is None or before.shape != grey.shape:
        return 0.0, (0.5, 0.5), 0.0, np.zeros(GRID * GRID, np.float32)
    change = _change(grey, before, shift)
    moments = cv2.moments(change)
    total = moments["m00"]
    if total <= 0.0:
        return 0.0, (0.5, 0.5), 0.0, np.zeros(GRID * GRID, np.float32)
    h, w = change.shape
    x = moments["m10"] / total / max(1, w - 1)
    y = moments["m01"] / total / max(1, h - 1)
    cells = cv2.resize(change, (GRID, GRID), interpolation=cv2.INTER_AREA).reshape(-1) / 255.0
    return total / change.size / 255.0, (x, y), cv2.countNonZero(change) / change.size, cells


def _cell_looks(grey: np.ndarray) -> np.ndarray:
    """How each cell of the GRID x GRID grid over `grey` looks: its mean grey, then its grey's
    standard deviation (the lines drawn in it), each cell row by row, as 2 x GRID * GRID uint8.
    From the picture's integral images: a fraction of the cost of an area resize to so few
    pixels when the picture's size is no multiple of the grid."""
    corners, areas = _grid(grey.shape)
    total, squares = (integral.ravel() for integral in cv2.integral2(grey))
    a, b, c, d = corners
    mean = (total[a] - total[b] - total[c] + total[d]) / areas
    variance = (squares[a] - squares[b] - squares[c] + squares[d]) / areas - mean * mean
    looks = np.empty(2 * GRID * GRID, np.uint8)
    looks[:GRID * GRID] = mean
    looks[GRID * GRID:] = np.sqrt(np.maximum(variance, 0.0))
    return looks


@functools.lru_cache(maxsize=8)
def _grid(shape: tuple[int, int]) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """For a picture of `shape`: where each grid cell's four corners lie in its flattened
    integral image (bottom right, top right, bottom left, top left), and each cell's area."""
    rows, cols = (np.round(np.linspace(0, n, GRID + 1)).astype(np.intp) for n in shape)
    flat = rows[:, None] * (shape[1] + 1) + cols[None, :]
    corners = (flat[1:, 1:], flat[:-1, 1:], flat[1:, :-1], flat[:-1, :-1])
    areas = np.maximum(np.diff(rows)[:, None] * np.diff(cols)[None, :], 1).astype(np.float64)
    return tuple(c.ravel() for c in corners), areas.ravel()


def picture_cadence(repeats: np.ndarray) -> float:
    """Frames a picture typically stays on screen while things move.

    The mean gap between distinct pictures, leaving out holds (gaps over twice the median): 24p
    repeated to 60 fps alternates gaps of 3 and 2 frames, 2.5 on average; native video gives 1.
    """
    return _cadence_of(np.diff(np.flatnonzero(~repeats)))


def _cadence_of(gaps: np.ndarray) -> float:
    if gaps.size == 0:
        return 1.0
    return float(gaps[gaps <= 2 * np.median(gaps)].mean())


def sample_frames(repeats: np.ndarray) -> np.ndarray:
    """Indices of the frames the analysis samples: every distinct picture, and a repeat each
    time a picture has stayed on screen a whole cadence longer (a hold, not a slower rate).

    The cadence is read around each repeat (CADENCE_WINDOW frames either side), since a film
    mixes drawing schedules: a scene drawn three pictures in every four frames holds one picture
    for a frame in every four while things move, which is its rhythm, not a stop, even when the
    rest of the film is drawn on ones."""
    distinct = np.flatnonzero(~repeats)
    gaps = np.diff(distinct)
    whole = _cadence_of(gaps)
    kept, last = [], -len(repeats) - 1
    for index, repeat in enumerate(repeats.tolist()):
        if repeat:
            lo, hi = np.searchsorted(distinct[:-1], [index - CADENCE_WINDOW, index + CADENCE_WINDOW])
            due = (_cadence_of(gaps[lo:hi]) if hi > lo else whole) - CADENCE_SLACK_FRAMES
            if index - last < due:
                continue
        kept.append(index)
        last = index
    return np.array(kept, np.int64)


def _shots_on_samples(shots: tuple[Shot, ...], frames: np.ndarray) -> tuple[Shot, ...]:
    starts = np.searchsorted(frames, [s.start_frame for s in shots])
    ends = [*starts[1:].tolist(), len(frames)]
    return tuple(Shot(s.index, int(a), int(b)) for s, a, b in zip(shots, starts.tolist(), ends))


def _back_to_frames(result: "MotionResult", frames: np.ndarray, frame_count: int,
                    where: np.ndarray) -> "MotionResult":
    """Sample indices to frame indices: an event lands on the first frame showing its picture,
    and is placed where the picture changed most around it."""
    bounds = np.append(frames, frame_count)
    events = []
    for event in result.events:
        start = int(bounds[event.frame])
        end = start + 1 if event.kind in HIT_KINDS else int(bounds[event.end_frame])
        # A stop of one part of the picture knows its cell; other events are placed where the
        # picture changed most around them.
        x, y = (event.x, event.y) if (event.x, event.y) != (0.5, 0.5) else _place(where, start, max(end, start + 3))
        events.append(VisualEvent(start, event.kind, event.strength, max(end, start + 1), x, y))
    # Every frame shows the last sampled picture at or before it.
    per_frame = np.array(result.curve)[np.searchsorted(frames, np.arange(frame_count), side="right") - 1]
    return MotionResult(tuple(float(v) for v in per_frame), tuple(events), result.scale)


def _place(where: np.ndarray, start: int, end: int) -> tuple[float, float]:
    """Mean centre of the change over frames [start, end); `where` holds (x, y) per frame."""
    centres = where[start:min(end, len(where))]
    if not len(centres):
        return 0.5, 0.5
    return round(float(centres[:, 0].mean()), 4), round(float(centres[:, 1].mean()), 4)
