"""The events a dub's soundtrack hits: the analysis's events, less the sustained motions a composer
lets go, and every hit the user spotted.

A whoosh, a run or a shake is scored when it is strong enough and the last one scored is over:
the big gestures, not every twitch of motion. Events that land on one frame (impacts, landings,
flashes) are all kept; the score engine voices a series of them as one figure. A spotted hit
(`--hits`) always plays, and a detected sustained motion that would overlap it gives way. The
dub's manifest, its timelines' markers and the review page list exactly these events, and the
backends render them, so a marker never stands on a moment that makes no sound.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from vision.types import VideoAnalysis

SUSTAINED_KINDS = frozenset({"whoosh", "run", "shake", "fast_motion"})
SUSTAINED_MIN_STRENGTH = 0.45
SUSTAINED_GAP_S = 1.0   # s of quiet after a scored whoosh or run before the next one is scored


def played_events(analysis: VideoAnalysis) -> VideoAnalysis:
    """`analysis` with only the events its soundtrack hits (see the module's docstring)."""
    media = analysis.media
    spotted = {(hit["frame"], hit["kind"]) for hit in _spotted_hits(analysis.settings)}

    def span(event) -> tuple[float, float]:
        return float(media.frame_time(event.frame)), float(media.frame_time(min(event.end_frame, media.frame_count)))

    ordered = sorted(analysis.events, key=lambda e: (e.frame, e.kind))
    claimed = [span(e) for e in ordered if e.kind in SUSTAINED_KINDS and (e.frame, e.kind) in spotted]
    kept, last_end = [], float("-inf")
    for event in ordered:
        if event.kind in SUSTAINED_KINDS and (event.frame, event.kind) not in spotted:
            start, end = span(event)
            if (event.strength < SUSTAINED_MIN_STRENGTH or start < last_end + SUSTAINED_GAP_S
                    or any(start < b + SUSTAINED_GAP_S and a < end + SUSTAINED_GAP_S for a, b in claimed)):
                continue
            last_end = end
        elif event.kind in SUSTAINED_KINDS:
            last_end = max(last_end, span(event)[1])
        kept.append(event)
    if len(kept) == len(analysis.events):
        return analysis
    return replace(analysis, events=tuple(kept))


def _spotted_hits(settings: dict[str, Any]) -> list[dict[str, Any]]:
    hits = settings.get("spotted_hits") or []
    return [h for h in hits if isinstance(h, dict) and "frame" in h and "kind" in h]
