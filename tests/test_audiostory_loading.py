"""Loading checkpoints as fine-tuning scripts write them, and refusing the rest in one sentence.

Checkpoint folders come from `python -m audiostory_core.testing` (random tiny weights, official
layout); nothing is downloaded.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from audiostory_core import checkpoint, checkpoint_config, hub  # noqa: E402
from audiostory_core.device import Placement, resolve_device  # noqa: E402
from audiostory_core.errors import CheckpointMismatch  # noqa: E402
from audiostory_core.keys import LLM_PREFIX, is_frozen_base_key  # noqa: E402
from audiostory_core.pipeline import AudioStoryPipeline, ClipCue  # noqa: E402

FROZEN_KEY = LLM_PREFIX + "model.layers.0.mlp.down_proj.weight"


def write(dest: Path, *flags: str) -> Path:
    """The checkpoint writer's own command line, as a user runs it."""
    subprocess.run([sys.executable, "-m", "audiostory_core.testing", str(dest), *flags], check=True,
                   capture_output=True, text=True, timeout=120)
    return dest


def _at_once(calls: dict):
    """{name: (function, *args)} run side by side, {name: result} back: each call here spends
    its time in a process of its own (mostly importing torch), so they share the cores."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = {name: pool.submit(*call) for name, call in calls.items()}
        return {name: future.result() for name, future in futures.items()}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpts")
    return _at_once({name: (write, root / name, *flags) for name, flags in {
        "plain": (), "ddp": ("--ddp-prefix",), "folder": ("--base-llm", "folder"),
        "sharded": ("--base-llm", "sharded", "--ddp-prefix")}.items()})


def _audio(root: Path, cache: Path) -> list[np.ndarray]:
    pipe = AudioStoryPipeline.from_pretrained(str(root), device="cpu", cache_dir=str(cache))
    cues = [ClipCue("a door creaks open", 6_000), ClipCue("footsteps on a wooden floor", 9_000)]
    return list(pipe.generate_cues(cues, seed=4, num_steps=2, sample_rate=16_000).waveforms)


def test_variants_write_what_fine_tuning_scripts_write(folders):
    bins = {name: torch.load(root / "audiostory-3B" / "pytorch_model.bin", weights_only=True)
            for name, root in folders.items()}
    assert all(k.startswith("module.seedx.") or k.startswith("module.tangoflux.")
               or k.startswith("module.multihead_attention.") for k in bins["ddp"])
    assert FROZEN_KEY in bins["plain"] and FROZEN_KEY not in bins["folder"]
    assert not any(is_frozen_base_key(k.removeprefix("module.")) for k in bins["sharded"])
    qwen = folders["sharded"] / "Qwen2.5-3B-Instruct"
    index = json.loads((qwen / "model.safetensors.index.json").read_text())
    assert sorted(set(index["weight_map"].values())) == ["model-00001-of-00002.safetensors",
                                                         "model-00002-of-00002.safetensors"]
    assert "model.layers.0.input_layernorm.weight" in index["weight_map"]


def test_prefixed_and_base_from_folder_checkpoints_give_bit_identical_audio(folders, tmp_path):
    plain = _audio(folders["plain"], tmp_path / "c0")
    for name in ("ddp", "folder", "sharded"):
        for want, got in zip(plain, _audio(folders[name], tmp_path / name)):
            np.testing.assert_array_equal(got, want, err_msg=name)
    assert all(np.abs(w).max() > 0 for w in plain)


def _without(root: Path, dest: Path, *, drop=(), reshape=None) -> Path:
    import shutil

    shutil.copytree(root, dest)
    path = dest / "audiostory-3B" / "pytorch_model.bin"
    state = torch.load(path, weights_only=True)
    for key in drop:
        del state[key]
    if reshape:
        state[reshape] = torch.zeros(2, 2)
    torch.save(state, path)
    return dest


def test_a_missing_base_weight_without_the_base_folder_names_the_key_and_the_fix(folders, tmp_path):
    import shutil

    root = tmp_path / "ckpt"
    shutil.copytree(folders["folder"], root)
    (root / "Qwen2.5-3B-Instruct" / "model.safetensors").unlink()
    with pytest.raises(CheckpointMismatch) as err:
        checkpoint.load_model(hub.locate(root), resolve_device("cpu", None), cache_dir=tmp_path / "cache")
    message = str(err.value)
    first = min(err.value.missing)
    assert message.count(".") >= 1 and "\n" not in message
    assert f": {first} is missing" in message and "Qwen2.5-3B-Instruct" in message
    assert all(is_frozen_base_key(k) for k in err.value.missing)


def test_a_trained_weight_is_never_taken_from_the_base_folder(folders, tmp_path):
    lora = LLM_PREFIX + "model.layers.1.self_attn.v_proj.lora_B.default.weight"
    root = _without(folders["folder"], tmp_path / "ckpt", drop=[lora])
    with pytest.raises(CheckpointMismatch) as err:
        checkpoint.load_model(hub.locate(root), resolve_device("cpu", None), cache_dir=tmp_path / "cache")
    assert err.value.missing == (lora,) and f"{lora} is missing" in str(err.value)


def _dub_exit(root: Path, video: Path, tmp: Path) -> subprocess.CompletedProcess:
    from dub_cli import dub_env, run_dub

    env = dub_env(tmp, AUDIOSTORY_CACHE=str(tmp / "audiostory-cache"))
    return run_dub([video, "--backend", "audiostory", "--model", root, "--device", "cpu", "-o", tmp / "out.mp4"],
                   env, timeout=300)


def test_dub_refuses_a_misshaped_or_missing_key_in_one_sentence(folders, sample_30p_silent, tmp_path):
    video, _ = sample_30p_silent
    key = "seedx.audio_projector.0.bias"
    shaped = _without(folders["plain"], tmp_path / "shaped", reshape=key)
    missing = _without(folders["ddp"], tmp_path / "missing", drop=["module.multihead_attention.in_proj_bias"])
    runs = _at_once({"shaped": (_dub_exit, shaped, video, tmp_path / "run1"),
                     "missing": (_dub_exit, missing, video, tmp_path / "run2")})   # each with its own cache
    proc = runs["shaped"]
    assert proc.returncode == 2, proc.stderr[-2000:]
    # The backend notice, then the error: one line that names the key.
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert "Traceback" not in proc.stderr and lines[-1].startswith("dub: The checkpoint ")
    assert f"{key} is [2, 2] where [16] is expected" in lines[-1] and not any("Error" in x for x in lines)
    assert not (tmp_path / "run1" / "out.mp4").exists()

    proc = runs["missing"]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "multihead_attention.in_proj_bias is missing" in proc.stderr


# --------------------------------------------------------------------------------------------
# Generation settings, T5 precision, LoRA merge order
# --------------------------------------------------------------------------------------------
def test_generation_config_sets_penalty_stop_ids_and_token_limit(folders, tmp_path, monkeypatch):
    import shutil

    root = tmp_path / "ckpt"
    shutil.copytree(folders["plain"], root)
    (root / "Qwen2.5-3B-Instruct" / "generation_config.json").write_text(json.dumps(
        {"repetition_penalty": 1.3, "eos_token_id": [258, 256], "do_sample": True, "top_p": 0.8}))
    pipe = AudioStoryPipeline.from_pretrained(str(root), device="cpu", cache_dir=str(tmp_path / "cache"))
    assert pipe.config.sampling.repetition_penalty == 1.3
    assert pipe.stop_token_ids == (258, 256)
    # The checkpoint's own file wins over the base model's, and may bound the decode length.
    (root / "audiostory-3B" / "generation_config.json").write_text(json.dumps(
        {"eos_token_id": 257, "max_new_tokens": 7}))
    pipe = AudioStoryPipeline.from_pretrained(str(root), device="cpu", cache_dir=str(tmp_path / "cache"))
    assert pipe.stop_token_ids == (257,) and pipe.config.sampling.repetition_penalty == 1.05
    seen = {}
    real = pipe.agent.generate

    def spy(prompt_ids, processors, eos_ids, max_new_tokens):
        seen.update(eos=tuple(eos_ids), limit=max_new_tokens,
                    penalty=[p.penalty for p in processors if hasattr(p, "penalty")])
        return real(prompt_ids, processors, eos_ids, max_new_tokens)

    monkeypatch.setattr(pipe.agent, "generate", spy)
    with pytest.raises(Exception):
        pipe.generate("a dog barks", 2.0)   # a random model writes no clip plan in 7 tokens
    assert seen == {"eos": (257,), "limit": 7, "penalty": [1.05]}


def test_invalid_generation_config_is_refused_in_one_sentence(tmp_path):
    path = tmp_path / "generation_config.json"
    path.write_text(json.dumps({"repetition_penalty": "high"}))
    with pytest.raises(CheckpointMismatch) as err:
        checkpoint_config.generation_settings(path)
    assert "repetition_penalty='high' is not a valid setting" in str(err.value)
    assert checkpoint_config.generation_settings(None) == {}


def test_t5_runs_in_the_run_precision_and_lora_is_merged_before_the_move(folders, tmp_path, monkeypatch):
    from transformers import T5EncoderModel

    from audiostory_core.model import AudioStory

    t5_dtypes, moves = [], []
    real_forward, real_to = T5EncoderModel.forward, AudioStory.to

    def forward(self, *args, **kwargs):
        t5_dtypes.append(next(self.parameters()).dtype)
        return real_forward(self, *args, **kwargs)

    def to(self, *args, **kwargs):
        moves.append(self.agent.is_merged)
        return real_to(self, *args, **kwargs)

    monkeypatch.setattr(T5EncoderModel, "forward", forward)
    monkeypatch.setattr(AudioStory, "to", to)
    placement = Placement(device=torch.device("cpu"), dtype=torch.bfloat16)
    model = checkpoint.load_model(hub.locate(folders["plain"]), placement, cache_dir=tmp_path / "cache")
    assert t5_dtypes == [torch.bfloat16]          # the official code casts T5 with everything else
    assert moves == [True]                          # no un-merged LoRA layer is ever moved
    assert model.detokenizer.uncond_embeds(8).dtype == torch.bfloat16 and model.agent.is_merged
