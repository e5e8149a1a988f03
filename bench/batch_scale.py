"""Throughput of `dub batch` with 1 and 2 worker processes, on the local pool and on a local Ray cluster.

    python bench/batch_scale.py                          # 6 clips of 30 s, 320x180, score backend
    python bench/batch_scale.py --clips 4 --clip-s 20 --only local

Each run dubs the same synthetic clips from scratch (a fresh stage cache), through the `dub batch`
command as a user runs it. Per run it reports the wall time, seconds of video dubbed per second of
wall time, how many jobs ran at once (the jobs' own durations from the ledger, summed, over the wall
time), the mean job time, the CPU seconds the local workers used, and the load average around the
run (how busy the machine was with other work). A Ray run starts its cluster first, as an operator
does (`ray start --head --num-cpus N` on loopback), and stops it after; that start is not timed.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
LEDGER_DIR = ".dub-batch"


def make_clips(work: Path, count: int, seconds: float, width: int, height: int) -> list[Path]:
    """`count` distinct clips with cuts, events and a sound track (made once, reused)."""
    sys.path.insert(0, str(REPO_ROOT))
    from samples.synth import SynthSpec, synthesize

    clips = []
    for i in range(count):
        path = work / f"clip{i}-{seconds:g}s-{width}x{height}.mp4"
        if not path.exists():
            synthesize(path, SynthSpec(width=width, height=height, fps=Fraction(24), duration_s=seconds, shot_s=3.0,
                                       audio=True, seed=60 + i, preset="superfast"))
            path.with_suffix(".json").unlink(missing_ok=True)
        clips.append(path)
    return clips


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalRay:
    """`ray start --head --block` on loopback with `cpus` worker CPUs, stopped on exit."""

    def __init__(self, cpus: int, log: Path) -> None:
        self.cpus, self.log, self.port = cpus, log, _free_port()
        self.temp = Path("/tmp") / f"dubray-{self.port}"   # Ray's socket paths must stay short

    def __enter__(self) -> str:
        ray_bin = Path(sys.executable).with_name("ray")
        cmd = [str(ray_bin), "start", "--head", f"--port={self.port}", "--node-ip-address=127.0.0.1",
               f"--num-cpus={self.cpus}", "--num-gpus=0", "--include-dashboard=false", "--disable-usage-stats",
               f"--temp-dir={self.temp}", "--block"]
        with open(self.log, "w") as sink:
            self.proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 120
        while "This command will now block" not in self.log.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"ray start failed: {self.log.read_text()[-2000:]}")
            time.sleep(0.5)
        return f"127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        self.proc.send_signal(signal.SIGTERM)   # `ray start --block` stops what it started
        try:
            self.proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        shutil.rmtree(self.temp, ignore_errors=True)


def run_batch(clips: list[Path], out: Path, cache: Path, extra: list[str]) -> dict:
    """One `dub batch` from scratch; its wall time, the local workers' CPU time and the ledger."""
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(cache, ignore_errors=True)
    cmd = [sys.executable, "-m", "dubber.cli", "batch", *map(str, clips), "-o", str(out), "--cache-dir", str(cache),
           "--backend", "score", *extra]
    load_before = os.getloadavg()[0]
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True)
    wall_s = time.perf_counter() - start
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"dub batch failed ({proc.returncode}): {proc.stderr[-2000:]}")
    records = [json.loads(p.read_text()) for p in (out / LEDGER_DIR).glob("[!.]*.json")]
    job_s = [r["finished_at"] - r["started_at"] for r in records]
    cpu_s = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    return {"wall_s": wall_s, "jobs": len(records), "job_mean_s": sum(job_s) / len(job_s),
            "at_once": sum(job_s) / wall_s, "cpu_s": cpu_s, "load_before": load_before,
            "load_after": os.getloadavg()[0], "workers_seen": len({(r["host"], r["pid"]) for r in records})}


def measure(kind: str, workers: int, clips: list[Path], work: Path) -> dict:
    out, cache = work / f"out-{kind}-{workers}", work / f"cache-{kind}-{workers}"
    if kind == "local":
        row = run_batch(clips, out, cache, ["--jobs", str(workers)])
    else:
        with LocalRay(workers, work / f"ray-{workers}.log") as address:
            row = run_batch(clips, out, cache, ["--ray", address])
        row["cpu_s"] = float("nan")   # the cluster's workers are not this process's children
    return {"kind": kind, "workers": workers, **row}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=6)
    parser.add_argument("--clip-s", type=float, default=30.0, help="seconds of video per clip")
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=180)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--only", choices=("local", "ray"), help="measure one kind of executor")
    parser.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "dub-batch-scale"))
    parser.add_argument("--json", action="store_true", help="also print the rows as JSON")
    args = parser.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    clips = make_clips(work, args.clips, args.clip_s, args.width, args.height)
    video_s = args.clips * args.clip_s
    print(f"{args.clips} clips of {args.clip_s:g} s ({args.width}x{args.height}), score backend, "
          f"{os.cpu_count()} CPUs")
    print(f"{'executor':<8}{'workers':>8}{'wall s':>9}{'video s/s':>11}{'at once':>9}{'job s':>8}"
          f"{'CPU s':>8}{'load before/after':>19}")
    rows = []
    for kind in ("local", "ray"):
        if args.only not in (None, kind):
            continue
        for workers in args.workers:
            row = measure(kind, workers, clips, work)
            rows.append(row)
            print(f"{kind:<8}{workers:>8}{row['wall_s']:>9.1f}{video_s / row['wall_s']:>11.2f}{row['at_once']:>9.2f}"
                  f"{row['job_mean_s']:>8.1f}{row['cpu_s']:>8.1f}{row['load_before']:>11.1f} / {row['load_after']:.1f}",
                  flush=True)
    if args.json:
        print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
