"""The public entry point: `dub(video_path, out_path, options) -> DubResult`, which is
`run_job(prepare(video_path, out_path, options))`: `prepare` is stage 0 alone (a caller that shows
the chosen backend before the work starts checks nothing twice).

A run reads as numbered stages, each cached on disk (see `dubber.cache`):

    0. check inputs and outputs   nothing is computed before every argument is known to be usable
    1. probe                      MediaInfo of the input
    2. analyze                    shots, events, motion, captions (vision.analyze)
    3. plan                       one timed cue per shot (or a plan file given by the user)
    4. render                     each cue by the chosen backend (AudioStory's cached per cue; the
                                  score engine plays the whole timeline again from the cached analysis)
    5. mix                        cues placed sample-exactly, loudness-normalised
    6. mux                        video stream copied, new audio track added
    7. export                     manifest, stems, timeline, captions

The input file is never written. Stages 6 and 7 write into one `OutputTransaction`: every file
under a temporary name, all renamed together at the end, the manifest last; a run killed while
renaming is completed by the next run of the same job (see `dubber.atomic`).
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

# Options and stage 0 (checks) live in their own module; their names stay part of this one's interface.
from .options import (  # noqa: F401
    DubOptions, LUFS_RANGE, MAX_AREA_PIXELS, MAX_SIDE_PIXELS, MIN_DURATION_S, MIN_FRAMES, MOV_ONLY_VIDEO_CODECS, MP4_SUFFIXES,
    NAME_MAX_BYTES, ORIGINAL_GAIN_RANGE, VIDEO_SUFFIXES, check_container, check_device, check_input_file,
    check_media, check_options, check_output_file, check_writable_folder, default_output_path, resolve_lufs,
    resolve_true_peak, usable_path,
)
from .atomic import OutputTransaction, commit_record_path, exclusive_lock, output_lock_path
from .backends import build_backend, resolve_backend
from .destinations import Destinations, earlier_outputs, plan_destinations, remove_earlier_outputs
from .media.tracks import sweep_work_folders, work_folder
from .run_notes import bed_notes, loudness_notes
from .errors import DubError, InputError, OutputError
from .types import OUTPUT_SAMPLE_RATE, ProgressFn, no_progress
from .user_plan import read_user_plan, unheard_plan_edits

log = logging.getLogger(__name__)

STAGES = ("probe", "analyze", "plan", "render", "mix", "mux", "export")
# Cues rendered per backend call (None: all at once). Fixed per backend, so a resumed run renders the
# same groups as an uninterrupted one (identical audio).
RENDER_GROUP: dict[str, int | None] = {"audiostory": 4}


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
    caches_audio: bool = True  # False: the backend plays every cue again (the score engine)


# ----------------------------------------------------------------------------- run context

@dataclass
class _Run:
    """Mutable bookkeeping of one run: per-stage wall times, and progress that ends each stage
    at its own last total (so a display never shows a finished stage at 1/1 after 12/12)."""

    sink: ProgressFn
    stage_seconds: dict[str, float] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)
    last: dict[str, tuple[int, int]] = field(default_factory=dict)

    def progress(self, stage: str, done: int, total: int) -> None:
        self.totals[stage] = total
        if self.last.get(stage) == (done, total):
            return   # the same news twice (a stage's own last report, then its end) is said once
        self.last[stage] = (done, total)
        self.sink(stage, done, total)

    @contextlib.contextmanager
    def stage(self, name: str, total: int | None = None) -> Iterator[None]:
        """Time the stage `name`; its start is reported against `total` when it is known up front
        (cues to render, seconds to mux), else against 1 until the stage reports its own."""
        t0 = time.perf_counter()
        self.progress(name, 0, total if total is not None else self.totals.get(name, 1))
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
    return _probe_checked(check_input_file(video_path))


def _probe_checked(path: Path) -> Any:
    """The one probe of a job, of an input already checked; then the size/length limits."""
    import vision

    media = vision.probe(str(path))
    check_media(media)
    return media


def _analysis_key(path: Path, options: DubOptions) -> str:
    from vision.captioners import resolve_captioner
    from vision.types import ANALYSIS_SCHEMA, ANALYSIS_VERSION

    from . import __version__
    from .cache import fingerprint, settings_key

    # The tool version is part of every key: a new release never reuses an older one's results;
    # the analysis version does the same when the detectors change within a release.
    # "auto" is keyed by the captioner it picks on this machine: fetching vlm weights changes it.
    model = options.captioner_model
    if model is not None and Path(model).expanduser().exists():   # a folder: where it is, not how it was typed
        model = str(Path(model).expanduser().resolve())
    return settings_key("analysis", fingerprint(path, full=options.full_hash),
                        resolve_captioner(options.captioner, options.captioner_model), model,
                        ANALYSIS_SCHEMA, ANALYSIS_VERSION, __version__)


def analyze(video_path: str | os.PathLike, options: DubOptions = DubOptions(),
            progress: ProgressFn | None = None, media: Any = None) -> Any:
    """The VideoAnalysis of a video, from the cache when this file was analysed with the same
    captioner before; `media` is its probe (`probe`) when the caller has one, so the file is
    not probed again.

    Raises:
        InputError / vision.errors.VideoError: the file is not a usable video.
    """
    analysis, _ = _analyze(check_input_file(video_path), options, progress or no_progress, media)
    return analysis


def _analyze(path: Path, options: DubOptions, progress: ProgressFn, media: Any = None) -> tuple[Any, str]:
    """The analysis (cached per file and captioner) and its cache key; `media` is the probe of
    this job when it has one, so the file is not probed again."""
    import vision
    from vision.types import VideoAnalysis

    cache = _stage_cache(options)
    key = _analysis_key(path, options)
    cached = cache.load_json("analysis", key)
    analysis = None
    if cached is not None:
        try:
            analysis = VideoAnalysis.from_dict(cached)
        except (KeyError, TypeError, ValueError) as err:
            log.warning("Ignoring a stale cached analysis (%s).", err)
        else:
            # The key reads the file's content, so a copy, a hard link or a moved file finds the
            # analysis of another path: the manifest and the timelines must name this one.
            analysis = replace(analysis, media=replace(analysis.media, path=str(path)))
    if analysis is None:
        computed = vision.analyze(str(path), captioner=options.captioner, media=media,
                                  captioner_options={"model": options.captioner_model} if options.captioner_model
                                  else None,
                                  progress=lambda s, d, t: progress(f"analyze/{s}", d, t))
        data = computed.to_dict()
        cache.save_json("analysis", key, data)
        # Continue with the analysis as the cache holds it (JSON rounds the motion curve), so a run
        # that computed it and a run that read it back render exactly the same soundtrack.
        analysis = VideoAnalysis.from_dict(data)
    return _spotted(analysis, key, options)


def _analyze_for_dub(path: Path, options: DubOptions, progress: ProgressFn, media: Any = None) -> tuple[Any, str]:
    """`_analyze`, with the events left that the soundtrack hits (`dubber.hits`), and the motion
    captions told of those events: what the plan, the backends, the manifest and the timelines'
    markers all read."""
    from vision.captioners.motion import retold

    from .hits import played_events

    analysis, key = _analyze(path, options, progress, media)
    return retold(played_events(analysis)), key


def _spotted(analysis: Any, key: str, options: DubOptions) -> tuple[Any, str]:
    """The analysis with the user's hit list laid over its events (the cache keeps what the
    picture alone gave), and a key that tells the later stages which list it was."""
    if options.hits_path is None:
        return analysis, key
    from .cache import settings_key
    from .spotting import hit_list_digest, read_hit_list, spot

    spotted = spot(analysis, read_hit_list(options.hits_path), options.hits_only)
    return spotted, settings_key("spotted", key, hit_list_digest(options.hits_path), options.hits_only)


def plan(video_path: str | os.PathLike, options: DubOptions = DubOptions(),
         progress: ProgressFn | None = None, media: Any = None) -> Any:
    """The DubPlan of a video (analysing it first, or reusing the cached analysis); `media` as
    for `analyze`."""
    path = check_input_file(video_path)
    check_options(options)
    analysis, key = _analyze_for_dub(path, options, progress or no_progress, media)
    return _plan(analysis, key, options, path)


def _plan(analysis: Any, analysis_key: str, options: DubOptions, video: Path) -> Any:
    """The plan of `video`: the user's (--plan), else the cached or a new one, which records the
    video's content fingerprint as its `source`."""
    from .cache import content_fingerprint, settings_key
    from .plan import PLANNER_VERSION, PlanOptions, make_plan, validate_plan
    from .types import DubPlan

    if options.plan_path is not None:
        return read_user_plan(options.plan_path, analysis, video)
    plan_options = PlanOptions(style=options.style, seed=options.seed, sample_rate=OUTPUT_SAMPLE_RATE)
    cache = _stage_cache(options)
    key = settings_key("plan", PLANNER_VERSION, analysis_key, asdict(plan_options))
    cached = cache.load_json("plan", key)
    if cached is not None:
        try:
            result = DubPlan.from_dict(cached)
            validate_plan(result, analysis.media)
            return result if result.source else replace(result, source=content_fingerprint(video))
        except (KeyError, TypeError, ValueError, DubError) as err:
            log.warning("Ignoring a stale cached plan (%s).", err)
    result = replace(make_plan(analysis, plan_options), source=content_fingerprint(video))
    cache.save_json("plan", key, result.to_dict())
    return result


