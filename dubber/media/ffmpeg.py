"""Finding and running ffmpeg: argument lists only, never a shell string.

The binary is `$DUB_FFMPEG` when set, else the static build shipped in the imageio-ffmpeg wheel,
else an `ffmpeg` on PATH.
"""
from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable, Sequence

from ..errors import DubError

log = logging.getLogger(__name__)

# Quiet, non-interactive, overwrite: output goes to a temp name we own, and stdin is never read
# (an ffmpeg waiting on stdin hangs a watch folder forever).
COMMON_ARGS = ("-nostdin", "-hide_banner", "-loglevel", "error", "-y")


class FFmpegError(DubError):
    """ffmpeg is missing, or it refused the job; the message carries ffmpeg's last words."""


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary to run.

    Raises:
        FFmpegError: `$DUB_FFMPEG` points at nothing runnable, or no ffmpeg can be found.
    """
    chosen = os.environ.get("DUB_FFMPEG")
    if chosen:
        found = shutil.which(chosen)
        if found is None:
            raise FFmpegError(f"DUB_FFMPEG is set to {chosen!r}, which is not a runnable program; "
                              "point it at an ffmpeg binary or unset it.")
        return found
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as err:
        log.debug("imageio-ffmpeg has no binary here (%s); looking on PATH", err)
    found = shutil.which("ffmpeg")
    if found is None:
        raise FFmpegError("No ffmpeg was found; install imageio-ffmpeg (pip install imageio-ffmpeg) "
                          "or set DUB_FFMPEG to an ffmpeg binary.")
    return found


PR_SET_PDEATHSIG = 1   # prctl option (linux/prctl.h): the signal a child gets when its parent dies


@functools.lru_cache(maxsize=1)
def _prctl():
    """libc's prctl, looked up in the parent: the child between fork and exec only calls it
    (loading a library there could wait forever on a lock another thread held at the fork)."""
    if sys.platform != "linux":
        return None
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def _child_dies_with(parent_pid: int, prctl) -> None:
    """In the child, before exec: Linux kills it when the process that started it ends, even by
    SIGKILL, so no ffmpeg outlives a killed `dub`. (An error or SIGTERM in `dub` already kills
    the child: `subprocess.run` does on any exception.)"""
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:   # the parent died before the request took hold
        os._exit(1)


def die_with_parent_hook():
    """The `preexec_fn` that ties a child's life to this process, or None where Linux's prctl is absent."""
    prctl = _prctl()
    return None if prctl is None else functools.partial(_child_dies_with, os.getpid(), prctl)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # "[out#0/mp4 @ 0x55d0c1a2] Error closing file: ..." -> "Error closing file: ...": the rest is for developers.
    return re.sub(r"^(\[[^]]*\]\s*)+", "", lines[-1]) if lines else "no message"


def run_ffmpeg(args: Sequence[str | os.PathLike[str]], *, what: str = "ffmpeg",
               timeout_s: float | None = None,
               on_progress: Callable[[float], None] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ffmpeg with `args` after the common quiet/overwrite flags.

    Args:
        args: ffmpeg arguments (inputs, maps, codecs, output), as a list.
        what: a few words for the error message, e.g. "muxing out.mp4".
        timeout_s: kill ffmpeg after this many seconds (None: no limit).
        on_progress: called with the seconds of output written so far, as ffmpeg reports them
            (about twice a second), so a long mux is not a silent wait.

    Returns:
        The finished process (stderr captured as text; stdout too unless `on_progress` reads it).

    Raises:
        FFmpegError: ffmpeg exited non-zero or timed out; the message ends with its last stderr line.
    """
    command = [ffmpeg_exe(), *COMMON_ARGS, *(os.fspath(a) for a in args)]
    if on_progress is not None:   # key=value lines on stdout; the output file comes last in `args`
        command[-1:-1] = ["-progress", "pipe:1", "-stats_period", "0.5"]
    log.debug("running %s", command)
    try:
        if on_progress is None:
            done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  errors="replace", timeout=timeout_s, check=False,
                                  preexec_fn=die_with_parent_hook())
        else:
            done = _run_reporting(command, timeout_s, on_progress)
    except subprocess.TimeoutExpired as err:
        raise FFmpegError(f"ffmpeg took longer than {timeout_s} s while {what}; "
                          "check the input file or raise the time limit.") from err
    if done.returncode != 0:
        if "No space left on device" in done.stderr or "File too large" in done.stderr:
            raise FFmpegError(f"The disk is full ({_last_line(done.stderr)}) while {what}; "
                              "free some space or choose another output folder.")
        raise FFmpegError(f"ffmpeg failed while {what}: {_last_line(done.stderr)}; "
                          "check the input files and the output format.")
    return done


def _run_reporting(command: list[str], timeout_s: float | None,
                   on_progress: Callable[[float], None]) -> subprocess.CompletedProcess[str]:
    """`command` with its `-progress` lines read as they come. stderr drains on a thread of its
    own, so neither pipe can fill up and stall ffmpeg."""
    with subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, errors="replace", preexec_fn=die_with_parent_hook()) as proc:
        stderr: list[str] = []
        drain = threading.Thread(target=lambda: stderr.append(proc.stderr.read()), daemon=True)
        drain.start()
        timed_out = threading.Event()

        def give_up() -> None:
            timed_out.set()
            proc.kill()

        timer = None
        if timeout_s is not None:
            timer = threading.Timer(timeout_s, give_up)
            timer.start()
        try:
            for line in proc.stdout:
                key, _, value = line.strip().partition("=")
                # out_time_us is microseconds; "N/A" before the first packet is written.
                if key == "out_time_us" and value.lstrip("-").isdigit():
                    on_progress(max(0, int(value)) / 1e6)
            proc.wait()
        except BaseException:
            # Interrupted (Ctrl-C, SIGTERM) or the progress callback failed: ffmpeg goes with
            # us, as subprocess.run would see to, instead of the `with` waiting for it to finish.
            proc.kill()
            raise
        finally:
            if timer is not None:
                timer.cancel()
        drain.join()
        if timed_out.is_set():
            raise subprocess.TimeoutExpired(command, timeout_s)
        return subprocess.CompletedProcess(command, proc.returncode, "", "".join(stderr))


def ffmpeg_version() -> str:
    """First line of `ffmpeg -version`, for manifests and bug reports."""
    done = subprocess.run([ffmpeg_exe(), "-version"], stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, errors="replace", check=False)
    return _last_line(done.stdout.splitlines()[0] if done.stdout else done.stderr)


def is_same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """True when two paths name the same file (resolved; hard links too when both exist)."""
    pa, pb = Path(a).expanduser().resolve(), Path(b).expanduser().resolve()
    if pa == pb:
        return True
    try:
        return pa.exists() and pb.exists() and os.path.samefile(pa, pb)
    except OSError:
        return False
