"""Mixing: rendered cues placed on the soundtrack to the sample, then set to a loudness target.

1. Placement. Each cue's first sample lands on `cue.start_sample`, untouched. At a join between
   two cues the outgoing cue is not chopped: it is extended past the boundary by its own last
   samples played backwards (a reflection, so the waveform stays continuous) under an
   equal-power cosine fade-out. At a picture cut the incoming cue enters at full level on its
   first sample, so a hit written on the cut frame stays on it; the overlap lasts
   `cut_crossfade_ms`. Where one shot was split into several cues (`cue.parts > 1`) there is
   no picture event at the join, so the incoming cue also fades in (sine curve) over
   `split_crossfade_ms`: a true equal-power crossfade (its first sample is still placed on its
   start sample, only faded). A join whose incoming waveform already
   continues the outgoing one (a backend that rendered one continuous timeline and sliced it)
   is left exactly as rendered. The programme's last `END_FADE_MS` fade to silence.
2. Optional original-audio bed at `original_gain_db`, ducked as on a dubbing stage: while the
   new soundtrack plays, the bed sits a steady part of `duck_db` down (slow side-chain: it does
   not pump with the notes of the score, and comes back up within about a second and a half of
   a silence); under effects it dips the whole `duck_db`, and lets go when the effect stops
   (`dubber.ducking`). A backend's single stem (music and effects rendered as one) is both keys.
3. Loudness: the sum is gained to `lufs` and limited to `true_peak_db` (see `dubber.loudness`).
   Every stem gets the same static gain and the same limiter gain curve as the mix (the
   limiter's gain is one curve for all channels), so the stems sum to the final mix.

Every stem and the mix are film-length tracks on disk in the job's work folder (see
`dubber.media.tracks`), each cue read, placed and dropped in turn; the gain is applied as the
tracks are read for writing (`Soundtrack.read`), so memory does not grow with the film.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .ducking import Ducker, duck_amount, duck_gain_span, frame_samples, key_level_db_of_blocks
from .loudness import normalize_tracks, track_lufs
from .media.tracks import BLOCK_SAMPLES, Track, new_track
from .types import ArrayTrack, Cue, CueAudio, DubPlan, RenderResult, Soundtrack

log = logging.getLogger(__name__)

SEAMLESS_RATIO = 1.5        # a join is seamless if it misses the prediction by <= this x the curvature
SEAM_PROBE = 48             # samples each side of a join inspected for continuity
SILENT_LEVEL = 1e-5         # a cue whose last samples stay under this (-100 dBFS) has fallen silent
END_FADE_MS = 20.0          # the programme's last milliseconds fade to silence (no click at the end)
MUTE_FADE_MS = 5.0          # a cue next to a muted one fades in (or out) over this long: no click
BED_DUCK_THRESHOLD_DB = -12.0   # the original bed dips fully only where the effects are within ~this of their loud level
# Under the score alone the bed sits this share of `duck_db` down, steadily: the key is the whole
# new soundtrack, read as sounding or not (anything within 30 dB of its loud level), held over the
# rests between phrases and let go slowly, so the production sound does not follow the notes.
BED_UNDER_MUSIC_SHARE = 0.5
BED_UNDER_MUSIC = dict(threshold_db=-30.0, attack_ms=150.0, hold_ms=800.0, release_ms=600.0)
MUSIC_STEM = "music"   # the score's stem that is music alone; every other stem holds effects


@dataclass(frozen=True)
class MixOptions:
    """How to mix. Levels in dB (LUFS for `lufs`, dBTP for `true_peak_db`), fades in ms."""

    lufs: float = -16.0
    true_peak_db: float = -1.0
    cut_crossfade_ms: float = 50.0
    split_crossfade_ms: float = 1000.0
    original_gain_db: float = -12.0
    duck_db: float = -8.0

    def __post_init__(self) -> None:
        if not -70.0 < self.lufs < 0.0:
            raise ValueError(f"lufs must be between -70 and 0 LUFS, got {self.lufs}")
        if self.true_peak_db > 0.0:
            raise ValueError(f"true_peak_db must be at most 0 dBTP, got {self.true_peak_db}")
        if self.cut_crossfade_ms < 0 or self.split_crossfade_ms < 0:
            raise ValueError("crossfade lengths must be zero or positive milliseconds")
        if self.duck_db > 0:
            raise ValueError(f"duck_db lowers the original, so it must be zero or negative, got {self.duck_db}")


# ---------------------------------------------------------------------------- placement
def _is_seamless(tail: np.ndarray, head: np.ndarray) -> bool:
    """Whether the incoming cue's `head` continues the outgoing cue's `tail` (their last and
    first millisecond or so): the first incoming sample is where the outgoing waveform was
    heading (linear prediction from its last two samples), within the curvature the waveform
    itself shows there, and the incoming side is not much quieter. Joining such cues as they
    are cannot click or chop."""
    if tail.shape[-1] < 4 or head.shape[-1] < 4:
        return False
    curvature = np.concatenate([np.abs(np.diff(tail, 2, axis=-1)), np.abs(np.diff(head, 2, axis=-1))], axis=-1)
    predicted = 2.0 * tail[:, -1] - tail[:, -2]
    miss = np.abs(head[:, 0] - predicted)
    # A cue that falls (nearly) silent while the outgoing one sounds would chop it: not seamless.
    level_kept = np.sqrt(np.mean(head ** 2)) >= 0.25 * np.sqrt(np.mean(tail ** 2))
    return bool(level_kept and np.all(miss <= SEAMLESS_RATIO * curvature.max(axis=-1) + 1e-7))


def _equal_power(length: int) -> tuple[np.ndarray, np.ndarray]:
    """(fade_out, fade_in) cosine/sine curves, fade_out**2 + fade_in**2 == 1."""
    angle = (np.arange(length, dtype=np.float32) + 0.5) / length * (np.pi / 2)
    return np.cos(angle), np.sin(angle)


def _join_samples(cue: Cue, nxt: Cue | None, total: int, sr: int, options: MixOptions) -> tuple[int, bool]:
    """(overlap length in samples, whether it is a split join) after `cue`."""
    split = nxt is not None and nxt.shot_index == cue.shot_index and nxt.parts > 1 and nxt.part == cue.part + 1
    ms = options.split_crossfade_ms if split else options.cut_crossfade_ms
    length = min(int(round(ms * sr / 1000.0)), cue.num_samples, total - cue.end_sample)
    if nxt is not None and nxt.start_sample == cue.end_sample:
        length = min(length, nxt.num_samples)
    return max(length, 0), split


def _raised_cosine(length: int) -> np.ndarray:
    """0 -> 1 over `length` samples (float32), without reaching either end."""
    return (0.5 - 0.5 * np.cos(np.pi * (np.arange(length, dtype=np.float32) + 0.5) / length)).astype(np.float32)


def _place_stem(out: Any, plan: DubPlan, clip_of: Callable[[int], np.ndarray | None],
                options: MixOptions, muted: frozenset[int] = frozenset()) -> int:
    """Add one stem of every cue into `out` (a track of (2, total): `out.add(start, block)`);
    returns how many joins were seamless.
    `clip_of(i)` is that stem of cue i (None where it has none), asked for once per cue: a cue
    read from the cache is in memory only while it and its neighbour are placed.
    Cues whose index is in `muted` are left silent. The cue before one fades out into it on the
    muted cue's own first samples where they continue it (the sound as it went on), else over
    its own last MUTE_FADE_MS. Before the cue after one, the muted cue's own sound fades in over
    its last MUTE_FADE_MS and joins that cue as it does with every cue playing: the cue after a
    muted one starts on no step and is, sample for sample, what it was."""
    seamless = 0
    cues = plan.cues
    fade = min(int(round(MUTE_FADE_MS * plan.sample_rate / 1000.0)), plan.total_samples)
    ahead: tuple[int, np.ndarray | None] | None = None   # the next cue's clip, when a join read it
    for i, cue in enumerate(cues):
        nxt = cues[i + 1] if i + 1 < len(cues) else None
        if cue.index in muted:
            leads_in = nxt is not None and nxt.index not in muted and nxt.start_sample == cue.end_sample
            clip = (ahead[1] if ahead is not None and ahead[0] == i else clip_of(i)) if leads_in else None
            ahead = None
            if clip is not None:
                n = min(fade, clip.shape[-1])
                out.add(cue.end_sample - n, clip[:, -n:] * _raised_cosine(n))
                joined, ahead = _join(out, plan, i, clip, clip_of, options)
                seamless += joined
            continue
        clip = ahead[1] if ahead is not None and ahead[0] == i else clip_of(i)
        ahead = None
        if clip is None:
            continue
        out.add(cue.start_sample, clip)
        if nxt is not None and nxt.index in muted:
            length, _ = _join_samples(cue, nxt, plan.total_samples, plan.sample_rate, options)
            _fade_into_muted(out, cue, clip, clip_of(i + 1) if nxt.start_sample == cue.end_sample else None,
                             min(length, int(round(options.cut_crossfade_ms * plan.sample_rate / 1000.0))), fade)
            continue
        joined, ahead = _join(out, plan, i, clip, clip_of, options)
        seamless += joined
    return seamless


def _join(out: Any, plan: DubPlan, i: int, clip: np.ndarray, clip_of: Callable[[int], np.ndarray | None],
          options: MixOptions) -> tuple[int, tuple[int, np.ndarray | None] | None]:
    """Join cue i (its stem `clip`, placed or muted) to the cue after it: nothing where the next
    cue's first samples continue this one, else an equal-power crossfade on this cue's tail
    (mirrored past its end). Returns (1 for a seamless join else 0, the next cue's clip when read)."""
    cue = plan.cues[i]
    nxt = plan.cues[i + 1] if i + 1 < len(plan.cues) else None
    length, split = _join_samples(cue, nxt, plan.total_samples, plan.sample_rate, options)
    if length == 0:
        return 0, None
    ahead, nxt_clip = None, None
    if nxt is not None and nxt.start_sample == cue.end_sample:
        nxt_clip = clip_of(i + 1)
        ahead = (i + 1, nxt_clip)
    if nxt_clip is not None and _is_seamless(clip[:, -SEAM_PROBE:], nxt_clip[:, :SEAM_PROBE]):
        return 1, ahead
    fade_out, fade_in = _equal_power(length)
    out.add(cue.end_sample, clip[:, ::-1][:, :length] * fade_out)
    if split and nxt_clip is not None:
        # The incoming part's head is written already at unity; bring it to the sine curve.
        out.add(nxt.start_sample, -(nxt_clip[:, :length] * (1.0 - fade_in)))
    return 0, ahead


def _fade_into_muted(out: Any, cue: Cue, clip: np.ndarray, muted_clip: np.ndarray | None,
                     length: int, fade: int) -> None:
    """End `cue` where the cue after it is muted. Where the muted cue's first samples continue
    this one (one timeline sliced into cues), they are its natural tail: kept under a cosine
    fade-out of `length` samples. Otherwise the cue itself fades out over its last `fade`
    samples; nothing of it is mirrored or repeated into the muted cue."""
    tail = clip[:, -SEAM_PROBE:]
    # Only a sounding tail has a continuation to keep: silence runs into anything "seamlessly",
    # and the muted cue's opening (a hit on its first frame) would play under the fade.
    if (muted_clip is not None and length > 0 and np.max(np.abs(tail), initial=0.0) > SILENT_LEVEL
            and _is_seamless(tail, muted_clip[:, :SEAM_PROBE])):
        fade_out, _ = _equal_power(length)
        out.add(cue.end_sample, muted_clip[:, :length] * fade_out)
        return
    n = min(fade, clip.shape[-1])
    if n:
        out.add(cue.end_sample - n, -(clip[:, -n:] * _raised_cosine(n)))


class _InMemory:
    """A (channels, n) array as a placement target."""

    def __init__(self, channels: int, num_samples: int) -> None:
        self.audio = np.zeros((channels, num_samples), dtype=np.float32)

    def add(self, start: int, block: np.ndarray) -> None:
        stop = min(start + block.shape[-1], self.audio.shape[-1])
        self.audio[:, start:stop] += block[:, :stop - start]

    def read(self, start: int, stop: int) -> np.ndarray:
        return self.audio[:, start:stop].copy()


def place_cues(render: RenderResult, plan: DubPlan, options: MixOptions) -> tuple[dict[str, np.ndarray], int]:
    """Every stem of the render as a (2, plan.total_samples) array in memory, cues at their exact
    samples (for short clips; `mix` places a film's cues on disk)."""
    stems, seamless = _place(render, plan, options, lambda name: _InMemory(2, plan.total_samples))
    return {name: target.audio for name, target in stems.items()}, seamless


def _place(render: RenderResult, plan: DubPlan, options: MixOptions, make: Callable[[str], Any],
           placed: Callable[[str], None] = lambda name: None,
           muted: frozenset[int] = frozenset()) -> tuple[dict[str, Any], int]:
    """Every stem of the render placed into a target `make(name)` gives, `placed(name)` called
    after each, the cues in `muted` left silent; (targets, seamless joins)."""
    by_index = {c.cue_index: c for c in render.cues}
    names = sorted({name for c in render.cues for name in c.stems})
    stems: dict[str, Any] = {}
    seamless = 0
    for name in names:
        stems[name] = make(name)
        seamless += _place_stem(stems[name], plan, _clips_of(by_index, plan, name), options, muted)
        fade_out_end(stems[name], plan.total_samples, plan.sample_rate)
        placed(name)
    return stems, seamless


def mix_steps(render: RenderResult, muted: bool, with_original: bool) -> int:
    """The passes over the film `mix` reports as progress: each stem placed (and the bed ducked),
    twice when shots are muted, then the loudness measurement and one gain pass."""
    placings = 2 if muted else 1   # muting places the stems (and ducks the bed) a second time
    stem_count = len({name for c in render.cues for name in c.stems})
    return placings * (stem_count + with_original) + 2


class _Steps:
    """Counts the mix's passes over the film for `progress`. The total is fixed up front: a pass
    not counted on (the loudness search may take another) holds the count one short of the total,
    which only `finish` reaches, so a full bar always means the mix is done."""

    def __init__(self, progress: Callable[[int, int], None], expected: int) -> None:
        self.progress, self.done, self.total = progress, 0, max(1, expected)

    def advance(self) -> None:
        if self.done < self.total - 1:
            self.done += 1
            self.progress(self.done, self.total)

    def finish(self) -> None:
        self.done = self.total
        self.progress(self.done, self.total)


def fade_out_end(track: Any, total: int, sample_rate: int) -> None:
    """Bring the programme's last END_FADE_MS down to silence (raised cosine): the picture ends
    on a frame, and a note cut there at full level would end the soundtrack on a click. Only the
    last samples of the last frame change."""
    length = min(total, int(round(END_FADE_MS * sample_rate / 1000)))
    if length == 0:
        return
    tail = track.read(total - length, total)
    keep = (0.5 + 0.5 * np.cos(np.pi * (np.arange(1, length + 1) / length))).astype(np.float32)
    track.add(total - length, -(tail * (1.0 - keep)))


def _clips_of(by_index: Mapping[int, CueAudio], plan: DubPlan, name: str) -> Callable[[int], np.ndarray | None]:
    """Stem `name` of the plan's i-th cue, checked against the plan, read when asked for."""
    def clip_of(i: int) -> np.ndarray | None:
        cue = plan.cues[i]
        return _cue_stem(by_index.get(cue.index), cue, name)
    return clip_of


def _cue_stem(audio: CueAudio | None, cue: Cue, name: str) -> np.ndarray | None:
    if audio is None or name not in audio.stems:
        return None
    clip = _as_stereo(np.asarray(audio.stems[name], dtype=np.float32))
    if clip.shape[-1] != cue.num_samples or audio.start_sample != cue.start_sample:
        raise ValueError(f"cue {cue.index} stem {name!r} has {clip.shape[-1]} samples at {audio.start_sample}; "
                         f"the plan wants {cue.num_samples} at {cue.start_sample}")
    return clip


def _as_stereo(audio: np.ndarray) -> np.ndarray:
    if audio.ndim == 1:
        audio = audio[None, :]
    if audio.shape[0] == 1:
        return np.repeat(audio, 2, axis=0)
    if audio.shape[0] != 2:
        raise ValueError(f"expected mono or stereo (channels, samples), got shape {audio.shape}")
    return audio


# ---------------------------------------------------------------------------- mix
def _sum_blocks(tracks: list[Any], start: int, stop: int) -> np.ndarray:
    """The sum of `tracks` over [start, stop), added in order (float32)."""
    total = tracks[0].read(start, stop)
    for track in tracks[1:]:
        total += track.read(start, stop)
    return total


def _ducked_bed(original: Any, new_tracks: Mapping[str, Any], total: int, sr: int, options: MixOptions) -> Track:
    """The original sound at `original_gain_db`, as a track of its own: a steady part of
    `duck_db` down while the new soundtrack sounds, the whole of it under effects (see the
    module's docstring)."""
    steady = Ducker(depth_db=BED_UNDER_MUSIC_SHARE * options.duck_db, **BED_UNDER_MUSIC)
    dips = Ducker(depth_db=options.duck_db, threshold_db=BED_DUCK_THRESHOLD_DB)
    effects = [track for name, track in new_tracks.items() if name != MUSIC_STEM]
    amounts = [(ducker, _duck_amount_of(tracks, ducker, total, sr))
               for ducker, tracks in ((steady, list(new_tracks.values())), (dips, effects))]
    level = np.float32(10 ** (options.original_gain_db / 20))
    bed = new_track("original", 2, total)
    for start in range(0, total, BLOCK_SAMPLES):
        stop = min(start + BLOCK_SAMPLES, total)
        block = _as_stereo(np.asarray(original.read(start, stop), dtype=np.float32))
        gain = np.minimum.reduce([duck_gain_span(amount, sr, ducker, start, stop) for ducker, amount in amounts])
        bed.write(start, block * (level * gain))
    return bed


def _duck_amount_of(key_tracks: list[Any], ducker: Ducker, total: int, sr: int) -> np.ndarray:
    """`duck_amount` per side-chain frame, keyed by the sum of `key_tracks` (none: no ducking)."""
    if not key_tracks:
        return np.zeros(-(-total // frame_samples(sr)))
    step = frame_samples(sr) * 4096
    levels = key_level_db_of_blocks(((a, _sum_blocks(key_tracks, a, a + step)) for a in range(0, total, step)),
                                    total, sr)
    return duck_amount(levels, ducker)


class _Sum:
    """The sum of several tracks, added in order as it is read: the mix of the stems costs no
    disk of its own (reading it reads each stem)."""

    def __init__(self, tracks: list[Any]) -> None:
        self.tracks = tracks
        self.channels, self.num_samples = tracks[0].channels, tracks[0].num_samples

    def read(self, start: int, stop: int) -> np.ndarray:
        return _sum_blocks(self.tracks, start, stop)

    def blocks(self, size: int = BLOCK_SAMPLES):
        for start in range(0, self.num_samples, size):
            yield start, self.read(start, start + size)


def _summed(stems: list[Any], total: int) -> Any:
    """The sum of the stems as a track (a lone stem is its own sum; none is silence)."""
    if not stems:
        return new_track("mix", 2, total)
    return stems[0] if len(stems) == 1 else _Sum(stems)


def release_audio(render: RenderResult, name: str | None = None) -> None:
    """Free the disk of rendered stem `name` (None: every stem) where it is kept in files of the
    job's work folder (cue stems that say how, with `release`); the stem names stay."""
    for cue in render.cues:
        release = getattr(cue.stems, "release", None)
        if release is not None:
            release(name)


def mix(render: RenderResult, plan: DubPlan, options: MixOptions = MixOptions(),
        original: Any = None, *, release_render: bool = False, muted: Sequence[int] = (),
        progress: Callable[[int, int], None] = lambda done, total: None) -> Soundtrack:
    """Mix a render into the final soundtrack.

    Args:
        render: one CueAudio per plan cue (any stems), at plan.sample_rate.
        plan: where each cue goes; the soundtrack is exactly plan.total_samples long.
        options: loudness, true-peak ceiling, crossfades (ms), original-bed levels (dB).
        original: the video's own audio, (channels, plan.total_samples): an array, or a track
            on disk (`dubber.media.audio_io.decode_audio_track`); kept as a ducked bed.
        release_render: once every cue is placed, free the disk of rendered audio that lives in
            the job's work folder (cue stems with a `release` method); the render is not read again.
        muted: indices of cues left silent. The gain and limiter are those of the mix with every
            cue playing, so muting one shot leaves every other shot exactly as it was.
        progress: called as progress(done, total) after each pass over the film: a stem placed,
            the original bed ducked, the loudness measured, each gain and limiter pass (the total
            grows when the loudness search needs more passes than one).

    Returns:
        Soundtrack whose stems (plus "original" when given) get the mix's gain and limiter
        curve, so they sum to the mix, and stay under the same true-peak ceiling;
        `integrated_lufs` is -inf when everything is silent. Its tracks are on disk in the
        current work folder (`dubber.media.tracks.work_folder`).

    Raises:
        ValueError: the render does not match the plan (sample rate, cue lengths, original length).
    """
    sr, total = plan.sample_rate, plan.total_samples
    if render.sample_rate != sr:
        raise ValueError(f"render is at {render.sample_rate} Hz but the plan is at {sr} Hz")
    bed = _bed_track(original, total)
    # Long films take minutes here: one step per pass over the film, so a display keeps moving.
    steps = _Steps(progress, mix_steps(render, bool(muted), bed is not None))
    # With release_render, each rendered stem's disk is freed once it is placed: a film's rendered
    # and placed stems are never all on disk together.
    stems, seamless = _place(render, plan, options, lambda name: new_track(name, 2, total),
                             _after_placing(render, steps, release_render and not muted))
    _add_bed(stems, bed, total, sr, options, steps)
    pre_limit = _summed(list(stems.values()), total)
    # A lone stem is the mix itself; several can each peak above the mix where they cancel.
    held = list(stems.values()) if len(stems) > 1 else []
    result, passes = normalize_tracks(pre_limit, held, sr, options.lufs, options.true_peak_db,
                                      on_pass=steps.advance)
    if muted:
        # The same gain curve on the mix with the muted cues taken out, so every other shot stays
        # as it was; the production sound, ducked again, comes up where the muted shot was.
        # The muted cues' audio is still read: where it continues the shot before, its first
        # samples are that shot's natural tail.
        stems = _place(render, plan, options, lambda name: new_track(name, 2, total),
                       _after_placing(render, steps, release_render), frozenset(muted))[0]
        _add_bed(stems, bed, total, sr, options, steps)
        pre_limit = _summed(list(stems.values()), total)
        result = replace(result, lufs=track_lufs(pre_limit, sr, result.gain))
    steps.finish()
    return _soundtrack(pre_limit, stems, result, sr, {**asdict(options), "passes": passes, "seamless_joins": seamless})


def _soundtrack(pre_limit: Any, stems: dict[str, Any], result: Any, sr: int, settings: dict[str, Any]) -> Soundtrack:
    """The mix and its stems with the one static gain and limiter curve of `result` (a
    `normalize_tracks` result), applied as they are read; `settings` go to the manifest."""
    silent = not np.isfinite(result.lufs)
    if silent:
        log.warning("the soundtrack is silent; loudness normalisation was skipped")
    settings = {**settings, "gain_db": float(result.gain_db), "limiter_db": round(result.limiter_db, 3), "silent": silent}
    return Soundtrack(sample_rate=sr, mix_track=pre_limit, stem_tracks=stems, gain=result.gain,
                      integrated_lufs=result.lufs, true_peak_dbtp=result.true_peak_db, settings=settings)


def _after_placing(render: RenderResult, steps: "_Steps", release: bool) -> Callable[[str], None]:
    """What follows each stem's placing: its rendered audio freed (when it is not read again), a step counted."""
    def after(name: str) -> None:
        if release:
            release_audio(render, name)
        steps.advance()
    return after


def _bed_track(original: Any, total: int) -> Any:
    """The original sound as a track of exactly `total` samples, or None."""
    if original is None:
        return None
    bed = original if hasattr(original, "read") else ArrayTrack(original)
    if bed.num_samples != total:
        raise ValueError(f"original audio has {bed.num_samples} samples, the plan {total}")
    return bed


def _add_bed(stems: dict[str, Any], bed: Any, total: int, sr: int, options: MixOptions, steps: "_Steps") -> None:
    """The original sound, ducked under the placed stems and faded out at the end, as stem "original"."""
    if bed is None:
        return
    stems["original"] = _ducked_bed(bed, dict(stems), total, sr, options)
    fade_out_end(stems["original"], total, sr)
    steps.advance()
