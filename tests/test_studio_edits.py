"""`dub studio` without the server: the shots table and its edits (mutes, styles, prompts, seeds,
SMPTE times), the takes rendered from them and how they are numbered, a project reopened with its
edits and takes, and the page's notices. The project's functions and the page's event handlers
are called in-process, as Gradio calls them.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from studio_harness import SAMPLE

pytest.importorskip("gradio", reason="the studio extra is not installed (pip install -e '.[ml,test]' brings it)")

STYLE = "tom-and-jerry"


@pytest.fixture(scope="module")
def opened(tmp_path_factory):
    from dubber.studio.project import StudioSettings, open_video

    base = tmp_path_factory.mktemp("project")
    settings = StudioSettings(work_dir=base / "work", cache_dir=str(base / "cache"))
    return settings, open_video(SAMPLE, settings, STYLE, 0)


def test_a_take_of_a_picture_no_mp4_carries_is_written_as_a_mov(tmp_path):
    # UT Video, what animation packages export losslessly: copied as it is, so into a .mov.
    from dubber.media.ffmpeg import ffmpeg_exe
    from dubber.studio.project import StudioSettings, open_video, render_take

    source = tmp_path / "shot.avi"
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-i", str(SAMPLE), "-t", "3", "-c:v", "utvideo",
                    "-pix_fmt", "yuv420p", "-an", str(source)], check=True, timeout=120)
    settings = StudioSettings(work_dir=tmp_path / "work", cache_dir=str(tmp_path / "cache"))
    project = open_video(source, settings, STYLE, 0)
    take = render_take(project, project.plan, (), "score", settings)
    assert Path(take.outputs["video"]).name == "shot.take-001.dub.mov"


def _rows(project):
    from dubber.studio.project import table_rows

    return table_rows(project, [str(p) for p in project.thumbnails])


def _plan_rows(plan, project, thumbnail_cells):
    """The rows of another plan of the project, its hits column as detected."""
    from dubber.studio.project import hit_cells, plan_rows

    media = project.analysis.media
    return plan_rows(plan, media, thumbnail_cells, hit_cells=hit_cells(plan, project.analysis.events, media))


def test_a_muted_shot_is_silent_in_the_mix_and_the_others_are_not(opened):
    import soundfile as sf

    from dubber.mix import MUTE_FADE_MS
    from dubber.studio.project import apply_rows, render_take

    settings, project = opened
    rows = _rows(project)
    rows[1][-1] = True
    plan, muted = apply_rows(project.plan, rows)
    take = render_take(project, plan, muted, "auto", settings)

    mix, sr = sf.read(take.outputs["mix"], dtype="float32", always_2d=True)
    cue = plan.cues[1]
    settle = int(0.1 * sr)   # the previous shot's 50 ms crossfade tail reaches into the muted one
    lead_in = int(MUTE_FADE_MS * sr / 1000)   # and its own sound rises to meet the next shot
    assert muted == (1,)
    assert np.max(np.abs(mix[cue.start_sample + settle:cue.end_sample - lead_in])) == 0.0
    for other in (plan.cues[0], plan.cues[2]):
        assert np.sqrt(np.mean(np.square(mix[other.start_sample:other.end_sample]))) > 1e-3
    # The other shots are what they were with every shot playing: same samples, not louder.
    whole = render_take(project, plan, (), "auto", settings)
    full, _ = sf.read(whole.outputs["mix"], dtype="float32", always_2d=True)
    untouched = [(c.start_sample, c.end_sample) for c in plan.cues if c.index != 1]
    assert all(np.array_equal(mix[a:b], full[a:b]) for a, b in untouched)
    # the mix measures quieter because a shot is silent, and says so (once it is more than half
    # a LU under the target), not that a ceiling held
    import json

    reached = json.loads(Path(take.outputs["manifest"]).read_text())["loudness"]["integrated_lufs"]
    assert not any("true-peak" in note for note in take.notes), take.notes
    said = any("because 1 muted shot is silent" in note for note in take.notes)
    assert said == (reached < -16.5), (reached, take.notes)
    three = render_take(project, plan, (1, 2, 3), "auto", settings)
    assert any("because 3 muted shots are silent" in note for note in three.notes), three.notes
    # and never that a true-peak ceiling held, which only a loud target does (the gated measure
    # may read over the target here: the shots left playing are the loud ones)
    assert not any("true-peak" in note for note in three.notes), three.notes


def test_a_style_edit_rewrites_the_prompt_and_a_bad_cell_is_one_sentence(opened):
    from dubber.errors import InputError
    from dubber.styles import STYLES
    from dubber.studio.project import apply_rows

    _, project = opened
    other_style = next(name for name in STYLES if name != STYLE)
    rows = _rows(project)
    rows[3][6] = other_style
    plan, _ = apply_rows(project.plan, rows)
    assert plan.cues[3].prompt.endswith(STYLES[other_style].prompt)
    assert plan.cues[3].prompt.startswith(project.plan.cues[3].caption)
    assert [c for i, c in enumerate(plan.cues) if i != 3] == [c for i, c in enumerate(project.plan.cues) if i != 3]

    for column, value, fragment in ((7, "loud", "Shot 2's seed 'loud' is not a whole number"),
                                    (6, "polka", "Shot 2's style 'polka' is unknown"),
                                    (5, "   ", "Shot 2's prompt is empty")):
        rows = _rows(project)
        rows[1][column] = value
        with pytest.raises(InputError, match=fragment) as caught:
            apply_rows(project.plan, rows)
        assert "\n" not in str(caught.value) and str(caught.value).endswith(".")


def test_a_row_added_or_deleted_in_the_table_says_what_to_do_instead(opened):
    from dubber.errors import InputError
    from dubber.studio.project import apply_rows

    _, project = opened
    rows = _rows(project)
    with pytest.raises(InputError, match="lost the row of shot 3; .* tick a shot's mute box"):
        apply_rows(project.plan, rows[:2] + rows[3:])
    with pytest.raises(InputError, match="has 1 row\\(s\\) more than the film has shots; delete the rows you added"):
        apply_rows(project.plan, rows + [["", "", "", "", "a new caption", "", STYLE, 0, "", False]])


def test_shot_times_are_smpte_timecodes_of_the_cut_frames(opened):
    from dataclasses import replace

    from dubber.studio.project import plan_rows

    _, project = opened
    rows = _rows(project)
    # The sample's cuts are at frames 68, 143, 215 and 273 of a 24000/1001 video (24 frames a second counted).
    assert [(r[2], r[3]) for r in rows] == [("00:00:00:00", "00:00:02:20"), ("00:00:02:20", "00:00:05:23"),
                                            ("00:00:05:23", "00:00:08:23"), ("00:00:08:23", "00:00:11:09"),
                                            ("00:00:11:09", "00:00:14:00")]
    # A file that starts at a time code: the table counts from it, as the editor and the timelines do
    camera = replace(project.analysis.media, start_timecode="01:00:00:00")
    rows = plan_rows(project.plan, camera, [""] * len(project.plan.cues), hit_cells=[""] * len(project.plan.cues))
    assert [r[2] for r in rows][:3] == ["01:00:00:00", "01:00:02:20", "01:00:05:23"]


def test_a_style_pick_keeps_the_words_of_a_prompt_written_by_hand(opened):
    from dataclasses import replace

    from dubber.styles import STYLES
    from dubber.studio.project import apply_rows

    _, project = opened
    noir = STYLES["noir"].prompt
    rows = _rows(project)
    rows[2][5] = "A huge brass fanfare with cymbal crashes and a tuba"
    written, _ = apply_rows(project.plan, rows)
    # The next take's table shows that prompt with the style "custom"; the person picks noir there.
    rows = _plan_rows(written, project, [""] * len(written.cues))
    assert rows[2][6] == "custom"
    rows[2][6] = "noir"
    restyled, _ = apply_rows(written, rows)
    assert restyled.cues[2].prompt == f"A huge brass fanfare with cymbal crashes and a tuba. {noir}"
    # Left as "custom", the style cell changes nothing, and neither does a caption edit.
    rows = _plan_rows(written, project, [""] * len(written.cues))
    rows[2][4] = "A new caption"
    recaptioned, _ = apply_rows(written, rows)
    assert recaptioned.cues[2].prompt == written.cues[2].prompt and recaptioned.cues[2].caption == "A new caption"
    # Words added before a style's text stay when another style is picked.
    edited = replace(written, cues=tuple(replace(c, prompt=f"Tubas only. {STYLES[STYLE].prompt}") if c.index == 1
                                         else c for c in written.cues))
    rows = _plan_rows(edited, project, [""] * len(edited.cues))
    assert rows[1][6] == STYLE
    rows[1][6] = "noir"
    assert apply_rows(edited, rows)[0].cues[1].prompt == f"Tubas only. {noir}"


def _fresh_project(tmp_path, opened):
    """A project of its own (its own folder), from the shared stage cache."""
    from dubber.studio.project import StudioSettings, open_video

    settings = StudioSettings(work_dir=tmp_path / "work", cache_dir=opened[0].cache_dir)
    return settings, open_video(SAMPLE, settings, STYLE, 0)


def test_the_page_says_which_edits_the_backend_ignores_and_records_only_what_it_used(opened, tmp_path):
    import json

    import opentimelineio as otio

    from dubber.studio.app import _Actions, edits_note

    assert "per-shot prompts, seeds and styles are read by AudioStory only: only mute changes this take" in (
        edits_note("score")) and edits_note("auto") == edits_note("score")   # no AudioStory weights here
    assert edits_note("audiostory") == ""
    settings, project = _fresh_project(tmp_path, opened)
    actions = _Actions(settings)
    project, table, *_ = actions.render(project, _rows(project), "auto")
    planned = project.plan.cues[2]
    table[2][5], table[2][7] = "A huge brass fanfare", 12345

    project, table, video, _, downloads, status = actions.render(project, table, "auto")
    assert status.startswith("Nothing rendered: the only changes (shot 3's prompt and seed) are ones the "
                             "**score** backend does not use"), status
    assert "take-001" in video and not (project.folder / "takes" / "take-002").exists()

    table[4][-1] = True   # a mute is a change the score engine makes
    project, table, video, _, downloads, status = actions.render(project, table, "auto")
    assert "take-002" in video and "Not used in this take: shot 3's prompt and seed." in status
    assert table[2][5] == "A huge brass fanfare" and table[2][7] == 12345   # the table keeps the edits
    manifest = json.loads(next(p for p in map(Path, downloads) if p.name.endswith(".dub.json")).read_text())
    played = manifest["plan"]["cues"][2]
    assert (played["prompt"], played["seed"]) == (planned.prompt, planned.seed)
    timeline = otio.adapters.read_from_file(next(p for p in downloads if p.endswith(".otio")))
    assert {c.metadata["dub"]["seed"] for c in timeline.find_clips() if c.name.startswith("shot_002")} == {planned.seed}


def test_a_removed_project_or_takes_folder_is_one_sentence_and_numbers_stay_taken(opened, tmp_path):
    import shutil

    from dubber.errors import OutputError, is_user_error
    from dubber.studio.app import _Actions

    settings, project = _fresh_project(tmp_path, opened)
    actions = _Actions(settings)
    project, table, *_ = actions.render(project, _rows(project), "auto")
    shutil.rmtree(project.folder / "takes")   # the take the page shows and its downloads name is 001
    table[1][-1] = True
    project, table, video, *_ = actions.render(project, table, "auto")
    assert Path(video).parent.name == "take-002"

    shutil.rmtree(settings.work_dir)   # the whole work folder, mid-session
    table[1][-1] = False
    with pytest.raises(OutputError) as caught:
        actions.render(project, table, "auto")
    message = str(caught.value)
    assert is_user_error(caught.value) and "\n" not in message and message.count(". ") == 0
    assert message.endswith("is gone (removed while the page was open); open the video again."), message


def test_a_failed_render_leaves_no_take_folder_behind(opened, tmp_path):
    from dubber.errors import BackendUnavailable
    from dubber.studio.project import render_take

    settings, project = _fresh_project(tmp_path, opened)
    with pytest.raises(BackendUnavailable):   # no AudioStory weights on this machine
        render_take(project, project.plan, (), "audiostory", settings)
    assert not list((project.folder / "takes").iterdir())
    assert render_take(project, project.plan, (), "score", settings).folder.name == "take-001"


def test_a_player_hands_over_its_video_where_ffmpeg_has_no_ffprobe_beside_it(tmp_path, monkeypatch):
    import imageio_ffmpeg

    from dubber.studio.app import _player

    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "ffmpeg").symlink_to(imageio_ffmpeg.get_ffmpeg_exe())
    monkeypatch.setenv("PATH", str(tools))
    shown = _player(interactive=False).postprocess(str(SAMPLE))
    assert Path(shown.path) == SAMPLE


def test_opening_a_video_again_returns_to_its_project_with_its_edits_and_takes(opened, tmp_path):
    import shutil

    from dubber.studio.app import _Actions, _project_view, _takes_menu
    from dubber.studio.project import StudioSettings, list_takes, open_video

    settings, project = _fresh_project(tmp_path, opened)
    actions = _Actions(settings)
    project, table, *_ = actions.render(project, _rows(project), "auto")
    table[1][-1] = True
    project, table, *_ = actions.render(project, table, "auto")
    # Edits made after the last take, not rendered yet: a caption, a prompt, a seed and a mute.
    table[2][4], table[2][5], table[3][7], table[4][-1] = "A new caption", "Tubas only.", 777, True
    actions.save_table(project, table)

    # A restarted studio (new settings, nothing in memory) given a copy of the film under another name.
    copy = tmp_path / "elsewhere" / "renamed.mp4"
    copy.parent.mkdir()
    shutil.copy(SAMPLE, copy)
    restarted = StudioSettings(work_dir=settings.work_dir, cache_dir=settings.cache_dir)
    again = open_video(copy, restarted, STYLE, 0)

    assert again.reopened and again.folder == project.folder
    rows, _, _, status = _project_view(again)
    table[2][6] = "custom"   # a prompt written by hand reads as a style of its own
    assert rows == table
    assert status.startswith("Reopened **cartoon_demo.mp4** as it was left") and "take 002" in status, status
    assert again.last_take.number == 2 and again.muted == (1,)
    assert [t.number for t in list_takes(again)] == [1, 2]
    menu = _takes_menu(again)
    assert [name for _, name in menu["choices"]] == ["take-002", "take-001"] and menu["value"] == "take-002"
    video, picture, downloads = _Actions(restarted).show_take(again, "take-001")
    assert "take-001" in Path(video).name and Path(picture).is_file()
    assert downloads and all(".take-001." in Path(p).name for p in downloads)

    # The next take goes on counting; rendered again unchanged, it is not written twice.
    again, rows, video, *_, status = _Actions(restarted).render(again, rows, "auto")
    assert Path(video).parent.name == "take-003", status
    again, rows, video, *_, status = _Actions(restarted).render(again, rows, "auto")
    assert status.startswith("Nothing rendered: the only changes (shot 3's prompt, shot 4's seed)"), status
    assert Path(video).parent.name == "take-003" and not (again.folder / "takes" / "take-004").exists()
    # Another style for the film is another project.
    other = open_video(copy, restarted, "noir", 0)
    assert not other.reopened and other.folder != project.folder and not list_takes(other)


def test_a_render_with_nothing_changed_writes_no_take(opened, tmp_path):
    from dubber.studio.app import _Actions

    settings, project = _fresh_project(tmp_path, opened)
    actions = _Actions(settings)
    project, table, *_ = actions.render(project, _rows(project), "auto")
    project, table, video, _, downloads, status = actions.render(project, table, "auto")
    assert status == ("Nothing changed since take 001, so nothing was rendered: edit a shot (or pick another "
                      "backend) first."), status
    assert Path(video).parent.name == "take-001" and not (project.folder / "takes" / "take-002").exists()
    assert downloads and all(".take-001." in Path(p).name for p in downloads)


def test_a_caption_edit_rendered_then_reopened_and_rendered_unchanged_writes_no_take(opened, tmp_path):
    """The table saved after a caption edit, reopened (a reload, a restarted studio) and rendered
    with nothing changed: the take would be the last one again, so none is written."""
    from dubber.studio.app import _Actions, _project_view
    from dubber.studio.project import StudioSettings, open_video

    settings, project = _fresh_project(tmp_path, opened)
    actions = _Actions(settings)
    table = _rows(project)
    table[1][4] = "Sindbad grabs Popeye."
    actions.save_table(project, table)
    project, table, *_ = actions.render(project, table, "auto")
    actions.save_table(project, table)
    restarted = StudioSettings(work_dir=settings.work_dir, cache_dir=settings.cache_dir)
    again = open_video(SAMPLE, restarted, STYLE, 0)
    rows, *_ = _project_view(again)
    again, rows, video, *_, status = _Actions(restarted).render(again, rows, "auto")
    assert status.startswith("Nothing changed since take 001"), status
    assert Path(video).parent.name == "take-001" and not (again.folder / "takes" / "take-002").exists()


def test_a_scripts_dub_of_the_same_video_leaves_the_editors_project_to_reopen(opened, tmp_path):
    """The `dub` endpoint dubs a video for a script; opening that video afterwards still finds the
    editor's project, with its take, not the script's."""
    from dubber.studio.app import _Actions
    from dubber.studio.project import dub_once, open_video

    settings, project = _fresh_project(tmp_path, opened)
    project, *_ = _Actions(settings).render(project, _rows(project), "auto")
    scripted = dub_once(SAMPLE, STYLE, 0, "auto", settings)
    assert scripted.folder.parent.parent != project.folder
    again = open_video(SAMPLE, settings, STYLE, 0)
    assert again.reopened and again.folder == project.folder and again.last_take.number == 1


def test_a_project_whose_video_copy_was_removed_says_so_and_takes_the_video_back(opened, tmp_path):
    """The work folder's copy of a video removed to free space: a reload says what to do, and
    opening the video again returns to the project, with its takes, the copy put back."""
    from dubber.errors import InputError
    from dubber.studio.app import _Actions
    from dubber.studio.project import open_video

    settings, project = _fresh_project(tmp_path, opened)
    actions = _Actions(settings)
    project, *_ = actions.render(project, _rows(project), "auto")
    project.video.unlink()
    with pytest.raises(InputError, match="open the video again"):
        actions.restore(project.folder.name)
    again = open_video(SAMPLE, settings, STYLE, 0)
    assert again.reopened and again.folder == project.folder and again.last_take.number == 1
    assert again.video.is_file()


def test_two_pages_editing_one_video_are_told_of_each_other_and_a_reload_is_not(opened, tmp_path):
    """Two pages open on one video share its table of edits: each is told once, when it meets
    the other's saved edits; a page reloaded after both saved is one opening, told nothing."""
    import warnings

    from dubber.studio.app import EDITED_ELSEWHERE, _Actions
    from dubber.studio.project import open_video

    settings, _ = _fresh_project(tmp_path, opened)
    actions = _Actions(settings)
    first, second = open_video(SAMPLE, settings, STYLE, 0), open_video(SAMPLE, settings, STYLE, 0)
    assert first.folder == second.folder

    def save(project, caption: str) -> list[str]:
        table = _rows(project)
        table[0][4] = caption
        with warnings.catch_warnings(record=True) as told:
            warnings.simplefilter("always")
            actions.save_table(project, table)
            actions.save_table(project, table)   # told once, not at every keystroke
        return [str(w.message) for w in told]

    assert save(first, "First page's caption.") == []
    first, table, *_ = actions.render(first, _rows(first), "auto")   # a render saves the table too
    assert save(first, "After the render.") == []
    assert save(second, "Second page's caption.") == [EDITED_ELSEWHERE]
    assert save(first, "First page again.") == [EDITED_ELSEWHERE]
    reloaded = open_video(SAMPLE, settings, STYLE, 0)
    assert save(reloaded, "After the reload.") == []


