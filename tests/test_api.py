"""The library entry point `dubber.dub`, its stage cache, the backend registry, and the AudioStory
backend on a tiny random-weight model (CPU)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import FrozenInstanceError
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import dubber
from dub_cli import placeholder_checkpoint, read_wav
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
    result = dubber.dub(clip, tmp_path / "a.mp4", _opts(tmp_path, backend="score", stems_dir=str(tmp_path / "st"),
                                                        timeline=True), progress=lambda s, d, t: seen.append(s))
    assert list(result.stage_seconds) == list(api.STAGES)
    assert [s for s in dict.fromkeys(seen) if "/" not in s] == list(api.STAGES)
    for role in ("video", "manifest", "mix", "stem:music", "stem:fx", "otio", "fcpxml", "srt"):
        assert Path(result.outputs[role]).is_file(), role
    manifest = json.loads(Path(result.outputs["manifest"]).read_text())
    assert manifest["schema"] == "dubber.manifest/1" and manifest["render"]["backend"] == "score"
    assert len(manifest["plan"]["cues"]) == result.cues and result.cues_from_cache == 0
    assert abs(result.integrated_lufs - (-16.0)) < 0.5 and result.true_peak_dbtp <= -1.0 + 1e-6
    with pytest.raises(FrozenInstanceError):
        result.cues = 0
    # Same input and settings: the analysis and plan come from the cache (the picture is not
    # analysed again), the score is played again to the very same bytes.
    import vision

    real_analyze, analysed = vision.analyze, []
    vision.analyze = lambda *a, **k: analysed.append(a) or real_analyze(*a, **k)
    try:
        again = dubber.dub(clip, tmp_path / "b.mp4", _opts(tmp_path, backend="score", stems_dir=str(tmp_path / "st2")))
        assert analysed == [] and again.cues == result.cues
        assert (tmp_path / "st" / "a.mix.wav").read_bytes() == (tmp_path / "st2" / "b.mix.wav").read_bytes()
        # Another seed is another soundtrack, from the same cached analysis.
        other = dubber.dub(clip, tmp_path / "c.mp4", _opts(tmp_path, backend="score", seed=5,
                                                           stems_dir=str(tmp_path / "st3")))
        assert analysed == [] and other.cues == result.cues
    finally:
        vision.analyze = real_analyze
    assert not np.array_equal(read_wav(tmp_path / "st" / "a.mix.wav")[0], read_wav(tmp_path / "st3" / "c.mix.wav")[0])
    # What the cache keeps for a score dub is the analysis and the plan (small), not audio.
    sizes = dubber.cache.cache_summary(tmp_path / "cache").stage_bytes
    assert sizes["analysis"] > 0 and sizes["plan"] > 0 and sizes["render"] == 0


def test_a_plan_cached_by_an_earlier_planner_is_made_again(clip, tmp_path, monkeypatch):
    # The cached plan holds the planner's text (captions, instruction): after an upgrade that
    # changes it, the same video and settings get the new planner's plan, from the cached analysis.
    import dubber.plan

    first = api.plan(clip, _opts(tmp_path))
    planned = []
    real_make_plan = dubber.plan.make_plan
    monkeypatch.setattr(dubber.plan, "make_plan", lambda *a, **k: planned.append(a) or real_make_plan(*a, **k))
    assert api.plan(clip, _opts(tmp_path)) == first and planned == []   # same planner: the cached plan
    monkeypatch.setattr(dubber.plan, "PLANNER_VERSION", dubber.plan.PLANNER_VERSION + 1)
    assert api.plan(clip, _opts(tmp_path)) == first and len(planned) == 1


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs a file system that takes no new files")
def test_a_cache_that_takes_no_files_is_said_not_silent(clip, tmp_path):
    # /proc takes no new files, even from root: the run goes on without a cache, and says so.
    result = dubber.dub(clip, tmp_path / "r.mp4", dubber.DubOptions(cache_dir="/proc/dub-cache", backend="score"))
    assert Path(result.output).is_file()
    assert [n for n in result.notes if n.startswith("the stage cache /proc/dub-cache cannot be written")]
    quiet = dubber.dub(clip, tmp_path / "q.mp4", dubber.DubOptions(cache_dir="/proc/dub-cache", backend="score",
                                                                    use_cache=False))
    assert not [n for n in quiet.notes if "stage cache" in n]


def test_a_plan_edited_by_its_frames_alone_is_read_as_meant(clip, tmp_path):
    # An editor moves a cue boundary five frames later in the plan file, by its frames; the
    # samples, left as they were, follow the frames.
    planned = api.plan(clip, _opts(tmp_path))
    data = planned.to_dict()
    moved = data["cues"][0]["end_frame"] + 5
    data["cues"][0]["end_frame"] = data["cues"][1]["start_frame"] = moved
    edited = tmp_path / "edited.plan.json"
    edited.write_text(json.dumps(data))
    plan = api.plan(clip, _opts(tmp_path, plan_path=str(edited)))
    media = api.probe(clip)
    assert plan.cues[0].end_frame == plan.cues[1].start_frame == moved
    assert plan.cues[1].start_sample == plan.cues[0].end_sample == media.frame_to_sample(moved, plan.sample_rate)
    assert [c.start_sample for c in plan.cues[2:]] == [c.start_sample for c in planned.cues[2:]]


def test_the_only_cut_of_a_video_can_be_moved_in_its_own_plan(tmp_path):
    """A plan made for this very video may move its shots off the detected cuts: the editor knows
    better. A plan whose origin is unknown (made before plans named their video, or edited to
    lose it) with its only shot start off the cut is still taken for another video's."""
    from samples.synth import SynthSpec, synthesize

    video = tmp_path / "two shots.mp4"
    synthesize(video, SynthSpec(width=160, height=90, fps=Fraction(24), duration_s=4.0, shot_s=2.0, audio=False))
    planned = api.plan(video, _opts(tmp_path))
    assert len(planned.cues) == 2 and planned.source
    data = planned.to_dict()
    data["cues"][0]["end_frame"] = data["cues"][1]["start_frame"] = planned.cues[1].start_frame - 12
    edited = tmp_path / "moved.plan.json"
    edited.write_text(json.dumps(data))
    moved = api.plan(video, _opts(tmp_path, plan_path=str(edited)))
    assert moved.cues[1].start_frame == planned.cues[1].start_frame - 12
    copy = tmp_path / "copy.mp4"   # a copy of the video is the same video
    copy.write_bytes(video.read_bytes())
    assert api.plan(copy, _opts(tmp_path, plan_path=str(edited))).cues[1].start_frame == moved.cues[1].start_frame
    for unknown in ({**data, "source": ""}, {k: v for k, v in data.items() if k != "source"}):
        edited.write_text(json.dumps(unknown))
        with pytest.raises(dubber.errors.PlanError, match="made for another video"):
            api.plan(video, _opts(tmp_path, plan_path=str(edited)))
    # without its source and with its shots on the cuts, it is taken as this video's plan
    edited.write_text(json.dumps({k: v for k, v in planned.to_dict().items() if k != "source"}))
    assert [c.start_frame for c in api.plan(video, _opts(tmp_path, plan_path=str(edited))).cues] == \
        [c.start_frame for c in planned.cues]


