"""Many videos at once: `dub batch INPUT... -o OUTDIR`, on a local process pool or a Ray cluster.

Every input is one job: the whole `dub` pipeline (probe, analysis, plan, render, mix, mux, export)
writing `OUTDIR/<input stem>.dub.mp4` and its manifest, each file atomically (`dubber.api.dub`).

Exactly once, through a ledger. `OUTDIR/.dub-batch/<key>.json` records each job, keyed by the
input's content fingerprint (the stage cache's: size, date and both ends, or every byte with
--full-hash) and every setting that shapes the output. A job is marked `running` (with the host,
process id and start time) before any work and `done` (with its outputs) after the last file is
committed. A rerun skips a done job whose output is still there and reruns every other; a job
whose worker died (killed, out of memory) is run again after the files the dead attempt wrote are
removed, and the stage cache makes the result identical to an undisturbed run. A bad input fails
alone, with its reason; the batch goes on and ends with a summary.

Where jobs run:
- locally (default): `--jobs N` worker processes (default: one per CPU core, at most the number of
  jobs). A worker that dies breaks the pool; it is rebuilt and the unfinished jobs run again.
- on Ray (`--ray [ADDRESS]`, or RAY_ADDRESS): each job is a Ray task (one CPU); Ray reruns a task
  whose worker died. `--ray` alone joins the cluster already running on this machine, or starts
  one. Every node must have this package installed and must reach the inputs and OUTDIR at the
  same paths (a shared file system); the ledger lives in OUTDIR, so any node can read it. With
  the audiostory backend, the model is loaded once per GPU by a long-lived actor (`num_gpus=1`)
  that renders the cues of every job; rendered audio returns through Ray's object store.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from .errors import BackendUnavailable, DubError, InputError, OutputError, is_user_error, one_line
from .options import DubOptions, check_writable_folder, default_output_path
from .types import ProgressFn, no_progress

log = logging.getLogger(__name__)

LEDGER_DIR = ".dub-batch"
LEDGER_SCHEMA = "dubber.batch-job/1"
DEFAULT_RETRIES = 2          # extra attempts for a job whose worker died
# Settings that change where or whether files are read, not what a job writes: not part of its key.
_KEYLESS_SETTINGS = ("force", "cache_dir", "use_cache")
RAY_INSTALL_HINT = "--ray needs the ray package; install it with pip install 'dubber[cluster]'."


@dataclass(frozen=True)
class BatchOptions:
    """How to run a batch.

    Attributes:
        out_dir: folder of every output (reachable at the same path from every node on Ray).
        jobs: local worker processes (None: one per CPU core); on Ray, the CPUs of a cluster
            this run starts itself (a cluster joined keeps its own).
        ray: run the jobs as tasks on a Ray cluster.
        ray_address: the cluster to join ("host:port"); None: RAY_ADDRESS, else the local one.
        retries: extra attempts for a job whose worker died.
    """

    out_dir: str
    jobs: int | None = None
    ray: bool = False
    ray_address: str | None = None
    retries: int = DEFAULT_RETRIES

    def __post_init__(self) -> None:
        if self.jobs is not None and self.jobs < 1:
            raise InputError(f"--jobs must be 1 or more, got {self.jobs}.")
        if self.retries < 0:
            raise ValueError(f"retries must be zero or more, got {self.retries}")


@dataclass(frozen=True)
class Job:
    """One input of the batch: absolute paths, the ledger key and the batch run it belongs to."""

    input: str
    output: str
    key: str
    run_id: str


@dataclass(frozen=True)
class JobOutcome:
    """What became of one input: status "done", "skipped" (done by an earlier run) or "failed"."""

    input: str
    output: str
    status: str
    reason: str = ""
    attempts: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class BatchResult:
    """Every input's outcome, in the order given."""

    outcomes: tuple[JobOutcome, ...]

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def exit_code(self) -> int:
        """0 when every job is done or skipped, else 2 (a user can fix what failed)."""
        return 2 if self.count("failed") else 0

    def summary(self) -> str:
        return (f"{len(self.outcomes)} inputs: {self.count('done')} dubbed, {self.count('skipped')} already done, "
                f"{self.count('failed')} failed")


