"""`dub batch`: many videos on a local process pool or a Ray cluster, exactly once. Every dub
equals a single `dub` run of the file; a rerun skips what is done and redoes what is gone; a
worker killed mid-job, or crashing with others running, is retried to the same output; SIGTERM
or SIGINT stops the workers and leaves nothing half-written; a second batch on one output folder
is refused. What a batch takes as inputs and what it says is in test_batch_inputs.py.

The Ray tests (marked `cluster`) start a real cluster on loopback with `ray start --head`, the
way an operator does, run `dub batch --ray ADDRESS` against it, and stop it afterwards; skip them
in a quick local run with `-m "not cluster"`. The default suite runs them.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from dubber import api
from dubber.batch import BatchOptions, run_batch
from dubber.jobs import LEDGER_DIR, Ledger
from tests.batch_helpers import REPO, _dub_options
from tests.dub_cli import reaped, restore_ctrl_c


@pytest.fixture(scope="module")
def clips(batch_clips) -> dict[str, Path]:
    """The batch inputs, made once a session (tests/conftest.py)."""
    return batch_clips


@pytest.fixture(scope="module")
def single_runs(clips, tmp_path_factory) -> dict[str, Path]:
    """Each good clip dubbed on its own with `dub`, the reference a batch must equal."""
    out = tmp_path_factory.mktemp("single")
    options = api.DubOptions(cache_dir=str(out / "cache"))
    return {name: api.dub(path, out / f"{name}.dub.mp4", options).output
            for name, path in clips.items() if name != "broken"}


def _manifest_without_run_details(path: Path) -> dict:
    """The manifest minus what differs between two runs by design (the time, the cache folder)."""
    data = json.loads(path.read_text())
    data.pop("created", None)
    data.get("settings", {}).pop("cache_dir", None)
    return data


def _assert_same_as_single(output: Path, reference: Path) -> None:
    assert output.read_bytes() == reference.read_bytes(), f"{output} differs from a single dub run"
    assert _manifest_without_run_details(output.with_suffix(".json")) == \
        _manifest_without_run_details(reference.with_suffix(".json"))


def _kill_worker_when_running(ledger: Ledger, key: str, killed: list[int], timeout_s: float = 120.0) -> None:
    """Wait until the job `key` is being worked on, then SIGKILL the worker process running it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        record = ledger.read(key)
        if record and record.get("status") == "running" and record.get("attempt") == 1:
            time.sleep(1.0)   # well inside the job: past its checks, into analysis or rendering
            os.kill(int(record["pid"]), signal.SIGKILL)
            killed.append(int(record["pid"]))
            return
        time.sleep(0.05)


def _only_key(ledger: Ledger) -> str:
    keys = [p.stem for p in ledger.folder.glob("*.json")]
    assert len(keys) == 1, keys
    return keys[0]


# ----------------------------------------------------------------------------- local pool

def test_local_batch_matches_single_runs_and_a_bad_input_fails_alone(clips, single_runs, tmp_path):
    inputs = [clips["clip0"], clips["broken"], clips["clip1"], tmp_path / "missing.mp4"]
    seen = []
    result = run_batch(inputs, BatchOptions(out_dir=str(tmp_path / "out"), jobs=2), _dub_options(tmp_path),
                       progress=lambda stage, done, total: seen.append((stage, done, total)))
    statuses = [o.status for o in result.outcomes]
    assert statuses == ["done", "failed", "done", "failed"]
    assert "not a video file" in result.outcomes[1].reason
    assert "does not exist" in result.outcomes[3].reason
    assert result.exit_code == 2
    for name in ("clip0", "clip1"):
        _assert_same_as_single(tmp_path / "out" / f"{name}.dub.mp4", single_runs[name])
    assert not (tmp_path / "out" / "broken.dub.mp4").exists()
    assert seen[-1] == ("batch", 4, 4)   # one display for the whole backlog


