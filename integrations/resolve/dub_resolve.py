"""Dub Shot Audio: give the clip under the playhead a timed soundtrack, from inside DaVinci Resolve.

Installed into Workspace > Scripts > Utility by `dub integrations install resolve`. It runs in
Resolve's own Python, so it uses the standard library only and never imports the dubbing engine:
it calls the `dub` command, reads the manifest it writes (dub.json) and places the stems.

Steps:
1. Read the current timeline: start frame, frame rate, the video clip under the playhead (or at
   the mark-in point) and the media file behind it.
2. Run `dub FILE -o OUT --json-progress --stems DIR --timeline --overwrite` on the whole media
   file as a subprocess, showing its progress; Cancel kills the process. dub caches its analysis
   of the file, so another clip of the same file, or a rerun, skips the analysis.
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


def _script_dir() -> Path | None:
    try:
        return Path(__file__).resolve().parent
    except NameError:  # some Resolve versions run menu scripts without __file__
        return None


def load_config(script_dir: Path | None) -> dict:
    """Settings written by the installer next to this script (dub command, style, backend)."""
    candidates = [Path(os.environ["DUB_RESOLVE_CONFIG"])] if os.environ.get("DUB_RESOLVE_CONFIG") else []
    if script_dir is not None:
        candidates.append(script_dir / CONFIG_NAME)
    for path in candidates:
        if path.is_file():
            return json.loads(path.read_text(encoding="utf-8"))
    return {}


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


CONFIG = load_config(_script_dir())
rb = _import_bridge(CONFIG)
DubScriptError = rb.DubScriptError
Runner = Callable[[Sequence[str]], dict]


def dub_command(config: Mapping[str, Any]) -> list[str]:
    if os.environ.get("DUB_EXE"):
        return [os.environ["DUB_EXE"]]
    if config.get("dub"):
        return [str(p) for p in config["dub"]]
    import shutil
    found = shutil.which("dub")
    if found is None:
        raise DubScriptError("The dub command was not found; run `dub integrations install resolve` from the dubber environment.")
    return [found]


def output_dir_for(source: Path) -> Path:
    """`<name>_dub` next to the source, or in the home folder when the source folder is read-only."""
    for base in (source.parent, Path.home() / "Dub"):
        folder = base / f"{source.stem}_dub"
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(folder, os.W_OK):
            return folder
    raise DubScriptError(f"Cannot write next to {source} or in your home folder; free some space or fix permissions.")


def output_suffix_for(source: Path) -> str:
    """The container of the dubbed video: dub copies the picture unchanged, so it must carry the
    source's codec. This script cannot probe the codec, so the rule goes by the source's suffix."""
    suffix = source.suffix.lower()
    if suffix in KEPT_CONTAINERS:
        return suffix
    return WEBM_OUTPUT_SUFFIX if suffix == ".webm" else OTHER_OUTPUT_SUFFIX


def build_args(config: Mapping[str, Any], source: Path, out_dir: Path) -> list[str]:
    """The dub command line for `source`. --overwrite, not --force: a rerun (after a change of
    style, say) replaces the earlier outputs but reuses the cached analysis of the same file."""
    out_video = out_dir / f"{source.stem}_dub{output_suffix_for(source)}"
    args = dub_command(config) + [str(source), "-o", str(out_video), "--json-progress",
                                  "--stems", str(out_dir / "stems"), "--timeline", "--overwrite"]
    for key in ("style", "backend", "lufs"):
        if config.get(key) is not None:
            args += [f"--{key}", str(config[key])]
    return args


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
        self.window.Find("Status").Text = rb.describe(event)

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
    outputs = run(build_args(config, target.source, out_dir))
    result = rb.read_outputs(outputs, out_dir)
    name = f"{target.source.stem} dub"
    try:
        placed = rb.place_dub(target.ctx, target.clip, result)
    except (AttributeError, DubScriptError) as err:
        log.warning("placing clips failed (%s); importing the .otio instead", err)
        return rb.fallback(target.ctx.media_pool, result.otio, name)
    return f"Placed {len(placed)} dub clips on {len(result.stems)} new audio track(s)."


def dub_file_without_resolve(config: Mapping[str, Any], source: Path) -> str:
    """Outside Resolve (no scripting): run dub and say how to import the timeline by hand."""
    out_dir = output_dir_for(source)
    outputs = console_runner(build_args(config, source, out_dir))
    result = rb.read_outputs(outputs, out_dir)
    return rb.fallback(None, result.otio, f"{source.stem} dub")


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
    config = load_config(_script_dir())
    try:
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
    except DubScriptError as err:
        print(str(err))
        return 2


if any(name in globals() for name in ("resolve", "bmd", "fusion", "app")):  # run from Workspace > Scripts
    main([])
elif __name__ == "__main__":
    sys.exit(main())
