"""The studio's web page (Gradio): open a video, edit its shots, re-render, listen, download.

    build_app(settings)                  -> gr.Blocks (not started)
    serve(settings, host, port, ...)     starts it and blocks until stopped

The page only arranges what `dubber.studio.project` computes. gradio is imported here, never by
`import dubber`; torch is imported only when the AudioStory backend renders.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterator

from ..errors import InputError, is_user_error
from ..options import STUDIO_HOST as DEFAULT_HOST, STUDIO_PORT as DEFAULT_PORT
from ..plan import with_model_text
from ..styles import DEFAULT_STYLE, available_styles
from ..types import ProgressFn
from . import project as studio

log = logging.getLogger(__name__)

EDITED_ELSEWHERE = ("This video is open in another page too, and that page saved its edits after this one opened "
                    "it. The two share one table: the edits saved last are the ones kept, and a reload shows "
                    "them. Keep one page per video; each take keeps the edits it was rendered from.")
SERVE_POLL_S = 0.2                 # how often `serve` looks whether the server still runs
GRADIO_CACHE_CHECK_S = 3600        # how often the copies Gradio serves are looked over ...
GRADIO_CACHE_AGE_S = 24 * 3600     # ... and how old one may get

VIDEO_TYPES = [".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi"]
# One queue for everything that analyses or renders (the page's buttons and the scripts' calls
# alike): each uses every core, so they take turns instead of sharing the machine.
WORK = "work"
# The seed column is text: a browser reads a number cell as a float, which shows a long seed in
# float notation and changes its last digits; `project.check_seed` reads the text exactly.
_DATATYPES = ["str", "markdown", "str", "str", "str", "str", "str", "str", "str", "bool"]
_COLUMN_WIDTHS = ["76px", "130px", "128px", "128px", "13%", "17%", "120px", "112px", "18%", "76px"]
_DUB_API_DESCRIPTION = ("Dub a video in one call: (video file, style name, seed) -> the dubbed video, planned and "
                        "rendered as `dub` would with the auto backend. A mistake returns the CLI's one sentence.")
# Gradio's file list offers to remove a file from any list of several, even a read-only one; a take's
# downloads are all its files, so that button is hidden.
_CSS = '#downloads button[aria-label="Remove this file"] { display: none; }'
_INTRO = ("Open a video, edit any shot's caption, prompt, style or seed (or mute it), then **Render**: "
          "the shots you did not change keep their sound. The **hits** column lists the moments the music and "
          "effects hit in each shot (`TIMECODE KIND STRENGTH`, `; ` between them): add one (a time, `300f` or a "
          "timecode, then an optional kind such as landing), delete one, or change its kind or strength.")


def backend_choices(model: str | None = None) -> list[str]:
    """"auto" and every registered backend that can run here; AudioStory only when its weights
    (`model`, or the official ones) are on this machine, looked up on disk without importing torch."""
    from ..backends import available_backends, weights_availability

    usable = [b for b in available_backends() if b != "audiostory" or weights_availability(model).available]
    return ["auto", *usable]


def _user_errors(fn: Callable) -> Callable:
    """Give an API client a user's mistake as the CLI's one sentence, and the server's terminal
    that one line; bugs keep their traceback there."""
    import gradio as gr

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            if is_user_error(err):
                log.warning("%s", err)
                raise gr.Error(str(err), duration=None, print_exception=False) from None
            raise
    return wrapper


def _user_errors_as_notices(fn: Callable) -> Callable:
    """Show a user's mistake in the page as the CLI's one sentence in a notice that stays until
    closed, and change nothing else: a raised error would cover every output of the event (the
    table, the players, the downloads) with an error panel, hiding the cell to fix."""
    import gradio as gr

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            if not is_user_error(err):
                raise
            log.warning("%s", err)
            gr.Warning(str(err), duration=None, title="Not done")
            return gr.skip()
    return wrapper


def _progress_sink(progress: Any) -> ProgressFn:
    def report(stage: str, done: int, total: int) -> None:
        if progress is not None:
            progress((done, max(total, 1)), desc=stage.replace("/", ": "))
    return report


def _thumbnail_cell(path: Path) -> str:
    from urllib.parse import quote

    # The page fetches pictures through Gradio's file route, which serves the work folder only.
    return f"![shot](/gradio_api/file={quote(str(path))})"


def _project_view(project: studio.Project) -> tuple:
    media = project.analysis.media
    rows = studio.table_rows(project, [_thumbnail_cell(p) for p in project.thumbnails])
    strip = [(str(p), f"{studio.shot_label(c)} · {studio.timecode(c.start_frame, media)}")
             for p, c in zip(project.thumbnails, project.plan.cues)]
    size = f"{len(project.plan.cues)} shots, {float(project.analysis.media.duration_s):.2f} s"
    if project.reopened:
        takes = len(studio.list_takes(project))
        latest = (f"{takes} take{'s' * (takes != 1)}, the latest (take {_take_label(project.last_take)}) in the "
                  "player" if project.last_take else "no take yet")
        status = (f"Reopened **{project.video.name}** as it was left in the work folder: {size}, your edits, "
                  f"{latest}. Edit the table, then Render.")
    else:
        status = f"Opened **{project.video.name}**: {size}. Edit the table, then Render."
    return rows, strip, str(project.video), status


def _take_label(take: studio.Take) -> str:
    return f"{take.number:03d}"


def _takes_menu(project: studio.Project | None) -> Any:
    """The takes a person can play and download, newest selected."""
    import gradio as gr

    takes = studio.list_takes(project) if project is not None else ()
    choices = [(f"Take {_take_label(t)} · {t.backend}" + (f" · {len(t.muted)} muted" if t.muted else ""),
                t.folder.name) for t in reversed(takes)]
    latest = project.last_take.folder.name if project is not None and project.last_take else None
    return gr.update(choices=choices, value=latest if latest in {c[1] for c in choices} else None)


def _take_view(take: studio.Take | None) -> tuple:
    """The dub player, spectrogram and downloads of a take (all empty without one)."""
    if take is None:
        return None, None, None
    return str(take.video), _picture(take), studio.take_downloads(take)


def _take_status(take: studio.Take, unused: tuple[studio.UnusedEdit, ...] = (), hits_edited: bool = False,
                 hit_notes: tuple[str, ...] = ()) -> str:
    """`hits_edited`: the take plays other hit points than the last one did; `hit_notes`: what the
    status says of the hits cells (`studio.hit_notes`)."""
    head = f"Take {_take_label(take)} with the **{take.backend}** backend: "
    shots = f"{take.cues} shot{'s' if take.cues != 1 else ''}"
    if not take.caches_audio and hits_edited:
        # The score engine draws each shot's music from streams of its own, so the shots before the
        # first edited one keep every note; the film's mix (ducking under the effects, the loudness
        # target) is balanced over the whole film, so their level may still move a little.
        text = head + (f"{shots} played again to your hit points; the music is written anew from the first shot "
                       "whose hits changed, and the shots before it keep every note (their level may move by a "
                       "fraction of a dB as the whole mix is balanced again).")
    elif not take.caches_audio:
        # The score engine keeps no audio: it plays the film again, and what was not edited comes
        # out sample for sample as before; saying "0 from the cache" would suggest otherwise.
        text = head + (f"{shots} played again from the cached analysis; shots you did not mute or unmute sound "
                       "exactly as before.")
    else:
        rendered = take.cues - take.cues_from_cache
        text = head + f"{rendered} shot{'s' if rendered != 1 else ''} rendered, {take.cues_from_cache} from the cache."
    if unused:
        text += f" Not used in this take: {studio.describe_unused(unused)}. {studio.unused_edits_sentence(take.backend)}"
    return " ".join((text, *hit_notes))


def _nothing_to_render(backend: str, unused: tuple[studio.UnusedEdit, ...]) -> str:
    return (f"Nothing rendered: the only changes ({studio.describe_unused(unused)}) are ones the **{backend}** "
            f"backend does not use, so a new take would sound like the last one. "
            f"{studio.unused_edits_sentence(backend)}")


def _nothing_changed(last: studio.Take) -> str:
    return (f"Nothing changed since take {_take_label(last)}, so nothing was rendered: edit a shot (or pick "
            "another backend) first.")


def edits_note(choice: str, model: str | None = None) -> str:
    """What the page says under the backend choice, before a render: which per-shot edits the
    backend a render would use ignores ("" when it reads them all, or cannot be known without torch)."""
    name = studio.planned_backend(choice, model)
    sentence = studio.unused_edits_sentence(name) if name else ""
    return f"*{sentence}*" if sentence else ""


class _Actions:
    """What the page's buttons do, each a call into `dubber.studio.project`; a user's mistake comes
    back as the CLI's one sentence (see `_user_errors`)."""

    def __init__(self, settings: studio.StudioSettings):
        self.settings = settings
        self._warned: set[tuple[Path, str]] = set()   # pages told of another page's edits

    def open_upload(self, video: str | None, style: str, seed: Any, progress: Any = None) -> tuple:
        if not video:
            raise InputError("Choose a video file to upload first.")
        with _named_as_uploaded(video):
            project = studio.open_video(video, self.settings, style, seed, _progress_sink(progress), link=False)
        return (project, *_project_view(project))

    def open_path(self, path: str, style: str, seed: Any, progress: Any = None) -> tuple:
        video = studio.resolve_under_root(path, self.settings.root)
        project = studio.open_video(video, self.settings, style, seed, _progress_sink(progress))
        return (project, *_project_view(project))

    def render(self, project: studio.Project | None, shots: list, backend: str, progress: Any = None) -> tuple:
        if project is None:
            raise InputError("Open a video first.")
        studio.check_project_is_there(project)
        rows = [list(r) for r in shots]
        wanted, muted = studio.apply_rows(project.plan, rows)
        hits = studio.read_hits(project.plan, project.analysis, rows, project.shown_hits)
        notes = tuple(studio.hit_notes(project.plan, project.analysis, rows, hits, project.hits, muted))
        if not studio.same_hits(hits, project.shown_hits) or not studio.same_hits(hits, project.hits):
            # the captions the planner wrote speak of the hit points the take will play
            wanted = studio.captions_follow_hits(wanted, project.analysis, hits, (project.shown_hits, project.hits))
        studio.store.save_edits(project.folder, wanted, muted, page=project.page, hits=hits)
        name = studio.render_backend(backend, self.settings)
        previous = project.rendered or project.plan
        plan, unused = studio.plan_for_backend(previous, wanted, studio.backend_cue_edits(name))
        last = project.last_take
        # The table keeps every edit (a backend that reads them may render it later); the take
        # gets only what its backend reads.
        updated = replace(project, plan=wanted, shown_muted=muted, shown_hits=hits)
        # Compared as rendered: the text the model reads follows the fields it is made from, and a
        # table saved before a reload still holds the text of the fields as they were then.
        same = with_model_text(plan) == with_model_text(previous) and studio.same_hits(hits, project.hits)
        if last is not None and same and (muted, name) == (project.muted, last.backend):
            # A take that would sound and read like the last one is not rendered again.
            said = _nothing_to_render(name, unused) if unused else _nothing_changed(last)
            return (updated, _project_view(updated)[0], *_take_view(last), " ".join((said, *notes)))
        take = studio.render_take(project, plan, muted, backend, self.settings, _progress_sink(progress), hits)
        hits_moved = not studio.same_hits(hits, project.hits)
        updated = replace(updated, rendered=plan, muted=muted, last_take=take, hits=hits)
        return (updated, _project_view(updated)[0], *_take_view(take), _take_status(take, unused, hits_moved, notes))

    def restore(self, saved: Any, progress: Any = None) -> studio.Project | None:
        """The project the page had open before it was reloaded (`saved`: its folder's name, as
        the browser kept it), as it was left; None when there is none to show."""
        if not saved or not isinstance(saved, str):
            return None
        return studio.reopen_project(saved, self.settings, _progress_sink(progress))

    def show_take(self, project: studio.Project | None, name: str | None) -> tuple:
        """The dub player, spectrogram and downloads of the take chosen in the takes menu."""
        if project is None:
            raise InputError("Open a video first.")
        return _take_view(studio.find_take(project, name) if name else None)

    def save_table(self, project: studio.Project | None, shots: list) -> None:
        """Keep each edit of the table in the project folder as it is made, so reopening the video
        (after a reload, or in a restarted studio) brings it back. Another page editing the same
        video shares that record: said once to each page that meets the other's edits."""
        if project is None or not project.folder.is_dir():
            return
        if studio.edited_elsewhere(project) and (project.folder, project.page) not in self._warned:
            import gradio as gr

            self._warned.add((project.folder, project.page))
            gr.Warning(EDITED_ELSEWHERE, duration=None, title="Another page")
        studio.save_table(project, [list(r) for r in shots])

    def dub(self, video: str | None, style: str, seed: Any, progress: Any = None) -> str:
        if not video:
            raise InputError("Give a video file to dub.")
        with _named_as_uploaded(video):
            return str(studio.dub_once(video, style, seed, "auto", self.settings, _progress_sink(progress)).video)


