"""The `dub` command as a user runs it: start-up cost, subcommands, progress output, file naming."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from dub_cli import decode_track, dub_env, json_events, run_dub, sha256

HEAVY = ("torch", "transformers", "diffusers")


def _modules_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_help_does_not_import_torch():
    loaded = _modules_after(
        "import contextlib, io, sys\n"
        "sys.argv = ['dub', '--help']\n"
        "from dubber.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    try:\n        main()\n    except SystemExit as e:\n        assert e.code == 0, e.code\n"
        "assert 'dub analyze' in out.getvalue() and '--backend' in out.getvalue()\n"
        "assert 'dub watch' in out.getvalue() and 'dub integrations install' in out.getvalue()\n"
        "from dubber.styles import STYLE_PRESETS\n"
        "flat = ''.join(out.getvalue().split())\n"
        "assert all(name in flat for name in STYLE_PRESETS), flat\n")
    assert not loaded & set(HEAVY), loaded & set(HEAVY)
    assert "av" not in loaded and "cv2" not in loaded   # not even the video stack for --help


@pytest.mark.parametrize("command, shown", [("watch", "--once"), ("integrations", "--dest"), ("models", "vlm")])
def test_subcommand_help_does_not_import_torch(command, shown):
    loaded = _modules_after(
        "import contextlib, io\n"
        "from dubber.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        f"    try:\n        main([{command!r}, '--help'])\n"
        "    except SystemExit as e:\n        assert e.code == 0, e.code\n"
        f"assert {shown!r} in out.getvalue(), out.getvalue()\n")
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_import_dubber_does_not_import_torch():
    loaded = _modules_after(
        "import dubber\n"
        "assert dubber.available_backends() == ('audiostory', 'score')\n"
        "assert dubber.DubOptions().backend == 'auto' and callable(dubber.dub)\n"
        "assert dubber.DubResult.__name__ == 'DubResult'\n")
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_version_and_usage_errors(tmp_path):
    env = dub_env(tmp_path)
    version = run_dub(["--version"], env)
    assert version.returncode == 0 and version.stdout.startswith("dub ") and version.stdout.strip() != "dub"
    import dubber

    assert version.stdout.strip() == f"dub {dubber.__version__}"
    none = run_dub([], env)
    assert none.returncode == 2 and len(none.stderr.strip().splitlines()) == 1 and "input" in none.stderr
    bad = run_dub(["models", "upload"], env)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    # Several videos for one dub: the command that takes them is named.
    several = run_dub([tmp_path / "a.mp4", tmp_path / "b.mov", tmp_path / "c.avi"], env)
    assert several.returncode == 2 and several.stderr.strip().splitlines() == [
        "dub: dub takes one video; to dub several, run dub batch VIDEO... -o OUTDIR."]
    odd = run_dub([tmp_path / "a.mp4", "--lufz", "ebu"], env)
    assert odd.returncode == 2 and "unrecognized arguments: --lufz ebu" in odd.stderr and "batch" not in odd.stderr


def test_doctor_reports_ffmpeg_torch_and_auto_choice(tmp_path):
    proc = run_dub(["doctor"], dub_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    lines = dict(line.split(None, 1) if " " in line else (line, "") for line in proc.stdout.splitlines())
    text = proc.stdout
    assert "ffmpeg version" in text or "ffmpeg" in lines
    assert "torch" in text and "CUDA" in text
    assert "AudioStory weights" in text and "not found" in text   # the test HF cache is empty
    auto = next(line for line in proc.stdout.splitlines() if line.startswith("auto backend"))
    # Why, with the fix where one helps: without a GPU, downloading the weights changes nothing.
    assert "score" in auto and ("(run `dub models download`)" in auto or "no CUDA GPU" in auto)


def test_doctor_says_whether_the_studio_players_can_find_ffprobe(tmp_path):
    """The studio's video players use ffprobe on PATH although `dub` does not: doctor says which."""
    import stat

    tools = tmp_path / "tools"
    tools.mkdir()
    env = dub_env(tmp_path, PATH=str(tools))
    lines = run_dub(["doctor"], env).stdout.splitlines()
    assert any(line.startswith("ffprobe") and "not on PATH" in line and "studio" in line for line in lines), lines
    probe = tools / "ffprobe"
    probe.write_text("#!/bin/sh\nexit 0\n")
    probe.chmod(probe.stat().st_mode | stat.S_IEXEC)
    lines = run_dub(["doctor"], env).stdout.splitlines()
    assert any(line.startswith("ffprobe") and f"found ({probe})" in line for line in lines), lines


