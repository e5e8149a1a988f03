"""`dub studio`: a reloaded page shows the project it had open, as the browser left it.

The page's own event handlers are called in-process, as Gradio calls them: the browser keeps the
open project's name (a gr.BrowserState the open events write) and hands it to the page's load event.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("gradio", reason="the studio extra is not installed (pip install -e '.[ml,test]' brings it)")

STYLE = "tom-and-jerry"


def _page_event(app, trigger: str, element: str | None = None):
    """The page's handler of `trigger` on the element with id `element` (the page itself: None),
    and its outputs by the name the page gives them."""
    import gradio as gr

    for fn in app.fns.values():
        for block_id, event in fn.targets:
            block = app.blocks.get(block_id)
            if event == trigger and getattr(block, "elem_id", None) == element:
                names = [getattr(b, "elem_id", None) or ("browser" if isinstance(b, gr.BrowserState) else "project")
                         for b in fn.outputs]
                return fn.fn, names
    raise AssertionError(f"the page has no {trigger} event on {element or 'itself'}")


@pytest.fixture()
def studio_folder(sample_30p_silent, tmp_path):
    from dubber.studio.project import StudioSettings

    root = tmp_path / "root"
    root.mkdir()
    shutil.copy2(sample_30p_silent[0], root / "film.mp4")
    return StudioSettings(work_dir=tmp_path / "work", root=root, cache_dir=str(tmp_path / "cache"))


def test_a_reloaded_page_shows_the_project_it_had_open_with_its_edits_and_takes(studio_folder):
    import gradio as gr

    from dubber.studio.app import _Actions, build_app

    app = build_app(studio_folder)
    open_path, names = _page_event(app, "click", "open-path")
    opened = dict(zip(names, open_path("film.mp4", STYLE, "0")))
    project = opened["project"]
    assert opened["browser"] == project.folder.name          # the browser keeps which project is open
    actions = _Actions(studio_folder)
    project, table, video, *_ = actions.render(project, opened["shots"], "score")
    table[1][7], table[2][-1] = 777, True   # edits made after the take: a seed and a mute
    actions.save_table(project, table)

    # The reload: a new page, nothing in memory but what the browser kept.
    page_load, names = _page_event(build_app(studio_folder), "load")
    shown = dict(zip(names, page_load(project.folder.name)))
    assert shown["status"].startswith("Reopened **film.mp4** as it was left"), shown["status"]
    assert "take 001" in shown["status"]
    assert shown["shots"] == table and shown["dub"] == video and shown["downloads"]
    assert shown["takes"]["value"] == "take-001" and shown["browser"] == project.folder.name
    assert shown["project"].folder == project.folder and shown["project"].last_take.number == 1

    # A page with nothing kept, or a name that is no project of this work folder, stays empty.
    for kept in (None, "", "../work", "/etc", "nothing-here", 42):
        assert page_load(kept) == gr.skip(), kept
    shutil.rmtree(project.folder)
    assert page_load(project.folder.name) == gr.skip()


def test_a_project_whose_video_went_away_is_not_shown_after_a_reload_but_said(studio_folder):
    import gradio as gr

    from dubber.errors import InputError
    from dubber.studio.app import build_app
    from dubber.studio.project import reopen_project

    app = build_app(studio_folder)
    open_path, names = _page_event(app, "click", "open-path")
    project = dict(zip(names, open_path("film.mp4", STYLE, "0")))["project"]
    assert reopen_project(project.folder.name, studio_folder).folder == project.folder
    project.video.unlink()
    page_load, _ = _page_event(app, "load")
    with pytest.warns(UserWarning, match="is no longer in the studio's work folder; open the video again"):
        assert page_load(project.folder.name) == gr.skip()
    with pytest.raises(InputError, match="open the video again"):
        reopen_project(project.folder.name, studio_folder)
    assert not Path(studio_folder.work_dir / "projects" / "nothing-here").exists()
