"""The synthetic sample media: the pictures and timestamps really hold what the ground truth says.

Checked with PyAV directly, never with `vision`, so the ground truth can be trusted by the
vision tests.
"""
from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from samples.synth import SynthSpec, synthesize

REPO_ROOT = Path(__file__).resolve().parent.parent


def _decode_grey_means(path) -> tuple[list[float], list[int], Fraction]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        means, pts = [], []
        for frame in container.decode(stream):
            means.append(float(frame.to_ndarray(format="gray").mean()))
            pts.append(frame.pts)
        return means, pts, Fraction(stream.time_base)


def _check_truth_layout(truth: dict) -> None:
    shots = truth["shots"]
    assert shots[0]["start_frame"] == 0 and shots[-1]["end_frame"] == truth["frame_count"]
    assert all(a["end_frame"] == b["start_frame"] for a, b in zip(shots, shots[1:]))
    assert truth["cut_frames"] == [s["start_frame"] for s in shots[1:]]
    kinds = {e["kind"] for e in truth["events"]}
    assert kinds == {"impact", "flash", "whoosh"}
    for event in truth["events"]:  # every event sits well inside one shot
        shot = next(s for s in shots if s["start_frame"] <= event["frame"] < s["end_frame"])
        assert event["frame"] - shot["start_frame"] >= 5 and shot["end_frame"] - event["end_frame"] >= 5


@pytest.mark.parametrize("fixture", ["sample_24p", "sample_30p_silent", "sample_vfr"])
def test_ground_truth_is_written_next_to_the_video_and_consistent(fixture, request):
    path, truth = request.getfixturevalue(fixture)
    assert json.loads(path.with_suffix(".json").read_text()) == truth
    _check_truth_layout(truth)
    assert len(truth["shots"]) >= 3


def test_24p_sample_has_exact_rate_frame_count_and_a_sound_track(sample_24p):
    path, truth = sample_24p
    means, pts, time_base = _decode_grey_means(path)
    assert len(means) == truth["frame_count"]
    with av.open(str(path)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert Fraction(video.average_rate) == Fraction(24000, 1001) == Fraction(truth["fps"])
        assert (video.codec_context.width, video.codec_context.height) == (320, 180)
        assert video.codec_context.pix_fmt == "yuv420p"
        assert audio.codec_context.name == "aac" and audio.codec_context.sample_rate == 48000
    assert [p * time_base for p in pts] == [Fraction(i) * Fraction(1001, 24000) for i in range(len(pts))]


def test_30p_sample_is_silent(sample_30p_silent):
    path, truth = sample_30p_silent
    with av.open(str(path)) as container:
        assert not container.streams.audio
        assert Fraction(container.streams.video[0].average_rate) == 30
    assert truth["has_audio"] is False


def test_vfr_sample_timestamps_are_irregular_and_match_the_truth(sample_vfr):
    path, truth = sample_vfr
    _, pts, time_base = _decode_grey_means(path)
    truth_tb = Fraction(truth["time_base"])
    assert [p * time_base for p in pts] == [p * truth_tb for p in truth["frame_pts"]]
    steps = {b - a for a, b in zip(truth["frame_pts"], truth["frame_pts"][1:])}
    assert len(steps) >= 3  # really variable
    total = Fraction(truth["frame_count"]) / Fraction(truth["fps"])
    assert float(total) == pytest.approx(truth["duration_s"])


def test_planted_flashes_cuts_and_impacts_are_visible_in_the_pixels(sample_24p):
    path, truth = sample_24p
    means, _, _ = _decode_grey_means(path)
    for event in truth["events"]:
        f = event["frame"]
        if event["kind"] == "flash":
            assert means[f] > 200 and means[f] - means[f - 1] > 60
            assert abs(means[event["end_frame"]] - means[f - 1]) < 10  # back to normal after it
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24").astype(np.int16) for f in container.decode(video=0)]
    diffs = [float(np.abs(b - a).mean()) for a, b in zip(frames, frames[1:])]  # diffs[i]: i -> i+1
    quiet = float(np.median(diffs))
    for cut in truth["cut_frames"]:
        assert diffs[cut - 1] > 10 * quiet
    for event in truth["events"]:
        if event["kind"] == "impact":  # the picture shakes from the impact frame on
            assert diffs[event["frame"] - 1] > 4 * quiet


def test_synthesis_is_deterministic_and_honours_the_spec(tmp_path):
    spec = SynthSpec(width=160, height=90, fps=Fraction(25), shot_frames=(40, 44), audio=False, seed=3)
    first = synthesize(tmp_path / "a.mp4", spec)
    second = synthesize(tmp_path / "b.mp4", spec)
    assert first == second
    assert first["frame_count"] == 84 and first["cut_frames"] == [40] and first["fps"] == "25/1"
    means_a, _, _ = _decode_grey_means(tmp_path / "a.mp4")
    means_b, _, _ = _decode_grey_means(tmp_path / "b.mp4")
    assert means_a == means_b


@pytest.mark.parametrize("kwargs", [{"width": 321}, {"height": 20}, {"fps": Fraction(0)}, {"shot_frames": (10,)}])
def test_bad_spec_is_rejected(kwargs):
    with pytest.raises(ValueError):
        SynthSpec(**kwargs)


def test_cli_writes_a_video_and_its_truth(tmp_path):
    out = tmp_path / "cli.mp4"
    result = subprocess.run([sys.executable, "-m", "samples.synth", str(out), "--duration", "3.5", "--fps", "30",
                             "--width", "160", "--height", "90", "--silent"],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    truth = json.loads(out.with_suffix(".json").read_text())
    assert truth["fps"] == "30/1" and truth["frame_count"] == 105 and out.stat().st_size > 1000


def test_committed_demo_sample_is_small_and_matches_its_truth(demo_sample):
    path, truth = demo_sample
    assert path.stat().st_size <= 2_000_000
    assert 12.0 <= truth["duration_s"] <= 16.0 and len(truth["shots"]) >= 3
    _check_truth_layout(truth)
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        assert (video.codec_context.width, video.codec_context.height) == (640, 360)
        assert video.frames == truth["frame_count"] and container.streams.audio
