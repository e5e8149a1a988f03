"""`dub bundle OUT.json`: the dub's timeline and every file it plays, in one .otioz that opens on
another machine."""
from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from pathlib import Path

import opentimelineio as otio
import pytest

from dub_cli import dub_env, run_dub
from dubber.cli.main import main


@pytest.fixture(scope="module")
def dubbed(sample_24p, tmp_path_factory):
    """A video with its own sound, dubbed through the CLI with stems and timelines, in a folder
    whose name has a space and an accent."""
    video, _ = sample_24p
    folder = tmp_path_factory.mktemp("bundle") / "Épisode 1"
    folder.mkdir()
    src = folder / "scene.mp4"
    shutil.copy(video, src)
    proc = run_dub([src, "-o", folder / "scene.dub.mp4", "--backend", "score", "--timeline"], dub_env(folder),
                   timeout=300)
    assert proc.returncode == 0, proc.stderr
    return folder


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _clip_layout(timeline) -> list[tuple]:
    return [(track.name, clip.name, clip.range_in_parent(), clip.source_range, clip.enabled)
            for track in timeline.tracks for clip in track.find_clips()]


def test_the_bundle_carries_every_file_the_timeline_plays_and_opens_elsewhere(dubbed, tmp_path, capsys):
    assert main(["bundle", str(dubbed / "scene.dub.json")]) == 0
    bundle = dubbed / "scene.dub.otioz"
    assert bundle.is_file() and "bundle written to" in capsys.readouterr().err
    original = otio.adapters.read_from_file(str(dubbed / "scene.dub.otio"))
    played = {Path(c.media_reference.target_url) for c in original.find_clips()}
    # The picture, the stems, the mix and the source's own sound (the "original" track).
    assert dubbed / "scene.mp4" in played and dubbed / "scene.dub.mp4" in played and len(played) >= 5

    # Another machine: only the bundle travels. Unpacked there, every clip finds its file, byte
    # for byte the one the dub wrote, and every clip keeps its place on the timeline.
    elsewhere = tmp_path / "other machine"
    with zipfile.ZipFile(bundle) as archive:
        archive.extractall(elsewhere)
    moved = otio.adapters.read_from_file(str(elsewhere / "content.otio"))
    assert _clip_layout(moved) == _clip_layout(original)
    by_name = {path.name: _digest(path.read_bytes()) for path in played}
    for clip in moved.find_clips():
        target = clip.media_reference.target_url
        assert not Path(target).is_absolute() and "://" not in target, target
        carried = elsewhere / target
        assert carried.is_file() and _digest(carried.read_bytes()) == by_name[carried.name]
    assert not [p for p in dubbed.iterdir() if ".partial" in p.name]


def test_an_existing_bundle_is_kept_unless_overwrite(dubbed, capsys):
    bundle = dubbed / "kept.otioz"
    bundle.write_bytes(b"an earlier bundle")
    assert main(["bundle", str(dubbed / "scene.dub.json"), "-o", str(bundle)]) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--overwrite" in err and err.count("\n") == 1
    assert bundle.read_bytes() == b"an earlier bundle"
    assert main(["bundle", str(dubbed / "scene.dub.json"), "-o", str(bundle), "--overwrite"]) == 0
    assert zipfile.is_zipfile(bundle)


def test_o_names_a_folder_with_a_slash_and_a_bundle_is_an_otioz(dubbed, tmp_path, capsys):
    """`-o handoff/`, a folder not made yet: the bundle goes inside it under its own name, not
    into a file called handoff. A name that is no .otioz is refused in one sentence, --overwrite
    or not, so a bundle never lands on the manifest, the video or the timeline it carries."""
    assert main(["bundle", str(dubbed / "scene.dub.json"), "-o", f"{tmp_path / 'handoff'}/"]) == 0
    assert zipfile.is_zipfile(tmp_path / "handoff" / "scene.dub.otioz")
    capsys.readouterr()
    assert main(["bundle", str(dubbed / "scene.dub.json"), "-o", str(tmp_path / "handoff.zip")]) == 2
    err = capsys.readouterr().err
    assert ".otioz" in err and err.count("\n") == 1 and not (tmp_path / "handoff.zip").exists()
    # Nor does --overwrite let the bundle replace a file of the dub it bundles (a script's --force).
    for own in ("scene.dub.json", "scene.dub.mp4", "scene.dub.otio", "scene.mp4"):
        kept = (dubbed / own).read_bytes()
        assert main(["bundle", str(dubbed / "scene.dub.json"), "-o", str(dubbed / own), "--overwrite"]) == 2
        assert (dubbed / own).read_bytes() == kept and ".otioz" in capsys.readouterr().err


