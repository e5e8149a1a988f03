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
alone, with its reason; the batch goes on and ends with a summary. A job that ran again because
its worker stopped is said in one line as its outcome comes.

One batch at a time per OUTDIR: a batch holds a lock on `.dub-batch/batch.lock` while it works,
and a second one started on the same OUTDIR is refused before it touches any job. The OS lets go
of the lock when its holder ends, killed included, so a batch that died never blocks the next.

A folder given as an input stands for the videos in it, found as the watch folder finds them in a
folder dropped into its inbox: at any depth, by name, temporary names left alone; each is dubbed
in name order, a video in a subfolder named after its place there ("Reel 3 - shot 12.dub.mp4").
A dub made earlier in that folder (a video its manifest, `<name>.json` beside it, names as the
dub's own video) is left alone, so dubbing a folder twice never dubs a dub.

One job and its ledger record are `dubber.jobs`; where jobs run is `dubber.executors`: local
worker processes (`--jobs N`) or tasks on a Ray cluster (`--ray [ADDRESS]`), the same machinery
the watch folder hands its jobs to.
"""
from __future__ import annotations

import contextlib
import logging
import os
import uuid
from concurrent.futures import as_completed
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator, Sequence

from .errors import DubError, InputError, OutputError, one_line
from .executors import open_dispatcher
from .ray_cluster import check_reachable, require_ray
from .jobs import DEFAULT_RETRIES, LEDGER_DIR, Job, JobOutcome, Ledger, job_key
from .options import INPUT_VIDEO_SUFFIXES, DubOptions, check_writable_folder, default_output_path
from .types import ProgressFn, no_progress

log = logging.getLogger(__name__)

# Names of the files a folder holds besides its videos that its one line lists, at most.
LISTED_OTHER_FILES = 5
MANIFEST_MAX_BYTES = 64 << 20  # a larger .json beside a video is no manifest of ours
BATCH_LOCK_FILE = "batch.lock"   # in OUTDIR's ledger folder, held by the batch working on OUTDIR


class BatchBusy(OutputError):
    """Another `dub batch` is working on the same output folder."""


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
class BatchResult:
    """Every input's outcome, in the order given (of a batch that was interrupted: what each
    input had come to, the jobs it did not finish "interrupted")."""

    outcomes: tuple[JobOutcome, ...]

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def exit_code(self) -> int:
        """0 when every job is done or skipped, else 2 (a user can fix what failed)."""
        return 2 if self.count("failed") else 0

    def summary(self) -> str:
        count = len(self.outcomes)
        interrupted = self.count("interrupted")
        return (f"{count} input{'' if count == 1 else 's'}: {self.count('done')} dubbed, "
                f"{self.count('skipped')} already done, "
                f"{self.count('failed')} failed" + (f", {interrupted} interrupted" if interrupted else ""))


# ----------------------------------------------------------------------------- inputs

@dataclass(frozen=True)
class BatchInput:
    """One video to dub: its path, and the file name its output is named after (its own; for a
    video in a subfolder of a folder given, its place there, "Reel 3 - shot 12.mp4", the name the
    watch folder gives a video it lifts out of a folder)."""

    path: str
    name: str

    @classmethod
    def given(cls, path: str | os.PathLike) -> "BatchInput":
        """A video named on the command line: its output is named after its own file name."""
        return cls(str(path), Path(path).name)


@dataclass(frozen=True)
class FolderInputs:
    """A folder given as an input: its videos in name order, and the other files in it (their
    places in it), which are left alone."""

    folder: str
    videos: tuple[BatchInput, ...]
    others: tuple[str, ...]
    dubs: tuple[str, ...] = ()  # dubs made earlier (their places in the folder), left alone

    def found(self) -> str:
        """One line: how many videos the folder holds, and which other files are left alone."""
        count = f"{len(self.videos)} video{'' if len(self.videos) == 1 else 's'} found"
        left = [f"dubs made earlier: {_listed(self.dubs)}"] if self.dubs else []
        left += [f"not videos: {self._others_listed()}"] if self.others else []
        return f"{self.folder}: {count}; left alone, {'; '.join(left)}." if left else f"{self.folder}: {count}."

    def no_videos(self) -> InputError:
        """The error of a folder without a video in it (one sentence)."""
        if self.dubs:
            return InputError(f"The folder {self.folder} holds only dubs made earlier ({_listed(self.dubs)}); "
                              "give the videos themselves to dub them again.")
        holds = f"no videos, only {self._others_listed()}" if self.others else "no files"
        examples = ", ".join(INPUT_VIDEO_SUFFIXES[:4])
        return InputError(f"The folder {self.folder} holds {holds}; give a folder with video files "
                          f"({examples} and the like) in it, or the videos themselves.")

    def _others_listed(self) -> str:
        return _listed(self.others)


def _listed(names: Sequence[str]) -> str:
    listed = ", ".join(names[:LISTED_OTHER_FILES])
    more = len(names) - LISTED_OTHER_FILES
    return f"{listed} and {more} more" if more > 0 else listed


def is_earlier_dub(path: Path) -> bool:
    """True when `path` is the video of a dub: the manifest beside it (`<stem>.json`, as `dub`
    names it) is one of ours and names this file as the dub's video."""
    from .export.deliverables import read_recorded_outputs

    manifest = path.with_suffix(".json")
    with contextlib.suppress(OSError):
        if manifest.stat().st_size > MANIFEST_MAX_BYTES:
            return False
    video = read_recorded_outputs(manifest).get("video")
    return video is not None and video.resolve() == path.resolve()


