"""vision.analyze against the synthetic ground truth: cuts, events, motion, keyframes, JSON."""
from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest

import vision
from samples.synth import SynthSpec, synthesize
from vision.frames import KeyframeSampler
from vision.shots import CutOptions
from vision.types import VideoAnalysis

SAMPLES = ["sample_24p", "sample_30p_silent", "sample_vfr"]
# The samples' impacts are objects that fall onto the floor: read as impacts, or as landings
# when the fall into the contact is seen.
FOUND_AS = {"impact": ("impact", "landing"), "flash": ("flash",)}
REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def analysed(request):
    """Analysis without captions of each shared sample, computed once per module."""
    cache: dict[str, tuple] = {}

    def get(name: str):
        if name not in cache:
            path, truth = request.getfixturevalue(name)
            cache[name] = (vision.analyze(path, captioner=None), truth)
        return cache[name]

    return get


def _near(frame: int, frames: list[int], tolerance: int = 1) -> bool:
    return any(abs(frame - f) <= tolerance for f in frames)


@pytest.mark.parametrize("name", SAMPLES)
def test_every_cut_found_and_no_false_cut(name, analysed):
    analysis, truth = analysed(name)
    found = [s.start_frame for s in analysis.shots[1:]]
    assert len(found) == len(truth["cut_frames"])
    assert all(_near(c, found) for c in truth["cut_frames"])
    assert found == truth["cut_frames"]  # in practice exact on these clean cuts
    assert analysis.shots[-1].end_frame == truth["frame_count"] == analysis.media.frame_count


@pytest.mark.parametrize("name", SAMPLES)
def test_every_planted_impact_and_flash_found_and_nothing_invented(name, analysed):
    analysis, truth = analysed(name)
    for kind in ("impact", "flash"):
        planted = [e["frame"] for e in truth["events"] if e["kind"] == kind]
        found = [e.frame for e in analysis.events if e.kind in FOUND_AS[kind]]
        assert all(_near(f, found) for f in planted), (kind, planted, found)
        assert all(_near(f, planted, 2) for f in found), (kind, planted, found)
    for event in analysis.events:  # cuts are never events
        assert not _near(event.frame, truth["cut_frames"]) and 0 <= event.strength <= 1


@pytest.mark.parametrize("name", SAMPLES)
def test_whooshes_cover_the_planted_dashes(name, analysed):
    analysis, truth = analysed(name)
    planted = [(e["frame"], e["end_frame"]) for e in truth["events"] if e["kind"] == "whoosh"]
    found = [(e.frame, e.end_frame) for e in analysis.events if e.kind == "whoosh"]
    for start, end in planted:
        overlap = max((min(end, b) - max(start, a) for a, b in found), default=0)
        assert overlap >= 0.6 * (end - start), (planted, found)
    for a, b in found:
        assert any(min(end, b) - max(start, a) > 0 for start, end in planted), (planted, found)


@pytest.mark.parametrize("name", SAMPLES)
def test_motion_curve_is_per_frame_normalised_and_follows_the_action(name, analysed):
    analysis, truth = analysed(name)
    curve = np.array(analysis.motion)
    assert curve.shape == (truth["frame_count"],) and curve.min() >= 0 and curve.max() <= 1
    busy = np.zeros(curve.size, bool)
    for event in truth["events"]:
        if event["kind"] == "whoosh":
            busy[event["frame"] + 2:event["end_frame"] - 2] = True
    calm = ~busy
    for event in truth["events"]:  # impact shakes and flashes are not calm either
        calm[max(0, event["frame"] - 8):event["end_frame"] + 8] = False
    assert curve[busy].mean() > 1.5 * curve[calm].mean()