def test_models_list_and_offline_download(tmp_path):
    env = dub_env(tmp_path)
    listed = run_dub(["models", "list"], env)
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[1]: line.split()[0] for line in listed.stdout.splitlines()[1:]}
    assert rows == {"TencentARC/AudioStory-3B": "audiostory", "Qwen/Qwen2.5-3B-Instruct": "audiostory",
                    "google/flan-t5-large": "audiostory", "openai/clip-vit-base-patch32": "clip",
                    "Qwen/Qwen2.5-VL-3B-Instruct": "vlm"}
    assert "run `dub models download clip`" in listed.stdout   # the test HF cache is empty
    for args in (["download"], ["download", "audiostory"], ["download", "clip"],
                 ["download", "vlm", "--model", "someone/tiny-vlm"]):
        fetched = run_dub(["models", *args], env)
        assert fetched.returncode == 2 and "Traceback" not in fetched.stderr, (args, fetched.stderr)
        assert len(fetched.stderr.strip().splitlines()) == 1 and "offline" in fetched.stderr.lower(), fetched.stderr
        # files fetched on another machine reach this one only as a copy of the cache
        assert "copy its Hugging Face cache" in fetched.stderr, fetched.stderr
    ignored = run_dub(["models", "list", "--model", "someone/tiny-vlm"], env)
    assert ignored.returncode == 2 and "applies to `dub models download`" in ignored.stderr
    named = run_dub(["models", "download", "vlm", "--model", "someone/tiny-vlm"], env)
    assert "someone/tiny-vlm" in named.stderr
    assert not (tmp_path / "hf-home" / "hub").exists() or not any((tmp_path / "hf-home" / "hub").iterdir())


def test_models_download_given_a_path_says_what_model_takes_instead_of_recommending_itself(tmp_path):
    env = dub_env(tmp_path)
    folder = tmp_path / "checkpoint"
    folder.mkdir()
    local = run_dub(["models", "download", "--model", folder], env)
    assert local.returncode == 2 and local.stderr.strip().splitlines() == [
        f"dub: {folder} is a folder on this machine, so there is nothing to download; dub with --model {folder} as it is."]
    captioner = run_dub(["models", "download", "clip", "--model", folder], env)
    assert captioner.returncode == 2 and f"dub with --captioner-model {folder}" in captioner.stderr
    for path in (tmp_path / "nowhere", "./nowhere", "a/b/c"):
        missing = run_dub(["models", "download", "--model", path], env)
        assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1, missing.stderr
        assert "takes a Hugging Face Hub repo id (owner/name)" in missing.stderr, missing.stderr
        assert "dub models download" not in missing.stderr.replace("--model of `dub models download`", "")


def test_a_download_that_cannot_reach_the_hub_says_so_and_not_to_leave_offline_mode(tmp_path):
    """Online, with the Hub out of reach (here: an endpoint nothing listens on), the sentence says
    the Hub could not be reached and what to check; offline mode is not on, so it is not blamed."""
    env = dub_env(tmp_path, HF_ENDPOINT="http://127.0.0.1:9")
    env.pop("HF_HUB_OFFLINE")
    fetched = run_dub(["models", "download"], env)
    assert fetched.returncode == 2 and len(fetched.stderr.strip().splitlines()) == 1, fetched.stderr
    assert "the Hugging Face Hub could not be reached; check the connection" in fetched.stderr, fetched.stderr
    assert "HF_HUB_OFFLINE" not in fetched.stderr and "Error" not in fetched.stderr, fetched.stderr


def test_models_list_shows_a_cached_captioner(tmp_path):
    env = dub_env(tmp_path)
    snapshot_dir = (tmp_path / "hf-home" / "hub" / "models--openai--clip-vit-base-patch32" / "snapshots" / ("a" * 40))
    snapshot_dir.mkdir(parents=True)
    (snapshot_dir / "config.json").write_text("{}")
    refs = snapshot_dir.parent.parent / "refs"
    refs.mkdir()
    (refs / "main").write_text("a" * 40)
    listed = run_dub(["models", "list"], env)
    assert listed.returncode == 0, listed.stderr
    clip_row = next(line for line in listed.stdout.splitlines() if line.startswith("clip"))
    assert "GiB" in clip_row and "models--openai--clip-vit-base-patch32" in clip_row
    # A download cut short after its config: there, but not ready.
    doctor = run_dub(["doctor"], env)
    clip_line = next(line for line in doctor.stdout.splitlines() if line.startswith("clip captioner"))
    assert "not usable" in clip_line and "incomplete" in clip_line and "model.safetensors" in clip_line
    for name in ("model.safetensors", "preprocessor_config.json", "tokenizer.json"):
        (snapshot_dir / name).write_text("{}")
    doctor = run_dub(["doctor"], env)
    assert doctor.returncode == 0, doctor.stderr
    assert "ready" in next(line for line in doctor.stdout.splitlines() if line.startswith("clip captioner"))
    assert "dub models download vlm" in next(line for line in doctor.stdout.splitlines() if line.startswith("vlm"))


