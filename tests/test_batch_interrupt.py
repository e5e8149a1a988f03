"""An interrupted `dub batch` ends with its one line, whenever the signal comes: here, while its
first worker process is still starting (importing the toolkit), the moment a traceback used to
slip out of the worker or of the process pool's own thread."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dub_cli import dub_command, dub_env, restore_ctrl_c

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the worker through /proc")

SPAWNED_WORKER = b"multiprocessing.spawn"   # in the command line of a starting worker process


def _starting_worker(parent_pid: int) -> int | None:
    """The pid of a worker process `parent_pid` has just started, if there is one."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid == parent_pid and SPAWNED_WORKER in (entry / "cmdline").read_bytes():
                return int(entry.name)
        except (OSError, IndexError, ValueError):
            continue   # gone meanwhile
    return None


def _wait_until_importing(pid: int, timeout_s: float = 1.0) -> None:
    """Return once the worker `pid` is importing the toolkit (numpy's extension is mapped): past
    the interpreter's own start, where a signal ends it before Python code runs, and still well
    before it can take a job. Gives up quietly after `timeout_s` (its imports may change)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if b"_multiarray_umath" in (Path("/proc") / str(pid) / "maps").read_bytes():
                return
        except OSError:
            return   # it is gone already
        time.sleep(0.002)



@pytest.mark.parametrize("signum, to_group, status", [
    (signal.SIGINT, True, 130),     # Ctrl-C on a terminal: the driver and its workers at once
    (signal.SIGTERM, False, 143),   # `kill PID`: the driver alone, which then stops its workers
], ids=["ctrl-c", "sigterm"])
def test_a_batch_interrupted_while_its_worker_starts_ends_with_one_line_and_no_traceback(
        sample_30p_silent, tmp_path, signum, to_group, status):
    inputs = []
    for name in ("a", "b", "c"):   # one worker, three jobs: one runs, one waits in the pool, one in line
        inputs.append(tmp_path / f"{name}.mp4")
        shutil.copyfile(sample_30p_silent[0], inputs[-1])
    cmd = [*dub_command(), "batch", *map(str, inputs), "-o", str(tmp_path / "out"), "--jobs", "1", "--no-cache"]
    proc = subprocess.Popen(cmd, env=dub_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=restore_ctrl_c)
    try:
        deadline = time.monotonic() + 60
        while (worker := _starting_worker(proc.pid)) is None:
            assert time.monotonic() < deadline and proc.poll() is None, "no worker process was started"
            time.sleep(0.005)
        _wait_until_importing(worker)
        os.killpg(proc.pid, signum) if to_group else proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert "Traceback" not in stderr and "Error" not in stderr, stderr
    assert proc.returncode == status, stderr
    assert stderr.splitlines() == ["dub: interrupted; rerun the same command to go on: videos already dubbed are "
                                   "skipped."], stderr


def test_an_import_cut_short_by_ctrl_c_ends_as_an_interrupt_not_a_bug(monkeypatch, capsys, tmp_path):
    """numpy turns a KeyboardInterrupt during the import of its extension into an ImportError: a
    batch stopped while it loads the toolkit must still end with its one line, not a traceback."""
    from dubber.cli import main as cli

    def import_cut_short(args) -> int:
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)   # the handler runs here
        except KeyboardInterrupt:
            raise ImportError('PyCapsule_Import could not import module "datetime"') from None
        return 0

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)   # as on a terminal
    try:
        monkeypatch.setitem(cli._COMMANDS, "batch", import_cut_short)
        code = cli.main(["batch", str(tmp_path / "a.mp4"), "-o", str(tmp_path / "out"), "--no-cache"])
    finally:
        signal.signal(signal.SIGINT, previous)
    assert code == 130
    assert capsys.readouterr().err.splitlines() == [
        "dub: interrupted; rerun the same command to go on: videos already dubbed are skipped."]


# Sets off the signal inside a weakref callback, as when it lands in the import system's module lock
# clean-up, then keeps the main thread busy in ordinary code and in a blocking wait.
_SIGNAL_IN_A_CALLBACK = """
import os, signal, sys, threading, time, weakref

def signal_in_a_callback(signum):
    class ModuleLock:
        pass
    def on_release(ref):
        os.kill(os.getpid(), signum)
        for _ in range(100000):   # the handler runs in here
            pass
    lock = ModuleLock()
    ref = weakref.ref(lock, on_release)
    del lock
    threading.Event().wait(5)
    return "finished"
"""


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["ctrl-c", "sigterm"])
def test_an_interrupt_landing_in_a_weakref_callback_still_stops_the_command_with_one_line(signum, status):
    script = _SIGNAL_IN_A_CALLBACK + f"""
signal.signal(signal.SIGINT, signal.default_int_handler)
from dubber.cli import main as cli
cli._COMMANDS["render"] = lambda args: print(signal_in_a_callback({int(signum)})) or 0
sys.exit(cli.main(["render", "in.mp4", "--plan", "plan.json", "-o", "out.wav", "--no-cache"]))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert "finished" not in done.stdout
    assert done.stderr.splitlines() == [
        "dub: interrupted; with --no-cache nothing was kept, so a rerun starts again from the beginning."], done.stderr
    assert done.returncode == status


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_worker_interrupted_inside_a_weakref_callback_still_unwinds_its_job(signum):
    script = _SIGNAL_IN_A_CALLBACK + f"""
import logging, queue
from dubber import executors
executors._init_worker(os.getppid(), queue.SimpleQueue(), logging.INFO)
executors.run_job = lambda job, options: signal_in_a_callback({int(signum)})
try:
    print(executors._run_job_in_worker(None, None))
except KeyboardInterrupt:
    print("interrupted")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["interrupted"] and done.stderr == "", done.stderr