@pytest.mark.parametrize("name", SAMPLES)
def test_json_round_trip_keeps_shots_and_events_exact(name, analysed):
    analysis, truth = analysed(name)
    data = json.loads(json.dumps(analysis.to_dict()))
    assert [(s["start_frame"], s["end_frame"]) for s in data["shots"]] == \
        [(s["start_frame"], s["end_frame"]) for s in truth["shots"]]
    again = VideoAnalysis.from_dict(data)
    assert again.shots == analysis.shots and again.media == analysis.media
    assert [(e.frame, e.kind, e.end_frame) for e in again.events] == \
        [(e.frame, e.kind, e.end_frame) for e in analysis.events]
    assert again.media.fps == Fraction(truth["fps"])


def test_keyframes_are_few_per_shot_spread_out_and_small(analysed):
    analysis, _ = analysed("sample_24p")
    assert len(analysis.keyframes) == len(analysis.shots)
    for shot, keys in zip(analysis.shots, analysis.keyframes):
        assert keys.shot_index == shot.index and len(keys.frames) == len(keys.images) == 3
        assert all(shot.start_frame <= f < shot.end_frame for f in keys.frames)
        assert keys.frames == tuple(sorted(keys.frames))
        assert keys.frames[-1] - keys.frames[0] >= shot.frame_count // 3  # spread, not bunched
        for image in keys.images:
            pixels = np.asarray(image)
            assert pixels.dtype == np.uint8 and pixels.shape == image.shape == (180, 320, 3)
    # each shot has its own palette, so the first keyframes of two shots differ in colour
    means = [np.asarray(k.images[0]).reshape(-1, 3).mean(axis=0) for k in analysis.keyframes]
    assert np.abs(means[0] - means[1]).max() > 10


def test_progress_reports_decoded_frames(sample_30p_silent):
    path, truth = sample_30p_silent
    calls: list[tuple[str, int, int]] = []
    vision.analyze(path, captioner=None, keyframes_per_shot=0, progress=lambda *a: calls.append(a))
    decode = [c for c in calls if c[0] == "decode"]
    assert len(decode) >= truth["frame_count"] // 24
    assert [d for _, d, _ in decode] == sorted(d for _, d, _ in decode)
    assert decode[-1] == ("decode", truth["frame_count"], truth["frame_count"])


def test_flash_inside_a_single_shot_is_not_a_cut_and_min_shot_length_holds(tmp_path, sample_24p):
    path = tmp_path / "one_shot.mp4"
    truth = synthesize(path, SynthSpec(shot_frames=(60,), audio=False, seed=5))  # one shot with a flash
    assert [e["kind"] for e in truth["events"]] == ["flash"]
    analysis = vision.analyze(path, captioner=None)
    assert len(analysis.shots) == 1
    assert [e.kind for e in analysis.events] == ["flash"]
    # a minimum shot length longer than the first shot swallows its cut
    video, truth24 = sample_24p
    first = truth24["shots"][0]["end_frame"]
    merged = vision.analyze(video, captioner=None, min_shot_frames=first + 1, keyframes_per_shot=0)
    assert [s.start_frame for s in merged.shots[1:]] == truth24["cut_frames"][1:]


def test_a_change_in_the_last_frames_is_no_shot_of_its_own(tmp_path, sample_24p):
    """A cut needs pictures after it to show it persists: a trim that keeps two frames of the next
    shot ends the shot before (no shot of two frames); ten frames of it are a shot."""
    video, truth = sample_24p
    cut = truth["cut_frames"][0]   # the first cut
    for kept_after, shots_expected in ((2, [0]), (10, [0, cut])):
        trimmed = tmp_path / f"trim_{kept_after}.mp4"
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-y", "-i", str(video),
                        "-frames:v", str(cut + kept_after), "-an", "-c:v", "libx264", "-pix_fmt", "yuv420p",
                        str(trimmed)], check=True)
        analysis = vision.analyze(trimmed, captioner=None, keyframes_per_shot=0)
        assert [s.start_frame for s in analysis.shots] == shots_expected, kept_after
        assert analysis.shots[-1].end_frame == cut + kept_after


