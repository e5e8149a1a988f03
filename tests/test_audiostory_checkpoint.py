"""Tokenizer set-up, device choice, and strict checkpoint loading (nothing is downloaded)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from audiostory_core import checkpoint, checkpoint_config, hub, weight_files  # noqa: E402
from audiostory_core import tokenizer as tk  # noqa: E402
from audiostory_core.config import AudioStoryConfig, SpecialTokenIds  # noqa: E402
from audiostory_core.device import resolve_device  # noqa: E402
from audiostory_core.errors import (CheckpointDamaged, CheckpointMismatch, DeviceUnavailable,  # noqa: E402
                                    WeightsNotFound)
from audiostory_core.pipeline import AudioStoryPipeline, ClipCue  # noqa: E402
from audiostory_core.testing import FUSION_HEADS, build_tiny, tiny_config, write_checkpoint  # noqa: E402

MANIFEST = next((p for p in (Path(__file__).resolve().parents[1] / "shared/conformance/audiostory",
                              Path(__file__).resolve().parents[2] / "shared/conformance/audiostory",
                              Path("/work/shared/conformance/audiostory")) if p.is_dir()),
                Path("/work/shared/conformance/audiostory")) / "06_full_size_manifest"
QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] + [f"<|special_{i}|>" for i in range(19)]


# --------------------------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------------------------
def test_added_tokens_follow_the_file_order():
    tokens = tk.added_tokens()
    assert len(tokens) == 612
    assert tokens[:6] == ("</t5>", "<video_padding>", "<timestamp>", "</timestamp>", "<t5>", "<t5_00000>")
    assert tokens[104:107] == ("<t5_00099>", "<aud>", "</aud>")
    assert tokens[-5:] == ("<aud_00500>", "<|gen|>", "<|/gen|>", "<|think|>", "<|/think|>")


def _qwen_sized_base(n_bpe: int = 151_643):
    """A word-level stand-in with Qwen2.5's layout: 151,643 ordinary tokens then 22 specials."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.WordLevel({f"w{i}": i for i in range(n_bpe)}, unk_token="w0"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=core)
    tok.add_tokens(QWEN_SPECIALS, special_tokens=True)
    return tok


def test_full_size_ids_match_the_spec_table():
    tok = tk.extend_tokenizer(_qwen_sized_base())
    assert len(tok) == 152_277
    tk.check_full_size_ids(tok)
    ids = tk.special_ids(tok, 64, 8)
    assert ids == SpecialTokenIds.full_size(64, 8)
    assert ids.t5_body[-1] == 151733 and ids.aud_body[-1] == 151779
    # A tokenizer that already holds the tokens is only checked, not extended twice.
    assert len(tk.extend_tokenizer(tok)) == 152_277


def test_full_size_check_rejects_a_wrong_base():
    tok = tk.extend_tokenizer(_qwen_sized_base(n_bpe=151_642))
    with pytest.raises(CheckpointMismatch, match="and 20 more tokens differ") as err:
        tk.check_full_size_ids(tok)
    assert ("len(tokenizer)", (152_276,), (152_277,)) in err.value.mismatched
    assert ("<|/think|>", (152_275,), (152_276,)) in err.value.mismatched


def test_debug_tokenizer_round_trips_text_and_caption_parsing():
    tok = tk.debug_tokenizer()
    prompt = tk.chat_prompt(tk.instruction_text("a dog barks", 10.5))
    assert "The total duration is 10.5 seconds.<|im_end|>" in prompt
    assert tk.decode(tok, tk.encode(tok, prompt)) == prompt.strip()
    assert prompt.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n")
    assert prompt.endswith("<|im_start|>assistant\n<|think|>")
    assert tk.split_caption_duration("dog barks <timestamp> 4.5 </timestamp>") == ("dog barks", 4.5)


