"""The public entry point: `dub(video_path, out_path, options) -> DubResult`.

A run reads as numbered stages, each cached on disk (see `dubber.cache`):

    0. check inputs and outputs   nothing is computed before every argument is known to be usable
    1. probe                      MediaInfo of the input
    2. analyze                    shots, events, motion, captions (vision.analyze)
    3. plan                       one timed cue per shot (or a plan file given by the user)
    4. render                     each cue by the chosen backend, cached per cue
    5. mix                        cues placed sample-exactly, loudness-normalised
    6. mux                        video stream copied, new audio track added
    7. export                     manifest, stems, timeline, captions

The input file is never written; every output appears under a temporary name, renamed when complete.
"""
from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

# Stage 0 (checks) lives in its own module; its names stay part of this one's interface.
from ._checks import (  # noqa: F401
    LUFS_RANGE, MAX_AREA_PIXELS, MAX_SIDE_PIXELS, MIN_DURATION_S, MIN_FRAMES, MOV_ONLY_VIDEO_CODECS, MP4_SUFFIXES,
    NAME_MAX_BYTES, ORIGINAL_GAIN_RANGE, VIDEO_SUFFIXES, check_container, check_device, check_input_file,
    check_media, check_options, check_output_file, check_writable_folder, default_output_path, resolve_lufs,
)
from .errors import BackendUnavailable, DubError, InputError, OutputError
from .types import OUTPUT_SAMPLE_RATE, ProgressFn, no_progress

log = logging.getLogger(__name__)

STAGES = ("probe", "analyze", "plan", "render", "mix", "mux", "export")
# Cues rendered per backend call (None: all at once). Fixed per backend, so a resumed run renders the
# same groups as an uninterrupted one (identical audio).
RENDER_GROUP: dict[str, int | None] = {"audiostory": 4}


@dataclass(frozen=True)
class DubOptions:
    """Everything that shapes a run besides the input and output paths.

    Attributes:
        backend: "auto", "audiostory" or "sketch".
        style: a style name from `dubber.styles` ("tom-and-jerry", "nature", ...).
        seed: base seed of every cue (same seed, same soundtrack).
        lufs: integrated loudness target in LUFS, or "ebu" (-23) / "atsc" (-24).
        keep_original: mix the original audio under the new one and keep it as a second track.
        original_gain_db: level of the original audio bed, in dB.
        stems_dir: folder for the mix WAV and one WAV per stem (None: not written, unless `timeline`).
        timeline: also write .otio/.fcpxml/.srt next to the output.
        model: AudioStory checkpoint folder or Hub repo id (None: the official one).
        device: "cpu", "cuda", "cuda:N" or None (CUDA when present).
        timing: "shots" (a clip per cue) or "free" (the model lays out its own clips).
        captioner: "motion", "clip" or "vlm".
        force: overwrite existing outputs and recompute every cached stage.
        cache_dir: cache root (None: $DUB_CACHE_DIR or ~/.cache/dubber).
        use_cache: read and write the stage cache at all.
        full_hash: key the cache on a hash of every byte of the input instead of size/mtime/edges.
        plan_path: render this plan file instead of planning from the analysis.
        render_group: cues per backend call, cached as each ends (None: the backend's default).
    """

    backend: str = "auto"
    style: str = "tom-and-jerry"
    seed: int = 0
    lufs: float | str = -16.0
    keep_original: bool = False
    original_gain_db: float = -12.0
    stems_dir: str | None = None
    timeline: bool = False
    model: str | None = None
    device: str | None = None
    timing: str = "shots"
    captioner: str = "motion"
    force: bool = False
    cache_dir: str | None = None
    use_cache: bool = True
    full_hash: bool = False
    plan_path: str | None = None
    render_group: int | None = None