def test_rotated_video_gives_upright_keyframes(sample_30p_silent, tmp_path):
    path, _ = sample_30p_silent
    rotated = tmp_path / "rotated.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y", "-display_rotation", "90",
                    "-i", str(path), "-c", "copy", str(rotated)], check=True, timeout=60)
    analysis = vision.analyze(rotated, captioner=None, keyframes_per_shot=1)
    image = np.asarray(analysis.keyframes[0].images[0])
    assert image.shape[:2] == (320, 180)  # portrait, as a player shows it


def test_motion_captioner_writes_one_caption_per_shot(sample_24p):
    path, _ = sample_24p
    analysis = vision.analyze(path)  # default captioner: "motion"
    assert [c.shot_index for c in analysis.captions] == [s.index for s in analysis.shots]
    assert all(c.text for c in analysis.captions)
    assert analysis.settings["captioner"] == "motion"


def test_unknown_captioner_fails_before_decoding(sample_24p):
    with pytest.raises(ValueError, match="captioner"):
        vision.analyze(sample_24p[0], captioner="no-such-captioner")


def test_import_binds_the_functions_and_not_torch():
    code = ("import vision.probe, vision.analyze, vision, sys; "
            "assert callable(vision.probe) and callable(vision.analyze); "
            "assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, cwd=REPO_ROOT)


def test_keyframes_are_kept_compressed(analysed):
    analysis, _ = analysed("sample_24p")
    image = analysis.keyframes[0].images[0]
    assert image.nbytes < 0.5 * np.asarray(image).nbytes


def test_adaptive_detector_finds_the_same_cuts(sample_24p):
    path, truth = sample_24p
    options = vision.AnalysisOptions(cuts=CutOptions(detector="adaptive"))
    analysis = vision.analyze(path, captioner=None, keyframes_per_shot=0, options=options)
    assert [s.start_frame for s in analysis.shots[1:]] == truth["cut_frames"]
    assert analysis.settings["cut_detector"] == "adaptive"


def test_keyframe_sampler_memory_stays_bounded_over_a_long_shot():
    made: list[int] = []

    def make(frame):
        made.append(frame)
        return np.full((4, 4, 3), frame % 256, np.uint8)

    sampler = KeyframeSampler(3, make, first_stride=5)
    for index in range(100_000):  # about an hour at 30 fps in one shot
        sampler.offer(index, index)
        assert len(sampler._candidates) <= sampler.capacity
    assert len(made) < 200  # pictures are made only for candidates, not for every frame
    (keys,) = sampler.finish(100_000)
    assert len(keys.frames) == 3
    for k, frame in enumerate(keys.frames):  # near 1/6, 3/6 and 5/6 of the shot
        assert abs(frame - (2 * k + 1) * 100_000 / 6) < 100_000 / 8


def test_a_shot_shorter_than_the_keyframe_stride_still_gets_a_picture():
    # At 60 fps candidates come every 10 frames; a 9-frame shot whose cut is confirmed four
    # frames late has no grid frame left inside it.
    sampler = KeyframeSampler(3, lambda frame: np.full((4, 4, 3), frame % 256, np.uint8), first_stride=10)
    confirmed = {207: 203, 216: 212}  # frame at which each cut is confirmed -> the cut frame
    for index in range(400):
        if index in confirmed:
            sampler.close_shot(confirmed[index])
        sampler.offer(index, index)
    shots = [(0, 203), (203, 212), (212, 400)]
    keyframes = sampler.finish(400)
    for (start, end), keys in zip(shots, keyframes):
        assert keys.frames, f"shot [{start}, {end}) got no keyframe"
        assert all(start <= f < end for f in keys.frames), (start, end, keys.frames)



def test_fewer_decoded_frames_than_listed_keep_vfr_frame_times_in_order():
    from vision.analyze import _settle_frame_count
    from vision.types import MediaInfo

    # 10 frames at 1/24 s then 10 at 1/60 s (ticks of 1/120 s); the decoder delivers only 15.
    pts = tuple(5 * k for k in range(10)) + tuple(50 + 2 * k for k in range(10))
    listed = MediaInfo(path="vfr.mp4", duration_s=20 / 120 * 3.5, fps=Fraction(20 * 120, 70), frame_count=20,
                       width=64, height=36, time_base=Fraction(1, 120), is_vfr=True, frame_pts=pts)
    media = _settle_frame_count(listed, 15)
    times = [media.frame_time(f) for f in range(media.frame_count + 1)]
    assert all(a < b for a, b in zip(times, times[1:])), times
    assert times[-1] == Fraction(60, 120)           # frame 14 ends where frame 15 would start
    assert media.total_samples(48000) == 24000 and media.duration_s == 0.5


@pytest.mark.parametrize("rate", ["60", "30000/1001"])
def test_24p_shown_at_a_higher_rate_by_repeating_pictures_gives_the_same_shots_and_events(rate, sample_24p, tmp_path):
    # fps=60 shows each 24p picture for 2 or 3 frames; fps=30000/1001 repeats every fourth (3:2 pulldown
    # without fields). Repeats must not read as stillness: no false cuts, impacts or broken dashes.
    path, truth = sample_24p
    repeated = tmp_path / "repeated.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y", "-i", str(path),
                    "-vf", f"fps={rate}", "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-an", str(repeated)],
                   check=True, timeout=60)
    analysis = vision.analyze(repeated, captioner=None, keyframes_per_shot=0)
    source, target = Fraction(truth["fps"]), Fraction(rate)
    assert analysis.media.fps == target
    to_frame = lambda f: round(Fraction(f) / source * target)  # noqa: E731  same time, new frame grid
    cuts = [s.start_frame for s in analysis.shots[1:]]
    assert len(cuts) == len(truth["cut_frames"]), cuts
    assert all(abs(c - to_frame(t)) <= 1 for c, t in zip(cuts, truth["cut_frames"])), cuts
    for kind in ("impact", "flash"):
        planted = [to_frame(e["frame"]) for e in truth["events"] if e["kind"] == kind]
        found = [e.frame for e in analysis.events if e.kind in FOUND_AS[kind]]
        assert len(found) == len(planted) and all(_near(f, found) for f in planted), (kind, planted, found)
    planted = [(to_frame(e["frame"]), to_frame(e["end_frame"])) for e in truth["events"] if e["kind"] == "whoosh"]
    found = [(e.frame, e.end_frame) for e in analysis.events if e.kind == "whoosh"]
    assert len(found) == len(planted), (planted, found)
    for (start, end), (a, b) in zip(planted, found):
        assert min(end, b) - max(start, a) >= 0.8 * (end - start), (planted, found)
        dash = np.array(analysis.motion[start + 3:end - 3])
        assert dash.min() > 0.5 * dash.max()  # repeated frames do not make the curve drop to zero