def test_a_mistake_in_the_page_is_a_notice_and_leaves_every_output_as_it_was(opened, tmp_path):
    import gradio as gr

    from dubber.studio.app import _Actions, _event

    settings, project = _fresh_project(tmp_path, opened)
    actions = _Actions(replace_root(settings, tmp_path))
    rows = _rows(project)
    rows[0][7] = "abc"
    with pytest.warns(UserWarning, match="Shot 1's seed 'abc' is not a whole number"):
        shown = _event(actions.render, page=True)(project, rows, "auto")
    assert shown == gr.skip()   # one value for all outputs: none is updated or marked failed
    with pytest.warns(UserWarning, match="The input file .*missing.mp4"):
        assert _event(actions.open_path, page=True)("missing.mp4", STYLE, 0) == gr.skip()
    with pytest.raises(gr.Error, match="Shot 1's seed 'abc'"):   # a script still gets the call's error
        _event(actions.render)(project, rows, "auto")
    with pytest.raises(TypeError):   # a bug is no notice
        _event(actions.render, page=True)(project, None, "auto")


def replace_root(settings, root):
    from dataclasses import replace

    return replace(settings, root=root)


def test_the_shots_table_has_a_fixed_set_of_columns(tmp_path):
    from dubber.studio.app import build_app
    from dubber.studio.project import COLUMNS, StudioSettings

    config = build_app(StudioSettings(work_dir=tmp_path)).get_config_file()
    table = next(c for c in config["components"] if c.get("props", {}).get("elem_id") == "shots")
    assert list(table["props"]["col_count"]) == [len(COLUMNS), "fixed"]


