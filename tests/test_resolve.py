"""The Resolve script against a fake Resolve that only knows the recorded API surface.

A stand-in `dub` command (a tiny script written here) emits --json-progress lines and writes
stems, dub.json and an .otio, so the whole script runs: timeline reading, the subprocess,
import, one AppendToTimeline batch, markers, and the fallbacks.
"""
from __future__ import annotations

import ast
import json
import os
import sys
import threading
import time
from types import SimpleNamespace
from fractions import Fraction
from pathlib import Path

import pytest

from integrations.resolve import dub_resolve as dr
from tests import fake_resolve as fr

rb = dr.rb  # the bridge module exactly as the launcher imported it
SCRIPTS = (Path(dr.__file__), Path(rb.__file__))
SHOTS = ((0, 48), (48, 120), (120, 240))
CAPTIONS = ("a cat tiptoes past the vase", "the vase wobbles and falls", "crash, shards everywhere")
# Timeline start 01:00:00:00 at each rate (29.97 counted non-drop-frame).
TIMELINE_START = {"24": 86400, "25": 90000, "29.97": 108000, "30": 108000}
RATES = {"24": Fraction(24), "25": Fraction(25), "29.97": Fraction(30000, 1001), "30": Fraction(30)}
# Source ranges of the three shots in frames of the WAV (the clip uses media frames [20, 240)).
# Resolve counts a WAV at the project's rate when it is imported, here the video's own, so they
# are the shots' own frames at every rate.
EXPECTED_SOURCE = {rate: [(20, 48), (48, 120), (120, 240)] for rate in ("24", "25", "29.97", "30")}
# The same shots in a WAV counted at 24 fps (imported while the project ran at 24), worked out
# by hand: frame -> sample (48 kHz) -> units of 1/24 s, rounded.
EXPECTED_SOURCE_AT_24 = {
    "25": [(19, 46), (46, 115), (115, 230)],
    "29.97": [(16, 38), (38, 96), (96, 192)],
}
CLIP_OFFSET, LEFT_OFFSET, CLIP_FRAMES = 100, 20, 220
# The clip starts 100 frames into the timeline and skips the media's first 20 frames, so the
# shots at media frames 0 (trimmed to 20), 48 and 120 start 100, 128 and 200 frames in.
EXPECTED_RECORD_OFFSETS = [100, 128, 200]
EXPECTED_END_OFFSETS = [128, 200, 320]

FAKE_DUB = r'''
import json, sys, time, wave
from pathlib import Path
template, source = sys.argv[1], sys.argv[2]
args = sys.argv[3:]
out = Path(args[args.index("-o") + 1]); stems_dir = Path(args[args.index("--stems") + 1])
assert "--json-progress" in args and "--timeline" in args
manifest = json.loads(Path(template).read_text())
if manifest.get("fail"):
    print("dub: The input has no video stream; choose a video file.", file=sys.stderr); sys.exit(2)
if out.exists() and "--overwrite" not in args:
    print(f"dub: {out} exists; pass --overwrite to replace it.", file=sys.stderr); sys.exit(2)
if manifest.get("notice"):
    print(json.dumps({"event": "notice", "message": manifest["notice"]}), flush=True)
if manifest.get("source_has_audio") and "--keep-original" not in args:   # as dub says it
    print(json.dumps({"event": "notice", "message": "the source's audio track is not in the output, only the "
                      "dub; pass --keep-original to keep it after the dub"}), flush=True)
total = manifest["plan"]["total_samples"]
for i, stage in enumerate(("analyze", "plan", "render", "mix")):
    print(json.dumps({"stage": stage, "done": i + 1, "total": 4, "message": stage}), flush=True)
    time.sleep(manifest.get("sleep_s", 0))
stems_dir.mkdir(parents=True, exist_ok=True)
outputs = {"video": str(out)}
level = int(manifest.get("level", 0)).to_bytes(2, "little", signed=True)
for name in ["mix"] + manifest["stem_names"]:
    with wave.open(str(stems_dir / f"{name}.wav"), "wb") as w:
        w.setnchannels(2); w.setsampwidth(2); w.setframerate(48000); w.writeframes(level * 2 * total)
    outputs["mix" if name == "mix" else "stem:" + name] = str(stems_dir / f"{name}.wav")
base = out.with_suffix("")
otio = base.with_name(base.name + ".otio"); otio.write_text(json.dumps({"OTIO_SCHEMA": "Timeline.1"}))
outputs["otio"] = str(otio)
manifest_path = base.with_name(base.name + ".json")
outputs["manifest"] = str(manifest_path)
manifest["outputs"] = {k: str(Path(v).relative_to(out.parent)) for k, v in outputs.items()}
manifest_path.write_text(json.dumps(manifest))
out.write_bytes(b"muxed")
print(json.dumps({"event": "done", "outputs": outputs}), flush=True)
'''