# ----------------------------------------------------------------------------- stage 4: render

def _render_key(analysis: Any, analysis_key: str, plan: Any, backend_name: str, options: DubOptions,
                backend: Any = None) -> str:
    from .cache import render_key

    from dataclasses import replace

    # The weights or bank themselves, not the text naming them: a new Hub revision, or other
    # weights or another bank at the same path, must not get the old one's cached audio.
    model: Any = None
    if backend_name == "audiostory":
        identity = getattr(backend, "weights_identity", None)
        model = (identity() if identity is not None else None) or options.model
    if backend_name == "score" and options.soundfont:   # another bank, another sound
        model = {"soundfont": _file_identity(Path(options.soundfont))}
    # The analysis key carries the input and the tool version; `render_key` adds what a backend
    # reads besides a cue's own fields (those name the cue's file): the plan's style, seed, rate
    # and instruction, and the analysis it is given (shots, events, motion).
    # Only AudioStory reads the storyline that every cue's caption feeds (`model_prompt`); for any
    # other backend, editing one cue must leave the other cues' cache entries valid.
    keyed = plan if backend_name == "audiostory" else replace(plan, model_prompt="")
    return render_key(analysis, keyed, analysis_key, backend_name, model, options.timing)


def _file_identity(path: Path) -> list[Any]:
    """Where a file is (links resolved), its size and modification time."""
    try:
        stat = path.stat()
    except OSError:   # checked before the run; gone since, the render says so
        return [str(path)]
    return [str(path.resolve()), stat.st_size, stat.st_mtime_ns]


