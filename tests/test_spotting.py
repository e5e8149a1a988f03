"""Hit lists: frames a person spots for the soundtrack to hit, read from text, CSV or JSON, placed
on the video's frames (seconds, frame numbers, timecodes with the file's own start and
drop-frame), laid over the detected events, and heard in the rendered mix on their frames."""
from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from dub_cli import dub_env, ffmpeg, read_wav, run_dub
from dubber import sound_measures as sm
from dubber.errors import InputError
from dubber.spotting import frame_of, read_hit_list, spot
from vision.types import MediaInfo, Shot, VideoAnalysis, VisualEvent

FILM = MediaInfo(path="v.mp4", duration_s=40.0, fps=Fraction(24), frame_count=960, width=64, height=36)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_hit_list_reads_seconds_frames_and_timecodes(tmp_path):
    path = _write(tmp_path, "hits.csv", "time,kind,strength\n"
                                        "# spotted from the cut\n"
                                        "12.5\n"
                                        "300f, landing, 0.9\n"
                                        "\n"
                                        "00:00:20:12\twhoosh\t0.5\t1.0   # a swing\n"
                                        "19.083 splash\n")
    hits = read_hit_list(path)
    assert [(h.kind, h.strength) for h in hits] == [("impact", 0.8), ("landing", 0.9), ("whoosh", 0.5),
                                                    ("splash", 0.8)]
    # 12.5 s is frame 300 at 24 fps; 00:00:20:12 is 20 * 24 + 12; 19.083 s rounds to frame 458 (19.0833 s)
    assert [frame_of(h, FILM) for h in hits] == [300, 300, 492, 458]


def test_timecodes_count_from_the_files_own_start_and_drop_frames(tmp_path):
    ntsc = MediaInfo(path="v.mov", duration_s=120.0, fps=Fraction(30000, 1001), frame_count=3597, width=64,
                     height=36, start_timecode="00:00:00;00")
    hits = read_hit_list(_write(tmp_path, "ntsc.txt", "00:01:00;02\n00:00:59;29\n"))
    # frames 00 and 01 of minute one are not counted in drop-frame: 00:01:00;02 follows 00:00:59;29
    assert [frame_of(h, ntsc) for h in hits] == [1800, 1799]
    tape = MediaInfo(path="v.mxf", duration_s=40.0, fps=Fraction(24), frame_count=960, width=64, height=36,
                     start_timecode="01:00:00:00")
    assert frame_of(read_hit_list(_write(tmp_path, "tape.txt", "01:00:10:00\n"))[0], tape) == 240


def test_a_json_hit_list(tmp_path):
    listed = _write(tmp_path, "a.json", json.dumps([{"t": 1.0}, {"frame": 48, "kind": "flash", "strength": 0.3}]))
    wrapped = _write(tmp_path, "b.json", json.dumps({"hits": [{"timecode": "00:00:03:00", "kind": "run",
                                                               "length_s": 2.0}]}))
    assert [(frame_of(h, FILM), h.kind) for h in read_hit_list(listed)] == [(24, "impact"), (48, "flash")]
    (run,) = read_hit_list(wrapped)
    assert (frame_of(run, FILM), run.length_s) == (72, 2.0)


@pytest.mark.parametrize("text, words", [
    ("12.5, punch\n", "unknown kind 'punch'"),
    ("12,5\n", "bad.txt:1: 12,5 reads as time 12 and kind '5'; write seconds with a point (12.5)"),
    ("5.0\nsoon\n", "bad.txt:2: 'soon' is no time"),
    ("3.0, impact, 1.5\n", "strength 1.5 is outside 0..1"),
    ("3.0, impact, 0.5, 1, extra\n", "5 fields"),
    ("# nothing but a comment\n", "holds no hit points"),
])
def test_a_bad_line_is_named_with_its_line_number(tmp_path, text, words):
    path = _write(tmp_path, "bad.txt", text)
    with pytest.raises(InputError) as err:
        read_hit_list(path)
    assert words in str(err.value)
    assert "holds no hit points" in words or "bad.txt:" in str(err.value)


def test_a_hit_past_the_end_of_the_video_is_refused(tmp_path):
    (hit,) = read_hit_list(_write(tmp_path, "late.txt", "41.0\n"))
    with pytest.raises(InputError, match="not on the video, which has frames 0..959"):
        frame_of(hit, FILM)


def _analysis(events):
    return VideoAnalysis(media=FILM, shots=(Shot(0, 0, 960),), events=tuple(events), motion=(0.3,) * 960,
                         captions=())


