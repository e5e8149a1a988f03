"""Jobs as tasks on a Ray cluster (`dub batch --ray`, `dub watch --ray`), with the guarantees of
`dubber.executors`: each job is a Ray task with one CPU; Ray reruns a task whose worker died. Every
node must have this package installed and reach the inputs, the outputs and the ledger at the
same paths (a shared file system). With the audiostory backend, the model is loaded once per GPU
by a long-lived actor (`num_gpus=1`) that renders the cues of every job; the audio comes back
through Ray's object store.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import threading
from concurrent.futures import Future
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from .errors import BackendUnavailable, one_line
from .job_futures import WORKER_STOP_GRACE_S, internal_error, interrupts_ignored, settle
from .jobs import DEFAULT_RETRIES, Job, JobOutcome, after_worker_died, run_job
from .options import DubOptions
from .types import ProgressFn, no_progress

RAY_INSTALL_HINT = "--ray needs the ray package; install it with pip install 'dubber[cluster]'."
RAY_CONNECT_TIMEOUT_S = 5.0   # a cluster address that does not answer a TCP connection by then is unreachable


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


def quiet_ray_auth_notice() -> None:
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
            settle(outcome, error=KeyboardInterrupt())
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
            settle(outcome, attempt.result())
        except Exception as err:   # a bug in the job, or its worker died more than `retries` times
            if not outcome.done():   # else cancelled by an interrupt
                settle(outcome, after_worker_died(job, self.retries) or internal_error(job, err))

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
            settle(outcome, error=KeyboardInterrupt())   # first: the task's end is then no failure
            self.ray.cancel(ref)
        refs = list(in_flight)
        if not refs:
            return
        with interrupts_ignored():
            _, unfinished = self.ray.wait(refs, num_returns=len(refs), timeout=WORKER_STOP_GRACE_S)
        for ref in unfinished:
            self.ray.cancel(ref, force=True)

    def close(self) -> None:   # tasks end on their own, and the cluster belongs to its operator
        pass
