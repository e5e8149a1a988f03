"""Shared fixtures: small synthetic cartoon videos with exact ground truth, made once per session."""
from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest

from samples.synth import SynthSpec, synthesize

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_VIDEO = REPO_ROOT / "samples" / "cartoon_demo.mp4"


def _make(factory, name: str, spec: SynthSpec) -> tuple[Path, dict]:
    path = factory.mktemp("media") / f"{name}.mp4"
    truth = synthesize(path, spec)
    return path, truth


@pytest.fixture(scope="session")
def sample_24p(tmp_path_factory) -> tuple[Path, dict]:
    """320x180, 24000/1001 fps, about 6 s, 3 shots, AAC sound track."""
    return _make(tmp_path_factory, "cartoon_24p", SynthSpec(fps=Fraction(24000, 1001), duration_s=6.0, audio=True))


@pytest.fixture(scope="session")
def sample_30p_silent(tmp_path_factory) -> tuple[Path, dict]:
    """320x180, 30 fps, about 5 s, 3 shots, no audio stream."""
    spec = SynthSpec(fps=Fraction(30), duration_s=5.0, shot_s=1.6, audio=False, seed=1)
    return _make(tmp_path_factory, "cartoon_30p_silent", spec)


@pytest.fixture(scope="session")
def sample_vfr(tmp_path_factory) -> tuple[Path, dict]:
    """320x180, variable frame rate (frame durations 1/60..1/24 s), 144 frames, silent."""
    spec = SynthSpec(fps=Fraction(24000, 1001), duration_s=6.0, audio=False, vfr=True, seed=2)
    return _make(tmp_path_factory, "cartoon_vfr", spec)


@pytest.fixture(scope="session")
def demo_sample() -> tuple[Path, dict]:
    """The committed demo video and its ground truth."""
    return DEMO_VIDEO, json.loads(DEMO_VIDEO.with_suffix(".json").read_text())