def make_manifest(fps: Fraction, stems=("music", "fx"), rate: int = 48000, shots=SHOTS) -> dict:
    frames = shots[-1][1]
    captions = CAPTIONS if shots is SHOTS else tuple(f"shot {i}" for i in range(len(shots)))
    cues = []
    for i, (a, b) in enumerate(shots):
        start, end = round(a * rate / fps), round(b * rate / fps)
        cues.append({"index": i, "shot_index": i, "start_frame": a, "end_frame": b, "start_sample": start,
                     "num_samples": end - start, "caption": captions[i]})
    return {
        "schema": "dubber.manifest/1",
        "media": {"fps": f"{fps.numerator}/{fps.denominator}", "frame_count": frames, "width": 320, "height": 180},
        "analysis": {"schema": "dubber.analysis/1",
                     "shots": [{"index": i, "start_frame": a, "end_frame": b} for i, (a, b) in enumerate(shots)],
                     "captions": [{"shot_index": i, "text": t} for i, t in enumerate(captions)]},
        "plan": {"sample_rate": rate, "total_samples": round(frames * rate / fps), "cues": cues},
        "stem_names": list(stems),
    }


def make_setup(tmp_path: Path, rate_name: str, hidden=frozenset(), **manifest_extra):
    timeline = fr.FakeTimeline("Edit 1", rate_name, TIMELINE_START[rate_name], hidden)
    source = tmp_path / "media" / "clip.mp4"
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_bytes(b"not read by the stand-in dub")
    fr.add_video_clip(timeline, str(source), CLIP_OFFSET, LEFT_OFFSET, CLIP_FRAMES, media_frames=240)
    timeline._playhead = TIMELINE_START[rate_name] + 150
    resolve = fr.FakeResolve(timeline, hidden)
    template = tmp_path / "template.json"
    template.write_text(json.dumps({**make_manifest(RATES[rate_name]), **manifest_extra}))
    fake_dub = tmp_path / "fake_dub.py"
    fake_dub.write_text(FAKE_DUB)
    config = {"dub": [sys.executable, str(fake_dub), str(template)]}
    return resolve, timeline, config, source


def runner(on_event=lambda e: None, cancelled=lambda: False):
    return lambda args: rb.run_dub(args, on_event, cancelled)


def audio_items(timeline: fr.FakeTimeline, track: int) -> list:
    return sorted(timeline.GetItemListInTrack("audio", track), key=lambda item: item.GetStart())


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
    assert timeline.GetTrackCount("audio") == 1 or all(not timeline.GetItemListInTrack("audio", t)
                                                       for t in range(2, timeline.GetTrackCount("audio") + 1))


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


