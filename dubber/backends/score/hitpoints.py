"""Hit points: the moments of the picture the music must land on, read from the analysis.

Cuts are always hit points (the music changes key and starts a bar there). Visual events are hit
points by kind and strength; the strongest of them become tempo anchors, so a beat falls exactly
on their frame, as the click tracks of the 1930s-40s cartoon studios were computed to do.
"""
from __future__ import annotations

from dataclasses import dataclass

from vision.types import VideoAnalysis

SUSTAINED_KINDS = frozenset({"whoosh", "run", "shake", "fast_motion"})
ANCHOR_KINDS = frozenset({"impact", "landing", "explosion", "splash", "flash"})
MIN_STRENGTH = 0.05     # events weaker than this are not scored at all
MERGE_S = 0.06          # two events of one kind closer than this are one sound
ANCHOR_MIN_STRENGTH = 0.25
MIN_BEAT_S = 0.34       # anchors closer than one beat at the fastest tempo cannot both be beats
CUT_GUARD_S = 0.34      # the first anchor keeps this far from the start of the film
SERIES_GAP_S = 0.5      # events closer than this to the next one form a series ...
SERIES_MIN = 3          # ... when there are at least this many


@dataclass(frozen=True)
class HitPoint:
    """One moment to score. `kind` is "cut" or a vision event kind; times in seconds."""

    time_s: float
    kind: str
    strength: float
    end_s: float
    x: float = 0.5

    @property
    def sustained(self) -> bool:
        return self.kind in SUSTAINED_KINDS


def event_points(analysis: VideoAnalysis) -> list[HitPoint]:
    """The analysis events as hit points, in time order, near-duplicates of one kind merged."""
    media = analysis.media
    points: list[HitPoint] = []
    for event in sorted(analysis.events, key=lambda e: (e.frame, e.kind)):
        if event.strength < MIN_STRENGTH or event.frame >= media.frame_count:
            continue
        start = float(media.frame_time(event.frame))
        end = float(media.frame_time(min(event.end_frame, media.frame_count)))
        kind = "whoosh" if event.kind == "fast_motion" else event.kind
        last = next((p for p in reversed(points) if p.kind == kind), None)
        if last is not None and start - last.time_s < MERGE_S:
            if event.strength > last.strength:
                points[points.index(last)] = HitPoint(last.time_s, kind, event.strength, max(end, last.end_s), event.x)
            continue
        points.append(HitPoint(start, kind, float(event.strength), end, float(event.x)))
    return points


def series_spans(events: list[HitPoint], gap_s: float = SERIES_GAP_S) -> list[tuple[float, float]]:
    """(first, last) times of every run of SERIES_MIN or more instantaneous events each closer than
    gap_s to the next: a flurry of blows, which the effects play and the music leaves alone."""
    times = sorted(p.time_s for p in events if not p.sustained)
    spans, first = [], 0
    for i in range(1, len(times) + 1):
        if i == len(times) or times[i] - times[i - 1] >= gap_s:
            if i - first >= SERIES_MIN:
                spans.append((times[first], times[i - 1]))
            first = i
    return spans


def tempo_anchors(cuts: list[HitPoint], events: list[HitPoint], min_beat_s: float = MIN_BEAT_S) -> list[float]:
    """Times (s) a beat must fall on: every cut, then the strongest instantaneous events that keep
    at least `min_beat_s` (a beat at the fastest tempo the music may take) from every anchor
    already taken (strongest first). Inside a series of blows only its first and last are
    candidates: the music does not tick along with the flurry."""
    taken = [p.time_s for p in cuts]
    inner = {t for a, b in series_spans(events) for t in (p.time_s for p in events) if a < t < b}
    candidates = [p for p in events if p.kind in ANCHOR_KINDS and p.strength >= ANCHOR_MIN_STRENGTH
                  and p.time_s not in inner]
    for point in sorted(candidates, key=lambda p: (-p.strength, p.time_s)):
        if point.time_s >= max(CUT_GUARD_S, min_beat_s) and all(abs(point.time_s - t) >= min_beat_s for t in taken):
            taken.append(point.time_s)
    return sorted(taken)