def test_spotted_hits_join_the_detected_ones_and_win_where_they_meet(tmp_path):
    detected = [VisualEvent(100, "impact", 0.5, 101), VisualEvent(298, "landing", 0.9, 299),
                VisualEvent(600, "whoosh", 0.7, 610)]
    hits = read_hit_list(_write(tmp_path, "h.txt", "300f, impact, 0.6\n500f, whoosh, 0.8, 0.5\n"))
    merged = spot(_analysis(detected), hits)
    assert [(e.frame, e.kind, e.end_frame) for e in merged.events] == [
        (100, "impact", 101), (300, "impact", 301), (500, "whoosh", 512), (600, "whoosh", 610)]
    only = spot(_analysis(detected), hits, only=True)
    assert [(e.frame, e.kind) for e in only.events] == [(300, "impact"), (500, "whoosh")]


def test_two_spotted_hits_of_one_kind_on_one_frame_play_once_and_are_named(tmp_path):
    """12.5 s and 300f are the same frame at 24 fps: one impact plays, the strongest, and the run
    says which frame so the user can move the other. A landing there plays beside it, as detected
    hits of different kinds on one frame do (the studio's hit lists keep both)."""
    from dubber.spotting import shared_frame_note

    hits = read_hit_list(_write(tmp_path, "h.txt", "12.5\n300f, impact, 0.9\n300f, landing, 0.6\n400f\n"))
    spotted = spot(_analysis([]), hits)
    assert [(e.frame, e.kind, e.strength) for e in spotted.events] == [(300, "impact", 0.9), (300, "landing", 0.6),
                                                                       (400, "impact", 0.8)]
    (note,) = shared_frame_note(spotted)
    assert "of one kind falls on frame 300 (12.50 s)" in note and "400" not in note
    kinds = spot(_analysis([]), read_hit_list(_write(tmp_path, "k.txt", "12.5\n300f landing 0.9\n400f\n")))
    assert [(e.frame, e.kind) for e in kinds.events] == [(300, "impact"), (300, "landing"), (400, "impact")]
    assert shared_frame_note(kinds) == []


def test_a_length_shorter_than_a_frame_lasts_that_frame_and_a_one_frame_whoosh_round_trips(tmp_path):
    """The shortest length was 0.04 s: a one-frame whoosh of a 60 fps video (1/60 s) could not be
    written, and 0.04 s lasts two of its frames."""
    sixty = MediaInfo(path="v.mp4", duration_s=4.0, fps=Fraction(60), frame_count=240, width=64, height=36)
    hits = read_hit_list(_write(tmp_path, "h.txt", "100f, whoosh, 0.8, 0.016666666666666666\n"
                                                   "120f, whoosh, 0.8, 0.001\n130f, whoosh, 0.8, 0.05\n"))
    analysis = VideoAnalysis(media=sixty, shots=(Shot(0, 0, 240),), events=(), motion=(0.3,) * 240, captions=())
    assert [(e.frame, e.end_frame) for e in spot(analysis, hits).events] == [(100, 101), (120, 121), (130, 133)]
    with pytest.raises(InputError, match=r"h\.txt:1: the length 0 lasts no time; write seconds above 0"):
        read_hit_list(_write(tmp_path, "h.txt", "100f, whoosh, 0.8, 0\n"))


def test_a_drop_frame_timecode_that_names_no_frame_is_refused_naming_the_frames_either_side(tmp_path):
    """Drop-frame timecode skips frames 00 and 01 (00 to 03 at 59.94) of each minute but every
    tenth; OpenTimelineIO read 00:01:00;00 as a frame before 00:01:00;02, with no word."""
    from dubber.spotting import named_frame

    ntsc = MediaInfo(path="v.mov", duration_s=120.0, fps=Fraction(30000, 1001), frame_count=3597, width=64,
                     height=36, start_timecode="00:00:00;00")
    for label in ("00:01:00;00", "00:01:00;01"):
        (hit,) = read_hit_list(_write(tmp_path, "h.txt", f"{label}, landing\n"))
        with pytest.raises(InputError, match=rf"^h\.txt:1: the timecode {label} names no frame, since drop-frame "
                                             r"timecode skips frames 00 and 01 of each minute but every tenth; write "
                                             r"00:01:00;02, that minute's first frame, or 00:00:59;29, the frame "
                                             r"before it\.$"):
            frame_of(hit, ntsc)
    (tenth,) = read_hit_list(_write(tmp_path, "t.txt", "00:10:00;00\n"))   # every tenth minute keeps them
    assert named_frame(tenth, ntsc) == 17982
    fifty_nine = MediaInfo(path="v.mov", duration_s=120.0, fps=Fraction(60000, 1001), frame_count=7000, width=64,
                           height=36, start_timecode="00:00:00;00")
    (hit,) = read_hit_list(_write(tmp_path, "f.txt", "00:01:00;03\n"))
    with pytest.raises(InputError, match=r"skips frames 00 to 03 of each minute but every tenth; write 00:01:00;04, "
                                         r"that minute's first frame, or 00:00:59;59, the frame before it\.$"):
        frame_of(hit, fifty_nine)
    (hit,) = read_hit_list(_write(tmp_path, "f.txt", "00:01:00;04\n"))
    assert frame_of(hit, fifty_nine) == 3600


