"""The `motion` captioner: words for the ear from numbers already measured, no weights.

Each shot's sentence says what a sound editor would play: the pace of the action (still, calm,
busy or frantic), its rhythm (running feet, swings), and the
timed events in the order they happen, e.g. "A frantic chase; a crash at 2.3 s, a heavy fall at
4.1 s, tiptoeing after." Times are seconds from the start of the shot, because each shot's cue
starts there. It names no colours: a colour makes no sound. Only the pictures' lightness is
read, to hear a flash in the dark as thunder. Tags come from the vocabulary by fixed rules
(hard impact -> crash, light impact -> bonk, landing -> thud, flash -> zing, whoosh -> whoosh,
run -> running, ...). The output depends only on the analysis, so the same video always gets
the same captions.

The pace is read from how much of the picture really changes, frame to frame (the analysis keeps
the scale of its motion curve): the curve alone is relative to the video, so a calm film would
have its busiest shot called frantic, and a wide boat shot under film grain and gate weave read
as a chase. Where the scale is unknown (an analysis made without it), the curve's own levels
are used.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..types import MediaInfo, Shot, ShotCaption, ShotKeyframes, VideoAnalysis, VisualEvent
from ._base import Captioner
from .vocabulary import tag

ACTIVITY_LEVELS = ("still", "calm", "busy", "frantic")
_OPENINGS = {"still": "A hushed, still moment", "calm": "Soft, tiptoeing movement",
             "busy": "Bustling, lively action", "frantic": "Frantic, hectic action"}
_AFTER = {"still": "silence after", "calm": "tiptoeing after", "busy": "bustling on after",
          "frantic": "the scramble goes on after"}
_LEVEL_TAGS = {"still": ("clock ticking",), "calm": ("tiptoe", "pizzicato"),
               "busy": ("footsteps", "piano"), "frantic": ("running", "drum roll")}
LEVEL_TAG_SCORE = 0.5      # tags chosen from the activity level alone, below any clear event
MAX_TIMED_EVENTS = 5       # events named with their time; the rest are counted
AFTER_MIN_S = 0.75         # a stretch this long after the last event gets its own words
_MAX_PIXELS = 20_000       # per keyframe, enough for a lightness estimate
_SUSTAINED = ("whoosh", "run", "fast_motion")  # event kinds that span a motion rather than hit a frame
# Pace bands in mean grey change per picture (0..1 of full scale): a tenth of the picture moving
# by an eighth of full scale every picture is about 0.004 (calm to busy); a third of it moving
# by a third, 0.012 and up, is frantic. Grain and flicker alone stay under the first.
PACE_STILL_BELOW = 0.0008
PACE_CALM_BELOW = 0.004
PACE_FRANTIC_FROM = 0.012
_NUMBERS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


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


class MotionCaptioner(Captioner):
    """Rule-based captions from the motion curve, the visual events and keyframe lightness."""

    NAME = "motion"
    Options = MotionOptions
    KEYFRAME_SHORT_SIDE = 96  # a lightness estimate (at most _MAX_PIXELS a picture) needs no more

    def caption(self, analysis: VideoAnalysis) -> tuple[ShotCaption, ...]:
        keyframes = {k.shot_index: k for k in analysis.keyframes}
        return tuple(describe_shot(analysis, shot, keyframes.get(shot.index), self.options)
                     for shot in analysis.shots)


def describe_shot(analysis: VideoAnalysis, shot: Shot, keyframes: ShotKeyframes | None,
                  options: MotionOptions = MotionOptions(), dark: bool | None = None) -> ShotCaption:
    """The `motion` caption of one shot (also the fallback wording of the learned captioners).
    `dark`: whether the shot is dark, when known already (else read from its keyframes)."""
    level = shot_pace(analysis, shot, options)
    events = analysis.events_in(shot)
    if dark is None:
        dark = keyframes is not None and bool(keyframes.images) and lightness(keyframes.images) < options.dark_below
    clauses = event_phrases(events, shot, analysis.media, options, dark=dark)
    after = _after_phrase(analysis, shot, events, level, options)
    text = _opening(level, events)
    if clauses or after:
        text += "; " + ", ".join(clauses + ([after] if after else []))
    tags, scores = rule_tags(level, events, dark, analysis.media, options)
    return ShotCaption(shot.index, text + ".", tags, scores, MotionCaptioner.NAME)


def retold(analysis: VideoAnalysis) -> VideoAnalysis:
    """`analysis` with every `motion` caption told again from the events it now holds: a hit list
    adds and removes events after the captions were written, and the captions must speak of what
    the soundtrack hits (the audio model reads them). The keyframes they were read from are gone;
    the one thing taken from them, whether the shot is dark, is what the caption said of it (only
    a flash is worded by it: thunder in the dark). Captions of the learned captioners, which saw
    the pictures, stay as they are."""
    captions = list(analysis.captions)
    for i, caption in enumerate(captions):
        if caption.captioner == MotionCaptioner.NAME and caption.shot_index < len(analysis.shots):
            shot = analysis.shots[caption.shot_index]
            captions[i] = describe_shot(analysis, shot, None, dark="thunder" in caption.tags)
    retold_captions = tuple(captions)
    return analysis if retold_captions == analysis.captions else replace(analysis, captions=retold_captions)


def shot_activity(motion: tuple[float, ...] | list[float], shot: Shot) -> float:
    """Mean of the motion curve over the shot's frames (0 where the curve does not reach)."""
    values = motion[shot.start_frame:shot.end_frame]
    return float(np.mean(values)) if len(values) else 0.0


