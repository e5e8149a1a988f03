"""`dub batch`: many videos on a local process pool or a Ray cluster, exactly once.

The Ray tests (marked `cluster`) start a real cluster on loopback with `ray start --head`, the
way an operator does, run `dub batch --ray ADDRESS` against it, and stop it afterwards; skip them
in a quick local run with `-m "not cluster"`. The default suite runs them.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from dubber import api
from dubber.batch import BatchOptions, folder_inputs, run_batch
from dubber.jobs import LEDGER_DIR, Ledger
from dubber.errors import BackendUnavailable, InputError
from tests.dub_cli import reaped
from samples.synth import SynthSpec, synthesize

REPO = Path(__file__).resolve().parent.parent
CLIP_SECONDS = (4.0, 5.0, 6.0)
LONG_CLIP_S = 40.0   # long enough that a job is still running when a test kills its worker


def _clip(folder: Path, name: str, seconds: float, seed: int) -> Path:
    path = folder / f"{name}.mp4"
    synthesize(path, SynthSpec(width=160, height=90, fps=Fraction(24), duration_s=seconds, shot_s=2.0,
                               audio=True, seed=seed, preset="ultrafast"))
    path.with_suffix(".json").unlink()   # the ground truth is not an input of the batch
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("batch-inputs")
    made = {f"clip{i}": _clip(folder, f"clip{i}", s, seed=20 + i) for i, s in enumerate(CLIP_SECONDS)}
    made["long"] = _clip(folder, "long", LONG_CLIP_S, seed=30)
    bad = folder / "broken.mp4"
    bad.write_bytes(b"this is a text file, not a video\n" * 20)
    made["broken"] = bad
    return made


@pytest.fixture(scope="module")
def single_runs(clips, tmp_path_factory) -> dict[str, Path]:
    """Each good clip dubbed on its own with `dub`, the reference a batch must equal."""
    out = tmp_path_factory.mktemp("single")
    options = api.DubOptions(cache_dir=str(out / "cache"))
    return {name: api.dub(path, out / f"{name}.dub.mp4", options).output
            for name, path in clips.items() if name != "broken"}


def _dub_options(tmp: Path) -> api.DubOptions:
    return api.DubOptions(cache_dir=str(tmp / "cache"))


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


def test_a_worker_crash_leaves_no_worker_dubbing_a_job_nobody_collects(clips, single_runs, tmp_path):
    """One of two workers dies: the pool stops the other one with it, and that one must stop for
    good, not start the job already queued to it, which the fresh pool dubs as well (two dubs of
    one job, the slower failing on the faster's file, a finished dub recorded as failed)."""
    import multiprocessing

    out = tmp_path / "out"
    ledger, killed, old_workers = Ledger(out), [], []

    def kill_the_long_job() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            records = [ledger.read(p.stem) or {} for p in ledger.folder.glob("[!.]*.json")] \
                if ledger.folder.is_dir() else []
            running = [r for r in records if r.get("status") == "running" and r.get("attempt") == 1]
            if any(r["input"] == str(clips["long"]) for r in running) and len(running) == 2:
                old_workers.extend(p.pid for p in multiprocessing.active_children())
                long_pid = next(int(r["pid"]) for r in running if r["input"] == str(clips["long"]))
                os.kill(long_pid, signal.SIGKILL)
                killed.append(long_pid)
                return
            time.sleep(0.02)

    watcher = threading.Thread(target=kill_the_long_job, daemon=True)
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
                            stdin=subprocess.DEVNULL, start_new_session=True)
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