# --------------------------------------------------------------------------------------------
# Device
# --------------------------------------------------------------------------------------------
def test_resolve_device_defaults_and_cpu_refusals():
    if torch.cuda.is_available():
        pytest.skip("checks the CPU-only behaviour")
    placement = resolve_device(None, None)
    assert (placement.device.type, placement.dtype) == ("cpu", torch.float32)
    for args in (("cpu", "fp16"), ("cpu", "bfloat16"), ("cuda", None), (None, "half")):
        with pytest.raises(DeviceUnavailable) as err:
            resolve_device(*args)
        assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="choose one of"):
        resolve_device("cpu", "int8")
    # The device is decided before any file is looked at.
    with pytest.raises(DeviceUnavailable):
        AudioStoryPipeline.from_pretrained("/nonexistent/audiostory", dtype="bf16")


# --------------------------------------------------------------------------------------------
# Expected keys and the strict check
# --------------------------------------------------------------------------------------------
@pytest.mark.skipif(not MANIFEST.is_dir(), reason="conformance fixtures not present")
def test_expected_shapes_equal_the_full_size_manifest():
    manifest = json.loads((MANIFEST / "manifest_top_level_model.json").read_text())
    expected = checkpoint.expected_shapes(AudioStoryConfig.full_size())
    assert len(expected) == 1709
    assert expected == {k: tuple(v[0]) for k, v in manifest.items()}


# --------------------------------------------------------------------------------------------
# A tiny checkpoint folder in the official layout
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    model, vae = build_tiny(seed=0)
    root = write_checkpoint(tmp_path_factory.mktemp("ckpt"), model, vae)
    model.agent.merge_lora_()
    return root, model, vae, model.cfg


def _render(model, vae):
    return _cue_waves(AudioStoryPipeline.from_model(model, vae, tk.debug_tokenizer()))


def _cue_waves(pipe):
    cues = [ClipCue("glass breaks", 9_000), ClipCue("a cat runs off", 15_000)]
    return pipe.generate_cues(cues, summary="kitchen", seed=2, num_steps=2).waveforms


def _load(root: Path, cache: Path):
    files = hub.locate(root)
    placement = resolve_device("cpu", None)
    model = checkpoint.load_model(files, placement, cache_dir=cache)
    vae = checkpoint.load_vae(files, placement)  # its size from Flux_detokenizer/vae/config.json
    return files, model, vae


def test_tiny_checkpoint_loads_strictly_and_reproduces_the_model(tiny, tmp_path):
    root, model, vae, _ = tiny
    files, loaded, loaded_vae = _load(root, tmp_path / "cache")
    assert files.weights.name == "pytorch_model.bin"
    assert loaded.cfg.fusion.num_heads == FUSION_HEADS and loaded.cfg.agent.num_t5_tokens == 8
    assert loaded.detokenizer.text_encoder is None  # T5("") cached, encoder dropped
    for want, got in zip(_render(model, vae), _render(loaded, loaded_vae)):
        np.testing.assert_allclose(got, want, atol=1e-4)
    converted = list((tmp_path / "cache" / "converted").glob("*.safetensors"))
    assert len(converted) == 1 and not list((tmp_path / "cache" / "converted").glob("*.part"))


def test_t5_weights_may_come_from_the_flan_t5_folder(tmp_path):
    fresh, vae = build_tiny(seed=1)
    root = write_checkpoint(tmp_path / "ckpt", fresh, vae, drop_t5=True)
    _, loaded, _ = _load(root, tmp_path / "cache")
    want = fresh.detokenizer.uncond_embeds(8)
    torch.testing.assert_close(loaded.detokenizer.uncond_embeds(8), want)


def test_t5_pickle_is_converted_into_the_cache_folder_given(tmp_path, monkeypatch):
    from safetensors.torch import load_file

    fresh, vae = build_tiny(seed=1)
    root = write_checkpoint(tmp_path / "ckpt", fresh, vae, drop_t5=True)
    t5_dir = root / "flan-t5-large"
    torch.save(load_file(t5_dir / "model.safetensors"), t5_dir / "pytorch_model.bin")
    (t5_dir / "model.safetensors").unlink()
    monkeypatch.setenv(weight_files.CACHE_ENV, str(tmp_path / "default-cache"))
    _, loaded, _ = _load(root, tmp_path / "cache")
    torch.testing.assert_close(loaded.detokenizer.uncond_embeds(8), fresh.detokenizer.uncond_embeds(8))
    converted = sorted(p.name for p in (tmp_path / "cache" / "converted").glob("*.safetensors"))
    assert len(converted) == 2 and any(name.startswith("flan-t5-large-") for name in converted)
    assert not (tmp_path / "default-cache").exists()


