"""Typed results of video analysis: the contract between `vision` and everything downstream.

Time is exact: frame indices are ints, the frame rate is a `Fraction`, seconds are derived.
Every type serialises to plain JSON (`to_dict`) and back (`from_dict`); fractions travel as
"num/den" strings so 24000/1001 never degrades to 23.976.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

# /3: MediaInfo lists every audio track and every other stream (subtitles, attachments, cover).
ANALYSIS_SCHEMA = "dubber.analysis/3"
# Version of what the detectors find. The schema says how results are written; this says how
# they are made: it changes whenever cuts, events or captions of the same video would change,
# and cache keys include it so an analysis made by older detectors is never reused.
ANALYSIS_VERSION = 13

# What a sound editor marks. Instantaneous kinds land on their frame of contact; sustained kinds
# (whoosh, run, shake) span [frame, end_frame). "fast_motion" is the legacy name of a whoosh-like
# burst and is still read from old analysis files.
EVENT_KINDS: tuple[str, ...] = (
    "impact",      # a blow lands, two things collide
    "landing",     # a fall hits the floor
    "whoosh",      # a swing, smear or dash that makes air move but hits nothing
    "splash",      # water, sand or particles thrown out
    "explosion",   # a flash with a burst of debris
    "flash",       # the picture lights up (lightning, camera flash, zing)
    "run",         # footsteps, scurrying: a rhythmic sustained motion
    "shake",       # the camera or the world shakes (rumble)
    "fast_motion",
)
TRANSITION_KINDS: tuple[str, ...] = ("dissolve", "fade_out", "fade_in", "iris", "wipe")


def fraction_to_str(value: Fraction) -> str:
    return f"{value.numerator}/{value.denominator}"


def fraction_from_str(text: str | int | float) -> Fraction:
    if isinstance(text, str) and "/" in text:
        num, den = text.split("/", 1)
        return Fraction(int(num), int(den))
    return Fraction(text)


@dataclass(frozen=True)
class AudioTrack:
    """One audio track of a file: codec (ffmpeg's canonical name), language and title tags, and
    whether the file marks it as the default (the programme sound of a file with several)."""

    codec: str
    language: str | None = None
    title: str | None = None
    default: bool = False


@dataclass(frozen=True)
class ExtraStream:
    """A stream besides picture and sound: a subtitle track, an attached file (fonts of styled
    subtitles), cover art or another picture stream. `index` is its stream number in the file."""

    kind: str    # "subtitle", "attachment", "cover" or "video"
    index: int
    codec: str
    label: str   # for messages: its title, language or file name


@dataclass(frozen=True)
class MediaInfo:
    """What a video file is, read without decoding pictures.

    `fps` is the exact nominal rate for constant-frame-rate files; for variable-frame-rate files
    (`is_vfr`) it is frame_count / duration, so `frame_count / fps == duration` holds for both.
    `frame_pts` holds every frame's presentation time (in `time_base` units, first frame at 0)
    only for VFR files, where frame times cannot be derived from the rate.
    """

    path: str
    duration_s: float
    fps: Fraction
    frame_count: int
    width: int
    height: int
    rotation: int = 0
    video_codec: str = ""
    pix_fmt: str = ""
    time_base: Fraction = Fraction(1, 1)
    is_vfr: bool = False
    frame_pts: tuple[int, ...] | None = None
    has_audio: bool = False
    audio_codec: str | None = None
    audio_rate: int | None = None
    audio_channels: int | None = None
    size_bytes: int = 0
    # SMPTE timecode of the first frame as the file states it ("01:00:00:00", ";" before the
    # frames for drop-frame), or None when the file carries none. Editors relink media by it.
    start_timecode: str | None = None
    # Seconds from the file's start (its earliest stream) to the first picture shown; > 0 when
    # the sound starts first (trimmed or camera files). Outputs keep the picture at this offset.
    video_start_s: float = 0.0
    # Only for containers whose clock may jump (MPEG program and transport streams: DVD .mpg/.vob,
    # .ts, .m2ts), where ffmpeg starts its timeline at the first stream a job uses, not the file's:
    # seconds from the video stream's first packet to its first picture (> 0 when a capture begins
    # mid-GOP). None for every other container.
    picture_lead_s: float | None = None
    # Every audio track in file order, and every subtitle, attachment and cover-art stream: what
    # the mux carries over, known from the one probe of a job.
    audio_tracks: tuple[AudioTrack, ...] = ()
    extra_streams: tuple[ExtraStream, ...] = ()

    def frame_time(self, frame: int) -> Fraction:
        """Exact presentation time (seconds, from the first frame) of frame index `frame`.

        `frame == frame_count` is allowed and means the end of the last frame.
        """
        if frame < 0 or frame > self.frame_count:
            raise ValueError(f"frame {frame} outside [0, {self.frame_count}]")
        if self.frame_pts is None or frame == self.frame_count:
            return Fraction(frame) / self.fps
        return Fraction(self.frame_pts[frame]) * self.time_base

    def frame_to_sample(self, frame: int, sample_rate: int) -> int:
        """First audio sample (at `sample_rate`) that belongs to frame index `frame`."""
        return round(self.frame_time(frame) * sample_rate)

    def total_samples(self, sample_rate: int) -> int:
        """Length of a soundtrack covering the whole video: round(frame_count * sr / fps)."""
        return round(Fraction(self.frame_count) * sample_rate / self.fps)

    def to_dict(self) -> dict[str, Any]:
        data = {k: getattr(self, k) for k in self.__dataclass_fields__}
        data["fps"] = fraction_to_str(self.fps)
        data["time_base"] = fraction_to_str(self.time_base)
        data["frame_pts"] = list(self.frame_pts) if self.frame_pts is not None else None
        data["audio_tracks"] = [dict(vars(t)) for t in self.audio_tracks]
        data["extra_streams"] = [dict(vars(e)) for e in self.extra_streams]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "MediaInfo":
        data = dict(data)
        data["fps"] = fraction_from_str(data["fps"])
        data["time_base"] = fraction_from_str(data.get("time_base", "1/1"))
        pts = data.get("frame_pts")
        data["frame_pts"] = tuple(pts) if pts is not None else None
        data["audio_tracks"] = tuple(AudioTrack(**t) for t in data.get("audio_tracks", ()))
        data["extra_streams"] = tuple(ExtraStream(**e) for e in data.get("extra_streams", ()))
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Shot:
    """One shot: frames [start_frame, end_frame), end exclusive."""

    index: int
    start_frame: int
    end_frame: int

    def __post_init__(self) -> None:
        if not 0 <= self.start_frame < self.end_frame:
            raise ValueError(f"shot {self.index}: bad frame range [{self.start_frame}, {self.end_frame})")

    @property
    def frame_count(self) -> int:
        return self.end_frame - self.start_frame

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "start_frame": self.start_frame, "end_frame": self.end_frame}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Shot":
        return cls(int(data["index"]), int(data["start_frame"]), int(data["end_frame"]))


@dataclass(frozen=True)
class VisualEvent:
    """Something on screen a sound should hit: an impact, a flash, a burst of fast motion.

    `frame` is the frame where the sound should land; `end_frame` (exclusive) is the extent of
    the event for sustained kinds (fast motion), equal to frame + 1 for instantaneous ones.
    `strength` is in [0, 1].
    """

    frame: int
    kind: str
    strength: float
    end_frame: int
    # Where on screen it happens, as fractions of the picture (0, 0 = top left); the centre when
    # unknown. A mixer pans by `x`.
    x: float = 0.5
    y: float = 0.5

    def __post_init__(self) -> None:
        if self.kind not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {self.kind!r}; expected one of {EVENT_KINDS}")
        if self.end_frame <= self.frame or self.frame < 0:
            raise ValueError(f"bad event range [{self.frame}, {self.end_frame})")

    @property
    def duration_frames(self) -> int:
        return self.end_frame - self.frame

    def to_dict(self) -> dict[str, Any]:
        return {"frame": self.frame, "kind": self.kind, "strength": round(float(self.strength), 4),
                "end_frame": self.end_frame, "x": round(float(self.x), 4), "y": round(float(self.y), 4)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "VisualEvent":
        return cls(int(data["frame"]), str(data["kind"]), float(data["strength"]), int(data["end_frame"]),
                   float(data.get("x", 0.5)), float(data.get("y", 0.5)))


@dataclass(frozen=True)
class Transition:
    """A gradual change between two shots: frames [start_frame, end_frame), end exclusive.

    The cut between the shots it joins is reported at a frame inside this span (the plan's cue
    boundary); the span tells the mix where to crossfade instead of cutting.
    """

    kind: str
    start_frame: int
    end_frame: int

    def __post_init__(self) -> None:
        if self.kind not in TRANSITION_KINDS:
            raise ValueError(f"unknown transition kind {self.kind!r}; expected one of {TRANSITION_KINDS}")
        if not 0 <= self.start_frame < self.end_frame:
            raise ValueError(f"bad transition range [{self.start_frame}, {self.end_frame})")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "start_frame": self.start_frame, "end_frame": self.end_frame}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Transition":
        return cls(str(data["kind"]), int(data["start_frame"]), int(data["end_frame"]))


@dataclass(frozen=True)
class ShotCaption:
    """One caption per shot, worded as sound-relevant action, plus optional tags with scores."""

    shot_index: int
    text: str
    tags: tuple[str, ...] = ()
    scores: tuple[float, ...] = ()
    captioner: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"shot_index": self.shot_index, "text": self.text, "tags": list(self.tags),
                "scores": [round(float(s), 4) for s in self.scores], "captioner": self.captioner}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ShotCaption":
        return cls(int(data["shot_index"]), str(data["text"]), tuple(data.get("tags", ())),
                   tuple(float(s) for s in data.get("scores", ())), str(data.get("captioner", "")))


@dataclass(frozen=True)
class ShotKeyframes:
    """K small RGB keyframes of one shot and their frame indices.

    Each image is array-like: `np.asarray(image)` gives an H x W x 3 uint8 RGB picture, upright
    (rotation applied). They are held JPEG-compressed so a long film's keyframes stay small.
    Kept in memory for captioners only; never written to the analysis JSON.
    """

    shot_index: int
    frames: tuple[int, ...]
    images: tuple[Any, ...]


@dataclass(frozen=True)
class VideoAnalysis:
    """Everything `vision.analyze` learns about a video, ready to plan a soundtrack from.

    `motion` is the per-frame activity curve (len == media.frame_count, values in [0, 1]).
    """

    media: MediaInfo
    shots: tuple[Shot, ...]
    events: tuple[VisualEvent, ...]
    motion: tuple[float, ...]
    captions: tuple[ShotCaption, ...]
    settings: dict[str, Any] = field(default_factory=dict)
    keyframes: tuple[ShotKeyframes, ...] = field(default=(), compare=False, repr=False)
    transitions: tuple[Transition, ...] = ()
    schema: str = ANALYSIS_SCHEMA

    def caption_for(self, shot_index: int) -> ShotCaption | None:
        return next((c for c in self.captions if c.shot_index == shot_index), None)

    def events_in(self, shot: Shot) -> tuple[VisualEvent, ...]:
        return tuple(e for e in self.events if shot.start_frame <= e.frame < shot.end_frame)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "media": self.media.to_dict(),
            "shots": [s.to_dict() for s in self.shots],
            "events": [e.to_dict() for e in self.events],
            "motion": [round(float(m), 4) for m in self.motion],
            "captions": [c.to_dict() for c in self.captions],
            "transitions": [t.to_dict() for t in self.transitions],
            "settings": dict(self.settings),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "VideoAnalysis":
        schema = data.get("schema", "")
        if not str(schema).startswith("dubber.analysis/"):
            raise ValueError(f"not an analysis file (schema {schema!r})")
        return cls(
            media=MediaInfo.from_dict(data["media"]),
            shots=tuple(Shot.from_dict(s) for s in data["shots"]),
            events=tuple(VisualEvent.from_dict(e) for e in data["events"]),
            motion=tuple(float(m) for m in data["motion"]),
            captions=tuple(ShotCaption.from_dict(c) for c in data["captions"]),
            settings=dict(data.get("settings", {})),
            transitions=tuple(Transition.from_dict(t) for t in data.get("transitions", ())),
            schema=schema,
        )