def _render(name: str, plan: Any, analysis: Any, analysis_key: str, options: DubOptions,
            progress: ProgressFn, backend: Any = None) -> tuple[Any, int, bool]:
    """(render result, cues taken from the cache, whether the backend's audio is cached at all)."""
    from .cache import render_cached

    backend = backend if backend is not None else build_backend(name, options)
    store = _stage_cache(options).cue_store(_render_key(analysis, analysis_key, plan, name, options, backend))
    # Free timing, like the score engine, draws the whole soundtrack in one call.
    whole = options.timing == "free" or backend.RENDERS_WHOLE_TIMELINE
    size = None if whole else (options.render_group or RENDER_GROUP.get(name))
    render, from_cache = render_cached(backend, plan, analysis, store, progress, size, whole_timeline=whole)
    return render, from_cache, bool(getattr(backend, "CACHES_AUDIO", True))


# ----------------------------------------------------------------------------- stages 5-7

def _mix(render: Any, plan: Any, media: Any, path: Path, options: DubOptions,
         progress: ProgressFn = no_progress) -> Any:
    from .media.audio_io import decode_audio_track
    from .mix import MixOptions, mix

    original = None
    if options.keep_original and media.has_audio:
        original = decode_audio_track(str(path), plan.sample_rate, plan.total_samples)
    mix_options = MixOptions(lufs=resolve_lufs(options.lufs), true_peak_db=resolve_true_peak(options.lufs),
                             original_gain_db=options.original_gain_db)
    # A muted cue stays in the cache (unmuting it is free); the mix leaves its place silent at the
    # level the other shots had with it playing.
    return mix(render, plan, mix_options, original, release_render=True, muted=options.muted_cues,
               progress=lambda done, total: progress("mix", done, total))