def test_a_folder_stands_for_its_videos_in_name_order_at_any_depth(clips, tmp_path):
    src = tmp_path / "src"
    (src / "Reel 2").mkdir(parents=True)
    shutil.copy(clips["clip1"], src / "b.mp4")
    shutil.copy(clips["clip0"], src / "Reel 2" / "a.mp4")
    (src / "notes.txt").write_text("shot list\n")
    (src / ".DS_Store").write_bytes(b"\0")      # system files and copies in progress go unmentioned
    (src / "._b.mp4").write_bytes(b"\0")
    (src / "c.mp4.part").write_bytes(b"\0")
    out = src / "dubbed"   # inside the folder given: its outputs are never taken for inputs
    said: list[str] = []
    result = run_batch([src], BatchOptions(out_dir=str(out), jobs=2), _dub_options(tmp_path), on_notice=said.append)
    assert said == [f"{src}: 2 videos found; left alone, not videos: notes.txt."]
    assert [(Path(o.input).relative_to(src).as_posix(), Path(o.output).name, o.status) for o in result.outcomes] == [
        ("Reel 2/a.mp4", "Reel 2 - a.dub.mp4", "done"), ("b.mp4", "b.dub.mp4", "done")]
    again = run_batch([src], BatchOptions(out_dir=str(out), jobs=2), _dub_options(tmp_path), on_notice=said.append)
    assert [o.status for o in again.outcomes] == ["skipped", "skipped"]


def test_a_folder_dubbed_again_leaves_the_dubs_made_earlier_in_it_alone(clips, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(clips["clip0"], src / "a.mp4")
    first = run_batch([src], BatchOptions(out_dir=str(src), jobs=1), _dub_options(tmp_path))
    assert [o.status for o in first.outcomes] == ["done"] and (src / "a.dub.json").is_file()
    # a video that only looks like a dub (its .json is someone else's) is still a video
    shutil.copy(clips["clip1"], src / "b.dub.mp4")
    (src / "b.dub.json").write_text('{"schema": "other/1", "outputs": {"video": "b.dub.mp4"}}')
    found = folder_inputs(src)
    assert [Path(v.path).name for v in found.videos] == ["a.mp4", "b.dub.mp4"]
    assert found.dubs == ("a.dub.mp4",)
    assert found.found() == f"{src}: 2 videos found; left alone, dubs made earlier: a.dub.mp4; not videos: b.dub.json."
    (src / "a.mp4").unlink()
    (src / "b.dub.mp4").unlink()
    (src / "b.dub.json").unlink()
    assert "holds only dubs made earlier (a.dub.mp4)" in str(folder_inputs(src).no_videos())


def test_dub_batch_takes_a_folder_and_refuses_one_without_videos_in_one_sentence(clips, tmp_path):
    from dub_cli import dub_env, run_dub

    env = dub_env(tmp_path)
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(clips["clip0"], src / "clip0.mp4")
    dubbed = run_dub(["batch", src, "-o", tmp_path / "out", "--jobs", "1"], env, timeout=600)
    assert dubbed.returncode == 0, dubbed.stderr
    assert (tmp_path / "out" / "clip0.dub.mp4").is_file()
    # the user is told what the folder held, in one line, without -v
    assert len([line for line in dubbed.stderr.splitlines() if line.startswith("dub: ") and str(src) in line
                and "1 video" in line]) == 1, dubbed.stderr

    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "readme.txt").write_text("nothing to dub\n")
    refused = run_dub(["batch", notes, "-o", tmp_path / "out2"], env)
    assert refused.returncode == 2
    said = [line for line in refused.stderr.splitlines() if "readme.txt" in line]
    assert len(said) == 1 and said[0].startswith(f"dub: failed {notes}: The folder {notes} holds no videos"), \
        refused.stderr
    assert said[0].endswith("or the videos themselves.") and said[0].count(". ") == 0
    assert "dub batch: 1 input: 0 dubbed, 0 already done, 1 failed." in refused.stderr


def test_a_full_output_disk_is_one_sentence_per_job_without_a_traceback(clips, tmp_path):
    """No room in OUTDIR even for a job's ledger record: each job fails with the disk's own
    sentence, as any other write of the job would, not as an internal error."""
    import resource

    from dub_cli import dub_command, dub_env

    def no_room() -> None:   # every file may grow to 64 bytes: a disk that is all but full
        resource.setrlimit(resource.RLIMIT_FSIZE, (64, 64))

    out = tmp_path / "out"
    done = subprocess.run([*dub_command(), "batch", str(clips["clip0"]), str(clips["clip1"]), "-o", str(out),
                           "--jobs", "1"], env=dub_env(tmp_path), capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL, preexec_fn=no_room)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr, done.stderr
    failed = [line for line in done.stderr.splitlines() if line.startswith("dub: failed ")]
    assert len(failed) == 2 and all("is full" in line and "free some space" in line for line in failed), done.stderr