def _corrupt(root: Path, dest: Path, edit) -> Path:
    import shutil

    shutil.copytree(root, dest)
    bin_path = dest / "audiostory-3B" / "pytorch_model.bin"
    state = torch.load(bin_path, weights_only=True)
    edit(state)
    torch.save(state, bin_path)
    return dest


def test_wrong_shape_is_listed(tiny, tmp_path):
    key = "seedx.projector.2.weight"

    def edit(state):
        state[key] = torch.zeros(3, 3)

    root = _corrupt(tiny[0], tmp_path / "ckpt", edit)
    with pytest.raises(CheckpointMismatch) as err:
        _load(root, tmp_path / "cache")
    assert err.value.mismatched == ((key, (3, 3), (16, 16)),)
    assert key in str(err.value) and "\n" not in str(err.value)


def test_renamed_key_is_listed_as_missing_and_unexpected(tiny, tmp_path):
    old = "tangoflux.transformer.proj_out.weight"

    def edit(state):
        state["tangoflux.transformer.proj_out.weights"] = state.pop(old)

    root = _corrupt(tiny[0], tmp_path / "ckpt", edit)
    with pytest.raises(CheckpointMismatch) as err:
        _load(root, tmp_path / "cache")
    assert err.value.missing == (old,)
    assert err.value.unexpected == ("tangoflux.transformer.proj_out.weights",)
    assert f"{old} is missing, and 1 more key differs;" in str(err.value)


# --------------------------------------------------------------------------------------------
# Every size comes from the folder itself
# --------------------------------------------------------------------------------------------
def test_from_pretrained_reads_every_size_from_the_folder(tiny, tmp_path):
    root, model, vae, _ = tiny
    pipe = AudioStoryPipeline.from_pretrained(str(root), device="cpu", cache_dir=str(tmp_path / "cache"))
    assert pipe.config == tiny_config()
    assert (pipe.vae_rate, pipe.window_samples) == (256, 256)              # 64 latent frames x hop 4
    assert (pipe.config.sampling.crossfade_s, pipe.config.sampling.output_sampling_rate) == (0.25, 8000)
    assert len(pipe.tokenizer) == 286 and len(pipe.tokens.t5_body) == 8 and len(pipe.tokens.aud_body) == 4
    # The tokenizer read from the files renders exactly like the one the model was made with,
    # and a cue longer than the 1 s window is split with the folder's 0.25 s cross-fade.
    for want, got in zip(_render(model, vae), _cue_waves(pipe)):
        np.testing.assert_allclose(got, want, atol=1e-4)
    long = pipe.generate_cues([ClipCue("a train passes", 60_000)], num_steps=1)
    assert long.conditions.cue_index == (0, 0) and long.waveforms[0].shape == (2, 60_000)


def _copy(root: Path, dest: Path) -> Path:
    import shutil

    return Path(shutil.copytree(root, dest))


def test_files_that_are_silent_give_the_released_values(tiny, tmp_path):
    import yaml

    from audiostory_core.config import SamplingConfig, VAEConfig

    root = _copy(tiny[0], tmp_path / "ckpt")
    (root / "Flux_detokenizer" / "vae" / "config.json").unlink()
    yaml_path = root / "audiostory-3B" / "config.yaml"
    data = yaml.safe_load(yaml_path.read_text())
    del data["sampling"]
    yaml_path.write_text(yaml.safe_dump(data))
    files = hub.locate(root)
    assert checkpoint.vae_config(files) == VAEConfig()
    assert (VAEConfig().sampling_rate, VAEConfig().hop_length) == (44100, 2048)
    sampling = checkpoint_config.sampling_config(checkpoint.read_yaml(files.config_yaml))
    assert sampling == SamplingConfig()
    assert (sampling.crossfade_s, sampling.output_sampling_rate, sampling.num_inference_steps) == (3.0, 32000, 50)
    # The strict check still applies: the tiny VAE weights do not fit the released VAE.
    with pytest.raises(CheckpointMismatch) as err:
        checkpoint.load_vae(files, resolve_device("cpu", None))
    assert "decoder.block.4.conv_t1.bias" in err.value.missing and "\n" not in str(err.value)


