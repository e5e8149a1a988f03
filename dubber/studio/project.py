"""What the studio does, without the web page: open a video, show its plan as one row per cue,
apply a person's edits to the plan, and render a take that reuses every cue the edits left alone.

Everything the studio writes lives under its work folder:

    <work>/projects/<name>-XXXX/<video>                 the opened video (a hard link, or a copy)
    <work>/projects/<name>-XXXX/project.json, edits.json  what it holds and the table's edits (`store`)
    <work>/projects/<name>-XXXX/thumbs/cue-NNNNN.jpg    one picture per cue (the middle frame)
    <work>/projects/<name>-XXXX/takes/take-NNN/         one render: video, manifest, stems, timelines,
                                                        plan.json, the spectrogram picture, take.json,
                                                        hits.txt when its hit points were edited

Opening a video again (the same content, style and seed) returns to its project: the table as it
was last edited, its takes, and take numbers that go on counting.

No gradio here: the page (`dubber.studio.app`) calls these functions and shows what they return;
the table's rows and their edits are `dubber.studio.rows`, its hits column `dubber.studio.hit_cells`.
"""
from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import re
import secrets
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

from vision.types import MediaInfo, VisualEvent

from .. import api
from ..cache import content_fingerprint
from ..atomic import atomic_output, atomic_write_bytes, pid_alive
from ..errors import DubError, InputError, OutputError
from ..plan import cue_prompt, load_plan, save_plan
from ..styles import get_style
from ..types import DubPlan, ProgressFn, no_progress
from . import store
from .hit_cells import HIT_LIST_NAME, read_take_hits, with_hits, write_hit_list
from .hit_cells import captions_follow_hits, hit_cells, read_hits, same_hits  # noqa: F401  (the studio's API)
from .hit_cells import hit_notes  # noqa: F401  (the studio's API)
from .rows import CUSTOM_STYLE, style_of, without_style
from .rows import COLUMNS, apply_rows, check_seed, plan_rows, shot_label, timecode  # noqa: F401  (the studio's API)
from .store import Take, find_take, list_takes, load_take  # noqa: F401  (the studio's API)

log = logging.getLogger(__name__)

THUMB_WIDTH_PX = 160


@dataclass(frozen=True)
class StudioSettings:
    """Where the studio works and what it may open.

    `work_dir` holds everything it writes and is the only folder it serves; `root`, when set, is
    the folder whose videos may be opened by path (None: uploads only); `cache_dir` is the stage
    cache (None: the one the command line uses, so work done there is free here too); `model` is
    the AudioStory checkpoint folder or Hub repo id (None: the official one, if on this machine).
    """

    work_dir: Path
    root: Path | None = None
    cache_dir: str | None = None
    model: str | None = None
    max_upload_mb: int = 2048


@dataclass(frozen=True)
class Project:
    """One opened video: the studio's link to it, its analysis, its plan and a picture per cue.

    `plan` holds every edit the table shows and `shown_muted` its ticked mute boxes; `rendered` is
    the plan the last take was rendered from (None before the first take), which leaves out the
    edits its backend does not read; `muted` and `last_take` are that take's muted cues and the
    take itself. `shown_hits` are the hit points the hits column shows and `hits` those the last
    take played (None: the ones detection gave, `analysis.events`). `reopened`: the project was
    found in the work folder, not made by this opening.
    `page` and `opened_ns` tell this opening (one page's) from another page's of the same project.
    """

    folder: Path
    video: Path
    analysis: Any
    plan: DubPlan
    thumbnails: tuple[Path, ...]
    rendered: DubPlan | None = None
    muted: tuple[int, ...] = ()
    last_take: Take | None = None
    shown_muted: tuple[int, ...] = ()
    hits: tuple[VisualEvent, ...] | None = None
    shown_hits: tuple[VisualEvent, ...] | None = None
    reopened: bool = False
    page: str = field(default_factory=lambda: secrets.token_hex(6))
    opened_ns: int = field(default_factory=time.time_ns)


# ----------------------------------------------------------------------------- opening a video

def resolve_under_root(text: str, root: Path | None) -> Path:
    """The file `text` names, after checking the studio may open it: only inside `root`.

    Raises:
        InputError: no root was given, the path leaves it (also through a link), or it is no video.
    """
    if root is None:
        raise InputError("Opening a file by path needs the studio started with --root DIR; upload the video instead.")
    if not text or not text.strip():
        raise InputError(f"Type the path of a video inside {root}, or upload one.")
    given = api.usable_path(text.strip(), "input")   # a name no file system takes: one sentence, not a traceback
    path = (given if given.is_absolute() else root / given).resolve()
    if not path.is_relative_to(root.resolve()):
        raise InputError(f"{text.strip()} is outside the studio's folder {root}; choose a video inside it.")
    return api.check_input_file(path)