def test_the_time_left_counts_only_the_jobs_run_here(monkeypatch):
    """A resumed backlog: 6 of 9 done by an earlier run. Nothing is estimated until a job has
    run here, and then at the pace of the jobs run here."""
    import io

    from dubber.cli import progress

    clock = [100.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    stream = io.StringIO()
    reporter = progress.JsonReporter(stream)
    reporter("batch", 6, 9)
    clock[0] += 7.0
    reporter("batch", 7, 9)
    clock[0] += 5.0
    reporter("batch", 8, 9)
    left = [json.loads(line)["remaining_s"] for line in stream.getvalue().splitlines()]
    assert left == [None, 14.0, 6.0]


def test_two_inputs_with_one_output_name_are_refused(clips, tmp_path):
    twin = tmp_path / "other" / clips["clip0"].name
    twin.parent.mkdir()
    twin.write_bytes(clips["clip0"].read_bytes())
    with pytest.raises(InputError, match="would both be dubbed to"):
        run_batch([clips["clip0"], twin], BatchOptions(out_dir=str(tmp_path / "out")), _dub_options(tmp_path))
    assert not (tmp_path / "out").exists()


def test_two_inputs_whose_dubs_would_share_their_other_files_are_refused(clips, tmp_path):
    # clip0.mp4 and clip0.mkv would be dubbed to clip0.dub.mp4 and clip0.dub.mkv, both with the
    # manifest clip0.dub.json: said before anything runs, not found out by the second job.
    twin = tmp_path / "other" / "clip0.mkv"
    twin.parent.mkdir()
    twin.write_bytes(clips["clip0"].read_bytes())
    with pytest.raises(InputError, match=r"clip0\.dub\.mkv and clip0\.dub\.mp4, whose other files share one name "
                                         r"\(clip0\.dub\.json"):
        run_batch([clips["clip0"], twin], BatchOptions(out_dir=str(tmp_path / "out")), _dub_options(tmp_path))
    assert not (tmp_path / "out").exists()


def test_one_file_given_twice_is_dubbed_once(clips, tmp_path):
    """An overlapping glob, or a folder and a video in it: the same file, one job."""
    folder = tmp_path / "reel"
    folder.mkdir()
    video = folder / "clip0.mp4"
    video.write_bytes(clips["clip0"].read_bytes())
    result = run_batch([folder, video, folder / ".." / "reel" / "clip0.mp4"],
                       BatchOptions(out_dir=str(tmp_path / "out"), jobs=1), _dub_options(tmp_path))
    assert [o.status for o in result.outcomes] == ["done"] and result.exit_code == 0
    assert (tmp_path / "out" / "clip0.dub.mp4").is_file()


def test_ray_missing_is_one_sentence_with_the_install_command(clips, tmp_path, monkeypatch):
    from dubber.cli.main import main

    monkeypatch.setitem(sys.modules, "ray", None)   # as if not installed
    with pytest.raises(BackendUnavailable, match=r"pip install 'dubber\[cluster\]'"):
        run_batch([clips["clip0"]], BatchOptions(out_dir=str(tmp_path / "out"), ray=True), _dub_options(tmp_path))
    code = main(["batch", str(clips["clip0"]), "-o", str(tmp_path / "out"), "--ray"])
    assert code == 2
    assert not (tmp_path / "out" / "clip0.dub.mp4").exists()


@pytest.mark.parametrize("address", ["127.0.0.1:{closed}", "ray://no-such-host.invalid:10001"])
def test_a_ray_address_where_no_cluster_answers_is_one_sentence_at_once(clips, tmp_path, address):
    """ray.init would retry an unreachable address for minutes, deaf to Ctrl-C and kill."""
    import socket

    with socket.socket() as free:   # a port nothing listens on once this socket is closed
        free.bind(("127.0.0.1", 0))
        closed = free.getsockname()[1]
    address = address.format(closed=closed)
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "dubber.cli", "batch", str(clips["clip0"]), "-o", str(tmp_path / "out"),
                           "--ray", address, "--cache-dir", str(tmp_path / "cache")],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and time.monotonic() - started < 30
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"Cannot reach the Ray cluster at {address}" in lines[0], proc.stderr
    assert not (tmp_path / "out" / "clip0.dub.mp4").exists()