def test_rerun_skips_finished_jobs_and_redoes_a_deleted_output(clips, tmp_path):
    out = tmp_path / "out"
    batch = BatchOptions(out_dir=str(out), jobs=1)
    first = run_batch([clips["clip0"], clips["clip1"]], batch, _dub_options(tmp_path))
    assert [o.status for o in first.outcomes] == ["done", "done"]
    kept = (out / "clip0.dub.mp4").stat().st_mtime_ns
    (out / "clip1.dub.mp4").unlink()
    (out / "clip1.dub.json").unlink()
    second = run_batch([clips["clip0"], clips["clip1"]], batch, _dub_options(tmp_path))
    assert [o.status for o in second.outcomes] == ["skipped", "done"]
    assert (out / "clip0.dub.mp4").stat().st_mtime_ns == kept
    assert (out / "clip1.dub.mp4").is_file()
    third = run_batch([clips["clip0"], clips["clip1"]], batch, _dub_options(tmp_path))
    assert [o.status for o in third.outcomes] == ["skipped", "skipped"] and third.exit_code == 0


def test_a_rerun_does_not_call_done_an_output_another_run_replaced(clips, tmp_path):
    """OUTDIR now holds another dub under this job's name (another run with --overwrite, or a
    hand): the job is not skipped as done, and that file is left as it is."""
    out = tmp_path / "out"
    batch = BatchOptions(out_dir=str(out), jobs=1)
    assert [o.status for o in run_batch([clips["clip0"]], batch, _dub_options(tmp_path)).outcomes] == ["done"]
    other = b"another dub put here later"
    (out / "clip0.dub.mp4").write_bytes(other)
    [again] = run_batch([clips["clip0"]], batch, _dub_options(tmp_path)).outcomes
    assert again.status == "failed" and "already exists; pass --overwrite" in again.reason, again
    assert (out / "clip0.dub.mp4").read_bytes() == other


def test_overwrite_replaces_what_no_job_wrote_and_a_plain_rerun_finds_every_job_done(clips, tmp_path):
    """The nightly run after a one-off `--overwrite`: the jobs are the same jobs, finished once,
    not a backlog of outputs that "already exist"."""
    out = tmp_path / "out"
    batch = BatchOptions(out_dir=str(out), jobs=1)
    inputs = [clips["clip0"], clips["clip1"]]
    out.mkdir()
    (out / "clip1.dub.mp4").write_bytes(b"a file no job of this batch wrote")
    first = run_batch(inputs, batch, _dub_options(tmp_path))
    assert [o.status for o in first.outcomes] == ["done", "failed"]
    kept = (out / "clip0.dub.mp4").stat().st_mtime_ns
    forced = run_batch(inputs, batch, replace(_dub_options(tmp_path), overwrite=True))
    assert [o.status for o in forced.outcomes] == ["skipped", "done"]
    assert (out / "clip0.dub.mp4").stat().st_mtime_ns == kept
    plain = run_batch(inputs, batch, _dub_options(tmp_path))
    assert [o.status for o in plain.outcomes] == ["skipped", "skipped"] and plain.exit_code == 0


def test_changed_settings_are_a_new_job(clips, tmp_path):
    out = tmp_path / "out"
    run_batch([clips["clip0"]], BatchOptions(out_dir=str(out), jobs=1), _dub_options(tmp_path))
    again = run_batch([clips["clip0"]], BatchOptions(out_dir=str(out), jobs=1),
                      api.DubOptions(cache_dir=str(tmp_path / "cache"), seed=5))
    # A different seed is another soundtrack: not skipped, and the old output is not overwritten.
    assert again.outcomes[0].status == "failed" and "already exists" in again.outcomes[0].reason


def test_local_worker_killed_mid_job_is_retried_to_the_same_output(clips, single_runs, tmp_path):
    out = tmp_path / "out"
    ledger, killed = Ledger(out), []
    # The ledger key is known only once the batch has planned its jobs: watch the ledger folder.
    watcher = threading.Thread(target=lambda: _kill_first_job(ledger, killed), daemon=True)
    watcher.start()
    said: list[str] = []
    result = run_batch([clips["long"]], BatchOptions(out_dir=str(out), jobs=1), _dub_options(tmp_path),
                       on_notice=said.append)
    watcher.join(timeout=5)
    assert killed, "the test never saw the job running"
    outcome = result.outcomes[0]
    assert outcome.status == "done" and outcome.attempts == 2
    assert [line for line in said if "ran again" in line] == [
        f"{clips['long']}: the worker dubbing it stopped before the end (killed, or out of memory) and the job "
        "ran again; attempt 2 finished it."], said
    _assert_same_as_single(out / "long.dub.mp4", single_runs["long"])


