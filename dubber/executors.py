"""Where jobs run: local worker processes, or tasks on a Ray cluster. `dub batch` submits its
whole backlog at once; the watch folder submits each file as it settles. Both get the same
guarantees from here, with `dubber.jobs.run_job` doing each job and its ledger record.

A Dispatcher's `submit` returns at once, with a future that ends with the job's outcome: a worker
that died (killed, out of memory) is retried up to `retries` times, with the files its attempt
wrote removed first (the ledger knows when it started); a bug becomes a failed outcome, its
traceback in the log; only an interrupt (`interrupt()`: Ctrl-C, SIGTERM) ends a job's future with
KeyboardInterrupt, leaving its ledger record `running`, so that the next run does it again.

- LocalPool: `workers` processes, started clean (spawn); their log records come back to this
  process (its stderr, the watch log), and they stop when this process is killed. A worker that
  dies breaks the pool: it is rebuilt and each job it held runs again (charged to the retries of
  the job whose worker died, not of those the pool stopped with it). An interrupt lets each
  worker unwind its job as an interrupted `dub` does, so no half-written file stays behind.
- RayCluster (`dubber.ray_cluster`): each job is a Ray task on a cluster.
"""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from concurrent.futures import Future, wait
from typing import Any

from .jobs import DEFAULT_RETRIES, Job, JobOutcome, after_worker_died, run_job, spare_if_running
from .job_futures import WORKER_STOP_GRACE_S, Dispatcher, interrupts_ignored, internal_error, settle
from .lost_interrupts import keep_interrupts
from .options import DubOptions

log = logging.getLogger("dubber.batch")   # one voice for the batch machinery in every log

# Seconds a job interrupted in its worker waits for the driver's own interrupt before it counts
# as interrupted from outside (a Ctrl-C reaches both, the driver's handler a moment later).
STRAY_SIGNAL_WAIT_S = 1.0
STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})   # what stops a job (`_stop_job`)
INTERRUPTED_REASON = ("the worker running it was interrupted {attempts} times by a signal sent to the worker "
                      "processes and not to `dub` (a process-group SIGINT or SIGTERM); stop what sends it, then "
                      "dub the file again.")


# ----------------------------------------------------------------------------- local processes

# In a worker process: whether it is running a job, whether a signal already interrupted that job,
# and the driver's stop (an Event it sets in `interrupt()`, before it signals its workers).
_running_job = False
_job_interrupted = False
_terminated = False
_driver_stop: Any = None


def _stop_job(signum: int, frame: object) -> None:
    """SIGINT or SIGTERM in a worker: the job it runs unwinds as an interrupted `dub` does, its
    output transaction removing every temporary. Only the first signal interrupts a job: Ctrl-C
    reaches the driver and its workers alike, and the driver then asks each worker to stop as
    well, which must not cut the clean-up of the first short. A stray SIGINT (a process-group
    one the driver did not get) costs only the job it interrupted, which the driver runs again.
    SIGTERM ends the worker too, once its job has unwound: the pool sends it to the workers left
    when one of them dies, and a worker that took the next job queued to it would dub it to the
    end for nobody, while the fresh pool the driver starts dubs the same job to the same files."""
    global _job_interrupted, _terminated
    if signum == signal.SIGTERM:
        _terminated = True
    if _running_job and not _job_interrupted:
        _job_interrupted = True
        raise KeyboardInterrupt


def _rearm_stop(lost: KeyboardInterrupt) -> int:
    """The interrupt `_stop_job` raised was swallowed (in a weakref callback): the next one
    interrupts the job instead."""
    global _job_interrupted
    _job_interrupted = False
    return signal.SIGTERM if _terminated else signal.SIGINT


def _run_job_in_worker(job: Job, options: DubOptions) -> JobOutcome:
    """run_job, interruptible by `_stop_job`; a job handed over after the driver's stop is not
    started, and a worker sent SIGTERM starts no job at all: it exits, and the pool, broken,
    hands the job back to the driver, which runs it on a fresh worker."""
    global _running_job, _job_interrupted
    # The driver's stop first: a worker it signalled drops the jobs still queued to it, instead of
    # exiting and breaking the pool while the driver is waiting for its workers to unwind.
    if _terminated and not (_driver_stop is not None and _driver_stop.is_set()):
        os._exit(1)
    _job_interrupted = False
    _running_job = True   # before the check: a stop arriving in between still interrupts the job
    try:
        if _driver_stop is not None and _driver_stop.is_set():
            raise KeyboardInterrupt
        return run_job(job, options)
    except Exception as err:
        if not _job_interrupted:
            raise
        # The interrupt came first: an import it cut short leaves a half-made module behind, whose
        # NameError or ImportError is the interrupt's doing, not a bug to report with a traceback.
        raise KeyboardInterrupt from err
    finally:
        _running_job = False