# ----------------------------------------------------------------------------- the ledger

class Ledger:
    """Per-job records in OUTDIR/.dub-batch, one JSON file each, written atomically (a record is
    small, and one file per job lets workers on any node write without locking)."""

    def __init__(self, out_dir: str | os.PathLike) -> None:
        self.folder = Path(out_dir) / LEDGER_DIR

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def read(self, key: str) -> dict[str, Any] | None:
        try:
            record = json.loads(self.path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) and record.get("schema") == LEDGER_SCHEMA else None

    def write(self, job: Job, status: str, **fields: Any) -> dict[str, Any]:
        from .atomic import atomic_write_text

        record = {"schema": LEDGER_SCHEMA, "key": job.key, "input": job.input, "output": job.output,
                  "status": status, "run_id": job.run_id, **fields}
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path(job.key), json.dumps(record, indent=1) + "\n")
        return record

    def finished(self, job: Job) -> bool:
        """Whether an earlier run completed this job and its output is still in place."""
        record = self.read(job.key)
        return bool(record and record.get("status") == "done" and Path(job.output).is_file())

    def attempts(self, job: Job) -> int:
        """Attempts started in this batch run (an earlier run's count starts over)."""
        record = self.read(job.key)
        return int(record.get("attempt", 0)) if record and record.get("run_id") == job.run_id else 0


def job_key(input_path: Path, output: Path, options: DubOptions) -> str:
    """Ledger key: the input's content fingerprint, the output path and every output-shaping setting."""
    from .cache import fingerprint, settings_key

    settings = {k: v for k, v in asdict(options).items() if k not in _KEYLESS_SETTINGS}
    return settings_key("batch-job", fingerprint(input_path, full=options.full_hash), str(output), settings)


# ----------------------------------------------------------------------------- planning

def plan_jobs(inputs: Sequence[str | os.PathLike], out_dir: Path, options: DubOptions,
              run_id: str) -> tuple[list[Job], list[JobOutcome]]:
    """One Job per usable input, and a failed outcome for each input that cannot be read.

    Raises:
        InputError: two inputs would write the same output file.
    """
    from .options import check_input_file

    jobs, failed, seen = [], [], {}
    for raw in inputs:
        output = (out_dir / default_output_path(Path(raw)).name).absolute()
        if output in seen:
            raise InputError(f"{raw} and {seen[output]} would both be dubbed to {output}; "
                             "rename one or run them as separate batches.")
        seen[output] = raw
        try:
            path = check_input_file(raw).absolute()
            jobs.append(Job(str(path), str(output), job_key(path, output, options), run_id))
        except DubError as err:
            failed.append(JobOutcome(str(raw), str(output), "failed", one_line(err)))
    return jobs, failed


# ----------------------------------------------------------------------------- one job (worker side)

def _remove_partial_outputs(job: Job, options: DubOptions, since_s: float) -> None:
    """Delete the files an attempt that died wrote (modified after it started): this job's own,
    never a file that was there before the batch."""
    from .api import plan_destinations

    dest = plan_destinations(Path(job.input), job.output, replace(options, force=True))
    for path in dest.files():
        try:
            if path.stat().st_mtime >= since_s:
                path.unlink()
                log.info("removed %s, left by an attempt that did not finish", path)
        except FileNotFoundError:
            pass


def run_job(job: Job, options: DubOptions, backend: Any = None) -> JobOutcome:
    """Dub one input, recording it in the ledger. A user error (bad input, existing output) is
    returned as a failed outcome; a bug raises. `backend` is an already-built backend to render
    with (a model server on Ray), None to build one here."""
    from .api import dub

    ledger = Ledger(Path(job.output).parent)
    previous = ledger.read(job.key)
    if previous and previous.get("status") == "running":
        _remove_partial_outputs(job, options, float(previous.get("started_at", 0.0)))
    attempt = ledger.attempts(job) + 1
    start = time.time()
    worker = {"attempt": attempt, "host": socket.gethostname(), "pid": os.getpid(), "started_at": start}
    ledger.write(job, "running", **worker)
    try:
        result = dub(job.input, job.output, options, backend=backend)
    except Exception as err:
        if not is_user_error(err):
            raise
        reason = one_line(err)
        ledger.write(job, "failed", **worker, reason=reason, finished_at=time.time())
        return JobOutcome(job.input, job.output, "failed", reason, attempt, time.time() - start)
    ledger.write(job, "done", **worker, outputs=dict(result.outputs), finished_at=time.time(),
                 backend=result.backend, cues=result.cues)
    return JobOutcome(job.input, job.output, "done", "", attempt, time.time() - start)


