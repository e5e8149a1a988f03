"""`dub batch`: what it takes and what it says. A folder stands for its videos at any depth (and
leaves earlier dubs in it alone); a file given twice is dubbed once and said once; inputs whose
outputs would share a name are refused; a shared stems folder; a full output disk, a missing Ray,
or a Ray address where no cluster answers is one sentence; the time left; which job ran again
after its worker stopped; and Ray's own warnings kept off the terminal.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from dubber.batch import BatchOptions, folder_inputs, run_batch
from dubber.errors import BackendUnavailable, InputError
from tests.batch_helpers import REPO, _dub_options


@pytest.fixture(scope="module")
def clips(batch_clips) -> dict[str, Path]:
    """The batch inputs, made once a session (tests/conftest.py)."""
    return batch_clips


# ----------------------------------------------------------------------------- inputs

def test_a_folder_stands_for_its_videos_in_name_order_at_any_depth(clips, tmp_path):
    src = tmp_path / "src"
    (src / "Reel 2").mkdir(parents=True)
    shutil.copy(clips["clip1"], src / "b.mp4")
    shutil.copy(clips["clip0"], src / "Reel 2" / "a.mp4")
    (src / "notes.txt").write_text("shot list\n")
    (src / ".DS_Store").write_bytes(b"\0")      # system files and copies in progress go unmentioned
    (src / "._b.mp4").write_bytes(b"\0")
    (src / "c.mp4.part").write_bytes(b"\0")
    out = src / "dubbed"   # inside the folder given: its outputs are never taken for inputs
    said: list[str] = []
    result = run_batch([src], BatchOptions(out_dir=str(out), jobs=2), _dub_options(tmp_path), on_notice=said.append)
    assert said == [f"{src}: 2 videos found; left alone, not videos: notes.txt."]
    assert [(Path(o.input).relative_to(src).as_posix(), Path(o.output).name, o.status) for o in result.outcomes] == [
        ("Reel 2/a.mp4", "Reel 2 - a.dub.mp4", "done"), ("b.mp4", "b.dub.mp4", "done")]
    again = run_batch([src], BatchOptions(out_dir=str(out), jobs=2), _dub_options(tmp_path), on_notice=said.append)
    assert [o.status for o in again.outcomes] == ["skipped", "skipped"]


def test_a_folder_dubbed_again_leaves_the_dubs_made_earlier_in_it_alone(clips, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(clips["clip0"], src / "a.mp4")
    first = run_batch([src], BatchOptions(out_dir=str(src), jobs=1), _dub_options(tmp_path))
    assert [o.status for o in first.outcomes] == ["done"] and (src / "a.dub.json").is_file()
    # a video that only looks like a dub (its .json is someone else's) is still a video
    shutil.copy(clips["clip1"], src / "b.dub.mp4")
    (src / "b.dub.json").write_text('{"schema": "other/1", "outputs": {"video": "b.dub.mp4"}}')
    found = folder_inputs(src)
    assert [Path(v.path).name for v in found.videos] == ["a.mp4", "b.dub.mp4"]
    assert found.dubs == ("a.dub.mp4",)
    assert found.found() == f"{src}: 2 videos found; left alone, dubs made earlier: a.dub.mp4; not videos: b.dub.json."
    (src / "a.mp4").unlink()
    (src / "b.dub.mp4").unlink()
    (src / "b.dub.json").unlink()
    assert "holds only dubs made earlier (a.dub.mp4)" in str(folder_inputs(src).no_videos())


def test_dub_batch_takes_a_folder_and_refuses_one_without_videos_in_one_sentence(clips, tmp_path):
    from dub_cli import dub_env, run_dub

    env = dub_env(tmp_path)
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(clips["clip0"], src / "clip0.mp4")
    dubbed = run_dub(["batch", src, "-o", tmp_path / "out", "--jobs", "1"], env, timeout=600)
    assert dubbed.returncode == 0, dubbed.stderr
    assert (tmp_path / "out" / "clip0.dub.mp4").is_file()
    # the user is told what the folder held, in one line, without -v
    assert len([line for line in dubbed.stderr.splitlines() if line.startswith("dub: ") and str(src) in line
                and "1 video" in line]) == 1, dubbed.stderr

    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "readme.txt").write_text("nothing to dub\n")
    refused = run_dub(["batch", notes, "-o", tmp_path / "out2"], env)
    assert refused.returncode == 2
    said = [line for line in refused.stderr.splitlines() if "readme.txt" in line]
    assert len(said) == 1 and said[0].startswith(f"dub: failed {notes}: The folder {notes} holds no videos"), \
        refused.stderr
    assert said[0].endswith("or the videos themselves.") and said[0].count(". ") == 0
    assert "dub batch: 1 input: 0 dubbed, 0 already done, 1 failed." in refused.stderr


def test_a_full_output_disk_is_one_sentence_per_job_without_a_traceback(clips, tmp_path):
    """No room in OUTDIR even for a job's ledger record: each job fails with the disk's own
    sentence, as any other write of the job would, not as an internal error."""
    import resource

    from dub_cli import dub_command, dub_env

    def no_room() -> None:   # every file may grow to 64 bytes: a disk that is all but full
        resource.setrlimit(resource.RLIMIT_FSIZE, (64, 64))

    out = tmp_path / "out"
    done = subprocess.run([*dub_command(), "batch", str(clips["clip0"]), str(clips["clip1"]), "-o", str(out),
                           "--jobs", "1"], env=dub_env(tmp_path), capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL, preexec_fn=no_room)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr, done.stderr
    failed = [line for line in done.stderr.splitlines() if line.startswith("dub: failed ")]
    assert len(failed) == 2 and all("is full" in line and "free some space" in line for line in failed), done.stderr


def test_the_time_left_counts_only_the_jobs_run_here(monkeypatch):
    """A resumed backlog: 6 of 9 done by an earlier run. Nothing is estimated until a job has
    run here, and then at the pace of the jobs run here."""
    import io

    from dubber.cli import progress

    clock = [100.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    stream = io.StringIO()
    reporter = progress.JsonReporter(stream)
    reporter("batch", 6, 9)
    clock[0] += 7.0
    reporter("batch", 7, 9)
    clock[0] += 5.0
    reporter("batch", 8, 9)
    left = [json.loads(line)["remaining_s"] for line in stream.getvalue().splitlines()]
    assert left == [None, 14.0, 6.0]


def test_two_inputs_with_one_output_name_are_refused(clips, tmp_path):
    twin = tmp_path / "other" / clips["clip0"].name
    twin.parent.mkdir()
    twin.write_bytes(clips["clip0"].read_bytes())
    with pytest.raises(InputError, match="would both be dubbed to"):
        run_batch([clips["clip0"], twin], BatchOptions(out_dir=str(tmp_path / "out")), _dub_options(tmp_path))
    assert not (tmp_path / "out").exists()


def test_two_inputs_whose_dubs_would_share_their_other_files_are_refused(clips, tmp_path):
    # clip0.mp4 and clip0.mkv would be dubbed to clip0.dub.mp4 and clip0.dub.mkv, both with the
    # manifest clip0.dub.json: said before anything runs, not found out by the second job.
    twin = tmp_path / "other" / "clip0.mkv"
    twin.parent.mkdir()
    twin.write_bytes(clips["clip0"].read_bytes())
    with pytest.raises(InputError, match=r"clip0\.dub\.mkv and clip0\.dub\.mp4, whose other files share one name "
                                         r"\(clip0\.dub\.json"):
        run_batch([clips["clip0"], twin], BatchOptions(out_dir=str(tmp_path / "out")), _dub_options(tmp_path))
    assert not (tmp_path / "out").exists()


def test_one_file_given_twice_is_dubbed_once(clips, tmp_path):
    """An overlapping glob, or a folder and a video in it: the same file, one job."""
    folder = tmp_path / "reel"
    folder.mkdir()
    video = folder / "clip0.mp4"
    video.write_bytes(clips["clip0"].read_bytes())
    result = run_batch([folder, video, folder / ".." / "reel" / "clip0.mp4"],
                       BatchOptions(out_dir=str(tmp_path / "out"), jobs=1), _dub_options(tmp_path))
    assert [o.status for o in result.outcomes] == ["done"] and result.exit_code == 0
    assert (tmp_path / "out" / "clip0.dub.mp4").is_file()


def test_ray_missing_is_one_sentence_with_the_install_command(clips, tmp_path, monkeypatch):
    from dubber.cli.main import main

    monkeypatch.setitem(sys.modules, "ray", None)   # as if not installed
    with pytest.raises(BackendUnavailable, match=r"pip install 'dubber\[cluster\]'"):
        run_batch([clips["clip0"]], BatchOptions(out_dir=str(tmp_path / "out"), ray=True), _dub_options(tmp_path))
    code = main(["batch", str(clips["clip0"]), "-o", str(tmp_path / "out"), "--ray"])
    assert code == 2
    assert not (tmp_path / "out" / "clip0.dub.mp4").exists()


@pytest.mark.parametrize("address", ["127.0.0.1:{closed}", "ray://no-such-host.invalid:10001"])
def test_a_ray_address_where_no_cluster_answers_is_one_sentence_at_once(clips, tmp_path, address):
    """ray.init would retry an unreachable address for minutes, deaf to Ctrl-C and kill."""
    import socket

    with socket.socket() as free:   # a port nothing listens on once this socket is closed
        free.bind(("127.0.0.1", 0))
        closed = free.getsockname()[1]
    address = address.format(closed=closed)
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "dubber.cli", "batch", str(clips["clip0"]), "-o", str(tmp_path / "out"),
                           "--ray", address, "--cache-dir", str(tmp_path / "cache")],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and time.monotonic() - started < 30
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"Cannot reach the Ray cluster at {address}" in lines[0], proc.stderr
    assert not (tmp_path / "out").exists()   # a refused batch makes nothing, not even its folder


def test_a_ray_address_where_something_else_listens_is_one_sentence_at_once(clips, tmp_path):
    """A web server on the port given (a dashboard's, a typo's): it accepts the connection, and
    ray.init would retry against it for minutes. It is refused at once for not speaking Ray's gRPC."""
    import http.server
    import socketserver

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    with socketserver.TCPServer(("127.0.0.1", 0), Quiet) as web:
        threading.Thread(target=web.serve_forever, daemon=True).start()
        address = f"127.0.0.1:{web.server_address[1]}"
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "dubber.cli", "batch", str(clips["clip0"]), "-o",
                               str(tmp_path / "out"), "--ray", address, "--cache-dir", str(tmp_path / "cache")],
                              cwd=REPO, capture_output=True, text=True, timeout=120)
        web.shutdown()
    assert proc.returncode == 2 and time.monotonic() - started < 30
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"No Ray cluster answers at {address}" in lines[0], proc.stderr
    assert not (tmp_path / "out").exists()