def _mux(txn: OutputTransaction, soundtrack: Any, media: Any, path: Path, dest: Destinations,
         options: DubOptions, progress: ProgressFn = no_progress) -> list[str]:
    """Write the dubbed video into the transaction. Returns notes naming what of the source the
    output does not carry: its sound replaced by the dub (without --keep-original), and streams
    the output container could not keep."""
    from .export.deliverables import stage_mix, wav_time_reference, write_track_wav
    from .media.mux import container_for, mux, other_pictures, reencoded_originals, resolve_dub_codec

    txn.make_folder(dest.video.parent)   # checked writable before the run started
    # Stamped like the stems (the export stages the mix no second time): starts at the video's timecode.
    time_reference = wav_time_reference(media, soundtrack)
    if dest.stems is not None:   # the mix WAV is written once: the stems folder keeps what the mux reads
        wav = stage_mix(txn, dest.export_paths(), soundtrack, time_reference)
    else:   # a working copy beside the output (not in $TMPDIR: that may be small), removed at the end
        wav = write_track_wav(txn.scratch(dest.video, ".wav"), soundtrack, time_reference_samples=time_reference)
    # Progress in whole seconds of the output written (a feature film's mux takes minutes).
    seconds = max(1, math.ceil(media.duration_s))
    dropped = mux(str(path), str(wav), str(txn.stage(dest.video)),
                  original_audio=options.keep_original and media.has_audio, video_info=media,
                  true_peak_ceiling_db=resolve_true_peak(options.lufs),
                  on_progress=passes_reported(progress, "mux", seconds))
    notes = []
    if media.has_audio and not options.keep_original:
        tracks = media.audio_tracks or ()
        languages = [t.language for t in tracks if t.language and t.language not in ("und", "zxx")]
        one = len(tracks) <= 1
        what = "audio track" if one else f"{len(tracks)} audio tracks"
        what += f" ({', '.join(languages)})" if languages else ""
        notes.append(f"the source's {what} {'is' if one else 'are'} not in the output, only the dub; "
                     f"pass --keep-original to keep {'it' if one else 'them'} after the dub")
    if dropped:
        notes.append(f"a {dest.video.suffix} file cannot keep the source's {', '.join(dropped)}; "
                     "name the output .mkv (-o NAME.mkv) to keep subtitles and attachments")
    pictures = other_pictures(media.extra_streams or ())
    if pictures:
        notes.append(f"the source's other picture stream{'s' if len(pictures) > 1 else ''} "
                     f"({', '.join(pictures)}) {'are' if len(pictures) > 1 else 'is'} not in the output: "
                     "a dub carries the first picture only")
    if options.keep_original and media.has_audio:
        lossy = reencoded_originals(media.audio_tracks or (), container_for(dest.video),
                                    resolve_dub_codec(dest.video, None, media))
        if lossy:
            notes.append(f"a {dest.video.suffix} file cannot hold the source's {', '.join(lossy)} as it is; "
                         "name the output .mkv (-o NAME.mkv) to keep it untouched")
    return notes