def test_muting_a_shot_leaves_every_other_shot_sample_for_sample(opened, tmp_path):
    import soundfile as sf

    from dubber.studio.project import apply_rows, render_take

    settings, project = _fresh_project(tmp_path, opened)
    whole = render_take(project, project.plan, (), "auto", settings)
    for index in (1, 3):
        rows = _rows(project)
        rows[index][-1] = True
        plan, muted = apply_rows(project.plan, rows)
        take = render_take(project, plan, muted, "auto", settings)
        for stem in ("mix", "stem:music", "stem:fx"):
            before = sf.read(whole.outputs[stem], dtype="int32", always_2d=True)[0]
            after = sf.read(take.outputs[stem], dtype="int32", always_2d=True)[0]
            for cue in plan.cues:
                if cue.index != index:
                    span = slice(cue.start_sample, cue.end_sample)
                    assert np.array_equal(before[span], after[span]), (stem, index, cue.index)


def test_a_take_folder_that_cannot_be_made_is_one_sentence_in_a_notice(opened, tmp_path):
    """Whatever keeps the take folder from being made (read-only, full, a file in its place), the
    editor reads one sentence and the page stays as it was."""
    import gradio as gr

    from dubber.errors import OutputError, is_user_error
    from dubber.studio.app import _Actions, _event
    from dubber.studio.project import render_take

    settings, project = _fresh_project(tmp_path, opened)
    (project.folder / "takes").write_text("not a folder")
    with pytest.raises(OutputError) as caught:
        render_take(project, project.plan, (1,), "score", settings)
    message = str(caught.value)
    assert is_user_error(caught.value) and "\n" not in message
    assert message.startswith(f"The studio cannot make a new take in {project.folder / 'takes'} ("), message
    rows = _rows(project)
    rows[1][-1] = True
    with pytest.warns(UserWarning, match="The studio cannot make a new take"):
        assert _event(_Actions(settings).render, page=True)(project, rows, "auto") == gr.skip()


