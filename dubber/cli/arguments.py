"""The `dub` command line's arguments: the parser of `dub INPUT`, one for each other command, and
the DubOptions a parsed command line asks for."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable, NoReturn

from ..errors import EXIT_USER_ERROR
from ..styles import STYLE_PRESETS

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

    # The last usage error's sentence, for the error event of --json-progress (see `cli.main`).
    usage_error: str | None = None

    def error(self, message: str) -> NoReturn:
        from ..options import INPUT_VIDEO_SUFFIXES

        extra = message.partition("unrecognized arguments: ")[2].split()
        if self.prog == "dub" and extra and all(Path(a).suffix.lower() in INPUT_VIDEO_SUFFIXES for a in extra):
            # `dub a.mp4 b.mp4`: several videos are a batch
            self.usage_error = "dub takes one video; to dub several, run dub batch VIDEO... -o OUTDIR."
            self.exit(EXIT_USER_ERROR, f"dub: {self.usage_error}\n")
        self.usage_error = f"{message}; see {self.prog} --help."
        self.exit(EXIT_USER_ERROR, f"{self.prog}: {self.usage_error}\n")


# ----------------------------------------------------------------------------- argument groups

def _add_output(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("-o", "--output", type=_path, metavar="PATH", help=what)
    p.add_argument("--force", action="store_true",
                   help="overwrite existing outputs and recompute every cached stage")
    p.add_argument("--json-progress", action="store_true",
                   help="print one JSON object per progress event on stdout (for scripts)")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--captioner", default="auto", metavar="NAME",
                   help="shot captioner: auto (default: vlm when its weights are here, else motion), "
                        "motion (no model), clip or vlm")
    p.add_argument("--captioner-model", type=_path, metavar="PATH_OR_ID",
                   help="the clip or vlm captioner's weights: a local model folder or a Hugging Face Hub id")
    p.add_argument("--cache-dir", type=_path, metavar="DIR", help="stage cache (default: $DUB_CACHE_DIR or ~/.cache/dubber)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the stage cache")
    p.add_argument("--full-hash", action="store_true",
                   help="key the cache on every byte of the input, not its size, date and ends")
    p.add_argument("-v", "--verbose", action="store_true", help="log what each stage does")


def _add_style(p: argparse.ArgumentParser) -> None:
    p.add_argument("--style", default="tom-and-jerry", help=f"soundtrack style: {STYLE_HELP}")
    p.add_argument("--seed", type=int, default=0, help="base seed; the same seed gives the same soundtrack")


def _add_render(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default="auto", metavar="NAME",
                   help="auto (the default: AudioStory on a GPU with its weights, else the score engine), "
                        "audiostory or score")
    p.add_argument("--keep-original", action="store_true",
                   help="mix the original audio under the dub and keep it as a second track")
    p.add_argument("--original-gain", type=float, default=None, metavar="DB",
                   help="gain on the original audio under the dub (default -12 dB), before the whole mix, "
                        "bed included, is brought to the --lufs target")
    p.add_argument("--lufs", default="-16", metavar="N|ebu|atsc",
                   help="loudness target in LUFS (default -16), or ebu (-23) / atsc (-24)")
    p.add_argument("--stems", type=_path, metavar="DIR", help="also write NAME.mix.wav and one NAME.<stem>.wav per stem into DIR (NAME: the output's)")
    p.add_argument("--timeline", action="store_true",
                   help="also write .otio, .fcpxml and .srt next to the output, and the stems they use "
                        "(into <output>_stems/ unless --stems is given)")
    p.add_argument("--model", type=_path, metavar="PATH|REPO",
                   help="AudioStory checkpoint folder or Hub repo id (default: TencentARC/AudioStory-3B in the "
                        "Hugging Face cache; `dub models download` fetches it)")
    p.add_argument("--device", metavar="DEV", help="cpu, cuda or cuda:N (default: CUDA when present)")
    p.add_argument("--precision", metavar="NAME",
                   help="AudioStory's float16 (the default on a GPU, as released), bfloat16 or float32 (the CPU's)")
    p.add_argument("--timing", default="shots", metavar="MODE",
                   help="shots (one clip per shot, default) or free (AudioStory lays out its own clips)")
    p.add_argument("--render-group", type=int, metavar="N",
                   help="cues per render call, cached as each call ends (default: per backend)")
    p.add_argument("--soundfont", type=_path, metavar="PATH",
                   help="SF2 bank for the score engine (default: TimGM6mb, GPL-2.0, from the pretty_midi package)")


def _add_one_video(p: argparse.ArgumentParser) -> None:
    """Options that belong to one video's dub (not to a batch of them)."""
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing outputs, reusing the stage cache (--force also recomputes every stage)")
    p.add_argument("--review", action="store_true",
                   help="also write <output>.review.html: spectrograms, sync figures and players, offline")
    p.add_argument("--hits", type=_path, metavar="FILE",
                   help="hit list: frames to hit, one a line (12.5 | 300f | 00:00:12:12 [, kind [, strength [, length s]]]; "
                        "kind none drops the events found there), or an .otio timeline's markers; added to the events "
                        "found in the picture")
    p.add_argument("--hits-only", action="store_true", help="hit the --hits list and no detected event")


def run_parser() -> argparse.ArgumentParser:
    """The parser of `dub INPUT` itself."""
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
    p.add_argument("input", type=_path, help="video to dub (never modified)")
    p.add_argument("--version", action="version", version=f"dub {_version()}")
    _add_output(p, DEFAULT_OUTPUT_HELP)
    _add_style(p)
    _add_render(p)
    _add_one_video(p)
    _add_common(p)
    return p