def test_keep_original_adds_a_second_track_under_the_dub(clip, tmp_path):
    import av

    result = dubber.dub(clip, tmp_path / "k.mp4", _opts(tmp_path, backend="score", keep_original=True,
                                                        original_gain_db=-6.0, stems_dir=str(tmp_path / "st")))
    with av.open(str(result.output)) as container:
        tracks = [(s.metadata.get("title") or s.metadata.get("name"), bool(s.disposition & av.stream.Disposition.default))
                  for s in container.streams.audio]
    assert tracks == [("Dub", True), ("Original", False)]
    bed, _ = read_wav(tmp_path / "st" / "k.original.wav")
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
    # Without a GPU, downloading the weights would change nothing: that is not the advice.
    monkeypatch.setattr(backends, "cuda_available", lambda: False)
    name, reason = choose_auto(None)
    assert name == "score" and "no CUDA GPU" in reason and "download" not in reason
    monkeypatch.setattr(backends, "cuda_available", lambda: True)
    name, reason = choose_auto(None)
    assert name == "score" and "dub models download" in reason
    fake = placeholder_checkpoint(tmp_path / "ckpt", (
        "audiostory-3B/config.yaml", "audiostory-3B/pytorch_model.bin", "Flux_detokenizer/config.json",
        "Flux_detokenizer/model.safetensors", "Qwen2.5-3B-Instruct/tokenizer_config.json"))
    monkeypatch.setattr(backends, "cuda_available", lambda: False)
    assert choose_auto(str(fake)) == ("score", "score backend: AudioStory weights found but no CUDA GPU is available")
    # Weights named with --model that are not there are said too, not only the missing GPU.
    name, reason = choose_auto(str(tmp_path / "typo"))
    assert name == "score" and "no CUDA GPU" in reason and f"{tmp_path / 'typo'} does not exist" in reason
    monkeypatch.setattr(backends, "cuda_available", lambda: True)
    name, reason = choose_auto(str(fake))
    assert name == "audiostory" and str(fake / "audiostory-3B") in reason
    assert choose_auto(str(fake), device="cpu")[0] == "score"
    with pytest.raises(BackendUnavailable):
        backends.get_backend("nope")