def _link_or_copy(source: Path, folder: Path, link: bool) -> Path:
    """Place `source` in `folder` under its own name: a hard link when asked and the file system
    allows, else a copy (with its modification time, so the cache knows it) written under a
    temporary name first."""
    target = folder / source.name
    if link:
        try:
            os.link(source, target)
            return target
        except OSError:
            pass
    with atomic_output(target) as temp:
        shutil.copy2(source, temp)
    return target


def _safe_name(name: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).stem).strip("._") or "video"
    return stem[:40]


def open_video(source: str | os.PathLike, settings: StudioSettings, style: str, seed: int,
               progress: ProgressFn = no_progress, *, link: bool = True, reopen: bool = True) -> Project:
    """Check a video as the command line does, place it in the work folder, analyse and plan it.
    `link=False` copies it: an upload must be copied, because Gradio rewrites its upload folder's
    files when it serves them (a hard link would change under the cache's fingerprint).
    With `reopen`, a project already in the work folder for the same content, style and seed is
    returned instead (`Project.reopened`), with its edits and its latest take.

    Raises:
        DubError / vision.errors.VideoError: the CLI's one-sentence reasons (not a video, too short...).
    """
    path = api.check_input_file(source)
    options = api.DubOptions(style=style, seed=check_seed(seed, "The seed"), cache_dir=settings.cache_dir)
    api.check_options(options)
    media = api.probe(path)   # size, length and stream checks before anything is copied
    projects = settings.work_dir / "projects"
    source_key = content_fingerprint(path)
    found = store.find_project(projects, source_key, options.style, options.seed) if reopen else None
    if found is None:
        folder = _new_project_folder(projects, path.name)
        video = _link_or_copy(path, folder, link)
        store.write_project_record(folder, source_key, video, options.style, options.seed, one_shot=not reopen)
    else:
        folder, video = found
        sweep_abandoned_takes(folder / "takes")   # a render stopped with the studio last time
        if not video.is_file():   # its copy was removed: the same content goes back in its place
            video = _link_or_copy(path, folder, link)
            store.write_project_record(folder, source_key, video, options.style, options.seed)
    project = _project_in(folder, video, options, media, progress)
    return project if found is None else _restored(project)


def reopen_project(name: str, settings: StudioSettings, progress: ProgressFn = no_progress) -> Project | None:
    """The project the work folder keeps under `name` (its folder's name, `Project.folder.name`),
    as it was left: its table's edits and its latest take. What a reloaded page had open.

    Returns:
        The project (`reopened`), or None when the work folder holds no such project (removed,
        or `name` is no project folder's name: it comes from the browser, so nothing else is read).

    Raises:
        InputError: the project's copy of its video was removed (opening the video puts it back).
        DubError / vision.errors.VideoError: the project's video can no longer be read.
    """
    projects = settings.work_dir / "projects"
    if not name or Path(name).name != name or name in (".", ".."):
        return None
    folder = projects / name
    record = store.read_project_record(folder)
    if record is None:
        return None
    video = folder / record["video"]
    if video.parent != folder:
        return None
    if not video.is_file():
        raise InputError(f"The video of the project you had open ({video.name}) is no longer in the studio's work "
                         "folder; open the video again to go on with its edits and takes.")
    options = api.DubOptions(style=record["style"], seed=check_seed(record["seed"], "The seed"),
                             cache_dir=settings.cache_dir)
    api.check_options(options)
    return _restored(_project_in(folder, video, options, api.probe(video), progress))


def _project_in(folder: Path, video: Path, options: api.DubOptions, media: MediaInfo,
                progress: ProgressFn) -> Project:
    """The project of `video` in `folder`, analysed and planned (from the cache when it can be)."""
    # One probe and one analysis per opened video: the copy has the probed file's bytes.
    copy = Path(os.path.abspath(video))
    analysis, analysis_key = api._analyze_for_dub(copy, options, progress, replace(media, path=str(copy)))
    plan = api._plan(analysis, analysis_key, options, copy)
    thumbnails = _thumbnails(video, plan, folder / "thumbs")
    return Project(folder=folder, video=video, analysis=analysis, plan=plan, thumbnails=thumbnails)