def test_a_fade_is_motion_not_a_repeated_picture():
    from vision.motion import is_repeat

    picture = np.tile(np.linspace(40, 200, 128, dtype=np.uint8), (72, 1))
    assert is_repeat(picture.copy(), picture)
    assert not is_repeat(picture + 1, picture)  # every pixel one level brighter: a fade, not a repeat
    moved = picture.copy()
    moved[30:50, 60:70] = 255  # a small object appears in a still picture
    assert not is_repeat(moved, picture)


def test_a_held_picture_encoded_again_is_a_repeat():
    """A picture held on screen comes back from the encoder with noise of a level or so on
    every pixel; it is still the same picture (else the sampling reads a stop each time)."""
    from vision.motion import is_repeat

    picture = np.tile(np.linspace(40, 200, 128, dtype=np.uint8), (72, 1))
    noise = np.random.default_rng(0).integers(-1, 2, picture.shape)   # -1, 0 or +1 level on each pixel
    again = (picture.astype(np.int16) + noise).astype(np.uint8)
    assert abs(float(again.mean()) - float(picture.mean())) < 0.05 and np.abs(again - picture.astype(np.int16)).mean() > 0.5
    assert is_repeat(again, picture)
    assert not is_repeat(again + 1, picture)  # and one level brighter on top of that is a fade


