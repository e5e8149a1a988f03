"""The hits of a dub as markers on the Resolve timeline: on the frames that show them, inside
the clip's used range, sharing a shot's marker where both fall on one frame, and named so that a
timeline exported from Resolve as .otio reads back as the same hits (`dub --hits`)."""
from __future__ import annotations

from fractions import Fraction
from types import SimpleNamespace

import pytest

from integrations.resolve import dub_resolve as dr
from integrations.resolve import resolve_bridge as rb
from tests.resolve_helpers import CAPTIONS, RATES, TIMELINE_START, make_manifest, make_setup, runner

# Media frames of the events (the clip skips the media's first 20 frames and starts 100 frames
# into the timeline, so media frame f shows on timeline offset f + 80).
EVENTS = [
    {"frame": 10, "end_frame": 11, "kind": "impact", "strength": 0.7},     # trimmed off: no marker
    {"frame": 48, "end_frame": 49, "kind": "impact", "strength": 0.9},     # the second shot's first frame
    {"frame": 60, "end_frame": 61, "kind": "landing", "strength": 0.5},
    {"frame": 90, "end_frame": 102, "kind": "whoosh", "strength": 0.64},   # lasts 12 frames
    {"frame": 239, "end_frame": 240, "kind": "flash", "strength": 1.0},    # the clip's last frame
]


def _dub_with_events(tmp_path, marks=None):
    analysis = {**make_manifest(RATES["24"])["analysis"], "events": EVENTS}
    resolve, timeline, config, _ = make_setup(tmp_path, "24", analysis=analysis)
    if marks:
        timeline._marks = {"video": {"in": marks[0], "out": marks[1]}, "audio": {"in": marks[0], "out": marks[1]}}
    dr.dub_into_timeline(resolve, config, runner())
    return {offset: (m["name"], m["color"], m["duration"], m["note"]) for offset, m in timeline._markers.items()}


def test_each_hit_gets_a_marker_on_the_frame_showing_it(tmp_path):
    assert _dub_with_events(tmp_path) == {
        100: ("Shot 1", "Blue", 28, CAPTIONS[0]),
        128: ("impact 0.90 - Shot 2", "Red", 72, CAPTIONS[1]),   # one marker per frame in Resolve
        140: ("landing 0.50", "Sand", 1, ""),
        170: ("whoosh 0.64", "Green", 12, ""),
        200: ("Shot 3", "Blue", 120, CAPTIONS[2]),
        319: ("flash 1.00", "Yellow", 1, ""),
    }


def test_only_the_hits_inside_the_marked_range_are_marked(tmp_path):
    """Mark in 130 frames in, out on frame 259: the landing and the whoosh are in it."""
    markers = _dub_with_events(tmp_path, marks=(130, 259))
    assert sorted(markers) == [130, 140, 170, 200]
    assert [markers[o][0] for o in (140, 170)] == ["landing 0.50", "whoosh 0.64"]


@pytest.mark.parametrize("source_fps, timeline_fps", [(Fraction(24), Fraction(30000, 1001)),
                                                      (Fraction(30000, 1001), Fraction(25))])
def test_hits_land_on_the_timeline_frame_of_their_moment_at_another_rate(source_fps, timeline_fps):
    manifest = {"analysis": {"events": [{"frame": f, "end_frame": f + 1, "kind": "impact", "strength": 0.5}
                                        for f in range(30, 200, 7)]}}
    clip = rb.ClipSpan(108000, 24, 200, timeline_fps, source_fps)
    markers = rb.hit_markers(manifest, clip)
    events = [e["frame"] for e in manifest["analysis"]["events"]]
    # shown on the clip: from its first frame to its last, the moment rounded to a timeline frame
    inside = [f for f in events if 24 <= f and round((f - 24) * timeline_fps / source_fps) < 200]
    assert len(markers) == len(inside) > 10
    for frame, marker in zip(inside, markers):
        moment = (frame - 24) / source_fps   # seconds into the clip
        assert abs(Fraction(marker.record_frame - clip.record_start_frame) / timeline_fps - moment) \
            <= Fraction(1, 2) / timeline_fps, (frame, marker)


def test_a_timeline_exported_from_resolve_reads_back_as_the_hits(tmp_path):
    """The markers as Resolve writes them to an .otio (timeline markers at timeline time, its
    shot markers among them) read back with `dub --hits` as the marked hits alone."""
    otio = pytest.importorskip("opentimelineio")
    from dubber.spotting import read_hit_list

    markers = _dub_with_events(tmp_path)
    rate = 24.0
    timeline = otio.schema.Timeline(name="Edit 1", global_start_time=otio.opentime.RationalTime(TIMELINE_START["24"],
                                                                                                rate))
    track = otio.schema.Track(kind=otio.schema.TrackKind.Video)
    track.append(otio.schema.Gap(source_range=otio.opentime.TimeRange(duration=otio.opentime.RationalTime(400, rate))))
    timeline.tracks.append(track)
    for offset, (name, colour, duration, note) in sorted(markers.items()):
        timeline.tracks.markers.append(otio.schema.Marker(name=name, color=colour.upper(), comment=note,
                                                          marked_range=otio.opentime.TimeRange(
                                                              otio.opentime.RationalTime(offset, rate),
                                                              otio.opentime.RationalTime(duration, rate))))
    path = tmp_path / "exported.otio"
    otio.adapters.write_to_file(timeline, str(path))
    hits = read_hit_list(path)
    assert [(h.when, h.kind, h.strength) for h in hits] == [
        ("01:00:05:08", "impact", 0.9), ("01:00:05:20", "landing", 0.5), ("01:00:07:02", "whoosh", 0.64),
        ("01:00:13:07", "flash", 1.0)]
    assert hits[2].length_s == 0.5   # the whoosh's 12 frames


def test_the_message_says_how_many_hits_were_marked(tmp_path):
    analysis = {**make_manifest(RATES["24"])["analysis"], "events": EVENTS}
    resolve, _, config, _ = make_setup(tmp_path, "24", analysis=analysis)
    message = dr.dub_into_timeline(resolve, config, runner())
    assert message == "Placed 6 dub clips on 2 new audio track(s), and marked the 4 hit(s) it plays."


def test_two_hits_on_one_timeline_frame_keep_one_marker():
    """A 60 fps video on a 24 fps timeline: events two frames apart show on one timeline frame,
    a shot's first frame among them; the marker there names the first hit and the shot."""
    timeline = SimpleNamespace(markers={})
    timeline.AddMarker = lambda frame, *rest: timeline.markers.setdefault(frame, rest) is rest
    ctx = SimpleNamespace(timeline=timeline, start_frame=86400, fps=Fraction(24))
    clip = rb.ClipSpan(86400, 0, 100, Fraction(24), Fraction(60))
    manifest = {"analysis": {"events": [{"frame": f, "kind": k, "strength": 0.5}
                                        for f, k in ((50, "impact"), (51, "landing"), (80, "flash"), (81, "impact"))]}}
    hits = rb.hit_markers(manifest, clip)
    assert [h.record_frame - 86400 for h in hits] == [20, 20, 32, 32]
    shot = rb.Placement("fx", 1, 86400 + 20, 20, 40, "a caption")
    rb.add_markers(ctx, [shot], Fraction(24), hits)
    assert {f: m[1] for f, m in timeline.markers.items()} == {20: "impact 0.50 - Shot 2", 32: "flash 0.50"}
