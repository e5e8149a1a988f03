"""One decode pass over a video, shared by every per-frame consumer.

Each decoded picture is shrunk once to a small analysis image (about 256 px wide, BGR, as
PySceneDetect expects) and a smaller grey image for motion. For 8-bit 4:2:0 video (nearly all
delivery files) the shrink reads the Y/U/V planes in place, which costs a fraction of a
full-size colour conversion; other pixel formats go through libswscale. The grey image is the
luma plane itself for every YUV format (10-bit and 4:2:2 masters too), so a film reads the same
from a ProRes master as from its H.264 copy. Keyframes for
captioners are converted at their own, larger size only for the few frames that get sampled.

Telecined film and interlaced video weave two moments into one frame, line by line. Once a few
frames of a video are combed, its grey pictures are read from one field (every other line), so
each is one whole moment; progressive video is read whole. (A progressive picture striped with
lines one pixel apart over a patch of it reads as combed too; its fields then show the same
moment, so reading one of them loses only vertical detail the small grey image does not keep.)
"""
from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from queue import Full, Queue
from typing import TypeVar

import av
import cv2
import numpy as np

from vision.errors import VideoUnreadable
from vision.types import ShotKeyframes

log = logging.getLogger(__name__)

ANALYSIS_WIDTH = 256  # px, the width PySceneDetect's auto-downscale aims for
KEYFRAME_SHORT_SIDE = 224  # px, what CLIP-style image encoders take
_FAST_FORMATS = ("yuv420p", "yuvj420p")
READ_AHEAD = 8  # decoded pictures a worker thread keeps ready for the analysis
# A frame is combed when over COMB_SHARE of the points read zig-zag by more than COMB_LEVELS
# grey levels (see `is_combed`): telecined cartoons measure 5 to 90 in a thousand on the frames
# that mix fields, progressive ones under 0.2.
COMB_COLUMNS = 16
COMB_LEVELS = 20
COMB_SHARE = 0.002
COMBED_FRAMES = 3  # combed frames after which a video is read a field at a time
# Until a video is found combed, one frame in COMB_CHECK_EVERY is checked; after the first combed
# frame, every frame (telecine combs two frames in five, so the next ones come within a few frames).
COMB_CHECK_EVERY = 4
BOTTOM_FIRST_ORDERS = (3, 4)  # FFmpeg's AV_FIELD_BB and AV_FIELD_TB: the bottom field is shown first
T = TypeVar("T")


@dataclass(frozen=True)
class DecodedFrame:
    """One picture of the pass: its index, the decoder's frame, and the small images."""

    index: int
    frame: av.VideoFrame
    small_bgr: np.ndarray | None  # (h, w, 3) uint8, about ANALYSIS_WIDTH wide; None when not asked for
    grey: np.ndarray  # (h/2, w/2) uint8, for motion


def scaled_size(width: int, height: int, target_width: int) -> tuple[int, int]:
    """(w, h) no wider than `target_width`, aspect kept, both even and at least 2."""
    scale = min(1.0, target_width / width)
    return max(2, int(round(width * scale / 2)) * 2), max(2, int(round(height * scale / 2)) * 2)


def _plane(frame: av.VideoFrame, i: int) -> np.ndarray:
    plane = frame.planes[i]
    return np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, :plane.width]


@functools.lru_cache(maxsize=None)
def _luma_shift(format_name: str) -> int | None:
    """Bits to drop from the samples of the format's first plane to get 8-bit luma; None when that
    plane is not luma alone in little-endian samples of up to 16 bits (RGB, packed YUV)."""
    fmt = av.VideoFormat(format_name)
    luma = fmt.components[0]
    if (fmt.is_rgb or fmt.is_big_endian or not luma.is_luma or luma.bits > 16
            or any(c.plane == 0 for c in fmt.components[1:])):
        return None
    if luma.bits <= 8:
        return 0
    # p010, p210 and the like keep each sample in the top bits of its 16; yuv420p10le in the bottom.
    return 8 if format_name[:1] == "p" and format_name[1:2].isdigit() else luma.bits - 8


