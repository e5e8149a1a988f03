"""Start timecodes in exports: the OTIO, the FCPXML sequence and the stems' Broadcast WAV time
reference all start at the video's timecode, drop-frame included, at rates SMPTE has no count
for, and for variable-rate videos (counted at the nearest standard rate or their frame grid, or
left at zero, with a note, where no rate fits)."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from fractions import Fraction

import opentimelineio as otio
import pytest

from dubber.export.deliverables import ExportInputs, ExportOptions, ExportPaths, export_all, write_fcpxml, write_otio
from dubber.plan import PlanOptions, make_plan
from dubber.export.fcpxml import fcpxml_rate
from dubber.export.timeline import (TimelineMedia, TimelineOptions, build_timeline, media_first_frame, media_start_samples,
                                    timecode_rate)
from tests.dub_cli import bext_time_reference
from tests.export_helpers import (HOUR_AT_NTSC, HOUR_AT_NTSC_SAMPLES, NTSC, SR, _analysis, _fcpxml_root,
                                  _kept_original_run, _media_shown, _seconds, _soundtrack, _with_timecode)


def test_otio_starts_at_the_video_timecode(tmp_path):
    analysis = _with_timecode(_analysis(NTSC, [0, 24, 100, 300]), "01:00:00:00")
    plan = make_plan(analysis, PlanOptions(seed=5))
    files = TimelineMedia(video_path="/videos/cartoon.mp4", mix_path="/tmp/mix.wav",
                          original_path="/videos/cartoon.mp4")
    timeline = otio.adapters.read_from_file(str(write_otio(tmp_path / "t.otio", plan, analysis.media, files)))
    assert otio.opentime.to_timecode(timeline.global_start_time, float(NTSC)) == "01:00:00:00"
    hour = 86_400                                                     # frames in an hour at 24000/1001 NDF
    for track in ("V1", "cartoon original"):                          # the source file's own frame numbers
        clip = next(t for t in timeline.tracks if t.name == track).find_clips()[0]
        assert clip.source_range.start_time.value == hour and clip.source_range.duration.value == 300
        assert clip.media_reference.available_range.start_time.value == hour
        assert clip.range_in_parent().start_time.value == 0
    dub = next(t for t in timeline.tracks if t.name == "cartoon mix")
    for clip, cue in zip(dub.find_clips(), plan.cues):                # placed as before, relative to the start
        assert clip.range_in_parent().start_time.value == cue.start_frame
        assert clip.source_range.start_time.value == cue.start_frame
    # An explicit start still wins; a video without timecode still starts at zero.
    chosen = write_otio(tmp_path / "c.otio", plan, analysis.media, files, TimelineOptions(start_timecode="10:00:00:00"))
    assert otio.opentime.to_timecode(otio.adapters.read_from_file(str(chosen)).global_start_time,
                                     float(NTSC)) == "10:00:00:00"
    plain = _with_timecode(analysis, None)
    timeline = otio.adapters.read_from_file(str(write_otio(tmp_path / "p.otio", plan, plain.media, files)))
    assert timeline.global_start_time.value == 0
    assert timeline.tracks[0].find_clips()[0].source_range.start_time.value == 0


@pytest.mark.parametrize("fps,vfr,timecode,frame,clock", [
    # 23.98 written as 1199/50: 24 frames a second, read as time at 23.976 like any 23.976 tool
    (Fraction(1199, 50), False, "01:00:00:00", 86_400, NTSC),
    (Fraction(15), False, "00:10:00:05", 9_005, Fraction(15)),  # 15 fps, which SMPTE timecode has no count for
])
def test_the_start_timecode_holds_at_a_rate_with_no_smpte_count_of_its_own(tmp_path, fps, vfr, timecode, frame,
                                                                           clock):
    from dubber.export.timeline import frame_timecode

    analysis = _with_timecode(_analysis(fps, [0, 24, 100]), timecode, is_vfr=vfr)
    plan = make_plan(analysis, PlanOptions())
    files = TimelineMedia(video_path="/videos/cartoon.mp4", mix_path="/tmp/mix.wav")
    timeline = otio.adapters.read_from_file(str(write_otio(tmp_path / "t.otio", plan, analysis.media, files)))
    assert timeline.global_start_time.value == frame
    assert timeline.tracks[0].find_clips()[0].source_range.start_time.value == frame
    assert frame_timecode(analysis.media, 0) == timecode
    # The WAVs start at the same moment: the timecode's frames at the rate tools read it, as samples.
    assert media_start_samples(analysis.media, 48_000) == round(frame * 48_000 / clock)


def test_a_23_98_video_s_wavs_start_where_23_976_tools_read_its_timecode(tmp_path):
    """A 1199/50 video counts its timecode 24 frames a second; Final Cut, Resolve and 23.976 DAWs
    read 01:00:10:12 as 86,652 frames of 1001/24000 s. The stems' TimeReference, the FCPXML's
    WAV assets and the .otio's WAV references all start there, with the picture."""
    fps = Fraction(1199, 50)
    analysis = _with_timecode(_analysis(fps, [0, 24, 100, 300]), "01:00:10:12")
    plan = make_plan(analysis, PlanOptions(seed=5))
    run = ExportInputs(analysis=analysis, plan=plan, soundtrack=_soundtrack(plan))
    export_all(ExportPaths.in_folder(tmp_path, "film"), run, ExportOptions(fcpxml=True))
    for name in ("mix", "music", "fx"):
        assert bext_time_reference(tmp_path / "film_stems" / f"{name}.wav") == 173_477_304  # 86652 * 1001/24000 s
    start_s = Fraction(86_652 * 1001, 24_000)
    assets = list(_fcpxml_root(tmp_path / "film.fcpxml").iter("asset"))
    assert assets and {a.get("src").rsplit(".", 1)[1]: _seconds(a.get("start")) for a in assets} == {
        "mp4": start_s, "wav": start_s}
    timeline = otio.adapters.read_from_file(str(tmp_path / "film.otio"))
    firsts = {c.media_reference.available_range.start_time.value for c in timeline.find_clips()}
    assert firsts == {86_652}


