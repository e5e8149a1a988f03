"""The AudioStory backend in a dub: one storyline however the cues are grouped, cached audio
keyed by the weights themselves, and the manifest naming the weights that made the sound.

Checkpoints come from `audiostory_core.testing` (random tiny weights, official layout); nothing
is downloaded.
"""
from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from dub_cli import dub_env, run_dub  # noqa: E402
from dubber.backends.audiostory import AudioStoryBackend  # noqa: E402
from dubber.cache import StageCache, render_cached  # noqa: E402
from dubber.plan import PlanOptions, audiostory_text, make_plan  # noqa: E402
from dubber.types import no_progress  # noqa: E402
from vision.types import MediaInfo, Shot, ShotCaption, VideoAnalysis  # noqa: E402

CAPTIONS = ("A cat tiptoes", "A mouse runs", "A door slams", "A dog barks", "Plates crash", "The cat sleeps")


def six_shot_analysis() -> VideoAnalysis:
    """6 s at 25 fps, six shots of one second."""
    media = MediaInfo(path="/videos/chase.mp4", duration_s=6.0, fps=Fraction(25), frame_count=150,
                      width=320, height=180)
    shots = tuple(Shot(i, 25 * i, 25 * (i + 1)) for i in range(6))
    caps = tuple(ShotCaption(i, t, captioner="test") for i, t in enumerate(CAPTIONS))
    return VideoAnalysis(media=media, shots=shots, events=(), motion=tuple(0.3 for _ in range(150)), captions=caps)


@pytest.fixture(scope="module")
def pipe():
    from audiostory_core.pipeline import AudioStoryPipeline

    return AudioStoryPipeline.debug(sampling={"num_inference_steps": 2})


def test_cues_rendered_a_few_at_a_time_read_the_whole_plans_storyline(pipe, tmp_path, monkeypatch):
    """Groups only batch the diffusion: every call's language model reads the text of the whole
    plan (all six points, the whole length), and the audio is that of one call for all cues."""
    analysis = six_shot_analysis()
    plan = make_plan(analysis, PlanOptions(style="tom-and-jerry", seed=3))
    read = []
    real = pipe.story_sequence

    def spy(story):
        read.append(story.prefix)
        return real(story)

    monkeypatch.setattr(pipe, "story_sequence", spy)
    backend = AudioStoryBackend(pipeline=pipe)
    cache = StageCache(tmp_path / "cache")
    at_once, _ = render_cached(backend, plan, analysis, cache.cue_store("at-once"), no_progress, None)
    grouped, _ = render_cached(backend, plan, analysis, cache.cue_store("grouped"), no_progress, 4)
    assert len(read) == 3 and read[1] == read[2] == read[0]
    assert "6.0 seconds" in audiostory_text(plan).instruction
    for a, b in zip(at_once.cues, grouped.cues):
        np.testing.assert_allclose(a.stems["dub"], b.stems["dub"], atol=1e-6)
    # The manifest's record names every cue's seed, not the last group's.
    seeds = [c.seed for c in plan.cues]
    assert grouped.notes[0] == f"shot-locked, seeds {seeds}" == at_once.notes[0]


def _hub_snapshot(home: Path, checkpoint: Path, revision: str) -> None:
    """`checkpoint` as the Hugging Face cache holds TencentARC/AudioStory-3B at `revision`."""
    repo = home / "hub" / "models--TencentARC--AudioStory-3B"
    shutil.copytree(checkpoint, repo / "snapshots" / revision)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(revision)


