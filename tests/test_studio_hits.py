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
    # The edit in shot 4 leaves the music of the shots before it note for note as it was: the same
    # audio but for the film-wide balance of the mix (a gain a fraction of a dB away), and the
    # status says so rather than "sound exactly as before".
    import soundfile as sf

    before = sf.read(plain.outputs["stem:music"], dtype="float64")[0]
    after = sf.read(take.outputs["stem:music"], dtype="float64")[0]
    edited = project.plan.cues[3]
    a, b = before[:edited.start_sample].ravel(), after[:edited.start_sample].ravel()
    gain = float(np.dot(a, b) / np.dot(a, a))
    assert abs(20 * np.log10(gain)) < 1.0
    assert np.linalg.norm(b - gain * a) < 0.01 * np.linalg.norm(b)   # the same notes, at most re-levelled
    assert not np.allclose(before[edited.start_sample:], after[edited.start_sample:])   # the edited shot is new
    assert "the shots before it keep every note" in status, status
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
    assert table[4][HITS] == "" and "whose hits changed" in status


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


def test_two_hits_of_one_kind_typed_on_one_frame_are_refused_naming_both_and_one_typed_twice_is_one(project):
    # One sound of each kind plays on a frame: a second landing typed there would vanish from the
    # cell after the render, so the editor is asked which to keep instead.
    from dubber.errors import InputError
    from dubber.studio.project import read_hits, save_table

    _, project = project
    table = _rows(project)
    assert table[2][HITS].startswith("00:00:07:00 landing 1.00; ")
    table[2][HITS] += "; 00:00:07:00 landing 0.5"
    with pytest.raises(InputError, match=r"^Shot 3's hits '00:00:07:00 landing 1\.00' and '00:00:07:00 landing 0\.5' "
                                         r"both put a landing on one frame, 00:00:07:00, where one landing plays; keep "
                                         r"one of them\.$"):
        read_hits(project.plan, project.analysis, table)
    assert not save_table(project, table)
    # an impact there plays beside the landing, as two detected hits of different kinds on one frame do
    table = _rows(project)
    table[2][HITS] += "; 00:00:07:00 impact"
    hits = read_hits(project.plan, project.analysis, table)
    assert [(e.kind, e.strength) for e in hits if e.frame == 168] == [("impact", 0.8), ("landing", 1.0)]
    table = _rows(project)
    table[3][HITS] += f"; {ADDED_FRAME}f landing; {ADDED_FRAME}f, Landing, 0.8"
    hits = read_hits(project.plan, project.analysis, table)
    assert [(e.frame, e.kind, e.strength) for e in hits if e.frame == ADDED_FRAME] == [(ADDED_FRAME, "landing", 0.8)]


def test_a_decimal_comma_is_named_instead_of_read_as_two_fields(project):
    # "whoosh 0,5" would read as strength 0 and a 5 s length: a silent hit the editor never asked for.
    from dubber.errors import InputError
    from dubber.studio.project import read_hits

    _, project = project
    table = _rows(project)
    table[3][HITS] += f"; {ADDED_FRAME}f whoosh 0,5"
    with pytest.raises(InputError, match=rf"^Shot 4's hit '{ADDED_FRAME}f whoosh 0,5' writes 0,5 with a decimal comma; "
                                         r"write 0\.5, since commas separate a hit's fields\.$"):
        read_hits(project.plan, project.analysis, table)


def test_a_whoosh_on_the_last_frame_of_a_60_fps_video_can_be_edited_as_shown(cache, tmp_path):
    # It lasts one frame, 1/60 s, shown as "0.02", which reads back as that one frame.
    from fractions import Fraction

    from samples.synth import SynthSpec, synthesize

    from dubber.studio.app import _Actions
    from dubber.studio.project import StudioSettings, open_video, read_hits

    video = tmp_path / "sixty.mp4"
    synthesize(video, SynthSpec(width=160, height=90, fps=Fraction(60), duration_s=4.0, audio=False))
    settings = StudioSettings(work_dir=tmp_path / "work", cache_dir=cache)
    project = open_video(video, settings, STYLE, 0)
    last = project.analysis.media.frame_count - 1
    table = _rows(project)
    table[-1][HITS] = f"{last}f whoosh"
    project, table, *_ = _Actions(settings).render(project, table, "auto")
    assert table[-1][HITS].endswith(" whoosh 0.80 0.02"), table[-1][HITS]
    table[-1][HITS] = table[-1][HITS].replace(" 0.80 ", " 0.90 ")
    (whoosh,) = [e for e in read_hits(project.plan, project.analysis, table, project.shown_hits) if e.frame == last]
    assert (whoosh.kind, whoosh.strength, whoosh.end_frame) == ("whoosh", 0.9, last + 1)


