"""Benchmark of the whole `dub` run with the score engine on a synthetic 1080p video.

    python bench/pipeline.py                    # 60 s of 1080p at 24000/1001 fps, with an audio track
    python bench/pipeline.py --duration 20 --keep-original

The video is synthesised once (samples.synth, with film grain so decode costs what a delivery
file costs) and kept in --work. The run happens in this process with a fresh stage cache, the
way a first `dub` of a file runs; a second run then shows the cost with every stage cached.

Reported: wall seconds per stage and as a fraction of the video's duration, the peak resident
memory of this process, and the two targets:
whole run <= 0.3 x real time, render + mix + mux <= 0.05 x real time.
This is a benchmark, not a test.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
WHOLE_TARGET = 0.3        # x real time, first run
OUTPUT_TARGET = 0.05      # x real time, render + mix + mux


def _video(args: argparse.Namespace) -> Path:
    from samples.synth import SynthSpec, synthesize

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    fps = Fraction(args.fps)
    path = work / f"bench_{args.width}x{args.height}_{args.duration:g}s_{fps.numerator}-{fps.denominator}.mp4"
    if not path.exists():
        spec = SynthSpec(width=args.width, height=args.height, fps=fps, duration_s=args.duration, shot_s=3.0,
                         audio=True, seed=11, crf=24, preset="superfast", grain=3.0)
        start = time.perf_counter()
        synthesize(path, spec)
        print(f"synthesised {path.name} in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return path


def _run(video: Path, out_dir: Path, cache: Path, args: argparse.Namespace, name: str):
    import dubber

    options = dubber.DubOptions(backend="score", cache_dir=str(cache), keep_original=args.keep_original,
                                stems_dir=str(out_dir / f"{name}_stems") if args.stems else None)
    start = time.perf_counter()
    result = dubber.dub(video, out_dir / f"{name}.mp4", options)
    return result, time.perf_counter() - start


def _report(label: str, result, wall_s: float, duration_s: float) -> dict:
    stages = dict(result.stage_seconds)
    print(f"\n{label}: {result.cues} cues ({result.cues_from_cache} from cache), "
          f"{result.integrated_lufs:.1f} LUFS, {result.true_peak_dbtp:.2f} dBTP")
    print(f"  {'stage':<10}{'seconds':>9}{'x real time':>13}")
    for stage, seconds in stages.items():
        print(f"  {stage:<10}{seconds:>9.2f}{seconds / duration_s:>13.3f}")
    overhead = wall_s - sum(stages.values())
    print(f"  {'(other)':<10}{overhead:>9.2f}{overhead / duration_s:>13.3f}")
    output_s = sum(stages.get(s, 0.0) for s in ("render", "mix", "mux"))
    print(f"  {'whole':<10}{wall_s:>9.2f}{wall_s / duration_s:>13.3f}   target <= {WHOLE_TARGET}")
    print(f"  {'r+mix+mux':<10}{output_s:>9.2f}{output_s / duration_s:>13.3f}   target <= {OUTPUT_TARGET}")
    return {"wall_s": wall_s, "stages": stages, "whole_x": wall_s / duration_s, "output_x": output_s / duration_s}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of video")
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--fps", default="24000/1001")
    parser.add_argument("--keep-original", action="store_true", help="also mix and keep the original audio")
    parser.add_argument("--stems", action="store_true", help="also export stems (adds WAV writing)")
    parser.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "dub-bench"),
                        help="folder for the synthetic video (reused between runs)")
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON at the end")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO_ROOT))

    video = _video(args)
    import dubber.api  # noqa: F401  (import cost is not part of a run)
    import vision.analyze  # noqa: F401
    import dubber.backends.score  # noqa: F401
    import dubber.mix  # noqa: F401

    with tempfile.TemporaryDirectory(prefix="dub-bench-") as tmp:
        tmp_path = Path(tmp)
        first, first_s = _run(video, tmp_path, tmp_path / "cache", args, "first")
        duration_s = first.total_samples / first.sample_rate
        numbers = {"video": str(video), "duration_s": duration_s,
                   "first": _report(f"first run of {video.name} ({duration_s:.1f} s)", first, first_s, duration_s)}
        cached, cached_s = _run(video, tmp_path, tmp_path / "cache", args, "cached")
        numbers["cached"] = _report("second run (every stage cached)", cached, cached_s, duration_s)
    # ffmpeg children are not reported: their peak as the kernel counts it includes the parent's
    # pages at fork time, so it would only repeat this process's figure.
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS: {peak_mb:.0f} MB (this process: analysis, render, mix)")
    numbers.update(peak_rss_mb=peak_mb)
    ok = numbers["first"]["whole_x"] <= WHOLE_TARGET and numbers["first"]["output_x"] <= OUTPUT_TARGET
    print(f"targets {'met' if ok else 'NOT met'} on the first run")
    if args.json:
        print(json.dumps(numbers))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