def test_strokes_that_die_at_once_are_whooshes_and_a_blow_that_shakes_the_picture_is_an_impact():
    """Per-picture activity of a bird close to the camera beating its wings (a burst every four
    pictures that dies at once) against a blow that jolts the whole picture and shakes it: the
    strokes are whooshes, the blow one impact with its shake."""
    from vision.events import analyse_motion
    from vision.types import Shot

    strokes = np.array(([0.01] * 3 + [0.035]) * 12)
    result = analyse_motion(strokes, np.full(strokes.size, 0.5), (Shot(0, 0, strokes.size),))
    assert [e.kind for e in result.events if e.kind in ("impact", "landing")] == []
    assert [e.frame for e in result.events if e.kind == "whoosh"] == list(range(3, strokes.size - 4, 4))  # the last one is cut off

    blow = np.array([0.01] * 20 + [0.06] + [0.03, 0.028, 0.025, 0.022, 0.02, 0.018] + [0.01] * 20)
    result = analyse_motion(blow, np.full(blow.size, 0.5), (Shot(0, 0, blow.size),))
    assert [(e.frame, e.kind) for e in result.events] == [(20, "impact"), (21, "shake")]


@pytest.mark.parametrize("changed, kinds", [(0.35, ["impact", "shake"]), (0.15, ["whoosh"])])
def test_a_shake_moves_the_whole_picture_and_a_part_moving_on_is_no_shake(changed, kinds):
    """The same jolt and the same activity after it: where a third of the picture changes over
    the pictures after (the camera jolted, over a set as flat as the synthetic sky), a blow and
    its shake; where only a seventh does (wings flapping on, a head jerking about), a stroke."""
    from vision.events import analyse_motion
    from vision.types import Shot

    blow = np.array([0.01] * 20 + [0.06] + [0.03, 0.028, 0.025, 0.022, 0.02, 0.018] + [0.01] * 20)
    coverage = np.tile([0.05, 0.2], (blow.size, 1))
    coverage[20:27, 0] = changed
    result = analyse_motion(blow, np.full(blow.size, 0.5), (Shot(0, 0, blow.size),), coverage=coverage)
    assert [e.kind for e in result.events] == kinds and result.events[0].frame == 20


def _dash_that_stops_dead() -> list[np.ndarray]:
    """24p grey pictures: a block drifts 1 px a picture, dashes 6 px a picture for 12, then holds;
    what it struck gives (a small square beneath it hops up 4 px) for the two pictures after."""
    xs = [2 + k for k in range(30)] + [32 + 6 * (k + 1) for k in range(12)] + [104] * 12
    pictures = []
    for k, x in enumerate(xs):
        grey = np.full((72, 128), 90, np.uint8)
        grey[20:52, x:x + 32] = 230
        hop = 4 if k in (42, 43) else 0
        grey[56 - hop:64 - hop, 100:108] = 30
        pictures.append(grey)
    return pictures


