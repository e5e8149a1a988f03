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
from typing import Callable, NoReturn, Sequence

from ..errors import EXIT_USER_ERROR, is_user_error
from ..styles import STYLE_PRESETS
from .progress import make_reporter, one_line

log = logging.getLogger("dubber")

SUBCOMMANDS = ("analyze", "plan", "render", "models", "cache", "watch", "integrations", "doctor", "batch", "studio",
               "review", "bundle")
MODEL_KINDS = ("audiostory", "clip", "vlm")
STYLE_HELP = ", ".join(STYLE_PRESETS)
DEFAULT_OUTPUT_HELP = ("output video (default: <input>.dub.mp4 next to the input; "
                       "a .mov or .mkv input keeps its container, and a picture an .mp4 cannot carry gets a "
                       ".mov or .mkv)")


def _version() -> str:
    from .. import __version__

    return __version__


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit 2), like every other user error."""

    def error(self, message: str) -> NoReturn:
        from ..options import INPUT_VIDEO_SUFFIXES

        extra = message.partition("unrecognized arguments: ")[2].split()
        if self.prog == "dub" and extra and all(Path(a).suffix.lower() in INPUT_VIDEO_SUFFIXES for a in extra):
            # `dub a.mp4 b.mp4`: several videos are a batch
            self.exit(EXIT_USER_ERROR, "dub: dub takes one video; to dub several, run "
                                       "dub batch VIDEO... -o OUTDIR.\n")
        self.exit(EXIT_USER_ERROR, f"{self.prog}: {message}; see {self.prog} --help.\n")


# ----------------------------------------------------------------------------- argument groups

def _add_output(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("-o", "--output", metavar="PATH", help=what)
    p.add_argument("--force", action="store_true",
                   help="overwrite existing outputs and recompute every cached stage")
    p.add_argument("--json-progress", action="store_true",
                   help="print one JSON object per progress event on stdout (for scripts)")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--captioner", default="auto", metavar="NAME",
                   help="shot captioner: auto (default: vlm when its weights are here, else motion), "
                        "motion (no model), clip or vlm")
    p.add_argument("--captioner-model", metavar="PATH_OR_ID",
                   help="the clip or vlm captioner's weights: a local model folder or a Hugging Face Hub id")
    p.add_argument("--cache-dir", metavar="DIR", help="stage cache (default: $DUB_CACHE_DIR or ~/.cache/dubber)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the stage cache")
    p.add_argument("--full-hash", action="store_true",
                   help="key the cache on every byte of the input, not its size, date and ends")
    p.add_argument("-v", "--verbose", action="store_true", help="log what each stage does")


def _add_style(p: argparse.ArgumentParser) -> None:
    p.add_argument("--style", default="tom-and-jerry", help=f"soundtrack style: {STYLE_HELP}")
    p.add_argument("--seed", type=int, default=0, help="base seed; the same seed gives the same soundtrack")


def _add_render(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default="auto", metavar="NAME",
                   help="auto (AudioStory on a GPU with weights, else the score engine), audiostory or score")
    p.add_argument("--keep-original", action="store_true",
                   help="mix the original audio under the dub and keep it as a second track")
    p.add_argument("--original-gain", type=float, default=None, metavar="DB",
                   help="gain on the original audio under the dub (default -12 dB), before the whole mix, "
                        "bed included, is brought to the --lufs target")
    p.add_argument("--lufs", default="-16", metavar="N|ebu|atsc",
                   help="loudness target in LUFS (default -16), or ebu (-23) / atsc (-24)")
    p.add_argument("--stems", metavar="DIR", help="also write NAME.mix.wav and one NAME.<stem>.wav per stem into DIR (NAME: the output's)")
    p.add_argument("--timeline", action="store_true",
                   help="also write .otio, .fcpxml and .srt next to the output, and the stems they use "
                        "(into <output>_stems/ unless --stems is given)")
    p.add_argument("--model", metavar="PATH|REPO", help="AudioStory checkpoint folder or Hub repo id")
    p.add_argument("--device", metavar="DEV", help="cpu, cuda or cuda:N (default: CUDA when present)")
    p.add_argument("--timing", default="shots", metavar="MODE",
                   help="shots (one clip per shot, default) or free (AudioStory lays out its own clips)")
    p.add_argument("--render-group", type=int, metavar="N",
                   help="cues per render call, cached as each call ends (default: per backend)")
    p.add_argument("--soundfont", metavar="PATH",
                   help="SF2 bank for the score engine (default: TimGM6mb, GPL-2.0, from the pretty_midi package)")


def _add_one_video(p: argparse.ArgumentParser) -> None:
    """Options that belong to one video's dub (not to a batch of them)."""
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing outputs, reusing the stage cache (--force also recomputes every stage)")
    p.add_argument("--review", action="store_true",
                   help="also write <output>.review.html: spectrograms, sync figures and players, offline")
    p.add_argument("--hits", metavar="FILE",
                   help="hit list: frames to hit, one a line (12.5 | 300f | 00:00:12:12 [, kind [, strength [, length s]]]), "
                        "added to the events found in the picture")
    p.add_argument("--hits-only", action="store_true", help="hit the --hits list and no detected event")


