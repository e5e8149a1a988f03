"""Watch-folder jobs on the batch machinery: the same executors as `dub batch` (dubber.executors:
local worker processes, or tasks on a Ray cluster), the same ledger and the same worker-side job
(dubber.jobs.run_job).

The watcher stays the only one to move files: it claims a file, hashes it, and hands the dub to
an executor, which runs it in a worker process (or on any node of a cluster) writing into the
job's staging folder; the watcher then renames the result into place and moves the original on.
The ledger (ROOT/logs/.dub-batch/, one record per job, keyed by content and settings) holds what
the journal does not: which attempt runs where (host, process) and how often a job's worker died,
so that a job whose worker died is retried (up to dubber.jobs.DEFAULT_RETRIES times) from a clean
staging folder. The journal keeps the folder's story: claims, duplicates, failures, and what was
dubbed into which output folder, which is what a restart and a duplicate drop consult.
"""
from __future__ import annotations

import logging
import sys
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import DubError

log = logging.getLogger(__name__)


class JobFailed(DubError):
    """A dub that failed in its worker; the message is the worker's reason, `kind` its error's name."""

    def __init__(self, reason: str, kind: str = "") -> None:
        super().__init__(reason)
        self.kind = kind


class WatchDispatch:
    """Runs the dubs of one watcher on an executor (dubber.executors); `jobs` of them at once."""

    def __init__(self, dispatcher: Any, jobs: int, ledger_root: Path) -> None:
        self.dispatcher, self.jobs, self.ledger_root = dispatcher, jobs, ledger_root
        self.run_id = uuid.uuid4().hex

    def run(self, source: Path, output: Path, sha256: str, options: Any) -> None:
        """Dub `source` into `output` in a worker; returns when it is written.

        Raises:
            JobFailed: the dub failed (its reason), or its worker died more often than allowed.
        """
        from ..jobs import Job, output_settings
        from ..cache import settings_key

        # The content's hash (already taken) stands for the input; the stems folder is inside
        # this job's staging folder, so only whether stems are written belongs to the key.
        settings = output_settings(replace(options, stems_dir="stems" if options.stems_dir else None))
        key = settings_key("watch-job", sha256, output.name, settings)
        job = Job(str(source), str(output), key, self.run_id, str(self.ledger_root))
        outcome = self.dispatcher.submit(job, options).result()
        if outcome.status != "done":
            raise JobFailed(outcome.reason, outcome.error)

    def interrupt(self) -> None:
        """Stop the dubs in flight; their files stay in processing/ for the next start."""
        self.dispatcher.interrupt()

    def close(self) -> None:
        self.dispatcher.close()


def open_dispatch(ledger_root: Path, jobs: int | None, default_jobs: int, ray: bool,
                  ray_address: str | None) -> WatchDispatch:
    """Local worker processes (`jobs`, else `default_jobs`), or the Ray cluster at `ray_address`
    (or RAY_ADDRESS, else the one on this machine, started if needed), with `jobs` (else one per
    CPU of the cluster) in flight.

    Raises:
        BackendUnavailable: --ray without ray installed, or an unreachable cluster.
    """
    from ..executors import open_dispatcher

    if not ray:
        count = jobs or default_jobs
        dispatcher = open_dispatcher(False, None, count, count)
    else:   # by default as many files at once as the cluster has CPUs, a model server per GPU
        dispatcher = open_dispatcher(True, ray_address, jobs, jobs or sys.maxsize)
        count = jobs or dispatcher.cpus()
    log.info("dubbing up to %d files at once on %s", count, "the Ray cluster" if ray else "local worker processes")
    return WatchDispatch(dispatcher, count, ledger_root)