def test_a_work_folder_that_cannot_keep_projects_is_one_sentence(opened, tmp_path):
    from dubber.errors import OutputError
    from dubber.studio.project import StudioSettings, open_video

    work = tmp_path / "work"
    work.mkdir()
    (work / "projects").write_text("not a folder")
    settings = StudioSettings(work_dir=work, cache_dir=opened[0].cache_dir)
    with pytest.raises(OutputError, match=r"^The studio cannot keep a project in .*projects \(.*\); make its work "
                                          r"folder writable, or start the studio with another --work\.$"):
        open_video(SAMPLE, settings, STYLE, 0)


def test_an_edit_that_cannot_be_saved_is_said_in_the_page(opened, tmp_path):
    """Edits are saved as they are typed: when that fails the page says so, rather than let the
    editor trust a save that did not happen."""
    import gradio as gr

    from dubber.studio.app import build_app

    settings, project = _fresh_project(tmp_path, opened)
    (project.folder / "edits.json").mkdir()   # something in the way of the record
    app = build_app(settings)
    save = next(f.fn for f in app.fns.values() if getattr(f.fn, "__name__", "") == "save_table")
    rows = _rows(project)
    rows[0][4] = "A new caption"
    with pytest.warns(UserWarning, match="edits.json"):
        assert save(project, rows) == gr.skip()