def test_a_length_given_for_an_instantaneous_kind_is_named_in_the_notes(tmp_path):
    """An impact lasts no time: its LENGTH was dropped with no word; it still plays, and the run says so."""
    from dubber.spotting import spotting_notes

    hits = read_hit_list(_write(tmp_path, "h.txt", "100f, impact, 0.8, 0.5\n200f whoosh 0.8 0.5\n300f landing\n"))
    spotted = spot(_analysis([]), hits)
    assert [(e.frame, e.kind, e.end_frame) for e in spotted.events] == [(100, "impact", 101), (200, "whoosh", 212),
                                                                        (300, "landing", 301)]
    assert spotting_notes(spotted) == ["the length given at h.txt:1 is not used: only a whoosh, run or shake lasts"]


@pytest.fixture(scope="module")
def still_clip(tmp_path_factory) -> Path:
    """Ten seconds of a still grey picture at 24 fps: nothing on it for a detector to find."""
    path = tmp_path_factory.mktemp("still") / "still.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=gray:s=160x90:r=24:d=10", "-c:v", "libx264", "-pix_fmt", "yuv420p",
           str(path))
    return path


SPOTTED_FRAMES = (41, 103, 150, 199)


def test_the_dub_hits_every_spotted_frame(still_clip, tmp_path):
    """On a picture where nothing moves, the hit list alone says where the blows are: each of its
    frames has an onset in the rendered mix within one frame (measured on the audio), where the
    same dub without the list has one at most by chance; a changed list is not served from the
    cache of the first, and the manifest names the list."""
    hits = _write(tmp_path, "hits.txt", "".join(f"{f}f, impact, 0.9\n" for f in SPOTTED_FRAMES))
    env = dub_env(tmp_path)

    def onsets_near(extra: list[str], name: str) -> list[bool]:
        out = tmp_path / name
        done = run_dub([still_clip, "-o", out / "still.mp4", "--backend", "score", "--stems", out, *extra], env,
                       timeout=240)
        assert done.returncode == 0, done.stderr
        audio, rate = read_wav(out / "still.mix.wav")
        return list(sm.hit_flags(sm.onsets(audio, rate), [f / 24 for f in SPOTTED_FRAMES], tolerance_s=1 / 24))

    assert sum(onsets_near([], "plain")) <= 1
    assert all(onsets_near(["--hits", str(hits)], "spotted"))
    manifest = json.loads((tmp_path / "spotted" / "still.json").read_text())
    assert manifest["settings"]["hits_path"] == str(hits.resolve())
    assert [e["frame"] for e in manifest["analysis"]["events"]] == list(SPOTTED_FRAMES)
    # The list itself is in the manifest: the file it came from may change later.
    assert [(h["frame"], h["kind"], h["strength"]) for h in manifest["analysis"]["settings"]["spotted_hits"]] == [
        (f, "impact", 0.9) for f in SPOTTED_FRAMES]
    moved = _write(tmp_path, "moved.txt", "".join(f"{f + 30}f, impact, 0.9\n" for f in SPOTTED_FRAMES))
    done = run_dub([still_clip, "-o", tmp_path / "moved" / "still.mp4", "--backend", "score", "--hits", moved], env,
                   timeout=240)
    assert done.returncode == 0, done.stderr
    moved_manifest = json.loads((tmp_path / "moved" / "still.json").read_text())
    assert [e["frame"] for e in moved_manifest["analysis"]["events"]] == [f + 30 for f in SPOTTED_FRAMES]


