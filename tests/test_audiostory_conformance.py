"""The AudioStory modules reproduce the recorded reference outputs of the original code.

Fixtures live outside the repository (`../shared/conformance/audiostory`, or the folder in
$AUDIOSTORY_FIXTURES) and are read in place.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from audiostory_core.conformance import main, run_fixture_tree  # noqa: E402

FIXTURES = Path(
    os.environ.get("AUDIOSTORY_FIXTURES", Path(__file__).resolve().parents[1].parent / "shared/conformance/audiostory")
)
REQUIRED = (
    "01_resampler", "02_flux_dit", "02b_flux_dit_native_dims", "03_fusion",
    "04_llm_agent", "05_oobleck_vae", "06_full_size_manifest", "07_end_to_end",
)
# At least these checks must appear, so a silently skipped stage cannot pass.
MUST_HAVE = (
    "01_resampler.perceiver_resampler.output.y",
    "01_resampler.qwen_visual_resampler.output.y_len9",
    "01_resampler.whisper_resampler_llava.output.y",
    "02_flux_dit.sampling.latents",
    "02b_flux_dit_native_dims.training_loss.loss",
    "03_fusion.t5_fused_embeds",
    "04_llm_agent.generate.t5_gen_feat",
    "04_llm_agent.forward.last_hidden_state (unmerged LoRA)",
    "05_oobleck_vae.decode.waveform",
    "06_full_size_manifest.top_level_keys_and_shapes",
    "07_end_to_end.concatenated_waveform",
)

needs_fixtures = pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"fixtures not found at {FIXTURES}")


def _parse(output: str) -> dict[str, str]:
    """CLI lines → {check name: PASS/FAIL}."""
    status = {}
    for line in output.splitlines():
        if line.startswith(("PASS", "FAIL")):
            word, rest = line.split(None, 1)
            status[rest.split("  max_abs_err=")[0].strip()] = word
    return status


@needs_fixtures
def test_cli_passes_every_required_check(capsys):
    code = main([str(FIXTURES)])
    status = _parse(capsys.readouterr().out)
    failed = sorted(name for name, word in status.items() if word != "PASS")
    assert failed == []
    for folder in REQUIRED:
        assert any(name.startswith(folder + ".") for name in status), f"no checks ran for {folder}"
    for name in MUST_HAVE:
        assert status.get(name) == "PASS", name
    assert code == 0


def _copy(folder: str, tmp_path: Path) -> Path:
    dst = tmp_path / folder
    shutil.copytree(FIXTURES / folder, dst)
    for path in dst.iterdir():
        path.chmod(0o644)
    return dst


def _edit_tensor(path: Path, key: str, fn) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(path))
    tensors[key] = fn(tensors[key]).contiguous()
    save_file(tensors, str(path))


@needs_fixtures
def test_perturbed_fusion_weight_fails(tmp_path):
    dst = _copy("03_fusion", tmp_path)
    _edit_tensor(dst / "state_dict.safetensors", "multihead_attention.out_proj.bias", lambda t: t + 1e-2)
    results = {r.name: r for r in run_fixture_tree(tmp_path)}
    assert not results["03_fusion.t5_fused_embeds"].passed
    assert results["03_fusion.t5_fused_embeds"].max_abs_error > 1e-4
    assert main([str(tmp_path)]) == 1


@needs_fixtures
def test_dropping_the_lora_update_fails(tmp_path):
    dst = _copy("04_llm_agent", tmp_path)
    key = "llm.base_model.model.model.layers.1.mlp.down_proj.lora_B.default.weight"
    _edit_tensor(dst / "agent_state_dict.safetensors", key, torch.zeros_like)
    results = {r.name: r for r in run_fixture_tree(tmp_path)}
    assert not results["04_llm_agent.forward.last_hidden_state (unmerged LoRA)"].passed
    assert not results["04_llm_agent.generate.t5_gen_feat"].passed


@needs_fixtures
def test_changed_sampling_setting_fails(tmp_path):
    dst = _copy("02_flux_dit", tmp_path)
    cfg = json.loads((dst / "config.json").read_text())
    cfg["sampling"]["guidance_scale"] = float(cfg["sampling"]["guidance_scale"]) + 0.5
    (dst / "config.json").write_text(json.dumps(cfg))
    results = {r.name: r for r in run_fixture_tree(tmp_path)}
    assert not results["02_flux_dit.sampling.latents"].passed
    assert results["02_flux_dit.transformer_forward.sample"].passed  # the network itself is unchanged


@needs_fixtures
def test_missing_weight_is_a_failure_not_a_crash(tmp_path):
    from safetensors.torch import load_file, save_file

    dst = _copy("05_oobleck_vae", tmp_path)
    tensors = load_file(str(dst / "state_dict.safetensors"))
    tensors.pop("decoder.conv2.weight_v")
    save_file(tensors, str(dst / "state_dict.safetensors"))
    results = run_fixture_tree(tmp_path)
    assert [r.passed for r in results] == [False]
    assert "decoder.conv2.weight_v" in results[0].detail