@dataclass(frozen=True)
class DubResult:
    """What a run produced. Paths are absolute; `outputs` maps a role ("video", "manifest", "mix",
    "stem:music", "otio", ...) to its file; `warnings` names outputs asked for but not written, and why."""

    output: Path
    backend: str
    backend_reason: str
    cues: int
    cues_from_cache: int
    total_samples: int
    sample_rate: int
    integrated_lufs: float
    true_peak_dbtp: float
    outputs: Mapping[str, str] = field(default_factory=dict)
    stage_seconds: Mapping[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


# ----------------------------------------------------------------------------- run context

@dataclass
class _Run:
    """Mutable bookkeeping of one run: per-stage wall times, and progress that ends each stage
    at its own last total (so a display never shows a finished stage at 1/1 after 12/12)."""

    sink: ProgressFn
    stage_seconds: dict[str, float] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)

    def progress(self, stage: str, done: int, total: int) -> None:
        self.totals[stage] = total
        self.sink(stage, done, total)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        self.progress(name, 0, self.totals.get(name, 1))
        yield
        self.stage_seconds[name] = self.stage_seconds.get(name, 0.0) + time.perf_counter() - t0
        total = self.totals.get(name, 1)
        self.progress(name, total, total)


def _stage_cache(options: DubOptions):
    from .cache import StageCache

    return StageCache(options.cache_dir, enabled=options.use_cache, force=options.force)


# ----------------------------------------------------------------------------- stages 1-3

def probe(video_path: str | os.PathLike) -> Any:
    """MediaInfo of a video, after the cheap file checks and the size/length limits."""
    import vision

    path = check_input_file(video_path)
    media = vision.probe(str(path))
    check_media(media)
    return media


def _analysis_key(path: Path, options: DubOptions) -> str:
    from vision.types import ANALYSIS_SCHEMA

    from . import __version__
    from .cache import fingerprint, settings_key

    # The tool version is part of every key: a new release never reuses an older one's results.
    return settings_key("analysis", fingerprint(path, full=options.full_hash), options.captioner,
                        ANALYSIS_SCHEMA, __version__)


def analyze(video_path: str | os.PathLike, options: DubOptions = DubOptions(),
            progress: ProgressFn | None = None) -> Any:
    """The VideoAnalysis of a video, from the cache when this file was analysed with the same
    captioner before.

    Raises:
        InputError / vision.errors.VideoError: the file is not a usable video.
    """
    analysis, _ = _analyze(check_input_file(video_path), options, progress or no_progress)
    return analysis


def _analyze(path: Path, options: DubOptions, progress: ProgressFn) -> tuple[Any, str]:
    import vision
    from vision.types import VideoAnalysis

    cache = _stage_cache(options)
    key = _analysis_key(path, options)
    cached = cache.load_json("analysis", key)
    if cached is not None:
        try:
            return VideoAnalysis.from_dict(cached), key
        except (KeyError, TypeError, ValueError) as err:
            log.warning("Ignoring a stale cached analysis (%s).", err)
    analysis = vision.analyze(str(path), captioner=options.captioner,
                              progress=lambda s, d, t: progress(f"analyze/{s}", d, t))
    data = analysis.to_dict()
    cache.save_json("analysis", key, data)
    # Continue with the analysis as the cache holds it (JSON rounds the motion curve), so a run
    # that computed it and a run that read it back render exactly the same soundtrack.
    return VideoAnalysis.from_dict(data), key


def plan(video_path: str | os.PathLike, options: DubOptions = DubOptions(),
         progress: ProgressFn | None = None) -> Any:
    """The DubPlan of a video (analysing it first, or reusing the cached analysis)."""
    path = check_input_file(video_path)
    check_options(options)
    analysis, key = _analyze(path, options, progress or no_progress)
    return _plan(analysis, key, options)


