"""The sketch backend: a deterministic cartoon temp track whose hits land on the picture."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from scipy import signal

from dubber.media.audio_io import read_wav, write_wav
from dubber.backends.base import DubBackend, check_render
from dubber.backends.sketch import SKETCH_STYLES, SketchBackend
from dubber.types import Cue, DubPlan
from vision.types import MediaInfo, Shot, VideoAnalysis, VisualEvent

SR = 48_000
FPS = Fraction(24000, 1001)
STYLES = ("tom-and-jerry", "silent-film", "sci-fi", "nature")


def make_analysis(frame_count: int, shot_starts: list[int], events=(), motion=None) -> VideoAnalysis:
    media = MediaInfo(path="clip.mp4", duration_s=float(frame_count / FPS), fps=FPS,
                      frame_count=frame_count, width=320, height=180)
    edges = [*shot_starts, frame_count]
    shots = tuple(Shot(i, a, b) for i, (a, b) in enumerate(zip(edges[:-1], edges[1:])))
    curve = tuple(motion) if motion is not None else (0.3,) * frame_count
    return VideoAnalysis(media=media, shots=shots, events=tuple(events), motion=curve, captions=())


def make_plan(analysis: VideoAnalysis, style: str = "tom-and-jerry", seed: int = 0) -> DubPlan:
    media = analysis.media
    cues = []
    for shot in analysis.shots:
        start = media.frame_to_sample(shot.start_frame, SR)
        end = media.frame_to_sample(shot.end_frame, SR)
        cues.append(Cue(len(cues), shot.index, shot.start_frame, shot.end_frame, start, end - start,
                        "a cat runs", "a cat runs", seed + shot.index))
    return DubPlan(SR, media.total_samples(SR), "24000/1001", style, seed, "", tuple(cues))


def timeline(result, stem: str) -> np.ndarray:
    return np.concatenate([c.stems[stem] for c in result.cues], axis=1)


def onset_near(x: np.ndarray, at: int, search: int) -> int:
    """First sample after `at - search` louder than a tenth of the peak that follows `at`."""
    mono = np.abs(x).max(axis=0)
    peak = mono[at:at + int(0.3 * SR)].max()
    lo = max(0, at - search)
    return lo + int(np.argmax(mono[lo:at + search] > 0.1 * peak))


def onset_times(x: np.ndarray) -> np.ndarray:
    """Note onsets (samples) by spectral flux, peaks above a level set by the loudest attacks."""
    _, _, z = signal.stft(x.mean(axis=0), SR, nperseg=1024, noverlap=1024 - 256)
    flux = np.maximum(np.diff(np.log1p(100 * np.abs(z)), axis=1), 0).sum(axis=0)
    peaks, _ = signal.find_peaks(flux, height=0.4 * np.percentile(flux, 99.5), distance=int(0.06 * SR / 256))
    return (peaks + 1) * 256


def chroma(x: np.ndarray) -> np.ndarray:
    """Energy per pitch class from 80 Hz to 2 kHz."""
    spec = np.abs(np.fft.rfft(x.mean(axis=0))) ** 2
    freqs = np.fft.rfftfreq(x.shape[-1], 1 / SR)
    band = (freqs > 80) & (freqs < 2000)
    pcs = np.round(12 * np.log2(freqs[band] / 440.0)).astype(int) % 12
    return np.bincount(pcs, weights=spec[band], minlength=12)


@pytest.fixture(scope="module")
def busy_scene():
    """12 s, three shots, a planted impact, flash and fast-motion burst, varied motion."""
    n = int(12 * FPS)
    events = (VisualEvent(50, "impact", 0.9, 51), VisualEvent(130, "flash", 0.8, 131),
              VisualEvent(200, "fast_motion", 0.7, 215), VisualEvent(260, "impact", 0.5, 261))
    motion = np.clip(0.4 + 0.4 * np.sin(np.arange(n) / 30.0), 0, 1)
    analysis = make_analysis(n, [0, 97, 233], events, motion)
    return analysis, make_plan(analysis)


def test_is_a_backend_with_contract_output(busy_scene):
    analysis, plan = busy_scene
    backend = SketchBackend()
    assert isinstance(backend, DubBackend) and backend.NAME == "sketch"
    result = backend.render(plan, analysis)
    check_render(plan, result)
    assert result.backend == "sketch" and result.sample_rate == SR
    for cue, audio in zip(plan.cues, result.cues):
        assert set(audio.stems) == {"music", "fx"}
        assert audio.num_samples == cue.num_samples
        assert audio.stems["music"].shape == (2, cue.num_samples)


def test_odd_cue_lengths_are_exact():
    # 29.97 fps shots give fractional sample boundaries: each cue must still be exact.
    n = 101
    analysis = make_analysis(n, [0, 13, 47, 48])
    plan = make_plan(analysis)
    result = SketchBackend().render(plan, analysis)
    assert [a.num_samples for a in result.cues] == [c.num_samples for c in plan.cues]
    assert sum(c.num_samples for c in plan.cues) == plan.total_samples


def test_deterministic_for_a_seed_and_different_for_another(busy_scene):
    analysis, plan = busy_scene
    one = SketchBackend().render(plan, analysis)
    two = SketchBackend().render(plan, analysis)
    for a, b in zip(one.cues, two.cues):
        assert np.array_equal(a.stems["music"], b.stems["music"])
        assert np.array_equal(a.stems["fx"], b.stems["fx"])
    other = SketchBackend().render(make_plan(analysis, seed=7), analysis)
    diff = np.abs(timeline(other, "music") - timeline(one, "music")).mean()
    assert diff > 0.1 * np.abs(timeline(one, "music")).mean()


def test_effects_land_on_their_frames(busy_scene):
    analysis, plan = busy_scene
    fx = timeline(SketchBackend().render(plan, analysis), "fx")
    frame = int(round(SR / FPS))
    for event in analysis.events:
        at = analysis.media.frame_to_sample(event.frame, SR)
        found = onset_near(fx, at, search=4 * frame)
        assert abs(found - at) <= frame, (event, found - at)


def test_whoosh_fills_the_fast_motion_range(busy_scene):
    analysis, plan = busy_scene
    fx = timeline(SketchBackend().render(plan, analysis), "fx")
    event = next(e for e in analysis.events if e.kind == "fast_motion")
    start = analysis.media.frame_to_sample(event.frame, SR)
    end = analysis.media.frame_to_sample(event.end_frame, SR)
    middle = np.sqrt(np.mean(fx[:, (start + end) // 2 - 2400:(start + end) // 2 + 2400] ** 2))
    before = np.sqrt(np.mean(fx[:, start - 9600:start - 4800] ** 2))
    assert middle > 10 * before


def test_stinger_on_every_cut(busy_scene):
    analysis, plan = busy_scene
    fx = timeline(SketchBackend().render(plan, analysis), "fx")
    frame = int(round(SR / FPS))
    low = signal.sosfilt(signal.butter(4, 200, "low", fs=SR, output="sos"), fx, axis=-1)
    for shot in analysis.shots[1:]:
        at = analysis.media.frame_to_sample(shot.start_frame, SR)
        assert abs(onset_near(fx, at, search=4 * frame) - at) <= frame
        after = np.sqrt(np.mean(low[:, at:at + SR // 4] ** 2))
        before = np.sqrt(np.mean(low[:, at - SR // 4:at - 2 * frame] ** 2))
        assert after > 4 * before  # a timpani stroke, not just a click


def test_music_is_tonal_in_one_key_and_not_clipping(busy_scene, tmp_path):
    analysis, plan = busy_scene
    result = SketchBackend().render(plan, analysis)
    for name in ("music", "fx"):
        write_wav(tmp_path / f"{name}.wav", timeline(result, name), SR)
    (music, _), (fx, _) = read_wav(tmp_path / "music.wav"), read_wav(tmp_path / "fx.wav")
    mix = music + fx
    assert np.abs(mix).max() < 1.0
    assert 20 * np.log10(np.sqrt(np.mean(music ** 2))) > -30
    energy = chroma(music)
    major = np.array([0, 2, 4, 5, 7, 9, 11])
    in_key = max(energy[(major + r) % 12].sum() for r in range(12)) / energy.sum()
    assert in_key > 0.85
    assert np.sort(energy)[-4] > 0.05 * energy.max()  # chords, not one tone
    _, spectrum = signal.welch(music.mean(axis=0), SR, nperseg=4096)
    flatness = np.exp(np.mean(np.log(spectrum + 1e-20))) / np.mean(spectrum)
    assert flatness < 0.05  # tonal, not noise


@pytest.mark.parametrize("style", STYLES)
def test_each_style_renders(style, busy_scene):
    analysis, _ = busy_scene
    plan = make_plan(analysis, style=style)
    result = SketchBackend().render(plan, analysis)
    check_render(plan, result)
    assert np.sqrt(np.mean(timeline(result, "music") ** 2)) > 0.01


def test_styles_sound_different(busy_scene):
    analysis, _ = busy_scene
    edges = np.geomspace(60, 12000, 25)
    profiles = {}
    for style in STYLES:
        music = timeline(SketchBackend().render(make_plan(analysis, style=style), analysis), "music")
        freqs, power = signal.welch(music.mean(axis=0), SR, nperseg=4096)
        bands = np.array([power[(freqs >= a) & (freqs < b)].sum() for a, b in zip(edges[:-1], edges[1:])])
        profiles[style] = 10 * np.log10(bands / bands.sum() + 1e-12)
    for i, a in enumerate(STYLES):
        for b in STYLES[i + 1:]:
            assert np.abs(profiles[a] - profiles[b]).mean() > 1.5, (a, b)


def test_motion_drives_tempo_and_density():
    n = int(16 * FPS)
    motion = np.where(np.arange(n) < n // 2, 0.05, 0.9)
    analysis = make_analysis(n, [0], motion=motion)
    music = timeline(SketchBackend().render(make_plan(analysis), analysis), "music")
    half = music.shape[-1] // 2
    onsets = onset_times(music)
    calm = np.count_nonzero((onsets > SR) & (onsets < half - SR))
    busy = np.count_nonzero((onsets > half + SR) & (onsets < 2 * half - 2 * SR))  # tempo has caught up
    assert busy > 2 * calm, (calm, busy)


def test_unknown_style_falls_back(busy_scene, caplog):
    analysis, _ = busy_scene
    plan = make_plan(analysis, style="polka")
    result = SketchBackend().render(plan, analysis)
    check_render(plan, result)
    assert "polka" in caplog.text


def test_all_styles_listed():
    assert set(STYLES) <= set(SKETCH_STYLES)


def test_tempo_follows_motion_and_bars_restart_on_cuts():
    from dubber.backends.sketch import cut_samples, motion_curves, build_grid, style_spec

    n = int(20 * FPS)
    motion = np.where(np.arange(n) < n // 2, 0.05, 0.9)
    analysis = make_analysis(n, [0, 100, 300], motion=motion)
    total = analysis.media.total_samples(SR)
    cuts = cut_samples(analysis, SR, total)
    grid = build_grid(style_spec("tom-and-jerry"), motion_curves(analysis, SR), cuts, total, SR)
    calm = grid.step_s[grid.sample < 8 * SR].mean()
    busy = grid.step_s[grid.sample > 14 * SR].mean()
    assert calm > 1.4 * busy                      # sixteenths are shorter: a faster tempo
    for cut in cuts:
        at = np.searchsorted(grid.sample, cut)
        assert grid.sample[at] == cut and grid.step_in_bar[at] == 0


def test_nature_is_gentle_music_over_an_outdoor_bed(busy_scene):
    analysis, _ = busy_scene
    quiet = slice(analysis.media.frame_to_sample(150, SR), analysis.media.frame_to_sample(190, SR))  # no event, no cut
    cut = analysis.media.frame_to_sample(analysis.shots[1].start_frame, SR)
    renders = {style: SketchBackend().render(make_plan(analysis, style=style), analysis)
               for style in ("tom-and-jerry", "nature")}
    level = {}
    for style, result in renders.items():
        fx, music = timeline(result, "fx"), timeline(result, "music")
        music_rms = np.sqrt(np.mean(music ** 2))
        level[style] = (np.sqrt(np.mean(fx[:, quiet] ** 2)) / music_rms,
                        np.abs(fx[:, cut:cut + SR // 4]).max() / music_rms)
    bed, hit = level["nature"]
    assert 0.1 < bed < 1.0                       # audible ambience, under the music
    assert level["tom-and-jerry"][0] < 1e-3      # the cartoon styles have no bed
    assert hit < 0.5 * level["tom-and-jerry"][1]  # a soft chord on cuts, not an orchestral hit
    fx = timeline(renders["nature"], "fx")
    freqs, power = signal.welch(fx[:, quiet].mean(axis=0), SR, nperseg=2048)
    band = power[(freqs > 200) & (freqs < 1500)]
    assert np.exp(np.mean(np.log(band))) / np.mean(band) > 0.5  # broadband air, not a tone


def test_nature_style_text_describes_what_the_sketch_plays():
    from dubber.styles import STYLES as STYLE_TEXTS

    prompt = STYLE_TEXTS["nature"].prompt.lower()
    assert "no music" not in prompt and "music" in STYLE_TEXTS["nature"].lead
    assert all(word in prompt for word in ("marimba", "birdsong", "wind"))
    spec = SKETCH_STYLES["nature"]
    assert spec.calm_figure == "marimba" and spec.extra == "birds" and spec.ambience == "wind"


@pytest.mark.parametrize("style", sorted(SKETCH_STYLES))
def test_a_run_spans_the_whole_burst_of_fast_motion(style):
    from dubber.backends.sketch import Composer

    spec = SKETCH_STYLES[style]
    composer = Composer(spec, spec.roots[0], np.random.default_rng(0), SR)
    for upward in (True, False):
        notes = composer.run(SR, 2 * SR, 0.5, upward)   # a one-second burst
        last_end = notes[-1].start_sample + notes[-1].dur_s * SR
        assert notes[0].start_sample == SR and abs(last_end - 2 * SR) < 0.02 * SR, (style, last_end / SR)
        pitches = [n.midi for n in notes]
        assert pitches == sorted(pitches, reverse=not upward)   # one way, never wrapping round


def test_variable_frame_rate_motion_drives_the_music_at_the_frames_own_times():
    from dubber.backends.sketch import build_grid, cut_samples, motion_curves, style_spec

    # 120 frames at 60 fps (2 s), then 120 at 24 fps (5 s): frame 120 is at 2.0 s, while
    # 120 / average fps would put it at 3.5 s.
    pts = tuple(range(0, 120)) + tuple(120 + 2.5 * k for k in range(120))
    pts = tuple(int(round(p * 2)) for p in pts)   # ticks of 1/120 s
    media = MediaInfo(path="vfr.mp4", duration_s=7.0, fps=Fraction(240, 7), frame_count=240, width=320,
                      height=180, time_base=Fraction(1, 120), is_vfr=True, frame_pts=pts)
    motion = (0.02,) * 120 + (0.95,) * 120
    analysis = VideoAnalysis(media=media, shots=(Shot(0, 0, 240),), events=(), motion=motion, captions=())
    total = media.total_samples(SR)
    grid = build_grid(style_spec("tom-and-jerry"), motion_curves(analysis, SR), cut_samples(analysis, SR, total),
                      total, SR)
    early, late = grid.density[grid.sample < 1.5 * SR], grid.density[(grid.sample > 2.5 * SR) & (grid.sample < 3.3 * SR)]
    assert early.max() < 0.2 and late.min() > 0.6
