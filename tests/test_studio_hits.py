"""`dub studio`'s hits column: each shot's hit points shown as text, typed back by an editor, kept
with the table and each take, and rendered as the take's whole hit list only when they changed.
The project's functions and the page's event handlers are called in-process, as Gradio calls them.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from studio_harness import SAMPLE

pytest.importorskip("gradio", reason="the studio extra is not installed (pip install -e '.[ml,test]' brings it)")

STYLE = "tom-and-jerry"
HITS = 8   # the hits column, between seed and mute
# A frame of shot 4 (frames 215-273 of the sample) with no hit near it, and no onset in the plain take.
ADDED_FRAME = 262


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("cache"))


@pytest.fixture()
def project(cache, tmp_path):
    from dubber.studio.project import StudioSettings, open_video

    settings = StudioSettings(work_dir=tmp_path / "work", cache_dir=cache)
    return settings, open_video(SAMPLE, settings, STYLE, 0)


def _rows(project):
    from dubber.studio.project import table_rows

    return table_rows(project, [""] * len(project.plan.cues))


def _cell_hits(cell, media):
    """(frame, kind, strength) of each entry of a hits cell, read as a hit list's line is."""
    from dubber.spotting import frame_of, read_hit_point

    hits = [read_hit_point(entry, "cell") for entry in cell.split("; ")] if cell else []
    return [(frame_of(h, media), h.kind, h.strength) for h in hits]


def _events(take):
    manifest = json.loads(Path(take.outputs["manifest"]).read_text())
    return {(e["frame"], e["kind"]) for e in manifest["analysis"]["events"]}


def _mix_onsets(take):
    import soundfile as sf

    from dubber import sound_measures as sm

    mix, sr = sf.read(take.outputs["mix"], dtype="float32", always_2d=True)
    return sm.onsets(mix.T, sr)


def test_the_hits_column_shows_each_shots_detected_hits(project):
    from dubber.studio.project import COLUMNS, read_hits

    _, project = project
    assert COLUMNS.index("hits") == HITS == COLUMNS.index("seed") + 1 == COLUMNS.index("mute") - 1
    media, rows = project.analysis.media, _rows(project)
    for cue, row in zip(project.plan.cues, rows):
        shown = _cell_hits(row[HITS], media)
        detected = [e for e in project.analysis.events if cue.start_frame <= e.frame < cue.end_frame]
        assert [(f, k) for f, k, _ in shown] == [(e.frame, e.kind) for e in detected], cue.index
        assert all(abs(s - e.strength) <= 0.005 for (_, _, s), e in zip(shown, detected))
    assert sum(len(_cell_hits(r[HITS], media)) for r in rows) == len(project.analysis.events) > 5
    # a sustained kind shows its length: the whoosh of shot 2 lasts 12 frames
    assert rows[1][HITS].split("; ")[0].endswith(" whoosh 0.74 0.50"), rows[1][HITS]
    # read back untouched, the cells are the detected hits: no hit list for the take
    assert read_hits(project.plan, project.analysis, rows) is None


def test_unchanged_hits_render_with_no_hit_list_and_twice_is_nothing_changed(project):
    from dubber.studio.app import _Actions

    settings, project = project
    actions = _Actions(settings)
    project, table, video, *_ = actions.render(project, _rows(project), "auto")
    take = project.last_take
    manifest = json.loads(Path(take.outputs["manifest"]).read_text())
    assert take.hit_list is None and not (take.folder / "hits.txt").exists()
    assert manifest["settings"]["hits_path"] is None and "spotted_hits" not in manifest["analysis"]["settings"]
    project, table, video, *_, status = actions.render(project, table, "auto")
    assert status.startswith("Nothing changed since take 001"), status


def test_a_hit_added_in_a_shot_is_heard_there_in_the_take(project):
    from dubber.studio.app import _Actions

    settings, project = project
    actions = _Actions(settings)
    media = project.analysis.media
    project, table, *_ = actions.render(project, _rows(project), "auto")
    plain = project.last_take
    at_s = float(media.frame_time(ADDED_FRAME))
    assert np.min(np.abs(_mix_onsets(plain) - at_s)) > 0.1   # nothing starts there in the plain take

    table[3][HITS] += f"; {ADDED_FRAME}f landing"
    project, table, video, *_, status = actions.render(project, table, "auto")
    take = project.last_take
    assert Path(video).parent.name == "take-002" and (ADDED_FRAME, "landing") in _events(take)
    assert np.min(np.abs(_mix_onsets(take) - at_s)) <= 0.1
    assert take.hit_list == take.folder / "hits.txt" and f"{ADDED_FRAME}f landing 0.8" in take.hit_list.read_text()
    assert json.loads((take.folder / "take.json").read_text())["hit_list"] == "hits.txt"
    assert (ADDED_FRAME, "landing", 0.8) in _cell_hits(table[3][HITS], media)   # shown as a cell entry
    # The score engine composes the film as one piece: the edit in shot 4 changes shot 1 too, and
    # the status says so instead of "sound exactly as before".
    import soundfile as sf

    before = sf.read(plain.outputs["stem:music"], dtype="int32")[0]
    after = sf.read(take.outputs["stem:music"], dtype="int32")[0]
    first = project.plan.cues[0]
    assert not np.array_equal(before[first.start_sample:first.end_sample], after[first.start_sample:first.end_sample])
    assert "a hit edit can change the music of every shot, even those before it" in status, status
    assert "exactly as before" not in status
    # the same hits again, nothing else changed: no new take
    project, table, video, *_, status = actions.render(project, table, "auto")
    assert status.startswith("Nothing changed since take 002") and Path(video).parent.name == "take-002", status


