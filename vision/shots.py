"""Frame-exact cuts and gradual transitions from the pictures of the one decode pass.

A cut is a change that persists. Each distinct picture is reduced to a signature: an 8 x 6 grid
of blocks of a small grey image, each block described by its mean, its contrast and its
contrast-normalised pattern. Two pictures differ by the median, over the blocks that carry any
information, of how much each block changed: its pattern where it has texture, its level where
it is flat. Because the pattern is normalised, film flicker (the whole picture brighter or darker)
changes nothing; because the median is taken over blocks, a character moving in a part of the
frame is not a cut, while a new shot changes nearly every block even when both shots share one
palette (orange to orange, grey to grey).

A picture c starts a new shot when every picture of a short window after it (c .. c+4) differs
from every picture of the window before it (c-3 .. c-1), and that smallest cross-window change
stands far above the picture-to-picture change around it. A smear frame, a flash, a splash or
an impact frame that returns to the previous picture within the window is a transient, not a
cut (the motion module reads it as an event); camera shake and fast motion change the picture
by about as much from one picture to the next as across the window, so they are no cut either.
A new picture that is mostly flat (a wing or a body covering the camera, a black frame) is held
back: when the old picture comes back within `occlusion_s`, the span was an occlusion inside
one shot. The windows count distinct pictures, and a picture held still on screen for HELD_S or
longer ends them: a cut to black (or to a card) that stays to the end, or that lasts a second
before the same scene comes back, is a cut each way, while a smear or a flash never lasts so long.

Dissolves and fades are found from a short ring of small grey pictures: a span whose two ends
differ like two shots while every picture between them is the matching blend of the two ends
is a dissolve (a fade when one end is black). Its cut is reported at the span's middle frame,
and the span itself as a `Transition`.

Wipes and irises are found from the same ring once they are over: across a span whose ends
differ like two shots, every picture between is a patchwork of the two ends, pixel by pixel,
the new picture's part only grows, halfway it is one region (a thing crossing the picture leaves
one part behind it and takes another in front: two regions), and the last two pictures hold
still. An iris is a part enclosed by the other (a circle closing to black or opening from it),
a wipe an edge sweeping across. A patchwork whose new picture was on screen before the span is
something uncovering the lens, and one that ends on a flat picture that is not black is a body
over the lens: neither is a transition.

Repeated frames (24p shown at 30 or 60 fps, animation on twos) are passed over: the detector
sees each distinct picture once. PySceneDetect's ContentDetector and AdaptiveDetector can be
chosen instead ("content", "adaptive"), with the same transient check.
"""
from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from fractions import Fraction

import cv2
import numpy as np

from vision.types import Shot, Transition

log = logging.getLogger(__name__)

DETECTORS = ("structure", "content", "adaptive")
GRID = (8, 6)  # blocks across, down
BLOCK_PX = 8  # px per block side of the signature image
FLAT_CONTRAST = 6.0  # grey levels: a block with less contrast than this has no pattern to compare
LEVEL_SCALE = 40.0  # grey levels of mean or contrast change that count as a complete change
DARK_LEVEL = 30.0  # grey level under which a flat block is black (letterbox, fade)
BLEND_SIZE = (32, 24)  # px, the pictures kept for the dissolve test
LOCAL_PICTURES = 12  # pictures either side that set the local level of change
HELD_S = 0.5  # s: a picture held still this long is on screen to stay, never a transient
# Wipes and irises: a picture made of parts of two others. A pixel whose two ends differ by less
# than PATCH_SPREAD grey levels cannot tell which end it shows; a picture is a patchwork of the
# two when what it differs from the nearer end, pixel by pixel, is at most PATCH_RESIDUAL of
# what the two ends differ by (a blend halfway between them scores 0.5).
PATCH_SPREAD = 24.0
PATCH_RESIDUAL = 0.25
PATCH_DONE = 0.97  # share of the pixels showing the new picture once the wipe is over
PATCH_START = 0.01  # a wipe has begun once this much more of the picture shows the new one
PATCH_END = 0.99  # and is over once this much of it does
PATCH_JUMP = 0.5  # no picture of a wipe shows this much more of the new picture than the one before