def test_invalid_settings_are_listed():
    with pytest.raises(CheckpointMismatch) as err:
        checkpoint_config.sampling_config({"sampling": {"crossfade": 0.2, "num_inference_steps": 0,
                                                        "guidance_scale": "high", "crossfade_s": 0.5}})
    assert err.value.unexpected == ("sampling.crossfade", "sampling.guidance_scale='high'",
                                    "sampling.num_inference_steps=0")
    assert checkpoint_config.sampling_config({"sampling": {"crossfade_s": 0.5}}).crossfade_s == 0.5


def test_vae_config_must_fit_the_dit(tiny, tmp_path):
    root = _copy(tiny[0], tmp_path / "ckpt")
    vae_json = root / "Flux_detokenizer" / "vae" / "config.json"
    data = json.loads(vae_json.read_text())
    vae_json.write_text(json.dumps({**data, "decoder_input_channels": 16}))
    with pytest.raises(CheckpointMismatch) as err:
        checkpoint.load_model(hub.locate(root), resolve_device("cpu", None), cache_dir=tmp_path / "cache")
    assert err.value.mismatched == (("config.json in_channels", (8,), (16,)),)
    vae_json.write_text(json.dumps({**data, "downsampling_ratios": "2x2"}))
    with pytest.raises(CheckpointMismatch, match="downsampling_ratios='2x2'"):
        checkpoint.vae_config(hub.locate(root))


def test_tokenizer_length_must_equal_the_vocabulary(tiny, tmp_path):
    root = _copy(tiny[0], tmp_path / "ckpt")
    assert checkpoint.added_token_counts(tk.debug_tokenizer(10, 6).get_vocab()) == (10, 6)
    assert checkpoint.added_token_counts(_qwen_sized_base(n_bpe=50).get_vocab()) == (100, 501)
    tk.debug_tokenizer(10, 7).save_pretrained(str(root / "Qwen2.5-3B-Instruct"))
    with pytest.raises(CheckpointMismatch) as err:
        checkpoint.load_tokenizer(hub.locate(root), tiny[3])
    assert err.value.mismatched == (("len(tokenizer)", (287,), (286,)),)


# --------------------------------------------------------------------------------------------
# Missing weights and offline mode
# --------------------------------------------------------------------------------------------
def test_offline_without_weights_gives_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    with pytest.raises(WeightsNotFound) as err:
        AudioStoryPipeline.from_pretrained(device="cpu")
    message = str(err.value)
    assert "TencentARC/AudioStory-3B" in message and "hf download" in message
    assert "HF_HUB_OFFLINE" in message and "\n" not in message
    assert not (tmp_path / "hf").exists() or not any((tmp_path / "hf").rglob("*.bin"))


def test_local_folder_without_weights(tmp_path):
    (tmp_path / "audiostory-3B").mkdir()
    (tmp_path / "audiostory-3B" / "config.yaml").write_text("agent_model: {}\n")
    with pytest.raises(WeightsNotFound, match="dub models download"):
        hub.locate(tmp_path)


# --------------------------------------------------------------------------------------------
# Safetensors conversion
# --------------------------------------------------------------------------------------------
def test_pickle_converts_once_to_safetensors_with_tied_tensors(tmp_path):
    emb = torch.randn(5, 3)
    state = {"a.embed.weight": emb, "a.head.weight": emb, "b.bias": torch.arange(4.0),
             "c.ids": torch.tensor([1, 2, 3])}
    bin_path = tmp_path / "pytorch_model.bin"
    torch.save(state, bin_path)
    out = weight_files.as_safetensors(bin_path, tmp_path / "cache")
    assert out.parent == tmp_path / "cache" / "converted" and out.suffix == ".safetensors"
    assert weight_files.read_shapes(out) == {"a.embed.weight": (5, 3), "a.head.weight": (5, 3),
                                           "b.bias": (4,), "c.ids": (3,)}
    back = weight_files.read_tensors(out)
    for key, value in state.items():
        torch.testing.assert_close(back[key], value)
    half = weight_files.read_tensors(out, ["a.head.weight", "c.ids"], dtype=torch.float16)
    assert half["a.head.weight"].dtype == torch.float16 and half["c.ids"].dtype == torch.int64
    stamp = out.stat().st_mtime_ns
    assert weight_files.as_safetensors(bin_path, tmp_path / "cache") == out
    assert out.stat().st_mtime_ns == stamp  # converted once


