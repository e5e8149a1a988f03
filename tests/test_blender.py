"""The Blender extension with the real bpy wheel (its own venv: bpy 5.0.1 pins numpy<2).

The harness (tests/blender_harness.py) runs in that venv: it installs the built zip headless,
runs the operator on a movie strip, saves/reopens the .blend and mixes the scene down, then
prints the facts checked here. A stand-in `dub` writes WAVs with a tone starting at a known
sample, so the mixdown shows exactly where the dub landed; one test runs the real
`dub --backend score` when it works in this environment.

bpy venv: DUB_BPY_PYTHON, else <repo>/.venv-bpy/bin/python, else one built once into
~/.cache/dubber-test/bpy-venv (tests/bpy_env.py; a progress line says so).
"""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import tomllib
import zipfile
from fractions import Fraction
from pathlib import Path

import pytest

from integrations.install import install
from tests.bpy_env import bpy_python as find_bpy_python

REPO = Path(__file__).resolve().parent.parent
HARNESS = REPO / "tests" / "blender_harness.py"
FPS = 30
MOVIE_FRAMES = 90                 # 3 s at 30 fps
MOVIE_START, TRIM = 31, 10        # movie's first frame at scene frame 31, 10 frames trimmed off the head
TONE_START_SAMPLE = 24000         # where the stand-in's tone starts inside its WAVs (0.5 s = video frame 15)
SETUP = ('python3.11 -m venv .venv-bpy && .venv-bpy/bin/pip install bpy==5.0.1 "numpy<2" '
         '(or point DUB_BPY_PYTHON at a Python with bpy 4.4+)')

FAKE_DUB = r'''#!{python}
import json, sys, time, wave
from pathlib import Path
import numpy as np
args = sys.argv[1:]
out = Path(args[args.index("-o") + 1]); stems = Path(args[args.index("--stems") + 1])
assert "--json-progress" in args
if out.exists() and "--overwrite" not in args:
    print(f"dub: {{out}} exists; pass --overwrite to replace it.", file=sys.stderr); sys.exit(2)
notice = {notice!r}
if notice:
    print(json.dumps({{"event": "notice", "message": notice}}), flush=True)
if {source_has_audio!r} and "--keep-original" not in args:   # as dub says it
    print(json.dumps({{"event": "notice", "message": "the source's audio track is not in the output, only the "
                      "dub; pass --keep-original to keep it after the dub"}}), flush=True)
level = 0.1 if "noir" in args else 0.25   # a new style sounds different
total = {total}
for i, stage in enumerate(("probe", "analyze", "plan", "render", "mix", "mux", "export")):
    print(json.dumps({{"stage": stage, "done": i + 1, "total": 7, "message": ""}}), flush=True)
    time.sleep(0.02)
stems.mkdir(parents=True, exist_ok=True)
outputs = {{"video": str(out)}}
t = np.arange(total) / 48000.0
for name, onset in (("mix", {onset}), ("music", {onset}), ("fx", {onset} + 12000)):
    audio = np.where(np.arange(total) >= onset, level * np.sin(2 * np.pi * 440 * t), 0.0)
    pcm = (np.repeat(audio[:, None], 2, axis=1) * 32767).astype("<i2")
    with wave.open(str(stems / f"{{name}}.wav"), "wb") as w:
        w.setnchannels(2); w.setsampwidth(2); w.setframerate(48000); w.writeframes(pcm.tobytes())
    outputs["mix" if name == "mix" else "stem:" + name] = str(stems / f"{{name}}.wav")
manifest = out.with_suffix("").with_name(out.stem + ".json")
manifest.write_text(json.dumps({{"schema": "dubber.manifest/1", "media": {{"fps": "{video_fps}"}},
    "analysis": {{"events": {events!r}}},
    "outputs": {{k: str(Path(v).relative_to(out.parent)) for k, v in outputs.items()}}}}))
outputs["manifest"] = str(manifest)
out.write_bytes(b"muxed")
print(json.dumps({{"event": "done", "outputs": outputs}}), flush=True)
'''


def bpy_python() -> str:
    """The Python with bpy (see tests/bpy_env.py: built once into a cache when none is given)."""
    python, reason = find_bpy_python()
    if python is None:
        pytest.skip(f"Blender tests need a Python with bpy: {reason}; or create one with: {SETUP}")
    return python


