"""Inputs and settings shared by the `dub batch` tests: three short clips with cuts and sound, a
40 s one (long enough to be caught mid-job) and a text file named like a video."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from dubber import api
from samples.synth import SynthSpec, synthesize

REPO = Path(__file__).resolve().parent.parent
CLIP_SECONDS = (4.0, 5.0, 6.0)
LONG_CLIP_S = 40.0   # long enough that a job is still running when a test kills its worker


def _clip(folder: Path, name: str, seconds: float, seed: int) -> Path:
    path = folder / f"{name}.mp4"
    synthesize(path, SynthSpec(width=160, height=90, fps=Fraction(24), duration_s=seconds, shot_s=2.0,
                               audio=True, seed=seed, preset="ultrafast"))
    path.with_suffix(".json").unlink()   # the ground truth is not an input of the batch
    return path


def batch_inputs(folder: Path) -> dict[str, Path]:
    """clip0..clip2 (4, 5 and 6 s), long (40 s) and broken (text), made in `folder`."""
    made = {f"clip{i}": _clip(folder, f"clip{i}", s, seed=20 + i) for i, s in enumerate(CLIP_SECONDS)}
    made["long"] = _clip(folder, "long", LONG_CLIP_S, seed=30)
    bad = folder / "broken.mp4"
    bad.write_bytes(b"this is a text file, not a video\n" * 20)
    made["broken"] = bad
    return made


def _dub_options(tmp: Path) -> api.DubOptions:
    return api.DubOptions(cache_dir=str(tmp / "cache"))
