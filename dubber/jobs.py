"""One job of the batch machinery: what it is, its ledger record, and running it.

A job is one input dubbed to one output by the whole `dub` pipeline (`dubber.api.dub`). Its
record lives in `<ledger root>/.dub-batch/<key>.json`, keyed by the input's content fingerprint,
the output path and every setting that shapes the output: `running` (with the host, process id
and start time) before any work, `done` (with its outputs) after the last file is committed, or
`failed` with its reason. An attempt whose worker a local pool stopped because another of its
workers died is `spared`: it does not count against the job's retries. Both `dub batch` and the watch folder make jobs; `dubber.executors`
runs them, on local worker processes or on Ray.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from .errors import DubError, is_user_error, one_line
from .options import DubOptions

log = logging.getLogger("dubber.batch")   # one voice for the batch machinery in every log

LEDGER_DIR = ".dub-batch"
LEDGER_SCHEMA = "dubber.batch-job/1"
DEFAULT_RETRIES = 2          # extra attempts for a job whose worker died
DEATH_SETTLE_S = 0.3         # a worker still alive this long after its pool broke is not the one that died
# Settings that change where or whether files are read, not what a job writes: not part of its key.
_KEYLESS_SETTINGS = ("force", "cache_dir", "use_cache")


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
    """What became of one input: status "done", "skipped" (done by an earlier run), "failed", or
    "interrupted" (a batch stopped before it finished the job); a failure's or an interrupted
    job's `reason` (one sentence) and `error` (the name of its kind). `attempts` counts the
    attempts started, `spared` those of them stopped because another worker died."""

    input: str
    output: str
    status: str
    reason: str = ""
    attempts: int = 0
    seconds: float = 0.0
    error: str = ""
    spared: int = 0


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

    def damaged(self, job: Job) -> bool:
        """Whether the job's record is there but cannot be read as one (cut short, edited)."""
        return self.path(job.key).is_file() and self.read(job.key) is None

    def write(self, job: Job, status: str, **fields: Any) -> dict[str, Any]:
        from .atomic import atomic_write_text, write_error

        record = {"schema": LEDGER_SCHEMA, "key": job.key, "input": job.input, "output": job.output,
                  "status": status, "run_id": job.run_id, **fields}
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise write_error(err, self.path(job.key)) from err
        atomic_write_text(self.path(job.key), json.dumps(record, indent=1) + "\n")
        return record

    def finished(self, job: Job) -> bool:
        """Whether an earlier run completed this job, its output is still the file it wrote
        (another run with --overwrite, or a hand, may have put another file there since), and
        every other file it wrote is still there (a manifest, timeline or stem deleted since
        makes the job one to do again: `leftovers`)."""
        record = self.read(job.key)
        if not (record and record.get("status") == "done") or not _output_is_its_own(record, job.output):
            return False
        return all(Path(path).is_file() for path in _recorded_files(record))

    def leftovers(self, job: Job) -> list[Path]:
        """The files an earlier, completed run of this job wrote that are still there, when some
        of them are gone and its video, if there, is still the one it wrote: the job is done
        again whole, and these are its own to replace. Empty otherwise (a file someone put in
        the output's place since is never this job's)."""
        record = self.read(job.key)
        if not (record and record.get("status") == "done"):
            return []
        files = [Path(path) for path in _recorded_files(record)]
        there = [path for path in files if path.is_file()]
        if len(there) == len(files) or (Path(job.output).exists() and not _output_is_its_own(record, job.output)):
            return []
        return there

    def attempts(self, job: Job) -> int:
        """Attempts started in this batch run (an earlier run's count starts over)."""
        record = self.read(job.key)
        return int(record.get("attempt", 0)) if record and record.get("run_id") == job.run_id else 0

    def spared(self, job: Job) -> int:
        """Attempts of this batch run stopped because another worker died (`spare_if_running`)."""
        record = self.read(job.key)
        return int(record.get("spared", 0)) if record and record.get("run_id") == job.run_id else 0


def _output_is_its_own(record: dict[str, Any], output: str) -> bool:
    """Whether the job's output is there and still the file its record says it wrote (a record
    from before states were kept trusts any file there)."""
    try:
        state = output_state(output)
    except OSError:
        return False
    written = record.get("output_state")
    return written is None or list(written) == state


def _recorded_files(record: dict[str, Any]) -> list[str]:
    outputs = record.get("outputs")
    return [str(path) for path in outputs.values() if isinstance(path, str)] if isinstance(outputs, dict) else []


def output_state(path: str | os.PathLike) -> list[int]:
    """[size, mtime_ns] of a job's output: what tells the file a job wrote from one put there later."""
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns]


def output_settings(options: DubOptions) -> dict[str, Any]:
    """Every setting that shapes what a job writes: the settings part of a ledger key. Whether an
    existing file may be replaced does not: a run with --overwrite and the plain run after it are
    the same jobs, finished once. It is keyed as off, as ledgers written before it was set aside
    hold it, so their finished jobs stay finished."""
    settings = {k: v for k, v in asdict(options).items() if k not in _KEYLESS_SETTINGS}
    return {**settings, "overwrite": False}