def test_a_batch_shares_one_stems_folder_and_replaces_changed_jobs_with_overwrite(clips, tmp_path):
    """`dub batch --stems DIR`: every output's stems land in DIR under its own name. Rerun with
    another loudness, a finished output is not replaced without --overwrite; with it, it is."""
    from dub_cli import dub_env, run_dub

    env = dub_env(tmp_path)
    inputs = [clips["clip0"], clips["clip1"]]
    out, stems = tmp_path / "out", tmp_path / "stems"
    first = run_dub(["batch", *inputs, "-o", out, "--stems", stems, "--jobs", "1"], env, timeout=600)
    assert first.returncode == 0, first.stderr
    for clip in inputs:   # each file is named as it finishes
        assert f"dub: dubbed {clip} -> {out / (clip.stem + '.dub.mp4')}." in first.stderr.splitlines(), first.stderr
    assert sorted(p.name for p in stems.iterdir()) == [f"clip{i}.dub.{s}.wav" for i in (0, 1)
                                                       for s in ("fx", "mix", "music")]
    louder = ["batch", *inputs, "-o", out, "--stems", stems, "--jobs", "1", "--lufs", "-14"]
    refused = run_dub(louder, env, timeout=600)
    assert refused.returncode != 0 and "--overwrite" in refused.stderr
    replaced = run_dub([*louder, "--overwrite"], env, timeout=600)
    assert replaced.returncode == 0, replaced.stderr
    manifest = json.loads((out / "clip0.dub.json").read_text())
    assert abs(manifest["loudness"]["integrated_lufs"] + 14.0) < 0.2