def test_integrations_install_writes_the_files(tmp_path):
    env = dub_env(tmp_path)
    resolve = run_dub(["integrations", "install", "resolve", "--dest", tmp_path / "scripts"], env)
    assert resolve.returncode == 0, resolve.stderr
    script = Path(resolve.stdout.strip())
    assert script == tmp_path / "scripts" / "Dub Shot Audio.py" and script.is_file()
    config = json.loads((tmp_path / "scripts" / "dub_resolve.json").read_text())
    assert Path(config["dub"][0]).exists()
    blender = run_dub(["integrations", "install", "blender", "--dest", tmp_path / "zips"], env)
    assert blender.returncode == 0, blender.stderr
    archive = Path(blender.stdout.strip())
    assert archive.parent == tmp_path / "zips" and archive.suffix == ".zip"
    with zipfile.ZipFile(archive) as z:
        assert {"blender_manifest.toml", "__init__.py", "dub_command.json"} <= set(z.namelist())
    bad = run_dub(["integrations", "install", "premiere", "--dest", tmp_path / "x"], env)
    assert bad.returncode == 2 and bad.stdout == "" and not (tmp_path / "x").exists()
    assert len(bad.stderr.strip().splitlines()) == 1 and "resolve, blender" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_watch_once_dubs_a_dropped_video(tmp_path, sample_30p_silent):
    root = tmp_path / "watched"
    (root / "inbox").mkdir(parents=True)
    shutil.copyfile(sample_30p_silent[0], root / "inbox" / "clip.mp4")
    (root / "inbox" / "notes.mp4").write_text("not a video")
    (root / "inbox" / "copying.mp4.part").write_bytes(b"half")
    proc = run_dub(["watch", root, "--once", "--stable-s", "0.2", "--poll-s", "0.1"], dub_env(tmp_path))
    # A cron run that failed a file says so in its exit status, as `dub batch` does.
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "dub: 1 file failed this run; see failed/ and logs/watch.log."
    assert "dubbed clip.mp4 -> output/clip" in proc.stderr and "Traceback" not in proc.stderr
    assert sorted(p.name for p in (root / "inbox").iterdir()) == ["copying.mp4.part"]
    assert [p.name for p in (root / "done").iterdir()] == ["clip.mp4"]
    assert sorted(p.name for p in (root / "failed").iterdir()) == ["notes.mp4", "notes.mp4.error.json"]
    assert "not a video" in json.loads((root / "failed" / "notes.mp4.error.json").read_text())["reason"]
    dubbed = root / "output" / "clip" / "clip.dub.mp4"
    audio, rate = decode_track(dubbed)
    expected = round(sample_30p_silent[1]["frame_count"] * rate / 30)
    assert audio.shape[0] == 2 and abs(audio.shape[1] - expected) < 1024 and np.abs(audio).max() > 0.01
    assert {"clip.dub.mix.wav", "clip.dub.music.wav", "clip.dub.fx.wav"} <= {p.name for p in (root / "output" / "clip" / "stems").iterdir()}
    again = run_dub(["watch", root / "done" / "clip.mp4", "--once"], dub_env(tmp_path))
    assert again.returncode == 2 and len(again.stderr.strip().splitlines()) == 1 and "folder" in again.stderr


@pytest.fixture()
def clip(tmp_path, sample_30p_silent) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    return Path(shutil.copyfile(sample_30p_silent[0], folder / "clip.mp4"))


