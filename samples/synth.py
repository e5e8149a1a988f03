"""Synthetic cartoon-like test videos with exact ground truth.

Each shot has its own palette and set (sky, floor, props) and a character with eyes that walks
across it. Planted on known frames: hard cuts between shots, flashes (one or two near-white
frames), impacts (an object falls, lands on the floor on the impact frame and the picture shakes)
and bursts of fast motion (the character dashes across the screen). The ground truth is written
as JSON next to the video, so detectors can be checked frame by frame.

    python -m samples.synth out.mp4 --duration 6 --width 320 --height 180 --fps 24000/1001

Constant-rate videos are encoded by the ffmpeg binary shipped with imageio-ffmpeg; the
variable-frame-rate variant is encoded with PyAV so every frame gets an explicit timestamp.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from dubber.atomic import atomic_output, atomic_write_text

log = logging.getLogger(__name__)

AUDIO_SAMPLE_RATE = 48000  # Hz
VFR_TIME_BASE = Fraction(1, 90000)  # seconds per tick, the usual MPEG clock
# Frame durations (ticks of VFR_TIME_BASE) cycled by the VFR variant: 1/24, 1/30, 1/60, 1/25 s.
VFR_DURATIONS_TICKS = (3750, 3000, 1500, 3600, 3000, 3750, 1500)
SHAKE_FRAMES = 6  # how long the picture shakes after an impact
FALL_FRAMES = 7  # frames a falling object is visible before it lands
FLASH_LEVELS = (0.88, 0.6)
DASH_SPEED = 0.07  # of the width per frame: a 12-frame dash crosses about 70 % of the screen  # blend towards white of a flash's first and second frame
MIN_SHOT_FRAMES = 40  # shorter shots cannot hold a planted event with clean margins


@dataclass(frozen=True)
class SynthSpec:
    """What to synthesise. `shot_frames` fixes every shot's length; empty means derive from
    `duration_s` (shots of about `shot_s` seconds, varied by the seed)."""

    width: int = 320
    height: int = 180
    fps: Fraction = Fraction(24000, 1001)
    duration_s: float = 6.0
    shot_s: float = 2.0
    shot_frames: tuple[int, ...] = ()
    audio: bool = True
    vfr: bool = False
    seed: int = 0
    crf: int = 20
    preset: str = "veryfast"
    grain: float = 0.0  # film grain, standard deviation in 8-bit levels; gives a realistic bitrate

    def __post_init__(self) -> None:
        if self.width % 2 or self.height % 2 or self.width < 64 or self.height < 36:
            raise ValueError(f"size must be even and at least 64x36, got {self.width}x{self.height}")
        if self.fps <= 0:
            raise ValueError(f"fps must be positive, got {self.fps}")
        if any(n < MIN_SHOT_FRAMES for n in self.shot_frames):
            raise ValueError(f"every shot needs at least {MIN_SHOT_FRAMES} frames: {self.shot_frames}")


@dataclass(frozen=True)
class PlantedEvent:
    kind: str  # "impact" | "flash" | "whoosh" (a dash)
    frame: int  # absolute frame index where the event lands
    end_frame: int  # exclusive; frame + 1 for instantaneous events


@dataclass
class _ShotScript:
    """Everything needed to draw one shot, in shot-relative frames."""

    index: int
    start_frame: int
    length: int
    palette: tuple[tuple[int, ...], ...]  # sky top, sky bottom, floor, body, prop (RGB)
    set_seed: tuple[int, ...]  # the set (clouds, buildings) is drawn from this seed when the shot starts
    x0: float
    speed: np.ndarray  # (length,) horizontal speed in px/frame
    impacts: list[tuple[int, float]] = field(default_factory=list)  # (frame, x) relative
    flashes: list[tuple[int, int]] = field(default_factory=list)  # (frame, n_frames) relative


# ----------------------------------------------------------------------------- planning


def shot_lengths(spec: SynthSpec) -> tuple[int, ...]:
    if spec.shot_frames:
        return spec.shot_frames
    total = max(MIN_SHOT_FRAMES, round(spec.duration_s * spec.fps))
    per_shot = max(MIN_SHOT_FRAMES, round(spec.shot_s * spec.fps))
    n_shots = max(1, total // per_shot)
    rng = np.random.default_rng(spec.seed)
    weights = rng.uniform(0.8, 1.2, n_shots)
    lengths = np.maximum(MIN_SHOT_FRAMES, np.floor(weights / weights.sum() * total)).astype(int)
    lengths[-1] += total - int(lengths.sum())
    if lengths[-1] < MIN_SHOT_FRAMES:  # rounding starved the last shot: fold it into the previous
        lengths[-2] += lengths[-1]
        lengths = lengths[:-1]
    return tuple(int(n) for n in lengths)


def _plan_shot_events(index: int, length: int) -> list[tuple[str, int, int]]:
    """(kind, start, end) per event, shot-relative; patterns rotate so every kind appears."""
    at = lambda frac: int(round(length * frac))  # noqa: E731
    pattern = index % 4
    if pattern == 0:
        return [("flash", at(0.45), at(0.45) + 1)]
    if pattern == 1:
        return [("whoosh", at(0.2), at(0.2) + _dash_frames(length)), ("impact", at(0.72), at(0.72) + 1)]
    if pattern == 2:
        return [("impact", at(0.35), at(0.35) + 1), ("flash", at(0.75), at(0.75) + 2)]
    return [("whoosh", at(0.35), at(0.35) + _dash_frames(length))]


def _dash_frames(shot_length: int) -> int:
    return max(10, min(12, shot_length // 4))


def _palette(index: int, seed: int) -> tuple[tuple[int, ...], ...]:
    """Sky top, sky bottom, floor, body, prop colours (RGB) for one shot."""
    hue = (index * 0.37 + seed * 0.113) % 1.0
    value = 0.75 + 0.2 * ((index * 7 + seed) % 3) / 2

    def hsv(h: float, s: float, v: float) -> tuple[int, int, int]:
        pixel = np.uint8([[[int(h % 1.0 * 180), int(s * 255), int(v * 255)]]])
        return tuple(int(c) for c in cv2.cvtColor(pixel, cv2.COLOR_HSV2RGB)[0, 0])

    return (hsv(hue, 0.55, value), hsv(hue, 0.35, min(1.0, value + 0.1)), hsv(hue + 0.08, 0.7, 0.45),
            hsv(hue + 0.5, 0.8, 0.95), hsv(hue + 0.25, 0.75, 0.35))


def _draw_set(width: int, height: int, margin: int, palette: tuple, rng: np.random.Generator) -> np.ndarray:
    sky_top, sky_bottom, floor_rgb = palette[0], palette[1], palette[2]
    h, w = height + 2 * margin, width + 2 * margin
    ramp = np.linspace(0.0, 1.0, h)[:, None, None]
    img = ((1 - ramp) * np.array(sky_top) + ramp * np.array(sky_bottom)).astype(np.uint8)
    img = np.ascontiguousarray(np.broadcast_to(img, (h, w, 3)))
    floor_y = margin + int(height * 0.78)
    img[floor_y:] = floor_rgb
    stripe = tuple(int(c * 0.7) for c in floor_rgb)
    for x in range(0, w, max(8, width // 12)):  # floor boards make camera shake visible
        cv2.line(img, (x, floor_y), (x - width // 10, h), stripe, max(1, width // 160))
    for _ in range(4):  # clouds and hills
        cx, cy = int(rng.uniform(0, w)), int(rng.uniform(margin, floor_y - height * 0.2))
        radius = int(rng.uniform(0.05, 0.1) * width)
        shade = tuple(int(min(255, c * rng.uniform(1.05, 1.3))) for c in sky_bottom)
        cv2.ellipse(img, (cx, cy), (radius * 2, radius), 0, 0, 360, shade, -1, cv2.LINE_AA)
    for _ in range(3):  # buildings / trees standing on the floor
        x = int(rng.uniform(0, w))
        bw, bh = int(rng.uniform(0.05, 0.1) * width), int(rng.uniform(0.15, 0.35) * height)
        shade = tuple(int(c * rng.uniform(0.5, 0.8)) for c in sky_top)
        cv2.rectangle(img, (x, floor_y - bh), (x + bw, floor_y), shade, -1)
    return img


def _speed_profile(length: int, events: list[tuple[str, int, int]], width: int, rng) -> np.ndarray:
    base = width * rng.uniform(0.004, 0.007) * rng.choice([-1.0, 1.0])
    speed = np.full(length, base)
    for kind, start, end in events:
        if kind != "whoosh":
            continue
        fast = np.sign(base) * DASH_SPEED * width
        speed[start:end] = fast
        # Ease in and out over two frames: a dash that stops dead would read as an impact.
        speed[start + 1] = speed[end - 2] = base + (fast - base) * 0.66
        speed[start] = speed[end - 1] = base + (fast - base) * 0.4
    return speed


def _start_x(speed: np.ndarray, events: list[tuple[str, int, int]], width: int, radius: int, rng) -> float:
    """Where the character starts, chosen so a dash stays on screen from start to end."""
    dash = next((start for kind, start, _ in events if kind == "whoosh"), None)
    if dash is None:
        return float(rng.uniform(0.2, 0.8) * width)
    at_dash = 0.12 * width if speed[dash] > 0 else 0.88 * width
    return at_dash + 2 * radius - float(speed[:dash].sum())  # _character_x draws at x - 2 radius


def _script_shots(spec: SynthSpec) -> tuple[list[_ShotScript], list[PlantedEvent]]:
    scripts: list[_ShotScript] = []
    planted: list[PlantedEvent] = []
    start = 0
    for index, length in enumerate(shot_lengths(spec)):
        rng = np.random.default_rng((spec.seed, index))
        palette = _palette(index, spec.seed)
        events = _plan_shot_events(index, length)
        speed = _speed_profile(length, events, spec.width, rng)
        script = _ShotScript(index, start, length, palette, (spec.seed, index, 1),
                             _start_x(speed, events, spec.width, _radius(spec.height), rng), speed)
        for kind, ev_start, ev_end in events:
            if kind == "impact":
                script.impacts.append((ev_start, float(rng.uniform(0.15, 0.85) * spec.width)))
            elif kind == "flash":
                script.flashes.append((ev_start, ev_end - ev_start))
            planted.append(PlantedEvent(kind, start + ev_start, start + ev_end))
        scripts.append(script)
        start += length
    return scripts, planted


# ----------------------------------------------------------------------------- drawing


def _radius(height: int) -> int:
    return max(6, height // 9)


def _shake_amplitude(width: int) -> int:
    return max(3, int(width * 0.03))


def _draw_character(img: np.ndarray, center: tuple[int, int], radius: int, rgb, look: float, t: int) -> None:
    cx, cy = center
    outline = max(1, radius // 8)
    cv2.ellipse(img, (cx, cy), (radius, int(radius * 1.2)), 0, 0, 360, rgb, -1, cv2.LINE_AA)
    cv2.ellipse(img, (cx, cy), (radius, int(radius * 1.2)), 0, 0, 360, (20, 20, 20), outline, cv2.LINE_AA)
    eye_r = max(2, radius // 3)
    blink = t % 40 in (0, 1)  # characters blink now and then
    for side in (-1, 1):
        ex, ey = cx + side * radius // 2 + int(look * radius * 0.15), cy - radius // 3
        if blink:
            cv2.line(img, (ex - eye_r, ey), (ex + eye_r, ey), (20, 20, 20), outline)
            continue
        cv2.circle(img, (ex, ey), eye_r, (255, 255, 255), -1, cv2.LINE_AA)
        cv2.circle(img, (ex + int(look * eye_r * 0.5), ey), max(1, eye_r // 2), (10, 10, 10), -1, cv2.LINE_AA)
    cv2.ellipse(img, (cx, cy + radius // 3), (radius // 2, radius // 4), 0, 0, 180, (60, 10, 10), outline + 1)
    step = int(np.sin(t * 0.6) * radius * 0.2)  # walking feet
    for side, swing in ((-1, step), (1, -step)):
        foot = (cx + side * radius // 2 + swing, cy + int(radius * 1.35))
        cv2.ellipse(img, foot, (radius // 3, radius // 6), 0, 0, 360, (30, 30, 30), -1, cv2.LINE_AA)


def _character_x(script: _ShotScript, t: int, width: int, radius: int) -> int:
    travelled = script.x0 + float(script.speed[:t + 1].sum())  # frame t already shows step t
    span = width + 4 * radius  # wrap off-screen so the character never jumps in view
    return int(travelled % span) - 2 * radius


def _draw_props(canvas: np.ndarray, script: _ShotScript, t: int, floor_y: int, margin: int, width: int) -> None:
    size = max(4, width // 22)
    for impact_t, x in script.impacts:
        if t < impact_t - FALL_FRAMES:
            continue
        fall = max(0, impact_t - t) / FALL_FRAMES  # 1 at the top of the fall, 0 on landing
        bottom = floor_y - int(fall * fall * (floor_y + 2 * size))
        squash = 0.6 if 0 <= t - impact_t < 3 else 1.0  # cartoon squash on landing
        ry, rx = int(size * squash), int(size / squash)
        center = (int(x) + margin, bottom - ry)
        cv2.ellipse(canvas, center, (rx, ry), 0, 0, 360, script.palette[4], -1, cv2.LINE_AA)
        cv2.ellipse(canvas, center, (rx, ry), 0, 0, 360, (15, 15, 15), max(1, size // 6), cv2.LINE_AA)


def _shake_offset(script: _ShotScript, t: int, width: int) -> tuple[int, int]:
    for impact_t, _ in script.impacts:
        k = t - impact_t
        if 0 <= k < SHAKE_FRAMES:
            amp = _shake_amplitude(width) * (1.0 - k / SHAKE_FRAMES)
            sign = 1 if k % 2 == 0 else -1
            return int(round(sign * amp)), int(round(-sign * amp * 0.6))
    return 0, 0


def _flash_level(script: _ShotScript, t: int) -> float:
    for flash_t, n_frames in script.flashes:
        if 0 <= t - flash_t < n_frames:
            return FLASH_LEVELS[t - flash_t]
    return 0.0


def draw_set(script: _ShotScript, width: int, height: int) -> np.ndarray:
    """The shot's set (H + 2m, W + 2m, 3), with a margin m so the picture can shake."""
    margin = _shake_amplitude(width) + 2
    return _draw_set(width, height, margin, script.palette, np.random.default_rng(script.set_seed))


