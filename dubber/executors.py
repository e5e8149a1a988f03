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
  dies breaks the pool: it is rebuilt and each job it held runs again. An interrupt lets each
  worker unwind its job as an interrupted `dub` does, so no half-written file stays behind.
- RayCluster: each job is a Ray task with one CPU; Ray reruns a task whose worker died. Every node
  must have this package installed and reach the inputs, the outputs and the ledger at the same
  paths (a shared file system). With the audiostory backend, the model is loaded once per GPU by
  a long-lived actor (`num_gpus=1`) that renders the cues of every job; the audio comes back
  through Ray's object store.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import threading
import time
from concurrent.futures import Future, InvalidStateError, wait
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Protocol

from .jobs import DEFAULT_RETRIES, Job, JobOutcome, after_worker_died, run_job
from .errors import BackendUnavailable, one_line
from .options import DubOptions
from .types import ProgressFn, no_progress

log = logging.getLogger("dubber.batch")   # one voice for the batch machinery in every log

RAY_INSTALL_HINT = "--ray needs the ray package; install it with pip install 'dubber[cluster]'."
RAY_CONNECT_TIMEOUT_S = 5.0   # a cluster address that does not answer a TCP connection by then is unreachable
# Seconds an interrupted worker gets to unwind its job (remove the job's temporaries and the
# folders it made, stop its ffmpeg) before it is killed; a signal reaches Python code between two
# steps, so a long step of pure native code (a SoundFont render, a model call) delays it.
WORKER_STOP_GRACE_S = 15.0
# Seconds a job interrupted in its worker waits for the driver's own interrupt before it counts
# as interrupted from outside (a Ctrl-C reaches both, the driver's handler a moment later).
STRAY_SIGNAL_WAIT_S = 1.0
STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})   # what stops a job (`_stop_job`)
INTERRUPTED_REASON = ("the worker running it was interrupted {attempts} times by a signal sent to the worker "
                      "processes and not to `dub` (a process-group SIGINT or SIGTERM); stop what sends it, then "
                      "dub the file again.")


class Dispatcher(Protocol):
    """Where jobs run (see the module's docstring)."""

    def submit(self, job: Job, options: DubOptions) -> "Future[JobOutcome]": ...

    def interrupt(self) -> None: ...

    def close(self) -> None: ...


def _settle(outcome: "Future[JobOutcome]", result: JobOutcome | None = None,
            error: BaseException | None = None) -> None:
    """Complete a job's future, unless an interrupt already did."""
    try:
        outcome.set_exception(error) if error is not None else outcome.set_result(result)
    except InvalidStateError:
        pass


def _internal_error(job: Job, err: BaseException) -> JobOutcome:
    """A bug in a job: its traceback to the log, one line to its outcome."""
    log.error("dubbing %s failed", job.input, exc_info=err)
    return JobOutcome(job.input, job.output, "failed", f"internal error: {one_line(err)}", error=type(err).__name__)


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


@contextlib.contextmanager
def _interrupts_ignored():
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
                _settle(outcome, error=KeyboardInterrupt())
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
            _settle(outcome, attempt.result())
            return
        except BrokenProcessPool:
            pass
        except KeyboardInterrupt as err:   # Ctrl-C on a terminal reaches the workers too
            # ...and this process, whose interrupt() may come a moment after the worker's result.
            if self.driver_stop.wait(STRAY_SIGNAL_WAIT_S):
                _settle(outcome, error=err)
                return
            # A signal that reached the worker and not this process (a process-group SIGINT
            # while the driver ignores it, a `kill` of the worker): the job is run again, as
            # for a worker that died, and failed with its reason when it keeps happening.
            log.warning("the worker dubbing %s was interrupted from outside; the job runs again", job.input)
            self._again_or_failed(job, options, outcome, INTERRUPTED_REASON)
            return
        except BaseException as err:   # a bug: keep the traceback in the log, go on with the rest
            _settle(outcome, _internal_error(job, err))
            return
        with self.lock:
            if self.stopped:
                _settle(outcome, error=KeyboardInterrupt())
                return
            self._replace(pool)
        self._again_or_failed(job, options, outcome)

    def _again_or_failed(self, job: Job, options: DubOptions, outcome: "Future[JobOutcome]",
                         reason: str | None = None) -> None:
        if (died := after_worker_died(job, self.retries, reason)) is not None:
            _settle(outcome, died)
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
        with _interrupts_ignored():
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
        with _interrupts_ignored() if self.stopped else contextlib.nullcontext():
            self.pool.shutdown(wait=True)
            self.log_listener.stop()
            self.log_queue.close()


