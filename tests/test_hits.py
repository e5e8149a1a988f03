"""The events a dub's soundtrack hits: sustained motions thinned as a composer would, instants all
kept, and a spotted hit always played, a detected motion that would overlap it giving way."""
from __future__ import annotations

from fractions import Fraction

from dubber.hits import played_events
from vision.types import MediaInfo, Shot, VideoAnalysis, VisualEvent

FILM = MediaInfo(path="v.mp4", duration_s=20.0, fps=Fraction(24), frame_count=480, width=64, height=36)


def _analysis(events, spotted=()) -> VideoAnalysis:
    return VideoAnalysis(media=FILM, shots=(Shot(0, 0, 480),), events=tuple(VisualEvent(*e) for e in events),
                         motion=(0.3,) * 480, captions=(),
                         settings={"spotted_hits": [{"frame": f, "end_frame": f + 1, "kind": k, "strength": 0.5}
                                                    for f, k in spotted]})


def _kept(analysis: VideoAnalysis) -> list[tuple[int, str]]:
    return [(e.frame, e.kind) for e in played_events(analysis).events]


def test_weak_and_overlapping_motions_are_let_go_and_every_instant_kept():
    events = [(24, "whoosh", 0.9, 36), (40, "whoosh", 0.9, 48),   # the second starts 0.2 s after the first ends
              (44, "impact", 0.2, 45), (45, "impact", 0.9, 46),    # instants: all kept, however weak or close
              (120, "run", 0.3, 150),                             # too weak to score
              (200, "shake", 0.6, 210), (240, "run", 0.7, 280)]   # a second after the shake: both kept
    assert _kept(_analysis(events)) == [(24, "whoosh"), (44, "impact"), (45, "impact"), (200, "shake"),
                                        (240, "run")]


def test_a_spotted_motion_plays_however_weak_and_a_detected_one_beside_it_gives_way():
    events = [(24, "whoosh", 0.9, 40),     # detected, ends 0.5 s before the spotted one starts
              (52, "whoosh", 0.3, 64),     # spotted, weak
              (70, "whoosh", 0.95, 80),    # detected, strong, right after it
              (140, "run", 0.8, 160)]      # detected, well clear
    assert _kept(_analysis(events, spotted=[(52, "whoosh")])) == [(52, "whoosh"), (140, "run")]


def test_an_analysis_with_nothing_to_thin_comes_back_as_it_was():
    analysis = _analysis([(24, "impact", 0.9, 25), (100, "whoosh", 0.8, 110)])
    assert played_events(analysis) is analysis
