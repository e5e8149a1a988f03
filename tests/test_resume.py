"""A run killed with SIGKILL while rendering resumes from the per-cue cache on the next run, and
its soundtrack is identical to that of a run that was never interrupted.

The kill test renders with AudioStory (a tiny random-weight checkpoint on the CPU): it renders cue
by cue, so a kill lands between cached cues. The score engine draws the whole timeline in one call
and keeps no audio in the cache: a killed score run resumes from its cached analysis."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from dub_cli import dub_command, dub_env, ffmpeg, json_events, read_wav, run_dub
from samples.synth import SynthSpec, synthesize


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    pytest.importorskip("torch")
    from audiostory_core.testing import write_tiny_checkpoint

    return write_tiny_checkpoint(tmp_path_factory.mktemp("tiny-audiostory"))


@pytest.fixture(scope="module")
def five_shots(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("resume") / "five_shots.mp4"
    synthesize(path, SynthSpec(width=160, height=90, fps=Fraction(25), shot_frames=(45, 50, 40, 55, 60),
                               audio=False, seed=4, preset="ultrafast"))
    return path


def _cue_files(cache: Path) -> list[Path]:
    return sorted((cache / "render").glob("*/cue-*.npz"))


def _start(args: list, env: dict) -> subprocess.Popen:
    return subprocess.Popen([*dub_command(), *map(str, args)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)


def _kill_after_first_cue(proc: subprocess.Popen, cache: Path, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while not _cue_files(cache):
        assert proc.poll() is None, f"the run ended before any cue was cached: {proc.stderr.read()}"
        assert time.monotonic() < deadline, "no cue was cached in time"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL


def test_kill_9_while_rendering_then_resume(five_shots, tiny_checkpoint, tmp_path):
    # One cue per render call, so the kill lands between cached cues.
    common = ["--backend", "audiostory", "--model", tiny_checkpoint, "--device", "cpu", "--render-group", "1",
              "--json-progress"]
    env = dub_env(tmp_path, AUDIOSTORY_CACHE=str(tmp_path / "audiostory-cache"))
    cache = Path(env["DUB_CACHE_DIR"])
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    # The run never interrupted, to compare with: a cache and a folder of its own, so it runs alongside.
    fresh_env = dub_env(tmp_path / "fresh", AUDIOSTORY_CACHE=str(tmp_path / "fresh" / "audiostory-cache"))
    fresh_dir = tmp_path / "fresh" / "out"
    fresh_dir.mkdir(parents=True)
    pool = ThreadPoolExecutor(max_workers=1)
    fresh_run = pool.submit(run_dub, [five_shots, "-o", fresh_dir / "b.mp4", "--stems", fresh_dir / "stems-b",
                                      *common], fresh_env)
    pool.shutdown(wait=False)
    killed = _start([five_shots, "-o", out_dir / "a.mp4", "--stems", out_dir / "stems", *common], env)
    _kill_after_first_cue(killed, cache)
    survivors = {p: p.stat().st_mtime_ns for p in _cue_files(cache)}
    assert 1 <= len(survivors) < 5, "the kill did not land inside the render stage"
    assert not (out_dir / "a.mp4").exists(), "a killed run left a finished-looking output"
    assert not list(out_dir.glob(".*")), "a killed run left a temporary file in the output folder"

    resumed = run_dub([five_shots, "-o", out_dir / "a.mp4", "--stems", out_dir / "stems", *common], env)
    assert resumed.returncode == 0, resumed.stderr
    done = json_events(resumed.stdout)[-1]
    assert done["cues"] == 5 and done["cues_from_cache"] == len(survivors)
    # The cues cached before the kill were read back, not rendered and written again.
    assert {p: p.stat().st_mtime_ns for p in survivors} == survivors
    assert len(_cue_files(cache)) == 5

    fresh = fresh_run.result()
    assert fresh.returncode == 0, fresh.stderr
    assert json_events(fresh.stdout)[-1]["cues_from_cache"] == 0
    resumed_mix, rate = read_wav(out_dir / "stems" / "a.mix.wav")
    fresh_mix, _ = read_wav(fresh_dir / "stems-b" / "b.mix.wav")
    assert rate == 48_000 and resumed_mix.shape == fresh_mix.shape and np.abs(fresh_mix).max() > 0
    assert np.array_equal(resumed_mix, fresh_mix)
    assert (out_dir / "stems" / "a.mix.wav").read_bytes() == (fresh_dir / "stems-b" / "b.mix.wav").read_bytes()


def test_force_recomputes_and_rewrites_the_cache(five_shots, tmp_path):
    """--force reads nothing from the stage cache and writes every entry again; the score
    engine's audio is not among them (it is played again each run, from the cached analysis)."""
    env = dub_env(tmp_path)
    cache = Path(env["DUB_CACHE_DIR"])
    first = run_dub([five_shots, "-o", tmp_path / "a.mp4", "--backend", "score", "--json-progress"], env)
    assert first.returncode == 0, first.stderr
    entries = sorted([*cache.glob("analysis/*.json"), *cache.glob("plan/*.json")])
    before = {p: p.stat().st_mtime_ns for p in entries}
    assert len(before) == 2 and not _cue_files(cache)
    again = run_dub([five_shots, "-o", tmp_path / "a.mp4", "--backend", "score", "--json-progress", "--force"], env)
    assert again.returncode == 0, again.stderr
    assert json_events(again.stdout)[-1]["cues_from_cache"] == 0
    assert all(p.stat().st_mtime_ns != t for p, t in before.items())


