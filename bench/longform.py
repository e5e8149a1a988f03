"""Benchmark of memory and cache size against the length of the video: the same synthetic film at
10, 30 and 120 minutes, each dubbed by `dub` (default options, CPU) in a fresh process.

    python bench/longform.py                         # 10, 30 and 120 min of 1080p
    python bench/longform.py --minutes 10 --json     # one length, numbers as JSON at the end
    python bench/longform.py --width 320 --height 180 --minutes 1 10
    python bench/longform.py --batch-clips 6 --clip-s 30 --width 640 --height 360   # dub batch on Ray

The film is made cheaply: one loop of `--loop-s` seconds is synthesised by samples.synth (real cuts,
planted impacts, flashes and dashes, a sound track), then repeated with ffmpeg's concat demuxer and
stream copy, which rewrites the timestamps of each copy so the result plays as one long film. Films
are kept in --work and reused.

Each run happens in a child process with an empty stage cache. The child reports its own peak
resident memory (VmHWM) for every stage (the peak is reset at each stage start through
/proc/self/clear_refs, where the kernel allows it) and for the whole run (the largest of them),
and the peak of its ffmpeg children. The film-length tracks of a run live on disk in the cache's
work folder, which is empty again when the run ends. After the run the cache folder is measured per stage (analysis, plan,
render). The targets: a 120-minute film in at most 1.5 GB, and at most 50 MB of cache per hour.
This is a benchmark, not a test.
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
RSS_TARGET_MB = 1536.0          # peak resident memory of a 120-minute film
CACHE_TARGET_MB_PER_HOUR = 50.0
DEFAULT_MINUTES = (10.0, 30.0, 120.0)


# ----------------------------------------------------------------------------- the film

def make_loop(work: Path, args: argparse.Namespace) -> Path:
    """One synthesised loop (cuts, events, audio) at the benchmark's size."""
    from samples.synth import SynthSpec, synthesize

    fps = Fraction(args.fps)
    path = work / f"loop_{args.width}x{args.height}_{args.loop_s:g}s_{fps.numerator}-{fps.denominator}.mp4"
    if not path.exists():
        spec = SynthSpec(width=args.width, height=args.height, fps=fps, duration_s=args.loop_s, shot_s=3.0,
                         audio=True, seed=13, crf=26, preset="superfast", grain=args.grain)
        start = time.perf_counter()
        synthesize(path, spec)
        print(f"synthesised {path.name} in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return path


def make_film(loop: Path, minutes: float, loop_s: float) -> Path:
    """`loop` repeated to `minutes` by stream copy (no re-encode); the concat demuxer gives each
    copy timestamps that follow the previous one's."""
    from dubber.atomic import atomic_output
    from dubber.media.ffmpeg import run_ffmpeg

    copies = max(1, round(minutes * 60.0 / loop_s))
    out = loop.with_name(f"film_{loop.stem}_x{copies}.mp4")
    if out.exists():
        return out
    listing = loop.with_name(f".{out.stem}.txt")
    listing.write_text("".join(f"file '{loop.name}'\n" for _ in range(copies)))
    try:
        with atomic_output(out) as tmp:
            run_ffmpeg(["-f", "concat", "-safe", "0", "-i", listing, "-c", "copy", "-movflags", "+faststart", tmp],
                       what=f"joining {copies} copies into {out.name}")
    finally:
        listing.unlink(missing_ok=True)
    return out


# ----------------------------------------------------------------------------- one run (child side)

def _peak_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")   # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


class _StagePeaks:
    """Progress sink that records the peak RSS of each top-level stage."""

    def __init__(self) -> None:
        self.current: str | None = None
        self.peaks_mb: dict[str, float] = {}
        self.resettable = _reset_peak()

    def __call__(self, stage: str, done: int, total: int) -> None:
        top = stage.split("/")[0]
        if top == self.current:
            return
        self.close()
        self.current = top
        if self.resettable:
            _reset_peak()

    def close(self) -> None:
        if self.current is not None:
            self.peaks_mb[self.current] = max(self.peaks_mb.get(self.current, 0.0), _peak_kb() / 1024)


def child_run(video: str, out_dir: str, cache_dir: str) -> dict:
    """Dub `video` with default options and a fresh cache; return what it cost. The ffmpeg children's
    figure counts the pages a child shared with this process when it was forked, so it is an upper
    bound of ffmpeg's own memory."""
    sys.path.insert(0, str(REPO_ROOT))
    import dubber

    peaks = _StagePeaks()
    start = time.perf_counter()
    result = dubber.dub(video, Path(out_dir) / "dubbed.mp4", dubber.DubOptions(cache_dir=cache_dir), peaks)
    peaks.close()
    wall_s = time.perf_counter() - start
    return {"wall_s": wall_s, "backend": result.backend, "cues": result.cues,
            "duration_s": result.total_samples / result.sample_rate,
            "stage_seconds": dict(result.stage_seconds), "stage_peak_rss_mb": peaks.peaks_mb,
            # VmHWM, not getrusage: Linux carries the forking parent's peak across exec into
            # ru_maxrss (a test runner's memory would count). clear_refs resets VmHWM per stage, so
            # the run's peak is the largest stage peak.
            "peak_rss_mb": max([_peak_kb() / 1024, *peaks.peaks_mb.values()]),
            "children_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
            "lufs": result.integrated_lufs, "true_peak_dbtp": result.true_peak_dbtp}


# ----------------------------------------------------------------------------- parent side

def cache_sizes_mb(root: Path) -> dict[str, float]:
    """Bytes on disk per top-level stage folder of a cache, in MB."""
    sizes: dict[str, float] = {}
    for stage in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        total = sum(f.stat().st_size for f in stage.rglob("*") if f.is_file())
        sizes[stage.name] = total / 1e6
    return sizes


def run_one(film: Path, timeout_s: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="dub-longform-") as tmp:
        cache = Path(tmp) / "cache"
        code = ("import json, sys; sys.path.insert(0, sys.argv[1]); from bench.longform import child_run; "
                "print('RESULT ' + json.dumps(child_run(*sys.argv[2:5])))")
        proc = subprocess.run([sys.executable, "-c", code, str(REPO_ROOT), str(film), tmp, str(cache)],
                              capture_output=True, text=True, timeout=timeout_s)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            raise RuntimeError(f"dub of {film.name} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
        numbers = json.loads(lines[-1][len("RESULT "):])
        numbers["cache_mb"] = cache_sizes_mb(cache)
        numbers["output_mb"] = (Path(tmp) / "dubbed.mp4").stat().st_size / 1e6
    return numbers


def report(minutes: float, n: dict) -> None:
    cache_total = sum(n["cache_mb"].values())
    per_hour = cache_total / (n["duration_s"] / 3600.0)
    print(f"\n{minutes:g} min ({n['duration_s']:.0f} s, {n['cues']} cues, {n['backend']}): "
          f"wall {n['wall_s']:.0f} s, peak RSS {n['peak_rss_mb']:.0f} MB "
          f"(ffmpeg children {n['children_peak_rss_mb']:.0f} MB)")
    print(f"  {'stage':<10}{'seconds':>9}{'peak MB':>10}")
    for stage, seconds in n["stage_seconds"].items():
        print(f"  {stage:<10}{seconds:>9.1f}{n['stage_peak_rss_mb'].get(stage, float('nan')):>10.0f}")
    parts = ", ".join(f"{k} {v:.2f}" for k, v in n["cache_mb"].items())
    print(f"  cache {cache_total:.2f} MB ({parts}) = {per_hour:.1f} MB per hour "
          f"(target <= {CACHE_TARGET_MB_PER_HOUR:g})")


# ----------------------------------------------------------------------------- dub batch on Ray

def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_cluster(cpus: int, log: Path) -> tuple[subprocess.Popen, str]:
    """`ray start --head --block` on loopback with `cpus` worker CPUs; (process, address)."""
    port = _free_port()
    ray_bin = Path(sys.executable).with_name("ray")
    cmd = [str(ray_bin), "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1", f"--num-cpus={cpus}",
           "--num-gpus=0", "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir=/tmp/dubray-{port}",
           "--block"]
    with open(log, "w") as sink:
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while "This command will now block" not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"ray start failed: {log.read_text()[-2000:]}")
        time.sleep(0.5)
    return proc, f"127.0.0.1:{port}"


def measure_cluster(clips: list[Path], cpus: int, work: Path) -> dict:
    """Wall time of `dub batch --ray` over `clips` on a fresh local cluster with `cpus` workers."""
    import signal

    proc, address = _start_cluster(cpus, work / f"ray-{cpus}.log")
    try:
        out = work / f"batch-{cpus}"
        cmd = [sys.executable, "-m", "dubber.cli", "batch", *map(str, clips), "-o", str(out), "--ray", address,
               "--cache-dir", str(work / f"cache-{cpus}"), "--force"]
        start = time.perf_counter()
        subprocess.run(cmd, cwd=REPO_ROOT, check=True, capture_output=True)
        wall_s = time.perf_counter() - start
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=90)
        shutil.rmtree(f"/tmp/dubray-{address.rsplit(':', 1)[1]}", ignore_errors=True)
    return {"workers": cpus, "jobs": len(clips), "wall_s": wall_s}