def test_a_loudness_the_ceiling_cannot_allow_is_reported(clip, tmp_path):
    """-5 LUFS (the loudest target taken) under a -1 dBTP ceiling is out of reach for a score with hits: the run says
    what it reached instead of missing the target in silence."""
    proc = run_dub([clip, "-o", tmp_path / "loud.mp4", "--lufs=-5", "--json-progress"], dub_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    done = json_events(proc.stdout)[-1]
    assert done["integrated_lufs"] < -5.5
    said = [w for w in done["warnings"] if "not the -5 asked" in w]
    reached = re.search(r"reaches (-?\d+\.\d) LUFS", said[0]) if len(said) == 1 else None
    # the sentence's tenth and the event's hundredths round the same measurement
    assert reached and abs(float(reached.group(1)) - done["integrated_lufs"]) <= 0.055, said


def test_overwrite_leaves_nothing_of_the_replaced_dub(clip, tmp_path):
    """A dub with a timeline, stems and a review page, replaced by one without them: the old
    timeline (which points at the old stems), the stems and the page go; the input stays."""
    env = dub_env(tmp_path)
    out = clip.with_name("cut.mp4")
    first = run_dub([clip, "-o", out, "--keep-original", "--timeline", "--review"], env)
    assert first.returncode == 0, first.stderr
    old = {p.name for p in clip.parent.rglob("*") if p.is_file()}
    assert {"cut.otio", "cut.srt", "cut.review.html", "cut.mix.wav"} <= old, old
    digest = sha256(clip)
    # A manifest is data: a file it names that is not one of this output's is never removed.
    (clip.parent / "notes.txt").write_text("the editor's own notes")
    manifest = json.loads(out.with_suffix(".json").read_text())
    manifest["outputs"]["notes"] = "notes.txt"
    out.with_suffix(".json").write_text(json.dumps(manifest))
    again = run_dub([clip, "-o", out, "--overwrite", "--style", "noir"], env)
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in clip.parent.rglob("*") if p.is_file()) == [
        "clip.mp4", "cut.json", "cut.mp4", "notes.txt"]
    assert not (clip.parent / "cut_stems").exists()   # the folder the old stems filled goes with them
    assert sha256(clip) == digest


def test_json_progress_run_with_default_output(clip, tmp_path):
    env = dub_env(tmp_path)
    digest = sha256(clip)
    proc = run_dub([clip, "--json-progress"], env)
    assert proc.returncode == 0, proc.stderr
    events = json_events(proc.stdout)   # every stdout line is JSON
    progress = [e for e in events if e["event"] == "progress"]
    assert all({"stage", "done", "total", "message"} <= e.keys() for e in progress)
    top = [e["stage"] for e in progress if "/" not in e["stage"]]
    order = [s for i, s in enumerate(top) if s not in top[:i]]
    assert order == ["probe", "analyze", "plan", "render", "mix", "mux", "export"]
    # No report is said twice in a row (a stage's last report and its end are one).
    pairs = [(e["stage"], e["done"], e["total"]) for e in progress]
    assert all(a != b for a, b in zip(pairs, pairs[1:])), pairs
    # The mix counts its passes over the film (stems placed, loudness measured, gain passes).
    mixing = [(e["done"], e["total"]) for e in progress if e["stage"] == "mix"]
    assert mixing[-1][0] == mixing[-1][1] >= 3 and len(mixing) >= 4, mixing
    # The mux counts the seconds of video written, as ffmpeg reports them, up to the whole clip.
    mux = [(e["done"], e["total"]) for e in progress if e["stage"] == "mux"]
    seconds = mux[-1][1]
    assert seconds >= 2 and mux[-1][0] == seconds, mux   # seconds: ffmpeg's reports, not the stage's 0/1
    notice = next(i for i, e in enumerate(events) if e["event"] == "notice")
    first_render = next(i for i, e in enumerate(events) if e.get("stage") == "render")
    assert notice < first_render and events[notice]["message"].startswith("score backend:")
    done = events[-1]
    assert done["event"] == "done" and done["backend"] == "score"
    out = clip.with_name("clip.dub.mp4")
    assert done["output"] == str(out) and out.is_file()
    assert Path(done["outputs"]["manifest"]).is_file() and done["cues"] >= 1
    assert sha256(clip) == digest
    # A second run never overwrites the result silently; --overwrite replaces it from the stage
    # cache (nothing analysed again), --force recomputes every stage as well.
    again = run_dub([clip], env)
    assert again.returncode == 2 and "already exists" in again.stderr and "--overwrite" in again.stderr
    replaced = run_dub([clip, "--overwrite", "--lufs", "-20", "--json-progress"], env)
    assert replaced.returncode == 0, replaced.stderr
    stages = {e.get("stage") for e in json_events(replaced.stdout) if e.get("event") == "progress"}
    assert "analyze/decode" not in stages and json_events(replaced.stdout)[-1]["output"] == str(out)
    forced = run_dub([clip, "--force"], env)
    assert forced.returncode == 0, forced.stderr
    # Off a terminal and without --json-progress: the output path on stdout, the notice on stderr.
    assert forced.stdout.strip() == str(out)
    assert forced.stderr.strip().startswith("dub: score backend:") and "Traceback" not in forced.stderr