def test_a_dub_without_a_timeline_or_with_a_file_gone_is_one_sentence(dubbed, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(dubbed, copy)
    manifest = json.loads((copy / "scene.dub.json").read_text())
    no_timeline = {**manifest, "outputs": {k: v for k, v in manifest["outputs"].items() if k != "otio"}}
    (copy / "plain.dub.json").write_text(json.dumps(no_timeline))
    assert main(["bundle", str(copy / "plain.dub.json")]) == 2
    err = capsys.readouterr().err
    assert "--timeline" in err and err.count("\n") == 1 and "Traceback" not in err

    gone = next((dubbed / "scene.dub_stems").glob("*.fx.wav"))   # the timeline names the originals' paths
    hidden = gone.with_name("hidden.wav")
    gone.rename(hidden)
    try:
        assert main(["bundle", str(dubbed / "scene.dub.json"), "-o", str(tmp_path / "x.otioz")]) == 2
    finally:
        hidden.rename(gone)
    err = capsys.readouterr().err
    assert gone.name in err and "not there" in err and not (tmp_path / "x.otioz").exists()


def test_a_dub_folder_moved_or_copied_whole_bundles_its_own_files(dubbed, tmp_path, capsys):
    """The .otio names the files where they were written; the manifest names them relative to
    itself. A copy of the folder bundles the copy's files, not the original's; moved away from
    where it was written, it still bundles; a file missing from the copy is said, even while the
    original folder still has it."""
    copy = tmp_path / "copied" / "Épisode 1"
    shutil.copytree(dubbed, copy)
    mix = next((copy / "scene.dub_stems").glob("*.mix.wav"))
    mix.write_bytes(mix.read_bytes() + b"\0\0")   # the copy's own mix, told apart from the original's
    assert main(["bundle", str(copy / "scene.dub.json"), "-o", str(copy / "copy.otioz")]) == 0, capsys.readouterr().err
    with zipfile.ZipFile(copy / "copy.otioz") as archive:
        carried = {Path(n).name: _digest(archive.read(n)) for n in archive.namelist() if n.startswith("media/")}
    assert carried[mix.name] == _digest(mix.read_bytes())
    assert carried["scene.mp4"] == _digest((copy / "scene.mp4").read_bytes())   # the source beside it moved too

    parked = dubbed.with_name("parked")
    dubbed.rename(parked)          # the original folder gone: the copy stands for a moved dub
    try:
        assert main(["bundle", str(copy / "scene.dub.json"), "-o", str(tmp_path / "moved.otioz")]) == 0
    finally:
        parked.rename(dubbed)
    assert zipfile.is_zipfile(tmp_path / "moved.otioz")

    fx = next((copy / "scene.dub_stems").glob("*.fx.wav"))
    fx.unlink()
    capsys.readouterr()
    assert main(["bundle", str(copy / "scene.dub.json"), "-o", str(tmp_path / "partial.otioz")]) == 2
    err = capsys.readouterr().err
    assert str(fx) in err and "not there" in err and not (tmp_path / "partial.otioz").exists()


def test_two_files_of_one_name_each_travel_under_a_name_of_their_own(sample_24p, tmp_path, capsys):
    """A dub written as out/scene.mp4 from scene.mp4 plays both files; the bundle keeps one media
    folder, so one of them is stored as scene-2.mp4 and the clips that play it point there."""
    video, _ = sample_24p
    src = tmp_path / "scene.mp4"
    shutil.copy(video, src)
    (tmp_path / "out").mkdir()
    proc = run_dub([src, "-o", tmp_path / "out" / "scene.mp4", "--backend", "score", "--timeline"],
                   dub_env(tmp_path), timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert main(["bundle", str(tmp_path / "out" / "scene.json")]) == 0, capsys.readouterr().err
    original = otio.adapters.read_from_file(str(tmp_path / "out" / "scene.otio"))
    elsewhere = tmp_path / "unpacked"
    with zipfile.ZipFile(tmp_path / "out" / "scene.otioz") as archive:
        archive.extractall(elsewhere)
    moved = otio.adapters.read_from_file(str(elsewhere / "content.otio"))
    assert _clip_layout(moved) == _clip_layout(original)
    pairs = {(c.media_reference.target_url, m.media_reference.target_url)
             for c, m in zip(original.find_clips(), moved.find_clips(), strict=True)}
    assert {Path(a).name for a, _ in pairs} >= {"scene.mp4"} and len({a for a, _ in pairs}) == len({b for _, b in pairs})
    for played, carried in pairs:
        assert _digest((elsewhere / carried).read_bytes()) == _digest(Path(played).read_bytes()), (played, carried)
    assert {Path(b).name for _, b in pairs} >= {"scene.mp4", "scene-2.mp4"}
