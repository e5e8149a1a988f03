"""A real `dub studio` server in a subprocess, on a free port, for the studio's tests.

The server gets its own stage cache, work folder and root folder (holding a copy of the sample),
so a test can look at exactly what it wrote.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from dub_cli import restore_ctrl_c

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "samples" / "cartoon_demo.mp4"
START_TIMEOUT_S = 60.0
STOP_GRACE_S = 1.0       # an idle server stops in about half a second


@dataclass
class StudioServer:
    url: str
    root: Path
    work: Path
    cache: Path
    log: Path
    process: subprocess.Popen

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        """SIGTERM, as Ctrl+C. A server that has answered a client then waits up to 5 s for the
        client's open connections (Gradio's shutdown); nothing a test checks happens in that
        wait, so a server still up after STOP_GRACE_S is killed."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]



def start_studio(base: Path, *extra_args: str, env: dict[str, str] | None = None) -> StudioServer:
    """Start `dub studio --root <base>/root --work <base>/work [extra_args]` and wait until it
    answers; `env` adds to (or replaces) the server's environment variables."""
    root, work, cache = base / "root", base / "work", base / "cache"
    root.mkdir(parents=True)
    shutil.copy2(SAMPLE, root / SAMPLE.name)
    port = free_port()
    # An empty Hugging Face cache: which backends the page offers depends on --model alone.
    env = {**os.environ, "DUB_CACHE_DIR": str(cache), "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1",
           "HF_HOME": str(base / "hf"), **(env or {})}
    log = base / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "dubber.cli", "studio", "--port", str(port), "--root", str(root),
             "--work", str(work), *extra_args], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=base,
            preexec_fn=restore_ctrl_c)
    server = StudioServer(f"http://127.0.0.1:{port}/", root, work, cache, log, process)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dub studio exited with {process.returncode}:\n{server.log_text()}")
        try:
            with urllib.request.urlopen(server.url, timeout=2) as response:
                if response.status == 200:
                    return server
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"dub studio did not answer within {START_TIMEOUT_S:.0f} s:\n{server.log_text()}")
