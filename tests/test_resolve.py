"""The Resolve script against a fake Resolve that only knows the recorded API surface: the script
calls only recorded methods and the standard library; shots land on their frames at every rate,
within a marked range, and butt against each other; the fallbacks when AppendToTimeline or the
timeline import is missing; running outside Resolve; cancelling; and timecode arithmetic.

The stand-in `dub` command and the fake timeline are in tests/resolve_helpers.py.
"""
from __future__ import annotations

import ast
import json
import sys
import time
from fractions import Fraction

import pytest

from tests.resolve_helpers import (CAPTIONS, CLIP_FRAMES, CLIP_OFFSET, EXPECTED_END_OFFSETS, EXPECTED_RECORD_OFFSETS,
                                   EXPECTED_SOURCE, EXPECTED_SOURCE_AT_24, LEFT_OFFSET, RATES, SCRIPTS,
                                   TIMELINE_START, audio_items, dr, fr, make_manifest, make_setup, rb, runner)


def test_fake_covers_exactly_the_recorded_surface():
    for cls in fr.FAKE_CLASSES:
        public = {k for k, v in vars(cls).items() if not k.startswith("_") and callable(v)}
        assert public == set(fr.SURFACE["objects"][cls._api]), cls.__name__
    with pytest.raises(AssertionError, match="outside the recorded"):
        class Extra(fr._Fake, api="Timeline"):  # noqa: F841 - creation itself must fail
            def DeleteClips(self):
                return True


