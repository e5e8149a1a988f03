"""The GPU benchmark script runs end to end at tiny size on the CPU and reports its numbers."""
from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "gpu_audiostory.py"


def _number(pattern: str, text: str) -> float:
    match = re.search(pattern, text)
    assert match, f"{pattern!r} not in output:\n{text}"
    return float(match.group(1))


def test_bench_runs_at_tiny_size_and_prints_its_numbers(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--size", "tiny", "--device", "cpu", "--cues", "2",
         "--cue-seconds", "0.5", "--steps", "2"],
        capture_output=True, text=True, timeout=180, env=env, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    reference = _number(r"reference_s=([\d.]+)", out)
    shot = _number(r"shot_locked_s=([\d.]+)", out)
    speedup = _number(r"speedup=([\d.]+)x", out)
    tflops = _number(r"dit_tflops=([\d.]+)", out)
    assert reference > 0 and shot > 0 and math.isfinite(tflops) and tflops > 0
    # The times are printed to 3 decimals: allow the ratio the rounding error it carries.
    rounding = (reference / shot) * (0.0005 / reference + 0.0005 / shot) + 0.005
    assert speedup == pytest.approx(reference / shot, abs=rounding)
    assert "peak_gpu_mem_gb reference=n/a (cpu) shot_locked=n/a (cpu)" in out
    assert "2 clips sampled one at a time" in out and "2 clips in one batch" in out


def test_bench_rejects_bad_arguments():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--size", "tiny", "--cues", "0"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and "--cues" in proc.stderr
