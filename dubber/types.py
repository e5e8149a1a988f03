"""Typed stage boundaries of the product: plan, rendered cues, soundtrack.

Samples are ints at `sample_rate`; audio arrays are float32 shaped (channels, samples).
Everything that lands in `dub.json` has `to_dict`/`from_dict`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

import numpy as np

PLAN_SCHEMA = "dubber.plan/1"
MANIFEST_SCHEMA = "dubber.manifest/1"
MANIFEST_SCHEMA_PREFIX = MANIFEST_SCHEMA.split("/")[0] + "/"   # any version of the manifest

OUTPUT_SAMPLE_RATE = 48_000   # Hz, delivery rate of every stem and of the muxed track
OUTPUT_CHANNELS = 2
MAX_CUE_S = 30.0               # s, longest clip the AudioStory DiT renders in one pass

# progress(stage, done, total): a plain callable so `vision` (which cannot import dubber) and
# the backends report the same way; the CLI turns it into a rich display or JSON lines.
ProgressFn = Callable[[str, int, int], None]


def is_manifest(data: Any) -> bool:
    """True for a dub manifest of any version: a JSON object whose schema says so."""
    return isinstance(data, dict) and str(data.get("schema", "")).startswith(MANIFEST_SCHEMA_PREFIX)


def no_progress(stage: str, done: int, total: int) -> None:
    """Progress sink that ignores every event."""


@dataclass(frozen=True)
class Cue:
    """One timed audio cue: what to render, where it goes, and how long it is.

    Frames [start_frame, end_frame) of the video; samples [start_sample, start_sample + num_samples)
    of the soundtrack. A shot longer than MAX_CUE_S is split into `parts` cues numbered by `part`.
    """

    index: int
    shot_index: int
    start_frame: int
    end_frame: int
    start_sample: int
    num_samples: int
    caption: str
    prompt: str
    seed: int
    part: int = 0
    parts: int = 1
    # What AudioStory's language model reads for this cue (its caption and <timestamp> tag);
    # derived from the fields above by `dubber.plan`, never edited by hand.
    model_text: str = ""

    @property
    def end_sample(self) -> int:
        return self.start_sample + self.num_samples

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Cue":
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True)
class DubPlan:
    """The whole soundtrack plan: cues in time order covering the video, plus the long-form
    instruction in AudioStory's own template for the free-timing mode."""

    sample_rate: int
    total_samples: int
    fps: str
    style: str
    seed: int
    instruction: str
    cues: tuple[Cue, ...]
    schema: str = PLAN_SCHEMA
    # The text AudioStory's language model reads before the first cue (chat prompt, instruction,
    # storyline); derived by `dubber.plan`, never edited by hand.
    model_prompt: str = ""
    # The content fingerprint of the video the plan was made for (`dubber.cache.content_fingerprint`);
    # empty when unknown. A plan of this very video may move its cue boundaries off the detected cuts.
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "cues"}
        data["cues"] = [c.to_dict() for c in self.cues]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DubPlan":
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data and k != "cues"}
        return cls(cues=tuple(Cue.from_dict(c) for c in data["cues"]), **fields)


@dataclass(frozen=True)
class CueAudio:
    """Rendered audio of one cue: stems by name ("music", "fx", or "dub" for a single mix),
    each float32 (channels, num_samples), placed at `start_sample` of the soundtrack."""

    cue_index: int
    start_sample: int
    stems: Mapping[str, np.ndarray]

    @property
    def num_samples(self) -> int:
        return next(iter(self.stems.values())).shape[-1]


@dataclass(frozen=True)
class RenderResult:
    """What a backend produced for a plan, and who produced it (for the manifest)."""

    backend: str
    sample_rate: int
    cues: tuple[CueAudio, ...]
    model_id: str | None = None
    model_revision: str | None = None
    notes: tuple[str, ...] = ()
    # Placement the model chose itself (free timing); empty when the plan's cues were used.
    free_timing_captions: tuple[str, ...] = ()
    # The sample bank a synthesizer played (name, licence, path, sha256); None for other backends.
    sound_bank: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Soundtrack:
    """The mixed result. The mix and each stem are tracks (on disk, `dubber.media.tracks`) of
    (channels, total_samples) before gain; `gain` is the per-sample gain (static gain times the
    limiter's curve) that every one of them gets, applied as they are read: `read` and
    `blocks` give the final audio a block at a time, `mix` and `stems` whole (short clips)."""

    sample_rate: int
    mix_track: Any
    stem_tracks: Mapping[str, Any]
    gain: Any                      # .read(start, stop) -> float32 (stop - start,)
    integrated_lufs: float
    true_peak_dbtp: float
    settings: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_arrays(cls, sample_rate: int, mix: np.ndarray, stems: Mapping[str, np.ndarray], integrated_lufs: float,
                    true_peak_dbtp: float, settings: Mapping[str, Any] | None = None) -> "Soundtrack":
        """A soundtrack of final audio held in memory (channels, n) arrays, with no further gain."""
        return cls(sample_rate, ArrayTrack(mix), {k: ArrayTrack(v) for k, v in stems.items()}, _Unity(),
                   integrated_lufs, true_peak_dbtp, dict(settings or {}))

    @property
    def total_samples(self) -> int:
        return self.mix_track.num_samples

    @property
    def channels(self) -> int:
        return self.mix_track.channels

    def read(self, name: str, start: int, stop: int) -> np.ndarray:
        """Samples [start, stop) of the final mix ("mix") or of a stem, float32 (channels, n)."""
        track = self.mix_track if name == "mix" else self.stem_tracks[name]
        return track.read(start, stop) * self.gain.read(start, stop)

    @property
    def mix(self) -> np.ndarray:
        """The whole final mix in memory, float32 (channels, total_samples)."""
        return self.read("mix", 0, self.total_samples)

    @property
    def stems(self) -> Mapping[str, np.ndarray]:
        """Each final stem, read whole when asked for."""
        return _FinalStems(self)


class ArrayTrack:
    """A (channels, n) float32 array read like a track on disk (`dubber.media.tracks.Track`)."""

    def __init__(self, audio: np.ndarray) -> None:
        self.audio = np.asarray(audio, dtype=np.float32)
        if self.audio.ndim == 1:
            self.audio = self.audio[None, :]
        self.channels, self.num_samples = self.audio.shape

    def read(self, start: int, stop: int) -> np.ndarray:
        return self.audio[:, max(0, start):max(0, stop)]


class _Unity:
    """A gain of 1 on every sample."""

    def read(self, start: int, stop: int) -> np.ndarray:
        return np.ones(max(0, stop - start), dtype=np.float32)


class _FinalStems(Mapping[str, np.ndarray]):
    def __init__(self, soundtrack: Soundtrack) -> None:
        self.soundtrack = soundtrack

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.soundtrack.stem_tracks:
            raise KeyError(name)
        return self.soundtrack.read(name, 0, self.soundtrack.total_samples)

    def __iter__(self) -> Iterator[str]:
        return iter(self.soundtrack.stem_tracks)

    def __len__(self) -> int:
        return len(self.soundtrack.stem_tracks)
