"""Benchmark of the score engine's sound: sync, periodicity, repetition, hit sameness and speed.

    python bench/sound.py                        # ../shared/realclips + samples, 3 seeds, both event sources
    python bench/sound.py --seeds 10 --events labelled

For every clip the picture is analysed once with `vision.analyze` (shots, events, motion), kept in
--cache until the detectors change (vision's ANALYSIS_VERSION). The score is then driven two ways:
- labelled: the hand-labelled cuts and events of labels.json (impacts, strength 0.8, or 0.5 when
  marked uncertain) over the detected motion curve;
- detected: the analysis as `dub` would use it.
Both are judged against the labelled events (the truth): the share of events with an onset in the
mixed soundtrack within 0.1 s, the chance rate, periodicity, chroma repetition, and the largest
spectral cosine between two consecutive impact sounds (on the effects stem), and how far the blows
stand over the music (median dB of the effects' first 80 ms against the music around). A clip that has its
own soundtrack (Steamboat Willie keeps its 1928 score) is measured the same way, as the figures of
a real cartoon score on the same picture. Speed is render + mix CPU seconds per audio second
(`--timing-repeats N`: the fastest of N runs of each); the first SoundFont load and the peak
memory for 60, 300 and 600 s of score run in fresh processes. This is a benchmark, not a test: it
takes about a minute.

`--second-reading` reads the hit and chance rates, periodicity and repetition again with librosa.

Targets: hit rate >= 0.8 with chance <= 0.35; periodicity <= 0.2 and repetition <= 0.55 on clips of
20 s or more; consecutive impacts below 0.95 cosine; <= 0.05x real time; first load < 1 s.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dubber import sound_measures as sm  # noqa: E402
from dubber.backends.score import ScoreBackend  # noqa: E402
from dubber.backends.score.foley import CONTACT_KINDS  # noqa: E402
from dubber.mix import MixOptions, mix  # noqa: E402
from dubber.plan import PlanOptions, make_plan  # noqa: E402
from vision.types import Shot, VideoAnalysis, VisualEvent  # noqa: E402

SR = 48_000
TARGETS = {"hit_rate": 0.8, "chance_rate": 0.35, "periodicity": 0.2, "repetition": 0.55, "sameness": 0.95,
           "realtime": 0.05, "first_load_s": 1.0}


def analyse(video: Path, cache: Path) -> VideoAnalysis:
    """The clip's analysis, from the cache when the detectors that made it are today's."""
    import vision
    from vision.types import ANALYSIS_VERSION

    path = cache / f"{video.stem}.analysis.json"
    if path.exists():
        cached = json.loads(path.read_text())
        if cached.get("settings", {}).get("analysis_version") == ANALYSIS_VERSION:
            return VideoAnalysis.from_dict(cached)
    data = vision.analyze(video, captioner=None).to_dict()
    path.write_text(json.dumps(data))
    # As `dub` does: go on with the analysis as the cache holds it (JSON rounds the motion
    # curve), so the run that made the cache renders what every later run renders.
    return VideoAnalysis.from_dict(data)


def labelled(analysis: VideoAnalysis, cut_frames: list[int], events: list[tuple[int, str, float, int]]) -> VideoAnalysis:
    """The detected analysis with the labelled shots and events in place of the detected ones."""
    edges = [0, *sorted(f for f in cut_frames if 0 < f < analysis.media.frame_count), analysis.media.frame_count]
    shots = tuple(Shot(i, a, b) for i, (a, b) in enumerate(zip(edges[:-1], edges[1:])))
    visual = tuple(VisualEvent(f, kind, strength, end) for f, kind, strength, end in events)
    return replace(analysis, shots=shots, events=visual, transitions=())


def clips(realclips: Path, samples: Path) -> list[dict]:
    out = []
    labels = json.loads((realclips / "labels.json").read_text())
    for name, clip in labels["clips"].items():
        events = [(int(e["frame"]), "impact", 0.5 if e.get("uncertain") else 0.8, int(e["frame"]) + 1)
                  for e in clip["events"]]
        cuts = [c["frame"] for c in clip["cut_notes"]]
        cues = [float(c["t"]) for c in clip.get("sound_cues", [])]
        out.append({"name": name, "video": realclips / name, "cuts": cuts, "events": events, "cues": cues,
                    "real": True})
    demo = json.loads((samples / "cartoon_demo.json").read_text())
    out.append({"name": "cartoon_demo.mp4", "video": samples / "cartoon_demo.mp4", "cuts": demo["cut_frames"],
                "events": [(e["frame"], e["kind"], 0.8, e["end_frame"]) for e in demo["events"]], "cues": [],
                "real": False})
    return out


def second_reading(audio: np.ndarray, sample_rate: int, truth_s: list[float]) -> dict:
    """Every sound figure again, from another implementation: librosa with its defaults at its
    default 22.05 kHz. Hit and chance rates from its `onset_detect` (its own spectral flux,
    framing and peak picking); periodicity from its `onset_strength` curve (Pearson
    autocorrelation over the same 0.15-1 s lags); repetition from its `chroma_stft` averaged
    over 1 s blocks (cosine of blocks at least 2 s apart). The figures then do not rest on one
    onset detector or one chroma."""
    import librosa
    import soxr

    mono = sm.mono(audio).astype(np.float64)
    sr = 22_050
    y = soxr.resample(mono, sample_rate, sr)
    onsets = librosa.onset.onset_detect(y=y, sr=sr, units="time")
    duration = mono.size / sample_rate
    hop_s = 512 / sr   # librosa's default hop
    strength = librosa.onset.onset_strength(y=y, sr=sr)
    lags = range(int(round(sm.PERIOD_LAGS_S[0] / hop_s)), min(int(round(sm.PERIOD_LAGS_S[1] / hop_s)), strength.size - 3) + 1)
    correlations = [np.corrcoef(strength[:-lag], strength[lag:])[0, 1] for lag in lags]
    chroma = librosa.feature.chroma_stft(y=y, sr=sr)   # (12, frames)
    per_block = int(round(sm.CHROMA_BLOCK_S / hop_s))
    count = chroma.shape[1] // per_block
    blocks = chroma[:, :count * per_block].reshape(12, count, per_block).mean(axis=2).T
    loud = librosa.feature.rms(y=y)[0][:count * per_block].reshape(count, per_block).mean(axis=1) > 1e-4
    return {"hit_rate_2nd": round(float(sm.hit_rate(onsets, truth_s)), 4) if truth_s else None,
            "chance_rate_2nd": round(float(sm.chance_rate(onsets, duration)), 4),
            "periodicity_2nd": round(float(np.nan_to_num(np.nanmax(correlations))), 4) if correlations else 0.0,
            "repetition_2nd": round(float(sm.repetition_of(np.where(loud[:, None], blocks, 0.0))), 4)}


def run_one(analysis: VideoAnalysis, truth_s: list[float], impacts_s: list[float], seed: int, style: str,
            cues_s: list[float] = (), second: bool = False, timing_repeats: int = 1) -> dict:
    plan = make_plan(analysis, PlanOptions(style=style, seed=seed))
    backend = ScoreBackend()
    # The fastest of `timing_repeats` renders and mixes (the same audio each time): what the code
    # costs, less what a busy machine adds.
    render_s = mix_s = float("inf")
    digests = set()
    for _ in range(max(1, timing_repeats)):
        start = time.process_time()
        render = backend.render(plan, analysis)
        rendered = time.process_time()
        track = mix(render, plan, MixOptions())
        done = time.process_time()
        if done - start < render_s + mix_s:
            render_s, mix_s = rendered - start, done - rendered
        digests.add(_digest(track.mix))
    if len(digests) != 1:
        raise SystemExit(f"seed {seed}: {len(digests)} different soundtracks from one plan")
    digest = digests.pop()
    duration = plan.total_samples / plan.sample_rate
    cuts = [float(analysis.media.frame_time(s.start_frame)) for s in analysis.shots if s.start_frame > 0]
    report = sm.measure(track.mix, plan.sample_rate, truth_s, marks_s=cuts)
    fx = track.stems.get("fx")
    pairs = [sm.hit_sameness(fx, plan.sample_rate, a, b) for a, b in zip(impacts_s, impacts_s[1:])] if fx is not None else []
    over = hits_over_music_db(track.stems.get("music"), fx, plan.sample_rate, impacts_s)
    return {**report.to_dict(), "onsets_per_s": round(len(report.onsets_s) / duration, 2),
            "cue_hit_rate": round(sm.hit_rate(report.onsets_s, cues_s), 4) if cues_s else None,
            "max_consecutive_sameness": round(max(pairs), 4) if pairs else None,
            "hits_over_music_db": round(over, 1) if over is not None else None,
            "render_s": round(render_s, 3), "mix_s": round(mix_s, 3),
            "realtime": round((render_s + mix_s) / duration, 4), "lufs": round(track.integrated_lufs, 2),
            "digest": digest, **(second_reading(track.mix, plan.sample_rate, truth_s) if second else {})}


def hits_over_music_db(music: np.ndarray | None, fx: np.ndarray | None, sample_rate: int,
                       times_s: list[float]) -> float | None:
    """Median over the blows and falls of how far the effects' first 80 ms stand over the music
    of the two seconds around them (dB): a blow lost under the band or jumping far out of it."""
    if music is None or fx is None or not times_s:
        return None

    def rms(x: np.ndarray) -> float:
        return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + 1e-12))

    levels = []
    for t in times_s:
        a = int(round(t * sample_rate))
        levels.append(20 * np.log10(rms(fx[:, a:a + int(0.08 * sample_rate)])
                                    / rms(music[:, max(0, a - sample_rate):a + sample_rate])))
    return float(np.median(levels))


def original_soundtrack(video: Path, analysis: VideoAnalysis, truth_s: list[float], cues_s: list[float],
                        second: bool = False) -> dict | None:
    """The figures of the clip's own soundtrack against the same events, or None when it has none.
    Sound cues (a whistle's toot) are scored on their own: a real score plays them too."""
    from dubber.media.audio_io import decode_audio

    audio = decode_audio(video, SR, int(round(analysis.media.duration_s * SR)))
    if audio is None:
        return None
    cuts = [float(analysis.media.frame_time(s.start_frame)) for s in analysis.shots if s.start_frame > 0]
    report = sm.measure(audio, SR, truth_s, marks_s=cuts)
    return {**report.to_dict(), "onsets_per_s": round(len(report.onsets_s) / report.duration_s, 2),
            "cue_hit_rate": round(sm.hit_rate(report.onsets_s, cues_s), 4) if cues_s else None,
            **(second_reading(audio, SR, truth_s) if second else {})}


def _digest(audio: np.ndarray) -> str:
    import hashlib

    return hashlib.sha1(np.ascontiguousarray(audio).tobytes()).hexdigest()[:12]


def first_load_s() -> dict:
    """In a fresh process: seconds to import the score engine, then to read the default bank."""
    code = ("import time; t=time.perf_counter(); from dubber.backends.score.render import load_soundfont;"
            "u=time.perf_counter(); load_soundfont(); print(u-t, time.perf_counter()-u)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    imported, loaded = (float(x) for x in out.stdout.split())
    return {"import_s": round(imported, 3), "bank_load_s": round(loaded, 4)}


def peak_memory_mb(seconds: int) -> float:
    """Peak RSS of a fresh process rendering `seconds` of a busy synthetic score."""
    code = f"""
import resource, sys
sys.path.insert(0, {str(REPO)!r})
from fractions import Fraction
from vision.types import MediaInfo, Shot, VideoAnalysis, VisualEvent
from dubber.plan import make_plan
from dubber.backends.score import ScoreBackend
fps, n = Fraction(24), {seconds} * 24
media = MediaInfo(path="v.mp4", duration_s={seconds}, fps=fps, frame_count=n, width=64, height=36)
shots = tuple(Shot(i, a, min(a + 240, n)) for i, a in enumerate(range(0, n, 240)))
events = tuple(VisualEvent(f, ("impact", "landing", "whoosh", "splash")[k % 4], 0.7, f + 6)
               for k, f in enumerate(range(30, n - 10, 37)))
analysis = VideoAnalysis(media=media, shots=shots, events=events, motion=tuple([0.4] * n), captions=())
ScoreBackend().render(make_plan(analysis), analysis)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def summarise(rows: list[dict]) -> dict:
    keys = ("hit_rate", "chance_rate", "periodicity", "repetition", "max_consecutive_sameness", "hits_over_music_db",
            "realtime", "hit_rate_2nd", "chance_rate_2nd")
    keys = tuple(k for k in keys if any(k in r for r in rows))
    return {k: [min(r[k] for r in rows if r.get(k) is not None) if any(r.get(k) is not None for r in rows) else None,
                max(r[k] for r in rows if r.get(k) is not None) if any(r.get(k) is not None for r in rows) else None]
            for k in keys}


def summarise_rows(rows: list[dict], originals: list[dict], sources: tuple[str, ...], second_reading: bool) -> dict:
    """Per source (labelled or detected events): the figures' ranges and the renders meeting the
    targets; per real clip: its original soundtrack's figures beside ours."""
    summary: dict = {}
    for source in sources:
        picked = [r for r in rows if r["source"] == source]
        long = [r for r in picked if r["duration_s"] >= 20]
        scored = [r for r in picked if r["hit_rate"] is not None]   # clips with labelled events
        summary[source] = {"all (min, max)": summarise(picked),
                           ">= 20 s periodicity max": max(r["periodicity"] for r in long) if long else None,
                           ">= 20 s repetition max": max(r["repetition"] for r in long) if long else None,
                           "hit_rate mean": round(float(np.mean([r["hit_rate"] for r in scored])), 4) if scored else None,
                           "renders meeting sync": sum(r["hit_rate"] >= 0.8 and r["chance_rate"] <= 0.35 for r in scored),
                           **({"renders meeting sync, 2nd reading": sum(bool(r["hit_rate_2nd"] >= 0.8 and r["chance_rate_2nd"] <= 0.35)
                                                                        for r in scored),
                               ">= 20 s periodicity max, 2nd reading": max((r["periodicity_2nd"] for r in long), default=None),
                               ">= 20 s repetition max, 2nd reading": max((r["repetition_2nd"] for r in long), default=None)}
                              if second_reading else {}),
                           "renders with labelled events": len(scored), "renders": len(picked)}
    for original in originals:
        ours = [r for r in rows if r["clip"] == original["clip"]]
        keys = ("hit_rate", "cue_hit_rate", "chance_rate", "onsets_per_s", "periodicity", "repetition",
                *(("periodicity_2nd", "repetition_2nd") if second_reading else ()))
        summary[f"{original['clip']}: original soundtrack vs ours (min, max)"] = {
            k: {"original": original[k], "ours": [min(r[k] for r in ours), max(r[k] for r in ours)]
                if ours and all(r[k] is not None for r in ours) else None} for k in keys}
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--realclips", default=str(REPO.parent / "shared" / "realclips"))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--style", default="tom-and-jerry")
    parser.add_argument("--events", choices=("labelled", "detected", "both"), default="both")
    parser.add_argument("--cache", default=str(Path.home() / ".cache" / "dubber-bench-sound"))
    parser.add_argument("--no-memory", action="store_true", help="skip the 60 s / 300 s memory runs")
    parser.add_argument("--json", help="also write every row to this file")
    parser.add_argument("--timing-repeats", type=int, default=1,
                        help="render and mix each row this many times and keep the fastest (speed only)")
    parser.add_argument("--second-reading", action="store_true",
                        help="also read every figure with librosa (pip install -e '.[bench]')")
    args = parser.parse_args()
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    sources = ("labelled", "detected") if args.events == "both" else (args.events,)
    rows, originals = [], []
    for clip in clips(Path(args.realclips), REPO / "samples"):
        detected = analyse(clip["video"], cache)
        media = detected.media
        truth = [float(media.frame_time(e[0])) for e in clip["events"]]
        # the sample's own track is this engine's; only real footage carries a real score
        original = original_soundtrack(clip["video"], detected, truth, clip["cues"], args.second_reading) \
            if clip["real"] else None
        if original is not None:
            originals.append({"clip": clip["name"], "source": "original soundtrack", **original})
            print(json.dumps(originals[-1]), flush=True)
        for source in sources:
            analysis = labelled(detected, clip["cuts"], clip["events"]) if source == "labelled" else detected
            for seed in range(args.seeds):
                # consecutive impact sounds are compared where the score put them
                impacts = [float(media.frame_time(e.frame)) for e in analysis.events if e.kind in CONTACT_KINDS]
                row = {"clip": clip["name"], "source": source, "seed": seed,
                       **run_one(analysis, truth, impacts, seed, args.style, clip["cues"], args.second_reading,
                                 args.timing_repeats)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    # Same seed, same audio: render the first clip's seed 0 again and compare digests.
    again = rows[0]
    clip = clips(Path(args.realclips), REPO / "samples")[0]
    detected = analyse(clip["video"], cache)
    analysis = labelled(detected, clip["cuts"], clip["events"]) if again["source"] == "labelled" else detected
    repeat = run_one(analysis, [], [], again["seed"], args.style)["digest"]
    summary = {"targets": TARGETS, "bit_identical_rerun": repeat == again["digest"], "first_load": first_load_s(),
               **summarise_rows(rows, originals, sources, args.second_reading)}
    if not args.no_memory:
        rss = {seconds: peak_memory_mb(seconds) for seconds in (60, 300, 600)}
        summary["peak_rss_mb"] = {f"{s} s": round(mb, 1) for s, mb in rss.items()}
        # The rendered stems themselves: music and fx, stereo float32 at 48 kHz.
        summary["rss_growth_mb_per_s"] = round((rss[600] - rss[60]) / 540, 3)
        summary["stems_mb_per_s"] = round(2 * 2 * 4 * SR / 2**20, 3)
    print(json.dumps(summary, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "originals": originals, "summary": summary}, indent=1))


if __name__ == "__main__":
    main()
