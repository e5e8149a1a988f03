"""Exports: manifest, stems, SRT captions, OTIO and FCPXML timelines."""
from __future__ import annotations

import json
import os
import stat
import xml.etree.ElementTree as ET
from fractions import Fraction
from pathlib import Path

import numpy as np
import opentimelineio as otio
import pytest
import soundfile

from dubber.errors import OutputError
from dubber.export.deliverables import (ExportInputs, ExportOptions, ExportPaths, export_all, write_fcpxml, write_otio,
                           write_srt)
from dubber.plan import PlanOptions, make_plan
from dubber.export.srt import format_srt_time
from dubber.export.fcpxml import fcpxml_rate
from dubber.export.timeline import (TimelineMedia, TimelineOptions, build_timeline, media_first_frame, media_start_samples,
                                    timecode_rate)
from dubber.types import MANIFEST_SCHEMA, CueAudio, DubPlan, RenderResult, Soundtrack
from tests.dub_cli import bext_time_reference
from vision.types import MediaInfo, Shot, ShotCaption, VideoAnalysis, VisualEvent

SR = 48000
NTSC = Fraction(24000, 1001)


def _analysis(fps: Fraction, bounds: list[int], has_audio: bool = True) -> VideoAnalysis:
    frames = bounds[-1]
    media = MediaInfo(path="/videos/cartoon.mp4", duration_s=float(frames / fps), fps=fps, frame_count=frames,
                      width=320, height=180, has_audio=has_audio, audio_codec="aac" if has_audio else None)
    shots = tuple(Shot(i, a, b) for i, (a, b) in enumerate(zip(bounds, bounds[1:])))
    captions = tuple(ShotCaption(i, f"Shot {i}: the cat chases the mouse", captioner="test")
                     for i in range(len(shots)))
    events = (VisualEvent(frame=30, kind="impact", strength=0.8, end_frame=31),)
    return VideoAnalysis(media=media, shots=shots, events=events, motion=(0.2,) * frames, captions=captions)