def _died(job: Job, ledger: Ledger, retries: int) -> JobOutcome | None:
    """A failed outcome when the job's workers died more often than allowed, else None (retry)."""
    attempts = ledger.attempts(job)
    if attempts <= retries:
        return None
    reason = f"the worker running it stopped {attempts} times (killed, or out of memory); see the log of its host."
    ledger.write(job, "failed", attempt=attempts, reason=reason, finished_at=time.time())
    return JobOutcome(job.input, job.output, "failed", reason, attempts)


# ----------------------------------------------------------------------------- local pool

def _run_local(jobs: list[Job], options: DubOptions, batch: BatchOptions,
               report: Callable[[JobOutcome], None]) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    ledger = Ledger(batch.out_dir)
    workers = min(batch.jobs or os.cpu_count() or 1, len(jobs))
    pending = list(jobs)
    while pending:
        broken = False
        # spawn: a worker starts clean (no copied threads or locks from the driver).
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(run_job, job, options): job for job in pending}
            for future in as_completed(futures):
                try:
                    outcome = future.result()
                except BrokenProcessPool:
                    broken = True
                    continue
                except Exception as err:   # a bug: keep the traceback in the log, go on with the rest
                    log.error("dubbing %s failed", futures[future].input, exc_info=err)
                    outcome = JobOutcome(futures[future].input, futures[future].output, "failed",
                                         f"internal error: {one_line(err)}")
                pending.remove(futures[future])
                report(outcome)
        if not broken:
            break
        log.warning("a worker process died; %d unfinished jobs run again", len(pending))
        for job in list(pending):
            if (outcome := _died(job, ledger, batch.retries)) is not None:
                pending.remove(job)
                report(outcome)


# ----------------------------------------------------------------------------- Ray

def _require_ray() -> None:
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
    _require_ray()
    address = address or os.environ.get("RAY_ADDRESS") or None
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


def _ray_token_available() -> bool:
    """Whether this machine holds a Ray cluster token (as Ray looks for one)."""
    if os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return True
    return (Path.home() / ".ray" / "auth_token").is_file()


class ModelServer:
    """Holds one loaded backend (the model, loaded once) and renders plans for every job; on Ray
    it is an actor with one GPU."""

    def __init__(self, backend_name: str, options: DubOptions) -> None:
        from .api import _build_backend

        self.backend = _build_backend(backend_name, options)

    def describe(self) -> tuple[str, bool]:
        return self.backend.NAME, bool(getattr(self.backend, "RENDERS_WHOLE_TIMELINE", False))

    def render(self, plan: Any, analysis: Any) -> Any:
        return self.backend.render(plan, analysis)


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


def _ray_job(job: Job, options: DubOptions, server: Any = None, describe: tuple[str, bool] | None = None):
    backend = RemoteBackend(server, *describe) if server is not None else None
    return run_job(job, options, backend)


def _model_servers(ray: Any, options: DubOptions, count: int) -> list[tuple[Any, tuple[str, bool]]]:
    """One ModelServer actor per GPU of the cluster when the backend is a model (on a cluster
    without GPUs, one on a CPU: the tiny test models run there); none for CPU backends."""
    from .api import resolve_backend

    name, _ = resolve_backend(options)
    if name != "audiostory":
        return []
    gpus = int(ray.cluster_resources().get("GPU", 0))
    actor = ray.remote(num_gpus=1)(ModelServer) if gpus else ray.remote(num_cpus=1)(ModelServer)
    servers = [actor.remote(name, options) for _ in range(min(max(gpus, 1), count))]
    return [(s, ray.get(s.describe.remote())) for s in servers]