def shot_pace(analysis: VideoAnalysis, shot: Shot, options: MotionOptions = MotionOptions()) -> str:
    """still, calm, busy or frantic: from the picture's real change per picture where the
    analysis knows its curve's scale, else from the curve's mean (`activity_level`)."""
    scale = analysis.settings.get("motion_scale") if analysis.settings else None
    if not isinstance(scale, (int, float)) or scale <= 0:
        return activity_level(shot_activity(analysis.motion, shot), options)
    values = np.asarray(analysis.motion[shot.start_frame:shot.end_frame], dtype=np.float64)
    change = float(np.mean(values ** 2) * scale) if values.size else 0.0   # the curve is sqrt(change / scale)
    if change < PACE_STILL_BELOW:
        return "still"
    if change < PACE_CALM_BELOW:
        return "calm"
    return "busy" if change < PACE_FRANTIC_FROM else "frantic"


def activity_level(activity: float, options: MotionOptions = MotionOptions()) -> str:
    if activity < options.still_below:
        return "still"
    if activity < options.calm_below:
        return "calm"
    return "busy" if activity < options.frantic_from else "frantic"


def lightness(images: tuple | list) -> float:
    """Mean HSL lightness of RGB uint8 images (H x W x 3), pooled: 0 black .. 1 white."""
    rgb = np.concatenate([_sample_pixels(img) for img in images]).astype(np.float32) / 255.0  # (N, 3)
    # HSL lightness: black 0, pure colours 0.5, white 1 (luma would call pure blue dark).
    return float(np.mean((rgb.max(axis=1) + rgb.min(axis=1)) / 2.0))