@pytest.mark.parametrize("rate", [24, 30, 60])
def test_a_dead_stop_and_hold_reads_the_same_at_any_rate_the_pictures_are_repeated_to(rate):
    from vision.motion import MotionTracker
    from vision.types import Shot

    pictures = _dash_that_stops_dead()
    count = len(pictures) * rate // 24
    shown = [i * 24 // rate for i in range(count)]  # the 24p picture frame i repeats
    tracker = MotionTracker(rate=rate)  # durations (a whoosh or a run) are read in seconds
    for i, k in enumerate(shown):
        tracker.push(pictures[k].copy())
    result = tracker.finish((Shot(0, 0, count),))
    assert len(result.curve) == count
    found = [(e.kind, shown[e.frame], shown[e.end_frame - 1]) for e in result.events]
    # the dash covers pictures 30..41; the stop lands on picture 41, the last one that moves
    assert found == [("whoosh", 30, 40), ("impact", 41, 41)]
    assert all(shown[e.frame - 1] != shown[e.frame] for e in result.events)  # on the first frame of a picture


def test_repeats_are_skipped_at_the_picture_cadence_and_holds_still_sampled():
    from vision.motion import sample_frames

    # 24p at 60 fps: pictures last 3, 2, 3, 2 frames; the fifth picture is held for 12 frames.
    lengths = [3, 2, 3, 2, 12, 3, 2]
    repeats = np.array([k > 0 for n in lengths for k in range(n)])
    # every distinct picture, plus one still sample each 1/24 s (3 frames at 60 fps) of the hold
    assert sample_frames(repeats).tolist() == [0, 3, 5, 8, 10, 13, 16, 19, 22, 25]
    pulldown = np.array([k > 0 for n in [2, 1, 1, 1] * 3 + [6] for k in range(n)])  # 24p at 30 fps, then a hold
    assert sample_frames(pulldown).tolist() == [0, 2, 3, 4, 5, 7, 8, 9, 10, 12, 13, 14, 15, 17, 19]
    native = np.zeros(20, bool)
    native[8:12] = True  # a 24p picture held 5 frames: every frame is still a sample
    assert sample_frames(native).tolist() == list(range(20))


def test_a_scene_drawn_three_pictures_in_four_frames_is_sampled_at_its_own_cadence():
    """A film drawn on ones with one scene whose pictures come three in every four frames (one
    held a frame while things move): inside that scene the single repeats are its rhythm and are
    passed over; a single repeat where the film is on ones is a stop and is sampled."""
    from vision.motion import sample_frames

    ones = [False] * 60
    three_in_four = [False, False, False, True] * 15   # frames 60 .. 119
    stop = [False] * 30 + [True] + [False] * 29         # a one-frame hold at 150
    repeats = np.array(ones + three_in_four + stop)
    kept = set(sample_frames(repeats).tolist())
    assert not kept & {63 + 4 * k for k in range(15)}
    assert 150 in kept and set(range(120)) - {63 + 4 * k for k in range(15)} <= kept


def test_reading_analysis_types_loads_no_video_stack():
    code = ("import sys, vision.types, vision; heavy = {'cv2', 'av', 'scenedetect'}; "
            "assert not heavy & set(sys.modules), sorted(heavy & set(sys.modules)); "
            "vision.analyze; assert 'cv2' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, cwd=REPO_ROOT)


def test_analysis_cache_key_changes_with_the_analysis_version(tmp_path, monkeypatch):
    import vision.types
    from dubber import api
    from dubber.options import DubOptions

    video = tmp_path / "clip.mp4"
    video.write_bytes(b"not decoded: only the key is made")
    before = api._analysis_key(video, DubOptions(captioner="motion"))
    monkeypatch.setattr(vision.types, "ANALYSIS_VERSION", vision.types.ANALYSIS_VERSION + 1)
    assert api._analysis_key(video, DubOptions(captioner="motion")) != before


def test_read_ahead_keeps_order_raises_the_workers_error_and_stops_with_its_consumer():
    import threading

    from vision.frames import read_ahead

    assert list(read_ahead(iter(range(100)), 4)) == list(range(100))

    def broken():
        yield 1
        raise ValueError("frame 2 is damaged")

    items = read_ahead(broken(), 4)
    assert next(items) == 1
    with pytest.raises(ValueError, match="frame 2 is damaged"):
        next(items)

    produced = []

    def endless():
        while True:
            produced.append(len(produced))
            yield produced[-1]

    items = read_ahead(endless(), 3)
    assert [next(items) for _ in range(5)] == [0, 1, 2, 3, 4]
    items.close()  # the consumer stops: the worker stops too, a few items ahead at most
    assert not [t for t in threading.enumerate() if t.name == "decode"]
    assert len(produced) <= 5 + 3 + 2
