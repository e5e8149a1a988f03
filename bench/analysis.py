"""Benchmark of `vision.analyze`: speed against a bare decode, and peak memory against length.

    python bench/analysis.py                       # 60 s and 240 s of 1080p30, captioner none
    python bench/analysis.py --captioner motion --durations 60

For each synthetic video (cartoon shots with film grain, so the bitrate and decode cost are
those of real delivery files), every measurement runs in a fresh Python process:

- decode: one bare PyAV decode of every frame (threads on, no conversion), the yardstick;
- analyze: `vision.analyze` with the chosen captioner.

Reported: wall seconds of each and their ratio (target <= 1.3), the same ratio in CPU seconds
(all threads; steadier than wall time on a shared machine), and each process's peak resident
memory (target <= 1.5 GB, and no growth with duration beyond 10 %). This is a benchmark, not a
test: it takes minutes.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
RATIO_TARGET = 1.3
RSS_TARGET_MB = 1536.0
RSS_GROWTH_TARGET = 0.10


# ----------------------------------------------------------------------------- child side


def _child(mode: str, path: str, captioner: str) -> None:
    """Runs in a fresh process: time one job, print its wall time and peak memory as JSON."""
    sys.path.insert(0, str(REPO_ROOT))
    import av

    import vision

    analyze = vision.analyze  # import outside the timed span, as `import av` is for the decode
    before = resource.getrusage(resource.RUSAGE_SELF)
    cpu_before = before.ru_utime + before.ru_stime
    start = time.perf_counter()
    if mode == "decode":
        with av.open(path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            frames = sum(1 for _ in container.decode(stream))
    else:
        analysis = analyze(path, captioner=None if captioner == "none" else captioner)
        frames = analysis.media.frame_count
    wall_s = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = usage.ru_utime + usage.ru_stime - cpu_before  # all threads, decoder ones included
    print(json.dumps({"wall_s": wall_s, "cpu_s": cpu_s, "frames": frames, "peak_mb": _peak_rss_mb()}))


def _peak_rss_mb() -> float:
    """This process's own peak resident memory (VmHWM). Not ru_maxrss: Linux carries that over
    from the parent across exec, so a child would report the parent's peak when it is larger."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB -> MB
    raise RuntimeError("no VmHWM in /proc/self/status (this benchmark reads Linux's /proc)")


# ----------------------------------------------------------------------------- parent side


def _run_child(mode: str, path: Path, captioner: str) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", mode, str(path), "--captioner", captioner]
    result = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=REPO_ROOT)
    return json.loads(result.stdout.strip().splitlines()[-1])


def _make_video(folder: Path, duration_s: float, args) -> Path:
    sys.path.insert(0, str(REPO_ROOT))
    from samples.synth import SynthSpec, synthesize

    path = folder / f"bench_{args.width}x{args.height}_{int(duration_s)}s.mp4"
    spec = SynthSpec(width=args.width, height=args.height, fps=Fraction(args.fps), duration_s=duration_s,
                     shot_s=4.0, audio=False, seed=11, crf=args.crf, preset=args.preset, grain=args.grain)
    if not (path.exists() and args.reuse):
        start = time.perf_counter()
        synthesize(path, spec)
        print(f"synthesised {path.name} in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return path


def _measure(path: Path, captioner: str, repeats: int) -> dict:
    """Best of `repeats` alternating decode/analyze runs (the machine may be shared)."""
    decode, analyze = [], []
    for _ in range(repeats):
        decode.append(_run_child("decode", path, captioner))
        analyze.append(_run_child("analyze", path, captioner))
    best_decode = min(decode, key=lambda r: r["wall_s"])
    best_analyze = min(analyze, key=lambda r: r["wall_s"])
    return {"video": path.name, "frames": best_analyze["frames"], "mbps": _mbps(path, best_analyze["frames"]),
            "decode_s": best_decode["wall_s"], "analyze_s": best_analyze["wall_s"],
            "ratio": best_analyze["wall_s"] / best_decode["wall_s"],
            "cpu_ratio": min(r["cpu_s"] for r in analyze) / min(r["cpu_s"] for r in decode),
            "decode_peak_mb": max(r["peak_mb"] for r in decode),
            "analyze_peak_mb": max(r["peak_mb"] for r in analyze)}


def _mbps(path: Path, frames: int) -> float:
    import av

    with av.open(str(path)) as container:
        duration_s = frames / float(container.streams.video[0].average_rate)
    return path.stat().st_size * 8 / 1e6 / duration_s


def _print_table(rows: list[dict], captioner: str) -> None:
    print(f"\nvision.analyze (captioner {captioner}) vs bare PyAV decode, each in a fresh process")
    print(f"{'video':<28}{'frames':>7}{'Mb/s':>6}{'decode s':>10}{'analyze s':>11}{'ratio':>7}"
          f"{'cpu ratio':>10}{'decode MB':>11}{'analyze MB':>12}")
    for r in rows:
        print(f"{r['video']:<28}{r['frames']:>7}{r['mbps']:>6.1f}{r['decode_s']:>10.2f}{r['analyze_s']:>11.2f}"
              f"{r['ratio']:>7.2f}{r['cpu_ratio']:>10.2f}{r['decode_peak_mb']:>11.0f}{r['analyze_peak_mb']:>12.0f}")
    worst = max(r["ratio"] for r in rows)
    peak = max(r["analyze_peak_mb"] for r in rows)
    print(f"speed: worst ratio {worst:.2f} (target <= {RATIO_TARGET}) -> {'ok' if worst <= RATIO_TARGET else 'MISSED'}")
    print(f"memory: peak {peak:.0f} MB (target <= {RSS_TARGET_MB:.0f}) -> {'ok' if peak <= RSS_TARGET_MB else 'MISSED'}")
    if len(rows) > 1:
        growth = rows[-1]["analyze_peak_mb"] / rows[0]["analyze_peak_mb"] - 1
        verdict = "ok" if growth <= RSS_GROWTH_TARGET else "MISSED"
        print(f"memory growth {rows[0]['video']} -> {rows[-1]['video']}: {growth:+.1%} "
              f"(target <= {RSS_GROWTH_TARGET:.0%}) -> {verdict}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", nargs=2, metavar=("MODE", "VIDEO"), help=argparse.SUPPRESS)
    parser.add_argument("--captioner", default="none", help="none, motion, clip or vlm")
    parser.add_argument("--durations", type=float, nargs="+", default=[60.0, 240.0], help="seconds")
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--fps", default="30")
    parser.add_argument("--grain", type=float, default=3.0, help="film grain (8-bit levels)")
    parser.add_argument("--preset", default="superfast", help="libx264 preset (veryfast smooths grain away)")
    parser.add_argument("--crf", type=int, default=24, help="with the grain, about 8 Mb/s at 1080p")
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs; the best is kept")
    parser.add_argument("--workdir", type=Path, default=None, help="where videos go (default: a temp folder)")
    parser.add_argument("--reuse", action="store_true", help="reuse videos already in --workdir")
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child[0], args.child[1], args.captioner)
        return 0
    with tempfile.TemporaryDirectory(prefix="dub-bench-") as tmp:
        folder = args.workdir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        rows = []
        for duration_s in args.durations:
            video = _make_video(folder, duration_s, args)
            rows.append(_measure(video, args.captioner, args.repeats))
        _print_table(rows, args.captioner)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