def _cache_notes(options: DubOptions) -> list[str]:
    """A stage cache that takes no files keeps nothing for the next run: said, not silent."""
    cache = _stage_cache(options)
    why = cache.unwritable()
    return [f"the stage cache {cache.root} cannot be written ({why}), so a rerun starts again from the beginning; "
            "give a writable folder with --cache-dir or DUB_CACHE_DIR"] if why else []


def passes_reported(progress: ProgressFn, stage: str, seconds: int) -> Callable[[float], None]:
    """A progress callback for ffmpeg's seconds written that never goes back: when ffmpeg starts
    the file again (the dub encoded once more, quieter, to hold its true peak), the stage grows
    by one more pass instead of falling to its start."""
    done_passes, last = 0, -1

    def report(done_s: float) -> None:
        nonlocal done_passes, last
        done = min(int(done_s), seconds)
        if done < last:
            done_passes += 1
        last = done
        progress(stage, done_passes * seconds + done, (done_passes + 1) * seconds)
    return report


def _export(txn: OutputTransaction, dest: Destinations, analysis: Any, plan: Any, render: Any, soundtrack: Any,
            options: DubOptions) -> tuple[dict[str, str], list[str]]:
    from .export import deliverables as export

    inputs = export.ExportInputs(analysis=analysis, plan=plan, soundtrack=soundtrack, render=render,
                                 video_path=str(dest.video), settings=_settings_record(options, dest))
    # Without the FCPXML adapter the .otio timeline is still written, with a note instead of the FCPXML.
    layout = export.TimelineOptions(keep_original=options.keep_original and analysis.media.has_audio)
    result = export.export_all(dest.export_paths(), inputs,
                               export.ExportOptions(fcpxml=True, skip_unsupported_fcpxml=True, timeline=layout),
                               extra_outputs={"video": dest.video}, transaction=txn)
    # A silent input has no sound to keep: say so rather than leave a missing track unexplained.
    notes = ["the input has no audio track, so --keep-original kept nothing"] if (
        options.keep_original and not analysis.media.has_audio) else []
    return {role: str(p) for role, p in result.outputs.items()}, notes + list(result.notes)


def _settings_record(options: DubOptions, dest: Destinations) -> dict[str, Any]:
    """The run's options for the manifest, with paths made independent of the working folder: the
    stems folder as the manifest records its other outputs (relative to the manifest's folder when
    inside it, else absolute), input paths absolute."""
    from .export.deliverables import relative_to_manifest

    def absolute(p: str | None) -> str | None:
        return str(Path(p).expanduser().resolve()) if p is not None else None

    stems = relative_to_manifest(dest.stems, dest.manifest.resolve().parent) if options.stems_dir is not None else None
    return {**asdict(options), "lufs": resolve_lufs(options.lufs), "stems_dir": stems,
            "plan_path": absolute(options.plan_path), "cache_dir": absolute(options.cache_dir),
            "hits_path": absolute(options.hits_path)}


# ----------------------------------------------------------------------------- the whole run

def dub(video_path: str | os.PathLike, out_path: str | os.PathLike | None = None,
        options: DubOptions = DubOptions(), progress: ProgressFn | None = None,
        backend: Any = None) -> DubResult:
    """Give a video a new soundtrack cut to its shots.

    Args:
        video_path: the input video (never modified).
        out_path: the dubbed video; None writes `<input stem>.dub.mp4` next to the input
            (`.dub.mov` / `.dub.mkv` for a .mov / .mkv input).
        options: backend, style, loudness, exports; see DubOptions.
        progress: called as progress(stage, done, total) while the run advances.
        backend: an already-built backend of the chosen kind to render with (a batch worker's
            model, loaded once for many runs); None builds one for this run.

    Returns:
        DubResult with every file written and per-stage wall times (s).

    Raises:
        DubError: a problem the user can fix (bad input, existing output, missing weights...).
        vision.errors.VideoError: the input cannot be read as a video.
    """
    return run_job(prepare(video_path, out_path, options), progress, backend)