def _run_ray(jobs: list[Job], options: DubOptions, batch: BatchOptions,
             report: Callable[[JobOutcome], None]) -> None:
    ray = connect_ray(batch.ray_address, batch.jobs)
    servers = _model_servers(ray, options, len(jobs))
    task = ray.remote(num_cpus=1, max_retries=batch.retries, retry_exceptions=False)(_ray_job)
    refs = {}
    for i, job in enumerate(jobs):
        server, describe = servers[i % len(servers)] if servers else (None, None)
        refs[task.remote(job, options, server, describe)] = job
    pending = list(refs)
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        job = refs[ready[0]]
        try:
            outcome = ray.get(ready[0])
        except Exception as err:   # a bug in the job, or its worker died more than `retries` times
            log.error("dubbing %s failed", job.input, exc_info=err)
            outcome = _died(job, Ledger(batch.out_dir), batch.retries) or JobOutcome(
                job.input, job.output, "failed", f"internal error: {one_line(err)}")
        report(outcome)


# ----------------------------------------------------------------------------- the batch

def run_batch(inputs: Sequence[str | os.PathLike], batch: BatchOptions, options: DubOptions = DubOptions(),
              progress: ProgressFn | None = None) -> BatchResult:
    """Dub every input into `batch.out_dir`, skipping those an earlier run finished.

    Args:
        inputs: video files; each becomes `<out_dir>/<stem>.dub.mp4` (.mov/.mkv kept).
        batch: where and how the jobs run (local pool or Ray).
        options: the dub settings of every job (stems_dir is not allowed: each job's stems go
            next to its output with `timeline`).
        progress: called as progress("batch", finished, total) after each input.

    Returns:
        BatchResult with one outcome per input, in the order given.

    Raises:
        InputError / OutputError: no inputs, two inputs with one output name, OUTDIR not writable.
        BackendUnavailable: --ray without ray installed, or an unreachable cluster.
    """
    progress = progress or no_progress
    if not inputs:
        raise InputError("Give at least one video to dub.")
    if options.stems_dir is not None:
        raise InputError("--stems names one folder, which every job of a batch would share; "
                         "use --timeline to give each output its own stems folder.")
    out_dir = Path(batch.out_dir).expanduser().absolute()
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"The batch output {out_dir} is a file; give a folder with -o.")
    check_writable_folder(out_dir, what="batch output")
    if batch.ray:
        _require_ray()   # before any work: a missing package is the user's to fix
    out_dir.mkdir(parents=True, exist_ok=True)
    batch = replace(batch, out_dir=str(out_dir))
    jobs, failed = plan_jobs(inputs, out_dir, options, uuid.uuid4().hex)
    ledger = Ledger(out_dir)
    outcomes = {o.input: o for o in failed}
    todo = []
    for job in jobs:
        if not options.force and ledger.finished(job):
            outcomes[job.input] = JobOutcome(job.input, job.output, "skipped")
        else:
            todo.append(job)
    total = len(jobs) + len(failed)
    progress("batch", len(outcomes), total)

    def report(outcome: JobOutcome) -> None:
        outcomes[outcome.input] = outcome
        if outcome.status == "failed":
            log.warning("%s: %s", outcome.input, outcome.reason)
        progress("batch", len(outcomes), total)

    if todo:
        (_run_ray if batch.ray else _run_local)(todo, options, batch, report)
    order = [job.input for job in jobs] + [o.input for o in failed]
    return BatchResult(tuple(outcomes[i] for i in sorted(order, key=_input_order(inputs))))


def _input_order(inputs: Sequence[str | os.PathLike]) -> Callable[[str], int]:
    """Sort key putting outcomes in the order the inputs were given."""
    position: dict[str, int] = {}
    for i, raw in enumerate(inputs):
        position.setdefault(str(Path(raw).expanduser().absolute()), i)
        position.setdefault(str(raw), i)
    return lambda name: position.get(name, len(position))
