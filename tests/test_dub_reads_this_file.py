"""A dub names the file it was given, and keeps the style each shot was given, whatever the
cache or the plan file held before."""
from __future__ import annotations

import json
import shutil
from fractions import Fraction
from pathlib import Path

import pytest

from dubber import api
from dubber.options import DubOptions


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    from samples.synth import SynthSpec, synthesize

    path = tmp_path_factory.mktemp("reads-this-file") / "clip.mp4"
    synthesize(path, SynthSpec(width=160, height=90, fps=Fraction(24), duration_s=8.0, shot_s=2.0, audio=True,
                               seed=21, preset="ultrafast"))
    return path


def otio_media(otio_path: Path) -> set[str]:
    import opentimelineio as otio

    timeline = otio.adapters.read_from_file(str(otio_path))
    return {clip.media_reference.target_url for clip in timeline.find_clips()
            if isinstance(clip.media_reference, otio.schema.ExternalReference)}


def test_a_copy_of_a_dubbed_file_is_named_in_its_own_manifest_and_timeline(tmp_path, clip):
    """The analysis cache is keyed by content, so a copy finds the first file's analysis; its
    dub must still point at the copy, not at a file that may be gone."""
    first, second = tmp_path / "a" / "clip.mp4", tmp_path / "b" / "clip.mp4"
    for path in (first, second):
        path.parent.mkdir()
        shutil.copy2(clip, path)
    options = DubOptions(backend="score", captioner="motion", timeline=True, keep_original=True,
                         cache_dir=str(tmp_path / "cache"))
    api.dub(first, tmp_path / "out-a" / "clip.dub.mp4", options)
    shutil.rmtree(first.parent)
    result = api.dub(second, tmp_path / "out-b" / "clip.dub.mp4", options)
    manifest = json.loads(Path(result.outputs["manifest"]).read_text())
    assert Path(manifest["media"]["path"]) == second
    [otio_file] = (tmp_path / "out-b").glob("*.otio")
    media = otio_media(otio_file)
    assert any(url.endswith("/b/clip.mp4") for url in media), media
    assert not any("/a/clip.mp4" in url for url in media), media


def test_a_shot_given_its_own_style_keeps_it_and_a_restyled_plan_still_follows(tmp_path, clip):
    from dubber.styles import get_style

    options = DubOptions(backend="score", captioner="motion", cache_dir=str(tmp_path / "cache"))
    planned = api.plan(clip, options)
    assert len(planned.cues) >= 3 and planned.style == "tom-and-jerry"
    noir_plan = api.plan(clip, DubOptions(backend="score", captioner="motion", style="noir",
                                          cache_dir=str(tmp_path / "cache")))
    data = planned.to_dict()
    data["cues"][1]["prompt"] = noir_plan.cues[1].prompt   # one shot restyled, as the studio does
    own = tmp_path / "own.plan.json"
    own.write_text(json.dumps(data))
    result = api.dub(clip, tmp_path / "own" / "clip.dub.mp4", DubOptions(
        backend="score", captioner="motion", cache_dir=str(tmp_path / "cache"), plan_path=str(own)))
    cues = json.loads(Path(result.outputs["manifest"]).read_text())["plan"]["cues"]
    assert cues[1]["prompt"] == noir_plan.cues[1].prompt
    assert cues[1]["prompt"].endswith(get_style("noir").prompt)
    assert all(c["prompt"] == p.prompt for c, p in zip(cues, planned.cues) if c["index"] != 1)
    # The whole plan's style edited by hand: every prompt left as planned follows it, except
    # the shot that has a style of its own.
    data["style"] = "silent-film"
    whole = tmp_path / "whole.plan.json"
    whole.write_text(json.dumps(data))
    result = api.dub(clip, tmp_path / "whole" / "clip.dub.mp4", DubOptions(
        backend="score", captioner="motion", cache_dir=str(tmp_path / "cache"), plan_path=str(whole)))
    cues = json.loads(Path(result.outputs["manifest"]).read_text())["plan"]["cues"]
    assert cues[1]["prompt"] == noir_plan.cues[1].prompt
    assert all(c["prompt"].endswith(get_style("silent-film").prompt) for c in cues if c["index"] != 1)
