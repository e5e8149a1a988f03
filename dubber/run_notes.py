"""What a dub says beside its output about choices it made for the user: which of the source's
audio tracks the mix ducks under the dub, and why the mix ends at another loudness than asked.
Each is a sentence for the manifest and the command line, or nothing.
"""
from __future__ import annotations

import math
from typing import Any

from .options import DubOptions, resolve_lufs, resolve_true_peak


def bed_notes(media: Any, options: DubOptions) -> list[str]:
    """With --keep-original and several audio tracks: which one the mix ducks under the dub."""
    from .media.audio_io import programme_track

    tracks = media.audio_tracks or ()
    if not (options.keep_original and len(tracks) > 1):
        return []
    chosen = programme_track([t.default for t in tracks])
    track = tracks[chosen]
    label = ", ".join(x for x in (track.language, track.title) if x)
    why = "the one the file marks as default" if track.default else "the first; the file marks none as default"
    return [f"the source's sound under the dub in the mix is its audio track {chosen + 1}"
            f"{f' ({label})' if label else ''}, {why}; all {len(tracks)} tracks are kept after the dub"]


def loudness_notes(soundtrack: Any, options: DubOptions) -> list[str]:
    """A note when the mix measures more than half a LU from the loudness asked: muted shots
    (the others keep the level they have with every shot playing, so the film measures quieter,
    or louder where the shots left are the loud ones: loudness is measured over what sounds), or
    a target so loud that the true-peak ceiling would need more limiting than the mix allows."""
    target, reached = resolve_lufs(options.lufs), float(soundtrack.integrated_lufs)
    if not math.isfinite(reached) or abs(reached - target) <= 0.5:
        return []
    if options.muted_cues:
        count = len(options.muted_cues)
        side = "under" if reached < target else "over"
        why = ("" if reached < target else
               " (loudness is measured over what sounds, and the shots left playing are the louder ones)")
        return [f"the mix measures {reached:.1f} LUFS, {side} the {target:g} asked, because {count} muted shot"
                f"{'s are' if count > 1 else ' is'} silent{why}: the other shots keep the level they have with "
                "every shot playing, sample for sample"]
    return [f"the mix reaches {reached:.1f} LUFS, not the {target:g} asked: the true-peak ceiling of "
            f"{resolve_true_peak(options.lufs):g} dBTP held, and more loudness would take more limiting than a "
            "mix allows; choose a lower target with --lufs"]
