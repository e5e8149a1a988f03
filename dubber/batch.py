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

Where jobs run is `dubber.executors`: local worker processes (`--jobs N`) or tasks on a Ray
cluster (`--ray [ADDRESS]`), the same machinery the watch folder hands its jobs to.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from concurrent.futures import as_completed
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from .errors import DubError, InputError, OutputError, is_user_error, one_line
from .options import DubOptions, check_writable_folder, default_output_path
from .types import ProgressFn, no_progress

log = logging.getLogger(__name__)

LEDGER_DIR = ".dub-batch"
LEDGER_SCHEMA = "dubber.batch-job/1"
DEFAULT_RETRIES = 2          # extra attempts for a job whose worker died
# Settings that change where or whether files are read, not what a job writes: not part of its key.
_KEYLESS_SETTINGS = ("force", "cache_dir", "use_cache")


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
    """One dub to run: absolute paths, the ledger key, the run it belongs to and the folder
    holding its ledger (`<ledger_root>/.dub-batch`; empty: the output's folder)."""

    input: str
    output: str
    key: str
    run_id: str
    ledger_root: str = ""

    @property
    def ledger(self) -> "Ledger":
        return Ledger(self.ledger_root or Path(self.output).parent)


@dataclass(frozen=True)
class JobOutcome:
    """What became of one input: status "done", "skipped" (done by an earlier run) or "failed";
    a failure's `reason` (one sentence) and `error` (the name of its kind)."""

    input: str
    output: str
    status: str
    reason: str = ""
    attempts: int = 0
    seconds: float = 0.0
    error: str = ""


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


def output_settings(options: DubOptions) -> dict[str, Any]:
    """Every setting that shapes what a job writes: the settings part of a ledger key."""
    return {k: v for k, v in asdict(options).items() if k not in _KEYLESS_SETTINGS}


def job_key(input_path: Path, output: Path, options: DubOptions) -> str:
    """Ledger key: the input's content fingerprint, the output path and every output-shaping setting."""
    from .cache import fingerprint, settings_key

    return settings_key("batch-job", fingerprint(input_path, full=options.full_hash), str(output),
                        output_settings(options))


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

    ledger = job.ledger
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
        return JobOutcome(job.input, job.output, "failed", reason, attempt, time.time() - start, type(err).__name__)
    ledger.write(job, "done", **worker, outputs=dict(result.outputs), finished_at=time.time(),
                 backend=result.backend, cues=result.cues)
    return JobOutcome(job.input, job.output, "done", "", attempt, time.time() - start)


def after_worker_died(job: Job, retries: int) -> JobOutcome | None:
    """After a worker running `job` died: None to run it again, or its failed outcome when its
    workers died more than `retries` times in this run."""
    ledger = job.ledger
    attempts = ledger.attempts(job)
    if attempts <= retries:
        return None
    reason = f"the worker running it stopped {attempts} times (killed, or out of memory); see the log of its host."
    ledger.write(job, "failed", attempt=attempts, reason=reason, finished_at=time.time())
    return JobOutcome(job.input, job.output, "failed", reason, attempts, error="WorkerDied")


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
        from .executors import require_ray

        require_ray()   # before any work: a missing package is the user's to fix
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
        _dispatch(todo, options, batch, report)
    order = [job.input for job in jobs] + [o.input for o in failed]
    return BatchResult(tuple(outcomes[i] for i in sorted(order, key=_input_order(inputs))))


def _dispatch(jobs: list[Job], options: DubOptions, batch: BatchOptions,
              report: Callable[[JobOutcome], None]) -> None:
    """Run `jobs` where `batch` says, reporting each outcome as it comes."""
    from .executors import open_dispatcher

    dispatcher = open_dispatcher(batch.ray, batch.ray_address, batch.jobs, len(jobs), batch.retries)
    try:
        for future in as_completed([dispatcher.submit(job, options) for job in jobs]):
            report(future.result())
    except KeyboardInterrupt:
        dispatcher.interrupt()   # the ledger keeps them running: the next run redoes them
        raise
    finally:
        dispatcher.close()


def _input_order(inputs: Sequence[str | os.PathLike]) -> Callable[[str], int]:
    """Sort key putting outcomes in the order the inputs were given."""
    position: dict[str, int] = {}
    for i, raw in enumerate(inputs):
        position.setdefault(str(Path(raw).expanduser().absolute()), i)
        position.setdefault(str(raw), i)
    return lambda name: position.get(name, len(position))