def _plan(analysis: Any, analysis_key: str, options: DubOptions) -> Any:
    from .cache import settings_key
    from .plan import PlanOptions, make_plan, validate_plan
    from .types import DubPlan

    if options.plan_path is not None:
        return _user_plan(options.plan_path, analysis.media)
    plan_options = PlanOptions(style=options.style, seed=options.seed, sample_rate=OUTPUT_SAMPLE_RATE)
    cache = _stage_cache(options)
    key = settings_key("plan", analysis_key, asdict(plan_options))
    cached = cache.load_json("plan", key)
    if cached is not None:
        try:
            result = DubPlan.from_dict(cached)
            validate_plan(result, analysis.media)
            return result
        except (KeyError, TypeError, ValueError, DubError) as err:
            log.warning("Ignoring a stale cached plan (%s).", err)
    result = make_plan(analysis, plan_options)
    cache.save_json("plan", key, result.to_dict())
    return result


def _user_plan(plan_path: str, media: Any) -> Any:
    from .plan import load_plan, validate_plan

    path = Path(plan_path).expanduser()
    if not path.is_file():
        raise InputError(f"The plan file {path} does not exist; check the path or make one with `dub plan`.")
    result = load_plan(path)
    validate_plan(result, media)
    return result


# ----------------------------------------------------------------------------- stage 4: render

def resolve_backend(options: DubOptions) -> tuple[str, str]:
    """(backend name, one-line reason) for these options; `auto` decides here.

    Raises:
        BackendUnavailable: audiostory was asked for but its weights or torch are missing.
    """
    from ._doctor import missing_weights_message
    from .backends import choose_auto, weights_status

    if options.backend == "auto":
        if options.timing == "free":
            name, reason = choose_auto(options.model, options.device)
            if name != "audiostory":
                why, _, fix = reason.split(": ", 1)[-1].partition(" (run ")
                raise BackendUnavailable(f"Free timing needs the audiostory backend, which cannot run here: {why}; "
                                         f"drop --timing free{' or run ' + fix.rstrip(')') if fix else ''}.")
            return name, reason
        return choose_auto(options.model, options.device)
    if options.backend == "audiostory":
        import importlib.util

        if importlib.util.find_spec("torch") is None:
            raise BackendUnavailable("The audiostory backend needs torch; install it with pip install 'dubber[ml]'.")
        found, where = weights_status(options.model)
        if not found:
            raise BackendUnavailable(missing_weights_message(options.model, where))
        return "audiostory", f"audiostory backend: chosen with --backend (weights in {where})"
    return options.backend, f"{options.backend} backend: chosen with --backend"


def _render_key(analysis: Any, analysis_key: str, plan: Any, backend_name: str, options: DubOptions) -> str:
    from .cache import render_key

    model = options.model if backend_name == "audiostory" else None
    # The analysis key carries the input and the tool version; `render_key` adds what a backend
    # reads besides a cue's own fields (those name the cue's file): the plan's style, seed, rate
    # and instruction, and the analysis it is given (shots, events, motion).
    return render_key(analysis, plan, analysis_key, backend_name, model, options.timing)


def _build_backend(name: str, options: DubOptions) -> Any:
    from .backends import BackendOptions, get_backend

    return get_backend(name, BackendOptions(model=options.model, device=options.device, timing=options.timing))


def _render(name: str, plan: Any, analysis: Any, analysis_key: str, options: DubOptions,
            progress: ProgressFn) -> tuple[Any, int]:
    from .cache import render_cached

    backend = _build_backend(name, options)
    store = _stage_cache(options).cue_store(_render_key(analysis, analysis_key, plan, name, options))
    # Free timing, like the sketch, draws the whole soundtrack in one call.
    whole = options.timing == "free" or backend.RENDERS_WHOLE_TIMELINE
    size = None if whole else (options.render_group or RENDER_GROUP.get(name))
    return render_cached(backend, plan, analysis, store, progress, size, whole_timeline=whole)


# ----------------------------------------------------------------------------- stages 5-7