class NotATensor:
    pass


def test_pickle_with_code_objects_is_refused(tmp_path):
    bin_path = tmp_path / "pytorch_model.bin"
    torch.save({"w": torch.zeros(2), "payload": NotATensor()}, bin_path)
    with pytest.raises(CheckpointDamaged, match="it holds Python objects"):
        weight_files.as_safetensors(bin_path, tmp_path / "cache")
    assert not (tmp_path / "cache" / "converted").exists() or not os.listdir(tmp_path / "cache" / "converted")


def test_legacy_pickle_with_code_objects_is_refused_in_one_sentence(tmp_path):
    bin_path = tmp_path / "pytorch_model.bin"
    torch.save({"w": torch.zeros(2), "payload": NotATensor()}, bin_path, _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointDamaged, match="it holds Python objects"):
        weight_files.as_safetensors(bin_path, tmp_path / "cache")


class RunsACommand:
    """What a booby-trapped checkpoint holds: unpickling it would run a shell command."""

    def __reduce__(self):
        return (os.system, ("echo this must never run",))


@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "legacy"])
def test_a_pickle_that_would_run_a_command_is_named_unsafe_not_damaged(tmp_path, zipped):
    bin_path = tmp_path / "pytorch_model.bin"
    torch.save({"w": torch.zeros(2), "payload": RunsACommand()}, bin_path, _use_new_zipfile_serialization=zipped)
    with pytest.raises(CheckpointDamaged, match="it holds Python objects.*from a source you trust"):
        weight_files.as_safetensors(bin_path, tmp_path / "cache")


