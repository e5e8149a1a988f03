"""From an analysis to a `Score`: hit points -> tempo map -> composition -> effects. Pure and
seeded: the same analysis, style and seed give the same score.

Every decision draws from its own stream, named by what it decides and, where it is made shot by
shot, by the shot (and the section or tempo span within it): `seeded(seed, "tempo", style, shot,
span)`. What is drawn for a shot then depends on nothing after it, so a hit point added or changed
in one shot leaves the music before that shot note for note as it was (editors re-render shot by
shot; tests/test_score_locality.py). The shots after it draw from their own streams too, though
what they carry over from it (the key they modulate from, where the bass line was) may change them."""
from __future__ import annotations

import bisect
import logging
import zlib

import numpy as np

from vision.types import VideoAnalysis

from ...hits import played_events
from ...styles import DEFAULT_STYLE, STYLES, Orchestra
from .compose import MODES, Composer, ShotContext, describe_shot, pick_program, plan_keys, plan_textures, scale_pitches
from .foley import event_sounds, whistled
from .hitpoints import HitPoint, event_points, tempo_anchors
from .notation import Part, Room, Score, playable
from .pace import motion_swell, shot_energy
from .tempo_map import TempoMap, bar_numbers, build_tempo_map

log = logging.getLogger(__name__)
TEMPO_JITTER = 0.07     # each span's tempo wanders this fraction around the shot's tempo
SECTION_S = 3.0         # a longer shot is written in sections of about this long, each in its own key


def seeded(seed: int, *salt: object) -> np.random.Generator:
    # The seed whole (SeedSequence takes integers of any size): every seed a plan accepts, up to
    # 2**63 - 1, gives its own soundtrack; seeds under 2**32 draw as they always have.
    words = [zlib.crc32(str(s).encode()) for s in salt]
    return np.random.default_rng(np.random.SeedSequence([int(seed) % (1 << 64), *words]))


def orchestra_for(style: str) -> Orchestra:
    """The style's orchestra; an unknown style falls back to the default with a warning."""
    if style not in STYLES:
        log.warning("the score engine has no style %r; using %r", style, DEFAULT_STYLE)
        style = DEFAULT_STYLE
    return STYLES[style].orchestra


def shot_bounds(analysis: VideoAnalysis, total_s: float) -> list[tuple[float, float]]:
    media = analysis.media
    starts = sorted({0.0, *(float(media.frame_time(s.start_frame)) for s in analysis.shots if s.start_frame > 0)})
    starts = [s for s in starts if s < total_s]
    return list(zip(starts, starts[1:] + [total_s]))


def shot_of(starts: list[float], time_s: float) -> int:
    """Index of the shot (or section) playing at `time_s`, given the sorted times they start."""
    return max(0, bisect.bisect_right(starts, time_s + 1e-9) - 1)


def sections(shots: list[tuple[float, float]], energies: list[float], tempo: TempoMap,
             meter: int) -> list[tuple[float, float, float]]:
    """(start_s, end_s, energy): shots, with long ones split at the downbeat nearest every SECTION_S."""
    bar, beat_in_bar = bar_numbers(tempo, meter)
    downbeats = tempo.beat_s[beat_in_bar == 0]
    out = []
    for (start, end), energy in zip(shots, energies):
        cuts = [start]
        while end - cuts[-1] > 1.6 * SECTION_S:
            wanted = cuts[-1] + SECTION_S
            inside = downbeats[(downbeats > cuts[-1] + 0.6 * SECTION_S) & (downbeats < end - 0.5 * SECTION_S)]
            if inside.size == 0:
                break
            cuts.append(float(inside[np.argmin(np.abs(inside - wanted))]))
        out += [(a, b, energy) for a, b in zip(cuts, cuts[1:] + [end])]
    return out


def _tempo(orchestra: Orchestra, shots, energies, events, total_s: float, seed: int, style: str) -> TempoMap:
    cuts = [HitPoint(start, "cut", 1.0, start) for start, _ in shots[1:]]
    low, high = orchestra.tempo_bpm
    allowed = (low * 0.85, high * 1.1)
    # Two hit points closer than a beat at the style's fastest tempo cannot both be beats.
    anchors = tempo_anchors(cuts, events, min_beat_s=60.0 / allowed[1])
    edges = sorted({0.0, *(a for a in anchors if 0.0 < a < total_s)})
    targets: list[float] = []
    bends: list[bool] = []
    rubato: list[np.random.Generator] = []
    shot_of_last, span_in_shot = -1, 0
    shot_starts = [start for start, _ in shots]
    for start in edges:
        shot = shot_of(shot_starts, start)
        # The tempo is the shot's: a new one at a cut; inside the shot every span between hit
        # points aims at it and starts from the tempo the music arrives with.
        inside = shot == shot_of_last
        span_in_shot = span_in_shot + 1 if inside else 0
        # Each span its own stream (its place in its shot names it): a hit point added to a shot
        # adds a span there and moves no draw of another shot's spans.
        rng = seeded(seed, "tempo", style, shot, span_in_shot)
        jitter = 1.0 + TEMPO_JITTER * float(rng.uniform(-1, 1))
        targets.append(targets[-1] if inside else (low + (high - low) * energies[shot]) * jitter)
        bends.append(inside)
        rubato.append(rng)
        shot_of_last = shot
    return build_tempo_map(anchors, total_s, targets, allowed, rubato, bends, orchestra.rubato)