def test_a_frame_reads_as_the_editor_s_time_code_drop_frame_included():
    from dubber.export.timeline import frame_timecode

    ntsc_video = _with_timecode(_analysis(Fraction(30000, 1001), [0, 30, 3600]), "01:00:00;00").media
    # a minute of 29.97 drop-frame skips frame numbers 00 and 01: frame 1800 reads 01:01:00;02
    assert [frame_timecode(ntsc_video, f) for f in (0, 362, 1800)] == ["01:00:00;00", "01:00:12;02", "01:01:00;02"]
    plain = _analysis(Fraction(30000, 1001), [0, 30, 3600]).media    # no time code: counted from zero, non-drop
    assert frame_timecode(plain, 1800) == "00:01:00:00"


def test_otio_drop_frame_timecode_at_2997(tmp_path):
    fps = Fraction(30000, 1001)
    analysis = _with_timecode(_analysis(fps, [0, 30, 90]), "00:59:59;28")
    plan = make_plan(analysis, PlanOptions())
    files = TimelineMedia(video_path="/videos/cartoon.mp4", mix_path="/tmp/mix.wav")
    timeline = otio.adapters.read_from_file(str(write_otio(tmp_path / "t.otio", plan, analysis.media, files)))
    # 59:59;28 in drop-frame is frame 107890 (108 frame numbers are skipped per hour).
    assert timeline.global_start_time.value == 107_890
    assert otio.opentime.to_timecode(timeline.global_start_time, float(fps), True) == "00:59:59;28"
    assert timeline.tracks[0].find_clips()[0].source_range.start_time.value == 107_890
    text = write_fcpxml(tmp_path / "t.fcpxml", plan, analysis.media, files).read_text()
    sequence = ET.fromstring(text.split("<!DOCTYPE fcpxml>", 1)[1]).find(".//sequence")
    assert sequence.get("tcFormat") == "DF" and _seconds(sequence.get("tcStart")) == 107_890 / fps