def test_a_finished_job_with_a_file_gone_is_dubbed_again_whole(clips, tmp_path):
    """A rerun takes stock of every file a job wrote, not its video alone: a manifest, a stem or
    a timeline deleted since (a tidy-up gone too far, a sync that lost one) makes the job one to
    do again, and it is done whole, without --overwrite, the files it still had replaced. A job
    whose files are all there is skipped, and one whose video someone else replaced is not
    touched."""
    from dubber.batch import BatchOptions as Options

    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        shutil.copy(clips[f"clip{i % 2}"], src / f"v{i}.mp4")
    out = tmp_path / "out"
    options = _dub_options(tmp_path)
    timeline = __import__("dataclasses").replace(options, timeline=True)
    first = run_batch([src], Options(out_dir=str(out), jobs=1), timeline)
    assert [o.status for o in first.outcomes] == ["done"] * 3
    (out / "v0.dub.json").unlink()
    (out / "v1.dub.otio").unlink()
    kept = (out / "v2.dub.mp4").stat().st_mtime_ns
    again = run_batch([src], Options(out_dir=str(out), jobs=1), timeline)
    assert [o.status for o in again.outcomes] == ["done", "done", "skipped"], [o.reason for o in again.outcomes]
    for name in ("v0", "v1"):
        manifest = json.loads((out / f"{name}.dub.json").read_text())
        assert all((out / rel).is_file() for rel in manifest["outputs"].values()), manifest["outputs"]
    assert (out / "v2.dub.mp4").stat().st_mtime_ns == kept
    # Someone else's file in a job's place (its video replaced, its manifest gone): never the job's to remove.
    (out / "v2.dub.mp4").write_bytes(b"an editor's own cut")
    (out / "v2.dub.json").unlink()
    last = run_batch([src], Options(out_dir=str(out), jobs=1), timeline)
    assert [o.status for o in last.outcomes] == ["skipped", "skipped", "failed"]
    assert (out / "v2.dub.mp4").read_bytes() == b"an editor's own cut"


