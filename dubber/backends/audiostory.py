"""The AudioStory backend: the plan's cues rendered by `audiostory_core`'s pipeline.

Two timings:

* "shots" (default): shot-locked. Each cue's caption and exact length go to
  `AudioStoryPipeline.generate_cues`, which runs the LLM once for all cues and denoises them in
  one batch; every cue comes back exactly `cue.num_samples` long at the plan's rate.
* "free": the model's own reading of the long-form instruction (`generate`), as AudioStory does
  text-to-long-audio: it writes its own storyline and clip lengths, and its track is laid over
  the whole video and cut at the plan's cue boundaries so it mixes like any other render.

torch and the model load on the first render, never at import.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from vision.types import VideoAnalysis

from ..plan import audiostory_clips, audiostory_text, instruction_summary
from ..types import OUTPUT_CHANNELS, CueAudio, DubPlan, ProgressFn, RenderResult, no_progress
from . import BackendOptions
from .base import DubBackend

if TYPE_CHECKING:
    from audiostory_core.hub import CheckpointFiles
    from audiostory_core.pipeline import AudioStoryPipeline

log = logging.getLogger(__name__)

STEM = "dub"   # one stem: the model renders music and effects as one mix
# A Hugging Face cache keeps each revision of a repo in snapshots/<commit hash>/.
_SNAPSHOT = re.compile(r"^[0-9a-f]{40}$")


def checkpoint_files(model: str | None) -> "CheckpointFiles":
    """The files of the checkpoint `model` names (a folder, a Hub id, None: the official one)
    on this machine: local folders and the local Hub cache only, never the network (a dub never
    downloads weights halfway through).

    Raises:
        WeightsNotFound: they are not here.
    """
    from audiostory_core import hub

    return hub.locate(model, local_only=True)


def snapshot_revision(files: "CheckpointFiles") -> str | None:
    """The Hub commit the weights were downloaded at, when they sit in a Hugging Face cache."""
    for part in reversed(files.model_dir.absolute().parts[:-1]):
        if _SNAPSHOT.match(part):
            return part
    return None


def weights_fingerprint(files: "CheckpointFiles") -> dict[str, Any]:
    """What tells these weights from any others, cheaply: where each folder the model reads is
    (links resolved), the Hub revision, and every file's size and modification time. Other
    weights at the same path or Hub id (a new revision, a fine-tune replaced in place, another
    project's folder of the same name) give another fingerprint, so cached audio of the old ones
    is never served for them. Content is not hashed: the weights are gigabytes."""
    folders = [files.model_dir, files.flux_dir, files.qwen_dir, files.t5_dir, files.base_llm_dir]
    seen: dict[str, Any] = {}
    for folder in folders:
        if folder is None or str(folder) in seen:
            continue
        listing = []
        for path in sorted(Path(folder).rglob("*")):
            try:
                stat = path.stat()   # through a Hub cache's links to the blobs
            except OSError:
                continue
            if path.is_file():
                listing.append([str(path.relative_to(folder)), stat.st_size, stat.st_mtime_ns])
        seen[str(folder)] = {"at": str(Path(folder).resolve()), "files": listing}
    return {"revision": snapshot_revision(files), "folders": list(seen.values())}


def to_stereo(wave: np.ndarray, num_samples: int) -> np.ndarray:
    """float32 (2, num_samples): mono is duplicated, extra channels dropped, length padded or cut.

    The pipeline already delivers exact lengths; fitting here keeps the backend contract even
    for a track the model laid out itself (free timing).
    """
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim == 1:
        wave = wave[None, :]
    if wave.shape[0] == 1:
        wave = np.repeat(wave, OUTPUT_CHANNELS, axis=0)
    wave = wave[:OUTPUT_CHANNELS]
    out = np.zeros((OUTPUT_CHANNELS, num_samples), dtype=np.float32)
    n = min(num_samples, wave.shape[-1])
    out[:, :n] = wave[:, :n]
    return out


def resample(wave: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """(channels, samples) from one rate to another with soxr's high-quality filter."""
    if from_rate == to_rate:
        return np.asarray(wave, dtype=np.float32)
    import soxr

    frames = np.ascontiguousarray(np.asarray(wave, dtype=np.float32).T)   # soxr wants (samples, channels)
    return np.ascontiguousarray(soxr.resample(frames, from_rate, to_rate, quality="HQ").T)


class AudioStoryBackend(DubBackend):
    """AudioStory-3B (or any checkpoint in its layout) as a render backend."""

    NAME = "audiostory"
    # Each cue's caption is its storyline point, its prompt the clip caption, its seed the noise.
    CUE_EDITS = frozenset({"caption", "prompt", "seed"})

    def __init__(self, options: BackendOptions | None = None, pipeline: "AudioStoryPipeline | None" = None):
        self.options = options or BackendOptions()
        self._pipeline = pipeline
        self._files: "CheckpointFiles | None" = None

    @property
    def pipeline(self) -> "AudioStoryPipeline":
        """The loaded pipeline (loaded once, on first use)."""
        if self._pipeline is None:
            from audiostory_core.pipeline import AudioStoryPipeline

            files = self.files   # located first: the manifest names the weights this load reads
            log.info("Loading AudioStory from %s.", files.model_dir)
            # The files found on this machine, looked up once: never fetched halfway through a dub.
            self._pipeline = AudioStoryPipeline.from_pretrained(
                self.options.model, device=self.options.device, dtype=self.options.dtype, files=files)
        return self._pipeline

    @property
    def files(self) -> "CheckpointFiles":
        """The checkpoint's files on this machine (found once)."""
        if self._files is None:
            self._files = checkpoint_files(self.options.model)
        return self._files

    def weights_identity(self) -> dict[str, Any] | None:
        """What cached audio of these weights is keyed on: the files (`weights_fingerprint`) and
        where they run (`placement`: half precision on a GPU does not give float32's samples on
        a CPU). None for a pipeline handed in ready-made, whose files are not known here."""
        if self._pipeline is not None and self._files is None:
            return None
        return {**weights_fingerprint(self.files), **self.placement()}

    def placement(self) -> dict[str, str]:
        """The device type and precision this backend runs in ({"device": "cuda", "dtype": "float16"})."""
        from audiostory_core.device import resolve_device

        where = resolve_device(self.options.device, self.options.dtype)
        return {"device": where.device.type, "dtype": str(where.dtype).removeprefix("torch.")}

    def render(self, plan: DubPlan, analysis: VideoAnalysis, progress: ProgressFn = no_progress) -> RenderResult:
        """One CueAudio per plan cue, stem "dub", float32 (2, cue.num_samples) at plan.sample_rate."""
        progress("audiostory", 0, len(plan.cues))
        if self.options.timing == "free":
            result = self._render_free(plan)
        else:
            result = self._render_shots(plan)
        progress("audiostory", len(plan.cues), len(plan.cues))
        return result

    def render_cues(self, plan: DubPlan, analysis: VideoAnalysis, positions: Sequence[int],
                    progress: ProgressFn = no_progress) -> RenderResult:
        """The cues at `positions`, each conditioned on the whole plan's storyline: the language
        model reads every cue's text (and the whole soundtrack's length), the DiT renders these."""
        if self.options.timing == "free":   # the model lays out the whole track itself
            return super().render_cues(plan, analysis, positions, progress)
        progress("audiostory", 0, len(positions))
        result = self._render_shots(plan, tuple(positions))
        progress("audiostory", len(positions), len(positions))
        return result

    def _render_shots(self, plan: DubPlan, only: tuple[int, ...] | None = None) -> RenderResult:
        from audiostory_core.pipeline import ClipCue

        # The same text the plan records (`dubber.plan.audiostory_text`), from the same function.
        cues = [ClipCue(caption=text.caption, num_samples=c.num_samples, seed=c.seed, story=text.story,
                        sounds=text.sounds) for c, text in zip(plan.cues, audiostory_clips(plan))]
        out = self.pipeline.generate_cues(cues, lead="", summary=instruction_summary(plan.instruction),
                                          sample_rate=plan.sample_rate, seed=plan.seed, only=only)
        # Every cue's seed, as the pipeline draws them, whichever cues this call rendered.
        seeds = [c.seed if c.seed is not None else plan.seed + i for i, c in enumerate(plan.cues)]
        notes = [f"shot-locked, seeds {seeds}", self._ran_on()]
        if out.story is not None and out.story.prefix != audiostory_text(plan).prefix:
            # A cue longer than the DiT's window was rendered in parts, each with its own point.
            notes.append("model prompt (cues split at the DiT window): " + out.story.prefix)
        rendered = plan.cues if only is None else [plan.cues[i] for i in only]
        audio = [self._cue_audio(c, resample(w, out.sample_rate, plan.sample_rate)) for c, w in
                 zip(rendered, out.waveforms)]
        return RenderResult(backend=self.NAME, sample_rate=plan.sample_rate, cues=tuple(audio),
                            notes=tuple(notes), **self._model_facts())

    def _render_free(self, plan: DubPlan) -> RenderResult:
        from audiostory_core.prompts import chat_prompt

        text = audiostory_text(plan)
        lengths = text.durations_tenths   # the stated total, as in shot-locked timing
        # The plan's instruction, lead included, is the whole user turn (lead="" adds nothing).
        story = self.pipeline.generate(instruction_summary(plan.instruction), sum(lengths) / 10, seed=plan.seed,
                                       lead="")
        track = to_stereo(resample(story.waveform, story.sample_rate, plan.sample_rate), plan.total_samples)
        audio = tuple(self._cue_audio(c, track[:, c.start_sample:c.end_sample]) for c in plan.cues)
        placed = _clip_descriptions(story.captions, story.durations_s)
        return RenderResult(backend=self.NAME, sample_rate=plan.sample_rate, cues=audio, **self._model_facts(),
                            notes=(f"free timing, {len(placed)} clips chosen by the model", self._ran_on(),
                                   "model prompt: " + chat_prompt(text.instruction)),
                            free_timing_captions=placed)

    def _ran_on(self) -> str:
        where = self.placement()
        return f"ran on {where['device']} in {where['dtype']}"

    @staticmethod
    def _cue_audio(cue: Any, wave: np.ndarray) -> CueAudio:
        return CueAudio(cue_index=cue.index, start_sample=cue.start_sample,
                        stems={STEM: to_stereo(wave, cue.num_samples)})

    def _model_facts(self) -> dict[str, Any]:
        """The manifest's `model_id` and `model_revision`: a Hub id with the commit of its
        snapshot, or a folder's absolute path (the text typed on the command line means nothing
        read from another folder)."""
        from audiostory_core.hub import REPO_ID

        model = self.options.model
        if self._files is None:   # a pipeline handed in ready-made: nothing was looked up
            return {"model_id": str(model or REPO_ID), "model_revision": None}
        revision = snapshot_revision(self._files)
        if model is None or not Path(model).expanduser().exists():
            return {"model_id": str(model or REPO_ID), "model_revision": revision}
        return {"model_id": str(Path(model).expanduser().resolve()), "model_revision": revision}


def _clip_descriptions(captions: tuple[str, ...], durations_s: tuple[float, ...]) -> tuple[str, ...]:
    """"[start-end s] caption" for each clip the model placed, in its own timing."""
    out, start = [], 0.0
    for caption, dur in zip(captions, durations_s):
        out.append(f"[{start:.1f}-{start + dur:.1f} s] {caption}")
        start += dur
    return tuple(out)
