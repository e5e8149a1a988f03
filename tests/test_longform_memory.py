"""Memory of a long video's dub: the whole `dub` of a 10-minute low-resolution video, and its
output stages alone (mixing 10 minutes of rendered cues read from the stage cache one cue at a
time to the loudness target, writing the mix WAV and muxing it), each stay under a stated bound
of resident memory, measured in a fresh process; the stage cache stays under 50 MB per hour.

At 48 kHz one full-length stereo float32 track of 10 minutes is 230 MB. Every such track (the
rendered stems, the mix, the limiter's curve, the per-sample true peaks) now lives on disk in
the job's work folder and is read and written a block at a time, so the bounds do not grow with
the film. Measured: the whole dub 294 MB (render stage; analysis 190 MB), mix + WAV + mux 169 MB.
Before the tracks moved to disk the whole dub of a 10-minute film peaked at 1.49 GB and the mix
and mux stages at 1.38 GB (3.5 GB before the loudness was measured in blocks).

The review page of a long dub reads the mix from disk a block at a time too, and links sound
longer than three minutes instead of embedding it.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FILM_MINUTES = 10
SHOT_S = 3.0
MIX_MUX_BOUND_MB = 250.0    # measured 169 MB
DUB_BOUND_MB = 400.0        # measured 294 MB
CACHE_BOUND_MB_PER_HOUR = 50.0


@pytest.fixture(scope="module")
def ten_minute_video(tmp_path_factory) -> Path:
    """10 minutes of 96x54 video with sound: a synthesised minute repeated by stream copy."""
    import argparse

    from bench.longform import make_film, make_loop

    work = tmp_path_factory.mktemp("longform")
    args = argparse.Namespace(width=96, height=54, fps="24", loop_s=60.0, grain=0.0)
    return make_film(make_loop(work, args), FILM_MINUTES, 60.0)


@pytest.fixture(scope="module")
def long_runs(request, tmp_path_factory):
    """The fresh-process runs of this module's long tests, all started as the first of them is
    set up: each child reports its own peak memory, so they may share the machine's cores, and
    the module waits for the longest run instead of their sum. Only the runs of the tests
    selected start here; another one starts when a test asks for it."""
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=3, thread_name_prefix="longform")

    def start(key: str):
        if key == "dub":
            return pool.submit(_run_dub, request.getfixturevalue("ten_minute_video"))
        if key == "mix_mux":
            return pool.submit(_run_mix_and_mux, request.getfixturevalue("ten_minute_video"),
                               tmp_path_factory.mktemp("mix-mux") / "dubbed.mp4")
        return pool.submit(_run_review, tmp_path_factory.mktemp("long-review"))

    tests = {"dub": "test_ten_minutes_dubbed_end_to_end_stay_under_the_memory_and_cache_bounds",
             "mix_mux": "test_ten_minutes_mix_and_mux_stay_under_the_memory_bound",
             "review": "test_review_of_a_long_dub_reads_its_sound_from_disk"}
    selected = {item.name for item in request.session.items if item.module is request.module}
    started = {key: start(key) for key, name in tests.items() if name in selected}

    def result(key: str):
        if key not in started:
            started[key] = start(key)
        return started[key].result()

    yield result
    pool.shutdown(wait=True)


def _child(video: str, out: str) -> None:
    """Runs in a fresh process: mix, write the WAV, mux; prints the peak RSS as JSON."""
    import tempfile

    from bench.longform import _peak_kb

    import numpy as np

    import vision
    from dubber.cache import CueStore
    from dubber.export.deliverables import write_track_wav
    from dubber.media.mux import mux
    from dubber.media.tracks import work_folder
    from dubber.mix import MixOptions, mix
    from dubber.types import Cue, CueAudio, DubPlan, RenderResult

    sr = 48_000
    media = vision.probe(video)
    total = media.total_samples(sr)
    bounds = list(range(0, total, int(SHOT_S * sr))) + [total]
    cues = tuple(Cue(i, i, 0, 1, a, b - a, "", "", 0, 0, 1) for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])))
    plan = DubPlan(sr, total, str(media.fps), "tom-and-jerry", 0, "", cues)
    rng = np.random.default_rng(0)
    decay = np.exp(-np.arange(sr) / (0.2 * sr)).astype(np.float32)

    def stem(n: int, level: float) -> np.ndarray:
        # One note a second: decaying noise with a varying level, so the limiter has work to do.
        out = np.zeros((2, n), dtype=np.float32)
        for start in range(0, n, sr):
            piece = rng.standard_normal((2, min(sr, n - start))).astype(np.float32) * decay[:min(sr, n - start)]
            out[:, start:start + piece.shape[-1]] = piece * np.float32(level * rng.uniform(0.2, 1.0))
        # Averaged over four samples, so little is left near 24 kHz: the AAC encoder cuts the top
        # of the band, and white noise came back from it over the mix's true peak even after a
        # trim, so the mux encoded the ten minutes three times; this holds after one trim.
        smooth = out.copy()
        for lag in (1, 2, 3):
            smooth[:, lag:] += out[:, :-lag]
        return smooth * np.float32(0.5)

    with tempfile.TemporaryDirectory() as work, work_folder(Path(work) / "tracks"):
        # Each cue is made, cached and dropped, as the render stage does: the mix reads it back.
        store = CueStore(Path(work) / "render" / ("0" * 24))
        on_disk = []
        for c in cues:
            audio = CueAudio(c.index, c.start_sample, {"music": stem(c.num_samples, 0.3),
                                                      "fx": stem(c.num_samples, 0.5)})
            assert store.save(c, audio)
            on_disk.append(store.on_disk(c, audio))
        render = RenderResult(backend="test", sample_rate=sr, cues=tuple(on_disk))
        soundtrack = mix(render, plan, MixOptions())
        wav = Path(work) / "mix.wav"
        write_track_wav(wav, soundtrack)
        mux(video, str(wav), out, video_info=media)
    # VmHWM, not getrusage: Linux carries the forking parent's (pytest's) peak into ru_maxrss.
    peak_mb = _peak_kb() / 1024
    print(json.dumps({"peak_mb": peak_mb, "lufs": soundtrack.integrated_lufs, "samples": total,
                      "track_mb": total * 2 * 4 / 1e6}))


def _run_mix_and_mux(video: Path, out: Path) -> tuple[subprocess.CompletedProcess, Path]:
    code = "import sys; sys.path.insert(0, sys.argv[1]); from tests.test_longform_memory import _child; _child(*sys.argv[2:])"
    proc = subprocess.run([sys.executable, "-c", code, str(REPO), str(video), str(out)],
                          capture_output=True, text=True, timeout=600)
    return proc, out


def test_ten_minutes_mix_and_mux_stay_under_the_memory_bound(long_runs):
    proc, out = long_runs("mix_mux")
    assert proc.returncode == 0, proc.stderr[-3000:]
    numbers = json.loads(proc.stdout.strip().splitlines()[-1])
    assert numbers["samples"] == round(Fraction(FILM_MINUTES * 60) * 48_000)   # the film is 10 minutes
    assert abs(numbers["lufs"] - (-16.0)) <= 0.5
    assert out.is_file() and out.stat().st_size > 0
    assert numbers["peak_mb"] <= MIX_MUX_BOUND_MB, (
        f"mix + WAV + mux of {FILM_MINUTES} minutes peaked at {numbers['peak_mb']:.0f} MB "
        f"(bound {MIX_MUX_BOUND_MB:.0f} MB; one track is {numbers['track_mb']:.0f} MB)")


def _run_dub(video: Path) -> dict:
    from bench.longform import run_one

    return run_one(video, timeout_s=900)


def test_ten_minutes_dubbed_end_to_end_stay_under_the_memory_and_cache_bounds(long_runs):
    """The whole `dub` (probe to export, default options, a fresh stage cache) of the 10-minute
    video in a fresh process: the peak resident memory of every stage and the cache it leaves."""
    numbers = long_runs("dub")
    assert numbers["backend"] == "score" and abs(numbers["duration_s"] - FILM_MINUTES * 60) < 1
    assert abs(numbers["lufs"] - (-16.0)) <= 0.5 and numbers["true_peak_dbtp"] <= -1.0
    assert numbers["peak_rss_mb"] <= DUB_BOUND_MB, (
        f"dub of {FILM_MINUTES} minutes peaked at {numbers['peak_rss_mb']:.0f} MB (bound {DUB_BOUND_MB:.0f} MB); "
        f"by stage: {numbers['stage_peak_rss_mb']}")
    per_hour = sum(numbers["cache_mb"].values()) / (numbers["duration_s"] / 3600)
    assert per_hour <= CACHE_BOUND_MB_PER_HOUR, f"cache {numbers['cache_mb']} MB for {FILM_MINUTES} minutes"


def test_cache_info_shows_the_size_of_each_stage(tmp_path, capsys):
    import numpy as np

    from dubber.cache import StageCache, cache_summary
    from dubber.cli.main import main
    from dubber.types import Cue, CueAudio

    cache = StageCache(tmp_path / "cache")
    cache.save_json("analysis", "a" * 24, {"shots": list(range(2000))})
    cache.save_json("plan", "b" * 24, {"cues": []})
    cue = Cue(0, 0, 0, 24, 0, 48_000, "", "", 0, 0, 1)
    cache.cue_store("c" * 24).save(cue, CueAudio(0, 0, {"music": np.zeros((2, 48_000), np.float32)}))
    on_disk = {stage: sum(f.stat().st_size for f in (tmp_path / "cache" / stage).rglob("*") if f.is_file())
               for stage in ("analysis", "plan", "render")}
    assert dict(cache_summary(tmp_path / "cache").stage_bytes) == on_disk
    assert on_disk["render"] > 48_000 * 2 * 4 > on_disk["analysis"] > on_disk["plan"] > 0
    assert main(["cache", "info", "--cache-dir", str(tmp_path / "cache")]) == 0
    shown = {line.split()[0]: line.split(maxsplit=1)[1] for line in capsys.readouterr().out.splitlines()}
    assert shown["render"] == f"{on_disk['render'] / 1000:.1f} kB" and shown["analysis"].endswith("kB")


def test_cues_read_back_from_the_cache_mix_to_the_same_samples(tmp_path):
    """The mix of cues handed over as cache files equals, bit for bit, the mix of the same cues
    held in memory; a cache file removed before the mix reads it is one clear error."""
    import numpy as np

    from dubber.cache import CacheEntryLost, CueStore
    from dubber.mix import MixOptions, mix
    from dubber.types import Cue, CueAudio, DubPlan, RenderResult

    sr, lengths = 48_000, (30_000, 45_000, 25_000)
    starts = np.cumsum((0,) + lengths[:-1]).tolist()
    cues = tuple(Cue(i, i, 0, 1, s, n, "", "", 0, 0, 1) for i, (s, n) in enumerate(zip(starts, lengths)))
    plan = DubPlan(sr, sum(lengths), "24", "tom-and-jerry", 0, "", cues)
    rng = np.random.default_rng(7)
    def noise(n: int, level: float) -> np.ndarray:
        return (rng.standard_normal((2, n)) * level).astype(np.float32)

    in_memory = tuple(CueAudio(c.index, c.start_sample, {"music": noise(c.num_samples, 0.2),
                                                         "fx": noise(c.num_samples, 0.6)}) for c in cues)
    store = CueStore(tmp_path / "render" / ("1" * 24))
    on_disk = tuple(store.on_disk(c, a) for c, a in zip(cues, in_memory) if store.save(c, a))
    assert len(on_disk) == 3 and not any(isinstance(a.stems, dict) for a in on_disk)
    held = mix(RenderResult("test", sr, in_memory), plan, MixOptions())
    read = mix(RenderResult("test", sr, on_disk), plan, MixOptions())
    assert read.mix.shape == (2, sum(lengths)) and np.abs(read.mix).max() > 0.1
    assert np.array_equal(held.mix, read.mix) and held.integrated_lufs == read.integrated_lufs
    assert all(np.array_equal(held.stems[k], read.stems[k]) for k in ("music", "fx"))
    store.path_for(cues[1]).unlink()
    with pytest.raises(CacheEntryLost, match="run the same command again"):
        mix(RenderResult("test", sr, on_disk), plan, MixOptions())


REVIEW_MINUTES = 12          # past the length up to which the page embeds its sound
REVIEW_BOUND_MB = 350.0     # measured 274 MB at 12 and at 24 minutes (969 MB at 12 with the mix in memory)
REVIEW_PAGE_BOUND_MB = 5.0  # measured 2.2 MB for 180 shots (14.5 MB with the sound embedded)


def _review_child(folder: str) -> None:
    """Runs in a fresh process: a 12-minute dub's files (mix and two stems as WAVs, a manifest
    with a cut every 4 s), then its review page; prints the peak RSS and what the page holds as JSON."""
    import soundfile

    import numpy as np

    from bench.longform import _peak_kb
    from dubber.review import write_review
    from dubber.types import MANIFEST_SCHEMA

    sr, fps, seconds = 48_000, 24, REVIEW_MINUTES * 60
    root = Path(folder)
    rng = np.random.default_rng(1)
    t = np.arange(sr) / sr
    for name in ("mix", "music", "fx"):
        with soundfile.SoundFile(str(root / f"{name}.wav"), "w", samplerate=sr, channels=2, subtype="FLOAT") as out:
            for _ in range(seconds):   # a tone burst at the start of every second, written a second at a time
                burst = np.sin(2 * np.pi * rng.uniform(110, 880) * t) * np.exp(-t / 0.08) * 0.3
                out.write(np.stack([burst, burst], axis=1).astype(np.float32))
    frames = seconds * fps
    cuts = list(range(0, frames, 4 * fps)) + [frames]
    manifest = {
        "schema": MANIFEST_SCHEMA,
        "outputs": {"mix": "mix.wav", "stem:music": "music.wav", "stem:fx": "fx.wav"},
        "analysis": {"media": {"fps": f"{fps}/1", "path": "film.mp4"},
                     "shots": [{"index": i, "start_frame": a, "end_frame": b} for i, (a, b) in enumerate(zip(cuts, cuts[1:]))],
                     "events": [{"frame": a + fps, "kind": "impact", "strength": 0.8} for a in cuts[:-1]],
                     "transitions": [], "captions": []},
        "plan": {"cues": []}, "render": {"backend": "score", "notes": []}}
    (root / "film.dub.json").write_text(json.dumps(manifest))
    page = write_review(root / "film.dub.json")
    text = page.read_text(encoding="utf-8")
    print(json.dumps({"peak_mb": _peak_kb() / 1024, "page_mb": page.stat().st_size / 1e6,
                      "shots": text.count('<section class="shot"'), "embedded_audio": text.count("data:audio"),
                      "linked": sorted(re.findall(r'<audio[^>]*src="([^"]+\.wav)"', text)),
                      "hit_rate": re.search(r"<th>share of the events with an onset within 0.1 s</th><td>([^<]*)</td>",
                                            text).group(1)}))


def _run_review(folder: Path) -> subprocess.CompletedProcess:
    code = ("import sys; sys.path.insert(0, sys.argv[1]); "
            "from tests.test_longform_memory import _review_child; _review_child(sys.argv[2])")
    return subprocess.run([sys.executable, "-c", code, str(REPO), str(folder)],
                          capture_output=True, text=True, timeout=600)


def test_review_of_a_long_dub_reads_its_sound_from_disk(long_runs):
    """`dub review` of a 12-minute dub in a fresh process: the mix is read a block at a time and
    the sound is linked, not embedded, so memory and the page stay small; every shot is there."""
    proc = long_runs("review")
    assert proc.returncode == 0, proc.stderr[-3000:]
    numbers = json.loads(proc.stdout.strip().splitlines()[-1])
    assert numbers["shots"] == REVIEW_MINUTES * 60 // 4
    assert numbers["embedded_audio"] == 0 and numbers["linked"] == ["fx.wav", "mix.wav", "music.wav"]
    assert numbers["hit_rate"] == "1.0"   # a burst starts every second; each event is a second after a cut
    assert numbers["page_mb"] <= REVIEW_PAGE_BOUND_MB, f"page {numbers['page_mb']:.1f} MB"
    assert numbers["peak_mb"] <= REVIEW_BOUND_MB, (
        f"review of {REVIEW_MINUTES} minutes peaked at {numbers['peak_mb']:.0f} MB (bound {REVIEW_BOUND_MB:.0f} MB)")
