"""Per-frame activity and the visual events a sound should hit: impacts, flashes, whooshes.

A few numbers per picture come out of the decode pass: activity (mean absolute grey difference
to the picture before, beyond a small noise floor, 0..1, after taking out the change of overall
brightness so film flicker is no motion), brightness and contrast (mean and standard deviation
of grey), where the change is (its centre, as fractions of the picture) and how much of the
picture it covers, the change against the distinct pictures two to four back (does a
transient come back?), and the change in each cell of an 8 x 8 grid (64 half-precision numbers,
128 bytes). Memory grows by those numbers per frame only. Everything else is
read from the curves, shot by shot, after the pass:

- flash: brightness jumps well above the frames before it and falls back within a few frames;
  a flash on the beat of an impact is an explosion.
- impact: a jolt that shakes the picture (activity leaps to several times its recent level and
  the picture goes on shaking after it; the shaking is a `shake` event of its own), a dead stop
  (fast motion that halts in one frame: the frame of contact), or a dead stop of one part of
  the picture (in one cell of an 8 x 8 grid, fast motion halts and the contact drawing is held
  while the rest of the picture may go on moving: a fist that lands). An impact reached by a
  fall (the change around it moves down, picture by picture, into the contact) is a `landing`.
  A jolt that dies at once with no shake after it is a stroke of motion (a wing beat, a flung
  arm) and a whoosh; on real cartoons such jolts were wing beats and dance moves, never blows.
  So is a jolt out of a picture held still: a move starting, with nothing moving to strike.
  A stop is a blow only when it moves what it hits: within two pictures, the picture changes
  again beside the contact (the struck body recoils, dust flies, the post gives). A limb swung
  into a pose and held there (a gesture, a dance step) leaves its surroundings still.
  No hit is read where the change covers nearly the whole picture or where a featureless picture
  is near (a body over the lens, black): no contact can be seen there.
- whoosh: a run of frames whose activity stays several times the video's typical level (a swing,
  a smear, a dash); one that lasts `run_s` or more is a `run`.

Density is what a composer would hit: hit events (impact, explosion, flash) closer than
`min_spacing_s` keep the strongest, and a shot keeps at most `max_hits_per_min` of them (the
strongest; at least MIN_HITS_PER_SHOT), so weak motion peaks go.

Cut frames and flash frames are taken out of the activity curve first, so a cut or a flash
never reads as an impact, and nothing is looked for across a cut.

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

from array import array
from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

from vision.types import Shot, VisualEvent


MIN_HITS_PER_SHOT = 3  # a shot shorter than the per-minute budget allows still keeps this many hits
COVER_LOOKAHEAD = 7  # samples after a hit in which a featureless picture means the lens was covered
RETURN_PICTURES = 3  # a change that undoes itself within this many pictures is a transient
HIT_KINDS = ("impact", "landing", "splash", "explosion", "flash")  # land on one frame
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
# The picture is cut into GRID x GRID cells (an eighth of its width and height each: about the
# size of a fist or a head in a medium shot) to see one part of it stop while the rest moves on.
GRID = 8
# A shape that leaves a cell shows up in the cells around it: up to two cells away, since a fall
# at its fastest crosses more than one cell a picture.
AROUND_CELLS = 2
# A fall ends in a landing: the change moves down this many cells (sixteenths of the picture's
# height at GRID 8) over the two pictures into the contact.
LANDING_DROP = 0.5


@dataclass(frozen=True)
class MotionOptions:
    """Thresholds; activity and brightness are in [0, 1] (fractions of full scale)."""

    history_frames: int = 4  # frames before a frame that define its "recent" level
    impact_ratio: float = 2.0  # a jolt is this many times the recent activity...
    impact_min_rise: float = 0.015  # ...and at least this much above it
    impact_settle_frames: int = 8  # ...and falls to half its peak within this many frames
    stop_ratio: float = 0.35  # a dead stop leaves at most this fraction of the motion before it
    flash_min_rise: float = 0.08  # brightness rise of a flash (or a quarter of the headroom)
    flash_return_frames: int = 4  # a flash is over within this many frames
    fast_ratio: float = 2.5  # fast motion: activity this many times the typical level...
    fast_floor: float = 0.008  # ...and at least this
    min_fast_frames: int = 6  # ...for this many frames in a row (one-frame gaps bridged)
    curve_floor: float = 0.02  # activity that maps to the top of the curve is at least this
    min_shake_frames: int = 4  # an impact's aftermath this long or longer is also a shake
    held_share: float = 0.25  # a picture moving under this share of the film's typical motion is held still
    run_s: float = 0.75  # a whoosh this long or longer is a run (seconds at the picture cadence)
    min_spacing_s: float = 0.25  # hit events closer than this keep the strongest
    max_hits_per_min: float = 30.0  # at most this many hit events per minute of each shot (one every 2 s)
    max_hit_coverage: float = 0.6  # a hit changes a part of the picture, not nearly all of it
    # A part of the picture stops dead: in one grid cell, the mean change of the two pictures
    # into the contact beats twice the change of the two after it by this much (0.08 of full
    # scale: about a third of a cell swept by a drawn shape of clear contrast)...
    local_stop_min: float = 0.08
    local_stop_ease: float = 0.85  # ...and the last change into it is at least this share of the one before
    local_stop_moves_on: float = 0.75  # ...and no cell around it moves this share of it over the two pictures after
    local_stop_hold_s: float = 0.16  # ...and the cell stays quiet this long after: a contact drawing is held to read
    local_stop_reaction: float = 0.2  # ...and within two pictures it or a cell beside it moves this share of it


@dataclass(frozen=True)
class MotionResult:
    curve: tuple[float, ...]  # per frame, [0, 1]
    events: tuple[VisualEvent, ...]  # sorted by frame
    # The activity (mean grey change, 0..1) that reads 1.0 on `curve`: activity = curve**2 * scale
    # below it. The curve is relative to the video; this gives back how much really moves.
    scale: float = 0.0


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
                                cells=np.frombuffer(self._cells, np.float16).reshape(-1, GRID * GRID)[frames])
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


def analyse_motion(activity: np.ndarray, brightness: np.ndarray, shots: tuple[Shot, ...],
                   options: MotionOptions = MotionOptions(), rate: float = 24.0,
                   coverage: np.ndarray | None = None, returns: np.ndarray | None = None,
                   cells: np.ndarray | None = None) -> MotionResult:
    """Events and the normalised activity curve from the per-sample curves.

    Args:
        activity, brightness: per sample, 0..1.
        shots: shots in samples.
        rate: samples per second (durations of whooshes and runs, spacing of hits).
        coverage: per sample, (share of the picture that changed, grey contrast 0..1); None
            skips the checks for covered lenses.
        returns: per sample, the change against the pictures 2 .. RETURN_PICTURES + 1 back;
            None skips the smear check.
        cells: per sample, the change in each of the GRID x GRID cells of the picture (row by
            row); None skips the stops of one part of the picture.
    """
    activity = activity.astype(np.float64).copy()
    events: list[VisualEvent] = []
    for shot in shots:
        flashes = _find_flashes(brightness, shot, options)
        activity[shot.start_frame] = activity[shot.start_frame + 1] if shot.frame_count > 1 else 0.0
        for flash, back in flashes:
            _mask(activity, shot, flash.frame, back, options)
        events += [f for f, _ in flashes]
    typical = float(np.median(activity)) if activity.size else 0.0
    typical_contrast = float(np.median(coverage[:, 1])) if coverage is not None and len(coverage) else 0.0
    scale = max(float(np.percentile(activity, 98)) if activity.size else 0.0, options.curve_floor)
    for shot in shots:
        impacts, busy, strokes = _find_impacts(activity, shot, typical, scale, options, returns)
        if cells is not None:
            impacts = [e for e in impacts if e.kind != "impact" or e.frame in strokes or _struck(cells, e.frame, options)]
            impacts += _local_stops(cells, shot, options, rate)
        impacts = _landings(impacts, cells) if cells is not None else impacts
        events += _strokes_are_whooshes(
            _smears_are_whooshes(_not_covering(impacts, coverage, typical_contrast, options), activity, returns),
            strokes)
        events += _find_whooshes(activity, shot, typical, scale, busy, options, rate)
    events = thin_hits(_explosions(events, rate), shots, options, rate)
    curve = np.sqrt(np.clip(activity / scale, 0.0, 1.0))  # sqrt: small motion still registers
    return MotionResult(tuple(float(v) for v in curve), tuple(sorted(events, key=lambda e: (e.frame, e.kind))),
                        float(scale))


def _recent(values: np.ndarray, shot: Shot, t: int, n: int) -> np.ndarray:
    return values[max(shot.start_frame, t - n):t]


def _find_flashes(brightness: np.ndarray, shot: Shot, options: MotionOptions) -> list[tuple[VisualEvent, int]]:
    """(flash event, frame where the picture is back) for each flash in the shot."""
    found: list[tuple[VisualEvent, int]] = []
    t = shot.start_frame + 2
    while t < shot.end_frame:
        base = float(np.median(_recent(brightness, shot, t, options.history_frames)))
        rise = brightness[t] - base
        needed = max(options.flash_min_rise, 0.25 * (1.0 - base))
        back = _flash_end(brightness, shot, t, base, rise, options) if rise >= needed else None
        if back is None:
            t += 1
            continue
        found.append((VisualEvent(t, "flash", float(min(1.0, rise / 0.5)), back), back))
        t = back + 1
    return found


def _flash_end(brightness, shot: Shot, t: int, base: float, rise: float, options: MotionOptions) -> int | None:
    for k in range(1, options.flash_return_frames + 1):
        if t + k >= shot.end_frame:
            return None
        if brightness[t + k] - base <= 0.4 * rise:
            return t + k
    return None


def _mask(activity: np.ndarray, shot: Shot, start: int, end: int, options: MotionOptions) -> None:
    """Replace activity over [start, end] (a flash and the frame after it) by the level before."""
    before = _recent(activity, shot, start, options.history_frames)
    activity[start:end + 1] = float(np.median(before)) if before.size else 0.0


def _find_impacts(activity: np.ndarray, shot: Shot, typical: float, scale: float, options: MotionOptions,
                  returns: np.ndarray | None = None) -> tuple[list[VisualEvent], np.ndarray, dict[int, int]]:
    """Impacts in the shot, a mask of the frames their aftermath (shake) occupies, and the
    jolts with no shake after them ({frame: frame where it is calm again})."""
    busy = np.zeros(activity.size, bool)
    found: list[VisualEvent] = []
    strokes: dict[int, int] = {}
    t = shot.start_frame + 2
    while t < shot.end_frame:
        frame = _jolt(activity, shot, t, options)
        jolt = frame is not None
        if frame is None and not busy[max(shot.start_frame, t - 2):t + 1].any():  # a shake dying down is no stop
            frame = _dead_stop(activity, shot, t, typical, options, returns)
        if frame is None:
            t += 1
            continue
        calm = _calm_again(activity, shot, frame, typical, options)
        peak = float(activity[frame:calm].max(initial=activity[frame]))
        found.append(VisualEvent(frame, "impact", float(min(1.0, peak / scale)), frame + 1))
        if jolt and _held_before(activity, shot, frame, typical, options):
            strokes[frame] = calm  # a move out of a held pose: nothing was moving to strike anything
        elif calm - frame - 1 >= options.min_shake_frames:
            level = float(activity[frame + 1:calm].mean())
            found.append(VisualEvent(frame + 1, "shake", float(np.sqrt(min(1.0, level / scale))), calm))
        elif jolt:
            strokes[frame] = calm
        busy[frame:calm] = True
        t = calm
    return found, busy, strokes


def _held_before(activity: np.ndarray, shot: Shot, t: int, typical: float, options: MotionOptions) -> bool:
    """Whether the picture was held still (moving under `held_share` of the film's typical
    motion) over the pictures before `t`."""
    before = _recent(activity, shot, t, options.history_frames)
    return bool(before.size) and float(before.mean()) <= options.held_share * typical


def _strokes_are_whooshes(events: list[VisualEvent], strokes: dict[int, int]) -> list[VisualEvent]:
    """A jolt of the whole picture that dies at once with no shaking after it is a stroke of
    motion (a wing beat, a flung arm, a quick turn): a whoosh until the picture is calm again.
    A blow that jolts the whole picture shakes it; a contact of one part is a stop of that part
    (`_local_stops`, placed on its cell, kept here)."""
    out = []
    for e in events:
        if e.kind in ("impact", "landing") and e.frame in strokes and (e.x, e.y) == (0.5, 0.5):
            e = VisualEvent(e.frame, "whoosh", float(np.sqrt(e.strength)), strokes[e.frame])
        out.append(e)
    return out


def _jolt(activity: np.ndarray, shot: Shot, t: int, options: MotionOptions) -> int | None:
    before = float(np.mean(_recent(activity, shot, t, options.history_frames)))
    rise = activity[t] - before
    if activity[t] < options.impact_ratio * before or rise < options.impact_min_rise:
        return None
    window = activity[t:min(shot.end_frame, t + options.impact_settle_frames + 2)]
    peak = float(window[:4].max())
    low = window[2:] <= 0.5 * peak
    if not (low[:-1] & low[1:]).any():
        return None  # motion that starts and keeps going (two calm frames in a row) is not an impact
    return t


def _dead_stop(activity: np.ndarray, shot: Shot, t: int, typical: float, options: MotionOptions,
               returns: np.ndarray | None = None) -> int | None:
    """Fast motion up to frame t, then a sudden drop for two frames: the stop lands at t, the
    last picture that moves (the contact drawing, held after it). Motion that only slows down
    (a dash that becomes a walk) is no stop: over two pictures its change adds up, while a held
    picture with grain or a wobble on it stays as near to the contact drawing as one picture on.
    A drop to under 70 % of `stop_ratio` is a stop either way."""
    if t + 2 >= shot.end_frame or t - 2 < shot.start_frame:
        return None
    fast = max(options.fast_ratio * typical, options.fast_floor)
    before, after = activity[t - 2:t + 1], activity[t + 1:t + 3]
    if before.mean() < fast or before.min() < 0.5 * fast:
        return None
    drop = after.max() / before.mean()
    if drop > options.stop_ratio:
        return None
    slowing = returns is not None and after.max() > 1e-4 and returns[t + 2, 0] > 1.5 * after.max()
    return None if slowing and drop > 0.7 * options.stop_ratio else t


def _local_stops(cells: np.ndarray, shot: Shot, options: MotionOptions, rate: float) -> list[VisualEvent]:
    """Impacts where one part of the picture stops dead while the rest may go on moving: a fist
    landing, a body slammed down, two pipes banging together.

    In one grid cell, the change into the contact picture t and into the one before it is fast
    (both at least `local_stop_min` above twice the largest change in that cell over the
    `local_stop_hold_s` after t: the contact drawing is held long enough to read), and it does
    not slow down into t (an eased stop, a swing reaching its end, is no blow). A shape that only
    left the cell is no stop: the cells around it then move at least `local_stop_moves_on` as
    much over the two pictures after. Of neighbouring pictures that qualify, the one with the
    clearest stop is kept; the event sits on its cell."""
    hold = max(2, int(round(options.local_stop_hold_s * rate)))
    start, end = shot.start_frame + 2, shot.end_frame - hold
    if end <= start:
        return []
    # This shot's cells only (from the picture before `start` to the shot's end): converting the
    # whole film's for every shot would cost time and memory in the square of its length.
    c = cells[start - 1:shot.end_frame].astype(np.float32)
    a, b = 1, end - start + 1  # start and end within `c`
    moving = np.minimum(c[a - 1:b - 1], c[a:b])
    after = np.max([c[a + k:b + k] for k in range(1, hold + 1)], axis=0)
    clear = moving - 2.0 * after
    clear[c[a:b] < options.local_stop_ease * c[a - 1:b - 1]] = 0.0
    # A shape that only left the cell goes on moving in the next one.
    moved_on = np.maximum(_around(c[a + 1:b + 1]), _around(c[a + 2:b + 2]))
    clear[moved_on >= options.local_stop_moves_on * moving] = 0.0
    # A blow moves what it hits: the struck body recoils, dust or spray flies, the picture
    # shakes, right beside the contact. A limb swung into a pose and held there leaves its
    # surroundings still.
    reaction = np.maximum(_around(c[a + 1:b + 1], 1, centre=True), _around(c[a + 2:b + 2], 1, centre=True))
    clear[reaction < options.local_stop_reaction * moving] = 0.0
    best = clear.max(axis=1)
    found = []
    for k in np.flatnonzero(best >= options.local_stop_min).tolist():
        if best[max(0, k - 1):k + 2].max() > best[k]:
            continue  # a neighbour stops more clearly
        cell = int(np.argmax(clear[k]))
        x, y = ((cell % GRID) + 0.5) / GRID, ((cell // GRID) + 0.5) / GRID
        strength = float(min(1.0, moving[k, cell] / (2 * options.local_stop_min)))
        found.append(VisualEvent(start + k, "impact", strength, start + k + 1, x, y))
    return found


def _struck(cells: np.ndarray, t: int, options: MotionOptions) -> bool:
    """Whether a stop of the picture at sample `t` moved what it hit: within the two pictures
    after it, a cell where the change into `t` was strong (at least half the strongest) or a
    cell beside one changes by at least `local_stop_reaction` of the strongest change into `t`
    (see `_local_stops`)."""
    if t + 2 >= len(cells):
        return True  # nothing after it to judge by
    into = cells[t].astype(np.float32)
    strong = (into >= 0.5 * into.max()).astype(np.float32)
    near = _around(strong[None], 1, centre=True)[0] > 0
    after = cells[t + 1:t + 3].astype(np.float32).max(axis=0)
    return bool(near.any()) and float(after[near].max()) >= options.local_stop_reaction * float(into.max())


def _landings(events: list[VisualEvent], cells: np.ndarray) -> list[VisualEvent]:
    """Impacts reached by a fall are landings: over the two pictures into the contact, the
    change around it moves down, picture by picture, by LANDING_DROP cells or more and at least
    twice as far as it moves across (a thud, not a blow)."""
    out = []
    for e in events:
        if e.kind == "impact" and e.frame >= 2 and _came_down(cells[e.frame - 2:e.frame + 1], e):
            e = VisualEvent(e.frame, "landing", e.strength, e.end_frame, e.x, e.y)
        out.append(e)
    return out


def _came_down(window: np.ndarray, event: VisualEvent) -> bool:
    grid = window.astype(np.float32).reshape(-1, GRID, GRID)
    if (event.x, event.y) == (0.5, 0.5):  # a jolt of the whole picture: around where it changed most
        row, col = np.unravel_index(int(np.argmax(grid[-1])), (GRID, GRID))
    else:
        row, col = min(GRID - 1, int(event.y * GRID)), min(GRID - 1, int(event.x * GRID))
    top, left = max(0, row - AROUND_CELLS), max(0, col - AROUND_CELLS)
    part = grid[:, top:row + AROUND_CELLS + 1, left:col + AROUND_CELLS + 1]
    weight = part.sum(axis=(1, 2))
    if (weight <= 0).any():
        return False
    ys = (part.sum(axis=2) @ np.arange(part.shape[1])) / weight
    xs = (part.sum(axis=1) @ np.arange(part.shape[2])) / weight
    down, across = float(ys[-1] - ys[0]), float(abs(xs[-1] - xs[0]))
    return bool(np.all(np.diff(ys) > 0) and down >= LANDING_DROP and down >= 2.0 * across)


def _around(values: np.ndarray, reach: int = AROUND_CELLS, centre: bool = False) -> np.ndarray:
    """Per sample and grid cell, the largest value among the cells up to `reach` cells away
    (and the cell itself when `centre`)."""
    grid = values.reshape(-1, GRID, GRID)
    r = reach
    padded = np.pad(grid, ((0, 0), (r, r), (r, r)))
    out = np.zeros_like(grid)
    for dy in range(2 * r + 1):
        for dx in range(2 * r + 1):
            if centre or dy != r or dx != r:
                np.maximum(out, padded[:, dy:dy + GRID, dx:dx + GRID], out=out)
    return out.reshape(values.shape)


def _calm_again(activity: np.ndarray, shot: Shot, frame: int, typical: float, options: MotionOptions) -> int:
    """First frame after an impact at which activity is back near its level before the impact."""
    before = float(np.mean(_recent(activity, shot, frame, options.history_frames))) if frame > shot.start_frame else 0.0
    peak = float(activity[frame:frame + 4].max())
    level = max(0.25 * peak, 1.5 * before, 1.5 * typical)
    end = min(shot.end_frame, frame + 3 * options.impact_settle_frames)
    for k in range(frame + 2, end):
        if activity[k] <= level:
            return k
    return end


def _find_whooshes(activity: np.ndarray, shot: Shot, typical: float, scale: float, busy: np.ndarray,
                   options: MotionOptions, rate: float) -> list[VisualEvent]:
    threshold = max(options.fast_ratio * typical, options.fast_floor)
    span = slice(shot.start_frame, shot.end_frame)
    fast = (activity[span] >= threshold) & ~busy[span]
    fast[1:-1] |= fast[:-2] & fast[2:]  # bridge one-frame gaps
    events = []
    for start, end in _runs(fast):
        if end - start >= options.min_fast_frames:
            level = float(activity[shot.start_frame + start:shot.start_frame + end].mean())
            strength = float(np.sqrt(min(1.0, level / scale)))
            kind = "run" if (end - start) / rate >= options.run_s else "whoosh"
            events.append(VisualEvent(shot.start_frame + start, kind, strength, shot.start_frame + end))
    return events


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of True values."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.diff(padded)
    return list(zip(np.nonzero(edges == 1)[0].tolist(), np.nonzero(edges == -1)[0].tolist()))


def _explosions(events: list[VisualEvent], rate: float) -> list[VisualEvent]:
    """A flash within a tenth of a second of an impact is one explosion, as strong as both."""
    flashes = [e for e in events if e.kind == "flash"]
    impacts = [e for e in events if e.kind == "impact"]
    near = max(1, int(round(0.1 * rate)))
    merged: set[int] = set()
    out = [e for e in events if e.kind not in ("flash", "impact")]
    for flash in flashes:
        hit = next((i for i in impacts if abs(i.frame - flash.frame) <= near and id(i) not in merged), None)
        if hit is None:
            out.append(flash)
            continue
        merged.add(id(hit))
        out.append(VisualEvent(min(hit.frame, flash.frame), "explosion", max(hit.strength, flash.strength),
                               min(hit.frame, flash.frame) + 1))
    out += [i for i in impacts if id(i) not in merged]
    return out


def thin_hits(events: list[VisualEvent], shots: tuple[Shot, ...], options: MotionOptions,
              rate: float) -> list[VisualEvent]:
    """Hit events a composer would play: strongest first, none closer than `min_spacing_s` to a
    stronger one, at most `max_hits_per_min` per shot (at least MIN_HITS_PER_SHOT, so a short
    shot keeps its few hits). Sustained events stay."""
    spacing = options.min_spacing_s * rate
    kept: list[VisualEvent] = [e for e in events if e.kind not in HIT_KINDS]
    for shot in shots:
        hits = sorted((e for e in events if e.kind in HIT_KINDS and shot.start_frame <= e.frame < shot.end_frame),
                      key=lambda e: (-e.strength, e.frame))
        budget = max(MIN_HITS_PER_SHOT, int(np.ceil(options.max_hits_per_min * shot.frame_count / rate / 60.0)))
        chosen: list[VisualEvent] = []
        for hit in hits:
            if len(chosen) < budget and all(abs(hit.frame - c.frame) >= spacing for c in chosen):
                chosen.append(hit)
        kept += chosen
    return sorted(kept, key=lambda e: (e.frame, e.kind))


def _not_covering(events: list[VisualEvent], coverage: np.ndarray | None, typical_contrast: float,
                  options: MotionOptions) -> list[VisualEvent]:
    """Drop hits whose change covers nearly the whole picture (something sweeping over the lens,
    a swish pan) or that come from or lead within a few frames to a featureless picture (a body
    over the lens, black): no contact can be seen there.

    `coverage` holds, per sample, the share of the picture that changed and the picture's
    contrast (grey standard deviation, 0..1); `typical_contrast` is the film's median contrast."""
    if coverage is None:
        return events
    out = []
    for e in events:
        into = coverage[max(0, e.frame - 1):e.frame + 1, 0]  # the change into the contact, not a shake after
        around = coverage[max(0, e.frame - 1):e.frame + COVER_LOOKAHEAD, 1]  # a body reaching the lens
        if e.kind in HIT_KINDS and into.size and (float(into.max()) > options.max_hit_coverage or
                                                  float(around.min()) < 0.3 * typical_contrast):
            continue
        out.append(e)
    return out


def _smears_are_whooshes(events: list[VisualEvent], activity: np.ndarray,
                         returns: np.ndarray | None) -> list[VisualEvent]:
    """A jolt whose picture comes back to the one before it within a few pictures (a smear
    frame mid-move, a swing that hits nothing) is a whoosh over those pictures, not a contact."""
    if returns is None:
        return events
    shaken = {e.frame - 1 for e in events if e.kind == "shake"}  # a shake after it: a real blow
    out = []
    for e in events:
        back = _returns_after(e.frame, activity, returns) if e.kind == "impact" and e.frame not in shaken else None
        if back is None:
            out.append(e)
        else:
            out.append(VisualEvent(e.frame, "whoosh", e.strength, e.frame + back))
    return out


def _returns_after(t: int, activity: np.ndarray, returns: np.ndarray) -> int | None:
    """Pictures after `t` (1 ..) at which the picture before `t` is back, if it comes back."""
    for span in range(1, returns.shape[1] + 1):
        if t + span >= len(returns):
            return None
        if returns[t + span, span - 1] <= 0.5 * activity[t]:
            return span
    return None