def _soundtrack(plan: DubPlan) -> Soundtrack:
    t = np.arange(plan.total_samples) / SR
    music = (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    fx = np.zeros_like(music)
    fx[::4800] = 0.5
    stems = {"music": np.stack([music, music]), "fx": np.stack([fx, fx])}
    return Soundtrack.from_arrays(sample_rate=SR, mix=stems["music"] + stems["fx"], stems=stems,
                                  integrated_lufs=-16.02, true_peak_dbtp=float("-inf"), settings={"lufs": -16.0})


def _render(plan: DubPlan) -> RenderResult:
    cues = tuple(CueAudio(c.index, c.start_sample, {"music": np.zeros((2, c.num_samples), np.float32),
                                                    "fx": np.zeros((2, c.num_samples), np.float32)})
                 for c in plan.cues)
    return RenderResult(backend="score", sample_rate=SR, cues=cues, model_id=None, notes=("procedural",))


@pytest.fixture()
def ntsc_run():
    analysis = _analysis(NTSC, [0, 24, 100, 300])
    plan = make_plan(analysis, PlanOptions(seed=5))
    return ExportInputs(analysis=analysis, plan=plan, soundtrack=_soundtrack(plan), render=_render(plan),
                        settings={"backend": "score", "fps": NTSC})


def test_srt_times_are_exact_for_ntsc_frames(tmp_path, ntsc_run):
    path = write_srt(tmp_path / "c.srt", ntsc_run.plan, ntsc_run.media)
    blocks = path.read_text().strip().split("\n\n")
    # Frame 24 is at 1.001 s, frame 100 at 4.1708 s, frame 300 at 12.5125 s.
    assert blocks[0].splitlines() == ["1", "00:00:00,000 --> 00:00:01,001", "Shot 0: the cat chases the mouse"]
    assert blocks[1].splitlines()[1] == "00:00:01,001 --> 00:00:04,171"
    assert blocks[2].splitlines()[1] == "00:00:04,171 --> 00:00:12,513"
    assert format_srt_time(Fraction(3 * 3600 + 25 * 60 + 7) + Fraction(1, 2000)) == "03:25:07,001"


def test_srt_joins_parts_of_a_split_shot(tmp_path):
    analysis = _analysis(Fraction(30), [0, 1200, 1260])       # a 40 s shot becomes two cues
    plan = make_plan(analysis, PlanOptions())
    assert len(plan.cues) == 3
    text = write_srt(tmp_path / "c.srt", plan, analysis.media).read_text()
    assert "00:00:00,000 --> 00:00:40,000" in text and text.count("-->") == 2


def test_manifest_records_the_run(tmp_path, ntsc_run):
    result = export_all(ExportPaths.in_folder(tmp_path, "cartoon.dub"), ntsc_run, ExportOptions(otio=False),
                        extra_outputs={"video": tmp_path / "cartoon.dub.mp4"})
    manifest_path = tmp_path / "cartoon.dub.dub.json"
    assert list(result.outputs.items())[-1] == ("manifest", manifest_path.resolve())
    assert result.outputs["video"] == tmp_path / "cartoon.dub.mp4" and result.notes == ()
    data = json.loads(manifest_path.read_text())
    assert data["schema"] == MANIFEST_SCHEMA
    assert data["tool"]["name"] == "dubber" and data["tool"]["version"]
    assert data["media"]["fps"] == "24000/1001" and data["media"]["frame_count"] == 300
    assert DubPlan.from_dict(data["plan"]) == ntsc_run.plan
    assert VideoAnalysis.from_dict(data["analysis"]).shots == ntsc_run.analysis.shots
    assert data["analysis"]["events"][0]["kind"] == "impact"
    assert data["render"]["backend"] == "score" and data["render"]["stems"] == ["fx", "music"]
    assert "model_id" in data["render"] and "model_revision" in data["render"]
    assert data["seeds"]["cues"] == [c.seed for c in ntsc_run.plan.cues]
    assert data["loudness"]["integrated_lufs"] == -16.02
    assert data["loudness"]["true_peak_dbtp"] is None        # -inf is not JSON
    assert data["outputs"]["video"] == "cartoon.dub.mp4"     # relative to the manifest
    assert data["outputs"]["srt"] == "cartoon.dub.srt"
    assert data["outputs"]["stem:fx"] == "cartoon.dub_stems/fx.wav"
    assert data["settings"]["fps"] == "24000/1001"
    assert data["created"].endswith("+00:00")


def test_stems_are_full_length_24_bit_wavs(tmp_path, ntsc_run):
    result = export_all(ExportPaths(stems_dir=tmp_path / "c_stems"), ntsc_run)
    assert sorted(result.outputs) == ["mix", "stem:fx", "stem:music"]
    for name in ("mix", "music", "fx"):
        info = soundfile.info(str(tmp_path / "c_stems" / f"{name}.wav"))
        assert (info.frames, info.samplerate, info.channels, info.subtype) == (600600, SR, 2, "PCM_24")
    music, _ = soundfile.read(str(tmp_path / "c_stems" / "music.wav"), dtype="float32")
    np.testing.assert_allclose(music.T, ntsc_run.soundtrack.stems["music"], atol=2e-7)
    assert not list(tmp_path.rglob("*.partial*"))


def test_stems_folder_is_made_with_its_parents_and_mix_only_on_request(tmp_path, ntsc_run):
    folder = tmp_path / "deliveries" / "stems"
    result = export_all(ExportPaths(stems_dir=folder), ntsc_run, ExportOptions(stems=False))
    assert result.outputs == {"mix": (folder / "mix.wav").resolve()}
    assert sorted(p.name for p in folder.iterdir()) == ["mix.wav"]


def test_otio_round_trip_places_each_cue_on_its_frames(tmp_path, ntsc_run):
    plan = ntsc_run.plan
    files = TimelineMedia(video_path="/videos/cartoon.mp4", mix_path=str(tmp_path / "mix.wav"),
                          original_path="/videos/cartoon.mp4")
    path = write_otio(tmp_path / "t.otio", plan, ntsc_run.media, files)
    timeline = otio.adapters.read_from_file(str(path))
    # Named after the input; the original sound is there to bring up, but off; no stems: the mix plays.
    assert timeline.name == "cartoon dub"
    assert [(t.name, t.enabled) for t in timeline.tracks] == [("V1", True), ("cartoon original", False),
                                                              ("cartoon mix", True)]
    assert timeline.global_start_time.value == 0
    dub = timeline.tracks[2]
    clips = list(dub.find_clips())
    assert len(clips) == len(plan.cues)
    for clip, cue in zip(clips, plan.cues):
        placed = clip.range_in_parent()
        assert placed.start_time.rate == pytest.approx(float(NTSC))
        assert placed.start_time.value == cue.start_frame
        assert placed.duration.value == cue.end_frame - cue.start_frame
        assert clip.source_range.start_time.value == cue.start_frame     # offset into the full-length mix
        assert clip.media_reference.target_url == str((tmp_path / "mix.wav").resolve())   # a plain path, as Resolve reads
        assert clip.metadata["dub"]["caption"] == cue.caption
        assert clip.metadata["dub"]["seed"] == cue.seed and clip.metadata["dub"]["shot"] == cue.shot_index
    video = timeline.tracks[0].find_clips()[0]
    assert video.media_reference.available_range.duration.value == 300


def test_otio_start_timecode_option(tmp_path, ntsc_run):
    files = TimelineMedia(video_path="/videos/cartoon.mp4", mix_path="/tmp/mix.wav")
    options = TimelineOptions(start_timecode="01:00:00:00")
    timeline = otio.adapters.read_from_file(str(write_otio(tmp_path / "t.otio", ntsc_run.plan, ntsc_run.media,
                                                           files, options)))
    assert otio.opentime.to_timecode(timeline.global_start_time, float(NTSC)) == "01:00:00:00"
    with pytest.raises(OutputError):
        write_otio(tmp_path / "u.otio", ntsc_run.plan, ntsc_run.media, files, TimelineOptions(start_timecode="1h"))


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


def _seconds(text: str) -> Fraction:
    return Fraction(text.removesuffix("s")) if text != "0s" else Fraction(0)


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


def test_the_otio_names_its_media_by_plain_path_and_the_fcpxml_by_url(tmp_path, ntsc_run):
    """DaVinci Resolve refuses an .otio whose media are file:// URLs (percent-encoded, they are not
    even the file's name); Final Cut needs URLs. A folder name with a space and accents shows both."""
    from urllib.parse import urlsplit
    from urllib.request import url2pathname

    folder = tmp_path / "Épisode 1 (final)"
    folder.mkdir()
    export_all(ExportPaths.in_folder(folder, "film"), ntsc_run, ExportOptions(fcpxml=True))
    timeline = otio.adapters.read_from_file(str(folder / "film.otio"))
    targets = {c.media_reference.target_url for c in timeline.find_clips()}
    written = {str((folder / "film_stems" / f"{name}.wav").resolve()) for name in ("mix", "music", "fx")}
    assert written <= targets and all(Path(t).is_absolute() and "://" not in t for t in targets), targets
    assert "Épisode 1 (final)" in (folder / "film.otio").read_text(encoding="utf-8")
    sources = {e.get("src") for e in _fcpxml_root(folder / "film.fcpxml").iter() if e.get("src")}
    assert all(src.startswith("file:///") and " " not in src for src in sources), sources
    assert {url2pathname(urlsplit(src).path) for src in sources} == targets   # the same files


def test_moving_a_finished_dub_rewrites_each_reference_in_its_own_form(tmp_path):
    from dubber.export.timeline import Move, moved_target

    old, new = tmp_path / "staging" / "ep 1", tmp_path / "output" / "ep 1"
    moves = (Move.of(old, new),)
    wav = old.resolve() / "stems" / "fx.wav"
    assert moved_target(str(wav), moves) == str(new.resolve() / "stems" / "fx.wav")
    assert moved_target(wav.as_uri(), moves) == (new.resolve() / "stems" / "fx.wav").as_uri()
    for elsewhere in (str(tmp_path / "other" / "fx.wav"), "fx.wav", "https://example.com/fx.wav", ""):
        assert moved_target(elsewhere, moves) is None


def test_export_all_writes_everything_requested(tmp_path, ntsc_run):
    options = ExportOptions(fcpxml=True, timeline=TimelineOptions(keep_original=True))
    result = export_all(ExportPaths.in_folder(tmp_path, "film"), ntsc_run, options)
    paths = list(result.outputs.values())
    assert list(result.outputs) == ["mix", "stem:music", "stem:fx", "srt", "otio", "fcpxml", "manifest"]
    names = sorted(p.relative_to(tmp_path).as_posix() for p in paths)
    assert names == ["film.dub.json", "film.fcpxml", "film.otio", "film.srt", "film_stems/fx.wav",
                     "film_stems/mix.wav", "film_stems/music.wav"]
    assert all(p.is_file() for p in paths)
    timeline = otio.adapters.read_from_file(str(tmp_path / "film.otio"))
    tracks = {t.name: t for t in timeline.tracks}
    assert list(tracks) == ["V1", "cartoon original", "cartoon music", "cartoon fx", "cartoon mix"]
    # Stems to rebalance, the original kept as asked; the mix (their sum) is there but off.
    assert [t.enabled for t in tracks.values()] == [True, True, True, True, False]
    fx_clip = tracks["cartoon fx"].find_clips()[1]
    assert fx_clip.media_reference.target_url == str((tmp_path / "film_stems" / "fx.wav").resolve())
    assert fx_clip.source_range.start_time.value == ntsc_run.plan.cues[1].start_frame
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".")]
    with pytest.raises(OutputError):
        export_all(ExportPaths.in_folder(tmp_path / "missing", "film"), ntsc_run)
    assert not (tmp_path / "missing").exists()             # refused before any folder was made
    with pytest.raises(ValueError):
        no_audio = ExportInputs(analysis=ntsc_run.analysis, plan=ntsc_run.plan)
        export_all(ExportPaths.in_folder(tmp_path, "film"), no_audio)
    with pytest.raises(ValueError):                        # a timeline needs the mix WAV it references
        export_all(ExportPaths(timeline_stem=tmp_path / "film"), ntsc_run)