@pytest.fixture(scope="module")
def bpy_exe() -> str:
    return bpy_python()


@pytest.fixture(scope="module")
def movie(tmp_path_factory) -> Path:
    from samples.synth import SynthSpec, synthesize

    path = tmp_path_factory.mktemp("blender_media") / "picture.mp4"
    synthesize(path, SynthSpec(fps=Fraction(FPS), shot_frames=(45, 45), audio=False, seed=3))
    return path


@pytest.fixture(scope="module")
def extension_zip(tmp_path_factory) -> Path:
    return install("blender", tmp_path_factory.mktemp("zip"))


def fake_dub(folder: Path, notice: str = "", video_fps: str = f"{FPS}/1", source_has_audio: bool = False,
             events: tuple[dict, ...] = ()) -> Path:
    script = folder / "dub"
    script.write_text(FAKE_DUB.format(python=sys.executable, total=MOVIE_FRAMES * 48000 // FPS,
                                      onset=TONE_START_SAMPLE, notice=notice, video_fps=video_fps,
                                      source_has_audio=source_has_audio, events=list(events)))
    script.chmod(0o755)
    return script


def own_copy(movie: Path, tmp_path: Path) -> Path:
    """The movie in a folder of this test's own, so the dubs written beside it are this test's only."""
    copy = tmp_path / "media" / movie.name
    copy.parent.mkdir()
    copy.write_bytes(movie.read_bytes())
    return copy