def test_analyze_plan_edit_render(clip, tmp_path):
    env = dub_env(tmp_path)
    analyzed = run_dub(["analyze", clip], env)
    assert analyzed.returncode == 0, analyzed.stderr
    analysis = json.loads(clip.with_name("clip.analysis.json").read_text())
    assert analysis["schema"].startswith("dubber.analysis/") and analysis["shots"]
    # An existing file is kept unless asked, with the same word as `dub` uses for its outputs.
    again = run_dub(["analyze", clip], env)
    assert again.returncode == 2 and "pass --overwrite" in again.stderr
    assert run_dub(["analyze", clip, "--overwrite"], env).returncode == 0
    printed = run_dub(["plan", clip, "-o", "-", "--style", "noir", "--seed", "7"], env)
    assert printed.returncode == 0, printed.stderr
    plan = json.loads(printed.stdout)
    assert plan["style"] == "noir" and plan["seed"] == 7 and len(plan["cues"]) == len(analysis["shots"])
    assert not clip.with_name("clip.plan.json").exists()
    plan["cues"][0]["prompt"] = "a kettle whistles. " + plan["cues"][0]["prompt"]
    edited = tmp_path / "edited.plan.json"
    edited.write_text(json.dumps(plan))
    out = tmp_path / "rendered.mov"
    untouched = tmp_path / "untouched.plan.json"
    untouched.write_text(printed.stdout)
    restyled = tmp_path / "restyled.plan.json"
    restyled.write_text(json.dumps({**json.loads(printed.stdout), "style": "silent-film"}))
    recaptioned = json.loads(printed.stdout)
    recaptioned["cues"][-1]["caption"] = "A loud explosion and a dog barking"
    recaptioned["cues"][0]["prompt"] = "a kettle whistles."
    (tmp_path / "recaptioned.plan.json").write_text(json.dumps(recaptioned))
    reseeded = tmp_path / "reseeded.plan.json"
    reseeded.write_text(json.dumps({**json.loads(printed.stdout), "seed": 9}))
    # Renders of the one analysed clip, each of its own plan to its own output: run side by side,
    # as `dub batch` runs jobs on one stage cache.
    renders = {"rendered": (edited, out), "plain": (untouched, tmp_path / "plain.mov"),
               "styled": (restyled, tmp_path / "styled.mov"),
               "again": (tmp_path / "recaptioned.plan.json", tmp_path / "recap.mov"),
               "seeded": (reseeded, tmp_path / "seed9.mov")}
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = {name: pool.submit(run_dub, ["render", clip, "--plan", plan_path, "-o", target, "--backend", "score",
                                            "--json-progress"], env)
                for name, (plan_path, target) in renders.items()}
        seed9_plan = pool.submit(run_dub, ["plan", clip, "--style", "noir", "--seed", "9", "-o", "-"], env)
        rendered, plain, styled, again, seeded = (runs[name].result() for name in renders)
    assert rendered.returncode == 0, rendered.stderr
    finished = json_events(rendered.stdout)[-1]
    manifest = json.loads(Path(finished["outputs"]["manifest"]).read_text())
    assert manifest["plan"]["cues"][0]["prompt"].startswith("a kettle whistles.")
    assert manifest["plan"]["style"] == "noir" and out.is_file()
    # The run's settings say what played (the plan's style and seed, not the command's defaults),
    # and the score engine says it does not read edited prompts.
    assert (manifest["settings"]["style"], manifest["settings"]["seed"]) == ("noir", 7)
    assert any("prompts" in note and "audiostory" in note for note in finished["warnings"])
    assert plain.returncode == 0 and not any("audiostory" in n for n in json_events(plain.stdout)[-1]["warnings"])
    # The style alone changed by hand is no unheard edit: the score plays it.
    assert styled.returncode == 0 and not any("audiostory" in n for n in json_events(styled.stdout)[-1]["warnings"])
    # A caption edited by hand, its prompt left as planned: the prompt follows the new caption
    # (and a new style), so the model never reads two texts that disagree; an edited prompt stays.
    from dubber.styles import get_style

    styled_plan = json.loads(Path(json_events(styled.stdout)[-1]["outputs"]["manifest"]).read_text())["plan"]
    assert all(c["prompt"].endswith(get_style("silent-film").prompt) for c in styled_plan["cues"])
    # ...and so does the instruction AudioStory reads, and the manifest's record of its text
    lead = get_style("silent-film").lead.strip()
    assert styled_plan["instruction"].startswith(lead) and styled_plan["model_prompt"].count(lead) == 1
    assert again.returncode == 0, again.stderr
    cues = json.loads(Path(json_events(again.stdout)[-1]["outputs"]["manifest"]).read_text())["plan"]["cues"]
    assert cues[-1]["prompt"] == f"A loud explosion and a dog barking. {get_style('noir').prompt}"
    assert cues[0]["prompt"] == "a kettle whistles."
    recap_plan = json.loads(Path(json_events(again.stdout)[-1]["outputs"]["manifest"]).read_text())["plan"]
    assert "A loud explosion and a dog barking" in recap_plan["instruction"]
    assert cues[-1]["model_text"].startswith("A loud explosion and a dog barking")
    # The plan's seed alone edited: a new take, heard by the score engine (no note that it is
    # not), its cue seeds those `dub plan --seed 9` gives
    assert seeded.returncode == 0 and not any("audiostory" in n for n in json_events(seeded.stdout)[-1]["warnings"])
    seed9 = json.loads(seed9_plan.result().stdout)
    seeded_plan = json.loads(Path(json_events(seeded.stdout)[-1]["outputs"]["manifest"]).read_text())["plan"]
    assert [c["seed"] for c in seeded_plan["cues"]] == [c["seed"] for c in seed9["cues"]]