def test_exported_files_get_the_permissions_of_any_new_file(tmp_path, ntsc_run):
    old_umask = os.umask(0o002)   # a shared-workstation umask: group may write too
    try:
        result = export_all(ExportPaths.in_folder(tmp_path, "film"), ntsc_run, ExportOptions(otio=False))
        paths = list(result.outputs.values())
        (tmp_path / "plain.txt").write_text("x")
    finally:
        os.umask(old_umask)
    plain = stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode)
    modes = {p.relative_to(tmp_path).as_posix(): oct(stat.S_IMODE(p.stat().st_mode)) for p in paths}
    assert plain == 0o664
    assert modes == {name: oct(plain) for name in ("film_stems/mix.wav", "film_stems/music.wav",
                                                   "film_stems/fx.wav", "film.srt", "film.dub.json")}


def _with_timecode(analysis: VideoAnalysis, timecode: str | None, **media_changes) -> VideoAnalysis:
    media = MediaInfo.from_dict({**analysis.media.to_dict(), "start_timecode": timecode, **media_changes})
    return VideoAnalysis(media=media, shots=analysis.shots, events=analysis.events, motion=analysis.motion,
                         captions=analysis.captions)


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


def _fcpxml_root(path) -> ET.Element:
    return ET.fromstring(path.read_text().split("<!DOCTYPE fcpxml>", 1)[1])


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


