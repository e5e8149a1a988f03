"""`dub studio`: the real server in a subprocess, driven with gradio_client as a script would.
What the page does with a project, called in-process without the server, is in
test_studio_edits.py."""
from __future__ import annotations

import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from studio_harness import SAMPLE, start_studio

gradio_client = pytest.importorskip("gradio_client", reason="the studio extra is not installed "
                                    "(pip install -e '.[ml,test]' brings it)")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

STYLE = "tom-and-jerry"
PROMPT_COLUMN = 5
UPLOAD_LIMIT_MB = 1   # the sample is 0.34 MB


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    server = start_studio(tmp_path_factory.mktemp("studio"), "--max-upload-mb", str(UPLOAD_LIMIT_MB))
    yield server
    server.stop()


@pytest.fixture()
def client(studio, tmp_path):
    return Client(studio.url, verbose=False, download_files=str(tmp_path / "downloads"))


def _cli_error(video: Path) -> str:
    """The one-line error the `dub` command prints for this input, without its "dub: " prefix."""
    run = subprocess.run([sys.executable, "-m", "dubber.cli", str(video), "-o", str(video.with_name("out.mp4"))],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, run.stderr
    line = run.stderr.strip()
    assert line.startswith("dub: ") and "\n" not in line, line
    return line[len("dub: "):]


def test_dub_endpoint_returns_the_sample_with_a_new_soundtrack(client):
    from dubber.media.audio_io import decode_audio
    import vision

    job = client.submit(video=handle_file(str(SAMPLE)), style=STYLE, seed=3, api_name="/dub")
    stages = set()
    while not job.done():   # the progress bar's stages, as a script sees them
        stages |= {p.desc for p in (job.status().progress_data or ()) if p.desc}
        time.sleep(0.05)
    out = Path(job.result())

    # Stages served from the cache can pass between two polls; the last ones always take time.
    assert len(stages) >= 3 and {"mix", "mux"} & stages, stages
    assert out.name == "cartoon_demo.take-001.dub.mp4"
    media, source = vision.probe(str(out)), vision.probe(str(SAMPLE))
    assert media.has_audio and media.frame_count == source.frame_count and media.fps == source.fps
    audio = decode_audio(str(out), 48_000, media.total_samples(48_000))
    assert float(np.sqrt(np.mean(np.square(audio)))) > 1e-3   # a soundtrack, not silence


def _take_stems(downloads: list[str]) -> tuple[dict[str, np.ndarray], list[dict]]:
    """The stem WAVs of a take (by stem name) and its plan's cues, from its downloaded files."""
    import json

    import soundfile

    files = {Path(p).name: Path(p) for p in downloads}
    manifest = json.loads(next(p for n, p in files.items() if n.endswith(".dub.json")).read_text())
    stems = {}
    for name in ("music", "fx"):
        path = next(p for n, p in files.items() if n.endswith(f".{name}.wav"))
        stems[name] = soundfile.read(str(path), dtype="float32", always_2d=True)[0].T
    return stems, manifest["plan"]["cues"]


def test_a_prompt_edit_the_score_engine_ignores_is_said_and_not_rendered_as_a_change(client, studio):
    """The score engine (the default backend here) reads no per-shot prompt: the page says so
    before rendering, a take whose only change is a prompt is not rendered, and a take with a
    mute too records the prompt it played, with every shot before the muted one as it was."""
    table, strip, original, status = client.predict(SAMPLE.name, STYLE, 0, api_name="/open_path")
    assert len(table["data"]) == len(strip) == 5 and "5 shots" in status
    page = urllib.request.urlopen(studio.url, timeout=10).read().decode()
    assert "per-shot prompts, seeds and styles are read by AudioStory only" in page
    first = client.predict(table, "auto", api_name="/render")
    before, cues = _take_stems(first[3])

    table = first[0]
    table["data"][2][PROMPT_COLUMN] = "A cat slips on a banana peel and lands in a tower of pots."
    second = client.predict(table, "auto", api_name="/render")
    assert second[-1].startswith("Nothing rendered: the only changes (shot 3's prompt)"), second[-1]
    assert "only mute changes this take" in second[-1] and Path(second[1]).name == Path(first[1]).name
    assert "banana peel" in second[0]["data"][2][PROMPT_COLUMN]   # the edit stays in the table
    assert len(list(studio.work.glob("projects/*/takes/take-002"))) == 0

    table = second[0]
    table["data"][4][-1] = True   # mute the last shot
    third = client.predict(table, "auto", api_name="/render")
    after, played_cues = _take_stems(third[3])
    assert played_cues[2]["prompt"] == cues[2]["prompt"] and "banana peel" not in played_cues[2]["prompt"]
    for cue in cues[:4]:   # the shots before the muted one, sample for sample
        span = slice(cue["start_sample"], cue["start_sample"] + cue["num_samples"])
        for name in ("music", "fx"):
            assert np.abs(before[name]).max() > 0 and np.array_equal(before[name][:, span], after[name][:, span]), name
    assert "with the **score** backend: 5 shots played again from the cached analysis" in third[-1]
    assert "Not used in this take: shot 3's prompt." in third[-1] and "from the cache." not in third[-1]
    assert Path(third[1]).name != Path(first[1]).name   # a new take, so a new file for the player
    downloads = {Path(p).name for p in third[3]}
    assert {"cartoon_demo.take-002.dub.mp4", "cartoon_demo.take-002.dub.json", "cartoon_demo.take-002.dub.otio",
            "cartoon_demo.take-002.dub.fcpxml"} <= downloads
    assert any(name.endswith("mix.wav") for name in downloads) and any("music" in name for name in downloads)


def test_a_bad_upload_gets_the_cli_one_sentence_error(client, studio, tmp_path):
    logged = len(studio.log_text())
    bad = tmp_path / "holiday.mp4"
    bad.write_bytes(b"these bytes are no video at all\n" * 64)
    expected = _cli_error(bad).replace(str(bad), bad.name)

    with pytest.raises(AppError) as caught:
        client.predict(handle_file(str(bad)), STYLE, 0, api_name="/open_upload")

    assert str(caught.value) == expected
    assert "Traceback" not in expected and expected.count(". ") == 0 and expected.endswith(".")
    # the one-call /dub endpoint names the file the same way, not by the server's copy of it
    with pytest.raises(AppError) as caught:
        client.predict(handle_file(str(bad)), STYLE, 0, api_name="/dub")
    assert str(caught.value) == expected
    # a user's mistake is no crash: the terminal gets its sentence, not a traceback
    terminal = studio.log_text()[logged:]
    assert "Traceback" not in terminal and terminal.count(expected) == 2, terminal


def test_an_upload_over_the_size_limit_is_refused(client, studio, tmp_path):
    big = tmp_path / "long.mp4"
    big.write_bytes(SAMPLE.read_bytes() * 4)   # 1.4 MB

    with pytest.raises(ValueError, match="exceeds the maximum file size"):   # the client reads the limit
        client.predict(handle_file(str(big)), STYLE, 0, api_name="/open_upload")
    import httpx   # and the server enforces it against a client that does not

    answer = httpx.post(f"{studio.url}gradio_api/upload", files={"files": ("long.mp4", big.read_bytes(), "video/mp4")})

    assert answer.status_code == 413 and "maximum allowed size" in answer.text
    assert not list(studio.work.glob("gradio/*/long.mp4")) and not list(studio.work.glob("projects/long-*"))


@pytest.mark.parametrize("where", ["absolute", "dotdot", "link"])
def test_a_path_outside_the_root_is_refused(client, studio, where):
    if where == "absolute":
        text = str(SAMPLE)
    elif where == "dotdot":
        text = "../" * 12 + str(SAMPLE).lstrip("/")
    else:
        link = studio.root / f"outside-{where}.mp4"
        link.unlink(missing_ok=True)
        link.symlink_to(SAMPLE)
        text = link.name

    with pytest.raises(AppError) as caught:
        client.predict(text, STYLE, 0, api_name="/open_path")

    message = str(caught.value)
    assert "outside the studio's folder" in message and "\n" not in message, message


@pytest.mark.parametrize("text, words", [("a" * 300 + ".mp4", "too long"), ("x/" * 3000 + "v.mp4", "too long"),
                                         ("sub/\x00.mp4", "NUL character")], ids=["name", "path", "nul"])
def test_a_path_no_file_system_takes_is_one_notice(studio, client, text, words):
    with pytest.raises(AppError) as caught:
        client.predict(text, STYLE, 0, api_name="/open_path")
    message = str(caught.value)
    assert words in message and "\n" not in message, message


def test_the_server_serves_its_work_folder_only(studio, client):
    client.predict(SAMPLE.name, STYLE, 0, api_name="/open_path")
    thumb = next(studio.work.glob("projects/*/thumbs/cue-00000.jpg"))

    def status_of(path: Path) -> int:
        try:
            with urllib.request.urlopen(f"{studio.url}gradio_api/file={path}", timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as err:
            return err.code

    assert status_of(thumb) == 200
    assert status_of(SAMPLE) == 403                                   # the user's own file, outside it
    assert status_of(studio.root / SAMPLE.name) == 403                # even inside --root
    assert status_of(Path(__file__)) == 403
    assert "studio on http://127.0.0.1:" in studio.log_text()   # this machine only, unless told otherwise


def _backends_offered(client: Client) -> list[str]:
    parameters = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/render"]["parameters"]
    return next(p["type"]["enum"] for p in parameters if p["component"] == "Radio")


def _torch_loaded(pid: int) -> bool:
    return "libtorch" in Path(f"/proc/{pid}/maps").read_text()


def test_audiostory_is_offered_with_weights_and_loads_torch_only_when_chosen(client, tmp_path_factory):
    pytest.importorskip("torch")
    from audiostory_core.testing import write_tiny_checkpoint

    assert "audiostory" not in _backends_offered(client)   # no weights on this machine for that server
    tiny = write_tiny_checkpoint(tmp_path_factory.mktemp("tiny-audiostory"))
    server = start_studio(tmp_path_factory.mktemp("studio-audiostory"), "--model", str(tiny))
    try:
        with_weights = Client(server.url, verbose=False, download_files=str(server.work.parent / "downloads"))
        assert "audiostory" in _backends_offered(with_weights)
        table = with_weights.predict(SAMPLE.name, STYLE, 0, api_name="/open_path")[0]
        assert not _torch_loaded(server.process.pid)   # started, opened and planned without torch

        status = with_weights.predict(table, "audiostory", api_name="/render")[-1]

        assert "**audiostory** backend: 5 shots rendered" in status
        assert _torch_loaded(server.process.pid)
    finally:
        server.stop()


def test_starting_the_app_imports_neither_torch_nor_more_than_it_needs(tmp_path):
    code = ("import sys; from pathlib import Path; import dubber.cli.main, dubber.studio;"
            "assert 'gradio' not in sys.modules, 'dub studio --help must not load gradio';"
            "from dubber.studio.app import build_app; from dubber.studio.project import StudioSettings;"
            f"build_app(StudioSettings(work_dir=Path({str(tmp_path)!r})));"
            "print('torch' in sys.modules, 'transformers' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["False", "False"]


@pytest.mark.parametrize("args, fragment", [
    (["--root", "/no/such/folder"], "is not a folder"),
    (["--port", "70000"], "is not between 1 and 65535"),
])
def test_bad_studio_options_are_one_line_and_exit_2(tmp_path, args, fragment):
    run = subprocess.run([sys.executable, "-m", "dubber.cli", "studio", "--work", str(tmp_path / "w"), *args],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and fragment in run.stderr and run.stderr.count("\n") == 1, run.stderr
    assert not (tmp_path / "w").exists()


def test_the_studio_shows_its_videos_with_ffmpeg_on_path_and_no_ffprobe(tmp_path):
    """Gradio's players probe every video with ffprobe when ffmpeg is on PATH; imageio's ffmpeg
    comes without one, and the studio still starts and shows the original and the dub."""
    import os

    import imageio_ffmpeg

    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "ffmpeg").symlink_to(imageio_ffmpeg.get_ffmpeg_exe())   # ffmpeg alone on PATH
    path = f"{tools}{os.pathsep}{Path(sys.executable).parent}"
    server = start_studio(tmp_path / "studio", env={"PATH": path})
    try:
        client = Client(server.url, verbose=False, download_files=str(tmp_path / "downloads"))
        table, _, original, _ = client.predict(SAMPLE.name, STYLE, 0, api_name="/open_path")
        dub = client.predict(table, "auto", api_name="/render")[1]
        assert Path(original).read_bytes() == SAMPLE.read_bytes()   # as the client downloaded them
        assert Path(dub).name == "cartoon_demo.take-001.dub.mp4" and Path(dub).stat().st_size > 0
    finally:
        server.stop()
    assert "ffprobe" not in server.log_text()


def test_an_unknown_style_on_the_dub_endpoint_gets_the_cli_sentence(client, studio):
    from dubber.api import DubOptions, check_options
    from dubber.errors import InputError

    with pytest.raises(InputError) as expected:
        check_options(DubOptions(style="nope"))
    logged = len(studio.log_text())
    with pytest.raises(AppError) as caught:
        client.predict(handle_file(str(SAMPLE)), "nope", 0, api_name="/dub")
    assert str(caught.value) == str(expected.value)
    # opening a video for editing by script: the same sentence, not the page's list of choices
    shutil.copy(SAMPLE, studio.root / "styled.mp4")
    for args, endpoint in (((handle_file(str(SAMPLE)), "nope", 0), "/open_upload"), (("styled.mp4", "nope", 0), "/open_path")):
        with pytest.raises(AppError) as caught:
            client.predict(*args, api_name=endpoint)
        assert str(caught.value) == str(expected.value), endpoint
    terminal = studio.log_text()[logged:]
    assert "Traceback" not in terminal and str(expected.value) in terminal, terminal


def test_a_work_folder_there_but_not_writable_is_one_sentence_before_the_server_starts(tmp_path, monkeypatch,
                                                                                      capsys):
    """An existing read-only work folder (made here by refusing the write the studio tries
    first: root writes anywhere) gets the sentence a missing one gets, and no server."""
    import dubber.studio as studio_cli
    from dubber.cli.main import main

    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(studio_cli.tempfile, "TemporaryFile", refused)
    monkeypatch.setattr("dubber.studio.app.serve", lambda *a, **k: pytest.fail("the server started"))
    work = tmp_path / "work"
    work.mkdir()
    assert main(["studio", "--work", str(work), "--port", "7899"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"dub: Cannot use {work} as the studio's work folder (Permission denied); choose another with "
                   "--work."), err


@pytest.mark.parametrize("stop, status", [("SIGINT", 130), ("SIGTERM", 143)])
def test_ctrl_c_stops_the_studio_with_a_sentence_and_the_status_of_an_interrupt(tmp_path, stop, status):
    """Ctrl+C (or a supervisor's SIGTERM) is how the studio is stopped. It says so in one line
    (where its projects stay) and exits 130 (143) as every interrupted command does, not 0 with
    Gradio's own words."""
    import signal

    server = start_studio(tmp_path / "studio")
    try:
        server.process.send_signal(getattr(signal, stop))
        server.process.wait(timeout=60)
    finally:
        server.stop()
    said = server.log_text().strip().splitlines()
    assert server.process.returncode == status, said[-5:]
    assert said[-1].startswith("dub: studio stopped; its projects stay in its work folder"), said[-5:]
    assert not any("Traceback" in line or "Keyboard interruption" in line for line in said), said
