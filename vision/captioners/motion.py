"""The `motion` captioner: plain, sound-relevant words from numbers already measured, no weights.

Each shot is described from its activity (the mean of the motion curve over the shot: still,
calm, busy or frantic), its keyframes' dominant hue and lightness, and its visual events, e.g.
"A frantic chase in a warm orange scene with two hard impacts, 0.4 s and 1.2 s in, and a bright
flash 2.0 s in." Event times are seconds from the start of the shot, because each shot's cue
starts there. Tags come from the vocabulary by fixed rules (hard impact -> crash, light impact ->
bonk, flash -> zing, fast motion -> whoosh or running, ...). The output depends only on the
analysis, so the same video always gets the same captions.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..types import MediaInfo, Shot, ShotCaption, ShotKeyframes, VideoAnalysis, VisualEvent
from ._base import Captioner
from .vocabulary import join_phrases, tag

ACTIVITY_LEVELS = ("still", "calm", "busy", "frantic")
_OPENINGS = {"still": "A still, quiet moment", "calm": "A calm moment", "busy": "Lively movement",
             "frantic": "Frantic action"}
_LEVEL_TAGS = {"still": ("clock ticking",), "calm": ("tiptoe", "pizzicato"),
               "busy": ("footsteps", "piano"), "frantic": ("running", "drum roll")}
LEVEL_TAG_SCORE = 0.5      # tags chosen from the activity level alone, below any clear event
# Hue bands in degrees (upper bounds) and how a scene of that hue is called.
_HUE_BANDS = ((15, "red"), (45, "orange"), (70, "yellow"), (165, "green"), (195, "teal"),
              (255, "blue"), (290, "purple"), (335, "pink"), (360, "red"))
_HUE_SCENES = {"red": "red-lit scene", "orange": "warm orange scene", "yellow": "sunny yellow scene",
               "green": "green scene", "teal": "cool teal scene", "blue": "blue-lit scene",
               "purple": "purple-lit scene", "pink": "pink scene"}
_NUMBERS = ("no", "a", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_MAX_LISTED_TIMES = 3
_MAX_PIXELS = 20_000       # per keyframe, enough for a colour estimate


@dataclass(frozen=True)
class MotionOptions:
    """Thresholds of the `motion` captioner.

    Attributes:
        still_below, calm_below, frantic_from: activity (mean motion, 0..1) that separates the
            levels still < calm < busy < frantic.
        hard_from: event strength (0..1) from which an impact is "hard" and a flash "bright".
        dark_below, bright_from: keyframe lightness (0..1) bands called dark and bright.
        max_tags: at most this many tags per shot.
    """

    still_below: float = 0.02
    calm_below: float = 0.12
    frantic_from: float = 0.4
    hard_from: float = 0.6
    dark_below: float = 0.25
    bright_from: float = 0.75
    max_tags: int = 5

    def __post_init__(self) -> None:
        if not 0.0 <= self.still_below <= self.calm_below <= self.frantic_from <= 1.0:
            raise ValueError("motion captioner thresholds must satisfy 0 <= still_below <= calm_below "
                             f"<= frantic_from <= 1, got {self.still_below}, {self.calm_below}, {self.frantic_from}")
        if not 0.0 <= self.dark_below < self.bright_from <= 1.0:
            raise ValueError(f"need 0 <= dark_below < bright_from <= 1, got {self.dark_below}, {self.bright_from}")
        if self.max_tags < 1:
            raise ValueError(f"max_tags must be at least 1, got {self.max_tags}")


@dataclass(frozen=True)
class ColourProfile:
    """What a shot's keyframes look like: dominant hue name (None when colourless) and lightness."""

    hue: str | None
    lightness: float        # 0 black .. 1 white
    colourfulness: float    # share of pixels with a clear hue, 0..1


class MotionCaptioner(Captioner):
    """Rule-based captions from the motion curve, keyframe colours and visual events."""

    NAME = "motion"
    Options = MotionOptions

    def caption(self, analysis: VideoAnalysis) -> tuple[ShotCaption, ...]:
        keyframes = {k.shot_index: k for k in analysis.keyframes}
        return tuple(describe_shot(analysis, shot, keyframes.get(shot.index), self.options)
                     for shot in analysis.shots)