def test_every_spotted_motion_sounds_and_every_marker_stands_on_a_sound(still_clip, tmp_path):
    """Spotted whooshes, the second weak and close behind the first, each sound in the effects stem
    (a composer's thinning of detected motion does not apply to what the editor spotted), and the
    timeline marks exactly the events the manifest says the soundtrack hits."""
    import opentimelineio as otio

    hits = _write(tmp_path, "hits.txt", "1.0, whoosh, 0.5, 1.0\n2.3, whoosh, 0.4, 0.5\n")
    out = tmp_path / "out"
    done = run_dub([still_clip, "-o", out / "still.mp4", "--backend", "score", "--stems", out, "--timeline",
                    "--hits", hits, "--hits-only"], dub_env(tmp_path), timeout=240)
    assert done.returncode == 0, done.stderr
    fx, rate = read_wav(out / "still.fx.wav")
    for start in (1.0, 2.3):
        piece = fx[:, int(start * rate):int((start + 0.3) * rate)]
        assert 20 * np.log10(float(np.sqrt(np.mean(piece ** 2))) + 1e-12) > -50, f"no sound at {start} s"
    manifest = json.loads((out / "still.json").read_text())
    events = [(e["frame"], e["kind"]) for e in manifest["analysis"]["events"]]
    assert events == [(24, "whoosh"), (55, "whoosh")]   # 2.3 s is frame 55.2 at 24 fps
    (picture,) = otio.adapters.read_from_file(str(out / "still.otio")).video_tracks()[0].find_clips()
    assert [m.name.split()[0] for m in picture.markers] == ["whoosh", "whoosh"]


def test_the_captions_tell_the_spotted_hits_and_not_the_dropped_ones(demo_sample, tmp_path):
    """The captions (the subtitles, and the text the audio model reads) speak of what the
    soundtrack hits: a spotted crash is told at its time, a fall a `none` line dropped is not."""
    video, _ = demo_sample
    env = dub_env(tmp_path)
    plain = run_dub([video, "-o", tmp_path / "plain" / "d.mp4", "--backend", "score"], env, timeout=240)
    assert plain.returncode == 0, plain.stderr
    manifest = json.loads((tmp_path / "plain" / "d.json").read_text())
    fall = next(e for e in manifest["analysis"]["events"] if e["kind"] == "landing" and e["frame"] > 150)
    shot = next(s for s in manifest["analysis"]["shots"] if s["start_frame"] <= fall["frame"] < s["end_frame"])
    before = manifest["analysis"]["captions"][shot["index"]]["text"]
    assert "a heavy fall at" in before, before
    hits = _write(tmp_path, "hits.txt", f"2.5, impact\n{fall['frame']}f, none\n")
    spotted = run_dub([video, "-o", tmp_path / "spotted" / "d.mp4", "--backend", "score", "--hits", hits, "--timeline"],
                      env, timeout=240)
    assert spotted.returncode == 0, spotted.stderr
    after = [c["text"] for c in json.loads((tmp_path / "spotted" / "d.json").read_text())["analysis"]["captions"]]
    assert "a heavy fall at" not in after[shot["index"]] and "a crash at 2.5 s" in after[0], after
    subtitles = (tmp_path / "spotted" / "d.srt").read_text()
    assert "a crash at 2.5 s" in subtitles and before.rstrip(".") not in subtitles


@pytest.mark.parametrize("args, words", [
    (["--hits-only"], "--hits-only needs a hit list"),
    (["--hits", "missing.txt"], "does not exist"),
    (["--hits", "{late}"], "is not on the video"),
])
def test_hit_list_mistakes_get_one_sentence(still_clip, tmp_path, args, words):
    late = _write(tmp_path, "late.txt", "12.0\n")
    args = [a.replace("{late}", str(late)) for a in args]
    done = run_dub([still_clip, "-o", tmp_path / "out.mp4", "--backend", "score", *args], dub_env(tmp_path),
                   cwd=tmp_path)
    assert done.returncode == 2
    assert words in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out.mp4").exists()


def test_a_none_line_drops_the_detected_events_of_its_instant_and_keeps_spotted_hits(tmp_path):
    detected = [VisualEvent(100, "impact", 0.9, 101), VisualEvent(104, "shake", 0.6, 110),
                VisualEvent(298, "landing", 0.9, 299), VisualEvent(600, "whoosh", 0.7, 610)]
    hits = read_hit_list(_write(tmp_path, "h.txt", "100f, none\n600f none\n603f, impact, 0.7\n"))
    merged = spot(_analysis(detected), hits)
    # 100f takes the impact and the shake that follows it (within 0.25 s); the spotted impact at
    # 603f stays although a none line is beside it, and the landing far from both is untouched.
    assert [(e.frame, e.kind) for e in merged.events] == [(298, "landing"), (603, "impact")]
    assert merged.settings["spotted_nothing"] == [100, 600]
    assert [h["frame"] for h in merged.settings["spotted_hits"]] == [603]
    with pytest.raises(InputError, match="or none for an instant with nothing to hit"):
        read_hit_list(_write(tmp_path, "bad.txt", "12.0, nothing\n"))


