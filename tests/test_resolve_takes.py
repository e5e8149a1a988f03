"""The Resolve script with the real `dub`: its manifest placed through the fake Resolve, DNxHR
.mxf and uncompressed .avi sources dubbed into a .mov, the container chosen for each source, and
take folders: a rerun in a new style reuses the analysis and gets a folder of its own, the media
of an earlier take is never overwritten, and a failed dub leaves no folder.
"""
from __future__ import annotations

import json
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from tests.resolve_helpers import audio_items, dr, fr, make_setup, rb, runner


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
    manifest = json.loads((video.parent / "cartoon_dub" / "cartoon_dub.json").read_text())
    hits = len(manifest["analysis"]["events"])
    assert message == f"Placed 4 dub clips on 2 new audio track(s), and marked the {hits} hit(s) it plays."
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