def _media_shown(clip: ET.Element) -> tuple[Fraction, Fraction]:
    """(media time at the clip's first frame, how long the media covers the clip's window) of an
    FCPXML `clip` holding a `video`, or a `gap` carrying an `audio`."""
    start, duration = _seconds(clip.get("start", "0s")), _seconds(clip.get("duration"))
    holder = next(child for child in clip if child.tag in ("video", "gap"))
    media = holder if holder.tag == "video" else holder.find("audio")
    begins = _seconds(holder.get("offset", "0s")) + (_seconds(media.get("offset", "0s")) if media is not holder else 0)
    ends = begins + _seconds(media.get("duration"))
    covered = max(Fraction(0), min(start + duration, ends) - max(start, begins))
    return start - begins + _seconds(media.get("start", "0s")), covered


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


HOUR_AT_NTSC = 86_400                      # frames of 01:00:00:00 at 24000/1001 fps (non-drop)
HOUR_AT_NTSC_SAMPLES = HOUR_AT_NTSC * 2002  # the same instant in 48 kHz samples (2,002 per frame)


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


def _kept_original_run(analysis: VideoAnalysis) -> ExportInputs:
    """A run with --keep-original: the soundtrack's stems hold the source's sound as mixed (ducked)."""
    plan = make_plan(analysis, PlanOptions(seed=5))
    stems = dict(_soundtrack(plan).stems)
    stems["original"] = 0.25 * stems["music"]
    soundtrack = Soundtrack.from_arrays(sample_rate=SR, mix=sum(stems.values()), stems=stems,
                                        integrated_lufs=-16.0, true_peak_dbtp=-1.0)
    return ExportInputs(analysis=analysis, plan=plan, soundtrack=soundtrack)