def run_harness(bpy_exe: str, work: Path, **job) -> dict:
    job_path = work / "job.json"
    job = {"work": str(work), "fps": FPS, "movie_start_frame": MOVIE_START, "trim_start_frames": TRIM, **job}
    job_path.write_text(json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in job.items()}))
    env = {**os.environ, "BLENDER_USER_RESOURCES": str(work / "blender_user")}
    proc = subprocess.run([bpy_exe, str(HARNESS), str(job_path)], capture_output=True, text=True,
                          timeout=600, env=env, cwd=work)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("HARNESS ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(lines[-1][len("HARNESS "):])


def sound_strips(strips: list[dict]) -> list[dict]:
    return [s for s in strips if s["type"] == "SOUND"]


def test_extension_zip_is_a_valid_extension(extension_zip):
    with zipfile.ZipFile(extension_zip) as archive:
        names = set(archive.namelist())
        manifest = tomllib.loads(archive.read("blender_manifest.toml").decode())
        source = archive.read("__init__.py").decode()
        command = json.loads(archive.read("dub_command.json"))
    assert names == {"blender_manifest.toml", "__init__.py", "dub_command.json"}
    assert manifest["schema_version"] == "1.0.0" and manifest["id"] == "dub_bridge"
    assert manifest["type"] == "add-on" and manifest["blender_version_min"] == "4.2.0"
    assert "files" in manifest["permissions"]
    assert extension_zip.name == f"dub_bridge-{manifest['version']}.zip"
    tree = ast.parse(source)
    assert any(isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "bl_info" for n in tree.body)
    roots = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    roots |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert roots - {"bpy"} <= set(sys.stdlib_module_names), roots  # Blender's Python has no dubber
    assert Path(command["dub"][0]).name.startswith(("dub", "python"))


def test_stems_land_on_free_channels_sample_exact(bpy_exe, movie, extension_zip, tmp_path):
    facts = run_harness(bpy_exe, tmp_path, zip=extension_zip, movie=movie, dub=fake_dub(tmp_path),
                        backend="score", separate_stems=True, blocker_channel=2)
    assert facts["status"] == "Added 2 dub strip(s) under picture."
    assert facts["uses_strips"] and facts["shim_old"] == ["top", "all"]   # 5.x strips; sequences before 4.4
    sounds = sound_strips(facts["strips"])
    # Channel 2 is taken by the blocker where the movie plays, so the stems go to 3 and 4.
    assert [(s["name"], s["channel"]) for s in sounds] == [("picture music", 3), ("picture fx", 4)]
    for s in sounds:
        assert s["frame_start"] == MOVIE_START                      # WAV sample 0 under the movie's frame 0
        assert (s["frame_final_start"], s["frame_final_end"]) == (MOVIE_START + TRIM, MOVIE_START + MOVIE_FRAMES)
    # Scene frame 1 is sample 0: the tone starts 30 frames (48000 samples) + its own 24000 in.
    assert abs(facts["mix"]["first_sample"] - 72000) <= 2
    assert facts["mix"]["last_sample"] < 120 * 48000 // FPS + 2   # nothing after the movie's last frame
    assert facts["reopened_strips"] == facts["strips"]
    assert facts["reopened_mix"] == facts["mix"]


def test_mixed_dub_is_one_strip(bpy_exe, movie, extension_zip, tmp_path):
    facts = run_harness(bpy_exe, tmp_path, zip=extension_zip, movie=movie, dub=fake_dub(tmp_path),
                        backend="score", separate_stems=False, blocker_channel=0)
    sounds = sound_strips(facts["strips"])
    assert [(s["name"], s["channel"]) for s in sounds] == [("picture dub", 2)]
    assert Path(sounds[0]["filepath"]).name == "mix.wav"
    assert abs(facts["mix"]["first_sample"] - 72000) <= 2


def test_dub_failure_is_reported_and_adds_nothing(bpy_exe, movie, extension_zip, tmp_path):
    movie = own_copy(movie, tmp_path)
    failing = tmp_path / "dub"
    failing.write_text(f"#!{sys.executable}\nimport json, sys\n"
                       "print(json.dumps({'event': 'error', 'message': 'The input has no video stream; "
                       "choose a video file.'}), flush=True)\nsys.exit(2)\n")
    failing.chmod(0o755)
    facts = run_harness(bpy_exe, tmp_path, zip=extension_zip, movie=movie, dub=failing, backend="score",
                        separate_stems=False, blocker_channel=0)
    assert facts["status"] == "Dub failed: The input has no video stream; choose a video file."
    assert sound_strips(facts["strips"]) == [] and facts["mix"]["first_sample"] is None
    assert [p.name for p in movie.parent.iterdir()] == ["picture.mp4"]   # no empty take folder left behind


def test_a_dub_finishes_into_the_same_project_opened_again_while_it_ran(bpy_exe, movie, extension_zip, tmp_path):
    """File > Revert (or opening the project again) while dub runs: its strips still arrive, in
    the project as opened again, on their sample."""
    facts = run_harness(bpy_exe, tmp_path, zip=extension_zip, movie=movie, dub=fake_dub(tmp_path),
                        backend="score", separate_stems=False, blocker_channel=0, reload="same")
    assert facts["status"] == "Added 1 dub strip(s) under picture."
    assert [(s["name"], s["channel"]) for s in sound_strips(facts["strips"])] == [("picture dub", 2)]
    assert abs(facts["mix"]["first_sample"] - 72000) <= 2


def test_a_strip_of_the_same_name_over_another_movie_gets_no_dub(bpy_exe, movie, extension_zip, tmp_path):
    """Another project open when dub finishes, with a scene and a strip of the same names over
    another movie: nothing is added to it, and the message says where the finished dub is."""
    movie = own_copy(movie, tmp_path)
    facts = run_harness(bpy_exe, tmp_path, zip=extension_zip, movie=movie, dub=fake_dub(tmp_path),
                        backend="score", separate_stems=False, blocker_channel=0, reload="other")
    takes = [p for p in movie.parent.iterdir() if p.is_dir()]
    assert len(takes) == 1 and any(takes[0].rglob("*.wav"))
    assert facts["status"] == f"The movie strip 'picture' is gone; its dub is in {takes[0]}."
    assert sound_strips(facts["strips"]) == []


def test_real_dub_score(bpy_exe, movie, extension_zip, tmp_path):
    dub = Path(sys.executable).with_name("dub")
    facts = run_harness(bpy_exe, tmp_path, zip=extension_zip, movie=movie, dub=dub, backend="score",
                        separate_stems=True, blocker_channel=0)
    assert facts["status"].startswith("Added 2 dub strip(s)"), facts["status"]
    sounds = sound_strips(facts["strips"])
    assert sorted(s["name"] for s in sounds) == ["picture fx", "picture music"]
    for s in sounds:
        assert (s["frame_start"], s["frame_final_start"], s["frame_final_end"]) == (
            MOVIE_START, MOVIE_START + TRIM, MOVIE_START + MOVIE_FRAMES)
    mix = facts["mix"]
    assert mix["first_sample"] is not None
    assert (MOVIE_START + TRIM - 1) * 48000 // FPS - 2 <= mix["first_sample"]   # nothing before the visible picture
    # One bar for the whole dub: it never goes back at a new stage, and fills through every stage.
    shown = [fraction for _, fraction in facts["progress"]]
    assert shown == sorted(shown) and shown[-1] == 1.0, facts["progress"]
    reached = {stage: fraction for stage, fraction in facts["progress"]}
    assert 0.2 < reached["analyze"] < reached["render"] < reached["mix"] < reached["mux"] < 1.0, reached
    assert mix["last_sample"] < (MOVIE_START + MOVIE_FRAMES - 1) * 48000 // FPS + 2


def test_real_dub_of_an_avi_raw_render(bpy_exe, movie, extension_zip, tmp_path, monkeypatch):
    """Blender's "AVI Raw" output (uncompressed RGB in .avi) fits no .mp4: the add-on must ask dub
    for a .mov, or dub refuses the output and nothing is added."""
    import imageio_ffmpeg

    render = tmp_path / "media" / "picture.avi"
    render.parent.mkdir()
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(movie), "-c:v", "rawvideo",
                    "-pix_fmt", "bgr24", str(render)], check=True, stdin=subprocess.DEVNULL)
    monkeypatch.setenv("DUB_CACHE_DIR", str(tmp_path / "dub-cache"))
    facts = run_harness(bpy_exe, tmp_path, zip=extension_zip, movie=render, dub=Path(sys.executable).with_name("dub"),
                        backend="score", separate_stems=False, blocker_channel=0)
    assert facts["status"].startswith("Added 1 dub strip(s) under picture."), facts["status"]
    assert (render.parent / "picture_dub" / "picture_dub.mov").stat().st_size > 0
    assert [s["name"] for s in sound_strips(facts["strips"])] == ["picture dub"]