def _mix(render: Any, plan: Any, media: Any, path: Path, options: DubOptions) -> Any:
    from .audio_io import decode_audio
    from .mix import MixOptions, mix

    original = None
    if options.keep_original and media.has_audio:
        original = decode_audio(str(path), plan.sample_rate, plan.total_samples)
    mix_options = MixOptions(lufs=resolve_lufs(options.lufs), original_gain_db=options.original_gain_db)
    return mix(render, plan, mix_options, original)


def _mux(soundtrack: Any, media: Any, path: Path, out: Path, options: DubOptions) -> None:
    from .audio_io import write_wav
    from .mux import mux

    out.parent.mkdir(parents=True, exist_ok=True)   # checked writable before the run started
    with tempfile.TemporaryDirectory(prefix="dub-mux-") as work:
        wav = Path(work) / "mix.wav"
        write_wav(wav, soundtrack.mix, soundtrack.sample_rate)
        mux(str(path), str(wav), str(out), original_audio=options.keep_original and media.has_audio,
            video_info=media)


@dataclass(frozen=True)
class _Destinations:
    """Where each file of a run goes; decided (and checked) before any work starts."""

    video: Path
    manifest: Path
    stems: Path | None
    timeline_stem: Path | None   # <folder>/<name>; .otio/.fcpxml/.srt are added to it

    def files(self) -> list[Path]:
        out = [self.video, self.manifest] + ([self.stems / "mix.wav"] if self.stems is not None else [])
        if self.timeline_stem is not None:
            out += [self.timeline_stem.with_name(self.timeline_stem.name + s) for s in (".otio", ".fcpxml", ".srt")]
        return out


def plan_destinations(video_path: Path, out_path: str | os.PathLike | None, options: DubOptions) -> _Destinations:
    """Every output path of a run, checked: never the input, never an existing file without force."""
    out = check_output_file(Path(out_path) if out_path is not None else default_output_path(video_path),
                            video_path, options.force)
    base = out.with_suffix("")
    if len(base.name.encode()) + len(".fcpxml") > NAME_MAX_BYTES:   # the longest suffix written next to it
        raise OutputError(f"The output name {out.name} is too long for the file system; choose a shorter one with -o.")
    stems = Path(options.stems_dir).expanduser().absolute() if options.stems_dir else None
    if stems is None and options.timeline:
        stems = base.with_name(base.name + "_stems")   # timelines point at a mix WAV that must persist
    dest = _Destinations(video=out, manifest=base.with_name(base.name + ".json"), stems=stems,
                         timeline_stem=base if options.timeline else None)
    for f in dest.files()[1:]:
        if f.exists() and not options.force:
            raise OutputError(f"{f} already exists; pass --force to overwrite it or choose another name with -o.")
        if f.resolve() == video_path:
            raise OutputError(f"An output ({f.name}) would overwrite the input; choose another name with -o.")
    if stems is not None:
        if stems.exists() and not stems.is_dir():
            raise OutputError(f"The stems location {stems} is a file; give a folder with --stems.")
        check_writable_folder(stems, what="stems")
    return dest


def _export(dest: _Destinations, analysis: Any, plan: Any, render: Any, soundtrack: Any,
            options: DubOptions) -> tuple[dict[str, str], list[str]]:
    from . import export

    inputs = export.ExportInputs(analysis=analysis, plan=plan, soundtrack=soundtrack, render=render,
                                 video_path=str(dest.video), settings=_settings_record(options, dest))
    paths = export.ExportPaths(manifest=dest.manifest, stems_dir=dest.stems, timeline_stem=dest.timeline_stem)
    # A video at a rate FCPXML cannot express still gets its .otio timeline, and a note instead of the FCPXML.
    result = export.export_all(paths, inputs, export.ExportOptions(fcpxml=True, skip_unsupported_fcpxml=True),
                               extra_outputs={"video": dest.video})
    # A silent input has no sound to keep: say so rather than leave a missing track unexplained.
    notes = ["the input has no audio track, so --keep-original kept nothing"] if (
        options.keep_original and not analysis.media.has_audio) else []
    return {role: str(p) for role, p in result.outputs.items()}, notes + list(result.notes)