def test_import_is_light_and_names_are_exported():
    import subprocess
    import sys

    code = ("import sys, audiostory_core as a; assert 'torch' not in sys.modules; "
            "assert a.REPO_ID == 'TencentARC/AudioStory-3B'; assert 'torch' not in sys.modules; "
            "assert a.AudioStoryPipeline.__name__ == 'AudioStoryPipeline'; "
            "assert all(getattr(a, n) is not None for n in a.__all__)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_one_converted_copy_per_checkpoint_is_kept(tmp_path):
    """Each copy is the size of the weights: a pickle replaced or touched, or a checkpoint moved,
    leaves no second copy behind; two checkpoints on disk keep one each."""
    import shutil

    from audiostory_core.testing import write_tiny_checkpoint

    cache = tmp_path / "cache"
    first = write_tiny_checkpoint(tmp_path / "a") / "audiostory-3B" / "pytorch_model.bin"
    copies = lambda: sorted((cache / "converted").glob("*.safetensors"))  # noqa: E731
    made = weight_files.as_safetensors(first, cache)
    assert copies() == [made]
    os.utime(first, ns=(first.stat().st_atime_ns, first.stat().st_mtime_ns + 10**9))   # replaced in place
    again = weight_files.as_safetensors(first, cache)
    assert again != made and copies() == [again]
    moved = tmp_path / "moved"
    shutil.move(tmp_path / "a", moved)
    there = weight_files.as_safetensors(moved / "audiostory-3B" / "pytorch_model.bin", cache)
    assert copies() == [there]
    other = shutil.copytree(moved, tmp_path / "b") / "audiostory-3B" / "pytorch_model.bin"
    assert len({there, weight_files.as_safetensors(other, cache)}) == 2 and len(copies()) == 2


def test_what_a_killed_conversion_left_is_swept_and_a_conversion_in_progress_is_not(tmp_path):
    """`kill -9` (or the OOM killer) mid-conversion leaves the writer's temporary file, the size of
    the weights, our hidden partial copy and a `.source` note: the next conversion and `dub cache
    clean` remove them once nothing has written to them for an hour; a file being written now,
    and every finished copy, stay."""
    from audiostory_core.testing import write_tiny_checkpoint

    cache = tmp_path / "cache"
    weights = write_tiny_checkpoint(tmp_path / "a") / "audiostory-3B" / "pytorch_model.bin"
    made = weight_files.as_safetensors(weights, cache)
    folder = made.parent
    hour_ago = made.stat().st_mtime - weight_files.STALE_WRITE_S - 1
    left = [folder / ".tmpk1ll3d", folder / ".ckpt-pytorch_model-1234.partial.safetensors"]
    for path in left:
        path.write_bytes(b"\0" * 4096)
        os.utime(path, (hour_ago, hour_ago))
    orphan = folder / "gone-pytorch_model-aaaa-bbbb.source"
    orphan.write_text(str(weights))
    os.utime(orphan, (hour_ago, hour_ago))
    writing = folder / ".tmpn0wwr1t"   # a conversion under way: its temporary and its note, both fresh
    writing.write_bytes(b"\0" * 16)
    note = folder / "busy-pytorch_model-cccc-dddd.source"
    note.write_text(str(weights))
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))   # replaced: converts again
    again = weight_files.as_safetensors(weights, cache)
    assert sorted(p.name for p in folder.iterdir()) == sorted([again.name, again.with_suffix(".source").name,
                                                               writing.name, note.name])
    for path in left:   # and `dub cache clean --older-than` (copies younger than it stay) sweeps them too
        path.write_bytes(b"\0" * 4096)
        os.utime(path, (hour_ago, hour_ago))
    removed = weight_files.remove_converted_copies(older_than_s=10 * 86400.0, cache_dir=cache)
    assert sorted(p.name for p, _ in removed) == sorted(p.name for p in left) and again.is_file()


def test_a_copy_just_converted_survives_another_run_pruning_the_folder(tmp_path, monkeypatch):
    """Two dubs converting two checkpoints into one cache: the other run's pruning, at the moment
    this copy has just appeared, must not take it for a copy nobody reads."""
    import shutil

    from audiostory_core.testing import write_tiny_checkpoint

    cache = tmp_path / "cache"
    first = write_tiny_checkpoint(tmp_path / "a") / "audiostory-3B" / "pytorch_model.bin"
    second = shutil.copytree(tmp_path / "a", tmp_path / "b") / "audiostory-3B" / "pytorch_model.bin"
    theirs = weight_files.as_safetensors(second, cache)
    real_save = weight_files.save_safetensors

    def save_then_other_run_prunes(tensors, out):
        real_save(tensors, out)
        weight_files.prune_conversions(theirs)   # the other run, right after this copy appears

    monkeypatch.setattr(weight_files, "save_safetensors", save_then_other_run_prunes)
    ours = weight_files.as_safetensors(first, cache)
    assert ours.is_file() and theirs.is_file()


def test_a_damaged_converted_copy_is_made_again_and_an_unwritable_cache_is_one_sentence(tmp_path):
    from audiostory_core.errors import AudioStoryError
    from audiostory_core.testing import write_tiny_checkpoint

    weights = write_tiny_checkpoint(tmp_path / "ckpt") / "audiostory-3B" / "pytorch_model.bin"
    made = weight_files.as_safetensors(weights, tmp_path / "cache")
    shapes, whole = weight_files.read_shapes(made), made.read_bytes()
    made.write_bytes(whole[: len(whole) // 2])   # disk trouble: the copy, not the checkpoint, is damaged
    assert weight_files.as_safetensors(weights, tmp_path / "cache") == made
    assert weight_files.read_shapes(made) == shapes   # whole again: its header covers the file
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")   # where the cache should go, a file: nothing can be written under it
    with pytest.raises(AudioStoryError) as err:
        weight_files.as_safetensors(weights, blocked)
    message = str(err.value)
    assert str(blocked / "converted") in message and "AUDIOSTORY_CACHE" in message and "\n" not in message