def test_a_ray_address_where_something_else_listens_is_one_sentence_at_once(clips, tmp_path):
    """A web server on the port given (a dashboard's, a typo's): it accepts the connection, and
    ray.init would retry against it for minutes. It is refused at once for not speaking Ray's gRPC."""
    import http.server
    import socketserver

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    with socketserver.TCPServer(("127.0.0.1", 0), Quiet) as web:
        threading.Thread(target=web.serve_forever, daemon=True).start()
        address = f"127.0.0.1:{web.server_address[1]}"
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "dubber.cli", "batch", str(clips["clip0"]), "-o",
                               str(tmp_path / "out"), "--ray", address, "--cache-dir", str(tmp_path / "cache")],
                              cwd=REPO, capture_output=True, text=True, timeout=120)
        web.shutdown()
    assert proc.returncode == 2 and time.monotonic() - started < 30
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"No Ray cluster answers at {address}" in lines[0], proc.stderr
    assert not (tmp_path / "out" / "clip0.dub.mp4").exists()


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
    out, code, stderr = _interrupt_in_output_stage(["--ray", ray_cluster], clips, tmp_path)
    assert code == 130 and "interrupted" in stderr, stderr
    _assert_nothing_half_written(out)


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


def test_a_batch_shares_one_stems_folder_and_replaces_changed_jobs_with_overwrite(clips, tmp_path):
    """`dub batch --stems DIR`: every output's stems land in DIR under its own name. Rerun with
    another loudness, a finished output is not replaced without --overwrite; with it, it is."""
    from dub_cli import dub_env, run_dub

    env = dub_env(tmp_path)
    inputs = [clips["clip0"], clips["clip1"]]
    out, stems = tmp_path / "out", tmp_path / "stems"
    first = run_dub(["batch", *inputs, "-o", out, "--stems", stems, "--jobs", "1"], env, timeout=600)
    assert first.returncode == 0, first.stderr
    for clip in inputs:   # each file is named as it finishes
        assert f"dub: dubbed {clip} -> {out / (clip.stem + '.dub.mp4')}." in first.stderr.splitlines(), first.stderr
    assert sorted(p.name for p in stems.iterdir()) == [f"clip{i}.dub.{s}.wav" for i in (0, 1)
                                                       for s in ("fx", "mix", "music")]
    louder = ["batch", *inputs, "-o", out, "--stems", stems, "--jobs", "1", "--lufs", "-14"]
    refused = run_dub(louder, env, timeout=600)
    assert refused.returncode != 0 and "--overwrite" in refused.stderr
    replaced = run_dub([*louder, "--overwrite"], env, timeout=600)
    assert replaced.returncode == 0, replaced.stderr
    manifest = json.loads((out / "clip0.dub.json").read_text())
    assert abs(manifest["loudness"]["integrated_lufs"] + 14.0) < 0.2