def _picture(take: studio.Take) -> str | None:
    return str(take.spectrogram) if take.spectrogram else None


@contextlib.contextmanager
def _named_as_uploaded(video: str) -> Iterator[None]:
    """A user's mistake names the upload by the name the person gave it, not by Gradio's copy of it
    in the work folder."""
    try:
        yield
    except Exception as err:
        if not is_user_error(err):
            raise
        raise InputError(str(err).replace(str(video), Path(video).name)) from None


def _event(method: Callable, *, page: bool = False, more: Callable[[Any], tuple] | None = None) -> Callable:
    """`method` as a Gradio event handler: a progress bar, and user mistakes shown as one sentence,
    to an API client as its error, in the page (`page`) as a notice that leaves the page as it was.
    `more(result)` gives the values of outputs the page shows beside `method`'s own.
    Gradio reads the handler's signature: its parameter names name the API's parameters, and a
    `gr.Progress()` default on the last one asks for the progress bar."""
    import inspect

    import gradio as gr

    def handler(*args: Any) -> Any:
        result = method(*args)
        return (*result, *more(result)) if more is not None else result
    params = list(inspect.signature(method).parameters.values())
    handler.__signature__ = inspect.Signature([*params[:-1], params[-1].replace(default=gr.Progress())])
    handler.__name__ = handler.__qualname__ = method.__name__
    return _user_errors_as_notices(handler) if page else _user_errors(handler)