def _thumbnails(video: Path, plan: DubPlan, folder: Path) -> tuple[Path, ...]:
    """The cue pictures of a reopened project as they are, else written."""
    kept = tuple(folder / f"cue-{cue.index:05d}.jpg" for cue in plan.cues)
    return kept if all(p.is_file() for p in kept) else write_thumbnails(video, plan, folder)


def _same_cues(plan: DubPlan, other: DubPlan) -> bool:
    """Whether two plans cut the film into the same cues (edits aside)."""
    def cuts(p: DubPlan) -> list[tuple]:
        return [(c.index, c.shot_index, c.part, c.parts, c.start_sample, c.num_samples) for c in p.cues]
    return (plan.sample_rate, plan.total_samples) == (other.sample_rate, other.total_samples) and cuts(plan) == cuts(other)


def _restored(project: Project) -> Project:
    """A reopened project with its latest take and its table's saved edits. Edits or a take made
    for other cues (a planner of another version cut the film differently) are left out."""
    takes = list_takes(project)
    last = takes[-1] if takes else None
    rendered = None
    if last is not None:
        try:
            rendered = load_plan(last.folder / "plan.json")
        except DubError as err:
            log.warning("Ignoring %s (%s).", last.folder, err)
        if rendered is not None and not _same_cues(rendered, project.plan):
            rendered = None
    if rendered is not None:
        hits = _take_hits(last, project.analysis)
        project = replace(project, plan=rendered, rendered=rendered, muted=last.muted, last_take=last,
                          shown_muted=last.muted, hits=hits, shown_hits=hits)
    edits = store.load_edits(project.folder)
    if edits is not None and _same_cues(edits[0], project.plan):
        project = replace(project, plan=edits[0], shown_muted=edits[1], shown_hits=edits[2])
    return replace(project, reopened=True)


def _take_hits(take: Take, analysis: Any) -> tuple[VisualEvent, ...] | None:
    """The hit points a take played: its hit list's, or None (the detected ones)."""
    if take.hit_list is None:
        return None
    try:
        return read_take_hits(take.hit_list, analysis)
    except InputError as err:   # removed, or edited by hand into something else
        log.warning("Ignoring the hit list of %s (%s).", take.folder, err)
        return None


def table_rows(project: Project, thumbnail_cells: Sequence[str]) -> list[list]:
    """The shots table as the page shows it: the plan's rows with the shown mutes and hit points."""
    media = project.analysis.media
    events = project.analysis.events if project.shown_hits is None else project.shown_hits
    return plan_rows(project.plan, media, thumbnail_cells, project.shown_muted,
                     hit_cells=hit_cells(project.plan, events, media))


def save_table(project: Project, rows: Sequence[Sequence[Any]]) -> bool:
    """Keep the table's edits in the project folder, so reopening the video brings them back;
    False (nothing written) while a cell holds a value that cannot be used."""
    try:
        plan, muted = apply_rows(project.plan, rows, allow_all_muted=True)
        hits = read_hits(project.plan, project.analysis, rows, project.shown_hits)
    except InputError:
        return False
    store.save_edits(project.folder, plan, muted, page=project.page, hits=hits)
    return True


def edited_elsewhere(project: Project) -> bool:
    """Whether another page with this project open has saved its table since this page opened it:
    the two share one record of edits, and the one saved last is what a reload shows."""
    written = store.edits_written_by(project.folder)
    return written is not None and written[0] != project.page and written[1] > project.opened_ns