def test_the_first_line_off_the_video_is_the_one_named(tmp_path):
    """Two lines past the end, a hit on line 2 and a `none` on line 4: the message names line 2,
    the first a user reading the file meets, whatever its kind."""
    hits = read_hit_list(_write(tmp_path, "h.txt", "1.0\n99.0, impact\n3.0\n120.0, none\n"))
    with pytest.raises(InputError, match=r"99.0 s \(h.txt:2\) is not on the video"):
        spot(_analysis([]), hits)


def test_a_dance_step_taken_for_a_blow_is_silenced_by_a_none_line(sample_24p, tmp_path):
    """The detected blows of the clip, each named in a hit list as `none`: the effects stem is
    silent where each was (where the flash left alone still sounds), and the manifest has no
    event there."""
    video, truth = sample_24p
    blows = [e["frame"] for e in truth["events"] if e["kind"] == "impact"]
    flash = next(e["frame"] for e in truth["events"] if e["kind"] == "flash")
    assert blows
    hits = _write(tmp_path, "none.txt", "".join(f"{f}f, none\n" for f in blows))
    out = tmp_path / "out"
    done = run_dub([video, "-o", out / "v.mp4", "--backend", "score", "--stems", out, "--hits", hits, "--timeline"],
                   dub_env(tmp_path), timeout=240)
    assert done.returncode == 0, done.stderr
    fps = float(Fraction(truth["fps"]))
    fx, rate = read_wav(out / "v.fx.wav")

    def level_db(frame: int) -> float:
        start = int((frame / fps - 0.05) * rate)
        part = fx[:, start:start + int(0.3 * rate)].astype(float)
        return 10 * float(np.log10(np.mean(part ** 2) + 1e-20))

    for frame in blows:
        assert level_db(frame) < level_db(flash) - 40.0
    manifest = json.loads((out / "v.json").read_text())
    assert not [e for e in manifest["analysis"]["events"] if any(abs(e["frame"] - f) <= 6 for f in blows)]
    # The timeline marks what the soundtrack hits, and reads back as the same hit list.
    media = MediaInfo.from_dict(manifest["analysis"]["media"])
    marked = [(frame_of(h, media), h.kind) for h in read_hit_list(out / "v.otio")]
    assert marked == [(e["frame"], e["kind"]) for e in manifest["analysis"]["events"]]


def test_markers_of_an_edited_timeline_are_a_hit_list(tmp_path):
    """The dub's timeline marks each event on the picture clip, in the source's own timecode
    (29.97 drop-frame from 01:00:00;00 here); an editor deletes one, marks another `none`, moves
    one and adds one on the timeline, and the timeline read as a hit list says exactly that."""
    import opentimelineio as otio

    from dubber.export.deliverables import write_otio
    from dubber.export.timeline import TimelineMedia, TimelineOptions
    from dubber.plan import PlanOptions, make_plan

    media = MediaInfo(path=str(tmp_path / "v.mov"), duration_s=100.1, fps=Fraction(30000, 1001), frame_count=3000,
                      width=64, height=36, start_timecode="01:00:00;00")
    events = (VisualEvent(30, "impact", 0.8, 31), VisualEvent(1800, "landing", 0.9, 1801),
              VisualEvent(2000, "whoosh", 0.5, 2012), VisualEvent(2500, "impact", 0.7, 2501))
    analysis = VideoAnalysis(media=media, shots=(Shot(0, 0, 3000),), events=events, motion=(0.3,) * 3000,
                             captions=())
    plan = make_plan(analysis, PlanOptions())
    files = TimelineMedia(video_path=media.path, mix_path=str(tmp_path / "v.mix.wav"))
    path = write_otio(tmp_path / "v.otio", plan, media, files, TimelineOptions(hit_markers=events))
    read = [(frame_of(h, media), h.kind, h.strength) for h in read_hit_list(path)]
    assert read == [(e.frame, e.kind, e.strength) for e in events]
    assert round(read_hit_list(path)[2].length_s * 30000 / 1001) == 12   # the whoosh lasts its 12 frames

    timeline = otio.adapters.read_from_file(str(path))
    (picture,) = timeline.video_tracks()[0].find_clips()
    first, landing, whoosh, last = picture.markers
    picture.markers.remove(first)                 # a dance step, not a blow
    landing.name, landing.metadata["dub"] = "none", {}
    whoosh.marked_range = otio.opentime.TimeRange(whoosh.marked_range.start_time + otio.opentime.RationalTime(
        5, whoosh.marked_range.start_time.rate), whoosh.marked_range.duration)
    rate = timeline.global_start_time.rate
    timeline.tracks.markers.append(otio.schema.Marker(name="splash 0.6", marked_range=otio.opentime.TimeRange(
        otio.opentime.RationalTime(2800, rate), otio.opentime.RationalTime(1, rate))))
    otio.adapters.write_to_file(timeline, str(tmp_path / "edited.otio"))
    spotted = spot(analysis, read_hit_list(tmp_path / "edited.otio"), only=True)
    assert [(e.frame, e.kind) for e in spotted.events] == [(2005, "whoosh"), (2500, "impact"), (2800, "splash")]
    assert spotted.settings["spotted_nothing"] == [1800]