def _run_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="dub", description="Give a video a soundtrack cut to its shots.",
                formatter_class=argparse.RawDescriptionHelpFormatter,
                epilog="other commands:\n"
                       "  dub analyze INPUT    write the shot analysis as JSON\n"
                       "  dub plan INPUT       write the cue plan as JSON (edit it, then dub render)\n"
                       "  dub render INPUT --plan PLAN   dub from a plan file\n"
                       "  dub models download|list       AudioStory and captioner weights\n"
                       "  dub cache info|clean           the stage cache's size; free its disk space\n"
                       "  dub watch FOLDER     dub every video dropped into FOLDER/inbox\n"
                       "  dub batch INPUT... -o OUTDIR   dub many videos (local workers, or --ray)\n"
                       "  dub integrations install resolve|blender   editor integrations\n"
                       "  dub doctor           what this machine can run\n"
                       "  dub review OUT.json  a self-contained HTML page to review a dub\n"
                       "  dub bundle OUT.json  the dub's timeline and all its media in one .otioz to hand on\n"
                       "  dub studio           a local web app to edit and re-render shot by shot\n"
                       "run `dub COMMAND --help` for each command's options.")
    p.add_argument("input", help="video to dub (never modified)")
    p.add_argument("--version", action="version", version=f"dub {_version()}")
    _add_output(p, DEFAULT_OUTPUT_HELP)
    _add_style(p)
    _add_render(p)
    _add_one_video(p)
    _add_common(p)
    return p


def _sub_parser(command: str) -> argparse.ArgumentParser:
    p = _Parser(prog=f"dub {command}")
    if command == "models":
        p.add_argument("action", choices=("download", "list"))
        p.add_argument("what", nargs="?", choices=MODEL_KINDS, default="audiostory",
                       help="which weights to download: audiostory (default), clip or vlm captioner")
        p.add_argument("--model", metavar="REPO",
                       help="Hub repo id (default: the standard model of WHAT, e.g. TencentARC/AudioStory-3B)")
        return p
    if command == "review":
        p.add_argument("manifest", metavar="OUT.json", help="the manifest dub wrote beside its output")
        p.add_argument("-o", "--output", metavar="PAGE", help="the HTML page (default: <manifest>.review.html)")
        p.add_argument("--overwrite", "--force", action="store_true", help="replace an existing page")
        return p
    if command == "bundle":
        p.add_argument("manifest", metavar="OUT.json", help="the manifest of a dub written with --timeline")
        p.add_argument("-o", "--output", metavar="BUNDLE",
                       help="the .otioz file or its folder (default: beside the .otio, named like it)")
        p.add_argument("--overwrite", "--force", action="store_true", help="replace an existing bundle")
        return p
    if command == "cache":
        p.add_argument("action", choices=("info", "clean"))
        p.add_argument("--older-than", type=_days, metavar="DAYS",
                       help="clean only entries written more than DAYS days ago (default: every entry)")
        p.add_argument("--cache-dir", metavar="DIR", help="stage cache (default: $DUB_CACHE_DIR or ~/.cache/dubber)")
        return p
    if command == "watch":
        from ..watch.command import add_arguments   # light: the pipeline loads only when a job runs

        add_arguments(p)
        p.add_argument("-v", "--verbose", action="store_true", help="log what each stage does")
        return p
    if command == "integrations":
        p.add_argument("action", choices=("install",))
        p.add_argument("target", metavar="TARGET", help="resolve (DaVinci Resolve script) or blender (extension zip)")
        p.add_argument("--dest", metavar="DIR",
                       help="destination folder (default: Resolve's scripts folder; the current folder for blender)")
        return p
    if command == "doctor":
        p.add_argument("--model", metavar="PATH|REPO", help="AudioStory checkpoint to look for")
        return p
    if command == "batch":
        _add_batch(p)
        return p
    if command == "studio":
        from ..studio import add_arguments as add_studio_arguments   # light: gradio loads on start

        add_studio_arguments(p)
        return p
    p.add_argument("input", help="video file")
    if command in ("analyze", "plan"):
        if command == "analyze":
            _add_output(p, "analysis JSON (default: <input>.analysis.json next to the input; - for stdout)")
        else:
            _add_output(p, "plan JSON (default: <input>.plan.json next to the input; - for stdout)")
            _add_style(p)
        # as on `dub` and `dub review`: replace the file, reusing the cache (--force also recomputes)
        p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    else:
        p.add_argument("--plan", required=True, metavar="PLAN", help="plan JSON from `dub plan`")
        _add_output(p, DEFAULT_OUTPUT_HELP)
        _add_render(p)
        _add_one_video(p)
    _add_common(p)
    return p


