"""A plan file given with --plan, read against the video's fresh analysis: checked to fit the
video, its cue seeds, prompts and instruction brought in line with what the user edited by hand,
and a note when an edit changes nothing the chosen backend reads."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from .errors import InputError


def unheard_plan_edits(user_plan: Any, analysis: Any) -> list[str]:
    """A note when a hand-edited plan changes what the score engine does not read: it composes
    from the picture, the plan's shots (where each one starts) and the plan's style and seed, not
    from cue texts or cue seeds. Each cue is compared with the planned cue at its first frame.
    `user_plan` has been through `_prompts_follow_edits`, so a prompt left as planned already
    reads as the planner writes it for the plan's own style."""
    from .plan import PlanOptions, make_plan

    fresh = make_plan(analysis, PlanOptions(style=user_plan.style, seed=user_plan.seed,
                                            sample_rate=user_plan.sample_rate))

    def planned(frame: int) -> Any:
        return next(c for c in reversed(fresh.cues) if c.start_frame <= frame)

    def texts(cue: Any) -> tuple:
        return cue.caption, cue.prompt, cue.seed

    if all(texts(cue) == texts(planned(cue.start_frame)) for cue in user_plan.cues):
        return []
    return ["the score engine composes from the picture and the plan's shots, style and seed: the cue captions, "
            "prompts or seeds edited in the plan change only what the audiostory backend renders"]


def read_user_plan(plan_path: str, analysis: Any, video: Path) -> Any:
    from .cache import content_fingerprint
    from .plan import check_plan_fits_cuts, load_plan, samples_follow_frames, validate_plan

    path = Path(plan_path).expanduser()
    if not path.is_file():
        raise InputError(f"The plan file {path} does not exist; check the path or make one with `dub plan`.")
    result = samples_follow_frames(load_plan(path), analysis.media)
    validate_plan(result, analysis.media)
    # A plan made for this very video may move its shots off the detected cuts (the editor knows
    # better); one of unknown origin must start its shots at this video's cuts, or it is taken
    # for the plan of another video of the same length and rate.
    if not result.source or result.source != content_fingerprint(video):
        check_plan_fits_cuts(result, analysis)
    return _text_follows_edits(_seeds_follow_the_plan_seed(result), analysis)


def _seeds_follow_the_plan_seed(user_plan: Any) -> Any:
    """A plan whose seed was edited by hand, its cue seeds left as they were planned, asks for a
    new take: when no cue's seed is the one the plan's seed gives it, every cue takes the seed the
    plan's seed gives (AudioStory reads cue seeds; the score engine reads the plan's). A plan in
    which some cue still has its planned seed keeps every cue seed as written."""
    from .plan import cue_seed

    planned = [cue_seed(user_plan.seed, i) for i in range(len(user_plan.cues))]
    if any(cue.seed == seed for cue, seed in zip(user_plan.cues, planned)):
        return user_plan
    return replace(user_plan, cues=tuple(replace(cue, seed=seed) for cue, seed in zip(user_plan.cues, planned)))


def _text_follows_edits(user_plan: Any, analysis: Any) -> Any:
    """What the model reads follows the hand edits of captions and style (`_prompts_follow_edits`,
    and the instruction, unless it was edited itself), and is recorded again (`with_model_text`)."""
    from .plan import PlanOptions, instruction_summary, long_form_instruction, make_plan, with_model_text
    from .styles import STYLES, get_style

    fresh = {name: make_plan(analysis, PlanOptions(style=name, seed=user_plan.seed,
                                                   sample_rate=user_plan.sample_rate)) for name in STYLES}
    plan = _prompts_follow_edits(user_plan, fresh)
    as_planned = {instruction_summary(p.instruction) for p in fresh.values()}
    if instruction_summary(plan.instruction) in as_planned:
        total_s = analysis.media.frame_count / analysis.media.fps
        plan = replace(plan, instruction=long_form_instruction(plan.cues, plan.sample_rate, float(total_s),
                                                               get_style(plan.style)))
    return with_model_text(plan)


def _prompts_follow_edits(user_plan: Any, fresh: dict[str, Any]) -> Any:
    """A cue whose caption (or the plan's style) was edited by hand while its prompt was left as
    the planner wrote it gets the prompt the planner writes for the new caption and style, as the
    studio does: the model reads both, and they must not contradict each other. A prompt edited
    by hand is kept as it is, and so is a shot given a style of its own (its prompt is the one
    the planner writes in another style than the rest). `fresh`: the plan the planner makes in
    each style."""
    from collections import Counter

    from .plan import cue_prompt
    from .styles import get_style

    if any(len(p.cues) != len(user_plan.cues) for p in fresh.values()):
        return user_plan   # shots split or joined by hand: nothing to compare a cue with
    planned_under = [[name for name, p in fresh.items() if p.cues[i].prompt == cue.prompt]
                     for i, cue in enumerate(user_plan.cues)]
    # The style most prompts were planned in is the one the plan was made in: when it is not the
    # plan's style now, the plan's style was edited and those prompts follow it; a prompt planned
    # in a third style is a shot's own choice and keeps its style.
    votes = Counter(name for names in planned_under for name in names)
    made_in = max(votes, key=lambda name: (votes[name], name == user_plan.style)) if votes else user_plan.style
    cues = []
    for i, cue in enumerate(user_plan.cues):
        names = planned_under[i]
        if names:
            target = user_plan.style if made_in in names else names[0]
            rewritten = cue_prompt(cue.caption, get_style(target))
            if cue.prompt != rewritten and (cue.caption != fresh[names[0]].cues[i].caption or target not in names):
                cue = replace(cue, prompt=rewritten)
        cues.append(cue)
    return replace(user_plan, cues=tuple(cues))