def test_a_variable_rate_videos_hits_read_back_as_shown_and_its_timecodes_land_where_shown(cache, tmp_path,
                                                                                            sample_vfr):
    # Its timecode counts frames of a standard rate, not its own: read as frame numbers, the shown
    # hits moved on the first render and a typed timecode landed frames away from where it was shown.
    from dubber.studio.app import _Actions
    from dubber.studio.project import StudioSettings, open_video, read_hits

    settings = StudioSettings(work_dir=tmp_path / "work", cache_dir=cache)
    project = open_video(sample_vfr[0], settings, STYLE, 0)
    assert project.analysis.media.is_vfr and project.analysis.events
    table = _rows(project)
    assert read_hits(project.plan, project.analysis, table) is None
    for k, cue in enumerate(project.plan.cues):
        typed = [list(r) for r in table]
        typed[k][HITS] = f"{table[k][2]} landing"   # the shot's start, as its start column shows it
        hits = read_hits(project.plan, project.analysis, typed)
        assert [e.frame for e in hits if cue.start_frame <= e.frame < cue.end_frame] == [cue.start_frame], k
    project, table, *_, status = _Actions(settings).render(project, table, "auto")
    assert project.last_take.hit_list is None and not (project.last_take.folder / "hits.txt").exists(), status


def test_a_timecode_typed_with_colons_on_a_drop_frame_video_lands_where_the_cells_show_it(cache, tmp_path):
    # The cells show 01:00:02;00; an editor types 01:00:02:00. Counted without drops from a start
    # counted with them, it would land 108 frames (3.6 s) later.
    from fractions import Fraction

    from dub_cli import ffmpeg
    from samples.synth import SynthSpec, synthesize

    from dubber.studio.project import StudioSettings, open_video, read_hits

    plain, video = tmp_path / "plain.mp4", tmp_path / "ntsc.mp4"
    synthesize(plain, SynthSpec(width=160, height=90, fps=Fraction(30000, 1001), duration_s=5.0, audio=False))
    ffmpeg("-i", str(plain), "-c", "copy", "-timecode", "01:00:00;00", str(video))
    project = open_video(video, StudioSettings(work_dir=tmp_path / "work", cache_dir=cache), STYLE, 0)
    table = _rows(project)
    assert len(project.plan.cues) > 1 and table[1][2].startswith("01:00:0") and ";" in table[1][2], table[1][2]
    for k, cue in enumerate(project.plan.cues):
        typed = [list(r) for r in table]
        typed[k][HITS] = f"{table[k][2].replace(';', ':')} landing"
        hits = read_hits(project.plan, project.analysis, typed)
        assert [e.frame for e in hits if cue.start_frame <= e.frame < cue.end_frame] == [cue.start_frame], k


def _fast_media(fps):
    from fractions import Fraction

    from vision.types import MediaInfo

    return MediaInfo(path="v.mp4", duration_s=4.0, fps=Fraction(fps), frame_count=4 * fps, width=64, height=36)