def folder_inputs(folder: Path, leave_out: Sequence[Path] = ()) -> FolderInputs:
    """The videos in `folder` and the other files beside them, found as the watch folder finds
    them in a folder dropped into its inbox: at any depth, a video by its name (a video suffix, no
    temporary or partial-copy mark), temporary names skipped. The folders in `leave_out` (the
    batch's own outputs, when they lie inside) are not entered, so a rerun never dubs a dub."""
    from .watch.journal import is_candidate, is_temporary, name_after_place

    skipped = {p.resolve() for p in leave_out}
    videos, others, dubs = [], [], []
    for base, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not is_temporary(d) and (Path(base) / d).resolve() not in skipped]
        for name in files:
            path = Path(base) / name
            place = path.relative_to(folder)
            if is_temporary(name):
                continue   # still being copied, or a system file (.DS_Store, ._clip.mp4)
            if is_candidate(name) and path.is_file():
                if is_earlier_dub(path):
                    dubs.append((place.parts, place.as_posix()))
                else:
                    videos.append((place.parts, BatchInput(str(path), name_after_place(place))))
            else:
                others.append((place.parts, place.as_posix()))
    # A dub's manifest goes with the dub, not among the other files.
    manifests = {Path(place).with_suffix(".json").as_posix() for _, place in dubs}
    return FolderInputs(str(folder), tuple(v for _, v in sorted(videos)),
                        tuple(o for _, o in sorted(others) if o not in manifests), tuple(d for _, d in sorted(dubs)))


def expand_inputs(inputs: Sequence[str | os.PathLike], leave_out: Sequence[Path] = (),
                  on_notice: Callable[[str], None] = log.info) -> list[BatchInput | JobOutcome]:
    """The inputs in the order given, each folder replaced by its videos (and said in one line
    through `on_notice`), or by its failed outcome when it holds none."""
    expanded: list[BatchInput | JobOutcome] = []
    for raw in inputs:
        path = Path(raw).expanduser()
        if not path.is_dir():
            expanded.append(BatchInput.given(raw))   # a file, or a path whose check fails with its reason
            continue
        found = folder_inputs(path, leave_out)
        if found.videos:
            on_notice(found.found())
            expanded += found.videos
        else:
            expanded.append(JobOutcome(str(raw), "", "failed", one_line(found.no_videos()), error="InputError"))
    return expanded