def _settings_record(options: DubOptions, dest: _Destinations) -> dict[str, Any]:
    """The run's options for the manifest, with paths made independent of the working folder: the
    stems folder as the manifest records its other outputs (relative to the manifest's folder when
    inside it, else absolute), input paths absolute."""
    from .export import relative_to_manifest

    def absolute(p: str | None) -> str | None:
        return str(Path(p).expanduser().resolve()) if p is not None else None

    stems = relative_to_manifest(dest.stems, dest.manifest.resolve().parent) if options.stems_dir is not None else None
    return {**asdict(options), "lufs": resolve_lufs(options.lufs), "stems_dir": stems,
            "plan_path": absolute(options.plan_path), "cache_dir": absolute(options.cache_dir)}


# ----------------------------------------------------------------------------- the whole run

def dub(video_path: str | os.PathLike, out_path: str | os.PathLike | None = None,
        options: DubOptions = DubOptions(), progress: ProgressFn | None = None) -> DubResult:
    """Give a video a new soundtrack cut to its shots.

    Args:
        video_path: the input video (never modified).
        out_path: the dubbed video; None writes `<input stem>.dub.mp4` next to the input
            (`.dub.mov` / `.dub.mkv` for a .mov / .mkv input).
        options: backend, style, loudness, exports; see DubOptions.
        progress: called as progress(stage, done, total) while the run advances.

    Returns:
        DubResult with every file written and per-stage wall times (s).

    Raises:
        DubError: a problem the user can fix (bad input, existing output, missing weights...).
        vision.errors.VideoError: the input cannot be read as a video.
    """
    run = _Run(sink=progress or no_progress)
    # 0. Check every input, option and output before any compute.
    path = check_input_file(video_path)
    check_options(options)
    dest = plan_destinations(path, out_path, options)
    backend_name, reason = resolve_backend(options)
    log.info("%s", reason)
    # 1. Probe: what the file is; refuse videos that are too short or too large.
    with run.stage("probe"):
        media = probe(path)
        check_container(dest.video, media)
    # 2. Analyze: shots, events, motion and captions, decoded once (cached per file).
    with run.stage("analyze"):
        analysis, analysis_key = _analyze(path, options, run.progress)
    # 3. Plan: one timed cue per shot, or the user's plan checked against this video.
    with run.stage("plan"):
        the_plan = _plan(analysis, analysis_key, options)
    # 4. Render every cue (cached per cue: an interrupted run resumes here).
    with run.stage("render"):
        render, from_cache = _render(backend_name, the_plan, analysis, analysis_key, options, run.progress)
    # 5. Mix the cues sample-exactly at the loudness target. From here on the analysis's MediaInfo
    # is the one used: its frame count is what the decoder found, which the plan is cut to.
    with run.stage("mix"):
        soundtrack = _mix(render, the_plan, analysis.media, path, options)
    # 6. Mux: copy the video stream, add the new track (and the original on request).
    with run.stage("mux"):
        _mux(soundtrack, analysis.media, path, dest.video, options)
    # 7. Export: stems, timelines, captions and the manifest.
    with run.stage("export"):
        outputs, notes = _export(dest, analysis, the_plan, render, soundtrack, options)
    return DubResult(output=dest.video, backend=backend_name, backend_reason=reason, cues=len(the_plan.cues),
                     cues_from_cache=from_cache, total_samples=soundtrack.total_samples,
                     sample_rate=soundtrack.sample_rate, integrated_lufs=float(soundtrack.integrated_lufs),
                     true_peak_dbtp=float(soundtrack.true_peak_dbtp), outputs=outputs,
                     stage_seconds=dict(run.stage_seconds), notes=tuple(render.notes) + tuple(notes),
                     warnings=tuple(notes))