def _init_worker(parent_pid: int, log_queue: Any, level: int, driver_stop: Any = None) -> None:
    """Start a local worker: its log records go to the driver (which owns stderr and the watch
    log), an interrupt unwinds its job (`_stop_job`), and it stops when the driver is gone
    (killed), rather than finish a job nobody will collect while a restarted driver runs it again."""
    from logging.handlers import QueueHandler

    global _driver_stop
    _driver_stop = driver_stop
    root = logging.getLogger()
    root.handlers[:] = [QueueHandler(log_queue)]
    root.setLevel(level)
    signal.signal(signal.SIGINT, _stop_job)
    signal.signal(signal.SIGTERM, _stop_job)
    keep_interrupts(_rearm_stop)

    def watch_parent() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch_parent, daemon=True, name="dub-parent-watch").start()
    # The worker started with these signals blocked (`_signals_held`); one sent while it was
    # starting was kept pending and arrives now, at `_stop_job`.
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


@contextlib.contextmanager
def _signals_held():
    """Block SIGINT and SIGTERM in this thread for the block. A worker process started in it
    inherits the mask, and so cannot be stopped by either before `_init_worker` has set up its
    handlers: a Ctrl-C there would print the traceback of an interrupted import, a SIGTERM would
    kill it silently and break the pool. A signal meant for this process goes to another thread
    or waits until the block ends."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class _ToLocalLogger(logging.Handler):
    """Hands a record from a worker to the logger of the same name in this process."""

    def emit(self, record: logging.LogRecord) -> None:
        logging.getLogger(record.name).handle(record)


class LocalPool:
    """Jobs on `workers` local processes (see the module's docstring)."""

    def __init__(self, workers: int, retries: int = DEFAULT_RETRIES) -> None:
        import multiprocessing
        from logging.handlers import QueueListener

        # spawn: a worker starts clean (no copied threads or locks from the driver).
        self.context = multiprocessing.get_context("spawn")
        self.workers, self.retries = workers, retries
        self.log_queue = self.context.Queue()
        self.driver_stop = self.context.Event()   # set by interrupt(): workers take no new job
        self.log_listener = QueueListener(self.log_queue, _ToLocalLogger())
        self.log_listener.start()
        self.lock = threading.Lock()
        self.stopped = False
        self.attempts: set[Future[JobOutcome]] = set()   # handed to the pool and not yet ended
        self.pool = self._new_pool()

    def _new_pool(self) -> Any:
        from concurrent.futures import ProcessPoolExecutor

        level = logging.getLogger("dubber").getEffectiveLevel()
        return ProcessPoolExecutor(self.workers, mp_context=self.context, initializer=_init_worker,
                                   initargs=(os.getpid(), self.log_queue, level, self.driver_stop))

    def submit(self, job: Job, options: DubOptions) -> "Future[JobOutcome]":
        outcome: Future[JobOutcome] = Future()
        self._start(job, options, outcome)
        return outcome

    def _start(self, job: Job, options: DubOptions, outcome: "Future[JobOutcome]") -> None:
        from concurrent.futures.process import BrokenProcessPool

        with self.lock:
            if self.stopped:
                settle(outcome, error=KeyboardInterrupt())
                return
            pool = self.pool
            with _signals_held():   # a submit may start a worker process (see `_signals_held`)
                try:
                    attempt = pool.submit(_run_job_in_worker, job, options)
                except BrokenProcessPool:   # broken before its jobs' callbacks replaced it
                    pool = self._replace(pool)
                    attempt = pool.submit(_run_job_in_worker, job, options)
            self.attempts.add(attempt)
        attempt.add_done_callback(lambda f: self._finished(f, pool, job, options, outcome))

    def _replace(self, broken: Any) -> Any:
        """The current pool, rebuilt when it is the broken one (call with the lock held; a broken
        pool stops its own processes)."""
        if self.pool is broken:
            log.warning("a worker process died; its unfinished jobs run again on fresh workers")
            self.pool = self._new_pool()
        return self.pool

    def _finished(self, attempt: "Future[JobOutcome]", pool: Any, job: Job, options: DubOptions,
                  outcome: "Future[JobOutcome]") -> None:
        from concurrent.futures.process import BrokenProcessPool

        with self.lock:
            self.attempts.discard(attempt)
        try:
            settle(outcome, attempt.result())
            return
        except BrokenProcessPool:
            pass
        except KeyboardInterrupt as err:   # Ctrl-C on a terminal reaches the workers too
            # ...and this process, whose interrupt() may come a moment after the worker's result.
            if self.driver_stop.wait(STRAY_SIGNAL_WAIT_S):
                settle(outcome, error=err)
                return
            # A signal that reached the worker and not this process (a process-group SIGINT
            # while the driver ignores it, a `kill` of the worker): the job is run again, as
            # for a worker that died, and failed with its reason when it keeps happening.
            log.warning("the worker dubbing %s was interrupted from outside; the job runs again", job.input)
            self._again_or_failed(job, options, outcome, INTERRUPTED_REASON)
            return
        except BaseException as err:   # a bug: keep the traceback in the log, go on with the rest
            settle(outcome, internal_error(job, err))
            return
        with self.lock:
            if self.stopped:
                settle(outcome, error=KeyboardInterrupt())
                return
            self._replace(pool)
        # One worker died and the pool stops the rest: a job whose worker is still alive is not
        # the one that died, and its attempt does not count against its retries.
        spare_if_running(job)
        self._again_or_failed(job, options, outcome)

    def _again_or_failed(self, job: Job, options: DubOptions, outcome: "Future[JobOutcome]",
                         reason: str | None = None) -> None:
        if (died := after_worker_died(job, self.retries, reason)) is not None:
            settle(outcome, died)
        else:
            self._start(job, options, outcome)

    def interrupt(self) -> None:
        """Stop every job; each ends with KeyboardInterrupt. A job not yet started is dropped (the
        worker it is handed to sees the driver's stop and starts nothing); a running one unwinds
        in its worker, which removes what it had half written, and the call returns once all have;
        a worker still busy after WORKER_STOP_GRACE_S is killed."""
        # From the first interrupt on, the next ones are ignored until the workers have unwound
        # and `close` has joined them: cut short here, the stop would leave running workers to
        # the interpreter's exit, whose join a further Ctrl-C turns into a traceback.
        with interrupts_ignored():
            with self.lock:
                self.stopped = True
                self.driver_stop.set()   # before the signals: a worker between two jobs starts no other
                pool, attempts = self.pool, list(self.attempts)
            # The queued jobs are not cancelled in the pool: Python 3.11's pool, broken afterwards
            # (a worker killed below), fails every job it holds, and on a cancelled one its
            # manager thread dies with an InvalidStateError traceback on stderr.
            # The pool's own processes (Python 3.14 adds terminate_workers(); 3.11 keeps them here).
            processes = list((getattr(pool, "_processes", None) or {}).values())
            for process in processes:
                process.terminate()   # SIGTERM: `_stop_job` in the worker
            unfinished = attempts
            try:
                unfinished = wait(attempts, timeout=WORKER_STOP_GRACE_S).not_done
            finally:   # the grace spent (or the wait failed): what still runs is killed
                if unfinished:
                    for process in processes:
                        process.kill()

    def close(self) -> None:   # after the last submit: the pool in place is the one to wait for
        # After an interrupt every worker has unwound or been killed, so the join is short; it
        # runs to its end for the reason given in `interrupt`.
        with interrupts_ignored() if self.stopped else contextlib.nullcontext():
            self.pool.shutdown(wait=True)
            self.log_listener.stop()
            self.log_queue.close()


def open_dispatcher(ray: bool, address: str | None, jobs: int | None, concurrency: int,
                    retries: int = DEFAULT_RETRIES) -> Dispatcher:
    """Local worker processes (`jobs`, else one per CPU core; at most `concurrency`), or the Ray
    cluster at `address` (or RAY_ADDRESS, else the one on this machine, started with `jobs` CPUs
    if none runs).

    Raises:
        BackendUnavailable: ray asked for but not installed, or its cluster cannot be reached.
    """
    if ray:
        from .ray_cluster import RayCluster, connect_ray, quiet_ray_auth_notice

        quiet_ray_auth_notice()
        return RayCluster(connect_ray(address, jobs), retries, concurrency)
    return LocalPool(max(1, min(jobs or os.cpu_count() or 1, concurrency)), retries)