def test_real_dub_into_fake_resolve(tmp_path):
    """The real `dub --backend score` and its real manifest, placed through the fake Resolve."""
    from samples.synth import SynthSpec, synthesize

    video = tmp_path / "media" / "cartoon.mp4"
    video.parent.mkdir()
    truth = synthesize(video, SynthSpec(fps=Fraction(30), shot_frames=(45, 60), audio=False, seed=4))
    assert [(s["start_frame"], s["end_frame"]) for s in truth["shots"]] == [(0, 45), (45, 105)]
    timeline = fr.FakeTimeline("Edit 1", "30", 108000)
    fr.add_video_clip(timeline, str(video), 0, 0, 105, media_frames=105)
    timeline._playhead = 108000 + 50
    resolve = fr.FakeResolve(timeline)
    config = {"dub": [str(Path(sys.executable).with_name("dub"))], "backend": "score"}
    events = []
    message = dr.dub_into_timeline(resolve, config, runner(events.append))
    assert message == "Placed 4 dub clips on 2 new audio track(s)."
    assert {e.get("stage") for e in events} >= {"analyze", "render", "mix", "export"}
    names = {timeline._track_names[("audio", t)] for t in (2, 3)}
    assert names == {"Dub music", "Dub fx"}
    for track in (2, 3):
        items = audio_items(timeline, track)
        assert [i.GetStart() for i in items] == [108000, 108045]        # 01:00:00:00 + each shot's first frame
        assert [i._source_range for i in items] == [(0, 45), (45, 105)]  # the WAV counts at the project's 30 fps
        assert [i.GetEnd() for i in items] == [108045, 108105]
    manifest = json.loads((video.parent / "cartoon_dub" / "cartoon_dub.json").read_text())
    captions = [c["text"] for c in manifest["analysis"]["captions"]]
    markers = sorted(timeline._markers.items())
    assert [m["note"] for _, m in markers if m["customData"].startswith("dubber:shot:")] == captions
    assert len(captions) == 2
    # every event the soundtrack hits, on its frame (the clip starts the timeline, unscaled)
    events = manifest["analysis"]["events"]
    hits = {o: m["name"] for o, m in markers if m["customData"] == "dubber:hit" or " - Shot " in m["name"]}
    assert hits == {e["frame"]: hits.get(e["frame"], "") for e in events} and len(events) >= 2
    assert [name.split(" - ")[0] for _, name in sorted(hits.items())] == [f"{e['kind']} {e['strength']:.2f}"
                                                                        for e in events]


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@pytest.fixture(scope="module")
def post_media(tmp_path_factory) -> dict[str, Path]:
    """What post and Blender hand over: a DNxHR .mxf and an uncompressed RGB .avi ("AVI Raw"),
    each a re-encode of a small synthetic cartoon (no .mp4 can carry either picture)."""
    import subprocess

    from samples.synth import SynthSpec, synthesize

    folder = tmp_path_factory.mktemp("post_media")
    picture = folder / "picture.mp4"
    synthesize(picture, SynthSpec(fps=Fraction(24), shot_frames=(48, 48), audio=False, seed=5))
    encodings = {"avid.mxf": ["-c:v", "dnxhd", "-profile:v", "dnxhr_lb", "-pix_fmt", "yuv422p"],
                 "render.avi": ["-c:v", "rawvideo", "-pix_fmt", "bgr24"]}
    made = {}
    for name, codec in encodings.items():
        subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-i", str(picture), *codec, str(folder / name)],
                       check=True, stdin=subprocess.DEVNULL)
        made[Path(name).suffix] = folder / name
    return made


def real_dub_config(tmp_path: Path, monkeypatch) -> dict:
    monkeypatch.setenv("DUB_CACHE_DIR", str(tmp_path / "dub-cache"))
    return {"dub": [str(Path(sys.executable).with_name("dub"))], "backend": "score"}


@pytest.mark.parametrize("suffix", [".mxf", ".avi"])
def test_post_media_is_dubbed_into_a_mov(post_media, suffix, tmp_path, monkeypatch, capsys):
    """dub copies the picture, and no .mp4 carries DNxHR or uncompressed RGB: the script must
    pick a .mov, as `dub avid.mxf` does, instead of a refused .mp4."""
    source = tmp_path / post_media[suffix].name
    source.write_bytes(post_media[suffix].read_bytes())
    config_path = tmp_path / "dub_resolve.json"
    config_path.write_text(json.dumps(real_dub_config(tmp_path, monkeypatch)))
    monkeypatch.setattr(rb, "connect", lambda resolve=None: None)
    monkeypatch.setenv("DUB_RESOLVE_CONFIG", str(config_path))
    assert dr.main([str(source)]) == 0, capsys.readouterr().out[-2000:]
    out_dir = tmp_path / f"{source.stem}_dub"
    assert (out_dir / f"{source.stem}_dub.mov").stat().st_size > 0
    otio = out_dir / f"{source.stem}_dub.otio"
    assert capsys.readouterr().out.strip().splitlines()[-1] == (
        f"Use File > Import > Timeline and choose {otio} to bring in the dub.")


