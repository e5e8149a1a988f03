"""What the studio does, without the web page: open a video, show its plan as one row per cue,
apply a person's edits to the plan, and render a take that reuses every cue the edits left alone.

Everything the studio writes lives under its work folder:

    <work>/projects/<name>-XXXX/<video>                 the opened video (a hard link, or a copy)
    <work>/projects/<name>-XXXX/thumbs/cue-NNNNN.jpg    one picture per cue (the middle frame)
    <work>/projects/<name>-XXXX/takes/take-NNN/         one render: video, manifest, stems, timelines,
                                                        plan.json and the spectrogram picture

No gradio here: the page (`dubber.studio.app`) calls these functions and shows what they return.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from vision.types import MediaInfo

from .. import api
from ..atomic import atomic_output
from ..errors import InputError
from ..plan import SEED_MODULUS, cue_prompt, save_plan
from ..styles import STYLES, available_styles, get_style
from ..types import DubPlan, ProgressFn, no_progress

log = logging.getLogger(__name__)

THUMB_WIDTH_PX = 160
COLUMNS = ("shot", "picture", "start", "end", "caption", "prompt", "style", "seed", "mute")
CUSTOM_STYLE = "custom"   # a prompt that ends with no known style's text


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
    """One opened video: the studio's link to it, its analysis, its plan and a picture per cue."""

    folder: Path
    video: Path
    analysis: Any
    plan: DubPlan
    thumbnails: tuple[Path, ...]


@dataclass(frozen=True)
class Take:
    """One render of a project: every file it wrote and how much of it the cache made free."""

    folder: Path
    video: Path
    outputs: Mapping[str, str]
    spectrogram: Path | None
    backend: str
    cues: int
    cues_from_cache: int
    notes: tuple[str, ...]
    caches_audio: bool = True  # False: every shot is played again from the cached analysis


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
    given = Path(text.strip()).expanduser()
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
               progress: ProgressFn = no_progress, *, link: bool = True) -> Project:
    """Check a video as the command line does, place it in the work folder, analyse and plan it.
    `link=False` copies it: an upload must be copied, because Gradio rewrites its upload folder's
    files when it serves them (a hard link would change under the cache's fingerprint).

    Raises:
        DubError / vision.errors.VideoError: the CLI's one-sentence reasons (not a video, too short...).
    """
    path = api.check_input_file(source)
    options = api.DubOptions(style=style, seed=check_seed(seed, "The seed"), cache_dir=settings.cache_dir)
    api.check_options(options)
    media = api.probe(path)   # size, length and stream checks before anything is copied
    projects = settings.work_dir / "projects"
    projects.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=projects, prefix=f"{_safe_name(path.name)}-"))
    video = _link_or_copy(path, folder, link)
    # One probe and one analysis per opened video: the copy has the probed file's bytes.
    copy = Path(os.path.abspath(video))
    analysis, analysis_key = api._analyze(copy, options, progress, replace(media, path=str(copy)))
    plan = api._plan(analysis, analysis_key, options)
    thumbnails = write_thumbnails(video, plan, folder / "thumbs")
    return Project(folder=folder, video=video, analysis=analysis, plan=plan, thumbnails=thumbnails)


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
            path.write_bytes(data.tobytes())
            paths.append(path)
    finally:
        capture.release()
    return tuple(paths)


# ----------------------------------------------------------------------------- rows

def timecode(frame: int, media: MediaInfo) -> str:
    """The time code an editor reads at a frame: from the file's own start time code,
    drop-frame when that is (see `dubber.export.timeline.frame_timecode`)."""
    from ..export.timeline import frame_timecode

    return frame_timecode(media, frame)


def style_of(prompt: str) -> str:
    """The style whose text a prompt ends with (how `cue_prompt` builds it), or CUSTOM_STYLE."""
    return next((name for name, s in STYLES.items() if prompt.endswith(s.prompt)), CUSTOM_STYLE)


def shot_label(cue: Any) -> str:
    label = str(cue.shot_index + 1)
    return label if cue.parts == 1 else f"{label} ({cue.part + 1}/{cue.parts})"


def plan_rows(plan: DubPlan, media: MediaInfo, thumbnail_cells: Sequence[str],
              muted: Sequence[int] = ()) -> list[list]:
    """The shots table: one row per cue, in COLUMNS order; `thumbnail_cells` is what the page
    shows in the picture column (one per cue)."""
    return [[shot_label(c), thumb, timecode(c.start_frame, media), timecode(c.end_frame, media), c.caption,
             c.prompt, style_of(c.prompt), c.seed, c.index in muted]
            for c, thumb in zip(plan.cues, thumbnail_cells)]


def check_seed(value: Any, what: str) -> int:
    """A seed as an int in [0, SEED_MODULUS); text and whole floats from a form are accepted.

    Raises:
        InputError: not a whole number in range.
    """
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        number = float("nan")
    if not (number == number and number.is_integer() and 0 <= number < SEED_MODULUS):
        raise InputError(f"{what} {text!r} is not a whole number from 0 to {SEED_MODULUS - 1}; enter one.")
    return int(number)


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "on", "x")
    return bool(value)