@pytest.mark.parametrize("args, mention", [(["in.mp4", "--json-progress", "--bogus"], "--bogus"),
                                           (["analyze", "--json-progress", "--bogus", "in.mp4"], "--bogus"),
                                           (["in.mp4", "other.mp4", "--json-progress"], "dub batch")])
def test_json_progress_reports_a_bad_command_line_as_an_event(tmp_path, args, mention):
    """A script that reads the events hears of a mistyped option as of any other error: one
    error event on stdout with the sentence stderr prints."""
    proc = run_dub(args, dub_env(tmp_path), cwd=tmp_path)
    assert proc.returncode == 2
    events = json_events(proc.stdout)
    assert events == [{"event": "error", "message": events[0]["message"], "exit_code": 2}], proc.stdout
    assert mention in events[0]["message"] and proc.stderr.strip().endswith(events[0]["message"]), proc.stderr


def test_json_progress_reports_a_user_error_as_an_event(tmp_path):
    proc = run_dub([tmp_path / "absent.mp4", "--json-progress"], dub_env(tmp_path))
    assert proc.returncode == 2
    events = json_events(proc.stdout)
    assert events == [{"event": "error", "message": events[0]["message"], "exit_code": 2}]
    assert "does not exist" in events[0]["message"]
    assert proc.stderr.strip() == f"dub: {events[0]['message']}"


def test_an_offline_captioner_names_the_dub_command_first(clip, tmp_path):
    env = dub_env(tmp_path)
    proc = run_dub(["analyze", clip, "--captioner", "clip", "-o", "-"], env)
    assert proc.returncode == 2 and proc.stdout == "" and "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    fix = "run `dub models download clip` (or `hf download openai/clip-vit-base-patch32`)"
    assert fix in line, line
    doctor = run_dub(["doctor"], env)
    assert doctor.returncode == 0, doctor.stderr
    assert next(ln for ln in doctor.stdout.splitlines() if ln.startswith("clip captioner")).endswith(fix)


def _info(cache: Path, env: dict) -> dict[str, str]:
    proc = run_dub(["cache", "info", "--cache-dir", cache], env)
    assert proc.returncode == 0, proc.stderr
    return {line[:20].strip(): line[20:].strip() for line in proc.stdout.splitlines()}


def _ours(cache: Path) -> list[Path]:
    return sorted([*cache.glob("analysis/*.json"), *cache.glob("plan/*.json"), *cache.glob("render/*/*")])


def _cache_cues(cache: Path, count: int) -> None:
    """`count` rendered cues and their meta.json in one render set, as a caching backend writes them."""
    import numpy as np

    from dubber.cache import StageCache
    from dubber.types import Cue, CueAudio

    store = StageCache(cache).cue_store("c" * 24)
    for i in range(count):   # 1.25 s each: the cache is megabytes, as rendered audio makes it
        cue = Cue(i, i, 0, 1, 0, 60_000, "", "", 0)
        assert store.save(cue, CueAudio(i, 0, {"dub": np.zeros((2, 60_000), np.float32)}))
    store.save_meta({"backend": "audiostory"})


