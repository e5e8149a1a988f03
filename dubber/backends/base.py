"""The render backend plug-in: one class with a NAME and a `render` method."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import replace
from typing import ClassVar, Sequence

from vision.types import VideoAnalysis

from ..types import DubPlan, ProgressFn, RenderResult, no_progress


class DubBackend(ABC):
    """Turns a plan into audio: one CueAudio per plan cue, in plan order.

    Each cue's stems are float32 arrays shaped (2, cue.num_samples) at plan.sample_rate, meant
    to be placed at cue.start_sample of the soundtrack.
    """

    NAME: ClassVar[str] = ""
    # True for backends that draw the whole soundtrack in one pass and cut it into cues: any call
    # costs the whole timeline, so the caller renders all missing cues in one call.
    RENDERS_WHOLE_TIMELINE: ClassVar[bool] = False
    # False for backends whose audio is cheaper to render again than to keep: their cues are
    # not written to the stage cache (the analysis they are rendered from is).
    CACHES_AUDIO: ClassVar[bool] = True
    # The per-cue plan fields ("caption", "prompt", "seed") whose edits change this backend's
    # sound. A tool that edits cues one by one (the studio) reads it from the class, without
    # building the backend, to say which edits a take will not use.
    CUE_EDITS: ClassVar[frozenset[str]] = frozenset({"caption", "prompt", "seed"})

    @abstractmethod
    def render(self, plan: DubPlan, analysis: VideoAnalysis, progress: ProgressFn = no_progress) -> RenderResult:
        """Render every cue of `plan` for the video described by `analysis`."""

    def render_cues(self, plan: DubPlan, analysis: VideoAnalysis, positions: Sequence[int],
                    progress: ProgressFn = no_progress) -> RenderResult:
        """Render the cues at `positions` in `plan.cues`; the result holds those cues only, in that
        order. Here the other cues play no part; a backend that reads the whole plan for every
        cue (AudioStory's storyline) keeps them as context, so a plan rendered a few cues at a
        time sounds as it would rendered at once."""
        return self.render(replace(plan, cues=tuple(plan.cues[i] for i in positions)), analysis, progress)


def check_render(plan: DubPlan, result: RenderResult) -> None:
    """Raise ValueError if `result` breaks the backend contract for `plan` (a backend bug)."""
    if result.sample_rate != plan.sample_rate:
        raise ValueError(f"render is at {result.sample_rate} Hz, plan at {plan.sample_rate} Hz")
    if len(result.cues) != len(plan.cues):
        raise ValueError(f"{len(result.cues)} rendered cues for {len(plan.cues)} planned")
    for cue, audio in zip(plan.cues, result.cues):
        if audio.cue_index != cue.index or audio.start_sample != cue.start_sample:
            raise ValueError(f"cue {cue.index}: rendered as cue {audio.cue_index} at sample {audio.start_sample}")
        for name, stem in audio.stems.items():
            if stem.shape != (2, cue.num_samples) or stem.dtype.name != "float32":
                raise ValueError(f"cue {cue.index} stem {name!r}: {stem.shape} {stem.dtype}, "
                                 f"expected (2, {cue.num_samples}) float32")
