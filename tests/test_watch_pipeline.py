"""The watch folder without a processor: the dubbing pipeline runs on the batch machinery.
`--jobs 2` worker processes dub like single `dub` runs and a bad file fails alone; a worker killed
mid-dub, or interrupted from outside, runs its job again; SIGTERM mid-dub stops the workers and
the next start finishes the job; job records, timelines and manifests name where the files ended
up; and a real Ray cluster on loopback (marked `cluster`; skip with -m "not cluster").
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import pytest

from tests.watch_helpers import REPO, journal, publish, wait_for
from dubber.watch.service import run_watch
from dubber.watch.watcher import WatchOptions, WatchSettings, load_settings


DUB_SETTINGS = 'backend = "score"\n'   # the CPU score engine, explicitly (no model on a test machine)


@pytest.fixture(scope="module")
def dub_clips(tmp_path_factory) -> dict[str, bytes]:
    """Three short clips with cuts and sound, and a text file named like a video."""
    from samples.synth import SynthSpec, synthesize

    folder = tmp_path_factory.mktemp("watch-dub-clips")
    clips = {}
    for i, (seconds, seed) in enumerate(((3.0, 40), (4.0, 41), (3.5, 45))):   # one cut, a wipe in ep2
        path = folder / f"ep{i}.mp4"
        synthesize(path, SynthSpec(width=160, height=90, fps=Fraction(24), duration_s=seconds, shot_s=1.5,
                                   audio=True, seed=seed, preset="ultrafast"))
        clips[path.name] = path.read_bytes()
    clips["broken.mp4"] = b"this is a text file, not a video\n" * 20
    return clips


@pytest.fixture(scope="module")
def single_dubs(dub_clips, tmp_path_factory) -> dict[str, Path]:
    """Each good clip dubbed on its own with the folder's settings: what the watcher must write."""
    from dubber import api
    from dubber.watch.settings import dub_options

    settings = load_settings_text(tmp_path_factory.mktemp("settings"), DUB_SETTINGS)
    out = tmp_path_factory.mktemp("watch-single")
    refs = {}
    for name, data in dub_clips.items():
        if name == "broken.mp4":
            continue
        stem = Path(name).stem
        (out / name).write_bytes(data)
        options = replace(dub_options(settings, out / stem / "stems"), cache_dir=str(out / "cache"))
        refs[name] = api.dub(out / name, out / stem / f"{stem}.dub.mp4", options).output
    return refs


def load_settings_text(folder: Path, text: str) -> WatchSettings:
    (folder / "dub-watch.toml").write_text(text)
    return load_settings(folder)


def assert_like_single_run(folder: Path, reference: Path) -> None:
    """Same video and same mix stem, byte for byte, as a single `dub` of the file."""
    stem = reference.with_suffix("").with_suffix("").name
    assert (folder / f"{stem}.dub.mp4").read_bytes() == reference.read_bytes(), folder
    mix = f"stems/{stem}.dub.mix.wav"
    assert (folder / mix).read_bytes() == (reference.parent / mix).read_bytes(), folder


