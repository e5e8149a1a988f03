"""What the local pool (`dubber.executors`) and the Ray cluster (`dubber.ray_cluster`) share: the
Dispatcher they both are, how a job's future is settled, a bug turned into a failed outcome, and
interrupts held off while interrupted workers unwind."""
from __future__ import annotations

import contextlib
import logging
import signal
import threading
from concurrent.futures import Future, InvalidStateError
from typing import Protocol

from .errors import one_line
from .jobs import Job, JobOutcome
from .options import DubOptions

log = logging.getLogger("dubber.batch")   # one voice for the batch machinery in every log

# Seconds an interrupted worker gets to unwind its job (remove the job's temporaries and the
# folders it made, stop its ffmpeg) before it is killed; a signal reaches Python code between two
# steps, so a long step of pure native code (a SoundFont render, a model call) delays it.
WORKER_STOP_GRACE_S = 15.0

class Dispatcher(Protocol):
    """Where jobs run (see the module's docstring)."""

    def submit(self, job: Job, options: DubOptions) -> "Future[JobOutcome]": ...

    def interrupt(self) -> None: ...

    def close(self) -> None: ...


def settle(outcome: "Future[JobOutcome]", result: JobOutcome | None = None,
            error: BaseException | None = None) -> None:
    """Complete a job's future, unless an interrupt already did."""
    try:
        outcome.set_exception(error) if error is not None else outcome.set_result(result)
    except InvalidStateError:
        pass


def internal_error(job: Job, err: BaseException) -> JobOutcome:
    """A bug in a job: its traceback to the log, one line to its outcome."""
    log.error("dubbing %s failed", job.input, exc_info=err)
    return JobOutcome(job.input, job.output, "failed", f"internal error: {one_line(err)}", error=type(err).__name__)


@contextlib.contextmanager
def interrupts_ignored():
    """Ignore Ctrl-C and SIGTERM in this process (on its main thread, where Python handles them)
    while interrupted workers unwind. One Ctrl-C can arrive twice (a terminal or `timeout` signals
    the driver and then its whole process group), and a second interrupt must not cut the wait
    short and kill a worker in the middle of its clean-up; the grace period bounds the wait."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.signal(number, signal.SIG_IGN) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