def job_key(input_path: Path, output: Path, options: DubOptions) -> str:
    """Ledger key: the input's content fingerprint, the output path and every output-shaping setting."""
    from .cache import fingerprint, settings_key

    return settings_key("batch-job", fingerprint(input_path, full=options.full_hash), str(output),
                        output_settings(options))


# ----------------------------------------------------------------------------- one job (worker side)

def _remove_partial_outputs(job: Job, options: DubOptions, since_s: float) -> None:
    """Delete the files an attempt that died wrote (modified after it started): this job's own,
    never a file that was there before the batch.

    The attempt may have died while publishing its files, some renamed into place and some not:
    its commit is completed first (`plan_destinations`), and every file it was publishing goes,
    as does every file its manifest lists. Leaving one stem behind would have the next attempt
    refuse it as another dub's (no manifest lists it any more), and the job never finish."""
    from .destinations import earlier_outputs, plan_destinations

    dest = plan_destinations(Path(job.input), job.output, replace(options, force=True))
    for path in sorted({*dest.files(), *dest.replaceable, *earlier_outputs(dest)}):
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
    for path in ledger.leftovers(job):   # a finished dub with a file gone since: made again whole
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            log.info("removed %s, a file of %s's earlier dub, which is made again whole", path, Path(job.input).name)
    attempt, spared = ledger.attempts(job) + 1, ledger.spared(job)
    start = time.time()
    worker = {"attempt": attempt, "spared": spared, "host": socket.gethostname(), "pid": os.getpid(),
              "started_at": start}
    try:
        # Inside the guard: the ledger shares OUTDIR's disk, and a full or read-only one is the
        # user's to fix, like any other write of the job.
        ledger.write(job, "running", **worker)
        result = dub(job.input, job.output, options, backend=backend)
    except Exception as err:
        if not is_user_error(err):
            raise
        reason = one_line(err)
        with contextlib.suppress(DubError):   # the reason still reaches the summary
            ledger.write(job, "failed", **worker, reason=reason, finished_at=time.time())
        return JobOutcome(job.input, job.output, "failed", reason, attempt, time.time() - start, type(err).__name__,
                          spared)
    ledger.write(job, "done", **worker, outputs=dict(result.outputs), output_state=output_state(job.output),
                 finished_at=time.time(), backend=result.backend, cues=result.cues)
    return JobOutcome(job.input, job.output, "done", "", attempt, time.time() - start, spared=spared)


def spare_if_running(job: Job) -> bool:
    """After a local pool broke: whether the worker running this job's attempt is still alive,
    and if so, that attempt is spared (it does not count against the job's retries). A pool
    breaks when one of its workers dies, and then stops all the others, each with whatever job
    it was running: only the job whose worker died first had anything to do with it. Called
    while the broken pool has not yet stopped the others, so the dead worker is the one gone."""
    ledger = job.ledger
    record = ledger.read(job.key)
    if not (record and record.get("status") == "running" and record.get("run_id") == job.run_id
            and record.get("host") == socket.gethostname() and isinstance(record.get("pid"), int)
            and record["pid"] != os.getpid() and _stays_alive(record["pid"])):
        return False
    fields = {k: v for k, v in record.items() if k not in ("schema", "key", "input", "output", "status", "run_id")}
    ledger.write(job, "running", **{**fields, "spared": int(record.get("spared", 0)) + 1})
    return True


def _stays_alive(pid: int, settle_s: float = DEATH_SETTLE_S) -> bool:
    """Whether process `pid` is alive and still is `settle_s` later. A worker killed a moment ago
    may not be done dying when its pool notices (its pipes are closed before it turns into a
    zombie), and would read as alive at first glance."""
    from .atomic import pid_alive

    deadline = time.monotonic() + settle_s
    while pid_alive(pid):
        if time.monotonic() >= deadline:
            return True
        time.sleep(0.02)
    return False


def after_worker_died(job: Job, retries: int, reason: str | None = None) -> JobOutcome | None:
    """After a worker running `job` died (or was interrupted from outside): None to run it
    again, or its failed outcome when that happened more than `retries` times in this run.
    `reason` is the failure's sentence, with `{attempts}` for the count."""
    ledger = job.ledger
    attempts, spared = ledger.attempts(job), ledger.spared(job)
    if attempts - spared <= retries:
        return None
    reason = (reason or "the worker running it stopped {attempts} times (killed, or out of memory); "
                        "see the log of its host.").format(attempts=attempts - spared)
    ledger.write(job, "failed", attempt=attempts, spared=spared, reason=reason, finished_at=time.time())
    return JobOutcome(job.input, job.output, "failed", reason, attempts, error="WorkerDied", spared=spared)