def _luma(frame: av.VideoFrame) -> np.ndarray | None:
    """The frame's luma plane as 8-bit (h, w): in place when 8-bit, shifted down when 9 to 16; None
    for formats without a luma plane of their own, which go through libswscale."""
    shift = _luma_shift(frame.format.name)
    if shift is None:
        return None
    if shift == 0:   # 8-bit: wider samples always drop at least one bit
        return _plane(frame, 0)
    plane = frame.planes[0]
    wide = np.frombuffer(plane, np.uint16).reshape(plane.height, plane.line_size // 2)[:, :plane.width]
    return (wide >> shift).astype(np.uint8)


def _shrink(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    # Bilinear to twice the target then a 2x box filter: close to a true area average for a
    # fraction of the cost of INTER_AREA at non-integer factors.
    w, h = size
    if image.shape[1] > 2 * w:
        image = cv2.resize(image, (2 * w, 2 * h), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)


def _shrink_grey(luma: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The grey picture at `size` straight from the luma plane, by the cheapest of near-equal
    ways: from a big source, as `_shrink` to twice the size and a 2x box filter; from a source
    less than 8 times as wide, a 2x box filter first, so the bilinear step never draws a
    picture nearly as big as the source (at 640 px that step alone cost twice the rest)."""
    w, h = size
    if luma.shape[1] >= 8 * w:
        return cv2.resize(_shrink(luma, (2 * w, 2 * h)), size, interpolation=cv2.INTER_AREA)
    if luma.shape[1] >= 4 * w:
        luma = cv2.resize(luma, (luma.shape[1] // 2, luma.shape[0] // 2), interpolation=cv2.INTER_AREA)
    return _shrink(luma, size)


def _yuv_to_bgr(frame: av.VideoFrame, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(BGR, Y) at `size` straight from the planes of an 8-bit 4:2:0 frame."""
    y = _shrink(_plane(frame, 0), size)
    # Colour is read at half the size and scaled back up: hue needs far less detail than luma.
    half = (max(1, size[0] // 2), max(1, size[1] // 2))
    uv = [cv2.resize(cv2.resize(_plane(frame, i), half, interpolation=cv2.INTER_NEAREST), size,
                     interpolation=cv2.INTER_LINEAR) for i in (1, 2)]
    return cv2.cvtColor(cv2.merge([y, *uv]), cv2.COLOR_YUV2BGR), y


def is_combed(luma: np.ndarray) -> bool:
    """True when the picture interleaves two moments, line by line: a frame of telecined film
    (24 pictures a second spread over 30 frames by mixing fields) or of interlaced video with
    motion. COMB_COLUMNS columns spread over the width are read: in a combed picture, moving
    edges are zig-zags, where each line stands out by more than COMB_LEVELS from both lines
    around it, in opposite directions on consecutive lines. A progressive picture has such
    points only on lines one pixel thin: under a tenth of COMB_SHARE on film scans and cartoons."""
    columns = luma[:, ::max(1, luma.shape[1] // COMB_COLUMNS)].astype(np.int16)
    up, down = columns[1:-1] - columns[:-2], columns[1:-1] - columns[2:]
    peak = ((up > COMB_LEVELS) & (down > COMB_LEVELS)) | ((up < -COMB_LEVELS) & (down < -COMB_LEVELS))
    return bool(np.count_nonzero(peak[:-1] & peak[1:]) > COMB_SHARE * peak.size)


def small_images(frame: av.VideoFrame, size: tuple[int, int], colour: bool = True,
                 one_field: bool = False, bottom_first: bool = False,
                 luma: np.ndarray | None = None) -> tuple[np.ndarray | None, np.ndarray]:
    """(small BGR at `size`, grey at half of `size`) from one decoded frame; no BGR picture
    (None) unless `colour` or the format has no luma plane of its own, which saves most of the
    conversion for grey-only consumers.
    `one_field` reads the grey picture from the frame's bottom field (the odd lines): in the
    usual top-field-first order it is the later of the two moments a frame holds, so with
    telecined film it shows each picture from the first frame that holds it. `bottom_first`
    (a stream flagged bottom field first) reads the top field instead, the later one there.
    `luma` is the frame's 8-bit luma when the caller has it already (`_luma`)."""
    grey_size = (size[0] // 2, size[1] // 2)
    luma = None if colour else luma if luma is not None else _luma(frame)
    if luma is not None:
        return None, _shrink_grey(luma[int(not bottom_first)::2] if one_field else luma, grey_size)
    if frame.format.name in _FAST_FORMATS:
        bgr, y = _yuv_to_bgr(frame, size)
    else:
        bgr = frame.to_ndarray(width=size[0], height=size[1], format="bgr24", interpolation="AREA")
        y = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    return bgr, cv2.resize(y, grey_size, interpolation=cv2.INTER_AREA)


def decode(path: str | Path, analysis_width: int = ANALYSIS_WIDTH, colour: bool = True) -> Iterator[DecodedFrame]:
    """Decode every frame of the first video stream once, in display order; `colour` False
    leaves `small_bgr` out (None) for YUV and grey video.

    A worker thread decodes and shrinks up to READ_AHEAD pictures ahead of the consumer: both
    release the GIL, so the decoder keeps working while the caller analyses the picture before.

    Raises:
        VideoUnreadable: the stream breaks off with a decoding error.
    """
    with av.open(str(path), metadata_errors="ignore") as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame + slice threads
        # The pictures are read at a fifth of their size or less, where the deblocking filter's
        # work (smoothing 8 px block edges) cannot be seen; skipping it saves about a fifth of
        # the decoding time.
        stream.codec_context.options = {**stream.codec_context.options, "skip_loop_filter": "all"}
        size = scaled_size(stream.codec_context.width, stream.codec_context.height, analysis_width)
        bottom_first = getattr(stream.codec_context, "field_order", 0) in BOTTOM_FIRST_ORDERS
        yield from read_ahead(_decoded(path, container, stream, size, colour, bottom_first), READ_AHEAD)


def _decoded(path, container, stream, size: tuple[int, int], colour: bool,
             bottom_first: bool = False) -> Iterator[DecodedFrame]:
    index, combed = 0, 0
    try:
        for frame in container.decode(stream):
            # Once a few frames are combed (telecined film, interlaced video), every grey picture
            # is read from one field: each field is one whole moment, and with telecined film
            # the field of a mixed frame repeats the picture of the frame before or after, as
            # 24p shown at 30 fps by repeated frames does. Reading all frames the same way keeps
            # a repeated picture identical to the one it repeats.
            one_field = combed >= COMBED_FRAMES
            check = not one_field and not colour and (combed or index % COMB_CHECK_EVERY == 0)
            luma = _luma(frame) if check else None
            if luma is not None:
                combed += is_combed(luma)
            bgr, grey = small_images(frame, size, colour, one_field, bottom_first, luma)
            yield DecodedFrame(index, frame, bgr, grey)
            index += 1
    except av.error.FFmpegError as exc:
        raise VideoUnreadable(f"{path} stops decoding at frame {index} ({exc.strerror}); the file is "
                              "damaged or truncated, so re-export it.") from exc


def read_ahead(items: Iterator[T], depth: int) -> Iterator[T]:
    """The items of `items`, produced by a worker thread at most `depth` ahead of the consumer.
    An error in the worker is raised here; a consumer that stops early stops the worker (it
    finishes the item in hand) before this generator closes."""
    queue: Queue = Queue(depth)
    stop = threading.Event()
    done = object()

    def hand_over(item) -> bool:
        while not stop.is_set():
            try:
                queue.put(item, timeout=0.1)
                return True
            except Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not hand_over((item, None)):
                    return
        except BaseException as exc:  # raised again in the consumer's thread
            hand_over((done, exc))
            return
        hand_over((done, None))

    worker = threading.Thread(target=work, name="decode", daemon=True)
    worker.start()
    try:
        while True:
            item, error = queue.get()
            if item is done:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        worker.join()


def keyframe_image(frame: av.VideoFrame, short_side: int, rotation: int) -> np.ndarray:
    """RGB uint8 picture with its short side `short_side` px (never enlarged), turned upright."""
    w, h = frame.width, frame.height
    scale = min(1.0, short_side / min(w, h))
    size = scaled_size(w, h, int(round(w * scale)))
    if frame.format.name in _FAST_FORMATS:
        rgb = cv2.cvtColor(_yuv_to_bgr(frame, size)[0], cv2.COLOR_BGR2RGB)
    else:
        rgb = frame.to_ndarray(width=size[0], height=size[1], format="rgb24", interpolation="AREA")
    turns = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


class EncodedImage:
    """An RGB uint8 picture kept JPEG-compressed in memory; `np.asarray(image)` decodes it.

    Keyframes live as long as the analysis: raw, three per shot of a two-hour film would take
    over a gigabyte; compressed they take a few percent of that.
    """

    __slots__ = ("_data", "shape")
    dtype = np.dtype(np.uint8)
    ndim = 3

    def __init__(self, rgb: np.ndarray, quality: int = 90):
        ok, buffer = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
        assert ok, f"JPEG encoding failed for an image of shape {rgb.shape}"
        self._data = buffer.tobytes()
        self.shape = tuple(rgb.shape)

    @property
    def nbytes(self) -> int:
        return len(self._data)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        bgr = cv2.imdecode(np.frombuffer(self._data, np.uint8), cv2.IMREAD_COLOR)
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        return rgb if dtype is None else rgb.astype(dtype)

    def __repr__(self) -> str:
        return f"EncodedImage(shape={self.shape}, {self.nbytes} bytes)"


class KeyframeSampler:
    """Keeps a few evenly spread pictures of the current shot; memory stays bounded.

    Candidates are taken every `stride` frames from the shot start (at first `first_stride`,
    a few per second, since neighbouring frames look alike); when more than `capacity`
    pile up, every other one is dropped and the stride doubles. When the shot closes, the
    `per_shot` candidates nearest to evenly spaced positions are kept, JPEG-compressed
    (`EncodedImage`; `np.asarray` gives the H x W x 3 uint8 RGB array).

    A cut is confirmed a few frames after it happens, so the first frames of a new shot have
    already gone by on the old shot's grid. When none of them was taken, the next frame offered
    is taken whatever the grid: a shot shorter than the stride (a quick cut at 50 or 60 fps)
    still gets a picture.
    """

    def __init__(self, per_shot: int, make_image: Callable[[av.VideoFrame], np.ndarray], first_stride: int = 1):
        self.per_shot = per_shot
        self.capacity = max(4, 4 * per_shot)
        self._make_image = make_image
        self._first_stride = max(1, first_stride)  # frames between the first candidates of a shot
        self._start = 0
        self._stride = self._first_stride
        self._candidates: list[tuple[int, np.ndarray]] = []
        self._closed: list[tuple[int, int, list[tuple[int, EncodedImage]]]] = []  # (start, end, picks)
        self._take_next = False  # the current shot has no candidate yet and its grid frames went by

    def offer(self, index: int, frame: av.VideoFrame) -> None:
        if self.per_shot <= 0 or ((index - self._start) % self._stride and not self._take_next):
            return
        self._take_next = False
        self._candidates.append((index, self._make_image(frame)))
        if len(self._candidates) > self.capacity:
            self._stride *= 2
            self._candidates = [c for c in self._candidates if (c[0] - self._start) % self._stride == 0]

    def close_shot(self, cut_frame: int) -> None:
        """The shot that started at the last cut ends before `cut_frame` (exclusive)."""
        before = [c for c in self._candidates if c[0] < cut_frame]
        after = [c for c in self._candidates if c[0] >= cut_frame]
        picks = [(index, EncodedImage(image)) for index, image in self._pick(before, self._start, cut_frame)]
        self._closed.append((self._start, cut_frame, picks))
        self._start, self._stride = cut_frame, self._first_stride
        # Frames seen between the cut and its confirmation that fall on the new shot's grid.
        self._candidates = [c for c in after if (c[0] - cut_frame) % self._stride == 0]
        self._take_next = not self._candidates

    def _pick(self, candidates, start: int, end: int) -> list[tuple[int, np.ndarray]]:
        if len(candidates) <= self.per_shot:
            return candidates
        chosen: set[int] = set()
        for k in range(self.per_shot):
            target = start + (k + 0.5) * (end - start) / self.per_shot
            free = [i for i in range(len(candidates)) if i not in chosen]
            chosen.add(min(free, key=lambda i: abs(candidates[i][0] - target)))
        return [candidates[i] for i in sorted(chosen)]

    def finish(self, frame_count: int) -> tuple[ShotKeyframes, ...]:
        self.close_shot(frame_count)
        return tuple(ShotKeyframes(i, tuple(c[0] for c in picks), tuple(c[1] for c in picks))
                     for i, (_, _, picks) in enumerate(self._closed))