def test_a_damaged_or_deleted_ledger_leaves_finished_dubs_finished_and_says_so(clips, tmp_path):
    """The batch's records cut short or deleted (a sync tool, a clean-up): a job whose dub's own
    manifest says it was made, whole, from this input with these settings is still done, and a
    damaged record is named; a changed setting is still a new job."""
    from dubber.batch import BatchOptions as Options

    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(clips["clip0"], src / "a.mp4")
    shutil.copy(clips["clip1"], src / "b.mp4")
    out = tmp_path / "out"
    options = _dub_options(tmp_path)
    assert [o.status for o in run_batch([src], Options(out_dir=str(out), jobs=1), options).outcomes] == ["done"] * 2
    records = sorted((out / ".dub-batch").glob("*.json"))
    records[0].write_text("{garbage")
    said: list[str] = []
    again = run_batch([src], Options(out_dir=str(out), jobs=1), options, on_notice=said.append)
    assert [o.status for o in again.outcomes] == ["skipped", "skipped"], [o.reason for o in again.outcomes]
    assert sum("cannot be read" in line and str(records[0]) in line for line in said) == 1, said
    shutil.rmtree(out / ".dub-batch")
    assert [o.status for o in run_batch([src], Options(out_dir=str(out), jobs=1), options).outcomes] == ["skipped"] * 2
    louder = __import__("dataclasses").replace(options, lufs=-14.0)
    refused = run_batch([src], Options(out_dir=str(out), jobs=1), louder)
    assert [o.status for o in refused.outcomes] == ["failed"] * 2 and "--overwrite" in refused.outcomes[0].reason