@pytest.mark.parametrize("name, output", [
    ("clip.MP4", "clip_dub.mp4"), ("clip.mov", "clip_dub.mov"), ("clip.m4v", "clip_dub.m4v"),
    ("clip.mkv", "clip_dub.mkv"), ("clip.webm", "clip_dub.mkv"), ("clip.mxf", "clip_dub.mov"),
    ("clip.avi", "clip_dub.mov"), ("clip.mpg", "clip_dub.mov"), ("clip.MTS", "clip_dub.mov"),
])
def test_output_container_carries_the_source_picture(name, output, tmp_path):
    """WebM's VP8 fits neither .mp4 nor .mov; .mov takes what .mxf, .avi and MPEG files hold."""
    args = dr.build_args({"dub": ["dub"]}, tmp_path / name, tmp_path / "clip_dub")
    assert Path(args[args.index("-o") + 1]) == tmp_path / "clip_dub" / output


def folder_digest(folder: Path) -> dict[str, str]:
    import hashlib

    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_rerun_reuses_the_analysis_and_keeps_the_earlier_take(post_media, tmp_path, monkeypatch):
    """Dubbing the same clip in a new style goes into a take folder of its own, without
    analysing the picture again; the earlier take's files, maybe in the edit, stay as they were."""
    source = tmp_path / "avid.mxf"
    source.write_bytes(post_media[".mxf"].read_bytes())
    config = real_dub_config(tmp_path, monkeypatch)
    runs, folders, digests = [], [], []
    for style in ("tom-and-jerry", "noir"):
        events = []
        out_dir = dr.output_dir_for(source)
        args = dr.build_args({**config, "style": style}, source, out_dir)
        assert "--overwrite" not in args and "--force" not in args
        outputs = rb.run_dub(args, events.append, lambda: False)
        runs.append({e.get("stage") for e in events})
        folders.append(out_dir)
        digests.append(folder_digest(out_dir))
        assert Path(outputs["video"]) == out_dir / f"{out_dir.name}.mov"
    assert folders == [tmp_path / "avid_dub", tmp_path / "avid_dub-2"]
    assert "analyze/decode" in runs[0] and "analyze/decode" not in runs[1]
    assert folder_digest(folders[0]) == digests[0]
    names = [{Path(name).name for name in digest} for digest in digests]
    assert names[0].isdisjoint(names[1])   # each take's media has its own names in the "Dub" bin
    assert "noir" not in (folders[0] / "avid_dub.json").read_text()
    assert "noir" in (folders[1] / "avid_dub-2.json").read_text()


def test_take_folders_never_reuse_an_existing_name(tmp_path):
    source = tmp_path / "clip.mov"
    (tmp_path / "clip_dub").mkdir()
    (tmp_path / "clip_dub-2").write_text("a file in the way")
    assert dr.output_dir_for(source) == tmp_path / "clip_dub-3"
    assert dr.output_dir_for(source) == tmp_path / "clip_dub-4"
    assert (tmp_path / "clip_dub-2").read_text() == "a file in the way"


def test_a_second_dub_leaves_the_media_in_the_dub_bin_untouched(tmp_path):
    """Media imported by the first run stays byte for byte what it was when the same clip is
    dubbed again; the second run's media has names of its own."""
    resolve, timeline, config, source = make_setup(tmp_path, "25", level=1000)
    dr.dub_into_timeline(resolve, config, runner())
    pool = resolve._media_pool
    (dub_bin,) = [f for f in pool.GetRootFolder().GetSubFolderList() if f.GetName() == "Dub"]
    first = {c.GetClipProperty("File Path") for c in dub_bin._clips}
    before = {path: Path(path).read_bytes() for path in first}
    template = Path(config["dub"][-1])
    template.write_text(json.dumps({**json.loads(template.read_text()), "level": -1000}))
    message = dr.dub_into_timeline(resolve, config, runner())
    assert message == "Placed 6 dub clips on 2 new audio track(s)."
    assert {path: Path(path).read_bytes() for path in first} == before
    second = {c.GetClipProperty("File Path") for c in dub_bin._clips} - first
    assert {Path(p).parent for p in first} == {source.parent / "clip_dub" / "stems"}
    assert len(second) == 2 and {Path(p).parent for p in second} == {source.parent / "clip_dub-2" / "stems"}


