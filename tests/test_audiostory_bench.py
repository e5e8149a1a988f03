"""The GPU benchmark script runs end to end at tiny size on the CPU and reports honest numbers."""
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
INSTRUCTION = ("Generate a classic Tom and Jerry style soundtrack for a moment in the cartoon that includes "
               "a cat knocks a vase off the shelf. The total duration is 0.5 seconds.")


def _number(pattern: str, text: str) -> float:
    match = re.search(pattern, text)
    assert match, f"{pattern!r} not in output:\n{text}"
    return float(match.group(1))


def test_bench_decodes_exactly_the_plan_and_prints_a_table(tmp_path):
    from audiostory_core.prompts import chat_prompt
    from audiostory_core.testing import qwen_tokenizer

    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--size", "tiny", "--device", "cpu", "--cues", "1",
         "--cue-seconds", "0.5", "--steps", "1"],
        capture_output=True, text=True, timeout=300, env=env, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "| cues | reference decode (tokens) | shot-locked prefill (tokens) |" in out
    row = re.search(r"^\| 1 \| (\d+) \| (\d+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+)x \| n/a \(cpu\) / n/a \(cpu\) \|$",
                    out, re.M)
    assert row, out
    decoded, sequence = int(row.group(1)), int(row.group(2))
    reference, shot, speedup = (float(row.group(i)) for i in (3, 4, 5))
    # The reference decodes the plan after the prompt and its end-of-turn token, nothing more.
    prompt = qwen_tokenizer()(chat_prompt(INSTRUCTION), add_special_tokens=False)["input_ids"]
    assert decoded == sequence - len(prompt) + 1
    assert reference > 0 and shot > 0
    # The times are printed to 3 decimals: allow the ratio the rounding error it carries.
    rounding = (reference / shot) * (0.0005 / reference + 0.0005 / shot) + 0.005
    assert speedup == pytest.approx(reference / shot, abs=rounding)
    assert "1 clips sampled one at a time" in out and "1 clips in one batch" in out
    tflops = _number(r"dit_tflops=([\d.e+-]+)", out)
    assert math.isfinite(tflops) and tflops > 0


def test_bench_rejects_bad_arguments():
    from concurrent.futures import ThreadPoolExecutor

    def run(args: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(SCRIPT), "--size", "tiny", *args],
                              capture_output=True, text=True, timeout=60, check=False)

    with ThreadPoolExecutor(max_workers=2) as pool:   # two separate processes: they may share the cores
        runs = list(pool.map(run, (["--cues", "0"], ["--cues", "two"])))
    for proc in runs:
        assert proc.returncode == 2 and "--cues" in proc.stderr