def test_cache_info_and_clean(clip, tmp_path):
    import os
    import time

    import dubber

    env = dub_env(tmp_path)
    cache = tmp_path / "my cache"
    result = dubber.dub(clip, tmp_path / "o.mp4", dubber.DubOptions(backend="score", cache_dir=str(cache)))
    _cache_cues(cache, result.cues)   # the score engine keeps no audio: cues as AudioStory leaves them
    files = _ours(cache)
    assert len(files) == 2 + result.cues + 1   # analysis, plan, the cues and their meta.json
    info = _info(cache, env)
    assert info["location"] == str(cache.resolve()) and info["analyses"] == "1" and info["plans"] == "1"
    assert info["rendered cues"] == f"{result.cues} in 1 render sets"
    assert info["size"] == f"{sum(f.stat().st_size for f in files) / 1e6:.1f} MB"
    # Files that are not the cache's own stay, wherever they are; so does anything behind a link.
    strangers = [cache / "plan" / "notes.txt", tmp_path / "outside" / f"cue-00000-{'a' * 24}.npz"]
    for f in strangers:
        f.parent.mkdir(exist_ok=True)
        f.write_text("keep me")
    (cache / "render" / ("b" * 24)).symlink_to(tmp_path / "outside", target_is_directory=True)
    # Clean what was written more than 5 days ago: the analysis and the cues, not the plan.
    old_s = time.time() - 10 * 86400
    for f in [*cache.glob("analysis/*.json"), *cache.glob("render/*/cue-*.npz")]:
        os.utime(f, (old_s, old_s))
    cleaned = run_dub(["cache", "clean", "--older-than", "5", "--cache-dir", cache], env)
    assert cleaned.returncode == 0, cleaned.stderr
    assert cleaned.stdout.startswith(f"removed {1 + result.cues + 1} files")
    assert len(list(cache.glob("plan/*.json"))) == 1 and not list(cache.glob("analysis/*"))
    # The emptied set folder is gone; the link is left alone.
    assert [p.name for p in (cache / "render").iterdir()] == ["b" * 24]
    (cache / "CACHEDIR.TAG").unlink()   # a cache written before tags: its stage folders say it is ours
    assert run_dub(["cache", "clean", "--cache-dir", cache], env).returncode == 0
    assert _info(cache, env)["plans"] == "0" and all(f.read_text() == "keep me" for f in strangers)


def test_cache_commands_refuse_a_folder_that_is_not_a_cache(tmp_path):
    env = dub_env(tmp_path)
    folder = tmp_path / "projects"
    (folder / "plan").mkdir(parents=True)
    (folder / "plan" / f"{'c' * 24}.json").write_text("{}")
    (folder / "film.mp4").write_text("precious")
    for args in (["clean", "--cache-dir", folder], ["info", "--cache-dir", folder], ["clean"]):
        proc = run_dub(["cache", *args], {**env, "DUB_CACHE_DIR": str(folder)})
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        (line,) = proc.stderr.strip().splitlines()
        assert "does not look like a dubber cache" in line and "film.mp4" in line and line.endswith("--cache-dir.")
    assert sorted(p.name for p in folder.rglob("*")) == ["cccccccccccccccccccccccc.json", "film.mp4", "plan"]
    bad = run_dub(["cache", "clean", "--older-than", "soon", "--cache-dir", tmp_path / "none"], env)
    assert bad.returncode == 2 and "days" in bad.stderr
    empty = run_dub(["cache", "info", "--cache-dir", tmp_path / "none"], env)
    assert empty.returncode == 0 and "0 in 0 render sets" in empty.stdout and not (tmp_path / "none").exists()


def test_a_dub_says_when_it_leaves_the_sources_own_sound_out(tmp_path):
    """Without --keep-original the output carries the dub alone: the run says which of the
    source's tracks it left out and how to keep them; with it, no such note."""
    from dub_cli import ffmpeg

    source = tmp_path / "talk.mov"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x90:rate=24:duration=3", "-f", "lavfi", "-i", "sine=f=440:d=3",
           "-f", "lavfi", "-i", "sine=f=550:d=3", "-map", "0:v", "-map", "1:a", "-map", "2:a", "-c:v", "libx264",
           "-pix_fmt", "yuv420p", "-c:a", "aac", "-metadata:s:a:0", "language=eng", "-metadata:s:a:1", "language=spa",
           "-shortest", str(source))
    env = dub_env(tmp_path)
    plain = run_dub([source, "-o", tmp_path / "plain.mov", "--backend", "score", "--json-progress"], env)
    assert plain.returncode == 0, plain.stderr
    notes = json_events(plain.stdout)[-1]["warnings"]
    assert any("2 audio tracks (eng, spa)" in n and "--keep-original" in n for n in notes), notes
    kept = run_dub([source, "-o", tmp_path / "kept.mov", "--backend", "score", "--keep-original", "--json-progress"],
                   env)
    assert kept.returncode == 0 and not any("--keep-original" in n for n in json_events(kept.stdout)[-1]["warnings"])


def _dub_in_process(args: list, tmp_path: Path, monkeypatch) -> int:
    from dubber.cli.main import main

    for key, value in dub_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    return main([str(a) for a in args])


@pytest.mark.parametrize("no_cache", [False, True])
def test_an_interrupted_dub_says_only_what_is_true_of_its_cache(clip, tmp_path, monkeypatch, capsys, no_cache):
    import dubber.api

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(dubber.api, "run_job", interrupted)
    code = _dub_in_process([clip, *(["--no-cache"] if no_cache else [])], tmp_path, monkeypatch)
    said = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 130
    if no_cache:
        assert "nothing was kept" in said and "cache." not in said
    else:
        assert "the stages that finished come from the cache" in said


