"""The visual events a sound should hit, read from the motion curves of `vision.motion`:
impacts, landings, flashes, explosions, shakes, whooshes and runs.

Everything is read shot by shot, after the decode pass, from per-sample curves (one sample
per distinct picture; see `vision.motion`):

- flash: brightness jumps well above the frames before it and falls back within a few frames;
  a flash on the beat of an impact is an explosion.
- impact: a jolt that shakes the picture (activity leaps to several times its recent level and
  the picture goes on shaking after it, most of it changing, as when the camera is jolted; the
  shaking is a `shake` event of its own), a dead stop
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
  a smear, a dash); one that lasts `run_s` or more and goes somewhere (its change crosses a third
  of the picture, or the whole picture moves with it) is a `run`: running feet.

Density is what a composer would hit: hit events (impact, explosion, flash) closer than
`min_spacing_s` keep the strongest, and a shot keeps at most `max_hits_per_min` of them (the
strongest; at least MIN_HITS_PER_SHOT), so weak motion peaks go.

Cut frames and flash frames are taken out of the activity curve first, so a cut or a flash
never reads as an impact, and nothing is looked for across a cut.

Events are found on the samples; `vision.motion` moves them back onto frames.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vision.types import Shot, VisualEvent


MIN_HITS_PER_SHOT = 3  # a shot shorter than the per-minute budget allows still keeps this many hits
COVER_LOOKAHEAD = 7  # samples after a hit in which a featureless picture means the lens was covered
RETURN_PICTURES = 3  # a change that undoes itself within this many pictures is a transient
HIT_KINDS = ("impact", "landing", "splash", "explosion", "flash")  # land on one frame
# The picture is cut into GRID x GRID cells (an eighth of its width and height each: about the
# size of a fist or a head in a medium shot) to see one part of it stop while the rest moves on.
GRID = 8
# A shape that leaves a cell shows up in the cells around it: up to two cells away, since a fall
# at its fastest crosses more than one cell a picture.
AROUND_CELLS = 2
# A cell whose mean grey stays at or under BAR_LEVEL (0..255) and within BAR_STILL levels of one
# value, with no more spread than that, through a shot is a black bar (letterbox, pillarbox),
# not picture. (Its change to the picture before is no guide: film flicker is taken out of the
# change, which leaves the bar's black moving against the picture's shift.)
BAR_LEVEL, BAR_STILL = 30, 3
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
    min_shake_frames: int = 4  # an impact's aftermath this long or longer is also a shake...
    # ...when at least this share of the picture changes over it, on average: a jolted camera moves
    # every edge in the picture (measured: 0.29-0.40 over the flat skies of the synthetic sets,
    # 0.79-0.97 on painted sets), while wings flapping on or a head jerking about change 0.12-0.17
    shake_min_coverage: float = 0.22
    held_share: float = 0.25  # a picture moving under this share of the film's typical motion is held still
    run_s: float = 0.75  # a whoosh this long or longer is a run (seconds at the picture cadence)...
    # ...when it goes somewhere: the centre of the change moves a third of the picture from the
    # run's first third to its last (a runner crossing the picture: 0.40 for one that crosses two
    # thirds of it in a second), or nearly all of the picture changes all along (`max_hit_coverage`:
    # the camera travels with the runner). Motion that stays put (arms whirled, legs kicked in
    # place, a song's gestures, wings beating; 0.02-0.27 on the real cartoons, where none of the
    # long motions was anybody running) is a long whoosh, not running feet.
    run_travel: float = 0.33
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
    # A shape in a cell on the picture's edge can leave the picture there, where no cell around it
    # sees it go on: that cell then looks again as it did before the shape came (its mean grey,
    # over the frame's own brightness, and its spread, back within `leave_share` of how far the
    # shape had moved them, at least `leave_min_swing`, some picture within `leave_window_s`
    # before the stop). A wing beating out of the picture, a foot kicked past its bottom edge, a
    # runner dashing out of it: no blow.
    leave_window_s: float = 0.5
    leave_share: float = 0.2
    leave_min_swing: float = 0.03


@dataclass(frozen=True)
class MotionResult:
    curve: tuple[float, ...]  # per frame, [0, 1]
    events: tuple[VisualEvent, ...]  # sorted by frame
    # The activity (mean grey change, 0..1) that reads 1.0 on `curve`: activity = curve**2 * scale
    # below it. The curve is relative to the video; this gives back how much really moves.
    scale: float = 0.0


def analyse_motion(activity: np.ndarray, brightness: np.ndarray, shots: tuple[Shot, ...],
                   options: MotionOptions = MotionOptions(), rate: float = 24.0,
                   coverage: np.ndarray | None = None, returns: np.ndarray | None = None,
                   cells: np.ndarray | None = None, looks: np.ndarray | None = None) -> MotionResult:
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
        looks: per sample, the mean grey and the grey's standard deviation (0..255, shape
            (samples, 2, GRID * GRID)) of each of those cells; None skips the check for shapes
            that left the picture at its edge (`leave_share`).
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
        impacts, busy, strokes = _find_impacts(activity, shot, typical, scale, options, returns, coverage)
        if cells is not None:
            impacts = [e for e in impacts if e.kind != "impact" or e.frame in strokes or _struck(cells, e.frame, options)]
            edges = _picture_edges(looks[shot.start_frame:shot.end_frame]) if looks is not None else None
            if edges is not None:
                impacts = [e for e in impacts if e.kind != "impact" or not _went_out(cells, looks, brightness, edges, shot,
                                                                                     e.frame, options, rate)]
            impacts += _local_stops(cells, shot, options, rate, looks, brightness, edges)
        impacts = _landings(impacts, cells) if cells is not None else impacts
        events += _strokes_are_whooshes(
            _smears_are_whooshes(_not_covering(impacts, coverage, typical_contrast, options), activity, returns),
            strokes)
        events += _find_whooshes(activity, shot, typical, scale, busy, options, rate, cells, coverage)
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
                  returns: np.ndarray | None = None, coverage: np.ndarray | None = None
                  ) -> tuple[list[VisualEvent], np.ndarray, dict[int, int]]:
    """Impacts in the shot, a mask of the frames their aftermath (shake) occupies, and the
    jolts with no shake after them ({frame: frame where it is calm again}).

    A shake is the camera jolted: the whole picture moves, so most of it changes in the pictures
    after the blow (`shake_min_coverage`; `coverage` holds each sample's changed share, None
    skips the check). Activity that stays up while only a part of the picture moves (wings
    flapping on, a head jerking about) is no shake, and the jolt before it a stroke."""
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
        elif calm - frame - 1 >= options.min_shake_frames and _camera_shaken(coverage, frame, calm, options):
            level = float(activity[frame + 1:calm].mean())
            found.append(VisualEvent(frame + 1, "shake", float(np.sqrt(min(1.0, level / scale))), calm))
        elif jolt:
            strokes[frame] = calm
        busy[frame:calm] = True
        t = calm
    return found, busy, strokes


def _camera_shaken(coverage: np.ndarray | None, frame: int, calm: int, options: MotionOptions) -> bool:
    """Whether most of the picture changes over samples (frame, calm): the camera shakes."""
    return coverage is None or float(np.mean(coverage[frame + 1:calm, 0])) >= options.shake_min_coverage


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


def _local_stops(cells: np.ndarray, shot: Shot, options: MotionOptions, rate: float,
                 looks: np.ndarray | None = None, brightness: np.ndarray | None = None,
                 edges: np.ndarray | None = None) -> list[VisualEvent]:
    """Impacts where one part of the picture stops dead while the rest may go on moving: a fist
    landing, a body slammed down, two pipes banging together.

    In one grid cell, the change into the contact picture t and into the one before it is fast
    (both at least `local_stop_min` above twice the largest change in that cell over the
    `local_stop_hold_s` after t: the contact drawing is held long enough to read), and it does
    not slow down into t (an eased stop, a swing reaching its end, is no blow). A shape that only
    left the cell is no stop: the cells around it then move at least `local_stop_moves_on` as
    much over the two pictures after; on the picture's edge, where it can leave the picture
    unseen (`edges`, see `_picture_edges`; None skips this), the cell then looks again as it did
    before it came (`looks`, see `leave_share`). Of neighbouring pictures that qualify, the one
    with the clearest stop is kept; the event sits on its cell."""
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
        if edges is None or not (edges[cell] and _left_the_picture(looks, brightness, shot, start + k, cell,
                                                                   options, rate)):
            found.append(VisualEvent(start + k, "impact", strength, start + k + 1, x, y))
    return found


def _picture_edges(looks: np.ndarray) -> np.ndarray:
    """Per grid cell (row by row), whether it lies on the edge of the picture in a shot (`looks`
    per sample of it, see `analyse_motion`): on the frame's border, or beside a black bar (a
    cell that is dark, flat and never changes: the pillarbox of a 4:3 film in a 16:9 frame is
    exactly the first and last column of the grid, a letterbox about the first and last row). A
    bar is no picture."""
    mean = looks[:, 0]
    high, low = mean.max(axis=0).astype(np.int16), mean.min(axis=0).astype(np.int16)
    flat = looks[:, 1].max(axis=0) <= BAR_STILL
    bar = ((high <= BAR_LEVEL) & (high - low <= BAR_STILL) & flat).reshape(GRID, GRID)
    edge = np.zeros((GRID, GRID), bool)
    edge[[0, -1], :] = edge[:, [0, -1]] = True
    padded = np.pad(bar, 1)
    edge |= padded[:-2, 1:-1] | padded[2:, 1:-1] | padded[1:-1, :-2] | padded[1:-1, 2:]
    return (edge & ~bar).reshape(-1)


def _went_out(cells: np.ndarray, looks: np.ndarray, brightness: np.ndarray, edges: np.ndarray, shot: Shot,
              t: int, options: MotionOptions, rate: float) -> bool:
    """Whether the motion of the whole picture stopped at sample `t` because what moved left the
    picture: the change into `t` is strongest in a cell on the picture's edge (`edges`), and that
    cell then looks again as it did before (`_left_the_picture`). A runner dashing out of it."""
    cell = int(np.argmax(cells[t]))
    return bool(edges[cell]) and _left_the_picture(looks, brightness, shot, t, cell, options, rate)


def _left_the_picture(looks: np.ndarray, brightness: np.ndarray, shot: Shot, t: int, cell: int,
                      options: MotionOptions, rate: float) -> bool:
    """Whether a shape that stopped at sample `t` in `cell`, a cell on the picture's edge (see
    `_picture_edges`; inside the picture, `moved_on` sees a shape that goes on), has in fact left
    the picture: after `t` the cell looks again as it did before the shape came (see
    `leave_share`)."""
    window = max(2, int(round(options.leave_window_s * rate)))
    first = max(shot.start_frame, t - window)
    if t + 1 >= min(shot.end_frame, len(looks)) or t - 3 < first:
        return False
    look = looks[first:t + 2, :, cell].astype(np.float64) / 255.0   # (mean, spread) per picture
    look[:, 0] -= brightness[first:t + 2]   # film flicker moves every cell alike
    # How far each picture looks from the one after the stop: its mean grey (a shape of another
    # shade) and its spread (a shape's lines, though it be of the background's shade).
    away = np.abs(look - look[-1]).sum(axis=1)
    swing = float(away[:-1].max())
    return swing >= options.leave_min_swing and float(away[:-3].min()) <= options.leave_share * swing


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
    if (part.sum(axis=(1, 2)) <= 0).any():
        return False
    ys, xs = _centres_of_change(part)
    down, across = float(ys[-1] - ys[0]), float(abs(xs[-1] - xs[0]))
    return bool(np.all(np.diff(ys) > 0) and down >= LANDING_DROP and down >= 2.0 * across)


def _centres_of_change(grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per picture of `grid` (pictures x rows x columns of cell changes, each with some change),
    the (row, column) centre of the change, in cells from the first."""
    weight = grid.sum(axis=(1, 2))
    return (grid.sum(axis=2) @ np.arange(grid.shape[1])) / weight, (grid.sum(axis=1) @ np.arange(grid.shape[2])) / weight


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
                   options: MotionOptions, rate: float, cells: np.ndarray | None = None,
                   coverage: np.ndarray | None = None) -> list[VisualEvent]:
    """Whooshes, and runs: long whooshes that travel (see `run_travel`; with no `cells` every
    long one is a run)."""
    threshold = max(options.fast_ratio * typical, options.fast_floor)
    span = slice(shot.start_frame, shot.end_frame)
    fast = (activity[span] >= threshold) & ~busy[span]
    fast[1:-1] |= fast[:-2] & fast[2:]  # bridge one-frame gaps
    events = []
    for start, end in _runs(fast):
        if end - start >= options.min_fast_frames:
            level = float(activity[shot.start_frame + start:shot.start_frame + end].mean())
            strength = float(np.sqrt(min(1.0, level / scale)))
            first, last = shot.start_frame + start, shot.start_frame + end
            long = (end - start) / rate >= options.run_s
            kind = "run" if long and _travels(cells, coverage, first, last, options) else "whoosh"
            events.append(VisualEvent(first, kind, strength, last))
    return events


def _travels(cells: np.ndarray | None, coverage: np.ndarray | None, start: int, end: int,
             options: MotionOptions) -> bool:
    """Whether the motion over samples [start, end) goes somewhere: the centre of the change in
    the grid cells moves `run_travel` of the picture from the first third of the span to the last,
    or nearly all of the picture changes throughout (the camera moving with what it follows)."""
    if cells is None:
        return True
    if coverage is not None and float(np.mean(coverage[start:end, 0])) >= options.max_hit_coverage:
        return True
    grid = cells[start:end].astype(np.float32).reshape(-1, GRID, GRID)
    grid = grid[grid.sum(axis=(1, 2)) > 0]   # pictures where something changed
    if len(grid) < 3:
        return False
    ys, xs = (centre / GRID for centre in _centres_of_change(grid))   # cells -> shares of the picture
    third = max(1, len(xs) // 3)
    moved = np.hypot(xs[-third:].mean() - xs[:third].mean(), ys[-third:].mean() - ys[:third].mean())
    return bool(moved >= options.run_travel)


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