def section_places(parts: list[tuple[float, float, float]], shots: list[tuple[float, float]]) -> list[tuple[int, int]]:
    """(shot, section within the shot) of every section: the name of its own streams."""
    places: list[tuple[int, int]] = []
    shot_starts = [start for start, _ in shots]
    for start, _, _ in parts:
        shot = shot_of(shot_starts, start)
        places.append((shot, places[-1][1] + 1 if places and places[-1][0] == shot else 0))
    return places


def compose_score(analysis: VideoAnalysis, style: str, seed: int, total_s: float) -> Score:
    """The whole score for a video: music and effects notes, rooms, and what each shot got."""
    orchestra = orchestra_for(style)
    motion = np.clip(np.asarray(analysis.motion, dtype=np.float64), 0.0, 1.0)
    fps = float(analysis.media.fps)
    events = [p for p in event_points(played_events(analysis)) if p.time_s < total_s]
    shots = shot_bounds(analysis, total_s) or [(0.0, total_s)]
    energies = [shot_energy(motion, events, a, b, fps) for a, b in shots]
    tempo = _tempo(orchestra, shots, energies, events, total_s, seed, style)
    parts = sections(shots, energies, tempo, orchestra.meter)
    places = section_places(parts, shots)
    # Each key moves from the one before: a section's key depends on the sections up to it only.
    keys = plan_keys(orchestra, [seeded(seed, "key", style, *place) for place in places])
    textures = plan_textures([energy for _, _, energy in parts], seeded(seed, "textures", style))
    composer = Composer(orchestra, tempo, seeded(seed, "motif", style), motion_swell(motion, fps, shots))
    contexts: list[ShotContext] = []
    melody = bass = harmony = None
    cuts = {start for start, _ in shots}
    for i, ((start, end, energy), (root, mode), texture, place) in enumerate(zip(parts, keys, textures, places)):
        if start in cuts:   # the instruments change with the picture; within a shot the tune keeps its voice
            players = seeded(seed, "programs", style, place[0])
            melody = pick_program(orchestra.busy_melody if energy > 0.5 else orchestra.melody, i, melody, players)
            bass = pick_program(orchestra.bass, i, bass, players)
            harmony = pick_program(orchestra.harmony, i, harmony, players)
        shot = ShotContext(start, end, energy, root, MODES[mode], Part(melody), Part(bass), Part(harmony), texture)
        contexts.append(shot)
        composer.write_shot(shot, events, final=i == len(parts) - 1, opens_shot=start in cuts,
                            rng=seeded(seed, "section", style, *place))

    context_starts = [c.start_s for c in contexts]

    def context_at(time_s: float) -> ShotContext:
        return contexts[shot_of(context_starts, time_s)]

    def chord_at(time_s: float) -> tuple[int, int, int]:
        """The chord of the bar at `time_s` as written (bass and pads play it, even where the pad
        rests), else the section's tonic triad."""
        written = composer.chord_at(time_s)
        if written is not None:
            return written
        shot = context_at(time_s)
        return tuple((shot.root + shot.scale[k % len(shot.scale)]) % 12 for k in (0, 2, 4))  # type: ignore[return-value]

    def tones_at(time_s: float) -> list[int]:
        shot = context_at(time_s)
        return scale_pitches(shot.root, shot.scale, 64, 96)

    # One stream for the runs, one draw each in time order: a run's notes depend on the runs before it only.
    runs = seeded(seed, "runs", style)
    composer.runs(events, tones_at, orchestra.runs[int(runs.integers(len(orchestra.runs)))], whistled(events), runs)
    composer.tremolo(events, chord_at, orchestra.suspense)
    fx = event_sounds(events, orchestra, chord_at, seeded(seed, "fx", style))
    room_rng = seeded(seed, "rooms", style)
    rooms = tuple(Room(c.start_s, int(room_rng.integers(orchestra.room[0], orchestra.room[1] + 1))) for c in contexts)
    notes = tuple(playable(n) for n in (*composer.notes, *fx) if n.start_s < total_s)
    return Score(notes, rooms, tuple(describe_shot(c, tempo) for c in contexts), total_s)
