"""The text AudioStory's language model reads, composed exactly as the released model saw it.

Pure string work: no torch, no transformers, so a plan (`dubber.plan`) can record the text
without loading the model. Layout (spec §1.2, §1.4; the paper's Fig. 3 and the dubbing case of
§5):

    <|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n
    <|im_start|>user\\n{lead}{summary} The total duration is 38.5 seconds.<|im_end|>\\n
    <|im_start|>assistant\\n<|think|>The caption can be divided into four points:

    1. **[0.0, 9.8]**
     - **Story Details**: A woman chews food slowly and deliberately.
     - **Sound Effects**: Wet, rhythmic chewing sounds.

    2. **[9.8, 12.8]**
    ...<|/think|>
    <|gen|>{clip caption} <timestamp>9.8</timestamp><t5>…</t5><aud>…</aud><|/gen|>   (one per clip)

Every time is written in tenths of a second, and the clip lengths are differences of the rounded
boundaries, so the timestamps add up to the stated total and each point's interval ends where the
next begins (9.8 + 3.0 + 12.7 + 13.0 = 38.5 in the paper's example).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

IM_START, IM_END, END_OF_TEXT = "<|im_start|>", "<|im_end|>", "<|endoftext|>"
TS_OPEN, TS_CLOSE = "<timestamp>", "</timestamp>"
THINK_OPEN, THINK_CLOSE = "<|think|>", "<|/think|>"
GEN_OPEN, GEN_CLOSE = "<|gen|>", "<|/gen|>"

SYSTEM_TEXT = "You are a helpful assistant."
# Python's random.choice picks lead phrase 12 of the official 20 under the default seed 0 (spec §1.2).
DEFAULT_LEAD = "Produce an in-depth, multi-layered audio that portrays "
# The naive video-dubbing instruction of the paper (spec §5); like every official lead it ends in a space.
DUBBING_LEAD = "Generate a classic Tom and Jerry style soundtrack for a moment in the cartoon that includes "
REASONING_OPENING = "The caption can be divided into {count} {noun}:"

_NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                 "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
                 "eighteen", "nineteen", "twenty")
_ARTICLES = ("A ", "An ", "The ")


# --------------------------------------------------------------------------------------------
# Times
# --------------------------------------------------------------------------------------------
def tenths(seconds: float) -> int:
    """Seconds → whole tenths of a second, rounded half away from zero (3.25 s → 33)."""
    scaled = abs(float(seconds)) * 10.0
    whole = int(scaled + 0.5 + 1e-9)
    return whole if seconds >= 0 else -whole


def format_tenths(value: int) -> str:
    """Tenths → the one-decimal text the model reads: 98 → "9.8", 30 → "3.0", 500 → "50.0"."""
    sign = "-" if value < 0 else ""
    return f"{sign}{abs(value) // 10}.{abs(value) % 10}"


def boundaries_tenths(durations_s: Sequence[float]) -> list[int]:
    """Clip boundaries [0, b1, …, bn] in tenths: each cumulative end rounded once, so rounding
    errors never pile up and consecutive clips share their boundary."""
    out, end_s = [0], 0.0
    for dur in durations_s:
        end_s += float(dur)
        out.append(max(out[-1], tenths(end_s)))
    return out


# --------------------------------------------------------------------------------------------
# Sentences
# --------------------------------------------------------------------------------------------
def sentence(text: str) -> str:
    """One line ending in a full stop (kept when it already ends in . ! or ?)."""
    text = " ".join(str(text).split()).rstrip(" ,;:")
    if not text:
        return ""
    return text if text[-1] in ".!?" else text + "."


def story_summary(captions: Sequence[str]) -> str:
    """The instruction's caption: the clips' captions in order as sentences, a caption repeated by
    consecutive clips (the parts of a split shot) said once. The first sentence follows the lead
    ("…that includes a cat …"), so a leading article is lower-cased."""
    distinct: list[str] = []
    for caption in (sentence(c) for c in captions):
        if caption and (not distinct or distinct[-1] != caption):
            distinct.append(caption)
    if not distinct:
        return ""
    first = distinct[0]
    if first.startswith(_ARTICLES):
        distinct[0] = first[0].lower() + first[1:]
    return " ".join(distinct)


def instruction_text(caption: str, total_duration_s: float, lead: str = DEFAULT_LEAD) -> str:
    """The official instruction template: `(lead + caption).strip()` + " The total duration is
    {T} seconds.", T printed as a Python float (50 → "50.0", spec §1.2)."""
    return f"{(lead + caption).strip()} The total duration is {float(total_duration_s)} seconds."


