"""Watch folder: drop videos into `inbox/`, find them dubbed in `output/`.

    ROOT/
      inbox/        drop videos here, or folders of them (temporary and partial names are left alone)
      processing/   files being dubbed (claimed by an atomic rename)
      output/       one folder per input: the dubbed video, stems, manifest, timelines, all named
                    after the folder (<name>-2/ and <name>-2.dub.mp4 for a name delivered again)
      done/         originals after success, named as their output folder (and duplicates, with a note)
      failed/       originals that could not be dubbed, each with <file>.error.json (film.mp4.error.json)
      logs/         journal.jsonl (what happened to which content), watch.log, and inbox-state.json
                    (what the inbox scan has seen, so a `--once` run goes on where the last one stopped)
      dub-watch.toml  optional settings for this folder (style, backend, lufs, keep_original)

A file is taken once its size and modification time have stayed unchanged for `stable_s`
seconds and it is not empty (a video inside a folder dropped there first moves up into the
inbox, named after its place); file-system events only wake the scan early, because network
shares deliver none and copies deliver them out of order. Every step is crash-safe: claims and
results are renames, the journal is appended and synced before the original moves on, and a
restart dubs again first whatever was left in `processing/`, so every input is dubbed exactly
once and ends in `done/` or `failed/`. Identical content (same SHA-256) is dubbed only once.
The timelines and manifest of an output folder name each file where it ends up: in that folder,
and the original in `done/`.

Without a processor, each dub runs on the batch machinery (dubber.watch.dispatch): local worker
processes (`--jobs N` at once) or tasks on a Ray cluster (`--ray`), with its ledger in logs/; a
worker that dies is retried, a file that fails goes to failed/ alone, and the scan never waits.

    python -m dubber.watch ROOT [-o OUTDIR] [--once] [--stable-s 2] [--jobs N] [--ray [ADDRESS]]

The service around it (its locks and log, `run_watch`) is `dubber.watch.service`.
"""
from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import secrets
import threading
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .dispatch import WatchJob, dub_processor, probe_validator
from .inbox import InboxScanner, inbox_events
from .journal import (FOLDERS, INBOX_STATE_FILE, JOURNAL_FILE, SOURCE_RECORD, STAGING_PREFIX, InboxState, Journal,
                      WatchLocked, is_candidate, is_user_error, now_iso, one_sentence, sha256_of, shown, unique_path,
                      write_json_atomic)
from .relocate import Move, relocate_references
from .settings import (SETTINGS_FILE, WatchOptions, WatchSettings, WatchSettingsError, default_workers, dub_options,
                       load_settings)
from .storage import output_trouble
from ..errors import InputError

__all__ = ["WatchJob", "WatchLocked", "WatchOptions", "WatchSettings", "WatchSettingsError", "Watcher",
           "dub_processor", "is_candidate", "load_settings", "probe_validator"]

log = logging.getLogger(__name__)

OUTPUT_RETRY_S = 30.0   # how long files wait in the inbox after the output folder could not take a dub
# What a video still being copied reads as: cut short (its index or its last frames missing). A
# file that is no video at all (text, an image) fails at once.
ARRIVING_ERRORS = frozenset({"VideoUnreadable"})
INTERRUPTED_JOB = ("Its dub was interrupted by a signal the watcher did not get (sent to the worker processes); "
                   "drop the file into the inbox again to dub it.")


def _entries(folder: Path) -> list[Path]:
    """What `folder` holds; nothing when it has gone (deleted while the watcher starts)."""
    try:
        return list(folder.iterdir())
    except FileNotFoundError:
        return []


def file_state(path: Path) -> tuple[int, int]:
    """(size, mtime_ns): what tells a file that is still being written from one that is not."""
    st = path.stat()
    return st.st_size, st.st_mtime_ns


# ----------------------------------------------------------------------------- the watcher