def render_frame(script: _ShotScript, background: np.ndarray, t: int, width: int, height: int) -> np.ndarray:
    """RGB frame (height, width, 3) uint8 of shot-relative frame `t`, drawn over `background`."""
    margin = _shake_amplitude(width) + 2
    canvas = background.copy()
    floor_y = margin + int(height * 0.78)
    radius = _radius(height)
    x = _character_x(script, t, width, radius)
    bob = int(abs(np.sin(t * 0.3)) * radius * 0.1)
    look = float(np.sign(script.speed[min(t, script.length - 1)]))
    _draw_character(canvas, (x + margin, floor_y - int(radius * 1.5) - bob), radius, script.palette[3], look, t)
    _draw_props(canvas, script, t, floor_y, margin, width)
    dx, dy = _shake_offset(script, t, width)
    frame = canvas[margin + dy: margin + dy + height, margin + dx: margin + dx + width]
    level = _flash_level(script, t)
    if level > 0:
        frame = cv2.addWeighted(frame, 1.0 - level, np.full_like(frame, 255), level, 0.0)
    return np.ascontiguousarray(frame)


def iter_frames(scripts: list[_ShotScript], width: int, height: int, grain: float = 0.0, seed: int = 0):
    bank = _grain_bank(width, height, grain, seed) if grain > 0 else None
    n = 0
    for script in scripts:
        background = draw_set(script, width, height)  # one set in memory at a time
        for t in range(script.length):
            frame = render_frame(script, background, t, width, height)
            if bank is not None:
                up, down = bank[n % len(bank)]
                frame = cv2.subtract(cv2.add(frame, up), down)
            n += 1
            yield frame


