"""Dub Shot Audio: give the clip under the playhead a timed soundtrack, from inside DaVinci Resolve.

Installed into Workspace > Scripts > Utility by `dub integrations install resolve`. It runs in
Resolve's own Python, so it uses the standard library only and never imports the dubbing engine:
it calls the `dub` command, reads the manifest it writes (dub.json) and places the stems.

Steps:
1. Read the current timeline: start frame, frame rate, the video clip under the playhead (or at
   the mark-in point) and the media file behind it.
2. Run `dub FILE -o OUT --json-progress --stems DIR --timeline` on the whole media file as a
   subprocess, into a new take folder (`<name>_dub`, `<name>_dub-2`, ...) so that media an
   earlier run put in the "Dub" bin never changes, showing its progress and dub's notices;
   Cancel kills the process. dub caches its analysis of the file, so another clip of the same
   file, or a rerun, skips the analysis.
3. Import the stems into a "Dub" bin, add one audio track per stem and place one clip per shot
   in ONE AppendToTimeline batch, then add a marker per shot carrying its caption.
4. When scripting cannot place clips, import the written .otio instead, or say in one sentence
   how to do it by hand (File > Import > Timeline).

Resolve behaviour this relies on is recorded in api_surface.json next to this file: recordFrame
is absolute, endFrame is exclusive, every frame value must be an int (one float rejects the
whole batch), and WAV media counts its frames at 24 fps.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

log = logging.getLogger("dub_resolve")

CONFIG_NAME = "dub_resolve.json"
KEPT_CONTAINERS = (".mp4", ".mov", ".m4v", ".mkv")   # a dub of one of these keeps its container
# Any other source: WebM's VP8/VP9/AV1 fit only Matroska of what dub writes, and .mov carries what
# .mxf and .avi hold (DNxHD/DNxHR, ProRes, HuffYUV, UT Video, uncompressed RGB), which .mp4 cannot.
WEBM_OUTPUT_SUFFIX = ".mkv"
OTHER_OUTPUT_SUFFIX = ".mov"
MAX_TAKES = 999   # take folders per source: <name>_dub, <name>_dub-2, ... <name>_dub-999


class ConfigError(Exception):
    """dub_resolve.json cannot be used; the message says where and what to do, in one sentence."""


def _script_dir() -> Path | None:
    try:
        return Path(__file__).resolve().parent
    except NameError:  # some Resolve versions run menu scripts without __file__
        return None


def load_config(script_dir: Path | None) -> dict:
    """Settings written by the installer next to this script (dub command, style, backend,
    lufs, keep_original).

    Raises ConfigError when the file cannot be read: users edit it by hand."""
    candidates = [Path(os.environ["DUB_RESOLVE_CONFIG"])] if os.environ.get("DUB_RESOLVE_CONFIG") else []
    if script_dir is not None:
        candidates.append(script_dir / CONFIG_NAME)
    for path in candidates:
        if path.is_file():
            return _read_config(path)
    return {}


def _read_config(path: Path) -> dict:
    fix = "fix it, or delete it and run `dub integrations install resolve` again"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ConfigError(f"The settings file {path} is not valid JSON at line {err.lineno}, column {err.colno} "
                          f"({err.msg.lower()}); {fix}.") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"The settings file {path} cannot be read ({err}); {fix}.") from None
    if not isinstance(config, dict):
        raise ConfigError(f"The settings file {path} does not hold a JSON object of settings; {fix}.")
    return config


def _import_bridge(config: Mapping[str, Any]):
    """resolve_bridge from the installed dubber package (its folder is in the config written by
    the installer), or from next to this script."""
    folders = [str(p) for p in (config.get("bridge_dir"), _script_dir()) if p]
    sys.path[:0] = [f for f in folders if f not in sys.path]
    try:
        import resolve_bridge
    except ImportError:
        print("The dub bridge was not found; run `dub integrations install resolve` again from the dubber environment.")
        raise
    return resolve_bridge


CONFIG, CONFIG_ERROR = {}, ""
try:
    CONFIG = load_config(_script_dir())
except ConfigError as _err:
    CONFIG_ERROR = str(_err)
# Without readable settings the installed bridge's folder is unknown, so the script can only say
# what is wrong with them (main does); a traceback here would bury that sentence.
rb = None if CONFIG_ERROR else _import_bridge(CONFIG)
DubScriptError = rb.DubScriptError if rb is not None else ConfigError
Runner = Callable[[Sequence[str]], dict]


def dub_command(config: Mapping[str, Any]) -> list[str]:
    if os.environ.get("DUB_EXE"):
        return [os.environ["DUB_EXE"]]
    if config.get("dub"):
        return [str(p) for p in config["dub"]]
    found = shutil.which("dub")
    if found is None:
        raise DubScriptError("The dub command was not found; run `dub integrations install resolve` from the dubber environment.")
    return [found]


def take_names(source: Path):
    """`<name>_dub`, then `<name>_dub-2`, `<name>_dub-3`, ...: the take folders of one source."""
    yield f"{source.stem}_dub"
    for number in range(2, MAX_TAKES + 1):
        yield f"{source.stem}_dub-{number}"


def take_timeline_name(source: Path, take_folder: Path) -> str:
    """"<name> dub" for the first take, "<name> dub 2" for the take in `<name>_dub-2`: Resolve
    keeps timeline names unique and refuses an import under a name already taken."""
    # (no str.removeprefix: the script runs on the Python Resolve finds, 3.7 and later)
    base = f"{source.stem}_dub"
    number = take_folder.name[len(base):] if take_folder.name.startswith(base) else take_folder.name
    number = number[1:] if number.startswith("-") else number
    return f"{source.stem} dub" + (f" {number}" if number else "")


def output_dir_for(source: Path) -> Path:
    """A new, empty take folder next to the source, or in the home folder when the source folder
    is read-only. Media already imported into the "Dub" bin lives in earlier take folders and is
    never written again; creating the folder here claims its name against any other run."""
    for base in (source.parent, Path.home() / "Dub"):
        try:
            base.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        for name in take_names(source):
            try:
                (base / name).mkdir()
            except FileExistsError:
                continue
            except OSError:
                break
            if os.access(base / name, os.W_OK):
                return base / name
            _discard(base / name)
            break
        else:
            raise DubScriptError(f"{base} already holds {MAX_TAKES} dubs of {source.name}; move or delete those "
                                 "no longer in your projects.")
    raise DubScriptError(f"Cannot write next to {source} or in your home folder; free some space or fix permissions.")


def _discard(folder: Path) -> None:
    """Remove a take folder whose dub failed or was cancelled: nothing in it was imported."""
    shutil.rmtree(folder, ignore_errors=True)


def run_into(run: Runner, config: Mapping[str, Any], source: Path, out_dir: Path) -> dict:
    """Run dub into the new take folder `out_dir`; a failed run leaves no folder behind, so the
    next run is given the same take name."""
    try:
        return run(build_args(config, source, out_dir))
    except BaseException:
        _discard(out_dir)
        raise


def output_suffix_for(source: Path) -> str:
    """The container of the dubbed video: dub copies the picture unchanged, so it must carry the
    source's codec. This script cannot probe the codec, so the rule goes by the source's suffix."""
    suffix = source.suffix.lower()
    if suffix in KEPT_CONTAINERS:
        return suffix
    return WEBM_OUTPUT_SUFFIX if suffix == ".webm" else OTHER_OUTPUT_SUFFIX


def build_args(config: Mapping[str, Any], source: Path, out_dir: Path) -> list[str]:
    """The dub command line for `source`, writing into the take folder `out_dir` with files named
    after it, so the media of each take has its own names in the "Dub" bin. No --overwrite: the
    folder is new, and a rerun still reuses dub's cached analysis of the same file."""
    out_video = out_dir / f"{out_dir.name}{output_suffix_for(source)}"
    args = dub_command(config) + [str(source), "-o", str(out_video), "--json-progress",
                                  "--stems", str(out_dir / "stems"), "--timeline"]
    for key in ("style", "backend", "lufs"):
        if config.get(key) is not None:
            args += [f"--{key}", str(config[key])]
    if keeps_original(config):
        args.append("--keep-original")
    return args


