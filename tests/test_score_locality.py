"""A hit edit leaves the music before it alone: editors review and re-render shot by shot, so a hit
point added in one shot must not change a note of the shots before it (it did: the whole film drew
from one seeded stream, tempo map first, so one more anchor moved every draw, keys included)."""
from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest

from dubber.backends.score import compose_score

from test_score import analysis_with

SAMPLE = json.loads((Path(__file__).resolve().parent.parent / "samples" / "cartoon_demo.json").read_text())
FPS = Fraction(SAMPLE["fps"])
FRAMES = SAMPLE["frame_count"]
CUTS = tuple(SAMPLE["cut_frames"])
EVENTS = tuple((e["frame"], e["kind"], 0.8) for e in SAMPLE["events"])
# The hit an editor types into the fourth shot (frames 215-273): a strong blow, so it is a tempo
# anchor too and reshapes that shot's tempo map.
EDITED_SHOT_START = CUTS[2]
ADDED = (258, "impact", 0.9)


def heard(score, before_s: float) -> list[tuple]:
    """What an editor hears of the notes that start before `before_s`: onset, pitch, velocity,
    instrument (how long a note rings into the edited shot may change with it)."""
    return sorted((round(n.start_s, 9), n.pitch, n.velocity, n.part.program, n.part.drums, n.role)
                  for n in score.notes if n.start_s < before_s)


@pytest.mark.parametrize("style", ["tom-and-jerry", "silent-film"])
@pytest.mark.parametrize("seed", [0, 7, 123456])
def test_a_hit_added_to_a_shot_leaves_every_note_before_that_shot_as_it_was(seed, style):
    as_detected = analysis_with(events=EVENTS, cuts=CUTS, frames=FRAMES, fps=FPS)
    edited = analysis_with(events=(*EVENTS, ADDED), cuts=CUTS, frames=FRAMES, fps=FPS)
    duration_s = as_detected.media.duration_s
    before = compose_score(as_detected, style, seed, duration_s)
    after = compose_score(edited, style, seed, duration_s)
    shot_start_s = float(as_detected.media.frame_time(EDITED_SHOT_START))

    assert heard(after, shot_start_s) == heard(before, shot_start_s)
    assert [s for s in after.shots if s.start_s < shot_start_s] == [s for s in before.shots if s.start_s < shot_start_s]
    # and the edit is heard: the music of the edited shot is written anew
    assert heard(after, duration_s) != heard(before, duration_s)