def _grain_bank(width: int, height: int, grain: float, seed: int, size: int = 8) -> list[tuple[np.ndarray, np.ndarray]]:
    """A few grain fields (as saturating add/subtract pairs) cycled over the frames."""
    rng = np.random.default_rng(seed)
    bank = []
    for _ in range(size):
        noise = rng.normal(0.0, grain, (height, width, 1)).astype(np.float32)
        noise = np.repeat(noise, 3, axis=2)
        bank.append((np.clip(noise, 0, 255).astype(np.uint8), np.clip(-noise, 0, 255).astype(np.uint8)))
    return bank


# ----------------------------------------------------------------------------- audio


def synth_audio(spec: SynthSpec, n_frames: int, planted: list[PlantedEvent], scripts) -> np.ndarray:
    """Stereo float32 (n, 2): a tone per shot, a thump per impact, a zap per flash."""
    n = round(Fraction(n_frames) * AUDIO_SAMPLE_RATE / spec.fps)
    audio = np.zeros(n, np.float32)
    to_sample = lambda f: round(Fraction(f) * AUDIO_SAMPLE_RATE / spec.fps)  # noqa: E731
    for script in scripts:
        a, b = to_sample(script.start_frame), to_sample(script.start_frame + script.length)
        t = np.arange(b - a) / AUDIO_SAMPLE_RATE
        audio[a:b] += 0.08 * np.sin(2 * np.pi * (220 + 55 * (script.index % 5)) * t)
    rng = np.random.default_rng(spec.seed)
    for event in planted:
        if event.kind == "whoosh":
            continue
        a = to_sample(event.frame)
        m = min(n - a, AUDIO_SAMPLE_RATE // 5)
        t = np.arange(m) / AUDIO_SAMPLE_RATE
        if event.kind == "impact":
            burst = np.sin(2 * np.pi * 70 * t) + 0.5 * rng.standard_normal(m)
            audio[a:a + m] += 0.5 * burst * np.exp(-t * 30)
        else:
            audio[a:a + m] += 0.3 * np.sin(2 * np.pi * (2000 + 4000 * t) * t) * np.exp(-t * 15)
    return np.stack([audio, audio], axis=1).clip(-1, 1).astype(np.float32)


# ----------------------------------------------------------------------------- encoding


def _ffmpeg_exe() -> str:
    env = os.environ.get("DUB_FFMPEG")
    if env:
        return env
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _encode_cfr(spec: SynthSpec, frames, tmp_path: Path, wav_path: Path | None) -> None:
    cmd = [_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
           "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{spec.width}x{spec.height}",
           "-framerate", f"{spec.fps.numerator}/{spec.fps.denominator}", "-i", "pipe:0"]
    if wav_path is not None:
        cmd += ["-i", str(wav_path), "-map", "0:v", "-map", "1:a", "-c:a", "aac", "-b:a", "96k"]
    cmd += ["-c:v", "libx264", "-preset", spec.preset, "-crf", str(spec.crf), "-pix_fmt", "yuv420p",
            "-movflags", "+faststart", "-f", "mp4", str(tmp_path)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None
    try:
        for frame in frames:
            proc.stdin.write(frame.tobytes())
    finally:
        proc.stdin.close()
        stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg failed ({proc.returncode}): {stderr.strip()[-500:]}")


def vfr_frame_pts(n_frames: int) -> list[int]:
    """Presentation time of every frame in VFR_TIME_BASE ticks, first frame at 0."""
    pts, now = [], 0
    for i in range(n_frames):
        pts.append(now)
        now += VFR_DURATIONS_TICKS[i % len(VFR_DURATIONS_TICKS)]
    return pts


def _encode_vfr(spec: SynthSpec, frames, tmp_path: Path, n_frames: int) -> None:
    import av

    pts = vfr_frame_pts(n_frames)
    duration_of = {p: VFR_DURATIONS_TICKS[i % len(VFR_DURATIONS_TICKS)] for i, p in enumerate(pts)}
    # No B-frames, so decode order is display order and the last packet's duration ends the stream.
    options = {"crf": str(spec.crf), "preset": spec.preset, "bf": "0"}
    with av.open(str(tmp_path), "w", format="mp4", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", options=options)
        stream.width, stream.height, stream.pix_fmt = spec.width, spec.height, "yuv420p"
        stream.time_base = VFR_TIME_BASE
        stream.codec_context.time_base = VFR_TIME_BASE

        def mux(packets) -> None:
            for packet in packets:
                packet.duration = duration_of[packet.pts]
                container.mux(packet)

        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = pts[i], VFR_TIME_BASE
            mux(stream.encode(frame))
        mux(stream.encode(None))


def _write_wav(path: Path, audio: np.ndarray) -> None:
    import soundfile

    soundfile.write(str(path), audio, AUDIO_SAMPLE_RATE, subtype="PCM_16")


# ----------------------------------------------------------------------------- public API


def ground_truth(spec: SynthSpec, scripts: list[_ShotScript], planted: list[PlantedEvent]) -> dict[str, Any]:
    n_frames = sum(s.length for s in scripts)
    truth: dict[str, Any] = {
        "width": spec.width, "height": spec.height, "frame_count": n_frames,
        "fps": f"{spec.fps.numerator}/{spec.fps.denominator}",
        "duration_s": float(Fraction(n_frames) / spec.fps),
        "has_audio": spec.audio and not spec.vfr, "vfr": spec.vfr, "seed": spec.seed,
        "cut_frames": [s.start_frame for s in scripts[1:]],
        "shots": [{"index": s.index, "start_frame": s.start_frame, "end_frame": s.start_frame + s.length}
                  for s in scripts],
        "events": [{"kind": e.kind, "frame": e.frame, "end_frame": e.end_frame} for e in planted],
    }
    if spec.vfr:
        pts = vfr_frame_pts(n_frames)
        total_ticks = pts[-1] + VFR_DURATIONS_TICKS[(n_frames - 1) % len(VFR_DURATIONS_TICKS)]
        fps = Fraction(n_frames) / (total_ticks * VFR_TIME_BASE)
        truth.update(fps=f"{fps.numerator}/{fps.denominator}", duration_s=float(total_ticks * VFR_TIME_BASE),
                     time_base=f"{VFR_TIME_BASE.numerator}/{VFR_TIME_BASE.denominator}", frame_pts=pts)
    return truth


def synthesize(out_path: str | os.PathLike, spec: SynthSpec = SynthSpec()) -> dict[str, Any]:
    """Write a synthetic cartoon video to `out_path` and its ground truth to `<stem>.json`.

    Returns:
        The ground-truth dict (also written as JSON): fps as "num/den", frame_count, cut_frames,
        shots [{index, start_frame, end_frame}], events [{kind, frame, end_frame}], duration_s;
        VFR videos add time_base and frame_pts (ticks, first frame at 0).
    """
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    scripts, planted = _script_shots(spec)
    truth = ground_truth(spec, scripts, planted)
    frames = iter_frames(scripts, spec.width, spec.height, spec.grain, spec.seed)
    with atomic_output(out) as tmp:
        if spec.vfr:
            _encode_vfr(spec, frames, tmp, truth["frame_count"])
        else:
            _encode_with_optional_audio(spec, frames, tmp, truth, scripts, planted)
    atomic_write_text(out.with_suffix(".json"), json.dumps(truth, indent=1) + "\n")
    log.info("synthesised %s: %d frames, %d shots", out, truth["frame_count"], len(scripts))
    return truth


def _encode_with_optional_audio(spec, frames, tmp: Path, truth, scripts, planted) -> None:
    if not spec.audio:
        _encode_cfr(spec, frames, tmp, None)
        return
    with tempfile.TemporaryDirectory(dir=tmp.parent) as work:
        wav = Path(work) / "track.wav"
        _write_wav(wav, synth_audio(spec, truth["frame_count"], planted, scripts))
        _encode_cfr(spec, frames, tmp, wav)


def demo_spec() -> SynthSpec:
    """The committed sample: 14 s, 640x360, 24000/1001 fps, with a sound track."""
    return SynthSpec(width=640, height=360, fps=Fraction(24000, 1001), duration_s=14.0, shot_s=2.8,
                     audio=True, seed=7, crf=23)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m samples.synth", description=__doc__.split("\n")[0])
    parser.add_argument("out", help="output .mp4 (ground truth goes next to it as .json)")
    parser.add_argument("--demo", action="store_true", help="the committed demo sample's settings")
    parser.add_argument("--duration", type=float, default=6.0, help="seconds")
    parser.add_argument("--shot-s", type=float, default=2.0, help="typical shot length, seconds")
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=180)
    parser.add_argument("--fps", default="24000/1001", help="frame rate, e.g. 24000/1001 or 30")
    parser.add_argument("--silent", action="store_true", help="no audio track")
    parser.add_argument("--vfr", action="store_true", help="variable frame rate (silent)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--crf", type=int, default=20)
    parser.add_argument("--preset", default="veryfast", help="libx264 preset")
    parser.add_argument("--grain", type=float, default=0.0, help="film grain strength (8-bit levels)")
    args = parser.parse_args(argv)
    if args.demo:
        spec = demo_spec()
    else:
        num, _, den = args.fps.partition("/")
        spec = SynthSpec(width=args.width, height=args.height, fps=Fraction(int(num), int(den or 1)),
                         duration_s=args.duration, shot_s=args.shot_s, audio=not args.silent, vfr=args.vfr,
                         seed=args.seed, crf=args.crf, preset=args.preset, grain=args.grain)
    truth = synthesize(args.out, spec)
    print(f"{args.out}: {truth['frame_count']} frames at {truth['fps']} fps, "
          f"{len(truth['shots'])} shots, {len(truth['events'])} events")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