def test_two_runs_on_one_output_never_both_publish(tmp_path):
    """While one run holds an output, a second one on the same name stops at once with one
    sentence (the first is left to finish); the lock leaves no file behind."""
    from dubber import api
    from dubber.atomic import exclusive_lock
    from dubber.errors import OutputError

    video = tmp_path / "in.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=96x54:rate=24:duration=2", "-c:v", "libx264", "-pix_fmt", "yuv420p",
           str(video))
    options = api.DubOptions(backend="score", cache_dir=str(tmp_path / "cache"))
    job = api.prepare(video, tmp_path / "out.mp4", options)
    lock = api.job_lock_path(job)
    lock.parent.mkdir(parents=True)
    with exclusive_lock(lock) as held:   # another run, mid-way
        assert held
        with pytest.raises(OutputError, match="Another dub is writing .*out.mp4 right now"):
            api.run_job(api.prepare(video, tmp_path / "out.mp4", options))
    assert not (tmp_path / "out.mp4").exists()
    api.run_job(job)
    assert (tmp_path / "out.mp4").is_file()
    assert not lock.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_cache_folder_that_cannot_be_written_still_dubs(tmp_path, monkeypatch):
    """The output lock lives with the stage cache; where the default cache cannot be made (here
    its parent is a file), the run still dubs, its lock kept in a private folder of the system
    temp dir. A --cache-dir given by hand that cannot be a folder is refused in one sentence."""
    from dubber import api
    from dubber.errors import InputError

    video = tmp_path / "in.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=96x54:rate=24:duration=2", "-c:v", "libx264", "-pix_fmt", "yuv420p",
           str(video))
    (tmp_path / "not-a-folder").write_text("a file where the cache would go")
    monkeypatch.setenv("DUB_CACHE_DIR", str(tmp_path / "not-a-folder" / "cache"))
    result = api.run_job(api.prepare(video, tmp_path / "out.mp4", api.DubOptions(backend="score")))
    assert result.output.is_file() and (tmp_path / "not-a-folder").is_file()
    for given in ("not-a-folder", "not-a-folder/cache"):
        with pytest.raises(InputError, match="give a folder with --cache-dir"):
            api.prepare(video, tmp_path / "again.mp4", api.DubOptions(backend="score", cache_dir=str(tmp_path / given)))


def test_files_of_a_run_killed_but_not_yet_reaped_are_swept(tmp_path):
    """`kill -9` and an immediate rerun: the killed run may still be a zombie (its parent has not
    reaped it) when the rerun looks; its half-written files go all the same, while a live run's stay."""
    import sys

    from dubber.atomic import sweep_stale

    killed = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        os.kill(killed.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{killed.pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        left = tmp_path / f".film.dub.{killed.pid}-a1b2c3.partial.mp4"
        running = tmp_path / f".film.dub.{alive.pid}-d4e5f6.partial.mp4"
        left.write_bytes(b"half a video")
        running.write_bytes(b"a video being written")
        assert sweep_stale(tmp_path) == [left]
        assert not left.exists() and running.exists()
    finally:
        alive.kill()
        alive.wait()
        killed.wait()


@pytest.mark.parametrize("writer", ["staged output", "working file", "single file"])
def test_an_interrupt_as_a_temporary_is_created_leaves_nothing_behind(tmp_path, monkeypatch, writer):
    """Ctrl-C (or a batch's cancel) raises KeyboardInterrupt as the call that created a temporary
    returns; the temporary must already be known to the clean-up then. A batch interrupted in its
    output stage meets this while each job stages its files one after another."""
    import dubber.atomic as atomic

    def open_then_interrupt(path, flags, mode=0o777):
        os.close(os.open(path, flags, mode))   # the file exists...
        raise KeyboardInterrupt                # ...and the interrupt arrives as the call returns

    patched_os = type(os)("os_interrupted_at_create")
    patched_os.__dict__.update(os.__dict__, open=open_then_interrupt)
    monkeypatch.setattr(atomic, "os", patched_os)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(KeyboardInterrupt):
        if writer == "single file":
            atomic.atomic_write_text(out / "v.json", "{}")
        else:
            with atomic.OutputTransaction(out / ".v.json.commit") as transaction:
                if writer == "staged output":
                    transaction.stage(out / "v.mp4")
                else:
                    transaction.scratch(out / "v.wav", ".wav")
    assert list(out.iterdir()) == []