@pytest.mark.parametrize("fps, frames", [(60, 1), (120, 3), (240, 1)])
def test_a_short_whoosh_on_a_fast_video_keeps_its_frames_in_the_hit_list_and_the_cell(tmp_path, fps, frames):
    # A detected one-frame whoosh at 60 fps was written to the take's hit list as 0.04 s (then the
    # shortest length a hit list allowed), two frames; three frames at 120 fps (0.025 s) showed as
    # 0.03, four frames when typed back with another strength.
    from types import SimpleNamespace

    from dubber.spotting import hit_event, read_hit_list, read_hit_point, spot
    from dubber.studio.hit_cells import hit_text, read_take_hits, write_hit_list
    from vision.types import Shot, VideoAnalysis, VisualEvent

    media = _fast_media(fps)
    whoosh = VisualEvent(30, "whoosh", 0.74, 30 + frames)
    hit_list = write_hit_list([whoosh], media, tmp_path / "hits.txt")
    (back,) = read_take_hits(hit_list, SimpleNamespace(media=media, events=()))
    assert (back.frame, back.end_frame) == (30, 30 + frames), hit_list.read_text()
    analysis = VideoAnalysis(media=media, shots=(Shot(0, 0, media.frame_count),), events=(),
                             motion=(0.3,) * media.frame_count,
                             captions=())
    (played,) = spot(analysis, read_hit_list(hit_list), only=True).events   # as `dub --hits` reads it
    assert played.end_frame == 30 + frames
    shown = hit_text(whoosh, media)
    assert shown.startswith("00:00:00:30 whoosh 0.74 "), shown
    typed = hit_event(read_hit_point(shown.replace(" 0.74 ", " 0.90 "), "cell"), media)
    assert (typed.frame, typed.strength, typed.end_frame) == (30, 0.9, 30 + frames), shown


def test_two_detected_hits_of_different_kinds_on_one_frame_both_play_after_an_edit_elsewhere(project):
    # Detection plays a flash as a whoosh starts; once a hit in another shot was edited, the take's
    # hit list played only the stronger of the two while the cell still showed both.
    from dataclasses import replace

    from dubber.studio.app import _Actions
    from vision.types import VisualEvent

    settings, project = project
    whoosh = next(e for e in project.analysis.events if e.kind == "whoosh")   # shot 2's, at 00:00:03:11
    flash = VisualEvent(whoosh.frame, "flash", 0.5, whoosh.frame + 1)
    events = tuple(sorted((*project.analysis.events, flash), key=lambda e: (e.frame, e.kind)))
    project = replace(project, analysis=replace(project.analysis, events=events))
    table = _rows(project)
    both = "00:00:03:11 flash 0.50; 00:00:03:11 whoosh 0.74 0.50; "
    assert table[1][HITS].startswith(both), table[1][HITS]
    table[3][HITS] += f"; {ADDED_FRAME}f landing"
    project, table, *_ = _Actions(settings).render(project, table, "auto")
    take = project.last_take
    assert take.hit_list is not None and {(whoosh.frame, "flash"), (whoosh.frame, "whoosh")} <= _events(take)
    assert table[1][HITS].startswith(both), table[1][HITS]
    assert not any("one frame" in note for note in take.notes), take.notes


def test_an_old_analysis_fast_motion_shown_as_a_whoosh_reads_as_unedited(project):
    # A hit list cannot name "fast_motion": the cell shows it as the whoosh it sounds as. Untouched,
    # the table is the detected hits (no hit list, nothing to render again); with an edit elsewhere
    # the hit list plays it as a whoosh, read back as the detected event itself.
    from dataclasses import replace

    from dubber.studio.app import _Actions
    from dubber.studio.project import read_hits, read_take_hits

    settings, project = project
    events = tuple(replace(e, kind="fast_motion") if e.kind == "whoosh" else e for e in project.analysis.events)
    project = replace(project, analysis=replace(project.analysis, events=events))
    actions = _Actions(settings)
    table = _rows(project)
    assert table[1][HITS].startswith("00:00:03:11 whoosh 0.74 0.50; ") and "fast_motion" not in str(table)
    assert read_hits(project.plan, project.analysis, table) is None
    project, table, *_, status = actions.render(project, table, "auto")
    assert project.last_take.hit_list is None, status
    project, table, *_, status = actions.render(project, table, "auto")
    assert status.startswith("Nothing changed since take 001"), status
    table[3][HITS] += f"; {ADDED_FRAME}f landing"
    project, table, *_, status = actions.render(project, table, "auto")
    take = project.last_take
    assert "83f whoosh 0.7428 0.50" in take.hit_list.read_text()
    legacy = [e for e in events if e.kind == "fast_motion"]
    assert [e for e in read_take_hits(take.hit_list, project.analysis) if e.kind != "landing" or
            e.frame != ADDED_FRAME] == sorted(events, key=lambda e: (e.frame, e.kind)) and legacy
    project, table, *_, status = actions.render(project, table, "auto")
    assert status.startswith("Nothing changed since take 002"), status