def _player(**options: Any) -> Any:
    """gr.Video that also plays where ffmpeg is on PATH without ffprobe.

    Gradio probes every video it shows with ffprobe whenever ffmpeg is on PATH, to convert one a
    browser cannot play, and fails on each without it (imageio's ffmpeg, the one `dub` finds,
    comes alone). The studio shows the user's videos, which `dub` already read, and its dubs of
    them: with no ffprobe the file is handed over as it is, as Gradio does with a URL. The one
    player's method is replaced, not the class subclassed: Gradio writes a type stub beside the
    module of every component class."""
    import gradio as gr
    from gradio.data_classes import FileData

    player = gr.Video(**options)
    probed = player.postprocess

    def postprocess(value: Any) -> Any:
        if isinstance(value, (str, Path)) and shutil.which("ffmpeg") and not shutil.which("ffprobe"):
            return FileData(path=str(value))
        return probed(value)

    player.postprocess = postprocess
    return player


def _last_project_store(settings: studio.StudioSettings) -> Any:
    """Where the browser keeps the name of the project the page has open, so that a reload (or a
    studio started again on the same work folder) shows it again. The key and its "secret" come
    from the work folder: a random pair, Gradio's default, would be new at every start. Nothing
    in it needs hiding: it is a project folder's name, which the studio checks before reading."""
    import hashlib

    import gradio as gr

    digest = hashlib.sha256(f"dub-studio:{settings.work_dir}".encode()).hexdigest()
    return gr.BrowserState(None, storage_key=f"dub-studio-project-{digest[:16]}", secret=digest[16:48])