def _add_batch(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="videos, or folders of them, to dub (never modified)")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR",
                   help="folder of the outputs (<input>.dub.mp4 each) and of the job ledger; on a cluster, "
                        "a path every node reaches")
    p.add_argument("--jobs", type=int, metavar="N", help="local worker processes (default: one per CPU core)")
    p.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                   help="run the jobs on Ray: the cluster at ADDRESS (or $RAY_ADDRESS), else the one on "
                        "this machine, started if needed")
    p.add_argument("--force", action="store_true", help="redo finished jobs, overwrite outputs, recompute the cache")
    p.add_argument("--overwrite", action="store_true",
                   help="replace outputs that already exist (a job whose settings changed), reusing the cache")
    p.add_argument("--json-progress", action="store_true",
                   help="print one JSON object per progress event on stdout (for scripts)")
    _add_style(p)
    _add_render(p)
    _add_common(p)


def _options(args: argparse.Namespace):
    from ..api import DubOptions

    fields = {"captioner": args.captioner, "captioner_model": args.captioner_model, "force": args.force,
              "cache_dir": args.cache_dir,
              "use_cache": not args.no_cache, "full_hash": args.full_hash}
    if hasattr(args, "style"):
        fields.update(style=args.style, seed=args.seed)
    if hasattr(args, "backend"):
        if args.original_gain is not None:
            if not args.keep_original:   # a level asked for a sound the dub would leave out
                from ..errors import InputError

                raise InputError("--original-gain sets the level of the source's own sound under the dub; "
                                 "add --keep-original to keep that sound.")
            fields["original_gain_db"] = args.original_gain
        fields.update(backend=args.backend, lufs=args.lufs, keep_original=args.keep_original,
                      stems_dir=args.stems, timeline=args.timeline,
                      model=args.model, device=args.device, timing=args.timing,
                      render_group=args.render_group, soundfont=args.soundfont)
    if hasattr(args, "hits"):
        fields.update(hits_path=args.hits, hits_only=args.hits_only)
    if hasattr(args, "overwrite"):
        fields["overwrite"] = args.overwrite
    if getattr(args, "plan", None):
        fields["plan_path"] = args.plan
    return DubOptions(**fields)


# ----------------------------------------------------------------------------- commands

def _cmd_dub(args: argparse.Namespace) -> int:
    from .. import api

    options = _options(args)
    reporter = make_reporter(args.json_progress)
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

            reporter("review", 0, 1)
            try:
                # checked before the run; listed in the manifest like the dub's other files
                write_review(result.outputs["manifest"], page, overwrite=True, record=True)
            except KeyboardInterrupt as stop:
                stopped = stop
            else:
                reporter("review", 1, 1)
                result = replace(result, outputs={**result.outputs, "review": str(page)})
    if stopped is not None:
        # The dub itself is finished and in place: running it again would only meet its outputs.
        print(f"dub: interrupted while writing the review page; the dub is complete ({result.output}); "
              f"write the page with: dub review {shlex.quote(result.outputs['manifest'])}", file=sys.stderr)
        return _interrupted_status(stopped)
    reporter.done(result, reason)
    return 0


def _json_target(args: argparse.Namespace, suffix: str) -> Path | None:
    """Where `dub analyze`/`dub plan` write: None means stdout."""
    from .. import api

    if args.output == "-":
        return None
    src = api.check_input_file(args.input)
    target = Path(args.output).expanduser().absolute() if args.output else src.with_name(src.stem + suffix)
    if target.resolve() == src:
        raise api.OutputError("The output path is the input file itself; choose another name with -o.")
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

    options = _options(args)
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


def _days(text: str) -> float:
    try:
        days = float(text)
    except ValueError:
        days = -1.0
    if not days >= 0:   # also refuses nan
        raise argparse.ArgumentTypeError(f"give a number of days, 0 or more, not {text!r}")
    return days


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
            result = run_batch(args.inputs, batch, _options(args), progress=reporter, on_outcome=said,
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

    page = write_review(args.manifest, args.output, overwrite=args.overwrite,
                        on_notice=lambda line: print(f"dub: {line}", file=sys.stderr))
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
    return "interrupted."


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `dub` console script. Returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv and argv[0] in SUBCOMMANDS else "dub"
    parser = _run_parser() if command == "dub" else _sub_parser(command)
    args = parser.parse_args(argv if command == "dub" else argv[1:])
    handler = _setup_logging(getattr(args, "verbose", False), service=command in ("watch", "studio"))
    on_main_thread = threading.current_thread() is threading.main_thread()
    seen = len(_signals_seen)
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if on_main_thread else None
    # Ctrl-C is recorded as well; an ignored one (a background job of a shell) stays ignored.
    records_int = on_main_thread and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    if records_int:
        signal.signal(signal.SIGINT, _raise_interrupted)
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
            raise   # a bug keeps its traceback
        return _report_user_error(err, getattr(args, "json_progress", False))
    finally:
        logging.getLogger().removeHandler(handler)
        if on_main_thread:
            signal.signal(signal.SIGTERM, previous)
        if records_int:
            signal.signal(signal.SIGINT, signal.default_int_handler)


if __name__ == "__main__":
    raise SystemExit(main())
