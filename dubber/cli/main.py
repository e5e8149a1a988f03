"""The `dub` command.

    dub input.mp4 [-o out.mp4] [options]     dub a video (the default command)
    dub analyze input.mp4 [-o analysis.json] shots, events and captions as JSON
    dub plan input.mp4 [-o plan.json]        the cue plan, to edit and render later
    dub render input.mp4 --plan plan.json    dub a video from a (possibly edited) plan
    dub models download [WHAT] | list        AudioStory and captioner weights
    dub cache info | clean [--older-than N]  what the stage cache holds; free its disk space
    dub watch FOLDER [--once] [--ray]        dub every video dropped into FOLDER/inbox (worker processes or Ray)
    dub batch INPUT... -o OUTDIR [--ray]     dub many videos: local worker processes or a Ray cluster
    dub integrations install resolve|blender put the editor integrations in place
    dub doctor                               what this machine can run, and why

A user error prints one sentence on stderr and exits 2; a bug keeps its traceback and exits 1.
Progress goes to stderr on a terminal, or as JSON lines on stdout with --json-progress.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import shlex
import signal
import sys
import threading
from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

from ..errors import EXIT_USER_ERROR, is_user_error, unusable_path_error
from ..lost_interrupts import keep_interrupts
from .arguments import SUBCOMMANDS, dub_options, run_parser, sub_parser
from .progress import make_reporter, one_line

log = logging.getLogger("dubber")

# ----------------------------------------------------------------------------- commands

def _cmd_dub(args: argparse.Namespace) -> int:
    from .. import api

    options = dub_options(args)
    reporter = make_reporter(args.json_progress)
    if args.review and not (args.force or args.overwrite):
        finished = api.finished_dub(args.input, args.output, options)
        if finished is not None and "review" not in json.loads(finished.read_text(encoding="utf-8"))["outputs"]:
            return _finish_review(finished, reporter)
    with reporter:
        job = api.prepare(args.input, args.output, options)   # every check, once, before any work
        page = job.destinations.video.with_suffix(".review.html") if args.review else None
        if page is not None:
            from ..review import check_review_target

            check_review_target(page, args.force or args.overwrite)
        reason = job.backend_reason
        reporter.notice_on_stage("render", reason)
        from vision.captioners import auto_passed_over

        passed_over = auto_passed_over(options.captioner, options.captioner_model)
        if passed_over:
            reporter.notice(passed_over)
        result = api.run_job(job, progress=reporter)
        stopped: KeyboardInterrupt | None = None
        if page is not None and "manifest" in result.outputs:
            from ..review import write_review

            try:
                # checked before the run; listed in the manifest like the dub's other files
                write_review(result.outputs["manifest"], page, overwrite=True, record=True, progress=reporter)
            except KeyboardInterrupt as stop:
                stopped = stop
            else:
                result = replace(result, outputs={**result.outputs, "review": str(page)})
    if stopped is not None:
        # The dub itself is finished and in place: running it again would only meet its outputs.
        print(f"dub: interrupted while writing the review page; the dub is complete ({result.output}); "
              f"write the page with: dub review {shlex.quote(result.outputs['manifest'])}", file=sys.stderr)
        return _interrupted_status(stopped)
    reporter.done(result, reason)
    return 0


def _finish_review(manifest: Path, reporter) -> int:
    """The same `dub --review` again, after its dub finished and its page was cut short: the page
    is written now (replacing a half-written one only), and nothing else is touched."""
    from ..export.deliverables import read_recorded_outputs
    from ..review import default_review_path, write_review

    page = default_review_path(manifest)
    with reporter:
        reporter.notice(f"the dub is already complete ({manifest}); writing the review page it was cut short of")
        write_review(manifest, page, overwrite=True, record=True, progress=reporter)
    # The same `done` a whole run ends with, for scripts that read it: the dub and all its files.
    outputs = {role: str(path) for role, path in read_recorded_outputs(manifest).items()}
    reporter.finish({"event": "done", "output": outputs.get("video"), "outputs": outputs,
                     "backend": (json.loads(manifest.read_text(encoding="utf-8")).get("render") or {}).get("backend"),
                     "resumed": "review"}, outputs.get("video", str(page)))
    return 0


def _json_target(args: argparse.Namespace, suffix: str) -> Path | None:
    """Where `dub analyze`/`dub plan` write: None means stdout."""
    from .. import api
    from ..options import INPUT_VIDEO_SUFFIXES

    if args.output == "-":
        return None
    src = api.check_input_file(args.input)
    target = Path(args.output).expanduser().absolute() if args.output else src.with_name(src.stem + suffix)
    if target.resolve() == src:
        raise api.OutputError("The output path is the input file itself; choose another name with -o.")
    if target.suffix.lower() in INPUT_VIDEO_SUFFIXES:   # JSON under a video's name: a slip that may replace a film
        raise api.OutputError(f"This command writes JSON, not a video, and {target.name} is a video's name; "
                              "give -o a name ending in .json, or - for standard output.")
    if target.is_file():
        from ..export.deliverables import read_recorded_outputs

        video = read_recorded_outputs(target).get("video")
        if video is not None:   # even with --overwrite: that dub's files would lose their record
            raise api.OutputError(f"{target.name} is the manifest of the dub {video.name}; choose another name with -o.")
    if target.exists() and not (args.force or args.overwrite):
        raise api.OutputError(f"{target} already exists; pass --overwrite to replace it or choose another name with -o.")
    api.check_writable_folder(target.parent, what="output")
    return target


def _write_text(target: Path | None, text: str) -> str:
    from ..atomic import atomic_write_text

    if target is None:
        sys.stdout.write(text)
        return "-"
    target.parent.mkdir(parents=True, exist_ok=True)
    return str(atomic_write_text(target, text))


def _write_stage_json(args: argparse.Namespace, stage: str, key: str, count: str) -> int:
    """Run the pipeline up to `stage` ("analyze" or "plan") and write its result as JSON
    (default name `<input>.<key>.json`); the final event reports the file under `key` and the
    length of the result's `count` list ("shots" or "cues")."""
    from .. import api

    options = dub_options(args)
    api.check_options(options)
    target = _json_target(args, f".{key}.json")
    with make_reporter(args.json_progress, stdout_free=target is not None) as reporter:
        media = api.probe(args.input)   # the size/length limits up front; the analysis reuses it
        result = getattr(api, stage)(args.input, options, progress=reporter, media=media)
        written = _write_text(target, json.dumps(result.to_dict(), indent=2, ensure_ascii=False) + "\n")
    reporter.finish({"event": "done", key: written, count: len(getattr(result, count))}, written)
    return 0