# ----------------------------------------------------------------------------- Ray

def require_ray() -> None:
    """Check ray is installed without importing it (its settings are read at import)."""
    import importlib.util

    try:
        found = importlib.util.find_spec("ray") is not None
    except ValueError:   # a module entry of None: treated as not installed
        found = False
    if not found:
        raise BackendUnavailable(RAY_INSTALL_HINT)


def connect_ray(address: str | None, local_cpus: int | None = None) -> Any:
    """Join the cluster at `address` (or RAY_ADDRESS); with neither, join the one running on this
    machine or start one (with `local_cpus` worker CPUs; None: all). Returns the ray module.

    Raises:
        BackendUnavailable: ray is not installed, or the cluster cannot be reached.
    """
    require_ray()
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address is not None:
        check_reachable(address)
    if address is not None and "RAY_AUTH_MODE" not in os.environ and _ray_token_available():
        # `ray start` turns token authentication on and keeps the token in ~/.ray/auth_token, but
        # a driver joining by address only sends it in token mode, which ray reads at import.
        os.environ["RAY_AUTH_MODE"] = "token"
    try:
        import ray
    except ImportError:
        raise BackendUnavailable(RAY_INSTALL_HINT) from None
    if ray.is_initialized():
        return ray
    quiet = {"logging_level": logging.WARNING, "log_to_driver": False}
    try:
        if address is not None:
            ray.init(address=address, **quiet)
            return ray
        try:
            ray.init(address="auto", **quiet)
        except (ConnectionError, RuntimeError):
            ray.init(include_dashboard=False, num_cpus=local_cpus, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as err:
        where = address or "this machine"
        raise BackendUnavailable(f"Cannot reach the Ray cluster at {where} ({one_line(err).rstrip('.')}); "
                                 "start it with `ray start --head` or pass its address with --ray.") from None
    return ray


def check_reachable(address: str, timeout_s: float = RAY_CONNECT_TIMEOUT_S) -> None:
    """Raise BackendUnavailable, within `timeout_s`, when nothing answers at a host:port cluster
    address (a head node's, or ray://host:port for Ray Client): `ray.init` would retry for
    minutes, deaf to the user's Ctrl-C and kill. Other forms ("auto") are left to Ray."""
    host, sep, port = address.split("://", 1)[-1].rstrip("/").rpartition(":")
    if not sep or not port.isdigit():
        return
    try:
        with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=timeout_s) as link:
            speaks_grpc = _answers_http2(link)
    except OSError as err:
        why = "no such host" if isinstance(err, socket.gaierror) else \
            "no answer" if isinstance(err, TimeoutError) else (err.strerror or str(err)).lower()
        raise BackendUnavailable(f"Cannot reach the Ray cluster at {address} ({why}); start it with `ray start "
                                 "--head` on that machine, or check the address given with --ray.") from None
    if not speaks_grpc:
        raise BackendUnavailable(f"No Ray cluster answers at {address}: something else listens on that port; give "
                                 "the head node's address (the port `ray start --head` printed, 6379 by default).")


# What an HTTP/2 client sends first: the connection preface, then its (empty) SETTINGS frame.
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
_HTTP2_SETTINGS = 4   # frame type


def _answers_http2(link: socket.socket) -> bool:
    """Whether the server on `link` speaks HTTP/2, as Ray's cluster and client servers (gRPC) do:
    its first frame is SETTINGS. A web server, a database or a dashboard port answers otherwise,
    or not at all, and `ray.init` would retry against it for minutes."""
    link.sendall(_HTTP2_PREFACE)
    head = b""
    try:
        while len(head) < 9:
            chunk = link.recv(9 - len(head))
            if not chunk:
                return False
            head += chunk
    except TimeoutError:
        return False
    return head[3] == _HTTP2_SETTINGS