# A worker that runs one job of a batch and is killed (SIGKILL: no clean-up of any kind) at a
# point of publishing its files: "mid-commit" after two of its files were renamed into place,
# "after-commit" once all were, before the ledger says done.
_KILLED_WHILE_PUBLISHING = """
import os, signal, sys
from pathlib import Path
from dubber import atomic, jobs
from dubber.batch import plan_jobs
from dubber.options import DubOptions

video, out, stems, cache, when = sys.argv[1:]
options = DubOptions(cache_dir=cache, stems_dir=stems, timeline=True)


class DyingRenames:
    # the os module, except that the fourth rename of a commit (its record, then two of its
    # files) never happens: the process is killed first
    renamed = 0

    def __getattr__(self, name):
        return getattr(os, name)

    def replace(self, source, target):
        DyingRenames.renamed += 1
        if DyingRenames.renamed == 4:
            os.kill(os.getpid(), signal.SIGKILL)
        os.replace(source, target)


if when == "mid-commit":
    commit = atomic.OutputTransaction.commit

    def dying_commit(self):
        atomic.os = DyingRenames()
        commit(self)

    atomic.OutputTransaction.commit = dying_commit
else:
    write = jobs.Ledger.write

    def write_or_die(self, job, status, **fields):
        if status == "done":
            os.kill(os.getpid(), signal.SIGKILL)
        return write(self, job, status, **fields)

    jobs.Ledger.write = write_or_die
[job], _ = plan_jobs([video], Path(out), options, run_id="killed")
jobs.run_job(job, options)
"""