def test_script_calls_only_recorded_methods():
    """Every Resolve-style method name the script calls is in api_surface.json."""
    tree = ast.parse("\n".join(p.read_text() for p in SCRIPTS))
    modules = {a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    called = {n.func.attr for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
              and n.func.attr[:1].isupper() and getattr(n.func.value, "id", None) not in modules}
    recorded = set().union(*map(set, fr.SURFACE["objects"].values()))
    recorded |= {m for k, v in fr.SURFACE["ui"].items() if k != "about" for m in v}
    assert called and called <= recorded, sorted(called - recorded)


def test_script_runs_on_the_oldest_python_resolve_may_use():
    """Resolve runs its scripts on the Python it finds on the machine, 3.7 and later: no method or
    syntax newer than that in the script (str.removeprefix came with 3.9, the walrus with 3.8)."""
    for script in SCRIPTS:
        tree = ast.parse(script.read_text(), feature_version=(3, 7))
        newer = [node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
                 and node.attr in ("removeprefix", "removesuffix", "is_relative_to", "with_stem")]
        assert not newer, (script.name, newer)


def test_script_is_stdlib_only():
    tree = ast.parse("\n".join(p.read_text() for p in SCRIPTS))
    roots = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    roots |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert roots - {"DaVinciResolveScript", "resolve_bridge"} <= set(sys.stdlib_module_names), roots


@pytest.mark.parametrize("rate_name", ["24", "25", "29.97", "30"])
def test_placements_land_on_expected_frames(tmp_path, rate_name):
    resolve, timeline, config, _ = make_setup(tmp_path, rate_name)
    events = []
    message = dr.dub_into_timeline(resolve, config, runner(events.append))
    assert "Placed 6 dub clips on 2 new audio track(s)" in message
    assert [e["stage"] for e in events if "stage" in e] == ["analyze", "plan", "render", "mix"]
    pool = resolve._media_pool
    assert pool._append_calls == 1 and pool._rejected_batches == 0
    start = TIMELINE_START[rate_name]
    assert timeline.GetTrackCount("audio") == 3
    assert timeline._track_names == {("audio", 2): "Dub music", ("audio", 3): "Dub fx"}
    for track in (2, 3):
        items = audio_items(timeline, track)
        assert [i.GetStart() for i in items] == [start + o for o in EXPECTED_RECORD_OFFSETS]
        assert [i._source_range for i in items] == EXPECTED_SOURCE[rate_name]
        for item, end in zip(items, EXPECTED_END_OFFSETS):
            assert abs(item.GetEnd() - (start + end)) <= 1
    dub_bin = [f for f in pool.GetRootFolder().GetSubFolderList() if f.GetName() == "Dub"]
    assert len(dub_bin) == 1 and sorted(c.GetName() for c in dub_bin[0]._clips) == ["fx.wav", "music.wav"]
    assert sorted(timeline._markers) == EXPECTED_RECORD_OFFSETS  # marker ids count from the timeline start
    assert [m["note"] for _, m in sorted(timeline._markers.items())] == list(CAPTIONS)


@pytest.mark.parametrize("hidden", [frozenset(), frozenset({"Timeline.GetMarkInOut"})])
def test_marked_range_limits_the_dub(tmp_path, hidden):
    """Mark in 130 frames in, out on frame 259: only shots 1 (from frame 50) and 2 (to 180) are placed.
    A Resolve without GetMarkInOut (before 19.1) dubs the clip under the playhead instead."""
    resolve, timeline, config, _ = make_setup(tmp_path, "24", hidden=hidden)
    timeline._marks = {"video": {"in": 130, "out": 259}, "audio": {"in": 130, "out": 259}}
    timeline._playhead = 86400 + 10  # away from the clip: the marks choose it
    if hidden:
        with pytest.raises(rb.DubScriptError, match="No video clip is under the playhead"):
            dr.dub_into_timeline(resolve, config, runner())
        return
    dr.dub_into_timeline(resolve, config, runner())
    items = audio_items(timeline, 2)
    assert [i.GetStart() for i in items] == [86400 + 130, 86400 + 200]
    assert [i._source_range for i in items] == [(50, 120), (120, 180)]
    assert sorted(timeline._markers) == [130, 200]


def test_relative_record_frame_would_land_before_the_timeline():
    """Guard on the fake itself: a record frame without GetStartFrame() lands before 01:00:00:00."""
    timeline = fr.FakeTimeline("t", "24", 86400)
    timeline.AddTrack("audio", "stereo")
    pool = fr.FakeResolve(timeline)._media_pool
    media = fr.FakeMediaPoolItem("/x.wav", "24", 100)
    placed = pool.AppendToTimeline([{"mediaPoolItem": media, "startFrame": 0, "endFrame": 48, "mediaType": 2,
                                     "trackIndex": 2, "recordFrame": 48}])
    assert placed[0].GetStart() < timeline.GetStartFrame()


def test_one_fractional_frame_rejects_the_whole_batch():
    timeline = fr.FakeTimeline("t", "25", 90000)
    timeline.AddTrack("audio", "stereo")
    pool = fr.FakeResolve(timeline)._media_pool
    media = fr.FakeMediaPoolItem("/x.wav", "24", 100)
    good = {"mediaPoolItem": media, "startFrame": 0, "endFrame": 24, "mediaType": 2, "trackIndex": 2,
            "recordFrame": 90000}
    assert pool.AppendToTimeline([good, {**good, "recordFrame": 90025.0}]) is None
    assert timeline.GetItemListInTrack("audio", 2) == []
    infos = rb.clip_infos([rb.Placement("fx", 0, 90000, 0, 24, "")], {"fx": media}, {"fx": 2})
    assert all(type(v) is int for info in infos for k, v in info.items() if k != "mediaPoolItem")


def test_placement_is_a_pure_function_of_the_manifest():
    manifest = make_manifest(Fraction(25), stems=("dub",))
    clip = rb.ClipSpan(record_start_frame=90000, left_offset_frame=0, duration_frames=100,
                       timeline_fps=Fraction(25), source_fps=Fraction(25))
    placements = rb.plan_placements(manifest, clip, ["dub"])
    # The clip uses media frames [0, 100): shot 2 (from 120) is outside, shot 1 is cut at 100.
    assert [(p.shot_index, p.record_frame, p.start_frame, p.end_frame) for p in placements] == [
        (0, 90000, 0, 46), (1, 90048, 46, 96)]


@pytest.mark.parametrize("rate_name", ["25", "29.97"])
def test_source_ranges_count_in_the_rate_the_wav_was_imported_at(rate_name):
    """A WAV imported while the project ran at 24 fps counts in 24-fps frames even on a 25 or
    29.97 fps timeline: the bridge reads that rate from the item, never assumes it."""
    fps = RATES[rate_name]
    manifest = make_manifest(fps, stems=("dub",))
    clip = rb.ClipSpan(record_start_frame=TIMELINE_START[rate_name] + CLIP_OFFSET, left_offset_frame=LEFT_OFFSET,
                       duration_frames=CLIP_FRAMES, timeline_fps=fps, source_fps=fps)
    at_24 = fr.FakeMediaPoolItem("/dub.wav", "24", 300)
    own = fr.FakeMediaPoolItem("/dub.wav", rate_name, 300)
    ranges = {name: [(p.start_frame, p.end_frame) for p in rb.plan_placements(manifest, clip, ["dub"],
                                                                               rb.wav_media_fps(item))]
              for name, item in (("24", at_24), ("own", own))}
    assert ranges == {"24": EXPECTED_SOURCE_AT_24[rate_name], "own": EXPECTED_SOURCE[rate_name]}


# Shots of uneven lengths (1 to 336 frames) over 70 s, so boundaries fall on every fraction of a
# timeline frame, also where 1199/50 and 24 drift apart by more than half a frame.
UNEVEN_CUTS = (0, 1, 13, 14, 40, 97, 98, 151, 264, 290, 311, 340, 407, 460, 480, 625, 961, 1009, 1300, 1412, 1680)
UNEVEN_SHOTS = tuple(zip(UNEVEN_CUTS, UNEVEN_CUTS[1:]))


@pytest.mark.parametrize("source_fps, timeline_fps", [
    (Fraction(24), Fraction(25)), (Fraction(24), Fraction(30)), (Fraction(1199, 50), Fraction(24)),
    (Fraction(24), Fraction(24)), (Fraction(30000, 1001), Fraction(30000, 1001))])
def test_shot_clips_of_a_stem_butt_and_stay_on_their_picture(source_fps, timeline_fps):
    """Every shot clip starts where the previous one ends, the first and last meet the clip's in
    and out, each boundary is within half a timeline frame of its cut, and the sound under each
    clip is within half a frame of its picture, for every head and tail trim."""
    manifest = make_manifest(source_fps, stems=("dub",), shots=UNEVEN_SHOTS)
    media_frames = UNEVEN_CUTS[-1]
    for left in range(48):
        tail = (7 * left) % 23
        duration = int((media_frames - left - tail) * timeline_fps / source_fps)
        clip = rb.ClipSpan(108000, left, duration, timeline_fps, source_fps)
        placements = rb.plan_placements(manifest, clip, ["dub"], timeline_fps)
        case = (left, tail)
        assert placements[0].record_frame == clip.record_start_frame, case
        ends = [p.record_frame + p.end_frame - p.start_frame for p in placements]
        assert [p.record_frame for p in placements[1:]] == ends[:-1], case
        assert ends[-1] == clip.record_start_frame + duration, case
        for p in placements[1:]:
            cut_frame = UNEVEN_SHOTS[p.shot_index][0]
            exact = clip.record_start_frame + (cut_frame - left) * timeline_fps / source_fps
            assert abs(p.record_frame - exact) <= Fraction(1, 2), (case, p)
        # The WAV unit under timeline frame r ideally is r + lead (the media time there).
        lead = Fraction(left) * timeline_fps / source_fps - clip.record_start_frame
        for p in placements:
            assert abs(p.start_frame - lead - p.record_frame) <= Fraction(1, 2), (case, p)


def test_fallback_imports_the_otio_when_append_is_missing(tmp_path):
    resolve, timeline, config, source = make_setup(tmp_path, "25", hidden=frozenset({"MediaPool.AppendToTimeline"}))
    with pytest.raises(AttributeError):
        resolve._media_pool.AppendToTimeline
    message = dr.dub_into_timeline(resolve, config, runner())
    otio = source.parent / "clip_dub" / "clip_dub.otio"
    assert message == f"Imported the dub as the new timeline 'clip dub' from {otio}."
    assert resolve._media_pool._imported_timelines == [(str(otio), {"timelineName": "clip dub",
                                                                     "importSourceClips": True})]
    assert timeline.GetTrackCount("audio") == 1   # no empty "Dub" tracks left behind


def test_a_rejected_placement_leaves_no_empty_dub_tracks(tmp_path, monkeypatch):
    """Resolve refusing the batch of clips (None): the tracks made for it go again, the editor's
    own audio tracks stay as they were, and the .otio is imported instead."""
    resolve, timeline, config, source = make_setup(tmp_path, "25")
    timeline.AddTrack("audio", "stereo")
    timeline.SetTrackName("audio", 2, "Dialogue")
    monkeypatch.setattr(type(resolve._media_pool), "AppendToTimeline", lambda self, infos: None)
    message = dr.dub_into_timeline(resolve, config, runner())
    assert message.startswith("Imported the dub as the new timeline 'clip dub'")
    assert timeline.GetTrackCount("audio") == 2 and timeline._track_names == {("audio", 2): "Dialogue"}


def test_each_take_imported_as_a_timeline_gets_a_name_of_its_own(tmp_path):
    """Resolve keeps timeline names unique: a second take imported under the first one's name
    would be refused, and the user sent to import by hand."""
    resolve, _, config, source = make_setup(tmp_path, "25", hidden=frozenset({"MediaPool.AppendToTimeline"}))
    first = dr.dub_into_timeline(resolve, config, runner())
    second = dr.dub_into_timeline(resolve, config, runner())
    otio = source.parent / "clip_dub-2" / "clip_dub-2.otio"
    assert first.startswith("Imported the dub as the new timeline 'clip dub' from")
    assert second == f"Imported the dub as the new timeline 'clip dub 2' from {otio}."
    assert [o["timelineName"] for _, o in resolve._media_pool._imported_timelines] == ["clip dub", "clip dub 2"]


def test_fallback_names_the_manual_import_when_no_import_api(tmp_path):
    hidden = frozenset({"MediaPool.AppendToTimeline", "MediaPool.ImportTimelineFromFile"})
    resolve, _, config, source = make_setup(tmp_path, "30", hidden=hidden)
    message = dr.dub_into_timeline(resolve, config, runner())
    otio = source.parent / "clip_dub" / "clip_dub.otio"
    assert message == f"Use File > Import > Timeline and choose {otio} to bring in the dub."


def test_no_scripting_gives_one_sentence(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(rb, "connect", lambda resolve=None: None)
    monkeypatch.setenv("DUB_RESOLVE_CONFIG", str(tmp_path / "missing.json"))
    assert dr.main([]) == 2
    out = capsys.readouterr().out.strip()
    assert out.count(".") >= 1 and "File > Import > Timeline" in out and "\n" not in out


def test_outside_resolve_runs_dub_and_points_at_the_otio(tmp_path, monkeypatch, capsys):
    _, _, config, source = make_setup(tmp_path, "24")
    config_path = tmp_path / "dub_resolve.json"
    config_path.write_text(json.dumps(config))
    monkeypatch.setattr(rb, "connect", lambda resolve=None: None)
    monkeypatch.setenv("DUB_RESOLVE_CONFIG", str(config_path))
    assert dr.main([str(source)]) == 0
    otio = source.parent / "clip_dub" / "clip_dub.otio"
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "dub: analyze 25% analyze"  # progress shown while dub runs
    assert lines[-1] == f"Use File > Import > Timeline and choose {otio} to bring in the dub."


def test_no_clip_under_playhead(tmp_path):
    resolve, timeline, config, _ = make_setup(tmp_path, "24")
    timeline._playhead = TIMELINE_START["24"] + 10  # before the clip, which starts 100 frames in
    with pytest.raises(rb.DubScriptError, match="No video clip is under the playhead"):
        dr.dub_into_timeline(resolve, config, runner())


def test_a_clip_without_a_media_file_above_the_one_to_dub_is_passed_over(tmp_path):
    """A title, an adjustment clip or a compound clip on V2 over the shot (its media pool item has
    no file path): the dub is of the clip with a file under it, not "offline" for the one without."""
    resolve, timeline, config, source = make_setup(tmp_path, "24")
    clip = timeline.GetItemListInTrack("video", 1)[0]
    timeline.AddTrack("video")
    title = fr.FakeTimelineItem(fr.FakeMediaPoolItem("", timeline._fps, 1000), clip.GetStart(), clip.GetEnd(), 0)
    timeline._tracks["video"][1].append(title)
    dr.dub_into_timeline(resolve, config, runner())
    assert audio_items(timeline, 2), "no dub was placed"


def test_dub_failure_surfaces_its_sentence(tmp_path):
    resolve, timeline, config, _ = make_setup(tmp_path, "24", fail=True)
    with pytest.raises(rb.DubScriptError, match="^dub: The input has no video stream; choose a video file.$"):
        dr.dub_into_timeline(resolve, config, runner())
    assert timeline.GetTrackCount("audio") == 1


def test_cancel_kills_dub(tmp_path):
    resolve, timeline, config, source = make_setup(tmp_path, "24", sleep_s=5)
    seen = []
    began = time.monotonic()
    with pytest.raises(rb.DubScriptError, match="cancelled"):
        dr.dub_into_timeline(resolve, config, runner(seen.append, cancelled=lambda: bool(seen)))
    assert time.monotonic() - began < 4  # killed long before the stand-in would finish
    assert seen[0]["stage"] == "analyze" and timeline.GetTrackCount("audio") == 1
    assert not (source.parent / "clip_dub").exists()   # the cancelled take leaves no folder


@pytest.mark.parametrize("timecode, rate, drop, frame", [
    ("01:00:00:00", "24", False, 86400),
    ("01:00:00:00", "25", False, 90000),
    ("01:00:00:00", "29.97", False, 108000),
    ("01:00:00;00", "29.97", True, 107892),
    ("00:01:00;02", "29.97", True, 1800),
    ("00:10:00;00", "29.97", True, 17982),
    ("01:00:01:12", "59.94 DF", True, 215784 + 72),
])
def test_timecode_to_frame(timecode, rate, drop, frame):
    assert rb.timecode_to_frame(timecode, rb.parse_frame_rate(rate), drop) == frame


def test_frame_rates_are_exact():
    assert rb.parse_frame_rate("29.97") == Fraction(30000, 1001)
    assert rb.parse_frame_rate("23.976") == Fraction(24000, 1001)
    assert rb.parse_frame_rate("29.97 DF") == Fraction(30000, 1001)
    assert rb.parse_frame_rate("25") == 25