def _edited_cue(cue: Any, row: Mapping[str, Any]) -> Any:
    """`cue` with one row's caption, prompt, style and seed applied. A changed caption or style
    rewrites the prompt the way the planner writes it, unless the prompt itself was edited too."""
    who = f"Shot {shot_label(cue)}'s"
    caption = " ".join(str(row["caption"]).split())
    prompt = " ".join(str(row["prompt"]).split())
    style = str(row["style"]).strip()
    seed = check_seed(row["seed"], f"{who} seed")
    if style not in (CUSTOM_STYLE, *available_styles()):
        raise InputError(f"{who} style {style!r} is unknown; choose one of: {', '.join(available_styles())}.")
    old_style = style_of(cue.prompt)
    prompt_edited = prompt != " ".join(cue.prompt.split())
    if not prompt_edited and (caption != cue.caption or style != old_style) and style != CUSTOM_STYLE:
        prompt = cue_prompt(caption, get_style(style))
    if not prompt:
        raise InputError(f"{who} prompt is empty; describe the sound of the shot.")
    if (caption, prompt, seed) == (cue.caption, cue.prompt, cue.seed):
        return cue
    return replace(cue, caption=caption, prompt=prompt, seed=seed)


def apply_rows(plan: DubPlan, rows: Sequence[Sequence[Any]]) -> tuple[DubPlan, tuple[int, ...]]:
    """The plan with the table's edits, and the indices of the muted cues.

    Raises:
        InputError: the table does not match the plan, or a cell holds a value that cannot be used.
    """
    _check_rows_are_the_shots(plan, rows)
    cues, muted = [], []
    for cue, values in zip(plan.cues, rows):
        row = dict(zip(COLUMNS, values))
        if len(values) != len(COLUMNS) or str(row["shot"]) != shot_label(cue):
            raise InputError("The shots table no longer matches the video; open the video again.")
        cues.append(_edited_cue(cue, row))
        if _as_bool(row["mute"]):
            muted.append(cue.index)
    if len(muted) == len(cues):
        raise InputError("Every shot is muted; unmute at least one to render.")
    return replace(plan, cues=tuple(cues)), tuple(muted)


def _check_rows_are_the_shots(plan: DubPlan, rows: Sequence[Sequence[Any]]) -> None:
    """Shots follow the film's cuts: a row added or deleted in the table is refused, saying which
    and what to do instead (the user's other edits stay in the table)."""
    labels = [shot_label(cue) for cue in plan.cues]
    given = [str(values[0]) if len(values) else "" for values in rows]
    missing = [label for label in labels if label not in given]
    if missing:
        which = f"shot {missing[0]}" if len(missing) == 1 else f"shots {', '.join(missing)}"
        raise InputError(f"The shots table lost the row of {which}; shots follow the film's cuts and "
                         "cannot be removed, so tick a shot's mute box to silence it (open the video again to get "
                         "the row back).")
    if len(rows) != len(labels):
        raise InputError(f"The shots table has {len(rows) - len(labels)} row(s) more than the film has shots; "
                         "delete the rows you added, since shots follow the film's cuts.")


# ----------------------------------------------------------------------------- rendering a take

def _next_take_folder(project: Project) -> Path:
    takes = project.folder / "takes"
    takes.mkdir(exist_ok=True)
    numbers = [int(m.group(1)) for p in takes.iterdir() if (m := re.fullmatch(r"take-(\d+)", p.name))]
    folder = takes / f"take-{max(numbers, default=0) + 1:03d}"
    folder.mkdir()
    return folder


def render_take(project: Project, plan: DubPlan, muted: Sequence[int], backend: str,
                settings: StudioSettings, progress: ProgressFn = no_progress) -> Take:
    """Render `plan` (the project's plan with the person's edits) into a new take folder: the
    dubbed video, stems, timelines, manifest and the spectrogram of the mix. Cues whose plan entry
    did not change come from the render cache, sample for sample what they were.

    Raises:
        DubError: the CLI's reasons (backend unavailable, ...).
    """
    folder = _next_take_folder(project)
    # Each take's files carry its number, so a player (and a download folder) tells takes apart
    # even when two takes sound the same.
    out_name = api.default_output_path(project.video).name.replace(".dub.", f".{folder.name}.dub.", 1)
    plan_path = save_plan(plan, folder / "plan.json")
    options = api.DubOptions(backend=backend, style=plan.style, seed=plan.seed, plan_path=str(plan_path),
                             stems_dir=str(folder / "stems"), timeline=True, cache_dir=settings.cache_dir,
                             model=settings.model, muted_cues=tuple(sorted(muted)))
    result = api.dub(project.video, folder / out_name, options, progress)
    mix_wav = Path(result.outputs["mix"]) if "mix" in result.outputs else None
    picture = write_spectrogram(mix_wav, project.analysis, folder / "spectrogram.png") if mix_wav else None
    return Take(folder=folder, video=Path(result.output), outputs=dict(result.outputs), spectrogram=picture,
                backend=result.backend, cues=result.cues, cues_from_cache=result.cues_from_cache,
                notes=tuple(result.notes), caches_audio=result.caches_audio)


def write_spectrogram(mix_wav: Path, analysis: Any, out: Path) -> Path:
    """The review picture of the mix: spectrogram with the cuts, transitions and events marked."""
    import soundfile as sf

    from ..review import spectrogram_png

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
    project = open_video(video, settings, style, seed, progress, link=False)
    return render_take(project, project.plan, (), backend, settings, progress)
