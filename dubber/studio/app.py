"""The studio's web page (Gradio): open a video, edit its shots, re-render, listen, download.

    build_app(settings)                  -> gr.Blocks (not started)
    serve(settings, host, port, ...)     starts it and blocks until stopped

The page only arranges what `dubber.studio.project` computes. gradio is imported here, never by
`import dubber`; torch is imported only when the AudioStory backend renders.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable

from ..errors import InputError, is_user_error
from ..styles import DEFAULT_STYLE, available_styles
from ..types import ProgressFn
from . import project as studio

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
VIDEO_TYPES = [".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi"]
_HEADERS = ["shot", "picture", "start", "end", "caption", "prompt", "style", "seed", "mute"]
_DATATYPES = ["str", "markdown", "str", "str", "str", "str", "str", "number", "bool"]
_INTRO = ("Open a video, edit any shot's caption, prompt, style or seed (or mute it), then **Render**: "
          "only the shots you changed are rendered again.")


def backend_choices() -> list[str]:
    """"auto" and every registered backend that can run here; AudioStory only when its weights
    are on this machine (looked up on disk, without importing torch)."""
    from ..backends import available_backends, weights_status

    usable = [b for b in available_backends() if b != "audiostory" or weights_status(None)[0]]
    return ["auto", *usable]


def _user_errors(fn: Callable) -> Callable:
    """Show a user's mistake as the CLI's one sentence in the page (and to API clients); bugs keep
    their traceback in the server log."""
    import functools

    import gradio as gr

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            if is_user_error(err):
                raise gr.Error(str(err), duration=None, title="Cannot do that") from None
            raise
    return wrapper


def _progress_sink(progress: Any) -> ProgressFn:
    def report(stage: str, done: int, total: int) -> None:
        progress((done, max(total, 1)), desc=stage.replace("/", ": "))
    return report


def _thumbnail_cell(path: Path) -> str:
    # The page fetches pictures through Gradio's file route, which serves the work folder only.
    return f"![shot]({'/gradio_api/file=' + str(path)})"


def _project_view(project: studio.Project, muted: tuple[int, ...] = ()) -> tuple:
    fps = project.analysis.media.fps
    cells = [_thumbnail_cell(p) for p in project.thumbnails]
    rows = studio.plan_rows(project.plan, fps, cells, muted)
    strip = [(str(p), f"{studio.shot_label(c)} · {studio.timecode(c.start_frame, fps)}")
             for p, c in zip(project.thumbnails, project.plan.cues)]
    status = (f"Opened **{project.video.name}**: {len(project.plan.cues)} shots, "
              f"{float(project.analysis.media.duration_s):.2f} s. Edit the table, then Render.")
    return rows, strip, str(project.video), status


def _take_status(take: studio.Take, changed: tuple[int, ...]) -> str:
    rendered = take.cues - take.cues_from_cache
    text = (f"Take {take.folder.name.split('-')[-1]} with the **{take.backend}** backend: {rendered} "
            f"shot{'s' if rendered != 1 else ''} rendered, {take.cues_from_cache} from the cache.")
    if changed and take.backend != "audiostory":
        text += (f" The {take.backend} engine follows the style, the cuts and the events; "
                 "captions and prompts steer the AudioStory backend.")
    return text


def build_app(settings: studio.StudioSettings) -> Any:
    """The studio page as a gr.Blocks, with these API endpoints for scripts (`gradio_client`):
    /dub (video, style, seed) -> dubbed video; /open_upload and /open_path (video or path, style,
    seed) -> shots table; /render (table, backend) -> dubbed video, spectrogram, downloads, status."""
    import gradio as gr

    styles, backends = list(available_styles()), backend_choices()

    @_user_errors
    def open_upload(upload: str | None, style: str, seed: Any, progress=gr.Progress()):
        if not upload:
            raise InputError("Choose a video file to upload first.")
        try:
            project = studio.open_video(upload, settings, style, seed, _progress_sink(progress), link=False)
        except Exception as err:
            if not is_user_error(err):
                raise
            # The message names the upload by the name the person gave it, not Gradio's copy.
            raise InputError(str(err).replace(str(upload), Path(upload).name)) from None
        return (project, *_project_view(project))

    @_user_errors
    def open_path(text: str, style: str, seed: Any, progress=gr.Progress()):
        path = studio.resolve_under_root(text, settings.root)
        project = studio.open_video(path, settings, style, seed, _progress_sink(progress))
        return (project, *_project_view(project))

    @_user_errors
    def render(project: studio.Project | None, rows: list, backend: str, progress=gr.Progress()):
        if project is None:
            raise InputError("Open a video first.")
        plan, muted = studio.apply_rows(project.plan, [list(r) for r in rows])
        changed = studio.changed_cues(project.plan, plan)
        take = studio.render_take(project, plan, muted, backend, settings, _progress_sink(progress))
        updated = studio.Project(folder=project.folder, video=project.video, analysis=project.analysis,
                                 plan=plan, thumbnails=project.thumbnails, takes=project.takes + 1)
        picture = str(take.spectrogram) if take.spectrogram else None
        return (updated, _project_view(updated, muted)[0], str(take.video), picture,
                studio.take_downloads(take), _take_status(take, changed))

    @_user_errors
    def dub_endpoint(video: str | None, style: str, seed: Any, progress=gr.Progress()) -> str:
        if not video:
            raise InputError("Give a video file to dub.")
        take = studio.dub_once(video, style, seed, "auto", settings, _progress_sink(progress))
        return str(take.video)

    with gr.Blocks(title="dub studio") as app:
        project_state = gr.State(None)
        gr.Markdown(f"# dub studio\n{_INTRO}")
        with gr.Row():
            upload = gr.File(label="Upload a video", file_types=VIDEO_TYPES, type="filepath", elem_id="upload")
            with gr.Column():
                path_box = gr.Textbox(label=f"…or a path inside {settings.root}" if settings.root else
                                      "Open by path (start the studio with --root DIR)",
                                      interactive=settings.root is not None, elem_id="path")
                open_button = gr.Button("Open path", interactive=settings.root is not None, elem_id="open-path")
            with gr.Column():
                style = gr.Dropdown(styles, value=DEFAULT_STYLE, label="Style (whole film)", elem_id="style")
                seed = gr.Number(0, label="Seed", precision=0, elem_id="seed")
                backend = gr.Radio(backends, value="auto", label="Backend", elem_id="backend")
        status = gr.Markdown("No video open.", elem_id="status")
        strip = gr.Gallery(label="Shots", columns=8, height=130, object_fit="contain", allow_preview=False,
                           elem_id="strip")
        table = gr.Dataframe(headers=_HEADERS, datatype=_DATATYPES, static_columns=[0, 1, 2, 3],
                             interactive=True, wrap=True, type="array", max_height=900, label="Shots: edit, then Render",
                             column_widths=["6%", "14%", "9%", "9%", "18%", "28%", "8%", "8%", "5%"],
                             elem_id="shots")
        render_button = gr.Button("Render changed shots", variant="primary", elem_id="render")
        with gr.Row():
            original = gr.Video(label="Original", interactive=False, elem_id="original")
            dubbed = gr.Video(label="Dub", interactive=False, elem_id="dub")
        spectrogram = gr.Image(label="Mix spectrogram: cuts (white), transitions (blue), events (coloured)",
                               type="filepath", interactive=False, elem_id="spectrogram")
        downloads = gr.File(label="Downloads: video, manifest, timelines, captions, stems", file_count="multiple",
                            interactive=False, elem_id="downloads")

        opened = [project_state, table, strip, original, status]
        upload.upload(open_upload, [upload, style, seed], opened, api_name="open_upload")
        open_button.click(open_path, [path_box, style, seed], opened, api_name="open_path")
        path_box.submit(open_path, [path_box, style, seed], opened, api_name=False)
        render_button.click(render, [project_state, table, backend],
                            [project_state, table, dubbed, spectrogram, downloads, status], api_name="render")

        with gr.Column(visible=False):   # the scripting endpoint; its inputs are not part of the page
            api_video = gr.File(file_types=VIDEO_TYPES, type="filepath")
            api_style = gr.Dropdown(styles, value=DEFAULT_STYLE)
            api_seed = gr.Number(0, precision=0)
            api_result = gr.File()
            api_button = gr.Button()
        api_button.click(dub_endpoint, [api_video, api_style, api_seed], api_result, api_name="dub")
    return app


def serve(settings: studio.StudioSettings, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          share: bool = False, block: bool = True) -> Any:
    """Start the studio. It binds to `host` (this machine only by default), serves nothing but its
    work folder, and refuses uploads over `settings.max_upload_mb`.

    Returns:
        The running gr.Blocks (when `block` is False).
    """
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    # Uploads and Gradio's copies of outputs go inside the work folder, the one folder it serves.
    os.environ["GRADIO_TEMP_DIR"] = str(settings.work_dir / "gradio")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    app = build_app(settings)
    app.queue(default_concurrency_limit=1)   # one render at a time: it uses every core
    app.launch(server_name=host, server_port=port, share=share, allowed_paths=[str(settings.work_dir)],
               max_file_size=f"{settings.max_upload_mb}mb", prevent_thread_lock=not block,
               show_error=False, quiet=True, ssr_mode=False)
    return app
