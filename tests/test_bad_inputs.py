"""Bad inputs through the real `dub` command: each one exits 2 with one plain sentence on stderr
(no traceback), leaves the input byte-identical, and leaves no output or temporary file behind."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dub_cli import dub_env, ffmpeg, run_dub, sha256, snapshot


@pytest.fixture(scope="module")
def media(tmp_path_factory, sample_24p) -> dict[str, Path]:
    """Bad and good media, each in a folder of its own under `src/`."""
    root = tmp_path_factory.mktemp("bad-media")
    good = root / "good.mp4"
    shutil.copyfile(sample_24p[0], good)
    files = {"good": good}
    files["empty"] = root / "empty.mp4"
    files["empty"].write_bytes(b"")
    files["truncated"] = root / "truncated.mp4"
    data = good.read_bytes()
    files["truncated"].write_bytes(data[: len(data) // 2])
    files["text"] = root / "notes.mp4"
    files["text"].write_text("This is a shopping list, not a film.\n" * 20)
    files["png"] = root / "still.png"
    ffmpeg("-f", "lavfi", "-i", "color=c=red:s=64x64", "-frames:v", "1", str(files["png"]))
    files["gif"] = root / "moving.gif"   # animated: not a still image, and still no video dub reads
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=64x48:r=10:d=1", str(files["gif"]))
    files["audio_only"] = root / "voice.mp4"
    ffmpeg("-f", "lavfi", "-i", "sine=f=440:d=1", "-c:a", "aac", str(files["audio_only"]))
    files["one_frame"] = root / "one_frame.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=green:s=320x180:r=24", "-frames:v", "1", "-c:v", "libx264",
           "-pix_fmt", "yuv420p", str(files["one_frame"]))
    files["huge"] = root / "huge.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=blue:s=8192x8192:r=2", "-frames:v", "2", "-c:v", "libx264",
           "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(files["huge"]))
    files["other"] = root / "other.mp4"   # another video: a plan made for it must not fit `good`
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=160x90:r=24000/1001:d=2", "-c:v", "libx264", "-pix_fmt", "yuv420p",
           str(files["other"]))
    return files


def _case(media: dict[str, Path], tmp: Path, name: str) -> Path:
    """A private copy of one input in an empty folder (so leftovers are easy to see)."""
    folder = tmp / "case"
    folder.mkdir(exist_ok=True)
    src = media[name]
    dst = folder / src.name
    shutil.copyfile(src, dst)
    return dst


def _assert_user_error(proc, *, folder: Path, before: dict, input_path: Path | None, input_hash: str | None,
                       mention: str | None = None) -> str:
    err = proc.stderr.strip()
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr
    assert err and len(err.splitlines()) == 1, proc.stderr
    assert err.startswith("dub: ") and err.endswith("."), err
    if mention:
        assert mention.lower() in err.lower(), err
    if input_path is not None:
        assert sha256(input_path) == input_hash, "the input was modified"
    assert snapshot(folder) == before, "a file was written or left behind"
    return err


def _run_case(media, tmp_path, name: str, extra: list[str], mention: str | None = None,
              out_name: str | None = "out.mp4") -> str:
    src = _case(media, tmp_path, name)
    args = [src, *extra] + (["-o", src.parent / out_name] if out_name else [])
    before, digest = snapshot(src.parent), sha256(src)
    proc = run_dub(args, dub_env(tmp_path))
    return _assert_user_error(proc, folder=src.parent, before=before, input_path=src, input_hash=digest,
                              mention=mention)


@pytest.mark.parametrize("name, mention", [
    ("empty", "empty"),
    ("truncated", None),
    ("text", None),
    ("png", None),
    ("gif", "is a GIF"),
    ("audio_only", None),
    ("one_frame", "at least 2 frames"),
    ("huge", "8192"),
])
def test_unusable_media_is_refused(media, tmp_path, name, mention):
    _run_case(media, tmp_path, name, ["--backend", "score"], mention)


def test_missing_file(tmp_path):
    proc = run_dub([tmp_path / "nope.mp4"], dub_env(tmp_path))
    _assert_user_error(proc, folder=tmp_path, before=snapshot(tmp_path), input_path=None, input_hash=None,
                       mention="does not exist")


def test_directory_as_input(tmp_path):
    folder = tmp_path / "clips.mp4"
    folder.mkdir()
    before = snapshot(tmp_path)
    proc = run_dub([folder], dub_env(tmp_path))
    _assert_user_error(proc, folder=tmp_path, before=before, input_path=None, input_hash=None, mention="folder")


@pytest.mark.parametrize("extra, mention", [
    (["--style", "polka-disco"], "style"),
    (["--lufs", "3"], "LUFS"),
    (["--lufs", "loud"], "loudness"),
    (["--original-gain", "40", "--keep-original"], "outside"),
    (["--original-gain", "-14"], "add --keep-original"),   # a level for a sound the dub leaves out
    (["--backend", "orchestra"], "backend"),
    (["--timing", "free", "--backend", "score"], "free timing"),
    (["--captioner", "oracle"], "captioner"),
    (["--backend", "audiostory"], "weights"),
    (["--device", "cuda"], "cuda"),
    (["--seed", "many"], "seed"),
    # a model folder that is not there is a typo, not a reason to fall back to the default quietly
    (["--model", "/no/such/checkpoint"], "--model /no/such/checkpoint: there is no folder there"),
    (["--captioner-model", "./no/such/model"], "--captioner-model ./no/such/model: there is no folder there"),
    # an empty value (a script's unset variable) is no path: it would name the current folder
    *([[option, ""], f"argument {option}: needs a path, not an empty value"]
      for option in ("--stems", "--cache-dir", "--soundfont", "--model", "--hits", "--captioner-model")),
])
def test_bad_options(media, tmp_path, extra, mention):
    if "--device" in extra and _has_cuda():
        pytest.skip("this machine has a CUDA GPU, so --device cuda is valid here")
    _run_case(media, tmp_path, "good", extra, mention)


def test_an_empty_output_name_is_refused_as_no_path(media, tmp_path):
    _run_case(media, tmp_path, "good", ["-o", ""], "argument -o/--output: needs a path", out_name=None)


def _has_cuda() -> bool:
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()


def test_unwritable_output_folder(media, tmp_path):
    # /sys refuses new files even to root; a permission bit would not stop a root test run.
    src = _case(media, tmp_path, "good")
    before, digest = snapshot(src.parent), sha256(src)
    proc = run_dub([src, "-o", "/sys/dub-test-out.mp4", "--backend", "score"], dub_env(tmp_path))
    _assert_user_error(proc, folder=src.parent, before=before, input_path=src, input_hash=digest,
                       mention="not writable")
    assert not Path("/sys/dub-test-out.mp4").exists()


def test_an_output_path_two_folders_deep_into_nothing_is_refused_as_a_likely_typo(media, tmp_path):
    """One new folder is made for the output (`-o dubbed/x.mp4`); a path whose parent is missing
    too (`-o typo/deeper/x.mp4`) is refused, for a dub, a review page and a batch alike."""
    src = _case(media, tmp_path, "good")
    env = dub_env(tmp_path)
    before, digest = snapshot(src.parent), sha256(src)
    proc = run_dub([src, "-o", src.parent / "typo" / "deeper" / "x.mp4"], env)
    _assert_user_error(proc, folder=src.parent, before=before, input_path=src, input_hash=digest,
                       mention="does not exist, nor does")
    assert not (src.parent / "typo").exists()
    assert run_dub([src, "-o", src.parent / "dubbed" / "x.mp4"], env).returncode == 0   # one new level
    review = run_dub(["review", src.parent / "dubbed" / "x.json", "-o", tmp_path / "no" / "such" / "p.html"], env)
    assert review.returncode == 2 and "does not exist, nor does" in review.stderr and not (tmp_path / "no").exists()
    batch = run_dub(["batch", src, "-o", tmp_path / "none" / "out"], env)
    assert batch.returncode == 2 and "does not exist, nor does" in batch.stderr and not (tmp_path / "none").exists()


def test_output_folder_is_a_file(media, tmp_path):
    src = _case(media, tmp_path, "good")
    (src.parent / "notes.txt").write_text("x")
    before, digest = snapshot(src.parent), sha256(src)
    proc = run_dub([src, "-o", src.parent / "notes.txt" / "out.mp4"], dub_env(tmp_path))
    _assert_user_error(proc, folder=src.parent, before=before, input_path=src, input_hash=digest)


def test_output_equal_to_input(media, tmp_path):
    src = _case(media, tmp_path, "good")
    before, digest = snapshot(src.parent), sha256(src)
    proc = run_dub([src, "-o", src, "--force"], dub_env(tmp_path))
    _assert_user_error(proc, folder=src.parent, before=before, input_path=src, input_hash=digest, mention="input")


def test_output_exists_without_force(media, tmp_path):
    src = _case(media, tmp_path, "good")
    (src.parent / "out.mp4").write_bytes(b"an earlier result")
    before, digest = snapshot(src.parent), sha256(src)
    proc = run_dub([src, "-o", src.parent / "out.mp4", "--backend", "score"], dub_env(tmp_path))
    _assert_user_error(proc, folder=src.parent, before=before, input_path=src, input_hash=digest,
                       mention="--overwrite")


def test_default_output_exists_without_force(media, tmp_path):
    src = _case(media, tmp_path, "good")
    (src.parent / "good.dub.mp4").write_bytes(b"an earlier result")
    before, digest = snapshot(src.parent), sha256(src)
    proc = run_dub([src, "--backend", "score"], dub_env(tmp_path))
    _assert_user_error(proc, folder=src.parent, before=before, input_path=src, input_hash=digest,
                       mention="already exists")


def test_output_sharing_another_dubs_manifest(media, tmp_path):
    """sub.mkv after sub.mp4 would share sub.json: refused even with --overwrite, so sub.mp4 keeps
    its manifest and nothing of either is replaced."""
    src = _case(media, tmp_path, "good")
    first = run_dub([src, "-o", src.parent / "sub.mp4", "--backend", "score"], dub_env(tmp_path))
    assert first.returncode == 0, first.stderr
    before, digest = snapshot(src.parent), sha256(src)
    proc = run_dub([src, "-o", src.parent / "sub.mkv", "--backend", "score", "--overwrite"], dub_env(tmp_path))
    err = _assert_user_error(proc, folder=src.parent, before=before, input_path=src, input_hash=digest,
                             mention="sub.json is the manifest of sub.mp4")
    assert err.endswith("choose another name with -o."), err
    again = run_dub([src, "-o", src.parent / "sub.mp4", "--backend", "score", "--overwrite"], dub_env(tmp_path))
    assert again.returncode == 0, again.stderr   # the same output's own manifest is replaced as before


@pytest.mark.parametrize("flag", ["--plan", "--hits"])
def test_overwrite_never_replaces_the_plan_or_hit_list_the_run_reads(media, tmp_path, flag):
    """A plan or hit list kept beside the output under the manifest's name (out.json for out.mp4):
    the refusal without --overwrite suggests --overwrite, and with it the manifest would have
    replaced the very file the run reads. Refused in one sentence naming the flag; the file and
    everything else stay as they were."""
    src = _case(media, tmp_path, "good")
    env = dub_env(tmp_path)
    given = src.parent / "out.json"
    if flag == "--plan":
        made = run_dub(["plan", src, "-o", given], env)
        assert made.returncode == 0, made.stderr
        command = ["render", src, "--plan", given]
    else:
        given.write_text('[{"t": 0.5}]')
        command = [src, "--hits", given]
    before, digest = snapshot(src.parent), sha256(src)
    proc = run_dub([*command, "-o", src.parent / "out.mp4", "--backend", "score", "--overwrite"], env)
    err = _assert_user_error(proc, folder=src.parent, before=before, input_path=src, input_hash=digest,
                             mention=flag)
    assert "out.json" in err and err.endswith("choose another name with -o."), err


def test_an_output_folder_is_named_a_folder(media, tmp_path):
    """`-o renders/`, a folder that is there: the refusal says it is a folder, not that its name
    lacks a video extension."""
    (tmp_path / "case" / "renders").mkdir(parents=True)
    _run_case(media, tmp_path, "good", ["--backend", "score"], "is a folder", out_name="renders")


@pytest.mark.parametrize("command", ["analyze", "plan"])
def test_json_is_never_written_over_a_video_or_a_dubs_manifest(media, tmp_path, command):
    """`dub analyze film.mp4 -o take2.mp4 --overwrite`, a slip of the tab key, would have replaced
    a film with JSON, and `-o good.dub.json` a dub's manifest with a plan (the dub's stems and
    timelines then have no record): both refused, and both files stay."""
    src = _case(media, tmp_path, "good")
    film = src.parent / "take2.mp4"
    shutil.copyfile(src, film)
    env = dub_env(tmp_path)
    before, digest = snapshot(src.parent), sha256(src)
    proc = run_dub([command, src, "-o", film, "--overwrite"], env)
    _assert_user_error(proc, folder=src.parent, before=before, input_path=src, input_hash=digest, mention=".json")
    assert sha256(film) == digest
    assert run_dub([src, "--backend", "score"], env).returncode == 0
    manifest = src.parent / "good.dub.json"
    before, kept = snapshot(src.parent), sha256(manifest)
    proc = run_dub([command, src, "-o", manifest, "--overwrite"], env)
    _assert_user_error(proc, folder=src.parent, before=before, input_path=src, input_hash=digest,
                       mention="is the manifest of the dub good.dub.mp4")
    assert sha256(manifest) == kept


def test_output_with_unknown_extension(media, tmp_path):
    _run_case(media, tmp_path, "good", ["--backend", "score"], ".mp4", out_name="out.wav")


def test_malformed_plan_file(media, tmp_path):
    src = _case(media, tmp_path, "good")
    plan = src.parent / "plan.json"
    plan.write_text('{"schema": "dubber.plan/1", "cues": [ {"index": 0,')
    before, digest = snapshot(src.parent), sha256(src)
    proc = run_dub(["render", src, "--plan", plan, "-o", src.parent / "out.mp4", "--backend", "score"],
                   dub_env(tmp_path))
    _assert_user_error(proc, folder=src.parent, before=before, input_path=src, input_hash=digest, mention="plan")


def test_plan_of_another_video(media, tmp_path):
    src = _case(media, tmp_path, "good")
    env = dub_env(tmp_path)
    other_plan = tmp_path / "other.plan.json"
    made = run_dub(["plan", media["other"], "-o", other_plan], env)
    assert made.returncode == 0, made.stderr
    assert json.loads(other_plan.read_text())["cues"]
    before, digest = snapshot(src.parent), sha256(src)
    proc = run_dub(["render", src, "--plan", other_plan, "-o", src.parent / "out.mp4", "--backend", "score"], env)
    err = _assert_user_error(proc, folder=src.parent, before=before, input_path=src, input_hash=digest,
                             mention="plan")
    assert "frames" in err or "fps" in err   # says why it does not fit


@pytest.mark.parametrize("name", ["missing", "empty", "text", "audio_only", "truncated"])
def test_analyze_refuses_bad_media(media, tmp_path, name):
    folder = tmp_path / "case"
    folder.mkdir()
    src = folder / "missing.mp4" if name == "missing" else _case(media, tmp_path, name)
    before = snapshot(folder)
    digest = sha256(src) if src.exists() else None
    proc = run_dub(["analyze", src], dub_env(tmp_path))
    _assert_user_error(proc, folder=folder, before=before, input_path=src if digest else None, input_hash=digest)
    cache = tmp_path / "dub-cache" / "analysis"
    assert not cache.exists() or not any(cache.iterdir()), "a failed analysis was cached"


def test_studio_on_a_taken_port_or_an_unusable_work_folder_says_so(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        taken = run_dub(["studio", "--port", str(port), "--work", tmp_path / "w"], dub_env(tmp_path), timeout=120)
    assert taken.returncode == 2 and "Traceback" not in taken.stderr
    assert taken.stderr.strip().splitlines() == [f"dub: Port {port} on 127.0.0.1 is taken (Address already in use); "
                                                 "stop what uses it or give another --port."]
    assert not (tmp_path / "w").exists()   # a refused start leaves no work folder behind
    (tmp_path / "a file").write_text("not a folder")
    blocked = run_dub(["studio", "--port", str(port), "--work", tmp_path / "a file" / "w"], dub_env(tmp_path),
                      timeout=120)   # the port free again: the work folder is what is refused
    assert blocked.returncode == 2 and len(blocked.stderr.strip().splitlines()) == 1
    assert "work folder" in blocked.stderr and blocked.stderr.strip().endswith("choose another with --work.")


def test_a_picture_too_large_is_refused_by_the_limit_it_breaks():
    from types import SimpleNamespace

    from dubber.errors import InputError
    from dubber.options import check_media

    def media(w: int, h: int) -> SimpleNamespace:
        return SimpleNamespace(width=w, height=h, frame_count=48, duration_s=2.0)

    with pytest.raises(InputError, match=r"width of 8200 pixels \(8200x64\) is over the 8192-pixel limit per side"):
        check_media(media(8200, 64))
    with pytest.raises(InputError, match=r"8192x8192 pixels, 67.1 million, over the limit of 35.4 million"):
        check_media(media(8192, 8192))
    check_media(media(8192, 4320))


LONG = "x" * 300   # over the 255 bytes a file name may have


@pytest.mark.parametrize("extra, out_name", [
    ([], f"{LONG}.mp4"),
    (["--stems", LONG], "out.mp4"),
    (["--hits", f"{LONG}.txt"], "out.mp4"),
    (["--soundfont", f"{LONG}.sf2"], "out.mp4"),
])
def test_a_name_too_long_for_the_file_system_is_one_sentence(media, tmp_path, extra, out_name):
    _run_case(media, tmp_path, "good", ["--backend", "score", *extra], "too long", out_name=out_name)


def test_an_input_name_too_long_or_holding_a_nul_is_one_sentence(tmp_path, capsys):
    from dubber.cli.main import main

    proc = run_dub([tmp_path / f"{LONG}.mp4"], dub_env(tmp_path))
    _assert_user_error(proc, folder=tmp_path, before=snapshot(tmp_path), input_path=None, input_hash=None,
                       mention="too long")
    assert main([str(tmp_path / "a\x00b.mp4")]) == 2   # no shell passes a NUL: a script or a form can
    assert "NUL character" in capsys.readouterr().err


@pytest.mark.parametrize("track", ["music", "original"])
def test_a_full_scratch_disk_is_one_sentence_naming_the_work_folder(media, tmp_path, monkeypatch, capsys, track):
    """The working tracks fill their disk as they are written, mid-render or while the original
    sound is read: one sentence that names the work folder and the way out (exit 2, and the
    error event for scripts), never a traceback, and never the input blamed as unplayable."""
    import errno
    import os

    from dubber.cli.main import main

    write = os.pwrite

    def disk_full(fd, data, offset):   # the disk fills while this track is written
        if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")).startswith(f"{track}-"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return write(fd, data, offset)

    src = _case(media, tmp_path, "good")
    monkeypatch.setenv("DUB_CACHE_DIR", str(tmp_path / "dub-cache"))
    monkeypatch.setattr(os, "pwrite", disk_full)
    before = snapshot(src.parent)
    code = main([str(src), "-o", str(src.parent / "out.mp4"), "--backend", "score", "--json-progress", "--keep-original"])
    out, err = capsys.readouterr()
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "is full" in err and str(tmp_path / "dub-cache") in err and "--cache-dir" in err, err
    assert f"the {track} track" in err and "decode" not in err, err
    assert json.loads(out.strip().splitlines()[-1])["event"] == "error", out
    assert snapshot(src.parent) == before


@pytest.mark.parametrize("stage", ["_plan", "_mix"])
def test_an_input_deleted_while_it_is_dubbed_is_one_sentence(media, tmp_path, monkeypatch, capsys, stage):
    """A watch folder's operator or a script removes the video mid-run (before its fingerprint is
    taken, or before the mux reads its picture): one sentence saying so, exit 2, and no output."""
    from dubber import api
    from dubber.cli.main import main

    src = _case(media, tmp_path, "good")
    monkeypatch.setenv("DUB_CACHE_DIR", str(tmp_path / "dub-cache"))
    original = getattr(api, stage)

    def removed_first(*args, **kwargs):
        src.unlink(missing_ok=True)
        return original(*args, **kwargs)

    monkeypatch.setattr(api, stage, removed_first)
    assert main([str(src), "-o", str(src.parent / "out.mp4"), "--backend", "score", "--no-cache"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    assert "was moved or deleted while it was being dubbed" in err.strip().splitlines()[-1], err   # after the backend line
    assert sorted(p.name for p in src.parent.iterdir()) == []