def test_a_file_given_twice_is_said_once_in_one_line_and_dubbed_once(clips, tmp_path):
    """The same video by a relative path, its absolute path and a link to it: `dub batch` says so in
    one line on stderr and dubs it once, named as first given."""
    from dub_cli import dub_env, run_dub

    (tmp_path / "in").mkdir()
    video = tmp_path / "in" / "clip0.mp4"
    shutil.copy(clips["clip0"], video)
    (tmp_path / "in" / "link.mp4").symlink_to(video)
    done = run_dub(["batch", "in/clip0.mp4", video, "in/link.mp4", "-o", "out", "--jobs", "1"], dub_env(tmp_path),
                   timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    said = [line for line in done.stderr.splitlines() if "listed" in line]
    assert said == ["dub: in/clip0.mp4 is listed 3 times; it is dubbed once."], done.stderr
    assert sorted(p.name for p in (tmp_path / "out").glob("*.mp4")) == ["clip0.dub.mp4"]
    assert "dub batch: 1 input: 1 dubbed, 0 already done, 0 failed." in done.stderr


def test_only_a_file_given_more_than_once_is_said(clips, tmp_path):
    from dubber.batch import plan_jobs

    said: list[str] = []
    jobs, failed = plan_jobs([clips["clip0"], clips["clip1"], clips["clip0"]], tmp_path / "out",
                             _dub_options(tmp_path), "run", on_notice=said.append)
    assert [Path(j.input).name for j in jobs] == ["clip0.mp4", "clip1.mp4"] and not failed
    assert said == [f"{clips['clip0']} is listed twice; it is dubbed once."]
    said.clear()
    plan_jobs([clips["clip0"], clips["clip1"]], tmp_path / "out", _dub_options(tmp_path), "run", on_notice=said.append)
    assert said == []


# ----------------------------------------------------------------------------- what a batch says

class _RetriedPool:
    """Stands in for the worker pool: clip0's first worker stopped, so it took two attempts."""

    def submit(self, job, options):
        from concurrent.futures import Future

        from dubber.jobs import JobOutcome

        outcome = Future()
        outcome.set_result(JobOutcome(job.input, job.output, "done", attempts=2 if "clip0" in job.input else 1))
        return outcome

    def interrupt(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_dub_batch_says_in_one_line_which_job_ran_again_after_its_worker_stopped(clips, tmp_path, monkeypatch,
                                                                                 capsys):
    import dubber.batch
    from dubber.cli.main import main

    monkeypatch.setattr(dubber.batch, "open_dispatcher", lambda *args: _RetriedPool())
    code = main(["batch", str(clips["clip0"]), str(clips["clip1"]), "-o", str(tmp_path / "out"),
                 "--cache-dir", str(tmp_path / "cache")])
    stderr = capsys.readouterr().err
    said = [line for line in stderr.splitlines() if "ran again" in line]
    assert code == 0 and said == [f"dub: {clips['clip0']}: the worker dubbing it stopped before the end (killed, or "
                                  "out of memory) and the job ran again; attempt 2 finished it."], stderr


def test_ray_turning_token_authentication_on_is_not_a_raw_ray_line(monkeypatch, caplog):
    """Ray's warning that it turned token authentication on ends with how to turn it off; dub
    keeps it off the terminal. Ray's other warnings pass. (Ray warns once a process, so the
    records are made here on Ray's own logger, the one its warning uses.)"""
    pytest.importorskip("ray")
    from ray._private.authentication import authentication_token_setup as ray_auth

    import dubber.executors
    import dubber.ray_cluster

    class _FakeRay:
        def remote(self, **resources):
            return lambda f: f

    assert ray_auth.logger.name == dubber.ray_cluster.RAY_AUTH_LOGGER
    monkeypatch.setattr(dubber.ray_cluster, "connect_ray", lambda address, jobs: _FakeRay())
    dubber.executors.open_dispatcher(True, None, 1, 1)
    # Ray's loggers stop at "ray" once Ray has set up its logging (they do not reach the root,
    # where caplog listens), so the records are taken on Ray's own logger.
    ray_auth.logger.addHandler(caplog.handler)
    try:
        ray_auth.logger.warning("Token authentication is enabled for this Ray cluster. Set RAY_AUTH_MODE=disabled "
                                "to opt out.")
        ray_auth.logger.warning("Token authentication is disabled; anyone who reaches the cluster can use it.")
    finally:
        ray_auth.logger.removeHandler(caplog.handler)
    said = [record.getMessage() for record in caplog.records]
    assert not [line for line in said if "RAY_AUTH_MODE" in line]
    assert [line for line in said if "Token authentication is disabled" in line]
