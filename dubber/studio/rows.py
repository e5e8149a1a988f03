"""The studio's table: one row per cue of a plan (its shot, picture, times, caption, prompt, style,
seed, hit points and mute), and a person's edits of those rows read back into the plan, checked
(the hits column's are read by `dubber.studio.hit_cells`)."""
from __future__ import annotations

import decimal
from dataclasses import replace
from typing import Any, Mapping, Sequence

from vision.types import MediaInfo

from ..errors import InputError
from ..plan import SEED_MODULUS, cue_prompt
from ..styles import STYLES, available_styles, get_style
from ..types import DubPlan

COLUMNS = ("shot", "picture", "start", "end", "caption", "prompt", "style", "seed", "hits", "mute")
CUSTOM_STYLE = "custom"   # a prompt that ends with no known style's text
SHOWN_DIGITS = 40   # a seed given longer than this is named by its length in a message


def timecode(frame: int, media: MediaInfo) -> str:
    """The time code an editor reads at a frame: from the file's own start time code,
    drop-frame when that is (see `dubber.export.timeline.frame_timecode`)."""
    from ..export.timeline import frame_timecode

    return frame_timecode(media, frame)


def style_of(prompt: str) -> str:
    """The style whose text a prompt ends with (how `cue_prompt` builds it), or CUSTOM_STYLE."""
    return next((name for name, s in STYLES.items() if prompt.endswith(s.prompt)), CUSTOM_STYLE)


def shot_label(cue: Any) -> str:
    label = str(cue.shot_index + 1)
    return label if cue.parts == 1 else f"{label} ({cue.part + 1}/{cue.parts})"


def plan_rows(plan: DubPlan, media: MediaInfo, thumbnail_cells: Sequence[str],
              muted: Sequence[int] = (), *, hit_cells: Sequence[str]) -> list[list]:
    """The shots table: one row per cue, in COLUMNS order; `thumbnail_cells` is what the page
    shows in the picture column and `hit_cells` its hits column (one each per cue,
    `dubber.studio.hit_cells.hit_cells`)."""
    return [[shot_label(c), thumb, timecode(c.start_frame, media), timecode(c.end_frame, media), c.caption,
             c.prompt, style_of(c.prompt), c.seed, hits, c.index in muted]
            for c, thumb, hits in zip(plan.cues, thumbnail_cells, hit_cells, strict=True)]


def check_seed(value: Any, what: str) -> int:
    """A seed as an int in [0, SEED_MODULUS), read exactly: an int, a whole float, or text such as
    "42", "42.0" or "4.2e1" (a form field or a table cell). A whole number that cannot be used is
    named in digits, never in float notation (1.2345e+19 reads as 12345000000000000000).

    Raises:
        InputError: not a whole number, or out of range.
    """
    shown, number = _whole_number(value)
    if number is None:
        raise InputError(f"{what} {shown!r} is not a whole number from 0 to {SEED_MODULUS - 1}; enter one.")
    if not 0 <= number < SEED_MODULUS:
        raise InputError(f"{what} {shown} is out of range: seeds go from 0 to {SEED_MODULUS - 1}; enter one of those.")
    return int(number)


def _whole_number(value: Any) -> tuple[str, decimal.Decimal | None]:
    """How a seed is named back to a person, and its exact value when it is a whole number (else
    None). Decimal, not float: a float holds no integer above 2**53 exactly."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and not value.is_integer():   # a fraction, inf or nan
            return str(value), None
        number = decimal.Decimal(value)   # exact: an int, or a float (a binary fraction)
        return _in_digits(number), number
    text = str(value).strip()
    try:
        number = decimal.Decimal(text)
    except decimal.InvalidOperation:
        number = None
    if number is None or not number.is_finite() or number != number.to_integral_value():
        return (text if len(text) <= SHOWN_DIGITS else f"{text[:SHOWN_DIGITS]}…"), None
    return _in_digits(number), number


def _in_digits(number: decimal.Decimal) -> str:
    """A whole number in digits, never in float notation; one too long to read by its length."""
    digits = number.adjusted() + 1
    return str(int(number)) if digits <= SHOWN_DIGITS else f"(a {digits}-digit number)"


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "on", "x")
    return bool(value)


def without_style(prompt: str) -> str:
    """A prompt's own words: the prompt less the style text `cue_prompt` puts at its end."""
    style = style_of(prompt)
    return prompt if style == CUSTOM_STYLE else prompt[:-len(STYLES[style].prompt)].strip()