def keeps_original(config: Mapping[str, Any]) -> bool:
    """`"keep_original": true` in dub_resolve.json: the dub keeps the source's sound, lowered and
    ducked under it, as its "original" stem (and in the output video)."""
    return str(config.get("keep_original", "")).strip().lower() in ("true", "yes", "1")


def console_progress(event: Mapping[str, Any]) -> None:
    print(rb.describe(event), flush=True)


def console_runner(args: Sequence[str]) -> dict:
    """Progress in Workspace > Console; used when no window can be shown."""
    return rb.run_dub(args, console_progress, lambda: False)


class ProgressWindow:
    """A small window (Fusion's UIManager, present inside Resolve) with the current stage and a
    Cancel button. dub runs on a worker thread while the window's event loop runs here."""

    def __init__(self, fusion: Any, bmd: Any):
        ui = fusion.UIManager
        self.dispatcher = bmd.UIDispatcher(ui)
        self.window = self.dispatcher.AddWindow(
            {"ID": "DubWin", "WindowTitle": "Dub Shot Audio", "Geometry": [200, 200, 460, 110]},
            ui.VGroup([ui.Label({"ID": "Status", "Text": "Starting dub..."}),
                       ui.Button({"ID": "Cancel", "Text": "Cancel"})]))
        self.cancel_requested = threading.Event()
        self.finished = threading.Event()
        self.window.On.Cancel.Clicked = lambda ev: self.cancel_requested.set()
        self.window.On.DubWin.Close = lambda ev: self.cancel_requested.set()

    def show(self, event: Mapping[str, Any]) -> None:
        text = rb.describe(event)
        self.window.Find("Status").Text = text
        if event.get("event") == "notice":   # the next stage replaces it in the window; keep it in the Console
            print(text, flush=True)

    def __call__(self, args: Sequence[str]) -> dict:
        box: dict = {}

        def work() -> None:
            try:
                box["outputs"] = rb.run_dub(args, self.show, self.cancel_requested.is_set)
            except BaseException as err:  # handed to the caller's thread below
                box["error"] = err
            finally:
                self.finished.set()
                self.dispatcher.ExitLoop()

        self.window.Show()
        threading.Thread(target=work, daemon=True).start()
        if not self.finished.is_set():
            self.dispatcher.RunLoop()
        self.window.Hide()
        if "error" in box:
            raise box["error"]
        return box["outputs"]


