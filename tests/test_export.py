"""Exports: the manifest, stems, SRT captions and OTIO timelines, export_all's outputs and file
permissions, how timelines name their media, a kept original beside the ducked bed, and muted
shots. FCPXML is in test_export_fcpxml.py, start timecodes in test_export_timecode.py."""
from __future__ import annotations

import json
import os
import stat
from fractions import Fraction
from pathlib import Path

import numpy as np
import opentimelineio as otio
import pytest
import soundfile

from dubber.errors import OutputError
from dubber.export.deliverables import ExportInputs, ExportOptions, ExportPaths, export_all, write_otio, write_srt
from dubber.plan import PlanOptions, make_plan
from dubber.export.srt import format_srt_time
from dubber.export.timeline import TimelineMedia, TimelineOptions, build_timeline
from dubber.types import MANIFEST_SCHEMA, DubPlan
from tests.export_helpers import (HOUR_AT_NTSC, NTSC, SR, _analysis, _fcpxml_root, _kept_original_run, _seconds,
                                  _with_timecode)
from vision.types import VideoAnalysis


def test_srt_times_are_exact_for_ntsc_frames(tmp_path, ntsc_run):
    path = write_srt(tmp_path / "c.srt", ntsc_run.plan, ntsc_run.media)
    blocks = path.read_text().strip().split("\n\n")
    # Frame 24 is at 1.001 s, frame 100 at 4.1708 s, frame 300 (the end of the video) at 12.5125 s:
    # the last caption ends on the millisecond before it, never after the picture.
    assert blocks[0].splitlines() == ["1", "00:00:00,000 --> 00:00:01,001", "Shot 0: the cat chases the mouse"]
    assert blocks[1].splitlines()[1] == "00:00:01,001 --> 00:00:04,171"
    assert blocks[2].splitlines()[1] == "00:00:04,171 --> 00:00:12,512"
    assert format_srt_time(Fraction(3 * 3600 + 25 * 60 + 7) + Fraction(1, 2000)) == "03:25:07,001"
    assert format_srt_time(Fraction(3 * 3600 + 25 * 60 + 7) + Fraction(1, 2000), round_down=True) == "03:25:07,000"


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