def _edited_cue(cue: Any, row: Mapping[str, Any]) -> Any:
    """`cue` with one row's caption, prompt, style and seed applied, against what the table showed
    for it (`cue`). A prompt in the planner's wording follows an edited caption; a style picked in
    the style cell replaces only the style text at the prompt's end, so words written by hand in
    the prompt (in this edit or an earlier take) are kept."""
    who = f"Shot {shot_label(cue)}'s"
    caption = " ".join(str(row["caption"]).split())
    prompt = " ".join(str(row["prompt"]).split())
    style = str(row["style"]).strip()
    seed = check_seed(row["seed"], f"{who} seed")
    if style not in (CUSTOM_STYLE, *available_styles()):
        raise InputError(f"{who} style {style!r} is unknown; choose one of: {', '.join(available_styles())}.")
    shown = " ".join(cue.prompt.split())
    prompt_edited = prompt != shown
    # Only a change of the style cell itself picks a style: the cell shows "custom" for a prompt
    # with no known style's text, and leaving it so keeps that prompt as written.
    shown_style = style_of(shown)
    style_picked = style != shown_style and style != CUSTOM_STYLE
    planner_wording = (not prompt_edited and shown_style != CUSTOM_STYLE
                       and shown == cue_prompt(cue.caption, get_style(shown_style)))
    if planner_wording and (caption != cue.caption or style_picked):
        prompt = cue_prompt(caption, get_style(style if style_picked else shown_style))
    elif style_picked:
        prompt = cue_prompt(without_style(prompt), get_style(style))
    if not prompt:
        raise InputError(f"{who} prompt is empty; describe the sound of the shot.")
    if (caption, prompt, seed) == (cue.caption, cue.prompt, cue.seed):
        return cue
    return replace(cue, caption=caption, prompt=prompt, seed=seed)


def apply_rows(plan: DubPlan, rows: Sequence[Sequence[Any]], *,
               allow_all_muted: bool = False) -> tuple[DubPlan, tuple[int, ...]]:
    """The plan with the table's edits, and the indices of the muted cues (every cue muted is
    refused, as nothing would be heard, unless `allow_all_muted`).

    Raises:
        InputError: the table does not match the plan, or a cell holds a value that cannot be used.
    """
    _check_rows_are_the_shots(plan, rows)
    cues, muted = [], []
    for cue, values in zip(plan.cues, rows):
        row = dict(zip(COLUMNS, values))
        if len(values) != len(COLUMNS) or str(row["shot"]) != shot_label(cue):
            raise InputError("The shots table no longer matches the video; open the video again.")
        cues.append(_edited_cue(cue, row))
        if _as_bool(row["mute"]):
            muted.append(cue.index)
    if len(muted) == len(cues) and not allow_all_muted:
        raise InputError("Every shot is muted; unmute at least one to render.")
    return replace(plan, cues=tuple(cues)), tuple(muted)


def _check_rows_are_the_shots(plan: DubPlan, rows: Sequence[Sequence[Any]]) -> None:
    """Shots follow the film's cuts: a row added or deleted in the table is refused, saying which
    and what to do instead (the user's other edits stay in the table)."""
    labels = [shot_label(cue) for cue in plan.cues]
    given = [str(values[0]) if len(values) else "" for values in rows]
    missing = [label for label in labels if label not in given]
    if missing:
        which = f"shot {missing[0]}" if len(missing) == 1 else f"shots {', '.join(missing)}"
        raise InputError(f"The shots table lost the row of {which}; shots follow the film's cuts and "
                         "cannot be removed, so tick a shot's mute box to silence it (open the video again to get "
                         "the row back).")
    if len(rows) != len(labels):
        raise InputError(f"The shots table has {len(rows) - len(labels)} row(s) more than the film has shots; "
                         "delete the rows you added, since shots follow the film's cuts.")