# ----------------------------------------------------------------------------- planning

def plan_jobs(inputs: Sequence[str | os.PathLike | BatchInput], out_dir: Path, options: DubOptions,
              run_id: str, on_notice: Callable[[str], None] = log.info) -> tuple[list[Job], list[JobOutcome]]:
    """One Job per usable input, and a failed outcome for each input that cannot be read. A file
    given more than once is one job, said in one line through `on_notice`.

    Raises:
        InputError: two inputs would write the same output files.
    """
    from vision.probe import picture_codec

    from .options import check_input_file

    jobs, failed, seen = [], [], {}
    first: dict[Path, str] = {}      # each file, by its resolved path, as it was first given
    repeats: dict[Path, int] = {}    # how often a file given more than once was given
    for entry in inputs:
        entry = entry if isinstance(entry, BatchInput) else BatchInput.given(entry)
        raw = entry.path
        # One file given twice (overlapping globs, a folder and a video in it, a relative and an
        # absolute path, a link) is one job.
        same = Path(raw).expanduser().resolve()
        if same in first:
            repeats[same] = repeats.get(same, 1) + 1
            continue
        first[same] = str(raw)
        output = (out_dir / default_output_path(Path(entry.name), picture_codec(same)).name).absolute()
        # A dub's files are named after its output without the suffix (clip.dub.json, its stems and
        # timelines), so clip.mov and clip.mkv, dubbed to clip.dub.mov and clip.dub.mkv, collide too.
        base = output.with_suffix("")
        if base in seen:
            other, other_output = seen[base]
            if output == other_output:
                raise InputError(f"{raw} and {other} would both be dubbed to {output}; "
                                 "rename one or run them as separate batches.")
            raise InputError(f"{raw} and {other} would be dubbed to {output.name} and {other_output.name}, whose "
                             f"other files share one name ({base.name}.json, stems, timelines) in {out_dir}; "
                             "rename one or run them as separate batches.")
        seen[base] = (raw, output)
        try:
            path = check_input_file(raw).absolute()
            jobs.append(Job(str(path), str(output), job_key(path, output, options), run_id))
        except DubError as err:
            failed.append(JobOutcome(str(raw), str(output), "failed", one_line(err)))
    # Said, not silent: a user counting the outcomes against the inputs given finds one missing.
    for same, count in repeats.items():
        times = "twice" if count == 2 else f"{count} times"
        on_notice(f"{first[same]} is listed {times}; it is dubbed once.")
    return jobs, failed


# ----------------------------------------------------------------------------- the batch