class Watcher:
    """Scans the inbox, claims stable files and runs jobs on a worker pool."""

    def __init__(self, root: Path, options: WatchOptions, settings: WatchSettings):
        self.root = root
        self.dirs = {name: root / name for name in FOLDERS}
        if options.out_dir is not None:
            self.dirs["output"] = Path(options.out_dir)
        self.options, self.settings = options, settings
        self.settings_mtime = self._settings_mtime()
        self.processor = options.processor
        # The pipeline's first stage is the probe: a file is probed once, by the job itself.
        self.validator = options.validator or (probe_validator if options.processor else None)
        self.dispatch: Any = None   # the batch machinery that runs the pipeline (set by run)
        self.journal = Journal(self.dirs["logs"] / JOURNAL_FILE)
        self.skipped = self.journal.skipped_keys()
        # Stability, names already said and folders emptied, as the last run left them.
        state = InboxState.load(self.dirs["logs"] / INBOX_STATE_FILE, options.stable_s, options.empty_timeout_s)
        self.inbox = InboxScanner(self.dirs["inbox"], state, self.journal, self.skipped)
        self.lock = threading.Lock()                  # guards the dicts and set below and names in output/, done/
        self.in_flight: dict[str, threading.Event] = {}
        self.outputs_by_sha: dict[str, str] = {}
        self.reserved_outputs: set[str] = set()       # output/ names of the dubs in flight
        self.wake = threading.Event()
        # failed/ files by (size, mtime) when they failed: one that changes afterwards was still
        # being written (a slow copy that paused), so it goes back to the inbox.
        self.failed_stat: dict[Path, tuple[int, int]] = self._failed_stats()
        self.failures = 0                             # files this run moved to failed/
        self.stopping = False                         # Ctrl-C or SIGTERM reached the watcher
        self.paused_until = 0.0                       # monotonic time files are taken again
        self.output_trouble: str | None = None        # what keeps the output folder from a dub, as said
        self.root_gone = False                        # ROOT itself is gone (said once; the scan waits)

    def _failed_stats(self) -> dict[Path, tuple[int, int]]:
        """The failed/ files with the size and time they had when they failed, from their error
        notes: a `--once` run (cron) knows them too, not only the run that failed them."""
        stats: dict[Path, tuple[int, int]] = {}
        with contextlib.suppress(OSError):
            for note in self.dirs["failed"].glob("*.error.json"):
                with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                    record = json.loads(note.read_text(encoding="utf-8"))
                    failed = note.with_name(note.name[:-len(".error.json")])
                    if failed.is_file() and "size" in record and "mtime_ns" in record:
                        stats[failed] = (int(record["size"]), int(record["mtime_ns"]))
        return stats

    # -- startup -------------------------------------------------------------------------------

    def recover(self) -> list[tuple[Path, str]]:
        """Undo what a crash left: drop half-written outputs, finish files whose dub completed,
        and return the rest of processing/ as (file, original name) to dub again first."""
        import shutil

        for entry in _entries(self.dirs["output"]):
            if entry.name.startswith(STAGING_PREFIX):
                shutil.rmtree(entry, ignore_errors=True)
            elif (entry / SOURCE_RECORD).is_file():
                self._index_output(entry)
        resume = []
        for path in sorted(p for p in _entries(self.dirs["processing"]) if p.is_file()):
            name = self._original_name(path)
            if not self._finish_interrupted(path, name):
                self.journal.append("resumed", name=name, claimed_as=path.name)
                log.info("resuming %s, left in processing/ by an interrupted run", shown(name))
                resume.append((path, name))
        return resume

    def _index_output(self, folder: Path) -> None:
        try:
            record = json.loads((folder / SOURCE_RECORD).read_text(encoding="utf-8"))
            self.outputs_by_sha[record["sha256"]] = folder.name
        except (ValueError, KeyError, OSError):
            log.warning("ignoring an unreadable %s in %s", SOURCE_RECORD, folder)

    def _finish_interrupted(self, path: Path, name: str) -> bool:
        """True when the file's dub had completed and only its bookkeeping was left."""
        sha = sha256_of(path)
        record = self.journal.done_record(sha)
        if record is not None and record.get("claimed_as") == path.name:
            os.replace(path, self._done_path(record["name"], record.get("done_as")))
            return True
        if record is None and sha in self.outputs_by_sha:
            output = self.outputs_by_sha[sha]
            done_as = self._source_record(output).get("done_as")
            self._record_done(path, name, sha, output, self._done_path(name, done_as))
            return True
        return False

    def _source_record(self, output: str) -> dict:
        try:
            record = json.loads((self.dirs["output"] / output / SOURCE_RECORD).read_text(encoding="utf-8"))
        except (ValueError, OSError):
            return {}
        return record if isinstance(record, dict) else {}

    def _original_name(self, claimed: Path) -> str:
        claims = [r for r in self.journal.records if r.get("event") == "claimed" and r.get("claimed_as") == claimed.name]
        return claims[-1]["name"] if claims else claimed.name

    # -- scanning ------------------------------------------------------------------------------

    def scan(self) -> list[Path]:
        """Inbox files that are ready to be claimed (see dubber.watch.inbox)."""
        self._return_resumed_copies()
        return self.inbox.ready()

    def _return_resumed_copies(self) -> None:
        """A failed file that changed after it failed was still being copied: back to the inbox."""
        for path, stat in list(self.failed_stat.items()):
            try:
                st = path.stat()
            except FileNotFoundError:
                del self.failed_stat[path]
                continue
            if (st.st_size, st.st_mtime_ns) != stat:
                del self.failed_stat[path]
                back = unique_path(self.dirs["inbox"], path.name)
                os.replace(path, back)
                path.with_name(path.name + ".error.json").unlink(missing_ok=True)
                self.journal.append("returned", name=back.name, reason="still being written")
                log.info("%s was still being written; back in the inbox until it stops changing", shown(back.name))

    def claim(self, path: Path) -> Path | None:
        """Move a ready file into processing/ (atomic), or None when it vanished meanwhile."""
        self.inbox.forget(path.name)
        target = unique_path(self.dirs["processing"], path.name)
        try:
            os.replace(path, target)
        except FileNotFoundError:
            return None
        return target

    # -- one job (worker thread) ---------------------------------------------------------------

    def handle(self, claimed: Path, name: str) -> None:
        sha = ""
        try:
            # Taken before the hash: a copy that goes on writing into the claimed file (it paused
            # longer than stable_s) shows up as a change by the time the result is published.
            at_claim = file_state(claimed)
            sha = sha256_of(claimed)
            with self._exclusive(sha):
                self._handle(claimed, name, sha, at_claim)
        except Exception as err:  # whatever happens, the input ends in failed/ with a reason...
            if not claimed.exists() and self._removed_while_dubbed(claimed, name, sha, err):
                return
            trouble = output_trouble(self.dirs["output"], err)
            if trouble is None and self._maybe_still_arriving(claimed, name, err):
                return
            if trouble is None:
                self._fail(claimed, name, sha, err)
            else:   # ...unless the output folder is why: then the file waits in the inbox for it
                self._wait_for_output(claimed, name, trouble)
        except KeyboardInterrupt:
            if self.stopping:   # the watcher stops: the file stays in processing/ for the next start
                raise
            from .dispatch import JobFailed

            self._fail(claimed, name, sha, JobFailed(INTERRUPTED_JOB, "Interrupted"))

    def _maybe_still_arriving(self, claimed: Path, name: str, err: BaseException) -> bool:
        """A file that reads as a video cut short and changed less than `arriving_s` ago
        may still be arriving: an uploader that opens it again for each chunk (rsync --append,
        a resumed transfer) and paused longer than stable_s would otherwise find it gone and
        start a new file, leaving fragments in failed/. It goes back to the inbox under its
        name, to be taken once unchanged for `arriving_s`. True when it went back."""
        if (getattr(err, "kind", "") or type(err).__name__) not in ARRIVING_ERRORS:
            return False
        try:
            age_s = time.time() - claimed.stat().st_mtime_ns / 1e9
        except OSError:
            return False
        if age_s >= self.options.arriving_s:
            return False
        with self.lock:
            back = unique_path(self.dirs["inbox"], name)
            os.replace(claimed, back)
        self.inbox.hold(back.name, self.options.arriving_s)
        self.journal.append("returned", name=back.name, claimed_as=claimed.name, reason="may still be arriving")
        log.info("%s reads as a video cut short and changed %.0f s ago; it waits in the inbox in case it "
                 "is still arriving, and is taken again once unchanged for %g s", shown(back.name), age_s,
                 self.options.arriving_s)
        return True

    def _removed_while_dubbed(self, claimed: Path, name: str, sha: str, err: BaseException) -> bool:
        """The claimed file is no longer in processing/ after `err`: when it was filed as done
        first, the error came after (logged); else someone removed it while it was dubbed, and
        its dub is discarded (said in one line, journalled, no failure). True when dealt with."""
        done = self.journal.done_record(sha) if sha else None
        if done is not None and done.get("claimed_as") == claimed.name:
            log.error("%s was dubbed and filed, then: %s", shown(name), shown(one_sentence(err)))
            return True
        if not isinstance(err, FileNotFoundError) and claimed.parent.is_dir():
            return False
        self.journal.append("removed", name=name, claimed_as=claimed.name, sha256=sha)
        log.warning("%s was removed from processing/ while it was being dubbed; its dub was discarded", shown(name))
        return True

    def _exclusive(self, sha: str):
        """Jobs with the same content run one after another, so the second sees the first's
        result and becomes a duplicate instead of a second dub."""
        watcher = self

        class _Gate:
            def __enter__(self) -> None:
                while True:
                    with watcher.lock:
                        busy = watcher.in_flight.get(sha)
                        if busy is None:
                            watcher.in_flight[sha] = threading.Event()
                            return
                    busy.wait()

            def __exit__(self, *exc: object) -> None:
                with watcher.lock:
                    watcher.in_flight.pop(sha).set()

        return _Gate()

    def _handle(self, claimed: Path, name: str, sha: str, at_claim: tuple[int, int]) -> None:
        prior = self.journal.done_record(sha)
        if prior is not None or sha in self.outputs_by_sha:
            earlier = prior.get("output") if prior else self.outputs_by_sha.get(sha)
            # A dub made with other settings (dub-watch.toml changed since) is no answer to this drop.
            now = asdict(self.settings)
            other_settings = prior is not None and prior.get("settings", now) != now
            there = isinstance(earlier, str) and earlier and (self.dirs["output"] / earlier).is_dir()
            if there and not other_settings:
                self._duplicate(claimed, name, sha, prior)
                return
            # Deleting an output folder is how a user asks for a dub again; changing the settings too.
            why = "with other settings" if other_settings else "which is gone"
            log.info("%s was dubbed before into %s, %s; dubbing it again", shown(name),
                     shown(self._output_shown(earlier)), why)
            self.outputs_by_sha.pop(sha, None)
        self.journal.append("claimed", name=name, claimed_as=claimed.name, sha256=sha,
                            size=claimed.stat().st_size)
        if claimed.stat().st_size == 0:
            raise InputError(f"{name} is empty (0 bytes); copy the video into the inbox again.")
        if self.validator is not None:
            self.validator(claimed)
        self._process(claimed, name, sha, at_claim)

    def _process(self, claimed: Path, name: str, sha: str, at_claim: tuple[int, int]) -> None:
        import shutil

        from vision.probe import picture_codec

        from ..options import default_output_path   # one naming rule for every way of dubbing

        stem = Path(name).stem
        # The output folder's name is chosen before the dub, so that the dub's files are named
        # after it: a second delivery of a name, in <name>-2/, holds <name>-2.dub.mp4 and its
        # <name>-2.* stems and timelines, never files named like the first delivery's.
        with self.lock:
            final = unique_path(self.dirs["output"], stem, self.reserved_outputs)
            reserved = final.name
            self.reserved_outputs.add(reserved)
        staging = self.dirs["output"] / f"{STAGING_PREFIX}{stem}-{secrets.token_hex(4)}"
        try:
            staging.mkdir()
            output_name = default_output_path(Path(final.name + Path(name).suffix), picture_codec(claimed)).name
            job = WatchJob(claimed, name, staging, output_name, self.settings, sha)
            ledger_job = self._work(job)
            # Names in output/ and done/ are taken under one lock, so the timelines can name the
            # final places before anything moves there.
            with self.lock:
                if file_state(claimed) != at_claim:   # the dub describes only part of the file
                    self._return_changed(claimed, name)
                    return
                if final.exists():   # made there by hand meanwhile: the dub goes beside it
                    final = unique_path(self.dirs["output"], stem, self.reserved_outputs)
                # The original takes its dub's name (output/<name>-2 and done/<name>-2.mp4): two
                # deliveries of one name may finish in either order.
                original = unique_path(self.dirs["done"], final.name + Path(name).suffix)
                self._publish(job, final, original)
                self._record_done(claimed, name, sha, final.name, original, asdict(job.settings))
            if ledger_job is not None:
                self.dispatch.filed(ledger_job, ((staging, final), (claimed, original)))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            with self.lock:   # published (the folder now holds the name) or given up
                self.reserved_outputs.discard(reserved)

    def _publish(self, job: WatchJob, final: Path, original: Path) -> None:
        """Point the job's timelines and manifest at `final` (the output folder) and `original`
        (the input in done/), then rename the staging folder into place: the whole result
        appears at once, and every file it names exists once the original has moved."""
        if not job.staging.is_dir():   # the output folder went (a share unmounted) with the result in it
            raise FileNotFoundError(errno.ENOENT, "the dub's folder is gone", str(job.staging))
        relocate_references(job.staging, (Move.of(job.staging, final), Move.of(job.source, original)))
        write_json_atomic(job.staging / SOURCE_RECORD, {"sha256": job.sha256, "input": job.original_name,
                                                        "done_as": original.name, "time": now_iso(),
                                                        "settings": asdict(job.settings)})
        os.replace(job.staging, final)
        self.outputs_by_sha[job.sha256] = final.name

    def _return_changed(self, claimed: Path, name: str) -> None:
        """The claimed file changed while it was dubbed: a copy that paused and went on. Its dub
        is thrown away and the file waits in the inbox until it stops changing (call with the
        lock held)."""
        back = unique_path(self.dirs["inbox"], name)
        os.replace(claimed, back)
        self.journal.append("returned", name=back.name, claimed_as=claimed.name,
                            reason="changed while it was being dubbed")
        log.warning("%s changed while it was being dubbed (its copy was still going on); the dub was discarded "
                    "and the file is back in the inbox until it stops changing", shown(name))

    def _wait_for_output(self, claimed: Path, name: str, trouble: str) -> None:
        """The output folder cannot take a dub (gone, read-only, full): the file goes back to the
        inbox, and no file is taken for OUTPUT_RETRY_S, so a backlog waits there instead of
        draining into failed/. Said once until a dub is published again."""
        with self.lock:
            back = unique_path(self.dirs["inbox"], name)
            os.replace(claimed, back)
            self.paused_until = time.monotonic() + OUTPUT_RETRY_S
            said, self.output_trouble = self.output_trouble, trouble
        self.journal.append("returned", name=back.name, claimed_as=claimed.name, reason=trouble)
        if said != trouble:
            log.warning("%s Files wait in the inbox meanwhile, tried again every %g s.", trouble, OUTPUT_RETRY_S)
        log.info("%s is back in the inbox until the output folder can be written", shown(back.name))

    def _work(self, job: WatchJob) -> Any:
        """The processor in this thread, or the pipeline on the batch machinery (this thread
        waits for it, the scan goes on; returns its ledger job)."""
        if self.processor is not None:
            self.processor(job)
            return None
        options = dub_options(job.settings, job.staging / "stems")
        return self.dispatch.run(job.source, job.staging / job.output_name, job.sha256, options)

    def _record_done(self, claimed: Path, name: str, sha: str, output: str, original: Path,
                     settings: dict | None = None) -> None:
        extra = {"settings": settings} if settings is not None else {}   # unknown for a run finished late
        self.journal.append("done", name=name, claimed_as=claimed.name, sha256=sha, output=output,
                            done_as=original.name, **extra)
        original.parent.mkdir(exist_ok=True)   # done/ deleted while watching: made again
        os.replace(claimed, original)
        log.info("dubbed %s -> %s", shown(name), shown(self._output_shown(output)))
        if self.output_trouble is not None:
            self.output_trouble = None
            log.info("the output folder %s takes dubs again", self.dirs["output"])

    def _output_shown(self, output: object) -> str:
        """An output folder as messages name it: output/<name> in ROOT, else its whole path (-o)."""
        if self.options.out_dir is None:
            return f"output/{output}"
        return str(self.dirs["output"] / str(output))

    def _done_path(self, name: str, done_as: object) -> Path:
        """Where an original goes in done/: the name its output's timelines were given when it is
        still free (a run interrupted between the two renames), else a free one."""
        if isinstance(done_as, str) and done_as and Path(done_as).name == done_as:
            if not (self.dirs["done"] / done_as).exists():
                return self.dirs["done"] / done_as
        return unique_path(self.dirs["done"], name)

    def _duplicate(self, claimed: Path, name: str, sha: str, prior: dict | None) -> None:
        first = prior["name"] if prior else "an earlier file"
        output = prior.get("output") if prior else self.outputs_by_sha.get(sha)
        if self.options.duplicates == "skip":
            back = unique_path(self.dirs["inbox"], name)
            os.replace(claimed, back)
            st = back.stat()
            self.skipped.add((back.name, st.st_size, st.st_mtime_ns))
            self.journal.append("skipped", name=back.name, size=st.st_size, mtime_ns=st.st_mtime_ns,
                                sha256=sha, same_as=first)
            return
        note = {"file": name, "note": f"Same content as {first}, already dubbed into {self._output_shown(output)}; "
                                      "not dubbed again.", "sha256": sha, "output": output, "time": now_iso()}
        with self.lock:   # done/ names are taken under the lock (see _process)
            self.dirs["done"].mkdir(exist_ok=True)
            dest = unique_path(self.dirs["done"], name)
            write_json_atomic(dest.with_name(dest.name + ".duplicate.json"), note)
            self.journal.append("duplicate", name=name, sha256=sha, same_as=first, output=output)
            os.replace(claimed, dest)
        earlier = "an earlier delivery of that name" if first == name else shown(first)
        log.info("%s has the same content as %s, already dubbed into %s; moved to done/ as %s without dubbing",
                 shown(name), earlier, shown(self._output_shown(output)), dest.name)

    def _fail(self, claimed: Path, name: str, sha: str, err: BaseException) -> None:
        reason = one_sentence(err).replace(str(claimed), name)  # name the file as the user dropped it
        if not is_user_error(err):
            log.error("dubbing %s failed:\n%s", shown(name), "".join(traceback.format_exception(err)))
        dest = unique_path(self.dirs["failed"], name)
        kind = getattr(err, "kind", "") or type(err).__name__   # a worker's error keeps its name
        note = {"file": name, "reason": reason, "error": kind, "sha256": sha, "time": now_iso()}
        with contextlib.suppress(OSError):   # the move keeps both: a later change means it was still arriving
            st = claimed.stat()
            note.update(size=st.st_size, mtime_ns=st.st_mtime_ns)
        dest.parent.mkdir(exist_ok=True)   # failed/ deleted while watching: made again
        write_json_atomic(dest.with_name(dest.name + ".error.json"), note)
        moved = claimed.exists()
        if moved:
            os.replace(claimed, dest)
        self.journal.append("failed", name=name, failed_as=dest.name, sha256=sha, reason=reason)
        if moved:
            self._file_failed_job(err, claimed, dest)
        self.failures += 1
        if dest.exists() and "size" in note:
            self.failed_stat[dest] = (note["size"], note["mtime_ns"])
        log.warning("failed %s: %s", shown(name), shown(reason))

    def _file_failed_job(self, err: BaseException, claimed: Path, dest: Path) -> None:
        """A dub that failed in a worker: its ledger record names the input where it now is, in
        failed/ (as a done job's names done/), and no output, since the staging folder the output
        was to be written in is removed."""
        job = getattr(err, "job", None)
        if job is not None and self.dispatch is not None:
            self.dispatch.filed(job, ((claimed, dest), (Path(job.output).parent, None)))

    # -- the loop ------------------------------------------------------------------------------

    def _settings_mtime(self) -> int:
        path = self.root / SETTINGS_FILE
        return path.stat().st_mtime_ns if path.exists() else 0

    def reload_settings(self) -> None:
        """Pick up edits to dub-watch.toml; a broken edit keeps the last good settings."""
        mtime = self._settings_mtime()
        if mtime == self.settings_mtime:
            return
        self.settings_mtime = mtime
        try:
            self.settings = load_settings(self.root)
            log.info("settings reloaded from %s: %s", SETTINGS_FILE,
                     ", ".join(f"{k} = {v!r}" for k, v in asdict(self.settings).items()))
        except WatchSettingsError as err:
            log.error("%s Keeping the previous settings.", err)

    def run(self, stop: threading.Event) -> None:
        workers = self._open_dispatch()   # first: an unreachable cluster stops us before any move
        observer = None
        try:
            resume = self.recover()
            events = not self.options.once and self.options.use_events
            observer = inbox_events(self.dirs["inbox"], self.wake, self.options.poll_s) if events else None
            # One thread per job in flight: it hashes, claims and files the result; the dub
            # itself runs in a worker process or on the cluster.
            with ThreadPoolExecutor(workers, thread_name_prefix="dub-watch") as pool:
                for path, name in resume:
                    pool.submit(self.handle, path, name)
                try:
                    self._loop(pool, stop)
                    if self.options.once:
                        self._say_what_waits()
                except KeyboardInterrupt:   # Ctrl-C, SIGTERM: what is in flight resumes next start
                    self.stopping = True
                    if self.dispatch is not None:
                        self.dispatch.interrupt()
                    raise
        finally:
            if observer is not None:
                observer.stop()
                observer.join()
            if self.dispatch is not None:
                self.dispatch.close()

    def _say_what_waits(self) -> None:
        """After a `--once` run: the videos left in the inbox, still arriving or empty, named in one
        line, so a cron job's log says why they were not dubbed this time."""
        try:
            waiting = sorted(p.relative_to(self.dirs["inbox"]).as_posix() for p in self.dirs["inbox"].rglob("*")
                             if p.is_file() and is_candidate(p.name))
        except OSError:
            return
        if waiting:
            shown_names = ", ".join(waiting[:5]) + (f" and {len(waiting) - 5} more" if len(waiting) > 5 else "")
            log.info("left in the inbox for a later run, still arriving or empty: %s", shown_names)

    def _open_dispatch(self) -> int:
        """Start the batch machinery for the pipeline (none for a processor); jobs at once."""
        options = self.options
        if self.processor is not None:
            return options.workers or default_workers(self.settings)
        from .dispatch import open_dispatch

        self.dispatch = open_dispatch(self.dirs["logs"], options.workers, default_workers(self.settings),
                                      options.ray, options.ray_address)
        return self.dispatch.jobs

    def _loop(self, pool: ThreadPoolExecutor, stop: threading.Event) -> None:
        running: set[Future] = set()
        # A --once run looks for as long as a file seen in its first scan needs to settle, counted
        # from the end of that scan: a listing slower than the settle time (a busy machine, a
        # network share) would otherwise end the run before a second look took anything.
        once_until: float | None = None
        while not stop.is_set():
            ready: list[Path] = []
            if self._folders_in_place():
                self.reload_settings()
                try:
                    ready = self.scan()
                except FileNotFoundError:   # a folder went in the middle of the scan: the next one sees
                    ready = []
            for path in ready if time.monotonic() >= self.paused_until else ():
                claimed = self.claim(path)
                if claimed is not None:
                    running.add(pool.submit(self.handle, claimed, path.name))
            for future in [f for f in running if f.done()]:
                running.discard(future)
                if future.exception() is not None:  # even moving the file to failed/ went wrong
                    log.error("a job could not be finished: %r", future.exception())
            if self.options.once:
                if once_until is None:
                    once_until = time.monotonic() + self.options.stable_s + 2 * self.options.poll_s
                elif time.monotonic() >= once_until:
                    return
            self.wake.wait(self.options.poll_s)
            self.wake.clear()

    def _folders_in_place(self) -> bool:
        """Whether the watch folder is there to scan, making again any of its folders deleted
        while it is watched (by hand, or with the share they live on). ROOT itself gone (a share
        unmounted) is said once and waited for, not made again in an empty mount point."""
        if not self.root.is_dir():
            if not self.root_gone:
                self.root_gone = True
                log.warning("the watch folder %s is gone (an unmounted share, or deleted); waiting for it to come "
                            "back", self.root)
            return False
        if self.root_gone:
            self.root_gone = False
            log.info("the watch folder %s is back", self.root)
        for name, folder in self.dirs.items():
            if folder.is_dir() or (name == "output" and self.options.out_dir is not None):
                continue   # an -o folder of its own is waited for like any output trouble, never made here
            try:
                folder.mkdir(exist_ok=True)
            except OSError as err:
                log.warning("cannot make %s again (%s); scanning again in %.1f s", folder, err.strerror,
                            self.options.poll_s)
                return False
            log.warning("%s was deleted while being watched; made it again", folder)
        return True