@dataclass(frozen=True)
class DubJob:
    """A run after stage 0: its input, options and every output checked, its backend chosen."""

    input_path: Path
    options: DubOptions
    destinations: Destinations
    backend: str
    backend_reason: str


def prepare(video_path: str | os.PathLike, out_path: str | os.PathLike | None = None,
            options: DubOptions = DubOptions()) -> DubJob:
    """Stage 0 of `dub` alone, so a caller can say which backend runs before the work starts:
    every input, option and output is checked (once) before any compute.

    Raises:
        DubError: as `dub` does, before anything is computed or written.
    """
    path = check_input_file(video_path)
    check_options(options)
    dest = plan_destinations(path, out_path, options)
    backend_name, reason = resolve_backend(options)
    if options.soundfont and backend_name != "score":   # said, not silently dropped
        reason += f"; --soundfont {options.soundfont} is for the score engine, so it is not used"
    if options.precision and backend_name != "audiostory":
        reason += f"; --precision {options.precision} is for AudioStory, so it is not used"
    return DubJob(path, options, dest, backend_name, reason)


def finished_dub(video_path: str | os.PathLike, out_path: str | os.PathLike | None = None,
                 options: DubOptions = DubOptions()) -> Path | None:
    """The manifest of a finished dub of this video, made with these very options, already at the
    output with every file it lists; None otherwise. A rerun of a command whose dub finished but
    whose follow-up (the review page) was cut short finds it here, instead of meeting outputs it
    may not overwrite."""
    import json

    from .cache import content_fingerprint

    path = check_input_file(video_path)
    try:
        dest = plan_destinations(path, out_path, replace(options, overwrite=True))
        manifest = json.loads(dest.manifest.read_text(encoding="utf-8"))
        recorded = json.loads(json.dumps(_settings_record(options, dest)))
    except (DubError, OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("settings") != recorded:
        return None
    outputs = manifest.get("outputs") if isinstance(manifest.get("outputs"), dict) else {}
    if not dest.video.is_file() or not all((dest.manifest.parent / str(p)).exists() for p in outputs.values()):
        return None
    source = (manifest.get("plan") or {}).get("source") if isinstance(manifest.get("plan"), dict) else None
    return dest.manifest if source == content_fingerprint(path) else None


def run_job(job: DubJob, progress: ProgressFn | None = None, backend: Any = None) -> DubResult:
    """Stages 1-7 of a prepared job (see `dub`), holding its outputs' lock throughout.

    Raises:
        OutputError: another run is writing the same outputs now (as `dub` does otherwise).
    """
    lock = job_lock_path(job)
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        lock.touch()
    except OSError:
        # A cache folder this user cannot write (shared, read-only): the job still runs, as its
        # scratch tracks do, and the lock goes to a private folder in the system temp dir.
        import tempfile

        private = Path(tempfile.gettempdir()) / f"dub-locks-{getattr(os, 'getuid', lambda: 'user')()}"
        private.mkdir(mode=0o700, exist_ok=True)
        lock = output_lock_path(private, job.destinations.manifest)
    with exclusive_lock(lock, remove=True) as held:
        if not held:
            raise OutputError(f"Another dub is writing {job.destinations.video} right now; wait for it to finish "
                              "or choose another name with -o.")
        try:
            return _run_job(job, progress, backend)
        except Exception as err:
            # The input read again at every stage (fingerprint, decode, original sound, mux) was
            # moved or deleted meanwhile: whatever failed on it, that is the user's one sentence.
            if job.input_path.exists():
                raise
            raise InputError(f"The video {job.input_path} was moved or deleted while it was being dubbed, so no "
                             "output was finished; put it back and run again.") from err


def job_lock_path(job: DubJob) -> Path:
    """The lock a run of `job` holds on its outputs. It lives beside the stage cache's scratch
    folders, not among the user's files, so a killed run leaves nothing in the output folder (the
    OS lets go of the lock by itself)."""
    return output_lock_path(_stage_cache(job.options).work_root() / "locks", job.destinations.manifest)


def _run_job(job: DubJob, progress: ProgressFn | None, backend: Any) -> DubResult:
    from .spotting import spotting_notes

    run = _Run(sink=progress or no_progress)
    path, options, dest, backend_name, reason = (job.input_path, job.options, job.destinations, job.backend,
                                                 job.backend_reason)
    log.info("%s", reason)
    # 1. Probe: what the file is; refuse videos that are too short or too large.
    with run.stage("probe"):
        media = _probe_checked(path)
        check_container(dest.video, media)
    # 2. Analyze: shots, events, motion and captions, decoded once (cached per file).
    with run.stage("analyze"):
        analysis, analysis_key = _analyze_for_dub(path, options, run.progress, media)
    # 3. Plan: one timed cue per shot, or the user's plan checked against this video.
    with run.stage("plan"):
        the_plan = _plan(analysis, analysis_key, options, path)
    plan_notes = unheard_plan_edits(the_plan, analysis) if options.plan_path and backend_name == "score" else []
    if options.plan_path:   # the plan's own style and seed are what plays
        options = replace(options, style=the_plan.style, seed=the_plan.seed)
    # Film-length tracks (rendered stems, the mix) live on disk in a work folder under the stage
    # cache, not in memory; it goes when the run ends, and one left by a killed run at the next.
    work = _stage_cache(options).work_root()
    sweep_work_folders(work)
    with work_folder(work):
        # 4. Render every cue (cached per cue where the backend's audio is worth keeping).
        with run.stage("render", total=len(the_plan.cues)):
            render, from_cache, caches_audio = _render(backend_name, the_plan, analysis, analysis_key, options,
                                                        run.progress, backend)
        # 5. Mix the cues sample-exactly at the loudness target. From here on the analysis's MediaInfo
        # is the one used: its frame count is what the decoder found, which the plan is cut to.
        # The mixer's signal libraries load here, not before the probe: a run stopped by an
        # unreadable input is spared about a second of imports.
        from .mix import mix_steps

        keeps = options.keep_original and analysis.media.has_audio
        with run.stage("mix", total=mix_steps(render, bool(options.muted_cues), keeps)):
            soundtrack = _mix(render, the_plan, analysis.media, path, options, run.progress)
        with OutputTransaction(commit_record_path(dest.manifest)) as txn:
            # 6. Mux: copy the video stream, add the new track (and the original on request).
            with run.stage("mux", total=max(1, math.ceil(analysis.media.duration_s))):
                dropped = _mux(txn, soundtrack, analysis.media, path, dest, options, run.progress)
            # 7. Export: stems, timelines, captions and the manifest; then every file appears at once,
            # the manifest last (stem names are known only now: checked again before any is replaced).
            with run.stage("export"):
                outputs, notes = _export(txn, dest, analysis, the_plan, render, soundtrack, options)
                notes = (plan_notes + spotting_notes(analysis) + loudness_notes(soundtrack, options)
                         + bed_notes(analysis.media, options) + dropped + notes + _cache_notes(options))
                for target in txn.targets():
                    dest.check_replace(target, path, options.force or options.overwrite)
                earlier = earlier_outputs(dest)   # read before the manifest is replaced
                txn.commit()
            # What the replaced dub wrote and this one did not (its timeline, its stems, its review
            # page) would sit beside the new video and point at the old sound: it goes.
            remove_earlier_outputs(earlier, set(txn.targets()), path, dest.reads)
    return DubResult(output=dest.video, backend=backend_name, backend_reason=reason, cues=len(the_plan.cues),
                     cues_from_cache=from_cache, total_samples=soundtrack.total_samples,
                     sample_rate=soundtrack.sample_rate, integrated_lufs=float(soundtrack.integrated_lufs),
                     true_peak_dbtp=float(soundtrack.true_peak_dbtp), outputs=outputs,
                     stage_seconds=dict(run.stage_seconds), notes=tuple(render.notes) + tuple(notes),
                     warnings=tuple(notes), caches_audio=caches_audio)