def _ray_token_available() -> bool:
    """Whether this machine holds a Ray cluster token (as Ray looks for one)."""
    if os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return True
    return (Path.home() / ".ray" / "auth_token").is_file()


# Where ray.init says it turned token authentication on (its logger, and how the line begins).
RAY_AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"
RAY_AUTH_ENABLED_NOTICE = "Token authentication is enabled"


class _RayAuthEnabledNotice(logging.Filter):
    """Drops Ray's "Token authentication is enabled ... Set RAY_AUTH_MODE=disabled to opt out"
    line, which a driver on a local cluster gets at every run: the protection is on, as it should
    be, and the line only tells the user how to turn it off, in Ray's own log format on dub's
    terminal. Every other line of that logger (a missing token, one turned off) passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(RAY_AUTH_ENABLED_NOTICE)


def _quiet_ray_auth_notice() -> None:
    """Install the filter (once) on the logger Ray warns with; before ray is imported too."""
    logger = logging.getLogger(RAY_AUTH_LOGGER)
    if not any(isinstance(f, _RayAuthEnabledNotice) for f in logger.filters):
        logger.addFilter(_RayAuthEnabledNotice())


class ModelServer:
    """Holds one loaded backend (the model, loaded once) and renders plans for every job; on Ray
    it is an actor with one GPU."""

    def __init__(self, backend_name: str, options: DubOptions) -> None:
        from .backends import build_backend

        self.backend = build_backend(backend_name, options)

    def describe(self) -> tuple[str, bool]:
        return self.backend.NAME, bool(getattr(self.backend, "RENDERS_WHOLE_TIMELINE", False))

    def render(self, plan: Any, analysis: Any, positions: list[int] | None = None) -> Any:
        if positions is None:
            return self.backend.render(plan, analysis)
        return self.backend.render_cues(plan, analysis, positions)

    def weights_identity(self) -> Any:
        identity = getattr(self.backend, "weights_identity", None)
        return identity() if identity is not None else None


class RemoteBackend:
    """A backend whose renders run on a ModelServer actor; the audio comes back through the
    object store (numpy arrays are read from shared memory, not unpickled copies)."""

    def __init__(self, server: Any, name: str, whole_timeline: bool) -> None:
        self.server = server
        self.NAME = name
        self.RENDERS_WHOLE_TIMELINE = whole_timeline

    def render(self, plan: Any, analysis: Any, progress: ProgressFn = no_progress) -> Any:
        import ray

        return ray.get(self.server.render.remote(plan, analysis))

    def render_cues(self, plan: Any, analysis: Any, positions: Any, progress: ProgressFn = no_progress) -> Any:
        """Some cues, with the rest of the plan as context (see DubBackend.render_cues)."""
        import ray

        return ray.get(self.server.render.remote(plan, analysis, list(positions)))

    def weights_identity(self) -> Any:
        """The served weights' identity, for the render cache (see AudioStoryBackend)."""
        import ray

        return ray.get(self.server.weights_identity.remote())


def _ray_job(job: Job, options: DubOptions, server: Any = None, describe: tuple[str, bool] | None = None):
    backend = RemoteBackend(server, *describe) if server is not None else None
    return run_job(job, options, backend)