def test_fcpxml_sequence_starts_at_the_video_timecode_with_format_and_sound(tmp_path):
    analysis = _with_timecode(_analysis(NTSC, [0, 24, 100, 300]), "01:00:00:00", width=1920, height=1080)
    plan = make_plan(analysis, PlanOptions(seed=5))
    # The timeline references the dubbed output, whose picture file carries the dub.
    files = TimelineMedia(video_path="/videos/cartoon.dub.mp4", mix_path="/tmp/mix.wav")
    root = _fcpxml_root(write_fcpxml(tmp_path / "t.fcpxml", plan, analysis.media, files))
    hour_s = Fraction(86_400) / NTSC
    sequence = root.find(".//sequence")
    assert _seconds(sequence.get("tcStart")) == hour_s and sequence.get("tcFormat") == "NDF"
    picture = sequence.find("spine")[0]
    assert _seconds(picture.get("offset")) == hour_s and _seconds(picture.get("start")) == hour_s
    lane_clips = [e for e in picture.iter("clip") if e.get("name", "").startswith("shot_")]
    assert [_seconds(e.get("offset")) for e in lane_clips] == [hour_s + c.start_frame / NTSC for c in plan.cues]
    (fmt,) = root.iter("format")
    assert (fmt.get("width"), fmt.get("height"), fmt.get("name")) == ("1920", "1080", "FFVideoFormat1080p2398")
    video_asset = next(a for a in root.iter("asset") if a.get("src", "").endswith("cartoon.dub.mp4"))
    assert video_asset.get("hasAudio") == "1" and video_asset.get("hasVideo") == "1"
    assert _seconds(video_asset.get("start")) == hour_s
    # What each clip plays: its media, read at the time code of the clip's first frame, for its
    # whole length (media an hour before the clip's window would come in empty)
    assert _media_shown(picture) == (hour_s, _seconds(picture.get("duration")))


def test_stems_and_their_timeline_clips_start_at_the_video_timecode(tmp_path, ntsc_run):
    analysis = _with_timecode(ntsc_run.analysis, "01:00:00:00")
    run = ExportInputs(analysis=analysis, plan=ntsc_run.plan, soundtrack=ntsc_run.soundtrack)
    export_all(ExportPaths.in_folder(tmp_path, "film"), run, ExportOptions(fcpxml=True))
    # Broadcast WAVs: a DAW or editor placing sound by timecode puts each at the picture's first frame.
    for name in ("mix", "music", "fx"):
        assert bext_time_reference(tmp_path / "film_stems" / f"{name}.wav") == HOUR_AT_NTSC_SAMPLES
    # The timeline addresses the WAVs by that same start, so editors relink them by timecode.
    timeline = otio.adapters.read_from_file(str(tmp_path / "film.otio"))
    for track in (t for t in timeline.tracks if t.name in ("cartoon mix", "cartoon music", "cartoon fx")):
        for clip, cue in zip(track.find_clips(), ntsc_run.plan.cues):
            assert clip.media_reference.available_range.start_time.value == HOUR_AT_NTSC
            assert clip.source_range.start_time.value == HOUR_AT_NTSC + cue.start_frame
            assert clip.range_in_parent().start_time.value == cue.start_frame   # placed as before
    root = _fcpxml_root(tmp_path / "film.fcpxml")
    hour_s = Fraction(HOUR_AT_NTSC) / NTSC
    for asset in (a for a in root.iter("asset") if a.get("src", "").endswith(".wav")):
        assert _seconds(asset.get("start")) == hour_s
    music = [e for e in root.iter("clip") if e.get("name", "").endswith("_music")]
    assert [_seconds(e.get("start")) for e in music] == [hour_s + c.start_frame / NTSC for c in ntsc_run.plan.cues]
    assert [_seconds(e.get("offset")) for e in music] == [hour_s + c.start_frame / NTSC for c in ntsc_run.plan.cues]
    # each plays its stem from the time code of its first frame, for its whole length
    assert [_media_shown(e) for e in music] == [(hour_s + c.start_frame / NTSC, (c.end_frame - c.start_frame) / NTSC)
                                                for c in ntsc_run.plan.cues]
    # A video without a timecode: WAVs and their clips start at zero, as before.
    export_all(ExportPaths.in_folder(tmp_path, "plain"), ntsc_run)
    assert bext_time_reference(tmp_path / "plain_stems" / "mix.wav") == 0
    plain = otio.adapters.read_from_file(str(tmp_path / "plain.otio"))
    mix = next(t for t in plain.tracks if t.name == "cartoon mix")
    assert [c.source_range.start_time.value for c in mix.find_clips()] == [c.start_frame for c in ntsc_run.plan.cues]
    # Drop-frame 00:59:59;28 at 29.97 is frame 107,890: 3,599.93 s of 48 kHz samples.
    drop_frame = _with_timecode(_analysis(Fraction(30000, 1001), [0, 30, 90]), "00:59:59;28")
    assert media_start_samples(drop_frame.media, SR) == 107_890 * 48_000 * 1001 // 30_000