def chat_prompt(instruction: str) -> str:
    """The full prompt string; tokenize it with add_special_tokens=False (no BOS)."""
    return (
        f"{IM_START}system\n{SYSTEM_TEXT}{IM_END}\n"
        f"{IM_START}user\n{instruction}{IM_END}\n"
        f"{IM_START}assistant\n{THINK_OPEN}"
    )


# --------------------------------------------------------------------------------------------
# Reasoning block and clip captions
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClipText:
    """What one clip is about: the reasoning point's two lines and the clip caption."""

    story: str        # "Story Details": what happens
    sounds: str       # "Sound Effects": what it sounds like
    caption: str      # the clip caption written after `<|gen|>`


def count_words(count: int, noun: str) -> str:
    """"four points", "one point", "21 points"."""
    word = _NUMBER_WORDS[count] if count < len(_NUMBER_WORDS) else str(count)
    return f"{word} {noun if count == 1 else noun + 's'}"


def reasoning_text(clips: Sequence[ClipText], bounds: Sequence[int]) -> str:
    """The storyline the model writes between `<|think|>` and `<|/think|>` (spec §1.4): one
    numbered point per clip with its [start, end] interval, story details and sound effects.

    Args:
        clips: one ClipText per clip.
        bounds: boundaries in tenths, len(clips) + 1 of them (see `boundaries_tenths`).
    """
    count, noun = count_words(len(clips), "point").split(" ", 1)
    points = [REASONING_OPENING.format(count=count, noun=noun)]
    for i, clip in enumerate(clips):
        points.append(
            f"{i + 1}. **[{format_tenths(bounds[i])}, {format_tenths(bounds[i + 1])}]**\n"
            f" - **Story Details**: {sentence(clip.story)}\n"
            f" - **Sound Effects**: {sentence(clip.sounds)}")
    return "\n\n".join(points)


def clip_text(caption: str, duration_tenths: int) -> str:
    """The text between `<|gen|>` and `<t5>`: "Wet chewing sounds. <timestamp>9.8</timestamp>"."""
    return f"{sentence(caption)} {TS_OPEN}{format_tenths(duration_tenths)}{TS_CLOSE}"


@dataclass(frozen=True)
class StoryText:
    """Everything the language model reads for a fixed clip plan, as text."""

    instruction: str                  # the user turn
    reasoning: str                    # the storyline inside the think block
    clips: tuple[str, ...]            # per clip: caption + <timestamp> tag (see `clip_text`)
    durations_tenths: tuple[int, ...]

    @property
    def prompt(self) -> str:
        """The chat prompt, ending in `<|think|>`."""
        return chat_prompt(self.instruction)

    @property
    def prefix(self) -> str:
        """Prompt, storyline and `<|/think|>`: all the text before the first clip."""
        return self.prompt + self.reasoning + THINK_CLOSE

    def clip_block(self, i: int, queries: str = "") -> str:
        """Clip i as the model reads it; `queries` stands for its query-token chains."""
        return f"{GEN_OPEN}{self.clips[i]}{queries}{GEN_CLOSE}"


def compose_story(clips: Sequence[ClipText], durations_s: Sequence[float], lead: str = DEFAULT_LEAD,
                  summary: str | None = None) -> StoryText:
    """The text of a fixed clip plan.

    Args:
        clips: story, sounds and caption of each clip, in time order.
        durations_s: each clip's length in seconds (written in tenths).
        lead: the instruction's lead phrase (ends in a space, as the official ones do).
        summary: the instruction's caption; default: the clip captions (`story_summary`).

    Raises:
        ValueError: no clips, or not one duration per clip.
    """
    if not clips or len(clips) != len(durations_s):
        raise ValueError(f"need one duration per clip, got {len(clips)} clips and {len(durations_s)} durations")
    bounds = boundaries_tenths(durations_s)
    lengths = tuple(b - a for a, b in zip(bounds, bounds[1:]))
    text = story_summary([c.caption for c in clips]) if summary is None else summary
    instruction = instruction_text(text, bounds[-1] / 10, lead)
    return StoryText(instruction, reasoning_text(clips, bounds),
                     tuple(clip_text(c.caption, n) for c, n in zip(clips, lengths)), lengths)
