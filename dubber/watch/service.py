"""`run_watch`: the watch folder as a service. It sets the folder up, takes its locks (one
watcher per folder, and per output folder of its own), writes its log, and runs the `Watcher`
until it is stopped (or, with --once, until what was ready is done).
"""
from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from .journal import LOG_FILE, FolderLock
from .settings import WatchOptions, load_settings
from .storage import prepare_root
from .watcher import Watcher
from ..errors import OutputError

log = logging.getLogger(__name__)

OUTPUT_LOCK = ".dub-watch.lock"   # in an -o folder: held by the one watcher writing into it


def _output_lock(out_dir: str | None) -> Any:
    """Only one watcher writes into an output folder of its own (-o): a watcher starting clears
    the half-written outputs it finds there, which would be another watcher's dubs in progress,
    and two watchers would take one output name at once."""
    if out_dir is None:
        return contextlib.nullcontext()   # ROOT/output: the watch folder's own lock covers it
    return FolderLock(Path(out_dir) / OUTPUT_LOCK,
                      busy=f"Another watcher is already writing into {out_dir}; give this one another -o folder.",
                      remove=True)


def run_watch(root: Path, options: WatchOptions, stop: threading.Event | None = None) -> int:
    """Watch ROOT until `stop` is set (or, with options.once, until what is ready is done).
    Returns how many files this run moved to failed/.

    Raises:
        WatchSettingsError: dub-watch.toml is invalid.
        WatchLocked: another watcher serves ROOT, or writes into the -o folder.
        InputError / OutputError: ROOT or the output folder is a file, or cannot be written; the
            folder above ROOT does not exist; with options.once, the output folder could not
            take the dubs (the files wait in the inbox).
        BackendUnavailable: ray is asked for but not installed, or its cluster cannot be reached.
    """
    if options.ray:
        from ..ray_cluster import require_ray

        require_ray()   # before any folder is made: a missing package is the user's to fix
    root, out_dir, new = prepare_root(root, options.out_dir)
    options = replace(options, out_dir=out_dir)
    settings = load_settings(root)
    try:
        handler = logging.FileHandler(root / "logs" / LOG_FILE, encoding="utf-8")
    except OSError as err:
        raise OutputError(f"Cannot write the watch log {root / 'logs' / LOG_FILE} "
                          f"({(err.strerror or str(err)).lower()}); make {root / 'logs'} writable.") from None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    # What the watcher and the batch machinery under it say (worker retries, internal errors).
    loggers = [logging.getLogger("dubber.watch"), logging.getLogger("dubber.batch")]
    previous_levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        if new:   # said once: the next run finds the inbox there
            log.info("set up a new watch folder at %s; drop videos into %s", root, root / "inbox")
        with FolderLock(root / "logs" / "watch.lock"), _output_lock(out_dir):
            watcher = Watcher(root, options, settings)
            watcher.run(stop or threading.Event())
            if options.once and watcher.output_trouble is not None:   # a cron job learns the backlog waits
                raise OutputError(f"{watcher.output_trouble.rstrip('.')}; the files it could not take wait in "
                                  "the inbox.")
            return watcher.failures
    finally:
        for logger, level in zip(loggers, previous_levels):
            logger.removeHandler(handler)
            logger.setLevel(level)
        handler.close()