def test_a_take_left_half_made_by_a_stopped_studio_is_removed(opened, tmp_path):
    """A render stopped with the studio (killed, Ctrl+C) leaves its take folder, partial video and
    stems and all; the next render, or opening the video again, removes it. A take another
    process is still rendering stays."""
    import os
    import subprocess
    import sys

    from dubber.studio.project import RENDERING_MARK, open_video, render_take

    settings, project = _fresh_project(tmp_path, opened)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    takes = project.folder / "takes"
    stopped, running = takes / "take-001", takes / "take-002"
    for folder, pid in ((stopped, int(gone.stdout)), (running, os.getpid())):
        (folder / "stems").mkdir(parents=True)
        (folder / RENDERING_MARK).write_text(str(pid))
        (folder / "stems" / f".x.mix.{pid}-abcdef.partial.wav").write_bytes(b"\0" * 1000)
    open_video(SAMPLE, settings, STYLE, 0)   # opened again: the stopped render's take goes
    assert not stopped.exists() and running.exists()
    take = render_take(project, project.plan, (1,), "score", settings)
    assert running.exists() and take.folder.name == "take-003" and not (take.folder / RENDERING_MARK).exists()


def test_a_video_whose_name_holds_dub_gets_its_take_label_at_the_end(opened, tmp_path):
    from dubber.studio.project import StudioSettings, open_video, render_take

    video = tmp_path / "cartoon.take-001.dub.mp4"   # a take of another project, opened as a video
    video.write_bytes(SAMPLE.read_bytes())
    settings = StudioSettings(work_dir=tmp_path / "work", cache_dir=opened[0].cache_dir)
    project = open_video(video, settings, STYLE, 0)
    take = render_take(project, project.plan, (), "score", settings)
    assert take.video.name == "cartoon.take-001.dub.take-001.dub.mp4"