def describe_shot(analysis: VideoAnalysis, shot: Shot, keyframes: ShotKeyframes | None,
                  options: MotionOptions = MotionOptions()) -> ShotCaption:
    """The `motion` caption of one shot (also the fallback wording of the learned captioners)."""
    level = activity_level(shot_activity(analysis.motion, shot), options)
    events = analysis.events_in(shot)
    profile = colour_profile(keyframes.images) if keyframes is not None and keyframes.images else None
    text = _opening(level, events)
    if profile is not None:
        text += " in " + scene_phrase(profile, options)
    clauses = event_phrases(events, shot, analysis.media, options)
    if clauses:
        text += " with " + join_phrases(clauses)
    tags, scores = rule_tags(level, events, profile, analysis.media, options)
    return ShotCaption(shot.index, text + ".", tags, scores, MotionCaptioner.NAME)


def shot_activity(motion: tuple[float, ...] | list[float], shot: Shot) -> float:
    """Mean of the motion curve over the shot's frames (0 where the curve does not reach)."""
    values = motion[shot.start_frame:shot.end_frame]
    return float(np.mean(values)) if len(values) else 0.0


def activity_level(activity: float, options: MotionOptions = MotionOptions()) -> str:
    if activity < options.still_below:
        return "still"
    if activity < options.calm_below:
        return "calm"
    return "busy" if activity < options.frantic_from else "frantic"


def colour_profile(images: tuple | list) -> ColourProfile:
    """Dominant hue and lightness of RGB uint8 images (H x W x 3), pooled."""
    rgb = np.concatenate([_sample_pixels(img) for img in images]).astype(np.float32) / 255.0  # (N, 3)
    top, bottom = rgb.max(axis=1), rgb.min(axis=1)
    chroma = top - bottom
    saturation = np.where(top > 0, chroma / np.maximum(top, 1e-6), 0.0)
    # HSL lightness: black 0, pure colours 0.5, white 1 (luma would call pure blue dark).
    lightness = float(np.mean((top + bottom) / 2.0))
    coloured = (saturation > 0.25) & (top > 0.15)
    colourfulness = float(np.mean(coloured))
    if colourfulness < 0.2:
        return ColourProfile(None, lightness, colourfulness)
    hue = _hue_degrees(rgb[coloured], top[coloured], chroma[coloured])
    weights = (saturation * top)[coloured]
    return ColourProfile(_dominant_hue_name(hue, weights), lightness, colourfulness)