def _dub(video: Path, out: Path, env: dict, *args: str, cwd: Path | None = None) -> dict:
    proc = run_dub([video, "--backend", "audiostory", "--device", "cpu", "-o", out, "--stems", out.parent / "stems",
                    *args], env, timeout=300, cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(out.with_suffix(".json").read_text())


def _sound(manifest_path: Path) -> np.ndarray:
    import soundfile

    stem = manifest_path.parent / "stems" / (manifest_path.stem + ".dub.wav")
    return soundfile.read(str(stem), dtype="float32")[0]


def test_new_weights_under_the_same_name_are_rendered_afresh_and_named(sample_30p_silent, tmp_path):
    """A new Hub revision, or another checkpoint in a folder of the same name, gets its own
    audio, never the cached audio of the old weights; the manifest says which weights these were."""
    from audiostory_core.testing import write_tiny_checkpoint

    video, _ = sample_30p_silent
    first, second = (write_tiny_checkpoint(tmp_path / "ckpts" / name, seed=seed)
                     for name, seed in (("a", 0), ("b", 1)))
    home, cache = tmp_path / "hf", tmp_path / "dub-cache"
    env = dub_env(tmp_path, HF_HOME=str(home), HF_HUB_CACHE=str(home / "hub"), DUB_CACHE_DIR=str(cache),
                  AUDIOSTORY_CACHE=str(tmp_path / "converted"))
    r1, r2 = "1" * 40, "2" * 40

    def hub_revisions() -> tuple[dict, dict]:
        _hub_snapshot(home, first, r1)
        old = _dub(video, tmp_path / "o1" / "v.mp4", env)
        _hub_snapshot(home, second, r2)   # the Hub's main moved on, and the new revision was fetched
        return old, _dub(video, tmp_path / "o2" / "v.mp4", env)

    def same_folder_name() -> dict[str, dict]:
        # Two projects, each with its own checkpoint in a folder called "ckpt", one stage cache.
        # Their weights are converted into a folder of their own: two runs converting different
        # checkpoints into one folder at once can remove each other's copy.
        own = {**env, "AUDIOSTORY_CACHE": str(tmp_path / "converted-projects")}
        manifests = {}
        for project, checkpoint in (("p1", first), ("p2", second)):
            shutil.copytree(checkpoint, tmp_path / project / "ckpt")
            manifests[project] = _dub(video, tmp_path / project / "out" / "v.mp4", own, "--model", "ckpt",
                                      cwd=tmp_path / project)
        return manifests

    # Each sequence runs its second dub after its first, on the stage cache the first left; the
    # two sequences share that cache and run side by side (what one may find there of the other's
    # is audio of the same weights).
    with ThreadPoolExecutor(max_workers=2) as pool:
        hub, projects = pool.submit(hub_revisions), pool.submit(same_folder_name)
        (old, new), manifests = hub.result(), projects.result()
    assert (old["render"]["model_id"], old["render"]["model_revision"]) == ("TencentARC/AudioStory-3B", r1)
    assert new["render"]["model_revision"] == r2
    assert not np.array_equal(_sound(tmp_path / "o1" / "v.json"), _sound(tmp_path / "o2" / "v.json"))

    for project, manifest in manifests.items():
        assert manifest["render"]["model_id"] == str((tmp_path / project / "ckpt").resolve())
    p1, p2 = (_sound(tmp_path / p / "out" / "v.json") for p in ("p1", "p2"))
    assert not np.array_equal(p1, p2)
    np.testing.assert_array_equal(p1, _sound(tmp_path / "o1" / "v.json"))   # same weights, same sound


def test_a_soundfont_given_to_an_audiostory_dub_is_said_to_be_unused(sample_30p_silent, tmp_path):
    from audiostory_core.testing import write_tiny_checkpoint
    from dubber import api
    from dubber.backends.score.render import default_soundfont_path

    video, _ = sample_30p_silent
    checkpoint = write_tiny_checkpoint(tmp_path / "ckpt")
    bank = shutil.copy(default_soundfont_path(), tmp_path / "house.sf2")
    job = api.prepare(video, tmp_path / "out.mp4", api.DubOptions(backend="audiostory", model=str(checkpoint),
                                                                  device="cpu", soundfont=str(bank)))
    assert job.backend_reason.startswith("audiostory backend:")
    assert f"--soundfont {bank} is for the score engine, so it is not used" in job.backend_reason


def test_a_checkpoint_without_its_tokenizer_is_told_so_not_called_absent(sample_30p_silent, tmp_path, monkeypatch):
    """`hf download` of the AudioStory repo alone leaves out the Qwen tokenizer: the message
    names that part and how to fetch it, not "the weights are not on this machine"."""
    from audiostory_core.testing import write_tiny_checkpoint
    from dubber import api
    from dubber.errors import BackendUnavailable

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    checkpoint = write_tiny_checkpoint(tmp_path / "ckpt")
    shutil.rmtree(checkpoint / "Qwen2.5-3B-Instruct")
    video, _ = sample_30p_silent
    with pytest.raises(BackendUnavailable) as err:
        api.prepare(video, tmp_path / "out.mp4", api.DubOptions(backend="audiostory", model=str(checkpoint)))
    message = str(err.value)
    assert message.startswith("The Qwen2.5-3B-Instruct tokenizer that AudioStory reads is neither next to")
    assert "hf download Qwen/Qwen2.5-3B-Instruct" in message and "not on this machine" not in message


def test_audio_made_in_one_precision_is_not_served_to_a_run_in_another(sample_30p_silent, tmp_path, monkeypatch):
    """The manifest says where the audio was made (device and precision); the cache keeps what
    float32 on a CPU made apart from what half precision on a GPU would make of the same weights."""
    from audiostory_core.testing import write_tiny_checkpoint
    from dubber import api

    video, _ = sample_30p_silent
    checkpoint = write_tiny_checkpoint(tmp_path / "ckpt")
    monkeypatch.setenv("AUDIOSTORY_CACHE", str(tmp_path / "converted"))
    options = api.DubOptions(backend="audiostory", model=str(checkpoint), device="cpu", cache_dir=str(tmp_path / "c"))
    first = api.dub(video, tmp_path / "a" / "v.mp4", options)
    manifest = json.loads((tmp_path / "a" / "v.json").read_text())
    assert "ran on cpu in float32" in manifest["render"]["notes"]
    again = api.dub(video, tmp_path / "b" / "v.mp4", options)
    assert (first.cues_from_cache, again.cues_from_cache) == (0, again.cues)
    monkeypatch.setattr(AudioStoryBackend, "placement", lambda self: {"device": "cuda", "dtype": "float16"})
    elsewhere = api.dub(video, tmp_path / "c" / "v.mp4", options)
    assert elsewhere.cues_from_cache == 0


def test_the_precision_asked_for_reaches_the_model_and_is_checked_up_front(sample_30p_silent, tmp_path):
    from dubber import api
    from dubber.backends import build_backend

    video, _ = sample_30p_silent
    options = api.DubOptions(backend="audiostory", precision="bfloat16")
    assert build_backend("audiostory", options).options.dtype == "bfloat16"
    env = dub_env(tmp_path)
    from dubber.backends import cuda_available

    cases = [(["--precision", "float16", "--device", "cpu"], "--precision float16 needs a GPU"),
             (["--precision", "int8"], "Unknown precision 'int8'")]
    if not cuda_available():
        cases.append((["--precision", "bfloat16", "--backend", "audiostory"], "this machine has none; drop --precision"))
    for args, words in cases:
        done = run_dub([video, "-o", tmp_path / "x.mp4", *args], env)
        assert done.returncode == 2 and words in done.stderr and not (tmp_path / "x.mp4").exists(), done.stderr
    job = api.prepare(video, tmp_path / "y.mp4", api.DubOptions(backend="score", precision="bfloat16"))
    assert job.backend_reason.endswith("--precision bfloat16 is for AudioStory, so it is not used")