def test_a_rerun_never_changes_the_earlier_dubs_files(bpy_exe, movie, extension_zip, tmp_path):
    """Dubbing the strip again in a new style adds the new take beside the first; the first dub's
    strips still point at their own files, byte for byte as they were, muted so the new take plays
    alone (unmute them to compare)."""
    movie = own_copy(movie, tmp_path)
    facts = run_harness(bpy_exe, tmp_path, zip=extension_zip, movie=movie, dub=fake_dub(tmp_path),
                        backend="score", separate_stems=False, blocker_channel=0, rerun_style="noir")
    first = facts["first"]
    assert first["status"] == "Added 1 dub strip(s) under picture."
    (first_strip,) = sound_strips(first["strips"])
    assert Path(first_strip["filepath"]).parent == movie.parent / "picture_dub" / "stems"
    now = {s["name"]: s for s in sound_strips(facts["strips"])}
    assert not first_strip["mute"] and now[first_strip["name"]] == {**first_strip, "mute": True}
    assert facts["status"].startswith("Added 1 dub strip(s) under picture. Muted the 1 strip(s) of the earlier take")
    assert facts["digests"][first_strip["name"]] == first["digests"][first_strip["name"]]
    (second,) = [s for name, s in now.items() if name != first_strip["name"]]
    assert not second["mute"]
    assert Path(second["filepath"]).parent == movie.parent / "picture_dub-2" / "stems"
    assert (movie.parent / "picture_dub-2" / "picture_dub-2.mp4").is_file()
    assert facts["digests"][second["name"]] != first["digests"][first_strip["name"]]   # the noir take


@pytest.mark.parametrize("fps, fps_base, video_fps, warned", [
    (24, 1.001, "24000/1001", False), (30, 1.001, "30000/1001", False), (30, 1.0, "30/1", False),
    (24, 1.0, "24000/1001", True), (30, 1.0, "30000/1001", True),
])
def test_scene_rate_warning_only_when_the_rates_differ(bpy_exe, movie, extension_zip, tmp_path, fps, fps_base,
                                                       video_fps, warned):
    """Blender keeps fps_base as a 32-bit float (1.001 reads back as 1.0010000467): an NTSC scene
    is the video's rate, while 24 against 23.976 is a real mismatch."""
    facts = run_harness(bpy_exe, tmp_path, zip=extension_zip, movie=movie, dub=fake_dub(tmp_path, video_fps=video_fps),
                        backend="score", separate_stems=False, blocker_channel=0, fps=fps, fps_base=fps_base)
    warning = f" Set the scene to the video's {float(Fraction(video_fps)):.3f} fps, or picture and dub drift apart."
    assert facts["status"] == "Added 1 dub strip(s) under picture." + (warning if warned else "")


