"""The library entry point `dubber.dub`, its stage cache, the backend registry, and the AudioStory
backend on a tiny random-weight model (CPU)."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
from dataclasses import FrozenInstanceError
from pathlib import Path

import numpy as np
import pytest

import dubber
from dub_cli import read_wav
from dubber import api
from dubber.backends import BackendOptions, choose_auto
from dubber.cache import CueStore, StageCache, fingerprint
from dubber.errors import BackendUnavailable, InputError
from dubber.types import Cue, CueAudio, no_progress


def _opts(tmp: Path, **kw) -> dubber.DubOptions:
    return dubber.DubOptions(cache_dir=str(tmp / "cache"), **kw)


@pytest.fixture()
def clip(tmp_path, sample_24p) -> Path:
    return Path(shutil.copyfile(sample_24p[0], tmp_path / "clip.mp4"))


def test_dub_outputs_stages_and_cache(clip, tmp_path):
    seen: list[str] = []
    result = dubber.dub(clip, tmp_path / "a.mp4", _opts(tmp_path, backend="sketch", stems_dir=str(tmp_path / "st"),
                                                        timeline=True), progress=lambda s, d, t: seen.append(s))
    assert list(result.stage_seconds) == list(api.STAGES)
    assert [s for s in dict.fromkeys(seen) if "/" not in s] == list(api.STAGES)
    for role in ("video", "manifest", "mix", "stem:music", "stem:fx", "otio", "fcpxml", "srt"):
        assert Path(result.outputs[role]).is_file(), role
    manifest = json.loads(Path(result.outputs["manifest"]).read_text())
    assert manifest["schema"] == "dubber.manifest/1" and manifest["render"]["backend"] == "sketch"
    assert len(manifest["plan"]["cues"]) == result.cues and result.cues_from_cache == 0
    assert abs(result.integrated_lufs - (-16.0)) < 0.5 and result.true_peak_dbtp <= -1.0 + 1e-6
    with pytest.raises(FrozenInstanceError):
        result.cues = 0
    # Same input and settings: analysis, plan and every cue come from the cache.
    again = dubber.dub(clip, tmp_path / "b.mp4", _opts(tmp_path, backend="sketch", stems_dir=str(tmp_path / "st2")))
    assert again.cues_from_cache == again.cues == result.cues
    assert np.array_equal(read_wav(tmp_path / "st" / "mix.wav")[0], read_wav(tmp_path / "st2" / "mix.wav")[0])
    # Another seed is another soundtrack: nothing reused from the render cache.
    other = dubber.dub(clip, tmp_path / "c.mp4", _opts(tmp_path, backend="sketch", seed=5,
                                                       stems_dir=str(tmp_path / "st3")))
    assert other.cues_from_cache == 0
    assert not np.array_equal(read_wav(tmp_path / "st" / "mix.wav")[0], read_wav(tmp_path / "st3" / "mix.wav")[0])


def test_keep_original_adds_a_second_track_under_the_dub(clip, tmp_path):
    import av

    result = dubber.dub(clip, tmp_path / "k.mp4", _opts(tmp_path, backend="sketch", keep_original=True,
                                                        original_gain_db=-6.0, stems_dir=str(tmp_path / "st")))
    with av.open(str(result.output)) as container:
        tracks = [(s.metadata.get("title") or s.metadata.get("name"), bool(s.disposition & av.stream.Disposition.default))
                  for s in container.streams.audio]
    assert tracks == [("Dub", True), ("Original", False)]
    bed, _ = read_wav(tmp_path / "st" / "original.wav")
    assert np.abs(bed).max() > 0   # the original is mixed in as a bed


def test_loudness_presets_and_limits():
    assert api.resolve_lufs("ebu") == -23.0 and api.resolve_lufs("atsc") == -24.0
    assert api.resolve_lufs("web") == -16.0 and api.resolve_lufs("-14") == -14.0
    for bad in ("-80", "0", "loud"):
        with pytest.raises(InputError):
            api.resolve_lufs(bad)


def test_fingerprint_fast_and_full(tmp_path):
    a = tmp_path / "a.bin"
    a.write_bytes(os.urandom(3 << 20))
    fast, full = fingerprint(a), fingerprint(a, full=True)
    os.utime(a, ns=(1, 1))
    assert fingerprint(a) != fast and fingerprint(a, full=True) == full   # fast mode sees the date
    data = bytearray(a.read_bytes())
    data[(3 << 20) // 2] ^= 0xFF                                            # a byte in the middle
    a.write_bytes(bytes(data))
    os.utime(a, ns=(1, 1))
    assert fingerprint(a, full=True) != full


def test_cue_store_is_atomic_and_ignores_damaged_entries(tmp_path):
    cue = Cue(index=3, shot_index=1, start_frame=10, end_frame=20, start_sample=100, num_samples=50,
              caption="x", prompt="x", seed=1)
    store = CueStore(tmp_path / "render" / "k")
    audio = CueAudio(3, 100, {"dub": np.linspace(-1, 1, 100, dtype=np.float32).reshape(2, 50)})
    assert store.load(cue) is None
    store.save(cue, audio)
    assert [p.name for p in store.folder.iterdir()] == [store.path_for(cue).name]   # no temp file left
    assert np.array_equal(store.load(cue).stems["dub"], audio.stems["dub"])
    edited = Cue(**{**cue.to_dict(), "prompt": "y"})
    assert store.load(edited) is None                 # an edited cue is another entry
    store.path_for(cue).write_bytes(b"PK\x03\x04 broken")
    assert store.load(cue) is None
    assert CueStore(store.folder, force=True).load(cue) is None
    assert StageCache(tmp_path, enabled=False).load_json("plan", "k") is None


def test_auto_backend_choice(tmp_path, monkeypatch):
    from dubber import backends

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    name, reason = choose_auto(None)
    assert name == "sketch" and "dub models download" in reason
    fake = tmp_path / "ckpt"
    for rel in ("audiostory-3B/config.yaml", "audiostory-3B/pytorch_model.bin", "Flux_detokenizer/config.json",
                "Flux_detokenizer/model.safetensors", "Qwen2.5-3B-Instruct/tokenizer_config.json"):
        (fake / rel).parent.mkdir(parents=True, exist_ok=True)
        (fake / rel).write_text("{}")
    monkeypatch.setattr(backends, "cuda_available", lambda: False)
    assert choose_auto(str(fake)) == ("sketch", "sketch backend: AudioStory weights found but no CUDA GPU is available")
    monkeypatch.setattr(backends, "cuda_available", lambda: True)
    name, reason = choose_auto(str(fake))
    assert name == "audiostory" and str(fake / "audiostory-3B") in reason
    assert choose_auto(str(fake), device="cpu")[0] == "sketch"
    with pytest.raises(BackendUnavailable):
        backends.get_backend("nope")

def test_choosing_a_backend_leaves_the_environment_alone(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    before = dict(os.environ)
    choose_auto(None)
    assert dict(os.environ) == before


def test_explicit_audiostory_without_weights_fails_before_any_work(clip, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    with pytest.raises(BackendUnavailable, match="dub models download"):
        dubber.dub(clip, tmp_path / "x.mp4", _opts(tmp_path, backend="audiostory"))
    assert not (tmp_path / "cache").exists()


# ----------------------------------------------------------------------------- AudioStory backend

@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A random-weight AudioStory checkpoint in the official folder layout (tiny config)."""
    torch = pytest.importorskip("torch")
    from test_audiostory_checkpoint import _tiny_cfg, _write_checkpoint

    from audiostory_core.model import build_audiostory
    from audiostory_core.vae import build_vae

    cfg = _tiny_cfg()
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("tiny-audiostory")
    _write_checkpoint(root, build_audiostory(cfg), build_vae(cfg.vae), cfg)
    return root