def test_a_deleted_hit_is_gone_from_the_takes_manifest(project):
    from dubber.studio.app import _Actions

    settings, project = project
    last = max(project.analysis.events, key=lambda e: e.frame)   # the flash of shot 5
    table = _rows(project)
    assert last.frame >= project.plan.cues[4].start_frame and table[4][HITS]
    table[4][HITS] = ""
    project, table, *_, status = _Actions(settings).render(project, table, "auto")
    events = _events(project.last_take)
    assert (last.frame, last.kind) not in events
    assert events == {(e.frame, e.kind) for e in project.analysis.events if e != last}
    assert table[4][HITS] == "" and "hit edit" in status


def test_a_bad_hit_or_one_outside_its_shot_is_one_sentence_naming_the_shot(project):
    import gradio as gr

    from dubber.errors import InputError
    from dubber.studio.app import _Actions, _event
    from dubber.studio.project import read_hits, save_table

    settings, project = project
    for entry, said in (("bonk", r"^Shot 3's hit 'bonk': 'bonk' is no time; write seconds \(12\.5\), a frame \(300f\)"),
                        ("6.5 bonk", r"^Shot 3's hit '6\.5 bonk': unknown kind 'bonk'; use one of impact"),
                        ("1.0 landing", r"^Shot 3's hit '1\.0 landing' falls in shot 1, not in shot 3; type it in "
                                        r"shot 1's row, or write a time inside shot 3, 00:00:05:23 to 00:00:08:22\.$"),
                        ("40", r"^Shot 3's hit '40' is off the video, which ends at 00:00:14:00; write a time inside "
                               r"shot 3, 00:00:05:23 to 00:00:08:22\.$")):
        table = _rows(project)
        table[2][HITS] += f"; {entry}"
        with pytest.raises(InputError, match=said) as caught:
            read_hits(project.plan, project.analysis, table)
        assert "\n" not in str(caught.value) and str(caught.value).endswith(".")
        with pytest.warns(UserWarning, match=f"Shot 3's hit '{entry}'"):
            assert _event(_Actions(settings).render, page=True)(project, table, "auto") == gr.skip()
        assert not save_table(project, table)
    assert not (project.folder / "takes").exists() or not list((project.folder / "takes").iterdir())
    assert not (project.folder / "edits.json").exists()


def test_edited_hits_survive_a_reopen_and_each_take_keeps_its_own(project):
    from dubber.studio.app import _Actions, _project_view
    from dubber.studio.project import StudioSettings, open_video

    settings, project = project
    actions = _Actions(settings)
    table = _rows(project)
    table[3][HITS] += f"; {ADDED_FRAME}f"
    project, table, *_ = actions.render(project, table, "auto")
    rendered = [list(r) for r in table]
    table[0][HITS] = ""   # edited after the take, not rendered
    actions.save_table(project, table)

    restarted = StudioSettings(work_dir=settings.work_dir, cache_dir=settings.cache_dir)
    again = open_video(SAMPLE, restarted, STYLE, 0)
    assert _project_view(again)[0] == table
    # Without the table's record the latest take's hits come back; a record written before the
    # hits column (no "hits") reads as the detected hits.
    edits = project.folder / "edits.json"
    record = json.loads(edits.read_text())
    edits.unlink()
    assert _project_view(open_video(SAMPLE, restarted, STYLE, 0))[0] == rendered
    del record["hits"]
    edits.write_text(json.dumps(record))
    detected = _rows(open_video(SAMPLE, restarted, STYLE, 0))
    assert [r[HITS] for r in detected] == [r[HITS] for r in _rows(replace_hits(again, None))]
    again = open_video(SAMPLE, restarted, STYLE, 0)
    again, rows, video, *_, status = _Actions(restarted).render(again, _project_view(again)[0], "auto")
    assert Path(video).parent.name == "take-002" and again.last_take.hit_list is None, status


def replace_hits(project, hits):
    from dataclasses import replace

    return replace(project, shown_hits=hits)


def test_the_captions_the_planner_wrote_follow_edited_hits_and_hand_written_ones_stay(project):
    # AudioStory reads the captions, so a landing typed into shot 4 is told in shot 4's caption and
    # prompt, as `dub --hits` tells it; a caption written by hand is the editor's and stays.
    from dubber.studio.app import _Actions

    settings, project = project
    actions = _Actions(settings)
    rows = _rows(project)
    planned = [row[4] for row in rows]
    media, fourth = project.analysis.media, project.plan.cues[3]
    told = f"a heavy fall at {float(media.frame_time(ADDED_FRAME) - media.frame_time(fourth.start_frame)):.1f} s"
    assert "fall" not in planned[3]
    rows[3][HITS] += f"; {ADDED_FRAME}f landing"
    project, table, *_ = actions.render(project, rows, "auto")
    take = project.last_take
    assert told in table[3][4], table[3][4]
    assert table[3][5].startswith(table[3][4]), table[3][5]   # the prompt in the planner's wording follows it
    assert [row[4] for k, row in enumerate(table) if k != 3] == [c for k, c in enumerate(planned) if k != 3]
    assert json.loads((take.folder / "plan.json").read_text())["cues"][3]["caption"] == table[3][4]
    # the take says nothing of captions "edited in the plan": the editor edited hit points only
    assert not any("edited in the plan" in note for note in take.notes), take.notes

    table[1][4] = "My own words for shot two."
    table[1][HITS] = ""   # shot 2's hits deleted: its caption is the editor's and stays as written
    project, table, *_ = actions.render(project, table, "auto")
    assert table[1][4] == "My own words for shot two." and told in table[3][4]