@pytest.mark.skipif(not sys.platform.startswith("linux") or any(
    os.path.exists(p) for p in ("/proc/driver/nvidia/version", "/dev/nvidiactl", "/dev/kfd", "/dev/dxg")),
    reason="a machine without any GPU driver")
def test_choosing_the_score_engine_beside_downloaded_weights_does_not_import_torch(tmp_path):
    """A laptop holding the weights but no GPU dubs with the score engine without paying for
    torch's import to learn there is no CUDA."""
    fake = placeholder_checkpoint(tmp_path / "ckpt", (
        "audiostory-3B/config.yaml", "audiostory-3B/pytorch_model.bin", "Flux_detokenizer/config.json",
        "Flux_detokenizer/model.safetensors", "Qwen2.5-3B-Instruct/tokenizer_config.json"))
    code = ("import sys; from dubber.backends import choose_auto; "
            f"print(choose_auto({str(fake)!r})); print('torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    choice, imported = proc.stdout.splitlines()
    assert "AudioStory weights found but no CUDA GPU" in choice and imported == "False"

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


def test_a_plan_edited_only_in_style_or_seed_is_rendered_again(clip, tmp_path):
    """The score engine reads the plan's own style and seed: changing only those in a saved plan
    gives a new soundtrack, never the cached cues of the old one."""
    first = dubber.dub(clip, tmp_path / "a.mp4", _opts(tmp_path, backend="score", stems_dir=str(tmp_path / "s")))
    plan = json.loads(Path(first.outputs["manifest"]).read_text())["plan"]
    assert (plan["style"], plan["seed"]) == ("tom-and-jerry", 0)
    mix, _ = read_wav(tmp_path / "s" / "a.mix.wav")
    for n, edit in enumerate(({"style": "noir"}, {"seed": 99}, {})):
        path = tmp_path / f"edited{n}.plan.json"
        path.write_text(json.dumps({**plan, **edit}))
        result = dubber.dub(clip, tmp_path / f"e{n}.mp4", _opts(tmp_path, backend="score", plan_path=str(path),
                                                                 stems_dir=str(tmp_path / f"s{n}")))
        again, _ = read_wav(tmp_path / f"s{n}" / f"e{n}.mix.wav")
        if edit:
            assert not np.array_equal(again, mix), edit
        else:   # the plan as it was: the same soundtrack
            assert result.cues == len(plan["cues"]) and np.array_equal(again, mix)


def test_score_draws_its_timeline_once_whatever_the_render_group(clip, tmp_path, monkeypatch):
    from dubber.backends.score import ScoreBackend

    calls: list[int] = []
    real_render = ScoreBackend.render

    def counting(self, plan, analysis, progress=no_progress):
        calls.append(len(plan.cues))
        return real_render(self, plan, analysis, progress)

    monkeypatch.setattr(ScoreBackend, "render", counting)
    grouped = dubber.dub(clip, tmp_path / "g.mp4", _opts(tmp_path, backend="score", render_group=1,
                                                         stems_dir=str(tmp_path / "g")))
    assert grouped.cues == 3 and calls == [3]
    # A rerun draws the whole timeline again, in one call, to the same soundtrack; so does a
    # run with a fresh cache and the default grouping.
    again = dubber.dub(clip, tmp_path / "r.mp4", _opts(tmp_path, backend="score", render_group=1,
                                                       stems_dir=str(tmp_path / "r")))
    assert again.cues == 3 and calls == [3, 3]
    whole = dubber.dub(clip, tmp_path / "w.mp4", dubber.DubOptions(backend="score", cache_dir=str(tmp_path / "c2"),
                                                                    stems_dir=str(tmp_path / "w")))
    assert whole.cues_from_cache == 0 and calls == [3, 3, 3]
    mixes = [read_wav(tmp_path / d / f"{d}.mix.wav")[0] for d in ("g", "r", "w")]
    assert np.abs(mixes[0]).max() > 0.1
    assert np.array_equal(mixes[0], mixes[1]) and np.array_equal(mixes[0], mixes[2])


def test_the_dub_ends_with_the_picture_when_the_container_overstates_its_length(clip, sample_24p, tmp_path,
                                                                                  monkeypatch):
    """The decoder's frame count, not the container's claim, sets the muxed track's length."""
    import dataclasses

    import vision
    from dub_cli import decode_track

    truth = sample_24p[1]
    real_probe = vision.probe

    def overstated(path):
        media = real_probe(path)
        frames = media.frame_count + 12
        return dataclasses.replace(media, frame_count=frames, duration_s=float(frames / media.fps))

    monkeypatch.setattr(vision, "probe", overstated)
    result = dubber.dub(clip, tmp_path / "o.mp4", _opts(tmp_path, backend="score"))
    picture_s = Fraction(truth["frame_count"]) / Fraction(truth["fps"])
    assert result.total_samples == round(picture_s * SR)
    audio, rate = decode_track(result.output)
    assert rate == SR and abs(audio.shape[1] - round(picture_s * SR)) < 1024   # one AAC frame at most
    import av

    with av.open(str(result.output)) as container:
        video = container.streams.video[0]
        assert video.frames == truth["frame_count"]


def test_manifest_records_the_stems_folder_like_its_other_outputs(clip, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = dubber.dub(clip, tmp_path / "out" / "v.mp4", _opts(tmp_path, backend="score", stems_dir="out/st"))
    manifest = json.loads(Path(result.outputs["manifest"]).read_text())
    here = Path(result.outputs["manifest"]).parent
    assert manifest["settings"]["stems_dir"] == "st" and manifest["outputs"]["mix"] == "st/v.mix.wav"
    assert (here / manifest["settings"]["stems_dir"] / "v.mix.wav").is_file()
    elsewhere = dubber.dub(clip, tmp_path / "out" / "w.mp4", _opts(tmp_path, backend="score", stems_dir="other/st"))
    manifest = json.loads(Path(elsewhere.outputs["manifest"]).read_text())
    # beside the manifest's folder: still relative, so the project can be moved whole
    assert manifest["settings"]["stems_dir"] == "../other/st" and manifest["outputs"]["mix"] == "../other/st/w.mix.wav"
    assert (Path(elsewhere.outputs["manifest"]).parent / manifest["outputs"]["mix"]).is_file()
    assert manifest["settings"]["cache_dir"] == str((tmp_path / "cache").resolve())


def test_user_errors_and_names_have_one_source():
    from audiostory_core.errors import AudioStoryError
    from dubber.watch import journal
    from dubber.errors import is_user_error
    from dubber.styles import STYLE_PRESETS
    from vision.captioners import CAPTIONERS
    from vision.errors import VideoNotFound

    assert journal.is_user_error is is_user_error
    assert all(is_user_error(e) for e in (InputError("x"), VideoNotFound("x"), AudioStoryError("x")))
    assert not is_user_error(ValueError("x")) and not is_user_error(KeyError("x"))
    for name in CAPTIONERS:
        api.check_options(dubber.DubOptions(captioner=name))
    with pytest.raises(InputError, match=", ".join(CAPTIONERS)):
        api.check_options(dubber.DubOptions(captioner="sonar"))
    with pytest.raises(InputError, match=", ".join(STYLE_PRESETS)):
        api.check_options(dubber.DubOptions(style="polka"))


# ----------------------------------------------------------------------------- AudioStory backend

@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A random-weight AudioStory checkpoint in the official folder layout (tiny config)."""
    pytest.importorskip("torch")
    from audiostory_core.testing import write_tiny_checkpoint

    return write_tiny_checkpoint(tmp_path_factory.mktemp("tiny-audiostory"))


SR = 48_000
CUT_FADE_SAMPLES = round(0.050 * SR)   # the previous cue's tail fades out over a cut's first 50 ms


def _misfit(track: np.ndarray, cue_audio: np.ndarray, at: int) -> float:
    """How far `track` from sample `at` is from one gain times the cue's own samples (relative
    max error; the cut cross-fade at the start and the programme's closing fade are left out)."""
    from dubber.mix import END_FADE_MS

    n = min(cue_audio.shape[1], track.shape[1] - int(END_FADE_MS * SR / 1000) - at)
    seg, ref = track[:, at + CUT_FADE_SAMPLES: at + n], cue_audio[:, CUT_FADE_SAMPLES: n]
    gain = float((seg * ref).sum() / (ref * ref).sum())
    return float(np.abs(seg - gain * ref).max() / np.abs(seg).max())


def test_dub_command_renders_with_audiostory_on_cpu(tiny_checkpoint, sample_30p_silent, tmp_path):
    """The real `dub` command in a subprocess loads the tiny checkpoint from disk (nothing patched)."""
    import av
    from dub_cli import dub_env, json_events, run_dub, video_packets

    video, truth = sample_30p_silent
    env = dub_env(tmp_path, AUDIOSTORY_CACHE=str(tmp_path / "audiostory-cache"))
    out, stems = tmp_path / "out.mp4", tmp_path / "stems"
    # -30 LUFS leaves the limiter idle, so the dub stem is the placed cues times one gain.
    proc = run_dub([video, "--backend", "audiostory", "--model", tiny_checkpoint, "--device", "cpu", "-o", out,
                    "--stems", stems, "--lufs", "-30", "--json-progress"], env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    done = json_events(proc.stdout)[-1]
    assert done["event"] == "done" and done["backend"] == "audiostory" and done["output"] == str(out)
    assert done["reason"].startswith("audiostory backend: chosen with --backend") and out.is_file()
    assert abs(done["integrated_lufs"] - (-30.0)) < 0.5
    manifest = json.loads(out.with_suffix(".json").read_text())
    assert manifest["render"]["model_id"] == str(tiny_checkpoint) and manifest["render"]["stems"] == ["dub"]
    assert (manifest["settings"]["model"], manifest["settings"]["device"]) == (str(tiny_checkpoint), "cpu")
    # One cue per shot, on the shot's first sample (from the video's ground truth), exactly its length.
    fps = Fraction(truth["fps"])
    total = round(truth["frame_count"] * SR / fps)
    cues = manifest["plan"]["cues"]
    assert len(cues) == len(truth["shots"]) == done["cues"]
    for cue, shot in zip(cues, truth["shots"]):
        start, end = (round(shot[k] * SR / fps) for k in ("start_frame", "end_frame"))
        placed = (cue["start_frame"], cue["start_sample"], cue["num_samples"])
        assert placed == (shot["start_frame"], start, end - start)
    assert sum(c["num_samples"] for c in cues) == total
    dub, rate = read_wav(stems / "out.dub.wav")
    mix, mix_rate = read_wav(stems / "out.mix.wav")
    assert rate == mix_rate == SR and dub.shape == mix.shape == (2, total) and np.abs(dub).max() > 0
    np.testing.assert_allclose(mix, dub, atol=2**-22)          # one stem: the mix is the dub
    store = next((tmp_path / "dub-cache" / "render").iterdir())
    for cue in cues:
        with np.load(next(store.glob(f"cue-{cue['index']:05d}-*.npz"))) as saved:
            rendered = saved["dub"]
        assert rendered.shape == (2, cue["num_samples"]) and rendered.dtype == np.float32
        # The rendered cue sits in the stem from its start sample on, not one sample early or late.
        assert _misfit(dub, rendered, cue["start_sample"]) < 1e-4
        assert min(_misfit(dub, rendered, cue["start_sample"] + lag) for lag in (-1, 1)) > 1e-3
    with av.open(str(out)) as container:
        track = container.streams.audio[0]
        assert round(track.duration * track.time_base * SR) == total
    assert video_packets(out) == video_packets(video), "the picture was re-encoded or altered"


def test_dub_command_free_timing_reports_a_plan_the_model_did_not_write(tiny_checkpoint, sample_30p_silent,
                                                                         tmp_path):
    """A random model writes no clip plan of its own: the command says so in one sentence, exit 2."""
    from dub_cli import dub_env, json_events, run_dub

    video, _ = sample_30p_silent
    env = dub_env(tmp_path, AUDIOSTORY_CACHE=str(tmp_path / "audiostory-cache"))
    out = tmp_path / "free.mp4"
    proc = run_dub([video, "--backend", "audiostory", "--model", tiny_checkpoint, "--device", "cpu", "-o", out,
                    "--timing", "free", "--stems", tmp_path / "stems", "--json-progress"], env)
    assert proc.returncode == 2, proc.stderr[-2000:]
    error = json_events(proc.stdout)[-1]
    assert error["event"] == "error" and error["exit_code"] == 2
    message = error["message"]
    from audiostory_core.testing import MAX_NEW_TOKENS

    assert message.startswith(f"The model wrote no complete audio clip in {MAX_NEW_TOKENS} tokens;")
    assert "\n" not in message
    # the limit is the checkpoint's, not an option of dub: the message says where to raise it
    assert message.endswith("raise max_new_tokens in the checkpoint's generation_config.json (or the sampling "
                            "section of its config.yaml).") and message.count(". ") == 0
    assert proc.stderr.strip().splitlines()[-1] == f"dub: {message}"
    assert not out.exists() and not out.with_suffix(".json").exists() and not (tmp_path / "stems").exists()


def test_doctor_finds_a_checkpoint_given_with_model(tiny_checkpoint, tmp_path):
    from dub_cli import dub_env, run_dub

    proc = run_dub(["doctor", "--model", tiny_checkpoint], dub_env(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("AudioStory weights"))
    assert line.split(None, 2)[2] == f"found in {tiny_checkpoint / 'audiostory-3B'}"


def test_audiostory_free_timing_lays_the_models_clips_over_the_plan(tiny_checkpoint, sample_30p_silent, tmp_path,
                                                                     monkeypatch):
    from audiostory_core import tokenizer as tk
    from audiostory_core.testing import free_processor, free_script
    from dubber.backends.audiostory import AudioStoryBackend

    monkeypatch.setenv("AUDIOSTORY_CACHE", str(tmp_path / "audiostory-cache"))
    video, _ = sample_30p_silent
    options = _opts(tmp_path, backend="audiostory", model=str(tiny_checkpoint), device="cpu", timing="free")
    path = api.check_input_file(video)
    analysis, key = api._analyze(path, options, no_progress)
    plan = api._plan(analysis, key, options, path)
    backend = AudioStoryBackend(BackendOptions(model=str(tiny_checkpoint), device="cpu", timing="free"))
    pipe = backend.pipeline
    real_generate = pipe.generate

    def scripted(instruction, total_duration_s, **kw):
        # The random model cannot write a clip plan by itself; a script writes its text tokens.
        script = free_script(pipe, [("dog barks", 0.6), ("rain falls", 0.5)])
        processor = free_processor(pipe, instruction, total_duration_s, script, lead=kw.get("lead", tk.DEFAULT_LEAD))
        return real_generate(instruction, total_duration_s, extra_processors=[processor], **kw)

    pipe.generate = scripted
    result = backend.render(plan, analysis)
    assert result.free_timing_captions == ("[0.0-0.6 s] dog barks", "[0.6-1.1 s] rain falls")
    assert [(c.cue_index, c.start_sample, c.num_samples) for c in result.cues] == \
        [(c.index, c.start_sample, c.num_samples) for c in plan.cues]
    track = np.concatenate([c.stems["dub"] for c in result.cues], axis=1)
    assert track.shape == (2, plan.total_samples)
    # The model's 1.1 s of audio, resampled to 48 kHz, opens the track; the rest is silence.
    assert np.abs(track[:, : 48_000]).max() > 0 and not np.any(track[:, int(1.2 * 48_000):])