def best_runner() -> Runner:
    """The progress window inside Resolve, else console output."""
    fusion, bmd = globals().get("fusion") or globals().get("app"), globals().get("bmd")
    if fusion is not None and bmd is not None:
        try:
            return ProgressWindow(fusion, bmd)
        except Exception as err:  # an old or headless Resolve without UIManager
            log.info("no progress window (%s); progress goes to the console", err)
    return console_runner


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    ctx: rb.TimelineContext
    item: Any
    clip: rb.ClipSpan
    source: Path


def choose_target(resolve: Any) -> Target:
    """The clip at the mark-in point, limited to the marked range, or else the clip under the playhead."""
    ctx = rb.read_context(resolve)
    marks = rb.marked_range(ctx)
    item = rb.clip_at(ctx, marks[0] if marks else rb.playhead_frame(ctx))
    span = rb.clip_span(ctx, item)
    return Target(ctx, item, rb.narrow(span, *marks) if marks else span, rb.media_path(item))


def dub_into_timeline(resolve: Any, config: Mapping[str, Any], run: Runner = console_runner) -> str:
    """The whole job against a live (or fake) Resolve; returns the sentence to show the user.

    `run` runs the dub command to the end and returns its outputs (console or window)."""
    target = choose_target(resolve)
    out_dir = output_dir_for(target.source)
    outputs = run_into(run, config, target.source, out_dir)
    result = rb.read_outputs(outputs, out_dir)
    name = take_timeline_name(target.source, out_dir)
    try:
        placed, hits = rb.place_dub(target.ctx, target.clip, result)
    except (AttributeError, DubScriptError) as err:
        log.warning("placing clips failed (%s); importing the .otio instead", err)
        return rb.fallback(target.ctx.media_pool, result.otio, name)
    marked = f", and marked the {hits} hit(s) it plays" if hits else ""
    return f"Placed {len(placed)} dub clips on {len(result.stems)} new audio track(s){marked}."


def dub_file_without_resolve(config: Mapping[str, Any], source: Path) -> str:
    """Outside Resolve (no scripting): run dub and say how to import the timeline by hand."""
    out_dir = output_dir_for(source)
    outputs = run_into(console_runner, config, source, out_dir)
    result = rb.read_outputs(outputs, out_dir)
    return rb.fallback(None, result.otio, take_timeline_name(source, out_dir))


def _injected_resolve() -> Any:
    """The Resolve object a menu script is given: `resolve`, or through `bmd`/`fusion`/`app`."""
    scope = globals()
    if scope.get("resolve") is not None:
        return scope["resolve"]
    if scope.get("bmd") is not None:
        return scope["bmd"].scriptapp("Resolve")
    host = scope.get("fusion") or scope.get("app")
    return host.GetResolve() if host is not None else None


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="dub: %(message)s")
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if CONFIG_ERROR:
            raise ConfigError(CONFIG_ERROR)
        config = load_config(_script_dir())
        resolve = rb.connect(_injected_resolve())
        if resolve is None:
            if not argv:
                print("Could not reach DaVinci Resolve's scripting; run `dub VIDEO --timeline` and use "
                      "File > Import > Timeline with the written .otio.")
                return 2
            print(dub_file_without_resolve(config, Path(argv[0])))
            return 0
        print(dub_into_timeline(resolve, config, best_runner()))
        return 0
    except (DubScriptError, ConfigError) as err:
        print(str(err))
        return 2


if any(name in globals() for name in ("resolve", "bmd", "fusion", "app")):  # run from Workspace > Scripts
    main([])
elif __name__ == "__main__":
    sys.exit(main())