def _cmd_analyze(args: argparse.Namespace) -> int:
    return _write_stage_json(args, "analyze", "analysis", "shots")


def _cmd_plan(args: argparse.Namespace) -> int:
    return _write_stage_json(args, "plan", "plan", "cues")


def _cmd_models(args: argparse.Namespace) -> int:
    from .doctor import models_download, models_list

    if args.action == "list" and args.model:
        from ..errors import InputError

        raise InputError("--model applies to `dub models download`; `dub models list` lists the standard models.")
    return models_download(args.what, args.model) if args.action == "download" else models_list()


def _size_text(size_bytes: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size_bytes >= scale:
            return f"{size_bytes / scale:.1f} {unit}"
    return f"{size_bytes} bytes"


def _cmd_cache(args: argparse.Namespace) -> int:
    from ..cache import cache_summary, clean_cache
    from ..errors import InputError

    if args.action == "info":
        if args.older_than is not None:
            raise InputError("--older-than applies to `dub cache clean` only; drop it.")
        info = cache_summary(args.cache_dir)
        for label, value in (("location", str(info.root)), ("size", _size_text(info.size_bytes)),
                             ("analyses", str(info.analyses)), ("plans", str(info.plans)),
                             ("rendered cues", f"{info.cues} in {info.render_sets} render sets")):
            print(f"{label:<20} {value}")
        for stage, size in info.stage_bytes.items():
            print(f"{'  ' + stage:<20} {_size_text(size)}")
        copies = _converted_copies()
        if copies:   # AudioStory's safetensors copies of pickled weights: gigabytes each
            print(f"{'converted weights':<20} {len(copies)} ({_size_text(sum(c.stat().st_size for c in copies))}) in "
                  f"{copies[0].parent}")
        return 0
    older_than_s = None if args.older_than is None else args.older_than * 86400.0
    done = clean_cache(args.cache_dir, older_than_s)
    print(f"removed {done.removed_files} files ({_size_text(done.freed_bytes)}) from {done.root}; "
          f"kept {done.kept_files}")
    removed = _remove_converted_copies(older_than_s)
    if removed:
        print(f"removed {len(removed)} converted weights ({_size_text(sum(size for _, size in removed))}) "
              f"from {removed[0][0].parent}; the next AudioStory run converts its weights again")
    return 0


def _converted_copies() -> list[Path]:
    """AudioStory's converted weights (none when its package is not installed)."""
    if importlib.util.find_spec("safetensors") is None:
        return []
    from audiostory_core.weight_files import converted_copies

    return converted_copies()


def _remove_converted_copies(older_than_s: float | None) -> list[tuple[Path, int]]:
    if importlib.util.find_spec("safetensors") is None:
        return []
    from audiostory_core.weight_files import remove_converted_copies

    return remove_converted_copies(older_than_s)


def _cmd_watch(args: argparse.Namespace) -> int:
    from ..watch.command import failures_said, options_from_args, run_watch

    try:
        failed = run_watch(Path(args.root), options_from_args(args))
    except KeyboardInterrupt as stop:   # 143 for SIGTERM, as every command: a supervisor tells it from Ctrl-C
        print("dub: watch stopped; files left in processing/ are dubbed first on the next start.", file=sys.stderr)
        return _interrupted_status(stop)
    if failed and args.once:   # a cron job learns of it from the exit status, as from `dub batch`
        print(f"dub: {failures_said(failed)}", file=sys.stderr)
        return 2
    return 0


def _cmd_integrations(args: argparse.Namespace) -> int:
    from integrations.install import install

    written = install(args.target, Path(args.dest).expanduser() if args.dest else None)
    print(written)
    if args.target == "resolve":
        print("dub: restart Resolve, then use Workspace > Scripts > Utility > Dub Shot Audio.", file=sys.stderr)
    else:
        print("dub: in Blender, use Edit > Preferences > Get Extensions > Install from Disk with this zip.",
              file=sys.stderr)
    return 0


def _cmd_studio(args: argparse.Namespace) -> int:
    from ..studio import run

    return run(args)


def _cmd_batch(args: argparse.Namespace) -> int:
    from ..batch import BatchOptions, BatchResult, run_batch

    batch = BatchOptions(out_dir=args.output, jobs=args.jobs, ray=args.ray is not None, ray_address=args.ray or None)
    with make_reporter(args.json_progress) as reporter:
        def said(outcome) -> None:   # each file named as it finishes, not only in the final summary
            if outcome.status == "failed":
                reporter.notice(f"failed {outcome.input}: {outcome.reason}")
            else:
                what = "dubbed" if outcome.status == "done" else "skipped (done by an earlier run)"
                reporter.notice(f"{what} {outcome.input} -> {outcome.output}")

        stopped_at: list[BatchResult] = []   # what each job had come to when an interrupt stopped the batch
        try:
            result = run_batch(args.inputs, batch, dub_options(args), progress=reporter, on_outcome=said,
                               on_notice=reporter.notice,   # what each folder given holds, jobs run again
                               on_interrupt=stopped_at.append)
        except KeyboardInterrupt as stop:
            # A script reading the events tells an interrupted batch from one that crashed.
            partial = stopped_at[-1] if stopped_at else BatchResult(())
            reporter.finish({"event": "interrupted", "summary": partial.summary(),
                             "exit_code": _interrupted_status(stop), "jobs": [vars(o) for o in partial.outcomes]}, "-")
            raise
        reporter.finish({"event": "done", "summary": result.summary(), "exit_code": result.exit_code,
                         "jobs": [vars(o) for o in result.outcomes]}, "-")
    print(f"dub batch: {result.summary()}.", file=sys.stderr)
    return result.exit_code


def _cmd_review(args: argparse.Namespace) -> int:
    from ..review import write_review

    with make_reporter(False) as reporter:   # a bar on a terminal: a feature film's page takes minutes
        page = write_review(args.manifest, args.output, overwrite=args.overwrite,
                            on_notice=lambda line: print(f"dub: {line}", file=sys.stderr), progress=reporter)
    print(f"dub: review page written to {page}", file=sys.stderr)
    return 0


def _cmd_bundle(args: argparse.Namespace) -> int:
    from ..export.bundle import write_bundle

    bundle = write_bundle(args.manifest, args.output, overwrite=args.overwrite)
    print(f"dub: bundle written to {bundle.path} ({len(bundle.media)} media files, "
          f"{bundle.size_bytes / 1e6:.1f} MB); import it in Resolve with File > Import > Timeline", file=sys.stderr)
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import doctor

    return doctor(args.model)


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "dub": _cmd_dub, "render": _cmd_dub, "analyze": _cmd_analyze, "plan": _cmd_plan,
    "models": _cmd_models, "cache": _cmd_cache, "watch": _cmd_watch, "integrations": _cmd_integrations, "doctor": _cmd_doctor,
    "batch": _cmd_batch, "studio": _cmd_studio, "review": _cmd_review,
    "bundle": _cmd_bundle,
}