@pytest.mark.parametrize("when", ["mid-commit", "after-commit"])
def test_a_job_killed_while_publishing_is_dubbed_again_to_the_end(clips, single_runs, tmp_path, when):
    """The worker dies with some of its files published and the ledger still saying `running`:
    the next attempt clears every file the dead one published (its stems too, though no manifest
    lists them yet) and dubs the job to the end, instead of refusing its own stems as another
    dub's and leaving stems without a manifest for good."""
    out, stems, cache = tmp_path / "out", tmp_path / "stems", tmp_path / "cache"
    died = subprocess.run([sys.executable, "-c", _KILLED_WHILE_PUBLISHING, str(clips["clip0"]), str(out), str(stems),
                           str(cache), when], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert died.returncode == -signal.SIGKILL, died.stderr
    assert any(stems.glob("clip0.dub.*.wav")), "the killed worker published no stem"
    options = replace(_dub_options(tmp_path), stems_dir=str(stems), timeline=True)
    result = run_batch([clips["clip0"]], BatchOptions(out_dir=str(out), jobs=1), options)
    assert [(o.status, o.reason) for o in result.outcomes] == [("done", "")]
    assert (out / "clip0.dub.mp4").read_bytes() == single_runs["clip0"].read_bytes()
    listed = json.loads((out / "clip0.dub.json").read_text())["outputs"]
    assert all((out / path).is_file() for path in listed.values()), listed
    assert sorted(p.name for p in stems.iterdir()) == ["clip0.dub.fx.wav", "clip0.dub.mix.wav", "clip0.dub.music.wav"]
    assert not [p.name for p in out.iterdir() if p.name.startswith(".") and p.name != LEDGER_DIR]


def test_a_worker_crash_leaves_no_worker_dubbing_a_job_nobody_collects(clips, single_runs, tmp_path):
    """One of two workers dies: the pool stops the other one with it, and that one must stop for
    good, not start the job already queued to it, which the fresh pool dubs as well (two dubs of
    one job, the slower failing on the faster's file, a finished dub recorded as failed)."""
    out = tmp_path / "out"
    ledger, killed, old_workers = Ledger(out), [], []

    watcher = threading.Thread(target=_kill_long_job_beside_another, args=(ledger, clips["long"], killed, old_workers),
                               daemon=True)
    watcher.start()
    inputs = [clips["long"], clips["clip0"], clips["clip1"], clips["clip2"]]
    seen_alive_after: list[int] = []

    def survivors() -> None:   # the old pool's workers, some seconds after the crash
        watcher.join(timeout=130)
        time.sleep(4.0)
        seen_alive_after.extend(pid for pid in old_workers if pid not in killed and _alive(pid))

    checker = threading.Thread(target=survivors, daemon=True)
    checker.start()
    result = run_batch(inputs, BatchOptions(out_dir=str(out), jobs=2), _dub_options(tmp_path))
    checker.join(timeout=30)
    assert killed, "the test never saw both jobs running"
    assert seen_alive_after == [], "a worker of the broken pool went on dubbing"
    assert [o.status for o in result.outcomes] == ["done"] * 4, [(o.status, o.reason) for o in result.outcomes]
    for name in ("long", "clip0", "clip1", "clip2"):
        _assert_same_as_single(out / f"{name}.dub.mp4", single_runs[name])


def _kill_long_job_beside_another(ledger: Ledger, long: Path, killed: list[int], workers: list[int] | None = None) -> None:
    """Once the job of `long` and another are running (first attempts), SIGKILL the worker of
    `long`; `workers` gets the pool's processes as they were just before."""
    import multiprocessing

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        records = [ledger.read(p.stem) or {} for p in ledger.folder.glob("[!.]*.json")] \
            if ledger.folder.is_dir() else []
        running = [r for r in records if r.get("status") == "running" and r.get("attempt") == 1]
        if any(r["input"] == str(long) for r in running) and len(running) == 2:
            if workers is not None:
                workers.extend(p.pid for p in multiprocessing.active_children())
            long_pid = next(int(r["pid"]) for r in running if r["input"] == str(long))
            os.kill(long_pid, signal.SIGKILL)
            killed.append(long_pid)
            return
        time.sleep(0.02)


def test_a_worker_crash_is_charged_to_its_own_job_not_to_those_the_pool_stops_with_it(clips, single_runs, tmp_path):
    """A pool stops every worker when one dies. With no retries allowed, the job whose worker
    died fails, and the job that was running beside it runs again and finishes: it did nothing
    wrong, and its notice says why it ran again."""
    out = tmp_path / "out"
    ledger, killed = Ledger(out), []
    watcher = threading.Thread(target=_kill_long_job_beside_another, args=(ledger, clips["long"], killed), daemon=True)
    watcher.start()
    said: list[str] = []
    result = run_batch([clips["long"], clips["clip0"], clips["clip1"]], BatchOptions(out_dir=str(out), jobs=2, retries=0),
                       _dub_options(tmp_path), on_notice=said.append)
    watcher.join(timeout=5)
    assert killed, "the test never saw both jobs running"
    outcomes = {Path(o.input).stem: o for o in result.outcomes}
    assert (outcomes["long"].status, outcomes["long"].error) == ("failed", "WorkerDied")
    assert "stopped 1 times" in outcomes["long"].reason
    assert [outcomes[name].status for name in ("clip0", "clip1")] == ["done", "done"], result.outcomes
    beside = outcomes["clip0"]   # the job running with it (clip1 waited in the queue)
    assert beside.attempts == 2
    assert said == [f"{clips['clip0']}: it was stopped when another worker process died and the job ran again; "
                    "attempt 2 finished it."], said
    for name in ("clip0", "clip1"):
        _assert_same_as_single(out / f"{name}.dub.mp4", single_runs[name])


def _kill_first_job(ledger: Ledger, killed: list[int]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(ledger.folder.glob("*.json")):
        time.sleep(0.05)
    _kill_worker_when_running(ledger, _only_key(ledger), killed)


def _alive(pid: int) -> bool:
    """Whether a process runs (a zombie, exited but not yet reaped, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def test_sigterm_stops_the_workers_and_a_rerun_finishes_the_job(clips, single_runs, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "dubber.cli", "batch", str(clips["clip2"]), "-o", str(out), "--jobs", "1",
           "--cache-dir", str(tmp_path / "cache")]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ledger = Ledger(out)
    try:
        deadline = time.monotonic() + 120
        while not any((ledger.read(p.stem) or {}).get("status") == "running" for p in ledger.folder.glob("[!.]*.json")):
            assert time.monotonic() < deadline and proc.poll() is None, "the job never started"
            time.sleep(0.02)
        worker = int(ledger.read(_only_key(ledger))["pid"])
        proc.send_signal(signal.SIGTERM)            # to the driver alone, as `kill PID` does
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143 and "rerun the same command" in stderr, stderr
    deadline = time.monotonic() + 10
    while _alive(worker):
        assert time.monotonic() < deadline, "the worker went on after the batch stopped"
        time.sleep(0.05)
    assert not (out / "clip2.dub.mp4").exists()
    assert ledger.read(_only_key(ledger))["status"] == "running"   # not finished: the next run redoes it
    again = run_batch([clips["clip2"]], BatchOptions(out_dir=str(out), jobs=1), _dub_options(tmp_path))
    assert [o.status for o in again.outcomes] == ["done"]
    _assert_same_as_single(out / "clip2.dub.mp4", single_runs["clip2"])


def _output_temporaries(out: Path) -> list[Path]:
    """Half-written outputs: temporaries anywhere under `out` but in the ledger's own folder."""
    return [p for p in out.rglob("*.partial*") if LEDGER_DIR not in p.relative_to(out).parts]



def _interrupt_in_output_stage(extra: list[str], clips: dict[str, Path], tmp_path: Path,
                               to_group: bool = False) -> tuple[Path, int, str]:
    """Run `dub batch` on the long clip and a short one, and send SIGINT once the first job
    writes its outputs: to the driver alone (`kill -INT PID`), or to it and every process it
    started at once, as Ctrl-C on a terminal (and `timeout -s INT`) does.

    Returns:
        (the output folder, the exit status, stderr).
    """
    from dub_cli import dub_command, dub_env

    out = tmp_path / "out"
    cmd = [*dub_command(), "batch", str(clips["long"]), str(clips["clip0"]), "-o", str(out), "--timeline",
           "--no-cache", *extra]
    proc = subprocess.Popen(cmd, env=dub_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=restore_ctrl_c)
    try:
        deadline = time.monotonic() + 180
        while not _output_temporaries(out):
            assert time.monotonic() < deadline and proc.poll() is None, "the output stage never started"
            time.sleep(0.01)
        if to_group:
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return out, proc.returncode, stderr


def _assert_nothing_half_written(out: Path) -> None:
    assert not (out / "long.dub.mp4").exists()   # stopped in its output stage, not finished
    assert _output_temporaries(out) == []
    assert [p for p in out.rglob("*") if p.is_dir() and not any(p.iterdir())] == []   # no empty stems folder


@pytest.mark.parametrize("to_group", [False, True], ids=["driver", "process-group"])
def test_interrupt_while_writing_outputs_leaves_no_half_written_file(clips, tmp_path, to_group):
    out, code, stderr = _interrupt_in_output_stage(["--jobs", "1"], clips, tmp_path, to_group)
    assert code == 130 and "interrupted" in stderr, stderr
    _assert_nothing_half_written(out)


# ----------------------------------------------------------------------------- Ray cluster (fixture: conftest.py)

def _dub_batch_cli(inputs: list[Path], out: Path, address: str, cache: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "dubber.cli", "batch", *map(str, inputs), "-o", str(out), "--ray", address,
           "--cache-dir", str(cache), "--json-progress"]
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen, timeout_s: float = 300) -> tuple[int, dict, str]:
    stdout, stderr = proc.communicate(timeout=timeout_s)
    events = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return proc.returncode, events[-1], stderr


@pytest.mark.cluster
def test_ray_batch_matches_single_runs_bad_input_fails_alone_and_rerun_does_nothing(
        ray_cluster, clips, single_runs, tmp_path):
    out = tmp_path / "out"
    inputs = [clips["clip0"], clips["clip1"], clips["broken"], clips["clip2"]]
    code, done, stderr = _finish(_dub_batch_cli(inputs, out, ray_cluster, tmp_path / "cache"))
    assert code == 2 and "jobs" in done, (done, stderr[-3000:])
    assert [j["status"] for j in done["jobs"]] == ["done", "done", "failed", "done"]
    assert done["jobs"][2]["input"].endswith("broken.mp4") and "not a video file" in done["jobs"][2]["reason"]
    assert "3 dubbed" in stderr and "1 failed" in stderr
    for name in ("clip0", "clip1", "clip2"):
        _assert_same_as_single(out / f"{name}.dub.mp4", single_runs[name])
    worker_pids = {json.loads(p.read_text())["pid"] for p in (out / LEDGER_DIR).glob("*.json")}
    assert os.getpid() not in worker_pids   # the jobs ran in the cluster's workers
    before = {p: p.stat().st_mtime_ns for p in out.iterdir() if p.is_file()}

    code, done, stderr = _finish(_dub_batch_cli(inputs, out, ray_cluster, tmp_path / "cache"))
    assert [j["status"] for j in done["jobs"]] == ["skipped", "skipped", "failed", "skipped"]
    assert {p: p.stat().st_mtime_ns for p in out.iterdir() if p.is_file()} == before


@pytest.mark.cluster
def test_ray_worker_killed_mid_job_is_retried_to_the_same_output(ray_cluster, clips, single_runs, tmp_path):
    out = tmp_path / "out"
    proc = _dub_batch_cli([clips["long"]], out, ray_cluster, tmp_path / "cache")
    ledger, killed = Ledger(out), []
    _kill_first_job(ledger, killed)
    stdout, stderr = proc.communicate(timeout=300)
    events = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    done, code = events[-1], proc.returncode
    assert killed, "the test never saw the job running"
    assert code == 0, stderr
    assert done["jobs"][0]["status"] == "done" and done["jobs"][0]["attempts"] == 2
    said = [e["message"] for e in events if e["event"] == "notice" and "ran again" in e["message"]]
    assert said == [f"{clips['long']}: the worker dubbing it stopped before the end (killed, or out of memory) "
                    "and the job ran again; attempt 2 finished it."], events
    _assert_same_as_single(out / "long.dub.mp4", single_runs["long"])


@pytest.mark.cluster
def test_ray_interrupt_while_writing_outputs_leaves_no_half_written_file(ray_cluster, clips, tmp_path):
    import vision

    out, code, stderr = _interrupt_in_output_stage(["--ray", ray_cluster], clips, tmp_path)
    assert code == 130 and "interrupted" in stderr, stderr
    # A task on the cluster hears of the stop a moment after the driver: it may have published its
    # outputs by then, whole (the film's length, with its sound). Nothing is ever half written.
    assert _output_temporaries(out) == []
    assert [p for p in out.rglob("*") if p.is_dir() and not any(p.iterdir())] == []
    if (out / "long.dub.mp4").exists():
        dubbed, source = vision.probe(out / "long.dub.mp4"), vision.probe(clips["long"])
        assert dubbed.has_audio and abs(dubbed.duration_s - source.duration_s) < 0.1


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    pytest.importorskip("torch")
    from audiostory_core.testing import write_tiny_checkpoint

    return write_tiny_checkpoint(tmp_path_factory.mktemp("tiny-audiostory"))


@pytest.mark.cluster
def test_ray_model_server_renders_every_job_like_a_single_run(ray_cluster, clips, tiny_checkpoint, tmp_path):
    """The audiostory backend on Ray: one model server (an actor; on a GPU node it holds one
    GPU) renders the cues of every job, the audio returning through the object store."""
    model = ["--backend", "audiostory", "--model", str(tiny_checkpoint), "--device", "cpu"]
    options = api.DubOptions(backend="audiostory", model=str(tiny_checkpoint), device="cpu",
                             cache_dir=str(tmp_path / "single-cache"))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "dubber.cli", "batch", str(clips["clip0"]), str(clips["clip1"]), "-o", str(out),
           "--ray", ray_cluster, "--cache-dir", str(tmp_path / "cache"), "--json-progress", *model,
           "--render-group", "1"]   # a cue per call, each still read within its whole plan's storyline
    # The batch runs in the cluster's workers, with a cache of its own, while the single runs to
    # compare with are made here.
    batch = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        references = {name: api.dub(clips[name], tmp_path / "single" / f"{name}.dub.mp4", options).output
                      for name in ("clip0", "clip1")}
    finally:
        code, done, stderr = _finish(batch)
    assert code == 0, (done, stderr[-3000:])
    from dubber.media.audio_io import decode_audio

    for name, reference in references.items():
        manifest = json.loads((out / f"{name}.dub.json").read_text())
        assert manifest["render"]["backend"] == "audiostory"
        single = json.loads(reference.with_suffix(".json").read_text())
        assert manifest["plan"] == single["plan"] and len(manifest["plan"]["cues"]) > 1
        assert manifest["render"]["notes"] == single["render"]["notes"]   # every cue's seed: one storyline
        # A Ray worker runs torch on the one CPU its task holds, a single run on every core: the
        # sums inside the model add up in another order, so the audio matches to rounding only.
        ours = decode_audio(out / f"{name}.dub.mp4", 48_000, manifest["plan"]["total_samples"])
        theirs = decode_audio(reference, 48_000, manifest["plan"]["total_samples"])
        assert np.abs(theirs).max() > 0.1 and np.abs(ours - theirs).max() < 1e-3


