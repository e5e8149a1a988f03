"""Planning cues from an analysis: exact tiling, splitting long shots, seeds, instruction, plan files."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from dubber.errors import PlanError
from dubber.plan import PlanOptions, check_plan_fits_cuts, load_plan, make_plan, save_plan, validate_plan
from dubber.styles import STYLE_PRESETS, get_style
from dubber.types import PLAN_SCHEMA, DubPlan
from vision.types import MediaInfo, Shot, ShotCaption, VideoAnalysis, VisualEvent

REPO_ROOT = Path(__file__).resolve().parent.parent
SR = 48000


def _media(fps: Fraction, frame_count: int, **extra) -> MediaInfo:
    duration = extra.pop("duration_s", float(frame_count / fps))
    return MediaInfo(path="/videos/clip.mp4", duration_s=duration, fps=fps, frame_count=frame_count,
                     width=320, height=180, **extra)


def _analysis(media: MediaInfo, bounds: list[int], motion=None, events=(), captions=None) -> VideoAnalysis:
    shots = tuple(Shot(i, a, b) for i, (a, b) in enumerate(zip(bounds, bounds[1:])))
    texts = captions or [f"shot {i} action" for i in range(len(shots))]
    caps = tuple(ShotCaption(i, t, captioner="test") for i, t in enumerate(texts))
    motion = tuple(motion) if motion is not None else tuple(0.3 for _ in range(media.frame_count))
    return VideoAnalysis(media=media, shots=shots, events=tuple(events), motion=motion, captions=caps)


def _assert_tiles(plan: DubPlan, total_samples: int) -> None:
    assert plan.cues[0].start_sample == 0 and plan.cues[0].start_frame == 0
    for prev, cur in zip(plan.cues, plan.cues[1:]):
        assert cur.start_sample == prev.end_sample
        assert cur.start_frame == prev.end_frame
    assert plan.cues[-1].end_sample == total_samples == plan.total_samples


@pytest.mark.parametrize("fps", [Fraction(24000, 1001), Fraction(30)])
def test_cues_tile_the_soundtrack_at_exact_frame_samples(fps):
    media = _media(fps, 300)
    plan = make_plan(_analysis(media, [0, 24, 100, 300]), PlanOptions(sample_rate=SR))
    # Frame f starts at sample round(f * 48000 / fps); 300 frames at 24000/1001 are 600600 samples.
    expected_total = {Fraction(24000, 1001): 600600, Fraction(30): 480000}[fps]
    _assert_tiles(plan, expected_total)
    assert [(c.start_frame, c.end_frame) for c in plan.cues] == [(0, 24), (24, 100), (100, 300)]
    assert [c.start_sample for c in plan.cues] == [round(f * SR / fps) for f in (0, 24, 100)]
    if fps == Fraction(24000, 1001):
        assert plan.cues[1].start_sample == 48048   # frame 24 lands at 1.001 s
    assert plan.fps == f"{fps.numerator}/{fps.denominator}"


def test_vfr_cues_follow_frame_timestamps():
    time_base = Fraction(1, 90000)
    durations = [3750, 3000, 1500, 3600] * 30           # 1/24, 1/30, 1/60, 1/25 s frames
    pts = [sum(durations[:i]) for i in range(len(durations))]
    total_ticks = sum(durations)
    media = _media(Fraction(len(durations)) / (total_ticks * time_base), len(durations),
                   duration_s=float(total_ticks * time_base), time_base=time_base, is_vfr=True,
                   frame_pts=tuple(pts))
    plan = make_plan(_analysis(media, [0, 37, 81, 120]), PlanOptions(sample_rate=SR))
    _assert_tiles(plan, round(total_ticks * time_base * SR))
    for cue in plan.cues:
        assert cue.start_sample == round(pts[cue.start_frame] * time_base * SR)


def test_gaps_between_shots_are_covered_and_overlaps_refused():
    media = _media(Fraction(30), 90)
    analysis = VideoAnalysis(media=media, shots=(Shot(0, 5, 30), Shot(1, 40, 80)), events=(), motion=(),
                             captions=())
    plan = make_plan(analysis, PlanOptions(sample_rate=SR))
    assert [(c.start_frame, c.end_frame) for c in plan.cues] == [(0, 40), (40, 90)]
    overlapping = VideoAnalysis(media=media, shots=(Shot(0, 0, 50), Shot(1, 40, 90)), events=(), motion=(),
                                captions=())
    with pytest.raises(PlanError):
        make_plan(overlapping, PlanOptions())


def test_long_shot_splits_at_quiet_frames_into_parts_under_the_limit():
    fps, frames = Fraction(30), 2250                      # one 75 s shot
    motion = [0.8] * frames
    for quiet in (700, 1530):                             # quiet moments near the 25 s and 50 s marks
        motion[quiet - 1] = motion[quiet] = 0.02
    plan = make_plan(_analysis(_media(fps, frames), [0, frames], motion=motion), PlanOptions(sample_rate=SR))
    assert [(c.start_frame, c.end_frame) for c in plan.cues] == [(0, 700), (700, 1530), (1530, 2250)]
    assert [(c.part, c.parts, c.shot_index) for c in plan.cues] == [(0, 3, 0), (1, 3, 0), (2, 3, 0)]
    assert all(c.num_samples <= 30 * SR for c in plan.cues)
    assert len({c.caption for c in plan.cues}) == 1
    _assert_tiles(plan, 75 * SR)


def test_split_never_falls_inside_fast_motion():
    fps, frames = Fraction(30), 2250
    motion = [0.5] * frames
    motion[739] = motion[740] = 0.0                       # the quietest frame sits inside a dash...
    dash = VisualEvent(frame=700, kind="fast_motion", strength=0.9, end_frame=800)
    plan = make_plan(_analysis(_media(fps, frames), [0, frames], motion=motion, events=[dash]),
                     PlanOptions(sample_rate=SR))
    cuts = [c.start_frame for c in plan.cues[1:]]
    assert len(cuts) == 2
    assert not any(700 < cut < 800 for cut in cuts)       # ...so the cut goes elsewhere
    assert all(c.num_samples <= 30 * SR for c in plan.cues)
    # Flat motion elsewhere: parts stay roughly equal (within 15% of 25 s of the equal split).
    assert abs(cuts[1] - 1500) <= 0.15 * 750


def test_split_keeps_clear_of_impacts():
    fps, frames = Fraction(30), 1740                      # 58 s: one cut near the 29 s mark
    hit = VisualEvent(frame=870, kind="impact", strength=1.0, end_frame=871)
    plan = make_plan(_analysis(_media(fps, frames), [0, frames], events=[hit]), PlanOptions(sample_rate=SR))
    (cut,) = [c.start_frame for c in plan.cues[1:]]
    assert abs(cut - 870) >= 0.25 * 30                    # not on the anvil's landing
    assert all(c.num_samples <= 30 * SR for c in plan.cues)


def test_split_respects_a_shorter_limit_at_ntsc_rate():
    fps = Fraction(24000, 1001)
    plan = make_plan(_analysis(_media(fps, 1000), [0, 1000]), PlanOptions(sample_rate=SR, max_cue_s=10.0))
    assert len(plan.cues) == 5                             # 41.7 s in parts of at most 10 s
    assert all(c.num_samples <= 10 * SR for c in plan.cues)
    _assert_tiles(plan, round(1000 * SR / fps))


def test_seeds_are_deterministic_distinct_and_independent_of_hash_randomisation():
    analysis = _analysis(_media(Fraction(30), 300), [0, 100, 200, 300])
    seeds = [c.seed for c in make_plan(analysis, PlanOptions(seed=7)).cues]
    assert seeds == [c.seed for c in make_plan(analysis, PlanOptions(seed=7)).cues]
    assert len(set(seeds)) == 3 and all(0 <= s < 2**31 for s in seeds)
    assert seeds != [c.seed for c in make_plan(analysis, PlanOptions(seed=8)).cues]
    code = "from dubber.plan import cue_seed; print([cue_seed(7, i) for i in range(3)])"
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(REPO_ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert json.loads(out.stdout) == seeds


def test_instruction_uses_audiostory_template_and_describes_shots_in_order():
    fps = Fraction(24000, 1001)
    analysis = _analysis(_media(fps, 300), [0, 100, 200, 300],
                         captions=["A cat tiptoes.", "A mouse runs away", "A piano falls."])
    plan = make_plan(analysis, PlanOptions(style="tom-and-jerry"))
    text = plan.instruction
    assert text.endswith("The total duration is 12.5 seconds.")   # 300 * 1001 / 24000 = 12.5125 s
    assert text.startswith("Generate a classic Tom and Jerry style soundtrack")
    # The first caption continues the lead ("...that includes a cat tiptoes."): its article is lower-cased.
    assert text.index("a cat tiptoes") < text.index("A mouse runs away") < text.index("A piano falls")
    whole = make_plan(_analysis(_media(Fraction(30), 1500), [0, 1500]), PlanOptions(style="noir"))
    assert whole.instruction.endswith("The total duration is 50.0 seconds.")


def test_instruction_tells_caption_times_as_times_in_the_film():
    # Captions time their events from the shot's first frame; the instruction speaks of the whole
    # film, so there the second shot's events (it starts at 4.0 s) are 4.0 s later.
    analysis = _analysis(_media(Fraction(25), 400), [0, 100, 400],
                         captions=["A cat tiptoes; a bonk at 1.5 s.",
                                   "A chase; running feet from 0.5 s to 2.0 s, a crash at 3.0 s."])
    plan = make_plan(analysis, PlanOptions(style="tom-and-jerry", max_cue_s=5.0))
    assert [c.shot_index for c in plan.cues] == [0, 1, 1, 1]   # the 12 s shot is rendered in parts
    assert "a bonk at 1.5 s" in plan.instruction
    assert "A chase; running feet from 4.5 s to 6.0 s, a crash at 7.0 s." in plan.instruction
    assert plan.instruction.count("A chase") == 1   # a split shot is told once, from its own start
    # What each cue renders keeps its shot's own times.
    assert plan.cues[1].caption == plan.cues[3].caption == analysis.captions[1].text
    assert "a crash at 3.0 s" in plan.cues[2].model_text


def test_prompts_combine_caption_and_style_and_unknown_styles_are_refused():
    analysis = _analysis(_media(Fraction(30), 60), [0, 60], captions=["A dog barks at the mailman"])
    cue = make_plan(analysis, PlanOptions(style="sci-fi")).cues[0]
    assert cue.prompt.startswith("A dog barks at the mailman.")
    assert STYLE_PRESETS["sci-fi"] in cue.prompt
    assert {"tom-and-jerry", "nature", "sci-fi", "silent-film"} <= set(STYLE_PRESETS)
    assert "mickey-mous" in STYLE_PRESETS["tom-and-jerry"]
    with pytest.raises(ValueError, match="nature"):
        get_style("polka")
    with pytest.raises(ValueError):
        PlanOptions(style="polka")
    with pytest.raises(ValueError):
        PlanOptions(max_cue_s=0)


def test_save_load_round_trip_and_hand_edits(tmp_path):
    media = _media(Fraction(24000, 1001), 300)
    plan = make_plan(_analysis(media, [0, 100, 300]), PlanOptions(seed=3))
    path = save_plan(plan, tmp_path / "plan.json")
    assert json.loads(path.read_text())["schema"] == PLAN_SCHEMA
    assert load_plan(path) == plan
    assert [p.name for p in tmp_path.iterdir()] == ["plan.json"]   # no temporary left behind

    data = json.loads(path.read_text())
    data["cues"][1]["caption"] = "An anvil drops on the cat"
    data["cues"][1]["prompt"] = "An anvil drops on the cat. Big brass sting."
    path.write_text(json.dumps(data))
    edited = load_plan(path)
    assert edited.cues[1].prompt == "An anvil drops on the cat. Big brass sting."
    validate_plan(edited, media)


def _plan_file(tmp_path, mutate) -> Path:
    plan = make_plan(_analysis(_media(Fraction(30), 300), [0, 100, 300]), PlanOptions())
    data = plan.to_dict()
    mutate(data)
    path = tmp_path / "plan.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


@pytest.mark.parametrize("mutate", [
    lambda d: d.update(schema="dubber.analysis/1"),
    lambda d: d.pop("cues"),
    lambda d: d["cues"][0].pop("num_samples"),
    lambda d: d["cues"][1].update(start_sample=d["cues"][1]["start_sample"] + 1),   # gap
    lambda d: d["cues"][0].update(num_samples=-5),
    lambda d: d.update(total_samples=d["total_samples"] + 480),                     # cues end early
    lambda d: d["cues"][0].update(start_frame="zero"),
    lambda d: d.update(cues=[]),
    lambda d: d.update(source=5),
], ids=["schema", "no-cues", "missing-field", "gap", "negative", "short", "type", "empty", "source-type"])
def test_malformed_plans_raise_plan_error(tmp_path, mutate):
    with pytest.raises(PlanError):
        load_plan(_plan_file(tmp_path, mutate))


@pytest.mark.parametrize("mutate, said", [
    (lambda d: d["cues"][1].update(captoin="a door slams"), "'captoin' (did you mean 'caption'?)"),
    (lambda d: d["cues"][1].update(muted=True), "'muted'"),
    (lambda d: d["cues"][0].update(style="noir"), "the plan's style"),
    (lambda d: d.update(stlye="noir"), "'stlye' (did you mean 'style'?)"),
])
def test_a_field_plans_do_not_have_is_named_not_ignored(tmp_path, mutate, said):
    """A misspelt or invented field would otherwise change nothing while the edit looks done."""
    with pytest.raises(PlanError) as caught:
        load_plan(_plan_file(tmp_path, mutate))
    assert said in str(caught.value) and str(caught.value).endswith("fix the plan file.")


@pytest.mark.parametrize("mutate, said", [
    # a misspelt field is named, not reported as the field it replaced
    (lambda d: d["cues"][1].update(caption=None) or d["cues"][1].update(captoin=d["cues"][1].pop("caption")),
     "Cue 1 has the field 'captoin' (did you mean 'caption'?)"),
    (lambda d: d.update(stlye=d.pop("style")), "'stlye' (did you mean 'style'?)"),
    # a deleted cue leaves a gap, said with its frames, not a wrong index
    (lambda d: d.update(cues=[dict(c, index=i) for i, c in enumerate(d["cues"][1:])]), "Cue 0 starts at frame 100,"),
    (lambda d: d.update(cues=d["cues"][:1] + d["cues"][2:] if len(d["cues"]) > 2 else d["cues"][:1] * 2),
     "Cue 1 starts at frame 0 (sample 0) but cue 0 ends at frame 100"),
    (lambda d: d.update(fps=29.97), "The plan's fps must be text such as \"24000/1001\", not 29.97"),
])
def test_a_plan_error_names_what_the_user_did(tmp_path, mutate, said):
    with pytest.raises(PlanError) as caught:
        load_plan(_plan_file(tmp_path, mutate))
    assert said in str(caught.value), str(caught.value)


def test_unreadable_plan_files_raise_plan_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{ not json")
    with pytest.raises(PlanError, match="not valid JSON"):
        load_plan(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(PlanError):
        load_plan(bad)
    with pytest.raises(PlanError):
        load_plan(tmp_path / "missing.json")


def test_validate_plan_rejects_a_plan_for_another_video():
    plan = make_plan(_analysis(_media(Fraction(30), 300), [0, 100, 300]), PlanOptions())
    validate_plan(plan, _media(Fraction(30), 300))
    with pytest.raises(PlanError, match="fps"):
        validate_plan(plan, _media(Fraction(25), 300))
    with pytest.raises(PlanError, match="frames"):
        validate_plan(plan, _media(Fraction(30), 301))


def test_a_hand_written_frame_rate_is_read_as_a_number():
    plan = make_plan(_analysis(_media(Fraction(30), 300), [0, 100, 300]), PlanOptions())
    validate_plan(dataclasses.replace(plan, fps="30"), _media(Fraction(30), 300))
    with pytest.raises(PlanError, match="fps"):
        validate_plan(dataclasses.replace(plan, fps="29.97"), _media(Fraction(30), 300))
    with pytest.raises(PlanError, match="not a frame rate"):
        validate_plan(dataclasses.replace(plan, fps="thirty"), _media(Fraction(30), 300))


def test_a_moved_cut_names_the_exact_samples_to_enter():
    """A cut moved by hand (frames edited, samples not) is refused with the numbers to type in;
    typing them in makes the plan valid."""
    media = _media(Fraction(30), 300)
    data = make_plan(_analysis(media, [0, 100, 300]), PlanOptions()).to_dict()
    data["cues"][0]["end_frame"] = data["cues"][1]["start_frame"] = 90
    with pytest.raises(PlanError) as err:
        validate_plan(DubPlan.from_dict(data), media)
    # 90 frames at 30 fps are 3 s, 144000 samples at 48 kHz; the rest, 210 frames, are 7 s.
    assert "set start_sample=0 and num_samples=144000" in str(err.value)
    assert str(err.value).count(". ") == 0 and str(err.value).endswith(".")
    data["cues"][0]["num_samples"] = 144000
    data["cues"][1].update(start_sample=144000, num_samples=336000)
    validate_plan(DubPlan.from_dict(data), media)


def test_a_plan_cut_for_another_video_of_the_same_length_is_refused():
    """Two 40 s clips at 24 fps: the fight's plan does not fit the bird's picture (its shots start
    at other frames), while the bird's own plan, its captions rewritten and one cut moved by a
    frame, still does."""
    media = _media(Fraction(24), 960)
    fight = _analysis(media, [0, 290, 485, 592, 606, 764, 960])
    bird = _analysis(media, [0, 91, 290, 498, 831, 960])
    with pytest.raises(PlanError, match="made for another video") as err:
        check_plan_fits_cuts(make_plan(fight), bird)
    assert "290, 485, 592, 606, 764" in str(err.value) and "91, 290, 498, 831" in str(err.value)
    own = make_plan(bird)
    cues = list(own.cues)
    cues[1] = dataclasses.replace(cues[1], caption="the bird dives", prompt="a dive")
    check_plan_fits_cuts(dataclasses.replace(own, cues=tuple(cues)), _analysis(media, [0, 92, 290, 498, 831, 960]))
    check_plan_fits_cuts(make_plan(_analysis(media, [0, 960])), bird)   # one shot: nothing to tell by
