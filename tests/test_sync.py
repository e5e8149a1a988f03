"""Sample-exact sync: the soundtrack is exactly as long as the picture, every cue starts on the
sample of its first frame, nothing drifts over ten minutes, and the picture is copied bit for bit.

Expected sample positions are computed here from the synthetic videos' ground truth (frame
counts, exact rates, VFR timestamps), never from the code under test.
"""
from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import dubber
from dub_cli import decode_track, read_wav, video_packets
from dubber.backends import register_backend, unregister_backend
from dubber.backends.base import DubBackend
from dubber.types import CueAudio, RenderResult, no_progress

SR = 48_000


class MarkerBackend(DubBackend):
    """Each cue: a decaying tone that starts at full level on the cue's first sample and is
    followed by silence, so the first non-zero sample of a cue in a stem is where it was placed."""

    NAME = "markers"

    def __init__(self, options=None):
        self.options = options

    def render(self, plan, analysis, progress=no_progress):
        cues = []
        for cue in plan.cues:
            audio = np.zeros((2, cue.num_samples), dtype=np.float32)
            body = int(cue.num_samples * 0.6)
            t = np.arange(body) / plan.sample_rate
            audio[:, :body] = 0.3 * np.cos(2 * np.pi * 440 * t) * np.exp(-3 * t)
            cues.append(CueAudio(cue_index=cue.index, start_sample=cue.start_sample, stems={"markers": audio}))
        return RenderResult(backend=self.NAME, sample_rate=plan.sample_rate, cues=tuple(cues))


@pytest.fixture(autouse=True)
def markers_backend():
    register_backend("markers", MarkerBackend)
    yield
    unregister_backend("markers")


def expected_total(truth: dict) -> int:
    """round(frames * sr / fps), from the ground truth (VFR: its exact duration)."""
    num, den = (int(x) for x in truth["fps"].split("/"))
    return round(Fraction(truth["frame_count"]) * SR / Fraction(num, den))


def expected_start(truth: dict, frame: int) -> int:
    """The sample where frame `frame` starts, from the ground truth's own timing."""
    if truth.get("frame_pts"):
        num, den = (int(x) for x in truth["time_base"].split("/"))
        return round(Fraction(truth["frame_pts"][frame]) * Fraction(num, den) * SR)
    num, den = (int(x) for x in truth["fps"].split("/"))
    return round(Fraction(frame) * SR / Fraction(num, den))


def _dub(video: Path, out: Path, tmp: Path, **options) -> dubber.DubResult:
    opts = dubber.DubOptions(cache_dir=str(tmp / "cache"), **options)
    return dubber.dub(video, out, opts)


SAMPLES = ["sample_24p", "sample_30p_silent", "sample_vfr"]


@pytest.mark.parametrize("sample", SAMPLES)
def test_every_cue_starts_on_its_first_frame_sample(sample, request, tmp_path):
    video, truth = request.getfixturevalue(sample)
    result = _dub(video, tmp_path / "out.mkv", tmp_path, backend="markers", stems_dir=str(tmp_path / "stems"))
    total = expected_total(truth)
    stem, rate = read_wav(tmp_path / "stems" / "out.markers.wav")
    mix, _ = read_wav(tmp_path / "stems" / "out.mix.wav")
    assert rate == SR and stem.shape == mix.shape == (2, total) and result.total_samples == total
    plan = json.loads(Path(result.outputs["manifest"]).read_text())["plan"]
    starts = [c["start_frame"] for c in plan["cues"]]
    assert set(s["start_frame"] for s in truth["shots"]) <= set(starts)
    for cue in plan["cues"]:
        first = expected_start(truth, cue["start_frame"])
        assert cue["start_sample"] == first
        assert np.all(stem[:, first] != 0), f"cue {cue['index']} does not start at sample {first}"
        if first > 0:
            assert np.all(stem[:, first - 1] == 0), f"cue {cue['index']} starts before sample {first}"
    # The muxed track (FLAC in Matroska: lossless) is the mix, sample for sample, and no longer.
    track, track_rate = decode_track(tmp_path / "out.mkv")
    assert track_rate == SR and track.shape == (2, total)
    np.testing.assert_allclose(track / 2**31 if np.abs(track).max() > 2 else track, mix, atol=2**-22)


@pytest.mark.parametrize("sample", SAMPLES)
def test_score_dub_length_and_untouched_picture(sample, request, tmp_path):
    import av

    video, truth = request.getfixturevalue(sample)
    out = tmp_path / "out.mp4"
    result = _dub(video, out, tmp_path, backend="score", stems_dir=str(tmp_path / "stems"))
    total = expected_total(truth)
    mix, rate = read_wav(tmp_path / "stems" / "out.mix.wav")
    assert rate == SR and mix.shape == (2, total) and np.abs(mix).max() > 0
    with av.open(str(out)) as container:
        dub = container.streams.audio[0]
        assert round(dub.duration * dub.time_base * SR) == total   # the AAC track's declared length
    decoded, _ = decode_track(out)
    assert total <= decoded.shape[1] < total + 1024                 # plus at most one AAC frame of padding
    assert video_packets(out) == video_packets(video), "the picture was re-encoded or altered"
    assert result.backend == "score" and result.cues >= len(truth["shots"])


def test_ten_minutes_do_not_drift(tmp_path):
    from dubber import api
    from dubber.mix import END_FADE_MS, MixOptions, place_cues
    from samples.synth import SynthSpec, synthesize

    video = tmp_path / "long.mp4"
    truth = synthesize(video, SynthSpec(width=160, height=90, fps=Fraction(24000, 1001), duration_s=600,
                                        shot_s=20, audio=False, seed=3, preset="ultrafast"))
    options = api.DubOptions(backend="score", cache_dir=str(tmp_path / "cache"))
    path = api.check_input_file(video)
    analysis, key = api._analyze(path, options, no_progress)
    plan = api._plan(analysis, key, options, path)
    total = expected_total(truth)
    assert truth["frame_count"] > 14_000 and plan.total_samples == total
    last_cut = truth["shots"][-1]["start_frame"]
    last_shot_cues = [c for c in plan.cues if c.start_frame >= last_cut]
    assert last_shot_cues and last_shot_cues[0].start_frame == last_cut
    for cue in plan.cues:
        assert cue.start_sample == expected_start(truth, cue.start_frame)
    render, _, _ = api._render("score", plan, analysis, key, options, no_progress)
    assert [(c.start_sample, c.num_samples) for c in render.cues] == [(c.start_sample, c.num_samples)
                                                                      for c in plan.cues]
    stems, _ = place_cues(render, plan, MixOptions())
    assert all(track.shape == (2, total) for track in stems.values())
    # Placement at the far end of the timeline: the last cue's audio sits in the stems at its
    # exact sample (past the short join region, where the previous cue may fade out over it, and
    # before the programme's closing fade).
    cue, audio = plan.cues[-1], render.cues[-1]
    skip, end = SR // 10, int(END_FADE_MS * SR / 1000)
    for name, track in stems.items():
        placed = track[:, cue.start_sample + skip:cue.end_sample - end]
        assert np.array_equal(placed, audio.stems[name][:, skip:-end]), name