def test_a_failed_dub_leaves_no_take_folder(tmp_path):
    resolve, _, config, source = make_setup(tmp_path, "24", fail=True)
    with pytest.raises(rb.DubScriptError):
        dr.dub_into_timeline(resolve, config, runner())
    assert sorted(p.name for p in source.parent.iterdir()) == ["clip.mp4"]


def test_reinstall_keeps_the_users_settings(tmp_path, capsys):
    from integrations.install import install

    scripts = tmp_path / "Utility"
    install("resolve", scripts)
    config_path = scripts / "dub_resolve.json"
    first = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**first, "dub": ["/old/env/bin/dub"], "style": "noir", "lufs": "ebu",
                                       "backend": "score"}))
    capsys.readouterr()
    install("resolve", scripts)
    assert json.loads(config_path.read_text()) == {**first, "style": "noir", "lufs": "ebu", "backend": "score"}
    said = capsys.readouterr().err
    assert said == f'dub: kept your settings in {config_path}: style="noir", lufs="ebu", backend="score"\n'


def test_reinstall_over_a_broken_config_changes_nothing(tmp_path):
    from integrations.install import IntegrationError, install

    scripts = tmp_path / "Utility"
    scripts.mkdir()
    config_path = scripts / "dub_resolve.json"
    config_path.write_text('{"style": "noir",}')   # a hand edit with a trailing comma
    with pytest.raises(IntegrationError, match="cannot be read as JSON .*; fix or delete it, then install again.$"):
        install("resolve", scripts)
    assert config_path.read_text() == '{"style": "noir",}'
    assert not (scripts / "Dub Shot Audio.py").exists()


BROKEN_CONFIG = '{"style": "noir",\n "lufs": "ebu",}'   # a hand edit with a trailing comma


def broken_config_sentence(path: Path) -> str:
    return (f"The settings file {path} is not valid JSON at line 2, column 16 (expecting property name "
            "enclosed in double quotes); fix it, or delete it and run `dub integrations install resolve` again.")


def test_malformed_settings_file_is_one_sentence_from_the_command_line(tmp_path):
    import subprocess

    config_path = tmp_path / "dub_resolve.json"
    config_path.write_text(BROKEN_CONFIG)
    source = tmp_path / "clip.mp4"
    source.write_bytes(b"never read")
    env = {**os.environ, "DUB_RESOLVE_CONFIG": str(config_path)}
    proc = subprocess.run([sys.executable, str(Path(dr.__file__)), str(source)], capture_output=True, text=True,
                          env=env, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2
    assert proc.stdout == broken_config_sentence(config_path) + "\n"
    assert proc.stderr == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "dub_resolve.json"]


def test_malformed_settings_file_is_one_sentence_from_the_resolve_menu(tmp_path, capsys):
    """The installed copy, run the way Resolve's menu does: it says what is wrong with the
    settings instead of failing to find the bridge or raising."""
    import runpy

    from integrations.install import install

    scripts = tmp_path / "Utility"
    installed = install("resolve", scripts)
    config_path = scripts / "dub_resolve.json"
    config_path.write_text(BROKEN_CONFIG)
    resolve, timeline, _, _ = make_setup(tmp_path, "25")
    capsys.readouterr()
    runpy.run_path(str(installed), init_globals={"resolve": resolve}, run_name="__resolve_menu__")
    assert capsys.readouterr().out == broken_config_sentence(config_path) + "\n"
    assert timeline.GetTrackCount("audio") == 1