def write_thumbnails(video: Path, plan: DubPlan, folder: Path) -> tuple[Path, ...]:
    """One JPEG per cue, THUMB_WIDTH_PX wide, of the cue's middle frame."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    capture = cv2.VideoCapture(str(video))
    paths = []
    try:
        for cue in plan.cues:
            capture.set(cv2.CAP_PROP_POS_FRAMES, (cue.start_frame + cue.end_frame - 1) // 2)
            ok, frame = capture.read()
            if not ok:   # a frame the seek cannot reach: the cue's first one instead
                capture.set(cv2.CAP_PROP_POS_FRAMES, cue.start_frame)
                ok, frame = capture.read()
            if not ok:
                raise InputError(f"Cannot read frame {cue.start_frame} of {video.name}; the file may be damaged.")
            height = max(1, round(frame.shape[0] * THUMB_WIDTH_PX / frame.shape[1]))
            small = cv2.resize(frame, (THUMB_WIDTH_PX, height), interpolation=cv2.INTER_AREA)
            path = folder / f"cue-{cue.index:05d}.jpg"
            ok, data = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 85])
            atomic_write_bytes(path, data.tobytes())   # a picture cut short would be kept on reopening
            paths.append(path)
    finally:
        capture.release()
    return tuple(paths)


# ----------------------------------------------------------------------------- edits a backend reads

CUE_FIELDS = frozenset({"caption", "prompt", "seed"})   # what the table edits in a cue (a style is prompt text)
# Why a backend reads no per-shot edit, where the backend's name alone does not say it.
_READS_THE_FILM_ONLY = {"score": "the score engine composes the whole film from its style and seed"}
_DISPLAY_NAMES = {"audiostory": "AudioStory", "score": "the score engine"}


def backend_cue_edits(name: str) -> frozenset[str] | None:
    """The cue fields whose edits change the sound of backend `name` (its class's CUE_EDITS),
    looked up without building it: the AudioStory class imports no torch. None: no such backend."""
    from .. import backends

    # The registry's entry: a class, or the module and class `get_backend` imports when asked.
    entry = backends._REGISTRY.get(name)
    if entry is None:
        return None
    if isinstance(entry, tuple):
        entry = getattr(importlib.import_module(entry[0]), entry[1])
    return frozenset(getattr(entry, "CUE_EDITS", CUE_FIELDS))


def planned_backend(choice: str, model: str | None = None) -> str | None:
    """The backend a render with `choice` ("auto" or a name) will use, where that is known before
    rendering without loading torch: "auto" is the score engine unless AudioStory's weights and
    torch are here (then a CUDA GPU decides, which only torch can tell: None)."""
    if choice != "auto":
        return choice
    from ..backends import weights_availability

    if importlib.util.find_spec("torch") is None or not weights_availability(model).available:
        return "score"
    return None


def render_backend(choice: str, settings: StudioSettings) -> str:
    """The backend a render with `choice` uses, decided as `dub` decides it.

    Raises:
        BackendUnavailable: AudioStory was chosen and cannot run here (the CLI's sentence).
    """
    return api.resolve_backend(api.DubOptions(backend=choice, model=settings.model))[0]


def unused_edits_sentence(name: str) -> str:
    """One sentence naming the per-shot edits backend `name` does not use, and which backends do;
    "" when it reads them all."""
    reads = backend_cue_edits(name)
    if reads is None or {"prompt", "seed"} <= reads:
        return ""
    unread = [what for field, what in (("prompt", "prompts"), ("seed", "seeds"), ("prompt", "styles"))
              if field not in reads]
    what = f"{', '.join(unread[:-1])} and {unread[-1]}" if len(unread) > 1 else unread[0]
    readers = [_DISPLAY_NAMES.get(b, f"the {b} backend") for b in _backend_names()
               if b != name and {"prompt", "seed"} - reads <= (backend_cue_edits(b) or frozenset())]
    why = _READS_THE_FILM_ONLY.get(name, f"the {name} backend does not read them")
    by = f"read by {' and '.join(readers)} only" if readers else "read by no backend here"
    used = [what for field, what in (("prompt", "prompts"), ("seed", "seeds")) if field in reads]
    only = " and ".join(["mute", *used])
    return f"{why[:1].upper()}{why[1:]}; per-shot {what} are {by}: only {only} change{'s' * (not used)} this take."


def _backend_names() -> tuple[str, ...]:
    from ..backends import available_backends

    return available_backends()


@dataclass(frozen=True)
class UnusedEdit:
    """A shot whose edits the backend does not read: its label and what was edited."""

    shot: str
    what: tuple[str, ...]   # "prompt", "style", "seed"


def plan_for_backend(previous: DubPlan, wanted: DubPlan, reads: frozenset[str] | None
                     ) -> tuple[DubPlan, tuple[UnusedEdit, ...]]:
    """The plan a backend that reads cue fields `reads` renders: `wanted` with the prompts and
    seeds it does not read kept as in `previous` (the last take's plan), so the take's manifest
    and timelines record no edit its sound does not follow; and those unused edits, by shot.
    Captions are always taken: they are the take's subtitles too. A prompt that only follows an
    edited caption in the planner's wording is no edit of its own."""
    reads = CUE_FIELDS if reads is None else reads
    cues, unused = [], []
    for before, cue in zip(previous.cues, wanted.cues):
        what: list[str] = []
        if "prompt" not in reads and cue.prompt != before.prompt:
            style = style_of(before.prompt)
            follows_caption = style != CUSTOM_STYLE and cue.prompt == cue_prompt(cue.caption, get_style(style))
            if not follows_caption:
                if without_style(cue.prompt) != without_style(before.prompt):
                    what.append("prompt")
                if style_of(cue.prompt) not in (style, CUSTOM_STYLE):
                    what.append("style")
                cue = replace(cue, prompt=before.prompt)
        if "seed" not in reads and cue.seed != before.seed:
            what.append("seed")
            cue = replace(cue, seed=before.seed)
        if what:
            unused.append(UnusedEdit(shot_label(cue), tuple(what)))
        cues.append(cue)
    return replace(wanted, cues=tuple(cues)), tuple(unused)


def describe_unused(unused: Sequence[UnusedEdit]) -> str:
    """"shot 3's prompt and seed, shot 4's style"."""
    def one(edit: UnusedEdit) -> str:
        what = list(edit.what)
        return f"shot {edit.shot}'s " + (f"{', '.join(what[:-1])} and {what[-1]}" if len(what) > 1 else what[0])
    return ", ".join(one(e) for e in unused)


# ----------------------------------------------------------------------------- rendering a take

def _project_is_gone(project: Project) -> OutputError:
    return OutputError(f"The studio's project folder {project.folder} is gone (removed while the page was open); "
                       "open the video again.")


def check_project_is_there(project: Project) -> None:
    """Raises OutputError when the project folder or its video was removed while the page was open."""
    if not project.folder.is_dir() or not project.video.is_file():
        raise _project_is_gone(project)


def _new_project_folder(projects: Path, name: str) -> Path:
    """A new, empty project folder named after the video, made as any folder of the work folder
    is (readable by whoever may read the work folder, unlike a private temporary).

    Raises:
        OutputError: the work folder cannot be written.
    """
    try:
        projects.mkdir(parents=True, exist_ok=True)
        while True:
            folder = projects / f"{_safe_name(name)}-{secrets.token_hex(4)}"
            try:
                folder.mkdir()
                return folder
            except FileExistsError:
                continue
    except OSError as err:
        raise OutputError(f"The studio cannot keep a project in {projects} ({err.strerror or err}); make its "
                          "work folder writable, or start the studio with another --work.") from err


RENDERING_MARK = ".rendering"   # in a take folder while a process renders into it: that process's id


def sweep_abandoned_takes(takes: Path) -> list[Path]:
    """Remove take folders whose render stopped without finishing (the studio was stopped or
    killed mid-render): no take record, and the process that was rendering them is gone. A half
    made take can hold a film's worth of partial video and stems. Returns what went."""
    try:
        folders = [f for f in takes.iterdir() if f.is_dir() and store.take_number(f.name) is not None]
    except OSError:
        return []
    removed = []
    for folder in folders:
        if (folder / store.TAKE_FILE).exists():
            continue
        try:
            pid = int((folder / RENDERING_MARK).read_text().strip())
        except (OSError, ValueError):
            pid = None
        if pid is not None and pid_alive(pid):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        if not folder.exists():
            removed.append(folder)
            log.info("removed %s, a take whose render was stopped", folder)
    return removed


def _next_take_folder(project: Project) -> Path:
    """A new, empty take folder, numbered after every take still on disk and after the last take
    this page rendered: that number stays taken even when its folder was removed, since the page,
    the downloads and their manifest name it.

    Raises:
        OutputError: the project folder (or the work folder above it) was removed.
    """
    check_project_is_there(project)
    takes = project.folder / "takes"
    sweep_abandoned_takes(takes)
    try:
        takes.mkdir(exist_ok=True)
        numbers = [n for p in takes.iterdir() if (n := store.take_number(p.name)) is not None]
        last = project.last_take.number if project.last_take is not None else 0
        folder = takes / f"take-{max(*numbers, last, 0) + 1:03d}"
        folder.mkdir()
        (folder / RENDERING_MARK).write_text(str(os.getpid()))
    except FileNotFoundError as err:   # removed between the check and here
        raise _project_is_gone(project) from err
    except OSError as err:   # read-only, full, or another page's take of that number
        raise OutputError(f"The studio cannot make a new take in {takes} ({err.strerror or err}); make room or make "
                          "the work folder writable, then render again.") from err
    return folder


def render_take(project: Project, plan: DubPlan, muted: Sequence[int], backend: str,
                settings: StudioSettings, progress: ProgressFn = no_progress,
                hits: tuple[VisualEvent, ...] | None = None) -> Take:
    """Render `plan` (the project's plan with the person's edits) into a new take folder: the
    dubbed video, stems, timelines, manifest and the spectrogram of the mix. Cues whose plan entry
    did not change come from the render cache, sample for sample what they were. `hits`: the hit
    points to play, every one (`read_hits`), kept in the take folder as the hit list it renders
    from; None plays the detected ones. A render that fails leaves no take folder, so the next
    take gets its number.

    Raises:
        DubError: the CLI's reasons (backend unavailable, ...); OutputError when the project
            folder was removed.
    """
    folder = _next_take_folder(project)
    try:
        return _render_into(folder, project, plan, muted, backend, settings, progress, hits)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def _render_into(folder: Path, project: Project, plan: DubPlan, muted: Sequence[int], backend: str,
                 settings: StudioSettings, progress: ProgressFn,
                 hits: tuple[VisualEvent, ...] | None) -> Take:
    # Each take's files carry its number, so a player (and a download folder) tells takes apart
    # even when two takes sound the same.
    head, dub, tail = api.default_output_path(project.video, project.analysis.media.video_codec).name.rpartition(".dub.")
    out_name = f"{head}.{folder.name}{dub}{tail}"   # the last ".dub.": a source's own name may hold one
    plan_path = save_plan(plan, folder / "plan.json")
    # Hits as detected: no hit list, so the take's cache keys and sound are those of a plain dub.
    hit_list = None if hits is None else write_hit_list(hits, project.analysis.media, folder / HIT_LIST_NAME)
    options = api.DubOptions(backend=backend, style=plan.style, seed=plan.seed, plan_path=str(plan_path),
                             stems_dir=str(folder / "stems"), timeline=True, cache_dir=settings.cache_dir,
                             model=settings.model, muted_cues=tuple(sorted(muted)),
                             hits_path=None if hit_list is None else str(hit_list), hits_only=hit_list is not None)
    result = api.dub(project.video, folder / out_name, options, progress)
    mix_wav = Path(result.outputs["mix"]) if "mix" in result.outputs else None
    picture = (write_spectrogram(mix_wav, with_hits(project.analysis, hits), folder / "spectrogram.png")
               if mix_wav else None)
    take = Take(folder=folder, video=Path(result.output), outputs=dict(result.outputs), spectrogram=picture,
                backend=result.backend, cues=result.cues, cues_from_cache=result.cues_from_cache,
                notes=tuple(result.notes), caches_audio=result.caches_audio, muted=tuple(sorted(muted)),
                hit_list=hit_list)
    # Written last: a take folder without it did not finish and is not offered when reopening.
    store.save_take_record(folder, {k: v for k, v in vars(take).items() if k != "folder"})
    (folder / RENDERING_MARK).unlink(missing_ok=True)
    return take


def write_spectrogram(mix_wav: Path, analysis: Any, out: Path) -> Path:
    """The review picture of the mix: spectrogram with the cuts, transitions and events marked."""
    import soundfile as sf

    from ..spectrogram import spectrogram_png

    audio, sr = sf.read(str(mix_wav), dtype="float32", always_2d=True)
    media = analysis.media

    def seconds(frame: int) -> float:
        return float(media.frame_time(min(frame, media.frame_count)))

    spectrogram_png(audio.T, sr, duration_s=seconds(media.frame_count),
                    cuts_s=[seconds(s.start_frame) for s in analysis.shots[1:]],
                    transitions_s=[(seconds(t.start_frame), seconds(t.end_frame)) for t in analysis.transitions],
                    events=[(seconds(e.frame), e.kind) for e in analysis.events], out_path=out)
    return out


def take_downloads(take: Take) -> list[str]:
    """The files a person downloads from a take: video, manifest, timelines, captions, stems."""
    order = ("video", "manifest", "otio", "fcpxml", "srt", "mix")
    roles = sorted(take.outputs, key=lambda r: (order.index(r) if r in order else len(order), r))
    return [take.outputs[r] for r in roles if Path(take.outputs[r]).is_file()]


def dub_once(video: str | os.PathLike, style: str, seed: Any, backend: str, settings: StudioSettings,
             progress: ProgressFn = no_progress) -> Take:
    """Open, plan and render a video with no edits: what the `dub` endpoint does for scripts."""
    project = open_video(video, settings, style, seed, progress, link=False, reopen=False)
    return render_take(project, project.plan, (), backend, settings, progress)
