"""Turn a video analysis into a plan of timed audio cues, and save, load and check plans.

One cue per shot; a shot longer than `max_cue_s` is split into roughly equal parts at quiet
moments (low motion, away from impacts, never inside a burst of fast motion). Cue boundaries are
frame boundaries mapped to samples with `MediaInfo.frame_to_sample`, so the cues tile the
soundtrack [0, total_samples) exactly. A saved plan is plain JSON a user may edit (captions,
prompts, seeds, even boundaries) and feed back: the prompt is what a backend renders, the caption
labels the cue in captions and timelines. `load_plan` and `validate_plan` catch edits that break
the timing. Every plan also records the exact text AudioStory's language model reads for it
(`model_prompt`, and each cue's `model_text`), derived from the fields above by `with_model_text`.
"""
from __future__ import annotations

import bisect
import hashlib
import json
import logging
import math
import os
import re
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

from audiostory_core import prompts   # plain text composition: imports neither torch nor transformers
from vision.types import MediaInfo, Shot, VideoAnalysis, fraction_from_str, fraction_to_str

from .errors import PlanError
from .atomic import atomic_write_text
from .styles import DEFAULT_STYLE, STYLES, Style, get_style
from .types import MAX_CUE_S, OUTPUT_SAMPLE_RATE, PLAN_SCHEMA, Cue, DubPlan

log = logging.getLogger(__name__)

# Bump when the planner says something else for the same analysis and options (the cues, their
# text, the instruction): plans cached by an earlier planner are then made again.
PLANNER_VERSION = 3

# Events that span a motion (a cue boundary never falls inside one); the rest land on one frame.
SUSTAINED_KINDS = ("whoosh", "run", "shake", "fast_motion")

# How far (fraction of the ideal part length) a split may move from the equal-parts point
# to find a quiet frame; wider windows give lopsided parts.
SPLIT_WINDOW_FRACTION = 0.15
# A split this close to an impact or flash would chop the sound that lands on it.
EVENT_GUARD_S = 0.25
SEED_MODULUS = 2**31   # seeds fit a signed 32-bit int, the narrowest type any backend uses


@dataclass(frozen=True)
class PlanOptions:
    """How to plan: `style` names a preset in `dubber.styles`, `seed` is the base of every cue
    seed, `sample_rate` in Hz, `max_cue_s` the longest cue in seconds."""

    style: str = DEFAULT_STYLE
    seed: int = 0
    sample_rate: int = OUTPUT_SAMPLE_RATE
    max_cue_s: float = MAX_CUE_S

    def __post_init__(self) -> None:
        get_style(self.style)
        if self.sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {self.sample_rate}")
        if not self.max_cue_s > 0:
            raise ValueError(f"max_cue_s must be positive, got {self.max_cue_s}")


# ----------------------------------------------------------------------------- seeds and text