def _sample_pixels(image: np.ndarray) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] < 3:
        raise ValueError(f"keyframe must be H x W x 3 RGB, got shape {arr.shape}")
    pixels = arr[..., :3].reshape(-1, 3)
    step = max(1, len(pixels) // _MAX_PIXELS)
    return pixels[::step]


def event_phrases(events: tuple[VisualEvent, ...], shot: Shot, media: MediaInfo,
                  options: MotionOptions = MotionOptions(), dark: bool = False) -> list[str]:
    """"a crash at 2.3 s", "running feet from 0.5 s to 2.0 s"...: the strongest
    MAX_TIMED_EVENTS events, told in the order they happen, then a count of the rest; times are
    seconds from the shot's first frame (exact frame times, so right for VFR video too)."""
    # A shake that starts on the heels of a hit is that hit's aftermath: told with it.
    hits = {e.frame for e in events if e.kind != "shake" and e.kind not in _SUSTAINED}
    aftermath = {e.frame - 1 for e in events if e.kind == "shake" and e.frame - 1 in hits}
    told = [e for e in events if not (e.kind == "shake" and e.frame - 1 in aftermath)]
    ranked = sorted(told, key=lambda e: (-e.strength, e.frame))
    named = sorted(ranked[:MAX_TIMED_EVENTS], key=lambda e: (e.frame, e.kind))
    phrases = [_event_phrase(e, shot, media, options, dark)
               + (" that shakes everything" if e.frame in aftermath else "") for e in named]
    rest = len(told) - len(named)
    if rest:
        phrases.append(f"{_count(rest)} more {'hit' if rest == 1 else 'hits'}")
    return phrases


def _event_phrase(event: VisualEvent, shot: Shot, media: MediaInfo, options: MotionOptions, dark: bool) -> str:
    at = f"{_seconds_between(media, shot.start_frame, event.frame):.1f} s"
    strong = event.strength >= options.hard_from
    if event.kind == "run":
        until = f"{_seconds_between(media, shot.start_frame, event.end_frame):.1f} s"
        return f"running feet from {at} to {until}"
    if event.kind == "shake":
        return f"a rumbling shake from {at}"
    if event.kind == "flash":
        what = "a thunder clap" if dark else "a bright zing" if strong else "a faint zing"
        return f"{what} at {at}"
    words = {"impact": "a crash" if strong else "a bonk", "landing": "a heavy fall", "splash": "a splash",
             "explosion": "an explosion", "whoosh": "a whoosh", "fast_motion": "a whoosh"}
    return f"{words[event.kind]} at {at}"


def _count(n: int) -> str:
    return _NUMBERS[n] if n < len(_NUMBERS) else str(n)


def _seconds_between(media: MediaInfo, first_frame: int, frame: int) -> float:
    last = media.frame_count   # an event may be recorded as running to the very end
    return float(media.frame_time(min(frame, last)) - media.frame_time(min(first_frame, last)))


def _after_phrase(analysis: VideoAnalysis, shot: Shot, events: tuple[VisualEvent, ...], level: str,
                  options: MotionOptions) -> str:
    """How the shot goes on after its last event, when that stretch is long enough to hear and
    its pace differs from the shot's."""
    if not events:
        return ""
    last = min(shot.end_frame, max(e.end_frame for e in events))
    if _seconds_between(analysis.media, last, shot.end_frame) < AFTER_MIN_S:
        return ""
    after = shot_pace(analysis, Shot(shot.index, last, shot.end_frame), options)
    return _AFTER[after] if after != level else ""


def _opening(level: str, events: tuple[VisualEvent, ...]) -> str:
    sustained = [e for e in events if e.kind in _SUSTAINED]
    if level == "frantic" and any(e.kind == "run" for e in events):
        return "A frantic chase"   # somebody runs: a whirl of motion in one place is no chase
    if any(e.kind == "run" for e in events):
        return _OPENINGS[level] + " with scurrying footsteps"
    if len(sustained) >= 2:
        return _OPENINGS[level] + " full of swings and swishes"
    return _OPENINGS[level]


def rule_tags(level: str, events: tuple[VisualEvent, ...], dark: bool, media: MediaInfo,
              options: MotionOptions = MotionOptions()) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """Vocabulary tags by rule, strongest first; event tags score the event's strength."""
    scored: dict[str, float] = {}

    def add(name: str, score: float) -> None:
        tag(name)  # a rule naming a tag outside the vocabulary is a bug: fail loudly
        scored[name] = max(scored.get(name, 0.0), round(float(score), 4))

    for name, score in _event_tags(events, dark, media, options):
        add(name, score)
    for name in _LEVEL_TAGS[level]:
        add(name, LEVEL_TAG_SCORE)
    ranked = sorted(scored.items(), key=lambda item: -item[1])[:options.max_tags]
    return tuple(n for n, _ in ranked), tuple(s for _, s in ranked)


_KIND_TAGS = {"landing": "thud", "splash": "splash", "explosion": "explosion", "whoosh": "whoosh",
              "fast_motion": "whoosh", "run": "running", "shake": "thud"}


def _event_tags(events: tuple[VisualEvent, ...], dark: bool, media: MediaInfo,
                options: MotionOptions) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    impacts = [e for e in events if e.kind == "impact"]
    for e in impacts:
        out.append(("crash" if e.strength >= options.hard_from else "bonk", e.strength))
    if len(impacts) >= 3:   # a flurry of blows is a fight
        out.append(("punch", float(np.median([e.strength for e in impacts]))))
    for e in events:
        if e.kind == "flash":
            out.append(("thunder" if dark else "zing", e.strength))
            # A strong flash on the beat of a hard impact reads as a cartoon explosion.
            for hit in impacts:
                apart_s = abs(_seconds_between(media, e.frame, hit.frame))
                if min(e.strength, hit.strength) >= options.hard_from and apart_s <= 0.25:
                    out.append(("explosion", min(e.strength, hit.strength)))
        elif e.kind == "fast_motion" and _seconds_between(media, e.frame, e.end_frame) >= 0.75:
            out.append(("running", e.strength))   # a legacy burst long enough to be running
        elif e.kind in _KIND_TAGS:
            out.append((_KIND_TAGS[e.kind], e.strength))
    return out