def cluster_main(args: argparse.Namespace) -> int:
    """Throughput of `dub batch --ray` with 1 and 2 worker processes on `--batch-clips` clips."""
    from samples.synth import SynthSpec, synthesize

    work = Path(args.work) / "cluster"
    work.mkdir(parents=True, exist_ok=True)
    clips = []
    for i in range(args.batch_clips):
        path = work / f"clip{i}.mp4"
        if not path.exists():
            synthesize(path, SynthSpec(width=args.width, height=args.height, fps=Fraction(args.fps),
                                       duration_s=args.clip_s, shot_s=3.0, audio=True, seed=40 + i, preset="superfast"))
        clips.append(path)
    video_s = args.batch_clips * args.clip_s
    rows = [measure_cluster(clips, cpus, work) for cpus in (1, 2)]
    for row in rows:
        print(f"{row['workers']} worker process(es): {row['jobs']} jobs, {video_s:g} s of video in {row['wall_s']:.1f} s "
              f"= {video_s / row['wall_s']:.2f} s of video per second")
    print(f"speed-up with 2 workers: {rows[0]['wall_s'] / rows[1]['wall_s']:.2f}x")
    if args.json:
        print(json.dumps(rows))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=list(DEFAULT_MINUTES))
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--fps", default="24000/1001")
    parser.add_argument("--loop-s", type=float, default=60.0, help="seconds of the synthesised loop")
    parser.add_argument("--grain", type=float, default=0.0, help="film grain of the loop (8-bit levels)")
    parser.add_argument("--timeout", type=float, default=4 * 3600.0, help="seconds allowed per run")
    parser.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "dub-longform"),
                        help="folder for the synthetic films (reused between runs)")
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON at the end")
    parser.add_argument("--batch-clips", type=int, default=0,
                        help="instead: time `dub batch --ray` on this many clips with 1 and 2 worker processes")
    parser.add_argument("--clip-s", type=float, default=30.0, help="seconds per clip of --batch-clips")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO_ROOT))
    if args.batch_clips:
        return cluster_main(args)

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    loop = make_loop(work, args)
    numbers = {}
    for minutes in args.minutes:
        film = make_film(loop, minutes, args.loop_s)
        numbers[f"{minutes:g}"] = n = run_one(film, args.timeout)
        report(minutes, n)
    longest = numbers[f"{max(args.minutes):g}"]
    per_hour = sum(longest["cache_mb"].values()) / (longest["duration_s"] / 3600.0)
    print(f"\nlongest film: peak RSS {longest['peak_rss_mb']:.0f} MB (target <= {RSS_TARGET_MB:g} for 120 min), "
          f"cache {per_hour:.1f} MB per hour (target <= {CACHE_TARGET_MB_PER_HOUR:g})")
    if args.json:
        print(json.dumps(numbers))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