def _page(settings: studio.StudioSettings) -> dict[str, Any]:
    """The page's components, top to bottom, by name."""
    import gradio as gr

    styles, has_root = list(available_styles()), settings.root is not None
    c: dict[str, Any] = {"project": gr.State(None), "last_project": _last_project_store(settings)}
    gr.Markdown(f"# dub studio\n{_INTRO}")
    with gr.Row():
        c["upload"] = gr.File(label="Upload a video", file_types=VIDEO_TYPES, type="filepath", elem_id="upload")
        with gr.Column():
            c["path"] = gr.Textbox(label=f"…or a path inside {settings.root}" if has_root else
                                   "Open by path (start the studio with --root DIR)", interactive=has_root,
                                   elem_id="path")
            c["open"] = gr.Button("Open path", interactive=has_root, elem_id="open-path")
        with gr.Column():
            c["style"] = gr.Dropdown(styles, value=DEFAULT_STYLE, label="Style of the film (when opening)",
                                     elem_id="style")
            # Text, for the reason the table's seed column is (see _DATATYPES).
            c["seed"] = gr.Textbox("0", label="Seed (when opening)", max_lines=1, elem_id="seed")
            c["backend"] = gr.Radio(backend_choices(settings.model), value="auto", label="Backend", elem_id="backend")
            c["edits_note"] = gr.Markdown(edits_note("auto", settings.model), elem_id="edits-note")
    c["status"] = gr.Markdown("No video open.", elem_id="status")
    c["strip"] = gr.Gallery(label="Shots", columns=8, height=240, object_fit="contain", allow_preview=False,
                            elem_id="strip")
    # The columns are fixed ("fixed": no add or delete column in the header menus); rows follow the film.
    c["table"] = gr.Dataframe(headers=list(studio.COLUMNS), datatype=_DATATYPES, static_columns=[0, 1, 2, 3],
                              column_count=(len(studio.COLUMNS), "fixed"),
                              interactive=True, wrap=False, type="array", max_height=900,
                              label="Shots: double-click a cell to edit", column_widths=_COLUMN_WIDTHS,
                              elem_id="shots")
    c["render"] = gr.Button("Render changed shots", variant="primary", elem_id="render")
    with gr.Row():
        c["original"] = _player(label="Original", interactive=False, elem_id="original")
        c["dub"] = _player(label="Dub", interactive=False, elem_id="dub")
    c["spectrogram"] = gr.Image(label="Mix spectrogram: cuts (white), transitions (blue), events (coloured)",
                                type="filepath", interactive=False, elem_id="spectrogram")
    c["takes"] = gr.Dropdown([], value=None, label="Take to play and download (the project's takes, newest first)",
                             interactive=True, elem_id="takes")
    c["downloads"] = gr.File(label="Downloads: video, manifest, timelines, captions, stems",
                             file_count="multiple", interactive=False, elem_id="downloads")
    with gr.Column(visible=False):   # the scripting endpoints' own triggers and inputs, not part of the page
        c["api_video"] = gr.File(label="video", file_types=VIDEO_TYPES, type="filepath")
        # Any text: an unknown style gets the command line's sentence from the studio's own check.
        c["api_style"] = gr.Dropdown(styles, value=DEFAULT_STYLE, label="style", allow_custom_value=True)
        # Not rounded here: a seed with a fraction gets the studio's sentence, not another seed.
        c["api_seed"], c["api_result"] = gr.Number(0, label="seed"), gr.File(label="dubbed video")
        c["api_button"] = gr.Button()
        for name in ("open_upload", "open_path", "render"):
            c[f"api_{name}"] = gr.Button()
    return c


