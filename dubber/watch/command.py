"""The watch folder's command line, shared by `dub watch` and `python -m dubber.watch`."""
from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
from pathlib import Path

from .dispatch import Processor
from .settings import DUPLICATE_MODES, WatchOptions
from .service import run_watch
from ..errors import DubError, InputError


def load_processor(spec: str) -> Processor:
    """'package.module:function' -> the function (for custom pipelines and tests)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise InputError(f"--processor {spec!r} must look like package.module:function.")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise InputError(f"--processor {spec!r} cannot be loaded ({err}); check the name.") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The watch options, shared by `dub watch` and `python -m dubber.watch`."""
    defaults = WatchOptions()
    parser.add_argument("root", help="folder to watch (inbox/, output/, ... are created inside)")
    parser.add_argument("--once", action="store_true", help="process what is ready now, then exit (for cron)")
    parser.add_argument("--stable-s", type=float, default=defaults.stable_s, metavar="S",
                        help=f"seconds a file must stay unchanged before it is taken (default {defaults.stable_s:g})")
    parser.add_argument("--arriving-s", type=float, default=defaults.arriving_s, metavar="S",
                        help="a video that reads as cut short and changed less than S seconds ago "
                             f"may still be arriving: it waits in the inbox until unchanged that long, then fails "
                             f"(default {defaults.arriving_s:g}; 0 fails it at once)")
    parser.add_argument("--poll-s", type=float, default=defaults.poll_s, metavar="S",
                        help=f"seconds between scans (default {defaults.poll_s:g})")
    parser.add_argument("-o", "--output", metavar="OUTDIR",
                        help="folder of the output folders (default: ROOT/output); with --ray, a path every "
                             "node reaches")
    parser.add_argument("--jobs", "--workers", dest="jobs", type=int, metavar="N",
                        help="jobs at once (default: 1 on GPU, 2 for score; with --ray, one per cluster CPU)")
    parser.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                        help="dub on Ray: the cluster at ADDRESS (or $RAY_ADDRESS), else the one on this machine, "
                             "started if needed; ROOT and OUTDIR must be shared by every node")
    parser.add_argument("--duplicates", choices=DUPLICATE_MODES, default=defaults.duplicates,
                        help="already-dubbed content: move to done/ with a note, or skip it in the inbox")
    parser.add_argument("--processor", metavar="MODULE:FUNCTION",
                        help="run this function on each job instead of the dubbing pipeline")


def options_from_args(args: argparse.Namespace) -> WatchOptions:
    if args.processor and args.ray is not None:
        raise InputError("--processor runs inside the watcher and --ray on a cluster; drop one of them.")
    if args.jobs is not None and args.jobs < 1:
        raise InputError(f"--jobs must be 1 or more, got {args.jobs}.")
    processor = load_processor(args.processor) if args.processor else None
    try:
        return WatchOptions(stable_s=args.stable_s, poll_s=args.poll_s, arriving_s=args.arriving_s,
                            workers=args.jobs, once=args.once,
                            duplicates=args.duplicates, processor=processor, out_dir=args.output,
                            ray=args.ray is not None, ray_address=args.ray or None)
    except ValueError as err:
        raise InputError(f"Bad watch option: {err}; use positive numbers.") from None


class _Terminated(KeyboardInterrupt):
    """SIGTERM: the watcher unwinds as on Ctrl-C (jobs stopped, temporaries removed)."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Terminated()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dubber.watch", description="Dub every video dropped into a folder.")
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="dub watch: %(message)s", stream=sys.stderr)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        failed = run_watch(Path(args.root), options_from_args(args))
    except DubError as err:
        sys.stderr.write(f"dub watch: {err}\n")
        return 2
    except KeyboardInterrupt as stop:   # 143 for SIGTERM, as `dub watch`: a supervisor tells it from Ctrl-C
        sys.stderr.write("dub watch: stopped; files left in processing/ resume on the next start.\n")
        return 143 if isinstance(stop, _Terminated) else 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    if failed and args.once:
        sys.stderr.write(f"dub watch: {failures_said(failed)}\n")
        return 2
    return 0


def failures_said(failed: int) -> str:
    """What a `--once` run (cron) that moved files to failed/ says before it exits with status 2."""
    return f"{failed} file{'s' if failed > 1 else ''} failed this run; see failed/ and logs/watch.log."