class _ServiceFormatter(logging.Formatter):
    """What a service's log reads like to its operator: `dub: dubbed a.mp4 -> output/a`, with the
    level named only when something went wrong."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.exc_info:   # a bug inside a job keeps its traceback
            text += "\n" + self.formatException(record.exc_info)
        if record.levelno >= logging.WARNING:
            return f"dub: {record.levelname.lower()}: {text}"
        return f"dub: {text}"


def _setup_logging(verbose: bool, service: bool = False) -> logging.Handler:
    """Route library logs to stderr for this invocation; returns the handler to remove after.

    Library warnings stay off a normal run's stderr (it carries progress and one-line errors);
    --verbose shows what each stage does. A long-running service (`dub watch`, `dub studio`) has
    no progress display, so its stderr carries what it does with each file, every warning and each
    user's mistake."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("dub: %(levelname)s: %(name)s: %(message)s") if verbose
                         else _ServiceFormatter())
    handler.setLevel(logging.INFO if verbose or service else logging.ERROR)
    root = logging.getLogger()
    root.addHandler(handler)
    if verbose:
        root.setLevel(logging.INFO)
    return handler


def _report_user_error(err: BaseException, json_progress: bool) -> int:
    message = one_line(err)
    if json_progress:
        print(json.dumps({"event": "error", "message": message, "exit_code": EXIT_USER_ERROR}), flush=True)
    print(f"dub: {message}", file=sys.stderr)
    return EXIT_USER_ERROR


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: unwind like Ctrl-C (temporaries removed, ffmpeg stopped), exit 143."""


# The signals that reached this process while a command ran, in order (see `main`).
_signals_seen: list[int] = []


def _raise_terminated(signum: int, frame: object) -> None:
    _signals_seen.append(signum)
    raise Terminated()


def _raise_interrupted(signum: int, frame: object) -> None:
    _signals_seen.append(signum)
    raise KeyboardInterrupt


def _signal_of(stop: KeyboardInterrupt) -> int:
    return signal.SIGTERM if isinstance(stop, Terminated) else signal.SIGINT


def _interrupted_status(stop: KeyboardInterrupt) -> int:
    return 143 if isinstance(stop, Terminated) else 130


def _after_interrupt(command: str, args: argparse.Namespace) -> str:
    """What an interrupted command leaves and how to go on: only what is true of this run."""
    cached = not getattr(args, "no_cache", False)
    if command == "batch":
        return ("interrupted; rerun the same command to go on: videos already dubbed are skipped"
                + (", and the others resume from the cache." if cached else "."))
    if not cached and command in ("dub", "render", "analyze", "plan"):
        return "interrupted; with --no-cache nothing was kept, so a rerun starts again from the beginning."
    if command == "analyze":   # one stage, cached only once complete
        return "interrupted; the analysis is kept only once it is complete, so a rerun reads the video again."
    if command in ("dub", "render", "plan"):
        return "interrupted; rerun the same command: the stages that finished come from the cache."
    if command == "studio":
        return ("studio stopped; its projects stay in its work folder for the next dub studio, which clears away "
                "a take this one was rendering.")
    return "interrupted."


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `dub` console script. Returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv and argv[0] in SUBCOMMANDS else "dub"
    parser = run_parser() if command == "dub" else sub_parser(command)
    try:
        args = parser.parse_args(argv if command == "dub" else argv[1:])
    except SystemExit:
        # a script reading the progress events hears of a bad command line as of any other error
        if getattr(parser, "usage_error", None) and "--json-progress" in argv:
            print(json.dumps({"event": "error", "message": parser.usage_error, "exit_code": EXIT_USER_ERROR}),
                  flush=True)
        raise
    handler = _setup_logging(getattr(args, "verbose", False), service=command in ("watch", "studio"))
    on_main_thread = threading.current_thread() is threading.main_thread()
    seen = len(_signals_seen)
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if on_main_thread else None
    # Ctrl-C is recorded as well; an ignored one (a background job of a shell) stays ignored.
    records_int = on_main_thread and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    if records_int:
        signal.signal(signal.SIGINT, _raise_interrupted)
    previous_hook = keep_interrupts(_signal_of) if on_main_thread else None
    try:
        return _COMMANDS[command](args)
    except KeyboardInterrupt as stop:
        print(f"dub: {_after_interrupt(command, args)}", file=sys.stderr)
        return _interrupted_status(stop)
    except Exception as err:
        if len(_signals_seen) > seen:
            # What fails after an interrupt is its doing: an import it cut short raises ImportError
            # (numpy turns KeyboardInterrupt into one), not a bug to show with a traceback.
            log.debug("after an interrupt", exc_info=err)
            print(f"dub: {_after_interrupt(command, args)}", file=sys.stderr)
            return 143 if signal.SIGTERM in _signals_seen[seen:] else 130
        if not is_user_error(err):
            err = unusable_path_error(err) or err   # a path no file system takes: the user's to fix
        if not is_user_error(err):
            raise   # a bug keeps its traceback
        return _report_user_error(err, getattr(args, "json_progress", False))
    finally:
        logging.getLogger().removeHandler(handler)
        if on_main_thread:
            signal.signal(signal.SIGTERM, previous)
        if records_int:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        if previous_hook is not None:
            sys.unraisablehook = previous_hook


if __name__ == "__main__":
    raise SystemExit(main())