@dataclass(frozen=True)
class CutOptions:
    """How cuts are found.

    detector: "structure" (block structure, the default), or PySceneDetect's "content" or
        "adaptive" detector with its default threshold unless `threshold` is given.
    threshold: the smallest cross-window change (0..1) of a cut for "structure"; the
        detector's own score threshold for the PySceneDetect ones.
    contrast: a cut's change is at least this many times the local picture-to-picture change.
    min_shot_frames: no cut closer than this to the previous one (frames).
    transient_frames: a change that returns within this many distinct pictures is not a cut.
    occlusion_s: a flat picture that gives way to the old one within this time is an occlusion.
    max_transition_s: the longest dissolve or fade looked for.
    """

    detector: str = "structure"
    threshold: float | None = None
    contrast: float = 5.0
    min_shot_frames: int = 8
    transient_frames: int = 4
    occlusion_s: float = 2.0
    max_transition_s: float = 1.5

    def __post_init__(self) -> None:
        if self.detector not in DETECTORS:
            raise ValueError(f"unknown cut detector {self.detector!r}; choose one of {DETECTORS}")
        if self.min_shot_frames < 1 or self.transient_frames < 1:
            raise ValueError("min_shot_frames and transient_frames must be at least 1")

    @property
    def change_threshold(self) -> float:
        return 0.08 if self.threshold is None or self.detector != "structure" else self.threshold


@dataclass(frozen=True)
class Signature:
    """What a picture looks like, block by block (GRID blocks)."""

    mean: np.ndarray  # (blocks,) grey level
    contrast: np.ndarray  # (blocks,) standard deviation
    pattern: np.ndarray  # (blocks, BLOCK_PX**2) zero mean, unit variance
    blend: np.ndarray  # (24, 32) float32 grey, for the dissolve test
    # Derived once per picture, since every picture is compared with several others:
    texture: np.ndarray  # (blocks,) contrast as a share of FLAT_CONTRAST, at most 1
    informative: np.ndarray  # (blocks,) bool: textured or not black on its own

    @property
    def flat_share(self) -> float:
        return float(np.mean(self.contrast < FLAT_CONTRAST))

    @property
    def is_black(self) -> bool:
        return bool(np.all((self.contrast < FLAT_CONTRAST) & (self.mean < DARK_LEVEL)))


def signature(grey: np.ndarray) -> Signature:
    """The signature of a grey uint8 picture of any size."""
    gx, gy = GRID
    small = cv2.resize(grey, (gx * BLOCK_PX, gy * BLOCK_PX), interpolation=cv2.INTER_AREA)
    smooth = cv2.GaussianBlur(small.astype(np.float32), (0, 0), 0.8)  # grain and compression noise off the patterns
    blocks = smooth.reshape(gy, BLOCK_PX, gx, BLOCK_PX).transpose(0, 2, 1, 3).reshape(gx * gy, -1)
    mean = blocks.mean(axis=1)
    centred = blocks - mean[:, None]
    contrast = np.sqrt(np.einsum("ij,ij->i", centred, centred) / centred.shape[1])
    pattern = centred * (1.0 / np.maximum(contrast, 1e-3))[:, None]
    # The blend picture is a whole-number shrink of the block picture: the same area average
    # for a fraction of the cost of shrinking the grey picture again.
    blend = cv2.resize(small, BLEND_SIZE, interpolation=cv2.INTER_AREA).astype(np.float32)
    texture = np.minimum(contrast / FLAT_CONTRAST, 1.0)
    informative = (contrast > FLAT_CONTRAST / 2) | (mean > DARK_LEVEL)
    return Signature(mean, contrast, pattern, blend, texture, informative)