@pytest.mark.parametrize("text, said", [
    ("[1, 2]", "does not hold a JSON object of settings"),
    (b"\xff\xfe{", "cannot be read"),
])
def test_unusable_settings_file_is_one_sentence(tmp_path, monkeypatch, capsys, text, said):
    config_path = tmp_path / "dub_resolve.json"
    config_path.write_bytes(text.encode() if isinstance(text, str) else text)
    monkeypatch.setenv("DUB_RESOLVE_CONFIG", str(config_path))
    assert dr.main([str(tmp_path / "clip.mp4")]) == 2
    out = capsys.readouterr().out
    assert out.startswith(f"The settings file {config_path} {said}") and out.count("\n") == 1
    assert out.endswith("; fix it, or delete it and run `dub integrations install resolve` again.\n")


def test_missing_dub_command_is_one_sentence(tmp_path, monkeypatch, capsys):
    _, _, _, source = make_setup(tmp_path, "24")
    config_path = tmp_path / "dub_resolve.json"
    config_path.write_text(json.dumps({"dub": ["/nonexistent/dub"]}))
    monkeypatch.setattr(rb, "connect", lambda resolve=None: None)
    monkeypatch.setenv("DUB_RESOLVE_CONFIG", str(config_path))
    assert dr.main([str(source)]) == 2
    assert capsys.readouterr().out == (
        "The dub command /nonexistent/dub could not be started (No such file or directory); set \"dub\" in "
        "dub_resolve.json or run `dub integrations install resolve` again.\n")
    assert not (source.parent / "clip_dub").exists()


NOTICE = "score backend: no CUDA GPU is available, so the orchestral score engine writes this dub."


def test_notice_is_described_in_words():
    assert rb.describe({"event": "notice", "message": NOTICE}) == f"dub: {NOTICE}"
    assert rb.describe({"event": "notice", "message": ""}) == "dub: working"


def test_dub_notices_are_printed(tmp_path, monkeypatch, capsys):
    _, _, config, source = make_setup(tmp_path, "24", notice=NOTICE)
    config_path = tmp_path / "dub_resolve.json"
    config_path.write_text(json.dumps(config))
    monkeypatch.setattr(rb, "connect", lambda resolve=None: None)
    monkeypatch.setenv("DUB_RESOLVE_CONFIG", str(config_path))
    assert dr.main([str(source)]) == 0
    assert f"dub: {NOTICE}" in capsys.readouterr().out.splitlines()


def test_progress_window_prints_dub_notices(tmp_path, capsys):
    resolve, _, config, _ = make_setup(tmp_path, "25", notice=NOTICE)
    window, _ = window_setup()
    capsys.readouterr()
    dr.dub_into_timeline(resolve, config, window)
    assert capsys.readouterr().out.splitlines() == [f"dub: {NOTICE}"]


@pytest.mark.parametrize("setting, flag", [(None, False), (False, False), (True, True), ("yes", True)])
def test_keep_original_setting_reaches_dub_and_its_notice_names_the_setting(tmp_path, setting, flag):
    """dub says how to keep the source's sound by its command-line flag, which the script passes
    from `"keep_original": true` in dub_resolve.json; the user is told about that setting instead."""
    resolve, _, config, source = make_setup(tmp_path, "25", source_has_audio=True)
    if setting is not None:
        config["keep_original"] = setting
    assert ("--keep-original" in dr.build_args(config, source, tmp_path / "clip_dub")) is flag
    events = []
    dr.dub_into_timeline(resolve, config, runner(events.append))
    said = [rb.describe(e) for e in events if e.get("event") == "notice"]
    assert said == ([] if flag else [
        "dub: the source's audio track is not in the output, only the dub; "
        'set "keep_original": true in dub_resolve.json to keep it after the dub'])


@pytest.mark.parametrize("system, expected", [
    ("Linux", "/home/ed/.local/share/DaVinciResolve/Fusion/Scripts/Utility"),
    ("Darwin", "/home/ed/Library/Application Support/Blackmagic Design/DaVinci Resolve/Fusion/Scripts/Utility"),
    ("Windows", "/appdata/Blackmagic Design/DaVinci Resolve/Support/Fusion/Scripts/Utility"),
])
def test_resolve_scripts_folder_per_os(system, expected):
    from integrations.install import resolve_scripts_dir

    found = resolve_scripts_dir(system, home=Path("/home/ed"), environ={"APPDATA": "/appdata"})
    assert found.as_posix() == expected


