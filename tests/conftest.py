"""Shared fixtures: small synthetic cartoon videos with exact ground truth, made once per session,
and the inputs that the watch, batch, deliverables and export tests share across their modules."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import pytest

from samples.synth import SynthSpec, synthesize

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_VIDEO = REPO_ROOT / "samples" / "cartoon_demo.mp4"


SESSION_PREFIX = "session-"   # folders of session fixtures, kept until the whole run ends


def _make(factory, name: str, spec: SynthSpec) -> tuple[Path, dict]:
    path = factory.mktemp(f"{SESSION_PREFIX}media") / f"{name}.mp4"
    truth = synthesize(path, spec)
    return path, truth


@pytest.fixture(scope="module", autouse=True)
def _module_scratch_freed(tmp_path_factory, request):
    """Folders a module's fixtures made go when the module ends, unless one of its tests failed:
    a full run then needs the disk of one module at a time, not of the whole suite."""
    base = tmp_path_factory.getbasetemp()
    before, failed = set(base.iterdir()), request.session.testsfailed
    yield
    if request.session.testsfailed != failed:
        return
    for folder in set(base.iterdir()) - before:
        if folder.is_dir() and not folder.name.startswith(SESSION_PREFIX):
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def sample_24p(tmp_path_factory) -> tuple[Path, dict]:
    """320x180, 24000/1001 fps, about 6 s, 3 shots, AAC sound track."""
    return _make(tmp_path_factory, "cartoon_24p", SynthSpec(fps=Fraction(24000, 1001), duration_s=6.0, audio=True))


@pytest.fixture(scope="session")
def sample_30p_silent(tmp_path_factory) -> tuple[Path, dict]:
    """320x180, 30 fps, about 5 s, 3 shots, no audio stream."""
    spec = SynthSpec(fps=Fraction(30), duration_s=5.0, shot_s=1.6, audio=False, seed=1)
    return _make(tmp_path_factory, "cartoon_30p_silent", spec)


@pytest.fixture(scope="session")
def sample_vfr(tmp_path_factory) -> tuple[Path, dict]:
    """320x180, variable frame rate (frame durations 1/60..1/24 s), 144 frames, silent."""
    spec = SynthSpec(fps=Fraction(24000, 1001), duration_s=6.0, audio=False, vfr=True, seed=2)
    return _make(tmp_path_factory, "cartoon_vfr", spec)


@pytest.fixture(scope="session")
def demo_sample() -> tuple[Path, dict]:
    """The committed demo video and its ground truth."""
    return DEMO_VIDEO, json.loads(DEMO_VIDEO.with_suffix(".json").read_text())


# ----------------------------------------------------------------------------- inputs shared by test modules
# Read-only: the tests copy them, or dub them into folders of their own.

@pytest.fixture(scope="session")
def base_video(tmp_path_factory) -> bytes:
    """The watch-folder tests' clip (test_watch*.py): 40 frames at 24 fps, silent, as bytes;
    tests.watch_helpers.variant makes distinct valid copies of it."""
    path = tmp_path_factory.mktemp(f"{SESSION_PREFIX}watch_media") / "base.mp4"
    synthesize(path, SynthSpec(fps=Fraction(24), shot_frames=(40,), audio=False, seed=5))
    return path.read_bytes()


@pytest.fixture(scope="session")
def batch_clips(tmp_path_factory) -> dict[str, Path]:
    """The `dub batch` tests' inputs (`clips` in test_batch*.py): see tests/batch_helpers.py."""
    from tests.batch_helpers import batch_inputs

    return batch_inputs(tmp_path_factory.mktemp(f"{SESSION_PREFIX}batch-inputs"))


@pytest.fixture(scope="session")
def deliverables_media(tmp_path_factory) -> dict[str, Path]:
    """The deliverables tests' clips (`media` in test_deliverables*.py): see tests/deliverables_helpers.py."""
    from tests.deliverables_helpers import deliverables_media_in

    return deliverables_media_in(tmp_path_factory.mktemp(f"{SESSION_PREFIX}deliverables-media"))


@pytest.fixture()
def ntsc_run():
    """The export tests' run (test_export*.py): 300 frames at 24000/1001 fps in three shots, with
    its plan, soundtrack and render (tests/export_helpers.py)."""
    from tests.export_helpers import ntsc_inputs

    return ntsc_inputs()


# ----------------------------------------------------------------------------- a Ray cluster on loopback

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory):
    """A one-node Ray cluster on loopback with two worker CPUs, started as an operator does
    (`ray start --head`) for the `cluster` tests of every module, stopped at the end."""
    pytest.importorskip("ray", reason="the cluster tests need ray: pip install -e '.[cluster]'")
    port = _free_port()
    temp = Path("/tmp") / f"dubray-{port}"   # Ray's socket paths must stay short
    ray_bin = Path(sys.executable).with_name("ray")
    cmd = [str(ray_bin), "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=2",
           "--num-gpus=0", "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}", "--block"]
    log = tmp_path_factory.mktemp(f"{SESSION_PREFIX}ray") / "ray.log"
    with open(log, "w") as sink:
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while "--block" not in log.read_text() or "This command will now block" not in log.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ray start failed: {log.read_text()[-2000:]}")
            time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)   # ray start --block drains and stops everything it started
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        shutil.rmtree(temp, ignore_errors=True)