def snapshot(folder: Path) -> dict[str, int]:
    return {p.relative_to(folder).as_posix(): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def ledger_records(root: Path) -> list[dict]:
    """The job records the watcher's workers wrote (not their temporary files, written beside them)."""
    from dubber.jobs import Ledger

    records = (Ledger(root / "logs").read(p.stem) for p in sorted((root / "logs" / ".dub-batch").glob("[!.]*.json")))
    return [r for r in records if r is not None]


def test_jobs_2_dubs_like_single_runs_a_bad_file_fails_alone_and_a_restart_does_nothing(
        tmp_path, monkeypatch, dub_clips, single_dubs):
    monkeypatch.setenv("DUB_CACHE_DIR", str(tmp_path / "cache"))   # inherited by the worker processes
    root = tmp_path / "watch"
    (root / "inbox").mkdir(parents=True)
    (root / "dub-watch.toml").write_text(DUB_SETTINGS)
    for name, data in dub_clips.items():
        publish(root, name, data)
    options = WatchOptions(stable_s=0.1, poll_s=0.05, once=True, workers=2)
    run_watch(root, options)

    good = sorted(single_dubs)
    assert sorted(p.name for p in (root / "done").iterdir()) == good
    assert sorted(p.name for p in (root / "failed").iterdir()) == ["broken.mp4", "broken.mp4.error.json"]
    error = json.loads((root / "failed" / "broken.mp4.error.json").read_text())
    assert "broken.mp4 is not a video file" in error["reason"] and "processing" not in error["reason"], error
    assert error["error"] == "NotAVideo"          # the worker's error, by name
    for name in good:
        assert_like_single_run(root / "output" / Path(name).stem, single_dubs[name])
    records = ledger_records(root)   # every dub ran in a worker process, never in the watcher
    assert sorted(r["status"] for r in records) == ["done", "done", "done", "failed"]
    assert os.getpid() not in {r["pid"] for r in records}
    with_times = [(r["started_at"], r["finished_at"]) for r in records if r["status"] == "done"]
    assert any(a[0] < b[1] and b[0] < a[1] for a in with_times for b in with_times if a != b), \
        f"no two dubs overlapped with --jobs 2: {with_times}"

    before, journal_before = snapshot(root), journal(root)
    run_watch(root, options)                                   # a restart: nothing left to do
    publish(root, "ep0-again.mp4", dub_clips["ep0.mp4"])       # finished content under a new name
    run_watch(root, options)
    after = snapshot(root)
    assert {k: v for k, v in after.items() if k in before and not k.startswith("logs/")} == \
        {k: v for k, v in before.items() if not k.startswith("logs/")}
    assert ledger_records(root) == records                     # no job was dispatched again
    new_events = [(r["event"], r["name"]) for r in journal(root)[len(journal_before):]]
    assert new_events == [("duplicate", "ep0-again.mp4")]
    assert "done/ep0-again.mp4.duplicate.json" in after


def test_a_worker_killed_mid_job_is_retried_to_the_same_output(tmp_path, monkeypatch, dub_clips, single_dubs):
    monkeypatch.setenv("DUB_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "watch"
    (root / "inbox").mkdir(parents=True)
    (root / "dub-watch.toml").write_text(DUB_SETTINGS)
    publish(root, "ep1.mp4", dub_clips["ep1.mp4"])
    killed = []

    def kill_the_worker() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            for record in ledger_records(root):
                if record["status"] == "running" and record["attempt"] == 1:
                    os.kill(int(record["pid"]), signal.SIGKILL)
                    killed.append(record["pid"])
            time.sleep(0.02)

    killer = threading.Thread(target=kill_the_worker, daemon=True)
    killer.start()
    run_watch(root, WatchOptions(stable_s=0.1, poll_s=0.05, once=True, workers=1))
    killer.join(5)
    assert killed, "the test never saw the job running"
    [record] = ledger_records(root)
    assert record["status"] == "done" and record["attempt"] == 2 and record["pid"] not in killed
    assert_like_single_run(root / "output" / "ep1", single_dubs["ep1.mp4"])
    assert [p.name for p in (root / "done").iterdir()] == ["ep1.mp4"] and not any((root / "failed").iterdir())
    assert "a worker process died" in (root / "logs" / "watch.log").read_text()


def test_a_signal_that_reaches_only_the_workers_strands_nothing(tmp_path, monkeypatch, dub_clips, single_dubs):
    """A process-group SIGINT while the watcher ignores SIGINT (started with & from a script)
    reaches only its workers: the interrupted dub runs again, and later drops are still dubbed."""
    monkeypatch.setenv("DUB_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "watch"
    (root / "inbox").mkdir(parents=True)
    (root / "dub-watch.toml").write_text(DUB_SETTINGS)
    stop = threading.Event()
    watcher = threading.Thread(target=run_watch, args=(root, WatchOptions(stable_s=0.1, poll_s=0.05, workers=1), stop))
    watcher.start()
    dubbed = []
    try:
        # A short dub can finish between two looks at the ledger: the worker is frozen while the
        # test checks that its job is still running, so the signal surely lands inside a job.
        for name in ("ep1.mp4", "ep2.mp4"):
            publish(root, name, dub_clips[name])
            dubbed.append(name)
            wait_for(lambda: any(r["status"] == "running" and Path(r["input"]).name == name
                                 for r in ledger_records(root)), 60, f"the dub of {name} to start", poll_s=0.005)
            [worker] = [r["pid"] for r in ledger_records(root) if Path(r["input"]).name == name]
            os.kill(int(worker), signal.SIGSTOP)
            try:
                [record] = [r for r in ledger_records(root) if Path(r["input"]).name == name]
                interrupting = record["status"] == "running"
                if interrupting:
                    os.kill(int(worker), signal.SIGINT)
            finally:
                os.kill(int(worker), signal.SIGCONT)
            if interrupting:
                break
            wait_for(lambda: name in {p.name for p in (root / "done").iterdir()}, 60, f"{name} to be dubbed")
        else:
            pytest.fail("every dub finished before the test could signal its worker")
        publish(root, "ep0.mp4", dub_clips["ep0.mp4"])
        dubbed.append("ep0.mp4")
        wait_for(lambda: sorted(p.name for p in (root / "done").iterdir()) == sorted(dubbed), 90,
                 "every file to be dubbed")
    finally:
        stop.set()
        watcher.join(60)
    assert not any((root / "processing").iterdir()) and not any((root / "failed").iterdir())
    for name in dubbed:
        assert_like_single_run(root / "output" / Path(name).stem, single_dubs[name])
    assert "was interrupted from outside; the job runs again" in (root / "logs" / "watch.log").read_text()
    [interrupted] = [r for r in ledger_records(root) if Path(r["input"]).name == dubbed[-2]]
    assert interrupted["status"] == "done" and interrupted["attempt"] == 2, interrupted


def _watch_one_file_once(tmp_path: Path, monkeypatch, name: str, source: Path) -> Path:
    """A watch folder with the real pipeline, `source` dropped in its inbox as `name` and
    watched with `--once` on one worker; returns the watch folder."""
    monkeypatch.setenv("DUB_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "watch"
    (root / "inbox").mkdir(parents=True)
    (root / "dub-watch.toml").write_text(DUB_SETTINGS)
    publish(root, name, source)
    run_watch(root, WatchOptions(stable_s=0.1, poll_s=0.05, once=True, workers=1))
    return root


def test_the_job_records_name_where_the_files_ended_up(tmp_path, monkeypatch, dub_clips):
    """Someone tracing a job from logs/.dub-batch finds its files: the output folder and the
    original in done/, not the staging folder and processing/."""
    root = _watch_one_file_once(tmp_path, monkeypatch, "ep0.mp4", dub_clips["ep0.mp4"])
    [record] = ledger_records(root)
    assert record["status"] == "done"
    assert Path(record["input"]) == root / "done" / "ep0.mp4"
    assert Path(record["output"]) == root / "output" / "ep0" / "ep0.dub.mp4"
    outputs = [Path(p) for p in record["outputs"].values()]
    assert outputs and all(p.is_file() for p in outputs), outputs
    assert ".staging" not in json.dumps(record) and "processing" not in json.dumps(record)


def media_references(folder: Path) -> dict[str, list[Path]]:
    """Every file the output folder's .otio (as OpenTimelineIO reads it), .fcpxml (its src
    attributes) and manifest (the input's path, and its outputs relative to it) point at."""
    import xml.etree.ElementTree as ET
    from urllib.parse import urlsplit
    from urllib.request import url2pathname

    import opentimelineio as otio

    def from_url(url: str) -> Path:
        return Path(url2pathname(urlsplit(url).path))

    [otio_file] = folder.glob("*.otio")
    [fcpxml_file] = folder.glob("*.fcpxml")
    [manifest_file] = [p for p in folder.glob("*.json") if p.name != "source.json"]
    timeline = otio.adapters.read_from_file(str(otio_file))
    manifest = json.loads(manifest_file.read_text())
    return {
        "otio": [Path(c.media_reference.target_url) for c in timeline.find_clips()],   # plain paths
        "fcpxml": [from_url(e.get("src")) for e in ET.parse(fcpxml_file).iter() if e.get("src")],
        "manifest": [Path(manifest["media"]["path"]), Path(manifest["analysis"]["media"]["path"]),
                     *(folder / rel for rel in manifest["outputs"].values())],
    }


def test_watch_timelines_and_manifests_point_at_files_that_exist(tmp_path, monkeypatch, dub_clips):
    """An editor opening output/<name>/<name>.dub.otio or .fcpxml finds all its media: the dub,
    its stems, and the original in done/ (not the staging folder or processing/). Two drops
    under one name: each output names its own original."""
    monkeypatch.setenv("DUB_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "watch"
    (root / "inbox").mkdir(parents=True)
    (root / "dub-watch.toml").write_text(DUB_SETTINGS)
    options = WatchOptions(stable_s=0.1, poll_s=0.05, once=True, workers=1)
    publish(root, "ep0.mp4", dub_clips["ep0.mp4"])
    run_watch(root, options)
    publish(root, "ep0.mp4", dub_clips["ep1.mp4"])                        # another film, the same name
    run_watch(root, options)
    assert sorted(p.name for p in (root / "output").iterdir()) == ["ep0", "ep0-2"]
    for folder, original, content in (("ep0", "ep0.mp4", "ep0.mp4"), ("ep0-2", "ep0-2.mp4", "ep1.mp4")):
        references = media_references(root / "output" / folder)
        for kind, paths in references.items():
            missing = [str(p) for p in paths if not p.is_file()]
            assert paths and not missing, (folder, kind, missing)
        dubbed = (root / "done" / original).resolve()
        assert dubbed.read_bytes() == dub_clips[content]
        for kind in ("otio", "fcpxml"):   # the original sound's track is the very file dubbed
            assert dubbed in {p.resolve() for p in references[kind]}, (folder, kind)
            assert {p.resolve().parent for p in references[kind]} <= {
                dubbed.parent, (root / "output" / folder).resolve(), (root / "output" / folder / "stems").resolve()}
        assert references["manifest"][0].resolve() == dubbed
        fcpxml = next((root / "output" / folder).glob("*.fcpxml")).read_text()
        assert fcpxml.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE fcpxml>\n')   # as Final Cut wants
        # Every file of the folder, and every file its timelines and manifest name there, is
        # named after the folder: the second delivery's files are not named like the first's.
        own = {p.name for p in (root / "output" / folder).rglob("*") if p.is_file() and p.name != "source.json"}
        named = {p.name for paths in references.values() for p in paths if p.resolve() != dubbed}
        assert own and named <= own and all(n.startswith(f"{folder}.dub.") for n in own), (folder, own, named)
        assert f'name="{folder}.dub.mp4"' in fcpxml and f'name="{folder}.dub.mix.wav"' in fcpxml, fcpxml


def test_ray_with_a_processor_or_without_ray_is_refused_in_one_sentence(tmp_path, monkeypatch, capsys):
    from dubber.cli.main import main

    code = main(["watch", str(tmp_path / "w"), "--once", "--ray", "--processor", "tests.watch_helpers:copy_processor"])
    assert code == 2 and not (tmp_path / "w").exists()
    assert "--processor runs inside the watcher and --ray on a cluster; drop one of them." in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "ray", None)   # as if not installed
    assert main(["watch", str(tmp_path / "w"), "--once", "--ray"]) == 2 and not (tmp_path / "w").exists()
    assert "pip install 'dubber[cluster]'" in capsys.readouterr().err


@pytest.mark.cluster
def test_ray_watch_dubs_like_single_runs_into_a_shared_output_and_a_restart_does_nothing(
        ray_cluster, tmp_path, dub_clips, single_dubs):
    root, out = tmp_path / "watch", tmp_path / "shared" / "dubbed"
    (root / "inbox").mkdir(parents=True)
    (root / "dub-watch.toml").write_text(DUB_SETTINGS)
    for name, data in dub_clips.items():
        publish(root, name, data)
    env = {**os.environ, "PYTHONPATH": str(REPO), "DUB_CACHE_DIR": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "dubber.cli", "watch", str(root), "-o", str(out), "--once", "--stable-s", "0.1",
           "--poll-s", "0.05", "--ray", ray_cluster]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 2, stderr[-3000:]   # the broken file failed: a cron run says so
    assert stderr.splitlines()[-1] == "dub: 1 file failed this run; see failed/ and logs/watch.log."

    good = sorted(single_dubs)
    assert sorted(p.name for p in out.iterdir()) == [Path(n).stem for n in good]   # nothing under ROOT/output
    assert not any((root / "output").iterdir())
    for name in good:
        assert_like_single_run(out / Path(name).stem, single_dubs[name])
    assert sorted(p.name for p in (root / "failed").iterdir()) == ["broken.mp4", "broken.mp4.error.json"]
    records = ledger_records(root)
    assert sorted(r["status"] for r in records) == ["done", "done", "done", "failed"]
    assert proc.pid not in {r["pid"] for r in records}   # the dubs ran in the cluster's workers
    assert all(line.startswith("dub: ") for line in stderr.splitlines()), stderr

    before = snapshot(out)
    again = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert snapshot(out) == before and ledger_records(root) == records


def alive(pid: int) -> bool:
    """Whether a process runs (a zombie, exited but not yet reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def test_sigterm_mid_dub_stops_the_workers_and_the_next_start_finishes_it(tmp_path, dub_clips, single_dubs):
    root = tmp_path / "watch"
    (root / "inbox").mkdir(parents=True)
    (root / "dub-watch.toml").write_text(DUB_SETTINGS)
    publish(root, "ep2.mp4", dub_clips["ep2.mp4"])
    env = {**os.environ, "PYTHONPATH": str(REPO), "DUB_CACHE_DIR": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "dubber.cli", "watch", str(root), "--stable-s", "0.1", "--poll-s", "0.05"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: any(r["status"] == "running" for r in ledger_records(root)), 60, "the dub to start")
        [worker] = [r["pid"] for r in ledger_records(root)]
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)            # to the watcher alone, as `kill PID` does
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert time.monotonic() - began < 15, "the watcher waited for the dub instead of stopping it"
    assert proc.returncode in (130, 143) and "processing/" in stderr, stderr
    wait_for(lambda: not alive(worker), 10, "the worker process to stop")
    assert [p.name for p in (root / "processing").iterdir()] == ["ep2.mp4"]
    assert not any((root / "output").iterdir()) and not any((root / "failed").iterdir())

    again = subprocess.run([*cmd, "--once"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert [p.name for p in (root / "done").iterdir()] == ["ep2.mp4"]
    assert_like_single_run(root / "output" / "ep2", single_dubs["ep2.mp4"])
    assert [r["name"] for r in journal(root) if r["event"] == "resumed"] == ["ep2.mp4"]


def test_a_failed_job_record_names_the_file_in_failed(tmp_path, monkeypatch, dub_clips):
    """Someone tracing a failed job from logs/.dub-batch finds its file in failed/, beside the note
    saying why, as a done job's record names done/: not processing/, nor the staging folder its
    output was to be written in (removed, so the record names no output)."""
    root = _watch_one_file_once(tmp_path, monkeypatch, "broken.mp4", dub_clips["broken.mp4"])
    failed = root / "failed" / "broken.mp4"
    assert failed.is_file() and failed.with_name("broken.mp4.error.json").is_file()
    [record] = ledger_records(root)
    assert record["status"] == "failed" and Path(record["input"]) == failed
    assert record["output"] == ""
    assert record["reason"].startswith(f"{failed} is not a video file"), record["reason"]
    assert ".staging" not in json.dumps(record) and "processing" not in json.dumps(record)