def run_batch(inputs: Sequence[str | os.PathLike], batch: BatchOptions, options: DubOptions = DubOptions(),
              progress: ProgressFn | None = None,
              on_outcome: Callable[[JobOutcome], None] = lambda outcome: None,
              on_notice: Callable[[str], None] = log.info,
              on_interrupt: Callable[[BatchResult], None] = lambda result: None) -> BatchResult:
    """Dub every input into `batch.out_dir`, skipping those an earlier run finished.

    Args:
        inputs: video files, and folders standing for the videos in them (see the module's
            docstring); each video becomes `<out_dir>/<stem>.dub.mp4` (.mov/.mkv kept).
        batch: where and how the jobs run (local pool or Ray).
        options: the dub settings of every job; a `stems_dir` is shared by them all (each
            output's stems carry its name, and no two outputs of a batch share one).
        progress: called as progress("batch", finished, total) after each input.
        on_outcome: called with each input's outcome as it is known (skipped ones first), so a
            display can name the file that just finished or failed.
        on_notice: called with one line per folder given (how many videos it holds, and which
            other files in it are left alone), one per file given more than once, one per job
            whose ledger record cannot be read, and one per job that ran again because its
            worker stopped.
        on_interrupt: called, when Ctrl-C or SIGTERM stops the batch once its jobs are known,
            with what each input had come to (the jobs not finished "interrupted"), before the
            interrupt goes on up.

    Returns:
        BatchResult with one outcome per video (a folder without one: its failed outcome), in
        the order given.

    Raises:
        InputError / OutputError: no inputs, two inputs with one output name, OUTDIR not writable.
        BatchBusy: another batch is working on OUTDIR.
        BackendUnavailable: --ray without ray installed, or an unreachable cluster.
        KeyboardInterrupt: Ctrl-C or SIGTERM; the jobs not finished are left for the next run.
    """
    out_dir = _checked_out_dir(inputs, batch)
    batch = replace(batch, out_dir=str(out_dir))
    own_folders = [out_dir] + ([Path(options.stems_dir).expanduser()] if options.stems_dir else [])
    expanded = expand_inputs(inputs, own_folders, on_notice)
    jobs, failed = plan_jobs([e for e in expanded if isinstance(e, BatchInput)], out_dir, options, uuid.uuid4().hex,
                             on_notice)
    out_dir.mkdir(parents=True, exist_ok=True)   # once the batch is planned: a refused one makes nothing
    failed += [e for e in expanded if isinstance(e, JobOutcome)]   # folders without a video
    given = [e.path if isinstance(e, BatchInput) else e.input for e in expanded]
    with _only_batch_on(out_dir):   # from here on jobs are read and run: one batch at a time
        tally = _Tally(jobs, failed, given, progress or no_progress, on_outcome, on_notice)
        ledger = Ledger(out_dir)
        try:
            todo = []
            for job in jobs:
                if ledger.damaged(job):
                    on_notice(f"the batch record {ledger.path(job.key)} of {Path(job.input).name} cannot be read; "
                              "its dub counts as done where its manifest says so, else it is dubbed again")
                if not options.force and (ledger.finished(job) or _done_by_its_manifest(job, options, ledger)):
                    tally.known(JobOutcome(job.input, job.output, "skipped"))
                else:
                    todo.append(job)
            tally.start()
            if todo:
                _dispatch(todo, options, batch, tally.report)
        except KeyboardInterrupt:
            on_interrupt(tally.result())
            raise
    return tally.result()


def _done_by_its_manifest(job: Job, options: DubOptions, ledger: Ledger) -> bool:
    """A job without a readable record (its ledger deleted or damaged) whose dub is at its output,
    whole, made from this very input with these settings, as the dub's own manifest says: done."""
    from .api import finished_dub

    if ledger.read(job.key) is not None or not Path(job.output).with_suffix(".json").is_file():
        return False
    return finished_dub(job.input, job.output, options) is not None


def _checked_out_dir(inputs: Sequence[str | os.PathLike], batch: BatchOptions) -> Path:
    """The batch's output folder, absolute, once there is something to dub, the folder can take
    the dubs, and Ray is installed and its cluster answers when asked for: before any work (and
    before the output folder is made), what is the user's to fix."""
    if not inputs:
        raise InputError("Give at least one video to dub.")
    out_dir = Path(batch.out_dir).expanduser().absolute()
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"The batch output {out_dir} is a file; give a folder with -o.")
    check_writable_folder(out_dir, what="batch output")
    if batch.ray:
        require_ray()
        address = batch.ray_address or os.environ.get("RAY_ADDRESS")
        if address:
            check_reachable(address)
    return out_dir


@contextlib.contextmanager
def _only_batch_on(out_dir: Path) -> Iterator[None]:
    """Hold OUTDIR's batch lock for the block (see the module's docstring).

    Raises:
        BatchBusy: another batch holds it.
        OutputError: the ledger folder cannot be made.
    """
    from .atomic import exclusive_lock, write_error

    lock = out_dir / LEDGER_DIR / BATCH_LOCK_FILE
    with contextlib.ExitStack() as stack:
        try:
            lock.parent.mkdir(parents=True, exist_ok=True)
            free = stack.enter_context(exclusive_lock(lock))
        except OSError as err:   # a full or read-only disk, as for any file of the batch
            raise write_error(err, lock) from err
        if not free:
            raise BatchBusy(f"Another dub batch is already working on {out_dir}; wait for it to finish, "
                            "or give another folder with -o.")
        yield