@pytest.fixture()
def tiny_loader(monkeypatch, tmp_path):
    """`from_pretrained` reading the tiny checkpoint's weights strictly from disk; only the VAE
    size, the tokenizer and the sampling settings come from the tiny config (the full-size loader
    assumes the 3B model's VAE, vocabulary and 3 s cross-fades)."""
    from test_audiostory_checkpoint import _tiny_cfg

    from audiostory_core import checkpoint, hub
    from audiostory_core import tokenizer as tk
    from audiostory_core.device import resolve_device
    from audiostory_core.pipeline import AudioStoryPipeline

    loads = []

    def from_pretrained(cls, path_or_repo=None, device=None, dtype=None, cache_dir=None):
        files = hub.locate(path_or_repo)
        placement = resolve_device(device, dtype)
        model = checkpoint.load_model(files, placement, tmp_path / "converted")
        vae = checkpoint.load_vae(files, placement, _tiny_cfg().vae)
        loads.append((str(path_or_repo), str(placement.device)))
        config = dataclasses.replace(model.cfg, sampling=_tiny_cfg().sampling)
        return cls(agent=model.agent, fusion=model.fusion, detokenizer=model.detokenizer, vae=vae,
                   tokenizer=tk.debug_tokenizer(), config=config)

    monkeypatch.setattr(AudioStoryPipeline, "from_pretrained", classmethod(from_pretrained))
    return loads