def test_installed_launcher_runs_from_resolve_menu(tmp_path):
    """Install into a scripts folder, then run the copy the way Resolve's menu does: a fresh
    namespace with `resolve` injected, far from the package."""
    import runpy

    from integrations.install import install

    scripts = tmp_path / "Fusion" / "Scripts" / "Utility"
    installed = install("resolve", scripts)
    assert installed == scripts / "Dub Shot Audio.py"
    assert installed.read_text() == Path(dr.__file__).read_text()
    config = json.loads((scripts / "dub_resolve.json").read_text())
    assert Path(config["bridge_dir"], "resolve_bridge.py").is_file()
    assert Path(config["dub"][0]).name in ("dub", "python", "python3") or config["dub"][-1] == "dubber.cli"
    resolve, timeline, fake_config, _ = make_setup(tmp_path, "25")
    (scripts / "dub_resolve.json").write_text(json.dumps({**fake_config, "bridge_dir": config["bridge_dir"]}))
    runpy.run_path(str(installed), init_globals={"resolve": resolve}, run_name="__resolve_menu__")
    items = audio_items(timeline, 2)
    assert [i.GetStart() for i in items] == [90000 + o for o in EXPECTED_RECORD_OFFSETS]


def test_unknown_integration_is_one_sentence():
    from integrations.install import IntegrationError, install

    with pytest.raises(IntegrationError, match="^Unknown integration 'premiere'; choose one of: resolve, blender.$"):
        install("premiere")


class FakeUIManager:
    """Fusion's UIManager, only the calls listed under "ui" in api_surface.json."""

    def VGroup(self, children):
        return children

    def Label(self, props):
        return SimpleNamespace(**props)

    def Button(self, props):
        return SimpleNamespace(**props)


class FakeEvents:
    def __getattr__(self, name):
        handlers = SimpleNamespace()
        object.__setattr__(self, name, handlers)
        return handlers


class FakeWindow:
    def __init__(self, items):
        self.items, self.On, self.shown = {i.ID: i for i in items}, FakeEvents(), None
        self.texts = []

    def Find(self, name):
        return self.items[name]

    def Show(self):
        self.shown = True

    def Hide(self):
        self.shown = False


class FakeDispatcher:
    def __init__(self, ui):
        self.exit = threading.Event()

    def AddWindow(self, props, items):
        self.window = FakeWindow(items)
        return self.window

    def RunLoop(self):
        assert self.exit.wait(30), "ExitLoop never came"

    def ExitLoop(self):
        self.exit.set()


def window_setup():
    dispatchers = []
    bmd = SimpleNamespace(UIDispatcher=lambda ui: dispatchers.append(FakeDispatcher(ui)) or dispatchers[-1])
    return dr.ProgressWindow(SimpleNamespace(UIManager=FakeUIManager()), bmd), dispatchers


def test_progress_window_shows_stages_and_returns_outputs(tmp_path):
    resolve, timeline, config, _ = make_setup(tmp_path, "25")
    window, dispatchers = window_setup()
    message = dr.dub_into_timeline(resolve, config, window)
    assert message == "Placed 6 dub clips on 2 new audio track(s)."
    status = dispatchers[0].window.Find("Status")
    assert status.Text == "dub: finished" and dispatchers[0].window.shown is False


def test_progress_window_cancel_button_kills_dub(tmp_path):
    resolve, timeline, config, _ = make_setup(tmp_path, "25", sleep_s=5)
    window, dispatchers = window_setup()
    clicker = threading.Timer(0.5, lambda: dispatchers[0].window.On.Cancel.Clicked(None))
    clicker.start()
    began = time.monotonic()
    with pytest.raises(rb.DubScriptError, match="cancelled"):
        dr.dub_into_timeline(resolve, config, window)
    assert time.monotonic() - began < 4 and timeline.GetTrackCount("audio") == 1