def test_a_variable_rate_video_counts_its_timecode_at_the_nearest_standard_rate(caplog):
    """A phone's variable-rate video (29.87 fps on average) with a time-of-day timecode: editors
    conform it to 29.97, so the timeline, its picture and the WAVs all start at 01:00:00:00 there."""
    analysis = _with_timecode(_analysis(NTSC, [0, 24, 100, 300]), "01:00:00:00", fps="2987/100", is_vfr=True)
    assert timecode_rate(analysis.media) == Fraction(30000, 1001)
    assert media_first_frame(analysis.media) == 108000            # non-drop 01:00:00:00: 30 frames a TC second
    assert media_start_samples(analysis.media, SR) == round(Fraction(108000 * 1001, 30000) * SR)
    timeline = build_timeline(make_plan(analysis, PlanOptions()), analysis.media,
                              TimelineMedia(video_path="/videos/cartoon.mp4", mix_path="/tmp/mix.wav"))
    assert timeline.global_start_time == otio.opentime.RationalTime(108000, 30000 / 1001)
    picture = timeline.tracks[0].find_clips()[0]
    assert picture.source_range.start_time == otio.opentime.RationalTime(108000, 30000 / 1001)


def test_a_capture_with_dropped_frames_counts_its_timecode_at_its_frame_grid_everywhere(tmp_path):
    """A 29.97 capture that dropped every seventh frame (25.7 fps on average, which no standard
    rate is within 5 % of): every frame still starts on the 29.97 grid, so the .otio, the WAVs'
    TimeReference and the FCPXML all count its 10:00:00:00 at 29.97, 36036 s, not at 25."""
    kept = [n for n in range(350) if n % 7 != 3][:300]
    analysis = _with_timecode(_analysis(NTSC, [0, 24, 100, 300]), "10:00:00:00", is_vfr=True,
                              fps=str(Fraction(300, 1) / (Fraction(kept[-1] + 1) * Fraction(1001, 30000))),
                              time_base="1/30000", frame_pts=[1001 * n for n in kept])
    assert fcpxml_rate(analysis.media) == (Fraction(30000, 1001), None)
    assert timecode_rate(analysis.media) == Fraction(30000, 1001)
    assert media_start_samples(analysis.media, SR) == 36036 * SR
    timeline = build_timeline(make_plan(analysis, PlanOptions()), analysis.media,
                              TimelineMedia(video_path="/videos/cartoon.mp4", mix_path="/tmp/mix.wav"))
    assert timeline.global_start_time.to_seconds() == pytest.approx(36036.0)


def test_a_timecode_the_video_rate_cannot_express_leaves_the_wavs_at_zero_quietly(caplog, tmp_path):
    """A variable-rate video far from any standard rate (17.3 fps on average) has no timecode: the
    timeline warns that it is ignored, once; the WAVs of the same run start at zero without
    repeating it; the run's notes tell the user."""
    analysis = _with_timecode(_analysis(NTSC, [0, 24, 100, 300]), "01:00:00:00", fps="173/10", is_vfr=True)
    assert timecode_rate(analysis.media) == Fraction(173, 10)
    with caplog.at_level("WARNING"):
        assert media_start_samples(analysis.media, SR) == 0
        assert caplog.records == []
        assert media_first_frame(analysis.media) == 0                 # the timeline's reading says why
    assert len(caplog.records) == 1 and "01:00:00:00" in caplog.records[0].getMessage()
    result = export_all(ExportPaths.in_folder(tmp_path, "film"), _kept_original_run(analysis))
    assert [n for n in result.notes if "timecode 01:00:00:00" in n and "17.300 fps" in n]