class _Tally:
    """A batch's outcomes as they come, each passed on to the caller's callbacks; and the result,
    complete or, after an interrupt, with the jobs not finished as "interrupted"."""

    def __init__(self, jobs: list[Job], failed: list[JobOutcome], given: Sequence[str],
                 progress: ProgressFn, on_outcome: Callable[[JobOutcome], None],
                 on_notice: Callable[[str], None]) -> None:
        self.jobs, self.failed, self.given = jobs, failed, given
        self.outcomes = {o.input: o for o in failed}
        self.total = len(jobs) + len(failed)
        self.progress, self.on_outcome, self.on_notice = progress, on_outcome, on_notice

    def known(self, outcome: JobOutcome) -> None:
        """An outcome known before any job runs (a job an earlier run finished)."""
        self.outcomes[outcome.input] = outcome

    def start(self) -> None:
        for outcome in self.outcomes.values():
            self.on_outcome(outcome)
        self.progress("batch", len(self.outcomes), self.total)

    def report(self, outcome: JobOutcome) -> None:
        self.outcomes[outcome.input] = outcome
        # A failure for that very reason says so itself.
        if outcome.attempts > 1 and outcome.error != "WorkerDied":
            ended = "finished it" if outcome.status == "done" else "failed"
            why = ("the worker dubbing it stopped before the end (killed, or out of memory)"
                   if outcome.attempts - outcome.spared > 1 else
                   "it was stopped when another worker process died")
            self.on_notice(f"{outcome.input}: {why} and the job ran again; attempt {outcome.attempts} {ended}.")
        if outcome.status == "failed":
            log.warning("%s: %s", outcome.input, outcome.reason)
        self.on_outcome(outcome)
        self.progress("batch", len(self.outcomes), self.total)

    def result(self) -> BatchResult:
        outcomes = {**{job.input: _unfinished(job) for job in self.jobs}, **self.outcomes}
        order = [job.input for job in self.jobs] + [o.input for o in self.failed]
        return BatchResult(tuple(outcomes[i] for i in sorted(order, key=_input_order(self.given))))


def _unfinished(job: Job) -> JobOutcome:
    """The outcome of a job whose outcome had not come back when an interrupt stopped the batch:
    stopped, kept from starting, or ended in its worker just before (its ledger record says so)."""
    ledger = job.ledger
    record = ledger.read(job.key) or {}
    this_run = record.get("run_id") == job.run_id
    if this_run and record.get("status") == "done" and ledger.finished(job):
        return JobOutcome(job.input, job.output, "done", "", int(record.get("attempt", 0)),
                          spared=int(record.get("spared", 0)))
    if this_run and record.get("status") == "failed":
        return JobOutcome(job.input, job.output, "failed", str(record.get("reason", "")), int(record.get("attempt", 0)),
                          spared=int(record.get("spared", 0)))
    if record.get("status") == "running" and this_run:
        return JobOutcome(job.input, job.output, "interrupted", "stopped while being dubbed; the next run dubs it "
                          "again.", int(record.get("attempt", 0)), error="Interrupted")
    return JobOutcome(job.input, job.output, "interrupted", "not started; the next run dubs it.",
                      error="Interrupted")


def _dispatch(jobs: list[Job], options: DubOptions, batch: BatchOptions,
              report: Callable[[JobOutcome], None]) -> None:
    """Run `jobs` where `batch` says, reporting each outcome as it comes."""
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
        position.setdefault(os.path.abspath(Path(raw).expanduser()), i)   # as check_input_file spells it
        position.setdefault(str(raw), i)
    return lambda name: position.get(name, len(position))