def test_a_file_given_twice_is_said_once_in_one_line_and_dubbed_once(clips, tmp_path):
    """The same video by a relative path, its absolute path and a link to it: `dub batch` says so in
    one line on stderr and dubs it once, named as first given."""
    from dub_cli import dub_env, run_dub

    (tmp_path / "in").mkdir()
    video = tmp_path / "in" / "clip0.mp4"
    shutil.copy(clips["clip0"], video)
    (tmp_path / "in" / "link.mp4").symlink_to(video)
    done = run_dub(["batch", "in/clip0.mp4", video, "in/link.mp4", "-o", "out", "--jobs", "1"], dub_env(tmp_path),
                   timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    said = [line for line in done.stderr.splitlines() if "listed" in line]
    assert said == ["dub: in/clip0.mp4 is listed 3 times; it is dubbed once."], done.stderr
    assert sorted(p.name for p in (tmp_path / "out").glob("*.mp4")) == ["clip0.dub.mp4"]
    assert "dub batch: 1 input: 1 dubbed, 0 already done, 0 failed." in done.stderr


def test_only_a_file_given_more_than_once_is_said(clips, tmp_path):
    from dubber.batch import plan_jobs

    said: list[str] = []
    jobs, failed = plan_jobs([clips["clip0"], clips["clip1"], clips["clip0"]], tmp_path / "out",
                             _dub_options(tmp_path), "run", on_notice=said.append)
    assert [Path(j.input).name for j in jobs] == ["clip0.mp4", "clip1.mp4"] and not failed
    assert said == [f"{clips['clip0']} is listed twice; it is dubbed once."]
    said.clear()
    plan_jobs([clips["clip0"], clips["clip1"]], tmp_path / "out", _dub_options(tmp_path), "run", on_notice=said.append)
    assert said == []


# ----------------------------------------------------------------------------- what a batch says

class _RetriedPool:
    """Stands in for the worker pool: clip0's first worker stopped, so it took two attempts."""

    def submit(self, job, options):
        from concurrent.futures import Future

        from dubber.jobs import JobOutcome

        outcome = Future()
        outcome.set_result(JobOutcome(job.input, job.output, "done", attempts=2 if "clip0" in job.input else 1))
        return outcome

    def interrupt(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_dub_batch_says_in_one_line_which_job_ran_again_after_its_worker_stopped(clips, tmp_path, monkeypatch,
                                                                                 capsys):
    import dubber.batch
    from dubber.cli.main import main

    monkeypatch.setattr(dubber.batch, "open_dispatcher", lambda *args: _RetriedPool())
    code = main(["batch", str(clips["clip0"]), str(clips["clip1"]), "-o", str(tmp_path / "out"),
                 "--cache-dir", str(tmp_path / "cache")])
    stderr = capsys.readouterr().err
    said = [line for line in stderr.splitlines() if "ran again" in line]
    assert code == 0 and said == [f"dub: {clips['clip0']}: the worker dubbing it stopped before the end (killed, or "
                                  "out of memory) and the job ran again; attempt 2 finished it."], stderr


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


def test_ray_turning_token_authentication_on_is_not_a_raw_ray_line(monkeypatch, caplog):
    """Ray's warning that it turned token authentication on ends with how to turn it off; dub
    keeps it off the terminal. Ray's other warnings pass. (Ray warns once a process, so the
    records are made here on Ray's own logger, the one its warning uses.)"""
    pytest.importorskip("ray")
    from ray._private.authentication import authentication_token_setup as ray_auth

    import dubber.executors
    import dubber.ray_cluster

    class _FakeRay:
        def remote(self, **resources):
            return lambda f: f

    assert ray_auth.logger.name == dubber.ray_cluster.RAY_AUTH_LOGGER
    monkeypatch.setattr(dubber.ray_cluster, "connect_ray", lambda address, jobs: _FakeRay())
    dubber.executors.open_dispatcher(True, None, 1, 1)
    # Ray's loggers stop at "ray" once Ray has set up its logging (they do not reach the root,
    # where caplog listens), so the records are taken on Ray's own logger.
    ray_auth.logger.addHandler(caplog.handler)
    try:
        ray_auth.logger.warning("Token authentication is enabled for this Ray cluster. Set RAY_AUTH_MODE=disabled "
                                "to opt out.")
        ray_auth.logger.warning("Token authentication is disabled; anyone who reaches the cluster can use it.")
    finally:
        ray_auth.logger.removeHandler(caplog.handler)
    said = [record.getMessage() for record in caplog.records]
    assert not [line for line in said if "RAY_AUTH_MODE" in line]
    assert [line for line in said if "Token authentication is disabled" in line]