def build_app(settings: studio.StudioSettings) -> Any:
    """The studio page as a gr.Blocks, with these API endpoints for scripts (`gradio_client`):
    /dub (video, style, seed) -> dubbed video; /open_upload and /open_path (video or path, style,
    seed) -> shots table, picture strip, original video, status; /render (table, backend) -> table,
    dubbed video, spectrogram, downloads, status."""
    import gradio as gr

    actions = _Actions(settings)
    # Gradio serves a copy of every take it shows; the takes themselves stay in their project
    # folders, so copies a day old go (checked hourly), and all go when the studio restarts.
    with gr.Blocks(title="dub studio", delete_cache=(GRADIO_CACHE_CHECK_S, GRADIO_CACHE_AGE_S)) as app:
        c = _page(settings)
        opened = [c["project"], c["table"], c["strip"], c["original"], c["status"]]
        rendered = [c["project"], c["table"], c["dub"], c["spectrogram"], c["downloads"], c["status"]]
        take = [c["dub"], c["spectrogram"], c["downloads"]]
        upload_in, path_in = [c["upload"], c["style"], c["seed"]], [c["path"], c["style"], c["seed"]]
        render_in = [c["project"], c["table"], c["backend"]]
        page_opened = [*opened, *take, c["takes"], c["last_project"]]

        # The page's events: a mistake is a notice, and the page shows the project's takes too,
        # and has the browser keep which project it shows (see `_last_project_store`).
        def reopened_takes(result: tuple) -> tuple:
            return (*_take_view(result[0].last_take), _takes_menu(result[0]), result[0].folder.name)

        def latest_takes(result: tuple) -> tuple:
            return (_takes_menu(result[0]),)

        page_open = _event(actions.open_upload, page=True, more=reopened_takes)
        c["upload"].upload(page_open, upload_in, page_opened, api_name=False, concurrency_id=WORK)
        page_open = _event(actions.open_path, page=True, more=reopened_takes)
        c["open"].click(page_open, path_in, page_opened, api_name=False, concurrency_id=WORK)
        c["path"].submit(page_open, path_in, page_opened, api_name=False, concurrency_id=WORK)

        # A page loaded (or reloaded) shows the project it had open, as it was left.
        @_user_errors_as_notices
        def page_restore(saved: Any, progress: Any = gr.Progress()) -> Any:
            project = actions.restore(saved, progress)
            if project is None:
                return gr.skip()
            return (project, *_project_view(project), *reopened_takes((project,)))

        app.load(page_restore, c["last_project"], page_opened, api_name=False)
        c["render"].click(_event(actions.render, page=True, more=latest_takes), render_in, [*rendered, c["takes"]],
                          api_name=False, concurrency_id=WORK)
        c["takes"].input(_user_errors_as_notices(actions.show_take), [c["project"], c["takes"]], take, api_name=False)
        # Edits are kept as they are typed; a save waits for no render and shows nothing.
        c["table"].input(_user_errors_as_notices(actions.save_table), [c["project"], c["table"]], None, api_name=False,
                         concurrency_limit=None, show_progress="hidden", trigger_mode="always_last")
        c["backend"].change(lambda choice: edits_note(choice, settings.model), c["backend"], c["edits_note"],
                            api_name=False)

        # The same steps for scripts (`gradio_client`): a mistake is the call's error.
        # (any style text: an unknown one gets the studio's sentence, not Gradio's list of choices)
        api_upload_in = [c["upload"], c["api_style"], c["api_seed"]]
        api_path_in = [c["path"], c["api_style"], c["api_seed"]]
        c["api_open_upload"].click(_event(actions.open_upload), api_upload_in, opened, api_name="open_upload",
                                   concurrency_id=WORK)
        c["api_open_path"].click(_event(actions.open_path), api_path_in, opened, api_name="open_path",
                                 concurrency_id=WORK)
        c["api_render"].click(_event(actions.render), render_in, rendered, api_name="render", concurrency_id=WORK)
        c["api_button"].click(_event(actions.dub), [c["api_video"], c["api_style"], c["api_seed"]], c["api_result"],
                              api_name="dub", api_description=_DUB_API_DESCRIPTION, concurrency_id=WORK)
    return app


def serve(settings: studio.StudioSettings, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          share: bool = False) -> None:
    """Start the studio and wait until it is stopped. It binds to `host` (this machine only by
    default), serves nothing but its work folder, and refuses uploads over `settings.max_upload_mb`.

    The wait is this function's, not Gradio's: Gradio's own takes Ctrl+C (and the SIGTERM the
    command line turns into one) for a normal end. Here the server is closed and the interrupt
    goes on, so the command line says the studio stopped and exits as every interrupted command
    does (130, or 143 for SIGTERM).
    """
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    # Uploads and Gradio's copies of outputs go inside the work folder, the one folder it serves.
    os.environ["GRADIO_TEMP_DIR"] = str(settings.work_dir / "gradio")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    app = build_app(settings)
    app.queue(default_concurrency_limit=1)   # one render at a time: it uses every core
    app.launch(server_name=host, server_port=port, share=share, allowed_paths=[str(settings.work_dir)],
               max_file_size=f"{settings.max_upload_mb}mb", prevent_thread_lock=True,
               show_error=False, quiet=True, ssr_mode=False, css=_CSS)
    try:
        while app.is_running:
            time.sleep(SERVE_POLL_S)
    except KeyboardInterrupt:
        app.close()
        raise