# ----------------------------------------------------------------------------- overlapping and interrupted batches

def _wait_for_running_job(ledger: Ledger, proc: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not any((ledger.read(p.stem) or {}).get("status") == "running" for p in ledger.folder.glob("[!.]*.json")):
        assert time.monotonic() < deadline and proc.poll() is None, "the job never started"
        time.sleep(0.02)


def test_a_second_batch_on_one_outdir_is_refused_and_a_killed_one_blocks_nothing(clips, tmp_path, capsys):
    """An overlapping cron run: the second batch is refused in one sentence before it touches a
    job, instead of failing good inputs on the first one's files; once the first is killed, the
    next batch runs."""
    from dubber.cli.main import main

    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "dubber.cli", "batch", str(clips["long"]), "-o", str(out), "--jobs", "1",
           "--cache-dir", str(tmp_path / "cache")]
    first = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ledger = Ledger(out)
    try:
        _wait_for_running_job(ledger, first)
        before = {p.name: p.stat().st_mtime_ns for p in ledger.folder.iterdir()}
        second = ["batch", str(clips["long"]), str(clips["clip0"]), "-o", str(out), "--jobs", "1",
                  "--cache-dir", str(tmp_path / "cache")]
        code = main(second)
        stderr = capsys.readouterr().err
        assert code == 2 and stderr.splitlines() == [
            f"dub: Another dub batch is already working on {out}; wait for it to finish, or give another folder "
            "with -o."], stderr
        assert {p.name: p.stat().st_mtime_ns for p in ledger.folder.iterdir()} == before   # no job touched
        first.kill()   # kill -9 of the driver: its lock goes with it
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    again = run_batch([clips["clip0"]], BatchOptions(out_dir=str(out), jobs=1), _dub_options(tmp_path))
    assert [o.status for o in again.outcomes] == ["done"]