def cue_seed(base_seed: int, cue_index: int) -> int:
    """Seed of cue `cue_index`: stable across runs, machines and Python versions (no hash())."""
    digest = hashlib.blake2b(f"dubber-cue:{base_seed}:{cue_index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % SEED_MODULUS


def _clean_caption(text: str) -> str:
    """One line, no trailing separators or full stop (a caption is a phrase, not a paragraph)."""
    return " ".join(text.split()).rstrip(" .;,")


def cue_prompt(caption: str, style: Style) -> str:
    """The text a model renders for one cue: the shot caption as a sentence, then the style."""
    caption = _clean_caption(caption)
    if not caption:
        return style.prompt
    ending = "" if caption[-1] in "!?" else "."
    return f"{caption}{ending} {style.prompt}"


def format_total_duration(total_s: float) -> str:
    """Seconds as AudioStory's template prints them: one decimal ("35.1", "50.0")."""
    return prompts.format_tenths(prompts.tenths(total_s))


def long_form_instruction(cues: "list[Cue] | tuple[Cue, ...]", sample_rate: int, total_s: float, style: Style) -> str:
    """AudioStory's instruction: the style's lead (the paper's dubbing wording, spec §5), the shot
    captions in order (parts of a split shot said once), then "The total duration is X seconds."
    (spec §1.2). The instruction speaks of the whole film, so the times a caption gives from its
    shot's first frame ("a crash at 2.3 s") are told as times in the film (`film_times`)."""
    shot_starts: dict[int, float] = {}
    captions = []
    for cue in cues:
        start_s = shot_starts.setdefault(cue.shot_index, cue.start_sample / sample_rate)
        captions.append(film_times(cue.caption, start_s))
    summary = prompts.story_summary(captions) or "a continuous scene."
    return prompts.instruction_text(summary, prompts.tenths(total_s) / 10, lead=style.lead.rstrip() + " ")


# "at 2.3 s", "from 0.5 s to 2.0 s": how captions time what happens, from the shot's first frame.
_SHOT_TIME = re.compile(r"\b(at|from|to) (\d+(?:\.\d+)?) ?s\b")


def film_times(caption: str, shot_start_s: float) -> str:
    """`caption` with each of its times (counted from the first frame of a shot that starts
    `shot_start_s` into the film) counted from the start of the film, to a tenth of a second."""
    if not shot_start_s:
        return caption
    return _SHOT_TIME.sub(lambda m: f"{m[1]} {float(m[2]) + shot_start_s:.1f} s", caption)


# ----------------------------------------------------------------------------- AudioStory's text

_DURATION_SENTENCE = re.compile(r"\s*The total duration is [-+0-9.eE]+ ?s(econds)?\.?\s*$")


def clip_caption(prompt: str, style_name: str) -> str:
    """The clip caption AudioStory reads for a cue: its prompt without the style sentence that
    `cue_prompt` appends (the style is said once, in the instruction). A hand-edited prompt is kept."""
    text = " ".join(prompt.split())
    style = STYLES.get(style_name)
    if style is not None and text.endswith(style.prompt):
        text = text[: -len(style.prompt)].rstrip()
    return text or " ".join(prompt.split())


def instruction_summary(instruction: str) -> str:
    """The plan's instruction without its closing duration sentence, which is written from the cues."""
    return _DURATION_SENTENCE.sub("", instruction).strip()


def audiostory_clips(plan: DubPlan) -> list["prompts.ClipText"]:
    """Per cue, what AudioStory reads: its caption as the storyline point, its clip caption as the
    sounds and as the text before the clip's <timestamp>."""
    clips = []
    for cue in plan.cues:
        caption = clip_caption(cue.prompt, plan.style)
        clips.append(prompts.ClipText(story=_clean_caption(cue.caption) or caption, sounds=caption, caption=caption))
    return clips


def audiostory_text(plan: DubPlan) -> "prompts.StoryText":
    """Exactly the text AudioStory's language model reads for `plan` in shot-locked timing: the
    plan's instruction, a storyline point per cue and per cue its clip caption with a <timestamp>
    of its length (spec §1.2, §1.4)."""
    return prompts.compose_story(audiostory_clips(plan), [c.num_samples / plan.sample_rate for c in plan.cues], lead="",
                                 summary=instruction_summary(plan.instruction))


def with_model_text(plan: DubPlan) -> DubPlan:
    """`plan` with the model's text recorded: `model_prompt`, each cue's `model_text`, and the
    instruction's duration sentence rewritten from the cues."""
    story = audiostory_text(plan)
    cues = tuple(replace(cue, model_text=text) for cue, text in zip(plan.cues, story.clips))
    return replace(plan, instruction=story.instruction, model_prompt=story.prefix, cues=cues)


# ----------------------------------------------------------------------------- shot boundaries

def _shot_frame_ranges(analysis: VideoAnalysis) -> list[tuple[int, int, int]]:
    """(shot_index, start_frame, end_frame) covering [0, frame_count) with no gap.

    A gap between shots belongs to the shot before it; the first shot starts at frame 0.
    """
    frame_count = analysis.media.frame_count
    if frame_count <= 0:
        raise PlanError("The video has no frames, so there is nothing to plan; check the input file.")
    shots = sorted(analysis.shots, key=lambda s: s.start_frame)
    if not shots:
        shots = [Shot(0, 0, frame_count)]
    for prev, cur in zip(shots, shots[1:]):
        if cur.start_frame < prev.end_frame:
            raise PlanError(f"Shots {prev.index} and {cur.index} overlap in the analysis; re-run the analysis.")
    if shots[-1].end_frame > frame_count:
        raise PlanError(f"Shot {shots[-1].index} ends after the last frame; re-run the analysis.")
    starts = [0] + [_on_transition(s.start_frame, analysis) for s in shots[1:]]
    ends = starts[1:] + [frame_count]
    # Two cuts inside one transition (an iris closing, then opening) both move to its middle: the
    # shot between them is all transition, and its frames go to the shots on either side.
    return [(s.index, a, b) for s, a, b in zip(shots, starts, ends) if b > a]


def _on_transition(frame: int, analysis: VideoAnalysis) -> int:
    """A shot boundary inside a dissolve or fade sits at the transition's middle frame."""
    span = next((t for t in analysis.transitions if t.start_frame <= frame < t.end_frame), None)
    return frame if span is None else span.start_frame + (span.end_frame - span.start_frame) // 2


@dataclass(frozen=True)
class _CutScorer:
    """Scores candidate cuts inside one shot; built once per shot so each frame is cheap to score.

    A cut "at frame f" falls between frames f-1 and f.
    """

    media: MediaInfo
    motion: tuple[float, ...]
    hits_s: tuple[float, ...]                 # times of impacts and flashes in the shot
    fast_ranges: tuple[tuple[int, int], ...]  # [frame, end_frame) of fast-motion events

    @classmethod
    def for_shot(cls, analysis: VideoAnalysis, start: int, end: int) -> "_CutScorer":
        media = analysis.media
        inside = [e for e in analysis.events if e.frame < end and e.end_frame > start]
        hits = sorted(float(media.frame_time(min(e.frame, media.frame_count)))
                      for e in inside if e.kind not in SUSTAINED_KINDS)
        fast = sorted((e.frame, e.end_frame) for e in inside if e.kind in SUSTAINED_KINDS)
        return cls(media, analysis.motion, tuple(hits), tuple(fast))

    def allowed(self, frame: int) -> bool:
        """A cut never falls inside a fast-motion event."""
        # Only events starting before `frame` can contain it; ranges are sorted by start.
        before = bisect.bisect_left(self.fast_ranges, (frame, -1))
        return not any(a < frame < b for a, b in self.fast_ranges[:before])

    def near_hit(self, t: float) -> bool:
        i = bisect.bisect_left(self.hits_s, t - EVENT_GUARD_S)
        return i < len(self.hits_s) and self.hits_s[i] < t + EVENT_GUARD_S

    def motion_at(self, frame: int) -> float:
        """Activity around the cut (0 where the curve does not reach, e.g. a hand-made analysis)."""
        values = [self.motion[f] for f in (frame - 1, frame) if 0 <= f < len(self.motion)]
        return sum(values) / len(values) if values else 0.0

    def cost(self, frame: int, target_s: float, window_s: float) -> float:
        """Lower is better: quiet frames first, then frames away from hits, then near the target."""
        t = float(self.media.frame_time(frame))
        return self.motion_at(frame) + 0.5 * self.near_hit(t) + 0.1 * abs(t - target_s) / max(window_s, 1e-3)


def _feasible_cuts(media: MediaInfo, prev: int, end: int, parts_left: int,
                   options: PlanOptions) -> list[int]:
    """Frames where the next cut may go so that this part and every later part fit max_cue_s."""
    sr = options.sample_rate
    max_samples = math.floor(options.max_cue_s * sr)
    start_sample, end_sample = media.frame_to_sample(prev, sr), media.frame_to_sample(end, sr)
    feasible = []
    for frame in range(prev + 1, end):
        sample = media.frame_to_sample(frame, sr)
        if sample - start_sample > max_samples:
            break   # later frames only make this part longer
        if end_sample - sample <= parts_left * max_samples:
            feasible.append(frame)
    return feasible


def _choose_cut(scorer: _CutScorer, feasible: list[int], target_s: float, window_s: float) -> int:
    near = [f for f in feasible if abs(float(scorer.media.frame_time(f)) - target_s) <= window_s]
    for pool in (near, feasible):
        allowed = [f for f in pool if scorer.allowed(f)]
        if allowed:
            return min(allowed, key=lambda f: (scorer.cost(f, target_s, window_s), f))
    # Fast motion wherever a cut could go: the length limit still wins; take the quietest frame.
    return min(feasible, key=lambda f: (scorer.cost(f, target_s, window_s), f))


def _cuts_for(analysis: VideoAnalysis, start: int, end: int, n_parts: int,
              options: PlanOptions) -> list[int] | None:
    """Greedy cuts for `n_parts` parts, or None when frame boundaries make that impossible."""
    media = analysis.media
    scorer = _CutScorer.for_shot(analysis, start, end)
    t0 = float(media.frame_time(start))
    part_s = (float(media.frame_time(end)) - t0) / n_parts
    window_s = part_s * SPLIT_WINDOW_FRACTION
    cuts = [start]
    for k in range(1, n_parts):
        feasible = _feasible_cuts(media, cuts[-1], end, n_parts - k, options)
        if not feasible:
            return None
        cuts.append(_choose_cut(scorer, feasible, t0 + k * part_s, window_s))
    return cuts + [end]


def split_shot(analysis: VideoAnalysis, start: int, end: int, options: PlanOptions) -> list[tuple[int, int]]:
    """Frame ranges of the parts of shot [start, end): one part when it fits `max_cue_s`.

    Parts are roughly equal (each cut within SPLIT_WINDOW_FRACTION of a part length from the
    equal split when a good frame exists there) and never longer than `max_cue_s`.

    Raises:
        PlanError: a single frame lasts longer than `max_cue_s`.
    """
    media, sr = analysis.media, options.sample_rate
    max_samples = math.floor(options.max_cue_s * sr)
    total = media.frame_to_sample(end, sr) - media.frame_to_sample(start, sr)
    n_parts = max(1, math.ceil(total / max_samples))
    if n_parts == 1:
        return [(start, end)]
    # Frame boundaries rarely fall where n equal-limit parts need them; one more part always fits.
    for n in range(n_parts, min(n_parts + 4, end - start + 1)):
        cuts = _cuts_for(analysis, start, end, n, options)
        if cuts is not None:
            return list(zip(cuts, cuts[1:]))
    raise PlanError("A frame of the video lasts longer than the maximum cue length; raise max_cue_s.")


# ----------------------------------------------------------------------------- the plan

def _shot_caption(analysis: VideoAnalysis, shot_index: int, ordinal: int) -> str:
    caption = analysis.caption_for(shot_index)
    if caption is not None and caption.text.strip():
        return " ".join(caption.text.split())
    log.warning("shot %d has no caption; using a neutral description", shot_index)
    return f"scene {ordinal + 1}"


def make_plan(analysis: VideoAnalysis, options: PlanOptions = PlanOptions()) -> DubPlan:
    """Plan one cue per shot (long shots split) covering the whole video.

    Args:
        analysis: shots, events, motion and captions of the video.
        options: style, base seed, sample rate (Hz) and longest cue (s).

    Returns:
        A DubPlan whose cues tile samples [0, media.total_samples(sample_rate)).

    Raises:
        PlanError: the analysis has overlapping shots or no frames.
    """
    media, sr = analysis.media, options.sample_rate
    style = get_style(options.style)
    cues: list[Cue] = []
    for ordinal, (shot_index, start, end) in enumerate(_shot_frame_ranges(analysis)):
        caption = _shot_caption(analysis, shot_index, ordinal)
        parts = split_shot(analysis, start, end, options)
        for part, (a, b) in enumerate(parts):
            first, last = media.frame_to_sample(a, sr), media.frame_to_sample(b, sr)
            index = len(cues)
            cues.append(Cue(index=index, shot_index=shot_index, start_frame=a, end_frame=b,
                            start_sample=first, num_samples=last - first, caption=caption,
                            prompt=cue_prompt(caption, style), seed=cue_seed(options.seed, index),
                            part=part, parts=len(parts)))
    total_s = Fraction(media.frame_count) / media.fps
    instruction = long_form_instruction(cues, sr, float(total_s), style)
    plan = DubPlan(sample_rate=sr, total_samples=media.total_samples(sr), fps=fraction_to_str(media.fps),
                   style=options.style, seed=options.seed, instruction=instruction, cues=tuple(cues))
    check_plan(plan)
    return with_model_text(plan)


# ----------------------------------------------------------------------------- checks

def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_cue_fields(cue: Cue, position: int) -> None:
    ints = ("index", "shot_index", "start_frame", "end_frame", "start_sample", "num_samples",
            "seed", "part", "parts")
    for name in ints:
        if not _is_int(getattr(cue, name)):
            raise PlanError(f"Cue {position} field {name!r} must be a whole number; fix the plan file.")
    for name in ("caption", "prompt"):
        if not isinstance(getattr(cue, name), str):
            raise PlanError(f"Cue {position} field {name!r} must be text; fix the plan file.")
    if cue.num_samples <= 0 or cue.start_sample < 0 or cue.start_frame < 0 or cue.end_frame <= cue.start_frame:
        raise PlanError(f"Cue {position} has an empty or negative range; fix its frames and samples.")
    if not 0 <= cue.part < cue.parts:
        raise PlanError(f"Cue {position} has part {cue.part} of {cue.parts}; fix the plan file.")
    if not 0 <= cue.seed < 2**63:   # timelines and manifests carry seeds as 64-bit integers
        raise PlanError(f"Cue {position} has seed {cue.seed}; a seed is a whole number from 0 to 2**63-1.")


def check_plan(plan: DubPlan) -> None:
    """Check a plan is self-consistent: cues in order, tiling frames from 0 and samples
    [0, total_samples) with no gap or overlap.

    Raises:
        PlanError: the first problem found, as one sentence.
    """
    if not (_is_int(plan.sample_rate) and plan.sample_rate > 0 and _is_int(plan.total_samples)):
        raise PlanError("The plan's sample_rate and total_samples must be positive whole numbers; fix the plan file.")
    if not plan.cues:
        raise PlanError("The plan has no cues; make a new one with `dub plan`.")
    end_frame, end_sample = 0, 0
    for position, cue in enumerate(plan.cues):
        _check_cue_fields(cue, position)
        if cue.start_frame != end_frame or cue.start_sample != end_sample:
            if position == 0:
                raise PlanError(f"Cue 0 starts at frame {cue.start_frame}, sample {cue.start_sample}, not at 0; "
                                "cues must cover the video with no gap or overlap.")
            what = "a gap" if cue.start_frame > end_frame or cue.start_sample > end_sample else "an overlap"
            raise PlanError(f"Cue {position} starts at frame {cue.start_frame} (sample {cue.start_sample}) but cue "
                            f"{position - 1} ends at frame {end_frame} (sample {end_sample}): {what}, as a cue "
                            "deleted or moved leaves; cues must cover the video (to silence a shot, keep its cue "
                            "and mute it in the studio).")
        if cue.index != position:
            raise PlanError(f"Cue {position} has index {cue.index}; number the cues 0, 1, 2, ... in time order.")
        end_frame, end_sample = cue.end_frame, cue.end_sample
    if end_sample != plan.total_samples:
        raise PlanError(f"The cues end at sample {end_sample} but the plan is {plan.total_samples} samples long; "
                        "make the last cue end at the end of the video.")


def _plan_fps(plan: DubPlan) -> Fraction:
    """The plan's frame rate; a hand-edited "30" or "30/1" both mean 30 fps."""
    try:
        return fraction_from_str(plan.fps)
    except (ValueError, ZeroDivisionError):
        raise PlanError(f"The plan's fps {plan.fps!r} is not a frame rate such as \"24000/1001\" or \"25\"; "
                        "fix the plan file.") from None


def validate_plan(plan: DubPlan, media: MediaInfo) -> None:
    """Check a (possibly hand-edited) plan fits this video: fps, length and every cue's samples.

    Raises:
        PlanError: the plan was made for another video or its timing was edited inconsistently.
    """
    check_plan(plan)
    if _plan_fps(plan) != media.fps:
        raise PlanError(f"The plan is for {plan.fps} fps but the video runs at {fraction_to_str(media.fps)} fps; "
                        "make a new one with `dub plan`.")
    sr = plan.sample_rate
    if plan.total_samples != media.total_samples(sr) or plan.cues[-1].end_frame != media.frame_count:
        raise PlanError(f"The plan covers {plan.cues[-1].end_frame} frames but the video has {media.frame_count}; "
                        "make a new one with `dub plan`.")
    for cue in plan.cues:
        first, end = media.frame_to_sample(cue.start_frame, sr), media.frame_to_sample(cue.end_frame, sr)
        if cue.start_sample != first or cue.end_sample != end:
            raise PlanError(f"Cue {cue.index} samples do not match its frames {cue.start_frame}-{cue.end_frame}; "
                            f"set start_sample={first} and num_samples={end - first} in the plan file.")


def samples_follow_frames(plan: DubPlan, media: MediaInfo) -> DubPlan:
    """`plan` with every cue's samples recomputed from its frames, and its length from the video.

    Frames are what an editor moves in a plan file (a cue boundary from frame 300 to 312); the
    samples only say where those frames fall, so a plan edited by its frames alone is read as
    meant. A field that is not a whole number is left for `check_plan` to name."""
    sr = plan.sample_rate
    if not (_is_int(sr) and sr > 0) or not all(_is_int(c.start_frame) and _is_int(c.end_frame) for c in plan.cues):
        return plan
    last = media.frame_count
    try:
        same_video = _plan_fps(plan) == media.fps and plan.cues[-1].end_frame == last
    except (PlanError, IndexError):
        same_video = False
    if not same_video:   # a plan for another video is refused for what it is (`validate_plan`)
        return plan

    def at(frame: int) -> int:   # a frame past the end is for `validate_plan` to refuse, not to crash on
        return media.frame_to_sample(min(max(frame, 0), last), sr)

    cues = tuple(replace(c, start_sample=at(c.start_frame), num_samples=at(c.end_frame) - at(c.start_frame))
                 for c in plan.cues)
    return replace(plan, cues=cues, total_samples=media.total_samples(sr))


def shot_starts(plan: DubPlan) -> list[int]:
    """The first frames of the plan's shots, 0 first: where each cue that opens a shot (`part`
    0) starts. Cues that split one long shot are no cuts."""
    return sorted({0} | {cue.start_frame for cue in plan.cues if (cue.part or 0) == 0})


def check_plan_fits_cuts(plan: DubPlan, analysis: VideoAnalysis) -> None:
    """A plan of the right length and rate may still belong to another video (two 40 s clips at
    24 fps): its cues start at that video's cuts. When neither most of this video's cuts start a
    cue (within a frame) nor most of the plan's shots start at one of its cuts, it is another.
    A video without cuts, or a plan of one shot, cannot tell and passes.

    Raises:
        PlanError: the cuts disagree.
    """
    cuts = [s.start_frame for s in analysis.shots if s.start_frame > 0]
    starts = shot_starts(plan)[1:]
    if not cuts or not starts:
        return
    near = lambda frame, frames: any(abs(frame - f) <= 1 for f in frames)   # noqa: E731
    cuts_met = sum(near(c, [cue.start_frame for cue in plan.cues]) for c in cuts)
    starts_met = sum(near(f, cuts) for f in starts)
    if 2 * cuts_met < len(cuts) and 2 * starts_met < len(starts):
        shown = lambda frames: ", ".join(map(str, frames[:6])) + (", ..." if len(frames) > 6 else "")  # noqa: E731
        raise PlanError(f"The plan's shots start at frames {shown(starts)} but this video's cuts are at "
                        f"{shown(cuts)}: it was made for another video, or its shots were moved off this video's cuts; "
                        "make one for this video with `dub plan` and keep each shot's first frame on a cut.")


# ----------------------------------------------------------------------------- files

def save_plan(plan: DubPlan, path: str | os.PathLike[str]) -> Path:
    """Write the plan as JSON (with its `schema` field), atomically. Returns the path."""
    text = json.dumps(plan.to_dict(), indent=2, ensure_ascii=False) + "\n"
    return atomic_write_text(path, text)


def _plan_from_json(data: Any) -> DubPlan:
    if not isinstance(data, dict):
        raise PlanError("The plan file must hold a JSON object; fix the plan file.")
    schema = data.get("schema")
    if schema != PLAN_SCHEMA:
        raise PlanError(f"The file's schema is {schema!r}, not {PLAN_SCHEMA!r}; give a plan saved by this version.")
    _refuse_unknown_fields(data, DubPlan.__dataclass_fields__, "The plan")
    # `source` may be left out, as null: a plan of unknown origin, checked against the cuts instead
    required = [k for k in DubPlan.__dataclass_fields__ if k not in ("schema", "model_prompt", "source")]
    missing = [k for k in required if k not in data]
    if missing:
        raise PlanError(f"The plan file lacks the field {missing[0]!r}; fix the plan file.")
    if data.get("source") is not None and not isinstance(data["source"], str):
        raise PlanError(f"The plan's 'source' is {data['source']!r}, not the fingerprint of a video; leave the one "
                        "the plan was saved with, or make it null for a plan of unknown origin.")
    cues = data["cues"]
    if not isinstance(cues, list) or not all(isinstance(c, dict) for c in cues):
        raise PlanError("The plan's 'cues' must be a list of objects; fix the plan file.")
    for position, cue in enumerate(cues):
        # a misspelt field first: "captoin" is what the user typed, not a missing "caption"
        _refuse_unknown_fields(cue, Cue.__dataclass_fields__, f"Cue {position}")
        optional = ("part", "parts", "model_text")
        lacking = [k for k in Cue.__dataclass_fields__ if k not in cue and k not in optional]
        if lacking:
            raise PlanError(f"Cue {position} lacks the field {lacking[0]!r}; fix the plan file.")
    return DubPlan.from_dict(data)


def _refuse_unknown_fields(given: dict, known, where: str) -> None:
    """A field the plan does not have (a misspelt "captoin", a "muted" flag) would be ignored, and a
    hand edit that does nothing looks as if it worked: it is named instead."""
    unknown = sorted(k for k in given if k not in known)
    if not unknown:
        return
    import difflib

    close = difflib.get_close_matches(str(unknown[0]), list(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise PlanError(f"{where} has the field {unknown[0]!r}{hint}, which plans do not have: a cue's caption, prompt, "
                    "seed and boundaries and the plan's style and seed are what can be edited; fix the plan file.")


def load_plan(path: str | os.PathLike[str]) -> DubPlan:
    """Read a plan saved by `save_plan` (possibly edited by hand) and check it is self-consistent.

    Raises:
        PlanError: unreadable file, malformed JSON, wrong schema, missing fields, or cues that do
            not tile the soundtrack.
    """
    try:
        text = Path(path).read_text(encoding="utf-8-sig")   # editors on Windows save a BOM
    except (OSError, UnicodeDecodeError) as err:
        raise PlanError(f"Cannot read the plan file {path} ({err.__class__.__name__}); check the path.") from err
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise PlanError(f"The plan file {path} is not valid JSON (line {err.lineno}); fix the plan file.") from err
    except RecursionError:
        raise PlanError(f"The plan file {path} is nested too deeply to be a plan; fix the plan file.") from None
    plan = _plan_from_json(data)
    not_text = [k for k in ("fps", "style", "instruction") if not isinstance(getattr(plan, k), str)]
    if not_text:
        example = {"fps": ' such as "24000/1001"', "style": ' such as "noir"'}.get(not_text[0], "")
        raise PlanError(f"The plan's {not_text[0]} must be text{example}, not {getattr(plan, not_text[0])!r}; "
                        "fix the plan file.")
    if not _is_int(plan.seed) or not 0 <= plan.seed < 2**63:
        raise PlanError("The plan's seed must be a whole number from 0 to 2**63-1; fix the plan file.")
    if plan.style not in STYLES:
        raise PlanError(f"The plan's style {plan.style!r} is not one of: {', '.join(STYLES)}; fix the plan file.")
    if plan.sample_rate != OUTPUT_SAMPLE_RATE:
        raise PlanError(f"The plan's sample_rate is {plan.sample_rate} Hz but dubs are made at {OUTPUT_SAMPLE_RATE} Hz; "
                        "make a new one with `dub plan`.")
    check_plan(plan)
    # The model's text follows the (possibly edited) captions, prompts and timing.
    return with_model_text(plan)
