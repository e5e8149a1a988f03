"""SubRip (.srt) captions of the shots, timed exactly from frame times.

Times are exact fractions rounded once, to the nearest millisecond, so a shot's end and the next
shot's start print the same time and the captions never overlap or leave a gap. The last caption's
end, the end of the video, is rounded down instead: a subtitle that outlasts the picture, even by
half a millisecond, fails a delivery check.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

from vision.types import MediaInfo

from ..types import DubPlan


@dataclass(frozen=True)
class SrtEntry:
    """One caption shown over frames [start_frame, end_frame)."""

    start_frame: int
    end_frame: int
    text: str


def format_srt_time(time_s: Fraction, round_down: bool = False) -> str:
    """Exact seconds as SubRip's HH:MM:SS,mmm, rounded to the nearest millisecond (halves up), or
    down to it when `round_down`.

    Raises:
        ValueError: negative time.
    """
    if time_s < 0:
        raise ValueError(f"negative time {time_s}")
    total_ms = math.floor(Fraction(time_s) * 1000 + (0 if round_down else Fraction(1, 2)))
    hours, rest = divmod(total_ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d},{millis:03d}"


def entries_from_plan(plan: DubPlan) -> list[SrtEntry]:
    """One entry per shot (parts of a split shot joined), using the plan's (possibly edited) captions."""
    entries: list[SrtEntry] = []
    for cue in plan.cues:
        last = entries[-1] if entries else None
        if last is not None and cue.part > 0 and last.end_frame == cue.start_frame:
            entries[-1] = SrtEntry(last.start_frame, cue.end_frame, last.text)
        else:
            entries.append(SrtEntry(cue.start_frame, cue.end_frame, cue.caption))
    return entries


def srt_text(entries: list[SrtEntry], media: MediaInfo) -> str:
    """The .srt document: numbered blocks separated by blank lines; empty captions are skipped."""
    blocks = []
    for entry in (e for e in entries if e.text.strip()):
        start = format_srt_time(media.frame_time(entry.start_frame))
        end = format_srt_time(media.frame_time(entry.end_frame), round_down=entry.end_frame >= media.frame_count)
        blocks.append(f"{len(blocks) + 1}\n{start} --> {end}\n" + "\n".join(caption_lines(entry.text)) + "\n")
    return "\n".join(blocks)


def caption_lines(text: str) -> list[str]:
    """A caption's lines as SubRip may carry them: no blank line (it would end the cue) and no
    "-->" (players read a line holding one as the timing of a new cue, even without a blank line
    before it), so a caption can never forge cues of its own."""
    return [re.sub(r"-{2,}>", "->", line.strip()) for line in text.strip().splitlines() if line.strip()]