def test_an_interrupted_batch_ends_its_json_progress_with_each_jobs_state(clips, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "dubber.cli", "batch", str(clips["long"]), str(clips["clip1"]), "-o", str(out),
           "--jobs", "1", "--json-progress", "--cache-dir", str(tmp_path / "cache")]
    with reaped(subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)) as proc:
        _wait_for_running_job(Ledger(out), proc)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    last = json.loads(stdout.splitlines()[-1])
    assert last["event"] == "interrupted" and last["exit_code"] == 143, last
    assert [(Path(j["input"]).name, j["status"]) for j in last["jobs"]] == [("long.mp4", "interrupted"),
                                                                          ("clip1.mp4", "interrupted")]
    assert last["jobs"][0]["reason"].startswith("stopped while being dubbed") and last["jobs"][0]["attempts"] == 1
    assert last["jobs"][1]["reason"].startswith("not started")
    assert last["summary"] == "2 inputs: 0 dubbed, 0 already done, 0 failed, 2 interrupted"


def test_an_interrupted_batch_tells_a_job_that_ended_just_before_it_from_one_not_started(clips, tmp_path, monkeypatch):
    """Ctrl-C lands after a worker finished a job and before its outcome came back: the summary
    calls that job dubbed (its ledger record says so, and the next run skips it), not "not
    started"; a job the interrupt kept from starting still is."""
    from dubber import batch as batch_module
    from dubber.jobs import run_job

    def finish_the_first_then_interrupt(jobs, options, batch, report):
        run_job(jobs[0], options)   # ended in its worker; the outcome never reaches `report`
        raise KeyboardInterrupt

    monkeypatch.setattr(batch_module, "_dispatch", finish_the_first_then_interrupt)
    told = []
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        run_batch([clips["clip0"], clips["clip1"]], BatchOptions(out_dir=str(out), jobs=1), _dub_options(tmp_path),
                  on_interrupt=told.append)
    [result] = told
    assert [(Path(o.input).name, o.status, o.reason) for o in result.outcomes] == [
        ("clip0.mp4", "done", ""), ("clip1.mp4", "interrupted", "not started; the next run dubs it.")]
    assert result.summary().startswith("2 inputs: 1 dubbed")
    assert (out / "clip0.dub.mp4").is_file()