def test_missing_dub_command_is_one_sentence(bpy_exe, movie, extension_zip, tmp_path):
    movie = own_copy(movie, tmp_path)
    facts = run_harness(bpy_exe, tmp_path, zip=extension_zip, movie=movie, dub="/nonexistent/dub",
                        backend="score", separate_stems=False, blocker_channel=0)
    assert facts["operator_error"] == (
        "Error: The dub command /nonexistent/dub set in the Dub Bridge preferences does not exist; correct "
        "that path, or clear it to use the installed dub.\n")
    assert facts["jobs"] == 0 and sound_strips(facts["strips"]) == []
    assert [p.name for p in movie.parent.iterdir()] == ["picture.mp4"]


def test_missing_recorded_dub_command_is_one_sentence(bpy_exe, movie, extension_zip, tmp_path):
    """The environment the extension was installed from is gone: say so, and how to fix it."""
    facts = run_harness(bpy_exe, tmp_path, zip=extension_zip, movie=own_copy(movie, tmp_path), dub="",
                        recorded_dub="/gone/env/bin/dub", backend="score", separate_stems=False, blocker_channel=0)
    assert facts["operator_error"] == (
        "Error: The dub command /gone/env/bin/dub recorded at install no longer exists; run `dub integrations "
        "install blender` again, or set its path in the Dub Bridge preferences.\n")


def test_dub_notices_reach_the_user(bpy_exe, movie, extension_zip, tmp_path):
    notice = "score backend: no CUDA GPU is available, so the orchestral score engine writes this dub"
    facts = run_harness(bpy_exe, tmp_path, zip=extension_zip, movie=movie, dub=fake_dub(tmp_path, notice=notice),
                        backend="score", separate_stems=False, blocker_channel=0)
    assert facts["status"] == f"Added 1 dub strip(s) under picture. dub: {notice}."


@pytest.mark.parametrize("keep", [False, True])
def test_keep_original_preference_reaches_dub_and_its_notice_names_it(bpy_exe, movie, extension_zip, tmp_path, keep):
    """dub says how to keep the movie's sound by its command-line flag; the add-on passes it from
    its "Keep the movie's sound" preference, and tells the user about that preference instead."""
    facts = run_harness(bpy_exe, tmp_path, zip=extension_zip, movie=movie, dub=fake_dub(tmp_path, source_has_audio=True),
                        backend="score", separate_stems=False, blocker_channel=0, keep_original=keep)
    dropped = ("dub: the source's audio track is not in the output, only the dub; turn on \"Keep the movie's "
               "sound\" in the Dub Bridge preferences to keep it after the dub.")
    assert facts["status"] == "Added 1 dub strip(s) under picture." + ("" if keep else f" {dropped}")


def test_the_hits_the_dub_plays_are_timeline_markers_on_their_frames(bpy_exe, movie, extension_zip, tmp_path):
    """Each event of the dub's manifest is a marker on the scene frame that shows it (the movie's
    first frame sits at MOVIE_START); one in the trimmed-off head is not marked, and a second
    take replaces the first take's markers instead of adding to them."""
    events = ({"frame": 4, "kind": "impact", "strength": 0.9}, {"frame": 15, "kind": "impact", "strength": 0.8},
              {"frame": 40, "kind": "landing", "strength": 0.55}, {"frame": 60, "kind": "whoosh", "strength": 0.5})
    facts = run_harness(bpy_exe, tmp_path, zip=extension_zip, movie=movie, dub=fake_dub(tmp_path, events=events),
                        backend="score", separate_stems=False, blocker_channel=0, rerun_style="noir")
    expected = [[MOVIE_START + 15, "dub impact 0.80"], [MOVIE_START + 40, "dub landing 0.55"],
                [MOVIE_START + 60, "dub whoosh 0.50"]]   # frame 4 is under the 10 trimmed frames
    assert facts["first"]["markers"] == expected
    assert facts["first"]["status"].endswith("Marked the 3 hit(s) it plays on the timeline.")
    assert facts["markers"] == expected