class RayCluster:
    """Jobs as Ray tasks (see the module's docstring). Model servers are started on the first job
    that needs them: one per GPU of the cluster (one on a CPU when it has none), at most `servers`."""

    def __init__(self, ray: Any, retries: int = DEFAULT_RETRIES, servers: int = 1) -> None:
        self.ray, self.retries, self.max_servers = ray, retries, max(1, servers)
        self.task = ray.remote(num_cpus=1, max_retries=retries, retry_exceptions=False)(_ray_job)
        self.lock = threading.Lock()
        self.servers: dict[str, list[tuple[Any, tuple[str, bool]]]] = {}
        self.turn = 0
        self.in_flight: dict[Any, Future[JobOutcome]] = {}
        self.stopped = False

    def cpus(self) -> int:
        return int(self.ray.cluster_resources().get("CPU", 1))

    def submit(self, job: Job, options: DubOptions) -> "Future[JobOutcome]":
        outcome: Future[JobOutcome] = Future()
        if self.stopped:
            _settle(outcome, error=KeyboardInterrupt())
            return outcome
        server, describe = self._server_for(options)
        ref = self.task.remote(job, options, server, describe)
        with self.lock:
            self.in_flight[ref] = outcome
        ref.future().add_done_callback(lambda f: self._finished(f, ref, job, outcome))
        return outcome

    def _finished(self, attempt: "Future[JobOutcome]", ref: Any, job: Job, outcome: "Future[JobOutcome]") -> None:
        with self.lock:
            self.in_flight.pop(ref, None)
        try:
            _settle(outcome, attempt.result())
        except Exception as err:   # a bug in the job, or its worker died more than `retries` times
            if not outcome.done():   # else cancelled by an interrupt
                _settle(outcome, after_worker_died(job, self.retries) or _internal_error(job, err))

    def _server_for(self, options: DubOptions) -> tuple[Any, tuple[str, bool] | None]:
        """A model server for these settings (round robin over the GPUs), or (None, None) when
        the backend renders on the CPU inside the job."""
        from .api import resolve_backend

        name, _ = resolve_backend(options)
        if name != "audiostory":
            return None, None
        # Per-job paths do not change the model a server holds.
        model_options = replace(options, stems_dir=None, timeline=False, force=False)
        model_key = json.dumps(asdict(model_options), sort_keys=True, default=str)
        with self.lock:
            if model_key not in self.servers:
                self.servers[model_key] = self._start_servers(name, model_options)
            servers = self.servers[model_key]
            self.turn += 1
            return servers[self.turn % len(servers)]

    def _start_servers(self, name: str, options: DubOptions) -> list[tuple[Any, tuple[str, bool]]]:
        gpus = int(self.ray.cluster_resources().get("GPU", 0))
        actor = self.ray.remote(num_gpus=1)(ModelServer) if gpus else self.ray.remote(num_cpus=1)(ModelServer)
        servers = [actor.remote(name, options) for _ in range(min(max(gpus, 1), self.max_servers))]
        return [(s, self.ray.get(s.describe.remote())) for s in servers]

    def interrupt(self) -> None:
        """Cancel the tasks in flight; their jobs end with KeyboardInterrupt. A running task
        unwinds its job (Ray raises KeyboardInterrupt in it), which removes what it had half
        written, and the call returns once all have; one still running after WORKER_STOP_GRACE_S
        is killed."""
        with self.lock:
            in_flight, self.in_flight, self.stopped = self.in_flight, {}, True
        for ref, outcome in in_flight.items():
            _settle(outcome, error=KeyboardInterrupt())   # first: the task's end is then no failure
            self.ray.cancel(ref)
        refs = list(in_flight)
        if not refs:
            return
        with _interrupts_ignored():
            _, unfinished = self.ray.wait(refs, num_returns=len(refs), timeout=WORKER_STOP_GRACE_S)
        for ref in unfinished:
            self.ray.cancel(ref, force=True)

    def close(self) -> None:   # tasks end on their own, and the cluster belongs to its operator
        pass


def open_dispatcher(ray: bool, address: str | None, jobs: int | None, concurrency: int,
                    retries: int = DEFAULT_RETRIES) -> LocalPool | RayCluster:
    """Local worker processes (`jobs`, else one per CPU core; at most `concurrency`), or the Ray
    cluster at `address` (or RAY_ADDRESS, else the one on this machine, started with `jobs` CPUs
    if none runs).

    Raises:
        BackendUnavailable: ray asked for but not installed, or its cluster cannot be reached.
    """
    if ray:
        _quiet_ray_auth_notice()
        return RayCluster(connect_ray(address, jobs), retries, concurrency)
    return LocalPool(max(1, min(jobs or os.cpu_count() or 1, concurrency)), retries)