def test_an_interrupted_analysis_does_not_promise_a_cache_it_has_not_kept(clip, tmp_path, monkeypatch, capsys):
    import vision

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(vision, "analyze", interrupted)
    code = _dub_in_process(["analyze", clip, "-o", tmp_path / "a.json"], tmp_path, monkeypatch)
    said = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 130 and "a rerun reads the video again" in said and "from the cache" not in said


def test_a_dub_interrupted_while_writing_its_review_page_says_the_dub_is_complete(clip, tmp_path, monkeypatch, capsys):
    """The dub is in place when the page is written: the user is told so and how to get the page,
    not to rerun a command that would only meet the finished outputs."""
    import dubber.review

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    real = dubber.review.write_review
    monkeypatch.setattr(dubber.review, "write_review", interrupted)
    out = tmp_path / "out" / "v.mp4"
    code = _dub_in_process([clip, "--review", "-o", out], tmp_path, monkeypatch)
    said = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 130 and out.is_file() and not out.with_suffix(".review.html").exists()
    assert "the dub is complete" in said and said.endswith(f"dub review {out.with_suffix('.json')}")
    monkeypatch.setattr(dubber.review, "write_review", real)
    assert _dub_in_process(["review", out.with_suffix(".json")], tmp_path, monkeypatch) == 0
    assert out.with_suffix(".review.html").is_file()


def test_a_cut_short_vlm_download_is_passed_over_with_a_notice(sample_30p_silent, tmp_path):
    """Weights whose download stopped after the config would crash every dub if auto took them:
    auto captions with motion and says why, with the command that finishes the download."""
    pytest.importorskip("transformers")
    env = dub_env(tmp_path)
    snapshot = tmp_path / "hf-home" / "hub" / "models--Qwen--Qwen2.5-VL-3B-Instruct" / "snapshots" / ("1" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text('{"model_type": "qwen2_5_vl"}')
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("1" * 40)
    video, _ = sample_30p_silent
    proc = run_dub([video, "-o", tmp_path / "out.mp4"], env)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    notice = next(line for line in proc.stderr.splitlines() if "motion captioner" in line)
    assert "incomplete" in notice and "dub models download vlm" in notice
    manifest = json.loads((tmp_path / "out.json").read_text())
    assert {c["captioner"] for c in manifest["analysis"]["captions"]} == {"motion"}


def test_models_list_names_the_parts_a_cached_checkpoint_holds_itself(tmp_path):
    """A checkpoint that carries its own tokenizer and T5 needs nothing more: no "not cached"
    line whose suggested command would never clear it."""
    pytest.importorskip("torch")
    from audiostory_core.testing import write_tiny_checkpoint

    env = dub_env(tmp_path)
    repo = tmp_path / "hf-home" / "hub" / "models--TencentARC--AudioStory-3B"
    write_tiny_checkpoint(repo / "snapshots" / ("c" * 40))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("c" * 40)
    listed = run_dub(["models", "list"], env)
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[1]: line for line in listed.stdout.splitlines() if line.startswith("audiostory")}
    for helper in ("Qwen/Qwen2.5-3B-Instruct", "google/flan-t5-large"):
        assert "in the AudioStory checkpoint" in rows[helper] and "not cached" not in rows[helper]


def test_cache_info_and_clean_cover_converted_weights(tmp_path):
    """The converted copies of pickled AudioStory weights are gigabytes each: `dub cache info`
    shows them and `dub cache clean` frees them."""
    pytest.importorskip("torch")
    from audiostory_core import weight_files
    from audiostory_core.testing import write_tiny_checkpoint

    env = dub_env(tmp_path)
    copies = Path(env["AUDIOSTORY_CACHE"])
    weights = write_tiny_checkpoint(tmp_path / "ckpt") / "audiostory-3B" / "pytorch_model.bin"
    made = weight_files.as_safetensors(weights, copies)
    cache = tmp_path / "dub-cache"
    cache.mkdir()
    (cache / "CACHEDIR.TAG").write_text("Signature: 8a477f597d28d172789f06886806bc55\n")
    info = _info(cache, env)
    assert info["converted weights"].startswith("1 (") and str(made.parent) in info["converted weights"]
    cleaned = run_dub(["cache", "clean", "--cache-dir", cache], env)
    assert cleaned.returncode == 0, cleaned.stderr
    assert "removed 1 converted weights" in cleaned.stdout and not made.exists() and weights.exists()