def test_audiostory_backend_renders_every_cue_exactly(tiny_checkpoint, tiny_loader, tmp_path, sample_30p_silent):
    video, truth = sample_30p_silent
    options = _opts(tmp_path, backend="audiostory", model=str(tiny_checkpoint), device="cpu",
                    stems_dir=str(tmp_path / "st"))
    result = dubber.dub(video, tmp_path / "as.mp4", options)
    assert tiny_loader == [(str(tiny_checkpoint), "cpu")]
    assert result.backend == "audiostory" and result.cues >= len(truth["shots"])
    manifest = json.loads(Path(result.outputs["manifest"]).read_text())
    assert manifest["render"]["model_id"] == str(tiny_checkpoint) and manifest["render"]["stems"] == ["dub"]
    total = round(truth["frame_count"] * 48_000 / 30)
    dub, rate = read_wav(tmp_path / "st" / "dub.wav")
    assert rate == 48_000 and dub.shape == (2, total) and np.abs(dub).max() > 0
    cues = manifest["plan"]["cues"]
    store = next((tmp_path / "cache" / "render").iterdir())
    for cue in cues:
        with np.load(next(store.glob(f"cue-{cue['index']:05d}-*.npz"))) as saved:
            assert saved["dub"].shape == (2, cue["num_samples"]) and saved["dub"].dtype == np.float32
    assert sum(c["num_samples"] for c in cues) == total


def test_audiostory_free_timing_lays_the_models_clips_over_the_plan(tiny_checkpoint, tiny_loader, sample_30p_silent,
                                                                     tmp_path):
    from test_audiostory_pipeline import ScriptProcessor, _free_script

    from audiostory_core import tokenizer as tk
    from dubber.backends.audiostory import AudioStoryBackend

    video, _ = sample_30p_silent
    options = _opts(tmp_path, backend="audiostory", model=str(tiny_checkpoint), device="cpu", timing="free")
    analysis, key = api._analyze(api.check_input_file(video), options, no_progress)
    plan = api._plan(analysis, key, options)
    backend = AudioStoryBackend(BackendOptions(model=str(tiny_checkpoint), device="cpu", timing="free"))
    pipe = backend.pipeline
    real_generate = pipe.generate

    def scripted(instruction, total_duration_s, **kw):
        # The random model cannot write a clip plan by itself; a script writes its text tokens.
        prompt = tk.chat_prompt(tk.instruction_text(instruction, total_duration_s, kw.get("lead", tk.DEFAULT_LEAD)))
        script = _free_script(pipe, [("dog barks", 0.6), ("rain falls", 0.5)])
        return real_generate(instruction, total_duration_s,
                             extra_processors=[ScriptProcessor(len(tk.encode(pipe.tokenizer, prompt)), script)], **kw)

    pipe.generate = scripted
    result = backend.render(plan, analysis)
    assert result.free_timing_captions == ("[0.0-0.6 s] dog barks", "[0.6-1.1 s] rain falls")
    assert [(c.cue_index, c.start_sample, c.num_samples) for c in result.cues] == \
        [(c.index, c.start_sample, c.num_samples) for c in plan.cues]
    track = np.concatenate([c.stems["dub"] for c in result.cues], axis=1)
    assert track.shape == (2, plan.total_samples)
    # The model's 1.1 s of audio, resampled to 48 kHz, opens the track; the rest is silence.
    assert np.abs(track[:, : 48_000]).max() > 0 and not np.any(track[:, int(1.2 * 48_000):])


def test_cli_renders_with_audiostory_on_cpu(tiny_checkpoint, tiny_loader, sample_30p_silent, tmp_path, capsys,
                                            monkeypatch):
    from dubber._cli import main

    monkeypatch.setenv("DUB_CACHE_DIR", str(tmp_path / "cache"))
    video, _ = sample_30p_silent
    out = tmp_path / "cli.mkv"
    code = main([str(video), "-o", str(out), "--backend", "audiostory", "--model", str(tiny_checkpoint),
                 "--device", "cpu", "--json-progress"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    done = json.loads(captured.out.strip().splitlines()[-1])
    assert done["event"] == "done" and done["backend"] == "audiostory" and done["output"] == str(out)
    assert done["reason"].startswith("audiostory backend: chosen with --backend")
    assert out.is_file() and tiny_loader == [(str(tiny_checkpoint), "cpu")]