def test_a_kept_original_is_laid_in_clean_beside_the_ducked_bed_of_the_mix(tmp_path):
    run = _kept_original_run(_with_timecode(_analysis(NTSC, [0, 24, 100, 300]), "01:00:00:00"))
    options = ExportOptions(fcpxml=True, timeline=TimelineOptions(keep_original=True))
    export_all(ExportPaths.in_folder(tmp_path, "film"), run, options)
    timeline = otio.adapters.read_from_file(str(tmp_path / "film.otio"))
    # Played as delivered (stems that sum to the mix, the bed among them); the untouched production
    # sound is there, off, for an editor who re-balances from it (on with the bed, it would play twice).
    assert [(t.name, t.enabled) for t in timeline.tracks] == [
        ("V1", True), ("cartoon original", False), ("cartoon original ducked", True), ("cartoon music", True),
        ("cartoon fx", True), ("cartoon mix", False)]
    tracks = {t.name: t for t in timeline.tracks}
    (clean,) = tracks["cartoon original"].find_clips()
    (picture,) = tracks["V1"].find_clips()
    assert clean.media_reference.target_url == str(Path("/videos/cartoon.mp4").resolve())   # the source file
    assert clean.source_range == picture.source_range                  # its whole length, from its own timecode
    assert clean.source_range.start_time.value == HOUR_AT_NTSC and clean.source_range.duration.value == 300
    assert clean.range_in_parent() == picture.range_in_parent()        # frame for frame under the picture
    bed = list(tracks["cartoon original ducked"].find_clips())
    bed_wav = str((tmp_path / "film_stems" / "original.wav").resolve())
    assert {c.media_reference.target_url for c in bed} == {bed_wav}
    root = _fcpxml_root(tmp_path / "film.fcpxml")
    enabled = {e.get("name"): e.get("enabled") != "0" for e in root.iter("clip")}
    assert enabled["original"] is False and enabled["shot_000_original"] is True and enabled["shot_000"] is False
    source = next(a for a in root.iter("asset") if a.get("src") == Path(clean.media_reference.target_url).as_uri())
    assert source.get("hasAudio") == "1" and _seconds(source.get("start")) == Fraction(HOUR_AT_NTSC) / NTSC
    # The mix alone (no stem tracks) already holds the original: the untouched track stays off.
    mix_only = write_otio(tmp_path / "mix.otio", run.plan, run.media,
                          TimelineMedia(video_path="/videos/cartoon.dub.mp4", mix_path=str(tmp_path / "m.wav"),
                                        stem_paths={"original": str(tmp_path / "o.wav")},
                                        original_path="/videos/cartoon.mp4"),
                          TimelineOptions(keep_original=True, stem_tracks=False))
    mix_only_timeline = otio.adapters.read_from_file(str(mix_only))
    assert [(t.name, t.enabled) for t in mix_only_timeline.tracks] == [
        ("V1", True), ("cartoon original", False), ("cartoon mix", True)]


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


def test_a_muted_shot_is_switched_off_in_both_timelines_and_says_so(tmp_path, ntsc_run):
    """The run's muted cues (its options, as the manifest records them) show in the timelines: the
    dub's clips of that shot are disabled and marked, the ducked original keeps playing there."""
    run = _kept_original_run(_analysis(NTSC, [0, 24, 100, 300]))
    run = ExportInputs(analysis=run.analysis, plan=run.plan, soundtrack=run.soundtrack,
                       settings={"backend": "score", "muted_cues": [1]})
    export_all(ExportPaths.in_folder(tmp_path, "film"), run,
               ExportOptions(fcpxml=True, timeline=TimelineOptions(keep_original=True)))

    timeline = otio.adapters.read_from_file(str(tmp_path / "film.otio"))
    playing = {t.name: [c.enabled for c in t.find_clips()] for t in timeline.tracks if t.name != "V1"}
    assert playing["cartoon music"] == playing["cartoon fx"] == [True, False, True]
    assert playing["cartoon original ducked"] == [True, True, True]   # the production sound comes up there
    assert playing["cartoon mix"] == [True, True, True]                # the mix holds that sound too
    muted = {c.name: c.metadata["dub"]["muted"] for c in timeline.find_clips() if "dub" in c.metadata}
    assert {name for name, flag in muted.items() if flag} == {"shot_001", "shot_001_music", "shot_001_fx",
                                                              "shot_001_original"}
    root = _fcpxml_root(tmp_path / "film.fcpxml")
    off = {e.get("name") for e in root.iter("clip") if e.get("enabled") == "0"}
    assert {"shot_001_music", "shot_001_fx"} <= off and not {"shot_000_music", "shot_001_original"} & off
    noted = {e.get("name") for e in root.iter("clip") if (n := e.find("note")) is not None and "muted" in n.text}
    assert {"shot_001_music", "shot_001_fx", "shot_001_original"} <= noted and "shot_000_music" not in noted
    # Without the original in the mix, a muted shot's mix clip is silent and switched off too.
    mix_only = build_timeline(run.plan, run.media, TimelineMedia(video_path="/v.mp4", mix_path="/m.wav"),
                              TimelineOptions(stem_tracks=False, muted_cues=(1,)))
    assert [c.enabled for c in mix_only.tracks[-1].find_clips()] == [True, False, True]