def sub_parser(command: str) -> argparse.ArgumentParser:
    """The parser of `dub COMMAND`."""
    p = _Parser(prog=f"dub {command}")
    _SUB_ARGUMENTS.get(command, _add_video_command)(p, command)
    return p


def _add_models(p: argparse.ArgumentParser, command: str) -> None:
    p.add_argument("action", choices=("download", "list"))
    p.add_argument("what", nargs="?", choices=MODEL_KINDS, default="audiostory",
                   help="which weights to download: audiostory (default), clip or vlm captioner")
    p.add_argument("--model", type=_path, metavar="REPO",
                   help="Hub repo id (default: the standard model of WHAT, e.g. TencentARC/AudioStory-3B)")


def _add_review(p: argparse.ArgumentParser, command: str) -> None:
    p.add_argument("manifest", type=_path, metavar="OUT.json", help="the manifest dub wrote beside its output")
    p.add_argument("-o", "--output", type=_path, metavar="PAGE", help="the HTML page (default: <manifest>.review.html)")
    p.add_argument("--overwrite", "--force", action="store_true", help="replace an existing page")


def _add_bundle(p: argparse.ArgumentParser, command: str) -> None:
    p.add_argument("manifest", type=_path, metavar="OUT.json", help="the manifest of a dub written with --timeline")
    p.add_argument("-o", "--output", type=_path, metavar="BUNDLE",
                   help="the .otioz file or its folder (default: beside the .otio, named like it)")
    p.add_argument("--overwrite", "--force", action="store_true", help="replace an existing bundle")


def _add_cache(p: argparse.ArgumentParser, command: str) -> None:
    p.add_argument("action", choices=("info", "clean"))
    p.add_argument("--older-than", type=_days, metavar="DAYS",
                   help="clean only entries written more than DAYS days ago (default: every entry)")
    p.add_argument("--cache-dir", type=_path, metavar="DIR", help="stage cache (default: $DUB_CACHE_DIR or ~/.cache/dubber)")


def _add_watch(p: argparse.ArgumentParser, command: str) -> None:
    from ..watch.command import add_arguments   # light: the pipeline loads only when a job runs

    add_arguments(p)
    p.add_argument("-v", "--verbose", action="store_true", help="log what each stage does")


def _add_integrations(p: argparse.ArgumentParser, command: str) -> None:
    p.add_argument("action", choices=("install",))
    p.add_argument("target", metavar="TARGET", help="resolve (DaVinci Resolve script) or blender (extension zip)")
    p.add_argument("--dest", type=_path, metavar="DIR",
                   help="destination folder (default: Resolve's scripts folder; the current folder for blender)")


def _add_doctor(p: argparse.ArgumentParser, command: str) -> None:
    p.add_argument("--model", type=_path, metavar="PATH|REPO", help="AudioStory checkpoint to look for")


def _add_studio(p: argparse.ArgumentParser, command: str) -> None:
    from ..studio import add_arguments as add_studio_arguments   # light: gradio loads on start

    add_studio_arguments(p)


def _add_video_command(p: argparse.ArgumentParser, command: str) -> None:
    """analyze, plan and render: one video in, JSON or a dub out."""
    p.add_argument("input", type=_path, help="video file")
    if command in ("analyze", "plan"):
        if command == "analyze":
            _add_output(p, "analysis JSON (default: <input>.analysis.json next to the input; - for stdout)")
        else:
            _add_output(p, "plan JSON (default: <input>.plan.json next to the input; - for stdout)")
            _add_style(p)
        # as on `dub` and `dub review`: replace the file, reusing the cache (--force also recomputes)
        p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    else:
        p.add_argument("--plan", type=_path, required=True, metavar="PLAN", help="plan JSON from `dub plan`")
        _add_output(p, DEFAULT_OUTPUT_HELP)
        _add_render(p)
        _add_one_video(p)
    _add_common(p)


def _add_batch(p: argparse.ArgumentParser, command: str = "batch") -> None:
    p.add_argument("inputs", type=_path, nargs="+", metavar="INPUT", help="videos, or folders of them, to dub (never modified)")
    p.add_argument("-o", "--output", type=_path, required=True, metavar="OUTDIR",
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


def dub_options(args: argparse.Namespace):
    """The DubOptions a parsed command line asks for."""
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
                      model=args.model, device=args.device, precision=args.precision, timing=args.timing,
                      render_group=args.render_group, soundfont=args.soundfont)
    if hasattr(args, "hits"):
        fields.update(hits_path=args.hits, hits_only=args.hits_only)
    if hasattr(args, "overwrite"):
        fields["overwrite"] = args.overwrite
    if getattr(args, "plan", None):
        fields["plan_path"] = args.plan
    return DubOptions(**fields)


def _path(text: str) -> str:
    """A file, folder or model named on the command line. An empty one (a script's unset
    variable) would name the current folder to every path function, so it is refused."""
    if not text.strip():
        raise argparse.ArgumentTypeError("needs a path, not an empty value")
    return text


def _days(text: str) -> float:
    try:
        days = float(text)
    except ValueError:
        days = -1.0
    if not days >= 0:   # also refuses nan
        raise argparse.ArgumentTypeError(f"give a number of days, 0 or more, not {text!r}")
    return days


_SUB_ARGUMENTS: dict[str, Callable[[argparse.ArgumentParser, str], None]] = {
    "models": _add_models, "review": _add_review, "bundle": _add_bundle, "cache": _add_cache, "watch": _add_watch,
    "integrations": _add_integrations, "doctor": _add_doctor, "batch": _add_batch, "studio": _add_studio,
}