def test_a_timecode_with_a_semicolon_right_after_it_ends_its_entry(project):
    # "00:00:01:07;1.5" read as one entry, refused as "no time": a timecode with its four fields
    # has no ";" left to take before frames, so the ";" ends the entry as in "4.2;1.5".
    from dubber.studio.project import read_hits

    _, project = project
    table = _rows(project)
    table[0][HITS] = "00:00:01:07;1.5"   # frame 31, and 1.5 s: frame 36
    hits = read_hits(project.plan, project.analysis, table)
    assert [(e.frame, e.kind) for e in hits if e.frame < 68] == [(31, "impact"), (36, "impact")]
    from dubber.studio.hit_cells import cell_entries

    assert cell_entries("01:00:02;00 landing;00:00:01:07;1.5\n4.2; 01:00:02;00;2") == [
        "01:00:02;00 landing", "00:00:01:07", "1.5", "4.2", "01:00:02;00", "2"]


def test_a_drop_frame_timecode_that_names_no_frame_is_refused_naming_the_frames_either_side(cache, tmp_path):
    # 01:01:00;00 and 01:01:00;01 do not exist (drop-frame skips them); they were read as the frame before.
    from fractions import Fraction

    from dub_cli import ffmpeg
    from samples.synth import SynthSpec, synthesize

    from dubber.errors import InputError
    from dubber.studio.project import StudioSettings, open_video, read_hits

    plain, video = tmp_path / "plain.mp4", tmp_path / "ntsc.mp4"
    synthesize(plain, SynthSpec(width=160, height=90, fps=Fraction(30000, 1001), duration_s=3.0, audio=False))
    ffmpeg("-i", str(plain), "-c", "copy", "-timecode", "01:00:59;00", str(video))
    project = open_video(video, StudioSettings(work_dir=tmp_path / "work", cache_dir=cache), STYLE, 0)
    from dubber.studio.project import shot_label

    row = next(k for k, c in enumerate(project.plan.cues) if c.start_frame <= 30 < c.end_frame)   # 01:01:00;02
    shot = shot_label(project.plan.cues[row])
    for typed in ("01:01:00;00", "01:01:00:01"):
        table = _rows(project)
        table[row][HITS] = f"{typed} landing"
        with pytest.raises(InputError, match=rf"^Shot {shot}'s hit '{typed} landing': the timecode 01:01:00;0[01] "
                                             r"names no frame, since drop-frame timecode skips frames 00 and 01 of "
                                             r"each minute but every tenth; write 01:01:00;02, that minute's first "
                                             r"frame, or 01:00:59;29, the frame before it\.$"):
            read_hits(project.plan, project.analysis, table)
    table[row][HITS] = "01:01:00;02 landing"
    assert [e.frame for e in read_hits(project.plan, project.analysis, table) if e.kind == "landing"] == [30]


def test_a_length_typed_for_an_impact_is_said_not_to_be_used(project):
    # As in a hit list, an impact has no length: the cell shows none after the render, and the
    # status says why instead of the typed length vanishing silently.
    from dubber.studio.app import _Actions

    settings, project = project
    table = _rows(project)
    table[3][HITS] += f"; {ADDED_FRAME}f impact 0.8 0.5"
    project, table, *_, status = _Actions(settings).render(project, table, "auto")
    assert (ADDED_FRAME, "impact") in _events(project.last_take)
    assert status.endswith(" The length typed for shot 4's impact at 00:00:10:22 is not used: only a whoosh, run "
                           "or shake lasts."), status
    assert table[3][HITS].endswith("; 00:00:10:22 impact 0.80"), table[3][HITS]


def test_a_hit_edited_in_a_muted_shot_is_said_not_to_be_heard(project):
    from dubber.studio.app import _Actions

    settings, project = project
    actions = _Actions(settings)
    table = _rows(project)
    table[3][HITS + 1] = True   # shot 4 muted
    table[3][HITS] += f"; {ADDED_FRAME}f landing"
    project, table, *_, status = actions.render(project, table, "auto")
    assert (ADDED_FRAME, "landing") in _events(project.last_take)
    assert status.endswith(" Shot 4 is muted, so the hits you edited there are not heard; unmute it to hear "
                           "them."), status
    table[0][HITS] = ""   # an edit in a shot that is heard: nothing said of mutes
    project, table, *_, status = actions.render(project, table, "auto")
    assert "muted" not in status, status
