"""Muting a cue: the shot before ends as its sound went on (or fades), never on a mirrored copy
of its own last samples; the muted cue's own sound rises over its last milliseconds to meet the
shot after, which is sample for sample what it was; every other sample is the mix with every cue
playing, and the stems still sum to the mix."""
from __future__ import annotations

import numpy as np
import pytest

from dubber.mix import MixOptions, mix
from dubber.types import Cue, CueAudio, DubPlan, RenderResult

SR = 48_000
BOUNDS = (0, 60_000, 110_000, 170_000)      # three shots; the middle one gets muted
FADE = int(5.0 * SR / 1000)               # "a few milliseconds" of fade next to a muted shot


def plan_of(bounds=BOUNDS) -> DubPlan:
    cues = tuple(Cue(i, i, 0, 1, a, b - a, "", "", 0, 0, 1) for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])))
    return DubPlan(SR, bounds[-1], "24/1", "tom-and-jerry", 0, "", cues)


def timeline(total: int, hz: float, phase: float = 0.0) -> np.ndarray:
    """A held chord, as one continuous timeline (a backend that renders the film at once)."""
    t = np.arange(total) / SR
    tone = 0.2 * np.sin(2 * np.pi * hz * t + phase) + 0.1 * np.sin(2 * np.pi * 1.5 * hz * t + phase)
    return np.stack([tone, 0.9 * tone]).astype(np.float32)


def render_of(plan: DubPlan, music: list[np.ndarray]) -> RenderResult:
    """Cue i's music from music[i] (a whole timeline), its effects a quieter copy."""
    cues = tuple(CueAudio(c.index, c.start_sample, {"music": m[:, c.start_sample:c.end_sample],
                                                    "fx": 0.5 * m[:, c.start_sample:c.end_sample]})
                 for c, m in zip(plan.cues, music))
    return RenderResult(backend="test", sample_rate=SR, cues=cues)


def mixes(render: RenderResult, plan: DubPlan):
    return mix(render, plan, MixOptions()), mix(render, plan, MixOptions(), muted=(1,))


@pytest.mark.parametrize("continuous", [True, False])
def test_muting_a_shot_leaves_no_click_and_no_mirror(continuous):
    plan = plan_of()
    total = plan.total_samples
    if continuous:
        music = [timeline(total, 220.0)] * 3
    else:   # three separately rendered cues: nothing continues across a cut
        music = [timeline(total, 220.0), timeline(total, 330.0, 1.0), timeline(total, 277.0, 2.0)]
    full, muted = mixes(render_of(plan, music), plan)
    a, b = BOUNDS[1], BOUNDS[2]
    out, whole = muted.mix, full.mix

    # The stems sum to the mix.
    assert np.allclose(sum(muted.stems.values()), out, atol=1e-6)
    # The first shot is as it was (but for its last milliseconds where it has to fade itself);
    # the last is as it was from its first sample.
    kept = a if continuous else a - FADE
    assert np.array_equal(out[:, :kept], whole[:, :kept])
    assert np.array_equal(out[:, b:], whole[:, b:])

    # No mirror: the muted shot does not open on the previous shot's last samples backwards.
    head = out[0, a:a + 2400]
    mirror = out[0, a - 2400:a][::-1]
    if np.any(head):
        corr = np.dot(head, mirror) / (np.linalg.norm(head) * np.linalg.norm(mirror))
        assert corr < 0.5, f"the muted shot opens on a mirror of the shot before (correlation {corr:.2f})"
    if continuous:
        # The previous shot's sound goes on into the muted one and dies away over the crossfade.
        assert np.allclose(out[:, a:a + 3], whole[:, a:a + 3], atol=2e-3)
    else:
        # Nothing of the shot before is repeated into the muted one: it fades on its own samples.
        assert not np.any(head)
        assert np.max(np.abs(out[:, a - 1])) < 0.01 * np.max(np.abs(whole[:, a - FADE:a]))
    assert not np.any(out[:, a + 2400:b - FADE]), "the muted shot is silent once the tail is over"

    # No click: over its last few milliseconds the muted shot's own sound rises from silence to
    # meet the shot after, which then starts on no larger step than it does with every cue playing.
    level = np.max(np.abs(whole[:, b - 4 * FADE:b + 4 * FADE]))
    assert np.max(np.abs(out[:, b - FADE])) < 0.02 * level
    rise = np.max(np.abs(np.diff(out[:, b - FADE:b], axis=-1)))
    assert rise < 0.2 * level, f"the muted shot's end rises on a step of {rise:.3f} (level {level:.3f})"
    step, as_it_was = (np.max(np.abs(np.diff(x[:, b - 1:b + 1], axis=-1))) for x in (out, whole))
    assert step <= as_it_was + 0.01 * level, f"the next shot starts on a step of {step:.3f} ({as_it_was:.3f} unmuted)"


@pytest.mark.parametrize("reached, side", [(-17.2, "under"), (-15.3, "over")])
def test_a_mix_off_its_target_because_of_muted_shots_says_so_either_way(reached, side):
    """Loudness is measured over what sounds: muting the quiet shots leaves the loud ones, and the
    film can measure over the target as well as under it. Either way the note names the muted
    shots, never a true-peak ceiling (which only holds a loud target down)."""
    from types import SimpleNamespace

    from dubber.options import DubOptions
    from dubber.run_notes import loudness_notes

    (note,) = loudness_notes(SimpleNamespace(integrated_lufs=reached), DubOptions(muted_cues=(1, 2)))
    assert f"{side} the -16 asked, because 2 muted shots are silent" in note and "true-peak" not in note
    # with nothing muted, a mix held under a loud target is the ceiling's doing
    (ceiling,) = loudness_notes(SimpleNamespace(integrated_lufs=-17.2), DubOptions())
    assert "true-peak ceiling" in ceiling