def _sample_pixels(image: np.ndarray) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] < 3:
        raise ValueError(f"keyframe must be H x W x 3 RGB, got shape {arr.shape}")
    pixels = arr[..., :3].reshape(-1, 3)
    step = max(1, len(pixels) // _MAX_PIXELS)
    return pixels[::step]


def _hue_degrees(rgb: np.ndarray, top: np.ndarray, chroma: np.ndarray) -> np.ndarray:
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    safe = np.maximum(chroma, 1e-6)
    hue = np.where(top == r, ((g - b) / safe) % 6.0,
                   np.where(top == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0))
    return (hue * 60.0) % 360.0


def _dominant_hue_name(hue: np.ndarray, weights: np.ndarray) -> str:
    # A weighted 10-degree histogram, smoothed around the circle, so a hue split across a bin
    # edge still wins over a smaller but tidier one.
    hist, _ = np.histogram(hue, bins=36, range=(0.0, 360.0), weights=weights)
    smooth = hist * 2 + np.roll(hist, 1) + np.roll(hist, -1)
    peak_deg = float(np.argmax(smooth)) * 10.0 + 5.0
    return hue_name(peak_deg)


def hue_name(degrees: float) -> str:
    """Plain colour word for a hue angle (0 red, 120 green, 240 blue)."""
    degrees %= 360.0
    return next(name for upper, name in _HUE_BANDS if degrees < upper)


def scene_phrase(profile: ColourProfile, options: MotionOptions = MotionOptions()) -> str:
    """"a blue-lit scene", "a dark warm orange scene", "a bright grey scene"..."""
    light = ("dark " if profile.lightness < options.dark_below
             else "bright " if profile.lightness >= options.bright_from else "")
    if profile.hue is None:
        core = {"dark ": "dark, colourless scene", "bright ": "bright white scene"}.get(light, "grey scene")
        return "a " + core
    return "a " + light + _HUE_SCENES[profile.hue]


def event_phrases(events: tuple[VisualEvent, ...], shot: Shot, media: MediaInfo,
                  options: MotionOptions = MotionOptions()) -> list[str]:
    """One phrase per kind of event in the shot, in the order the kinds first happen; times are
    seconds from the shot's first frame (exact frame times, so right for VFR video too)."""
    phrases = []
    for kind, one, many in (("impact", "impact", "impacts"), ("flash", "flash", "flashes"),
                            ("fast_motion", "burst of fast motion", "bursts of fast motion")):
        of_kind = [e for e in events if e.kind == kind]
        if of_kind:
            adjective = _strength_word(kind, of_kind, options)
            first = min(e.frame for e in of_kind)
            phrases.append((first, _counted(of_kind, adjective, one, many) + _times(of_kind, shot, media)))
    return [text for _, text in sorted(phrases, key=lambda p: p[0])]


def _strength_word(kind: str, events: list[VisualEvent], options: MotionOptions) -> str:
    strong = max(e.strength for e in events) >= options.hard_from
    if kind == "impact":
        return "hard" if strong else "light"
    if kind == "flash":
        return "bright" if strong else "faint"
    return ""


def _counted(events: list[VisualEvent], adjective: str, one: str, many: str) -> str:
    n = len(events)
    count = _NUMBERS[n] if n < len(_NUMBERS) else str(n)
    noun = one if n == 1 else many
    return " ".join(w for w in (count, adjective, noun) if w)


def _seconds_between(media: MediaInfo, first_frame: int, frame: int) -> float:
    last = media.frame_count   # an event may be recorded as running to the very end
    return float(media.frame_time(min(frame, last)) - media.frame_time(min(first_frame, last)))


def _times(events: list[VisualEvent], shot: Shot, media: MediaInfo) -> str:
    if len(events) > _MAX_LISTED_TIMES:
        return ""
    seconds = [f"{_seconds_between(media, shot.start_frame, e.frame):.1f} s"
               for e in sorted(events, key=lambda e: e.frame)]
    return ", " + join_phrases(seconds) + " in" if len(seconds) > 1 else " " + seconds[0] + " in"


def _opening(level: str, events: tuple[VisualEvent, ...]) -> str:
    if level == "frantic" and any(e.kind == "fast_motion" for e in events):
        return "A frantic chase"
    return _OPENINGS[level]


def rule_tags(level: str, events: tuple[VisualEvent, ...], profile: ColourProfile | None, media: MediaInfo,
              options: MotionOptions = MotionOptions()) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """Vocabulary tags by rule, strongest first; event tags score the event's strength."""
    scored: dict[str, float] = {}

    def add(name: str, score: float) -> None:
        tag(name)  # a rule naming a tag outside the vocabulary is a bug: fail loudly
        scored[name] = max(scored.get(name, 0.0), round(float(score), 4))

    for name, score in _event_tags(events, profile, media, options):
        add(name, score)
    for name in _LEVEL_TAGS[level]:
        add(name, LEVEL_TAG_SCORE)
    ranked = sorted(scored.items(), key=lambda item: -item[1])[:options.max_tags]
    return tuple(n for n, _ in ranked), tuple(s for _, s in ranked)


def _event_tags(events: tuple[VisualEvent, ...], profile: ColourProfile | None, media: MediaInfo,
                options: MotionOptions) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    impacts = [e for e in events if e.kind == "impact"]
    flashes = [e for e in events if e.kind == "flash"]
    fast = [e for e in events if e.kind == "fast_motion"]
    for e in impacts:
        out.append(("crash" if e.strength >= options.hard_from else "bonk", e.strength))
    if len(impacts) >= 2:
        out.append(("thud", min(e.strength for e in impacts)))
    for e in flashes:
        dark = profile is not None and profile.lightness < options.dark_below
        out.append(("thunder" if dark else "zing", e.strength))
        # A strong flash on the same beat as a hard impact reads as a cartoon explosion.
        for hit in impacts:
            apart_s = abs(_seconds_between(media, e.frame, hit.frame))
            if min(e.strength, hit.strength) >= options.hard_from and apart_s <= 0.25:
                out.append(("explosion", min(e.strength, hit.strength)))
    for e in fast:
        long_burst = _seconds_between(media, e.frame, e.end_frame) >= 0.75
        out.append(("running" if long_burst else "whoosh", e.strength))
    return out