def picture_change(a: Signature, b: Signature) -> float:
    """How different two pictures are, 0 (same) .. 1 (nothing in common), flicker-blind."""
    correlation = np.einsum("ij,ij->i", a.pattern, b.pattern) * (1.0 / a.pattern.shape[1])
    pattern_change = 0.5 - 0.5 * correlation
    level_gap = np.abs(a.mean - b.mean)
    level_change = np.minimum(1.0, (level_gap + np.abs(a.contrast - b.contrast)) * (1.0 / LEVEL_SCALE))
    textured = np.minimum(a.texture, b.texture)
    change = level_change + textured * (pattern_change - level_change)
    # Blocks black in both pictures (letterbox and pillarbox bars) say nothing either way.
    informative = a.informative | b.informative | (level_gap > 8)
    values = np.sort(change[informative])
    if not values.size:
        return 0.0
    middle = values.size // 2  # the median, without np.median's per-call overhead
    return float(values[middle] if values.size % 2 else 0.5 * (values[middle - 1] + values[middle]))


def blend_residual(a: np.ndarray, b: np.ndarray, middle: np.ndarray, share: float) -> float:
    """How far `middle` is from the blend (1 - share) * a + share * b, relative to |a - b|."""
    spread = cv2.norm(a, b, cv2.NORM_L1)
    if spread < 1e-6 * a.size:
        return 1.0
    return cv2.norm(middle, cv2.addWeighted(a, 1.0 - share, b, share, 0.0), cv2.NORM_L1) / spread


@dataclass(frozen=True)
class Patchwork:
    """How a picture is made of parts of two others (a and b)."""

    share: float  # of the pixels that tell a from b, the share that show b
    residual: float  # what the picture differs from the nearer of a and b, relative to |a - b|
    shows_b: np.ndarray  # bool per pixel (False where a and b are alike)
    telling: np.ndarray  # bool per pixel: a and b differ here


def patchwork(a: np.ndarray, b: np.ndarray, middle: np.ndarray) -> Patchwork | None:
    """`middle` as a patchwork of the (blend-size, float32) pictures a and b; None when fewer
    than a fifth of the pixels tell a from b."""
    spread = cv2.absdiff(a, b)
    telling = spread > PATCH_SPREAD
    count = int(np.count_nonzero(telling))
    if count < 0.2 * telling.size:
        return None
    to_a, to_b = cv2.absdiff(middle, a), cv2.absdiff(middle, b)
    residual = float(cv2.min(to_a, to_b)[telling].sum() / spread[telling].sum())
    shows_b = (to_b < to_a) & telling
    return Patchwork(float(np.count_nonzero(shows_b)) / count, residual, shows_b, telling)


def patchwork_kind(middle: Patchwork) -> str:
    """"iris" when one picture's part is enclosed by the other's (touches no edge of the frame:
    a circle closing or opening), else "wipe" (an edge sweeping across). Look at a picture a
    quarter of the way in (an iris opening) or three quarters (one closing): by halfway a
    circle may already reach the top and bottom of a wide frame."""
    border = np.zeros_like(middle.telling)
    border[[0, -1], :] = True
    border[:, [0, -1]] = True
    telling = border & middle.telling
    if not telling.any():
        return "iris"
    on_b = float(np.count_nonzero(middle.shows_b & border)) / np.count_nonzero(telling)
    return "iris" if on_b < 0.1 or on_b > 0.9 else "wipe"


def _make_scenedetect(options: CutOptions):
    from scenedetect.detectors import AdaptiveDetector, ContentDetector

    # min_scene_len=0 turns PySceneDetect's own length filter off: ours applies after the
    # transient check, which needs every raw candidate.
    if options.detector == "adaptive":
        kwargs = {} if options.threshold is None else {"adaptive_threshold": options.threshold}
        return AdaptiveDetector(min_scene_len=0, **kwargs)
    kwargs = {} if options.threshold is None else {"threshold": options.threshold}
    return ContentDetector(min_scene_len=0, **kwargs)


@dataclass
class _Picture:
    frame: int
    sig: Signature
    step: float  # change from the picture before
    pixel_step: float = 0.0  # mean grey change of the blend picture from the picture before
    candidate: bool = False  # flagged by a PySceneDetect detector
    frames: int = 1  # frames it stays on screen (itself and the repeats after it)


