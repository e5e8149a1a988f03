"""Watch-folder jobs: what one is (`WatchJob`), what may do it in the watcher (a processor), and
how the dubbing pipeline runs it on the batch machinery: the same executors as `dub batch`
(dubber.executors: local worker processes, or tasks on a Ray cluster), the same ledger and the
same worker-side job (dubber.jobs.run_job).

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
import os
import sys
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ..errors import DubError

if TYPE_CHECKING:
    from .settings import WatchSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WatchJob:
    """One claimed input. A processor writes everything into `staging` (an empty folder inside
    output/), naming the dubbed video `output_name`; the watcher renames the folder into place,
    first pointing the timelines and manifest written there at the final folder and at the
    input's place in done/ (see dubber.watch.relocate)."""

    source: Path
    original_name: str
    staging: Path
    output_name: str
    settings: WatchSettings
    sha256: str


Processor = Callable[[WatchJob], None]
Validator = Callable[[Path], Any]


def dub_processor(job: WatchJob) -> None:
    """The dubbing pipeline with the folder's settings, in this process (without a processor,
    the watcher runs the same dub on its worker processes or Ray cluster instead)."""
    from ..api import dub
    from .settings import dub_options

    dub(job.source, job.staging / job.output_name, dub_options(job.settings, job.staging / "stems"))


def probe_validator(path: Path) -> Any:
    """Refuse empty, truncated or non-video files before any work (the real probe)."""
    from ..api import probe

    return probe(path)


class JobFailed(DubError):
    """A dub that failed in its worker; the message is the worker's reason, `kind` its error's
    name, `job` its ledger job (None when it never reached a worker)."""

    def __init__(self, reason: str, kind: str = "", job: Any = None) -> None:
        super().__init__(reason)
        self.kind = kind
        self.job = job


class WatchDispatch:
    """Runs the dubs of one watcher on an executor (dubber.executors); `jobs` of them at once."""

    def __init__(self, dispatcher: Any, jobs: int, ledger_root: Path) -> None:
        self.dispatcher, self.jobs, self.ledger_root = dispatcher, jobs, ledger_root
        self.run_id = uuid.uuid4().hex

    def run(self, source: Path, output: Path, sha256: str, options: Any) -> Any:
        """Dub `source` into `output` in a worker; returns its ledger job when it is written.

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
            raise JobFailed(outcome.reason, outcome.error, job)
        return job

    def filed(self, job: Any, moves: Sequence[tuple[Path, Path | None]]) -> None:
        """The job's files were moved: after a dub, the staging folder to its output folder and the
        claimed input to done/; after a failure, the input to failed/ (a move to None: the staging
        folder, removed). Its `done` or `failed` record then names them where they are now, as its
        timelines do. A record that cannot be rewritten only keeps the old paths."""
        from ..jobs import Ledger

        ledger = Ledger(job.ledger_root)
        record = ledger.read(job.key)
        status = record.get("status") if record is not None else None
        if status not in ("done", "failed"):
            return
        fields = {k: v for k, v in record.items() if k not in ("schema", "key", "input", "output", "status", "run_id")}
        if isinstance(fields.get("outputs"), dict):
            fields["outputs"] = {k: _moved(v, moves) for k, v in fields["outputs"].items()}
        if isinstance(fields.get("reason"), str):   # a worker's sentence names the file it was given
            fields["reason"] = _moved_in_text(fields["reason"], moves)
        filed = replace(job, input=_moved(job.input, moves), output=_moved(job.output, moves))
        try:
            ledger.write(filed, status, **fields)
        except (DubError, OSError) as err:
            log.warning("the job record %s still names where its files were before they moved (%s)",
                        ledger.path(job.key), err)

    def interrupt(self) -> None:
        """Stop the dubs in flight; their files stay in processing/ for the next start."""
        self.dispatcher.interrupt()

    def close(self) -> None:
        self.dispatcher.close()


def _spellings(old: Path) -> list[str]:
    """`old` as given and resolved (writers may name paths resolved), the longer first, so that
    one spelling is never replaced inside the other."""
    return sorted({str(old), str(old.resolve())}, key=len, reverse=True)


def _moved(path: Any, moves: Sequence[tuple[Path, Path | None]]) -> Any:
    """`path` (a string) where `moves` put it ("" for one in a folder that is gone); anything else
    as it is."""
    if not isinstance(path, str):
        return path
    for old, new in moves:
        for before in _spellings(old):
            if path == before or path.startswith(before + os.sep):
                return "" if new is None else str(new) + path[len(before):]
    return path


def _moved_in_text(text: str, moves: Sequence[tuple[Path, Path | None]]) -> str:
    """`text` (a sentence) with each path that `moves` carry written where it is now; a file in a
    folder that is gone is named by its place in that folder."""
    import re

    for old, new in moves:
        for before in _spellings(old):
            if new is None:
                text = text.replace(before + os.sep, "")
                continue
            # The whole path only: not the start of a longer name, nor the end of a longer path.
            text = re.sub(rf"(?<![\w.-]){re.escape(before)}(?!\w|[.-]\w)", lambda _: str(new), text)
    return text


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