def test_a_23_98_video_written_as_1199_50_reads_its_own_timecodes_and_timeline(tmp_path):
    """23.98 written as 1199/50 has no SMPTE count of its own: its timecode counts 24 frames a
    second, and so do the hit list's timecodes and the markers of the dub's own timeline."""
    from dubber.export.deliverables import write_otio
    from dubber.export.timeline import TimelineMedia, TimelineOptions
    from dubber.plan import PlanOptions, make_plan

    media = MediaInfo(path=str(tmp_path / "v.mp4"), duration_s=28.0, fps=Fraction(1199, 50), frame_count=672,
                      width=64, height=36, start_timecode="01:00:00:00")
    listed = read_hit_list(_write(tmp_path, "tc.txt", "01:00:05:00\n01:00:10:12, landing\n"))
    assert [frame_of(h, media) for h in listed] == [120, 252]
    events = (VisualEvent(57, "whoosh", 0.7, 70), VisualEvent(578, "impact", 0.9, 579))
    analysis = VideoAnalysis(media=media, shots=(Shot(0, 0, 672),), events=events, motion=(0.3,) * 672, captions=())
    files = TimelineMedia(video_path=media.path, mix_path=str(tmp_path / "v.mix.wav"))
    path = write_otio(tmp_path / "v.otio", make_plan(analysis, PlanOptions()), media, files,
                      TimelineOptions(hit_markers=events))
    assert [(frame_of(h, media), h.kind, h.strength) for h in read_hit_list(path)] == [
        (e.frame, e.kind, e.strength) for e in events]


def test_a_plain_marker_numbered_by_the_editor_is_an_impact_at_the_usual_strength(tmp_path):
    """Resolve names a new marker "Marker 1", "Marker 2" ...: the number is no strength."""
    import opentimelineio as otio

    timeline = otio.schema.Timeline(name="t")
    rate = 24
    for frame, name in ((24, "Marker 1"), (48, "Marker 2"), (72, "landing 0.9"), (96, "Marker")):
        timeline.tracks.markers.append(otio.schema.Marker(name=name, marked_range=otio.opentime.TimeRange(
            otio.opentime.RationalTime(frame, rate), otio.opentime.RationalTime(1, rate))))
    otio.adapters.write_to_file(timeline, str(tmp_path / "plain.otio"))
    hits = read_hit_list(tmp_path / "plain.otio")
    assert [(frame_of(h, FILM), h.kind, h.strength) for h in hits] == [
        (24, "impact", 0.8), (48, "impact", 0.8), (72, "landing", 0.9), (96, "impact", 0.8)]


def test_a_timeline_with_no_markers_or_a_damaged_one_gets_one_sentence(tmp_path):
    import opentimelineio as otio

    empty = tmp_path / "empty.otio"
    otio.adapters.write_to_file(otio.schema.Timeline(name="cut"), str(empty))
    with pytest.raises(InputError, match="has no markers on its picture"):
        read_hit_list(empty)
    broken = _write(tmp_path, "broken.otio", '{"OTIO_SCHEMA": "Timeline.1", "tracks": ')
    with pytest.raises(InputError, match="Cannot read the timeline .*export it again"):
        read_hit_list(broken)