class CutDetector:
    """Online cut detection: `push` every frame in order, then `finish`.

    `push` returns cuts as they are confirmed (a fraction of a second late, once the windows
    after them have been seen), so per-shot consumers can close a shot while decoding goes on.
    """

    def __init__(self, fps: Fraction, options: CutOptions = CutOptions()):
        self.options = options
        self._fps = fps
        self._after = options.transient_frames + 1
        self._before = 3
        rate = float(fps) if fps > 0 else 24.0
        self._max_blend = max(4, int(round(options.max_transition_s * rate)))
        self._occlusion = max(1, int(round(options.occlusion_s * rate)))
        self._held_frames = max(self._after, int(round(HELD_S * rate)))
        self._frames_seen = 0
        keep = max(2 * LOCAL_PICTURES + self._before + self._after, self._max_blend + 2)
        self._pictures: deque[_Picture] = deque(maxlen=keep + 1)
        self._next = 0  # position (in pictures pushed) of the next picture to decide on
        self._pushed = 0
        self._cuts: list[int] = []
        self._transitions: list[Transition] = []
        self._held: tuple[int, Signature, float] | None = None  # an occlusion candidate
        self._blend_until = -1  # pictures up to this frame belong to a transition already found
        self._blending: tuple[int, float] | None = None  # (first position, pixel change a picture)
        self._scenedetect = _make_scenedetect(options) if options.detector != "structure" else None

    @property
    def cuts(self) -> tuple[int, ...]:
        return tuple(self._cuts)

    @property
    def transitions(self) -> tuple[Transition, ...]:
        return tuple(self._transitions)

    def push(self, index: int, grey: np.ndarray, repeat: bool = False, bgr: np.ndarray | None = None) -> list[int]:
        """Feed frame `index` (grey uint8); `repeat` marks a frame that repeats the previous
        picture; `bgr` is needed by the PySceneDetect detectors only."""
        self._frames_seen = index + 1
        if repeat:  # nothing changed on screen: no candidate, and the windows stand still
            if self._pictures:
                self._pictures[-1].frames += 1
            # ...but a blend that stops changing has ended.
            return self._settle_blend(still=True) if self._blending is not None else []
        sig = signature(grey)
        step = picture_change(self._pictures[-1].sig, sig) if self._pictures else 0.0
        pixel_step = cv2.norm(sig.blend, self._pictures[-1].sig.blend, cv2.NORM_L1) / sig.blend.size \
            if self._pictures else 0.0
        if self._scenedetect is not None and bgr is None:
            raise ValueError(f"the {self.options.detector} detector needs the colour picture")
        self._pictures.append(_Picture(index, sig, step, pixel_step))
        if self._scenedetect is not None:
            from scenedetect import FrameTimecode

            found = self._scenedetect.process_frame(FrameTimecode(index, self._fps), bgr)
            # The adaptive detector names a frame a little in the past.
            flagged = {tc.frame_num for tc in found if tc.frame_num > 0}
            for earlier in self._pictures:
                earlier.candidate |= earlier.frame in flagged
        self._pushed += 1
        confirmed = self._find_transition()
        while self._next <= self._pushed - 1 - max(LOCAL_PICTURES, self._after):
            confirmed += self._decide(self._next)
            self._next += 1
        return confirmed

    def finish(self) -> list[int]:
        """Decide on what is still pending at the end of the video.

        A cut is a change that persists, and the last few pictures have too few after them to show
        that: a change among them (a flash or shake cut off by the end, a trim that keeps a frame
        or two of the next shot) stays in the shot it ends. As at the start, no shot is shorter
        than `min_shot_frames`."""
        confirmed = self._settle_blend(still=True) if self._blending is not None else []
        while self._next < self._pushed:
            confirmed += self._decide(self._next, ending=True)
            self._next += 1
        if self._held is not None and self._frames_seen - self._held[0] >= self._held_frames:
            # A flat picture (a colour card, a white-out) held on to the end uncovers nothing.
            confirmed += self._confirm(self._held[0])
            self._held = None
        return confirmed

    # -------------------------------------------------------------- hard cuts

    def _at(self, position: int) -> _Picture | None:
        offset = position - (self._pushed - len(self._pictures))
        return self._pictures[offset] if 0 <= offset < len(self._pictures) else None

    def _decide(self, position: int, ending: bool = False) -> list[int]:
        picture = self._at(position)
        if picture is None or position < 1:
            return []
        held, uncovered = self._check_held(position, picture)
        cut_short = ending and self._frames_seen - picture.frame < self.options.min_shot_frames
        if uncovered or cut_short or picture.frame <= self._blend_until or not self._is_cut(position, picture):
            return held
        change = self._cross_change(position)
        if picture.sig.flat_share >= 0.75 and not picture.sig.is_black:
            self._held = (picture.frame, self._at(position - 1).sig, change)  # maybe a body over the lens
            return held
        return held + self._confirm(picture.frame)

    def _is_cut(self, position: int, picture: _Picture) -> bool:
        threshold = self.options.change_threshold
        if self._scenedetect is not None:
            return picture.candidate and self._cross_change(position) >= 0.5 * picture.step
        if picture.step < threshold:
            return False
        steps = [p.step for k in range(position - LOCAL_PICTURES, position + LOCAL_PICTURES + 1)
                 if k != position and k >= 1 and (p := self._at(k)) is not None]
        local = float(np.median(steps)) if steps else 0.0
        if picture.step < self.options.contrast * (local + 0.01):
            return False  # the cross-window change is never above the step itself
        change = self._cross_change(position)
        return change >= threshold and change >= self.options.contrast * (local + 0.01)

    def _cross_change(self, position: int) -> float:
        """Smallest change between any picture before `position` and any from it on."""
        # The window before reaches back past a transient, so the end of a splash or a smear
        # (the old picture again) is never the start of a shot.
        # A picture held still for HELD_S or longer (a cut to black, a title card) is what was on
        # screen: the windows end at it, as a transient never lasts that long.
        first = position - self._before - self.options.transient_frames
        before = []
        for k in range(position - 1, first - 1, -1):
            if (p := self._at(k)) is None:
                break
            before.append(p)
            if p.frames >= self._held_frames:
                break
        after = []
        for k in range(position, position + self._after):
            if (p := self._at(k)) is None:
                break
            after.append(p)
            if p.frames >= self._held_frames:
                break
        return min(picture_change(a.sig, b.sig) for a in before for b in after)

    def _check_held(self, position: int, picture: _Picture) -> tuple[list[int], bool]:
        """Resolve a flat new picture held back as a possible occlusion: (cuts confirmed, whether
        `picture` is the old picture uncovered). The old picture back means an occlusion; a
        textured picture that is not the old one, or the time running out, means a cut."""
        if self._held is None:
            return [], False
        frame, old, change = self._held
        if picture_change(old, picture.sig) < 0.5 * change:
            log.debug("picture before frame %d is back at %d: an occlusion, not a cut", frame, picture.frame)
            self._held = None
            return [], True
        revealed = picture.sig.flat_share < 0.5 and \
            picture_change(self._at(position - 1).sig, picture.sig) >= self.options.change_threshold
        if picture.frame - frame >= self._occlusion or revealed:
            self._held = None
            return self._confirm(frame), False
        return [], False

    def _confirm(self, frame: int) -> list[int]:
        previous = self._cuts[-1] if self._cuts else 0
        if frame - previous < self.options.min_shot_frames:
            return []
        self._cuts.append(frame)
        return [frame]

    # -------------------------------------------------------------- dissolves and fades

    def _find_transition(self) -> list[int]:
        """Watch for a blend between two different pictures; once it has settled, report it."""
        if self._scenedetect is not None or len(self._pictures) < 8:
            return []
        if self._blending is not None:
            return self._settle_blend()
        end_position = self._pushed - 1
        end = self._at(end_position)
        if end.frame <= self._blend_until:
            return []
        for length in (24, 16, 12, 8, 6):
            start = self._at(end_position - length)
            if start is None or length > self._max_blend or start.frame <= self._blend_until:
                continue
            middle = self._at(end_position - length + length // 2)
            if blend_residual(start.sig.blend, end.sig.blend, middle.sig.blend, (length // 2) / length) >= 0.2:
                continue  # the cheap test first: the middle picture is no blend of the ends
            span = [self._at(end_position - length + k) for k in range(length + 1)]
            if self._is_blend(span):
                rate = float(np.median([p.pixel_step for p in span[1:]]))
                self._blending = (end_position - length, rate)
                return self._settle_blend()
        return self._find_wipe(end_position)

    def _find_wipe(self, end_position: int) -> list[int]:
        """A wipe or an iris that has just ended: over a span of pictures, the new picture takes
        over an ever larger part of the frame while the rest still shows the old one, and the
        last two pictures show only the new one. Cheap tests first: the picture before the
        newest already wholly new, the one after the span's first still wholly old."""
        end = self._at(end_position)
        for length in (24, 16, 12, 8):
            start = self._at(end_position - length)
            if start is None or length > self._max_blend or start.frame <= self._blend_until:
                continue
            a, b = start.sig.blend, end.sig.blend
            # Over and done: the last two steps are well under the pace a sweep from a to b over
            # the span would have (cheap, and it turns away nearly every picture of a moving shot).
            spread = cv2.norm(a, b, cv2.NORM_L1) / a.size
            if spread < 0.2 * PATCH_SPREAD:
                continue  # under a fifth of the pixels can tell a from b (see `patchwork`)
            if max(end.pixel_step, self._at(end_position - 1).pixel_step) >= 0.5 * spread / length:
                continue
            last = patchwork(a, b, self._at(end_position - 1).sig.blend)
            if last is None or last.share < PATCH_DONE or last.residual > PATCH_RESIDUAL:
                continue
            first = patchwork(a, b, self._at(end_position - length + 1).sig.blend)
            if first.share > 1.0 - PATCH_DONE or first.residual > PATCH_RESIDUAL:
                continue
            span = [self._at(end_position - length + k) for k in range(length + 1)]
            parts = [patchwork(a, b, p.sig.blend) for p in span]
            if self._is_wipe(span, parts):
                return self._record_wipe(span, parts)
        return []

    def _is_wipe(self, span: list[_Picture], parts: list[Patchwork]) -> bool:
        if any(p.residual > PATCH_RESIDUAL for p in parts):
            return False  # some picture is neither end (a blend, motion, a new picture)
        change = picture_change(span[0].sig, span[-1].sig)
        if change < 1.5 * self.options.change_threshold:
            return False  # the two ends are one shot
        new = span[-1].sig
        if new.flat_share >= 0.75 and not new.is_black:
            return False  # a body sliding over the lens; an iris closes to black
        # One front sweeps on: the new part halfway is one region (a thing moving across the
        # picture leaves a part behind it and takes one in front of it: two regions).
        middle = min(parts, key=lambda p: abs(p.share - 0.5))
        count, _, stats, _ = cv2.connectedComponentsWithStats(middle.shows_b.astype(np.uint8), connectivity=8)
        areas = stats[1:, cv2.CC_STAT_AREA]
        if count < 2 or areas.max() < 0.8 * areas.sum():
            return False
        shares = [p.share for p in parts]
        if any(later < earlier - 0.05 for earlier, later in zip(shares, shares[1:])):
            return False  # the new picture gives ground: no wipe
        if any(later - earlier > PATCH_JUMP for earlier, later in zip(shares, shares[1:])):
            return False  # most of it new in one picture: a hard cut, then motion in the new shot
        if sum(1.0 - PATCH_DONE < s < PATCH_DONE for s in shares) < 3:
            return False  # all at once: a hard cut, not a wipe
        for earlier, later in zip(parts, parts[1:]):
            kept = np.count_nonzero(earlier.shows_b & later.shows_b)
            if kept < 0.9 * np.count_nonzero(earlier.shows_b):
                return False  # the new part moves about instead of growing
        # Over: the last two pictures change at under half the sweep's pace. (Until then the part
        # still to come may only look like the new picture, as one palette over both shots does.)
        pace = float(np.median([p.pixel_step for p, s in zip(span, shares) if 1.0 - PATCH_DONE < s < PATCH_DONE]))
        if max(span[-1].pixel_step, span[-2].pixel_step) >= 0.5 * pace:
            return False
        # The picture from before the span is back: something uncovered the lens (a wing, a body).
        first = self._pushed - len(span)  # the position of span[0]
        return not any(picture_change(p.sig, new) < 0.5 * change
                       for k in range(first - 1, self._pushed - len(self._pictures) - 1, -1)
                       if (p := self._at(k)) is not None)

    def _record_wipe(self, span: list[_Picture], parts: list[Patchwork]) -> list[int]:
        """The wipe runs from the first picture with a little more of the new one than the
        span's second picture (the old shot, give or take its own motion) to the first that is
        nearly all new. Read on the small blend pictures, either end may be a frame out where
        the sweep starts or ends on a sliver (an iris at its widest or narrowest)."""
        baseline = parts[1].share
        first = next(k for k, p in enumerate(parts) if p.share > baseline + PATCH_START)
        last = next(k for k, p in enumerate(parts) if p.share >= PATCH_END)
        quarter = min(parts[first:last], key=lambda p: abs(p.share - 0.25))
        three_quarters = min(parts[first:last], key=lambda p: abs(p.share - 0.75))
        kind = "iris" if "iris" in (patchwork_kind(quarter), patchwork_kind(three_quarters)) else "wipe"
        return self._record_transition(kind, span[first].frame, span[last].frame)

    def _is_blend(self, span: list[_Picture]) -> bool:
        # The middle picture has passed the blend test already (`_find_transition`).
        a, b = span[0].sig, span[-1].sig
        n = len(span) - 1
        change = picture_change(a, b)
        if change < 1.5 * self.options.change_threshold:
            return False
        if max(p.step for p in span[1:]) >= 0.5 * change:
            return False  # a hard change inside: a cut, not a blend
        return all(blend_residual(a.blend, b.blend, span[k].sig.blend, k / n) < 0.2 for k in (n // 4, 3 * n // 4))

    def _settle_blend(self, still: bool = False) -> list[int]:
        """The blend runs over the pictures that change at about its pace; it is over once two
        pictures in a row change at less than half that pace, the picture holds still (`still`:
        repeated frames), or the longest span has passed."""
        first_position, rate = self._blending
        newest = self._pushed - 1

        def fast(position: int) -> bool:
            return self._at(position).pixel_step >= 0.5 * rate

        settled = still or not (fast(newest - 1) or fast(newest))
        if not settled and self._at(newest).frame - self._at(first_position).frame < self._max_blend:
            return []
        self._blending = None
        start = first_position + 1
        while start < newest and not fast(start):
            start += 1
        while start - 1 > 0 and (p := self._at(start - 1)) is not None and fast(start - 1) \
                and p.frame > self._blend_until:
            start -= 1
        end = newest
        while end > start and not fast(end):
            end -= 1
        # `end` is the first picture wholly of the new shot: the last one that still moved at
        # the blend's pace.
        before = self._at(start - 1) or self._at(start)  # the ring may have let the first one go
        return self._record_blend(before, self._at(start).frame, self._at(end))

    def _record_blend(self, before: _Picture, start_frame: int, after: _Picture) -> list[int]:
        """Transition [start_frame, after.frame): `before` shows the old shot, `after` the new."""
        kind = "fade_out" if after.sig.is_black else "fade_in" if before.sig.is_black else "dissolve"
        return self._record_transition(kind, start_frame, after.frame)

    def _record_transition(self, kind: str, start_frame: int, end_frame: int) -> list[int]:
        """Transition [start_frame, end_frame); its cut goes to its middle frame."""
        self._transitions.append(Transition(kind, start_frame, end_frame))
        self._blend_until = self._at(self._pushed - 1).frame
        log.debug("%s over frames [%d, %d)", kind, start_frame, end_frame)
        if any(start_frame <= cut < end_frame for cut in self._cuts):
            return []  # a cut already confirmed inside it is this transition's (the plan centres it)
        return self._confirm(start_frame + (end_frame - start_frame) // 2)


def shots_from_cuts(cuts: tuple[int, ...] | list[int], frame_count: int) -> tuple[Shot, ...]:
    """Shots [start, end) between sorted cut frames; the first starts at 0, the last ends at frame_count."""
    bounds = [0, *sorted(c for c in cuts if 0 < c < frame_count), frame_count]
    return tuple(Shot(i, a, b) for i, (a, b) in enumerate(zip(bounds, bounds[1:])))
