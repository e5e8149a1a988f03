"""FCPXML export: clips on their exact frames and read back through OTIO, file names with quotes
and ampersands, only the project in the file with each asset named after its file, an adapter
failure or a rate Final Cut lacks said in a note, and the format's displayed size."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from fractions import Fraction
from pathlib import Path

import opentimelineio as otio
import pytest

from dubber.export.deliverables import ExportInputs, ExportOptions, ExportPaths, export_all, write_fcpxml
from dubber.plan import PlanOptions, make_plan
from dubber.export.timeline import TimelineMedia, TimelineOptions
from tests.export_helpers import (NTSC, _analysis, _fcpxml_root, _kept_original_run, _seconds, _soundtrack,
                                  _with_timecode)


@pytest.mark.parametrize("fps", [NTSC, Fraction(30)])
def test_fcpxml_is_written_and_reads_back_within_a_frame(tmp_path, fps):
    analysis = _analysis(fps, [0, 24, 100, 300], has_audio=False)
    plan = make_plan(analysis, PlanOptions())
    files = TimelineMedia(video_path="/videos/cartoon.mp4", mix_path="/tmp/mix.wav")
    path = write_fcpxml(tmp_path / "t.fcpxml", plan, analysis.media, files)
    text = path.read_text()
    assert text.startswith("<?xml") and "<fcpxml" in text
    expected_duration = {NTSC: "1001/24000s", Fraction(30): "100/3000s"}[fps]
    assert f'frameDuration="{expected_duration}"' in text
    # The file itself: every dub clip sits at its exact start, as a rational number of seconds.
    lane_clips = [e for e in ET.fromstring(text.split("<!DOCTYPE fcpxml>", 1)[1]).iter("clip")
                  if e.get("name", "").startswith("shot_")]
    assert [_seconds(e.get("offset")) for e in lane_clips] == [c.start_frame / fps for c in plan.cues]
    assert [_seconds(e.get("duration")) for e in lane_clips] == [(c.end_frame - c.start_frame) / fps
                                                                   for c in plan.cues]
    # Read back through OTIO: the same clips in order. The adapter's reader truncates frame rates
    # to integers (23.976 reads as 23), so times are compared where the rate is an integer.
    timeline = otio.adapters.read_from_file(str(path), adapter_name="fcpx_xml")
    audio = [t for t in timeline.tracks if t.kind == otio.schema.TrackKind.Audio]
    clips = [c for t in audio for c in t.find_clips()]
    assert [c.name for c in clips] == [f"shot_{c.shot_index:03d}" for c in plan.cues]
    if fps.denominator == 1:
        frame_s = float(1 / fps)
        for clip, cue in zip(clips, plan.cues):
            assert abs(clip.range_in_parent().start_time.to_seconds() - float(cue.start_frame / fps)) < frame_s
            assert abs(clip.source_range.duration.to_seconds() - float((cue.end_frame - cue.start_frame) / fps)) < frame_s


def test_fcpxml_keeps_everyday_file_names_with_quotes_and_ampersands(tmp_path):
    """Editors name files "Tom's cat" and 'say "hi" & run': the FCPXML is written, its clips carry
    those names exactly, and the dub clips still sit on their exact frames."""
    analysis = _analysis(NTSC, [0, 24, 100, 300])
    plan = make_plan(analysis, PlanOptions())
    name = 'Tom\'s "cat" & <co>'
    files = TimelineMedia(video_path=f"/videos/{name}.dub.mp4", mix_path=f"/tmp/{name}.wav",
                          original_path=f"/videos/{name}.mp4")
    options = TimelineOptions(keep_original=True)
    root = _fcpxml_root(write_fcpxml(tmp_path / "t.fcpxml", plan, analysis.media, files, options))
    names = {e.get("name") for e in root.iter() if e.get("name")}
    assert f"{name}.dub" in names and not any(n.startswith("dub-name-") for n in names)
    sources = {a.get("src") for a in root.iter("asset")}
    assert Path(f"/videos/{name}.mp4").as_uri() in sources and Path(f"/videos/{name}.dub.mp4").as_uri() in sources
    lane_clips = [e for e in root.iter("clip") if e.get("name", "").startswith("shot_")]
    assert [_seconds(e.get("offset")) for e in lane_clips] == [c.start_frame / NTSC for c in plan.cues]
    read = otio.adapters.read_from_file(str(tmp_path / "t.fcpxml"), adapter_name="fcpx_xml")
    assert f"{name}.dub" in [c.name for c in read.find_clips()]


def test_fcpxml_holds_only_the_project_and_names_each_asset_after_its_file(tmp_path, ntsc_run):
    """Final Cut imports every clip beside the project into the event as a browser clip: only the
    project is there, every reference still resolves in resources, and relink dialogs show the
    files' own names rather than the first shot's."""
    options = ExportOptions(fcpxml=True, timeline=TimelineOptions(keep_original=True))
    export_all(ExportPaths.in_folder(tmp_path, "film"), _kept_original_run(ntsc_run.analysis), options)
    root = _fcpxml_root(tmp_path / "film.fcpxml")
    assert [child.tag for child in root] == ["resources", "project"]
    assert not [e for e in root.iter("asset-clip")]
    ids = {e.get("id") for e in root.find("resources")}
    refs = {e.get(k) for e in root.iter() for k in ("ref", "format") if e.get(k)}
    assert refs and refs <= ids, refs - ids
    names = sorted(a.get("name") for a in root.iter("asset"))
    assert names == ["cartoon.mp4", "fx.wav", "mix.wav", "music.wav", "original.wav"]
    assert {Path(a.get("src")).name for a in root.iter("asset")} == set(names)
    read = otio.adapters.read_from_file(str(tmp_path / "film.fcpxml"), adapter_name="fcpx_xml")
    assert len([c for c in read.find_clips() if c.name.startswith("shot_")]) == 4 * len(ntsc_run.plan.cues)


def test_every_audio_clip_has_its_role_in_final_cut(tmp_path, ntsc_run):
    """Final Cut sorts sound by role (its audio lanes, solo by role, role-based stem exports);
    without one every clip is Dialogue. The music stem is Music, the effects Effects, the
    production sound (untouched and ducked) Dialogue, and the mix a Music subrole of its own."""
    options = ExportOptions(fcpxml=True, timeline=TimelineOptions(keep_original=True))
    export_all(ExportPaths.in_folder(tmp_path, "film"), _kept_original_run(ntsc_run.analysis), options)
    root = _fcpxml_root(tmp_path / "film.fcpxml")
    file_of = {a.get("id"): Path(a.get("src")).name for a in root.iter("asset")}
    roles = {(file_of[a.get("ref")], a.get("role")) for a in root.iter("audio")}
    assert roles == {("cartoon.mp4", "dialogue"), ("original.wav", "dialogue"), ("music.wav", "music"),
                     ("fx.wav", "effects"), ("mix.wav", "music.mix")}, roles


def test_an_fcpxml_adapter_failure_leaves_the_fcpxml_out_with_a_note_and_the_rest_delivered(tmp_path, monkeypatch):
    from dubber.export import fcpxml as fcpxml_module

    real = fcpxml_module.otio_module()

    class Failing:   # OTIO with an fcpx_xml plug-in that fails, as it does on some timelines
        def __getattr__(self, name):
            return getattr(real, name)

        class adapters:
            @staticmethod
            def write_to_string(timeline, adapter_name):
                if adapter_name == "fcpx_xml":
                    raise AttributeError("'NoneType' object has no attribute 'get'")
                return real.adapters.write_to_string(timeline, adapter_name)

            from_name = staticmethod(real.adapters.from_name)

    monkeypatch.setattr(fcpxml_module, "otio_module", lambda: Failing())
    analysis = _analysis(NTSC, [0, 24, 60])
    plan = make_plan(analysis, PlanOptions())
    run = ExportInputs(analysis=analysis, plan=plan, soundtrack=_soundtrack(plan))
    result = export_all(ExportPaths.in_folder(tmp_path, "film"), run,
                        ExportOptions(fcpxml=True, skip_unsupported_fcpxml=True))
    assert "fcpxml" not in result.outputs and {"otio", "srt", "manifest", "mix"} <= set(result.outputs)
    (note,) = result.notes
    assert note.startswith("no FCPXML written: OTIO's FCPXML adapter failed on this timeline (AttributeError)")
    assert not (tmp_path / "film.fcpxml").exists()


def test_fcpxml_at_a_rate_final_cut_lacks_is_conformed_with_a_note(tmp_path):
    analysis = _analysis(Fraction(15), [0, 30, 60])
    plan = make_plan(analysis, PlanOptions())
    run = ExportInputs(analysis=analysis, plan=plan, soundtrack=_soundtrack(plan))
    result = export_all(ExportPaths.in_folder(tmp_path, "film"), run, ExportOptions(fcpxml=True))
    assert sorted(result.outputs) == ["fcpxml", "manifest", "mix", "otio", "srt", "stem:fx", "stem:music"]
    (note,) = result.notes
    assert "nearest rate Final Cut accepts" in note and "15.000" in note and "\n" not in note
    root = ET.parse(tmp_path / "film.fcpxml").getroot()
    formats = {f.get("id"): f.get("frameDuration") for f in root.iter("format")}
    assert formats[root.find(".//sequence").get("format")] == "1001/24000s"   # the project: 23.976
    picture = next(a for a in root.iter("asset") if a.get("hasVideo") == "1")
    assert formats[picture.get("format")] == "1/15s"                           # the video: its own rate


def test_fcpxml_format_size_is_as_displayed(tmp_path):
    analysis = _with_timecode(_analysis(Fraction(30), [0, 30, 60], has_audio=False), None, rotation=90)
    plan = make_plan(analysis, PlanOptions())
    files = TimelineMedia(video_path="/videos/cartoon.mp4", mix_path="/tmp/mix.wav")
    root = _fcpxml_root(write_fcpxml(tmp_path / "t.fcpxml", plan, analysis.media, files))
    (fmt,) = root.iter("format")
    assert (fmt.get("width"), fmt.get("height")) == ("180", "320")   # a phone clip shot upright
    video_asset = next(a for a in root.iter("asset") if a.get("src", "").endswith("cartoon.mp4"))
    assert video_asset.get("hasAudio") == "0"                         # the silent source itself
    sequence = root.find(".//sequence")
    assert sequence.get("tcStart") == "0s" and sequence.find("spine")[0].get("offset") == "0s"


def test_hit_markers_are_standard_markers_in_final_cut_named_by_kind(tmp_path):
    """A hit is no to-do item: Final Cut reads `completed` on a marker as one (0 unfinished, 1
    done), so the markers carry only their time and name."""
    from vision.types import VisualEvent

    analysis = _analysis(NTSC, [0, 24, 100, 300])
    plan = make_plan(analysis, PlanOptions())
    hits = (VisualEvent(30, "impact", 0.8, 31), VisualEvent(120, "whoosh", 0.6, 140), VisualEvent(200, "run", 0.7, 230))
    files = TimelineMedia(video_path="/videos/cartoon.dub.mp4", mix_path="/tmp/cartoon.mix.wav")
    root = _fcpxml_root(write_fcpxml(tmp_path / "t.fcpxml", plan, analysis.media, files,
                                     TimelineOptions(hit_markers=hits)))
    markers = list(root.iter("marker"))
    assert [m.get("value").split()[0] for m in markers] == ["impact", "whoosh", "run"]
    assert all("completed" not in m.attrib for m in markers)
