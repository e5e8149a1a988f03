"""The effects stem: a sound for every visual event, by kind and strength, never the same twice
in a row, plus the foley music does not do (whooshes, splashes, thuds, footsteps).

Impacts get a big hit (strong blows) or a dry stab (weak blows), in the style's own band: the
studio orchestra's stabs and timpani for a cartoon, the pianist and trap drummer for a silent
film, the jazz drummer and muted brass for noir. The inside of a fast series of blows is played
as one climbing (or falling) figure on the harmony of the moment, a chord tone higher (or lower)
at every blow, passed between two tuned percussion voices over a tick that changes colour blow
by blow; the last blow of the series gets the big hit. This
is how the cartoon scores mickey-moused a flurry: a ladder the ear follows up to the pay-off, not
the same bonk nine times. Every other hit is voiced on the chord of the moment (a stab in the
key of the music it lands in), each blow on another tone of it than the blow before, so two
blows in a row differ in instrument, pitch and layering.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ...styles import CLAVES, CRASH, HI_WOOD, LOW_WOOD, SNARE, TROMBONE, XYLOPHONE, Hit, Layer, Orchestra
from .hitpoints import SERIES_GAP_S, HitPoint
from .notation import PLAYABLE, Note, Part

BIG_FROM_STRENGTH = 0.55
STEP_S = 0.27               # s between footsteps, before jitter
FOOTSTEPS_FROM = 0.6        # weaker runs get no footsteps (the music's run carries them)
FOOTSTEPS_MAX_S = 1.5       # a long run gets its first steps; the music carries the rest
CONTACT_KINDS = ("impact", "landing")   # a blow and a fall: one history, so neither repeats the last
AFTERMATH_S = 0.12          # a shake starting this soon after a blow or a fall is its aftermath
SLIDE_S = 0.32              # a trombone slide this long falls into a landing ...
SLIDE_FALL = 9              # ... this many semitones (a sixth)
WHISTLE_FROM = 0.6          # whooshes at least this strong get a slide whistle ...
WHISTLE_MIN_S = 0.25        # ... gliding at least this long ...
WHISTLE_MAX_S = 0.8         # ... and at most this long;
# A slide whistle is a gag, not a texture: the strongest whooshes get it, this far apart. Its
# glide sounds every semitone on its way, so each one is a second of the score with no key at
# all; one every 3 s on a busy clip made a fifth of it sound alike (chroma repetition up to
# 0.04 higher on Steamboat Willie with the detected events).
WHISTLE_GAP_S = 6.0
# General MIDI has no slide whistle; its fipple tone is nearest the ocarina (the default bank's
# "Whistle" sounds most of an octave flat and is silent above G5, so it cannot glide).
SLIDE_WHISTLE = 79
DRUMS = Part(0, "fx", drums=True)
MARIMBA = 12
# A flurry's figure: pairs of tuned percussion that pass it between them (struck, so every blow
# speaks at once; pizzicato is too soft to cut through the bed), and the ticks under it.
# Both voices of a pair must play the whole figure where it is: a glockenspiel (from G5 up)
# beside a marimba (up to C7) shares too little range, and a figure folded into each one's octave
# by turns zigzags instead of climbing; a vibraphone's blow, struck softly under the tremolo bed
# of a flurry, went unheard.
SERIES_VOICES = ((XYLOPHONE, MARIMBA), (MARIMBA, XYLOPHONE))
LOW_BONGO, HI_TIMBALE = 61, 65    # GM percussion keys
SERIES_TICKS = (HI_WOOD, LOW_BONGO, LOW_WOOD, CLAVES, HI_TIMBALE, SNARE)
SERIES_LOW = 55             # the figure climbs from no lower than here (MIDI), where both its voices play ...
SERIES_TOP = 96             # ... to no higher than here: a bar struck above C7 is a tinkle, no blow

ChordAt = Callable[[float], tuple[int, int, int]]


def _pitch(pc: int, octave: int) -> int:
    return int(np.clip(12 * (octave + 1) + pc % 12, 0, 127))


def realise(hit: Hit, point: HitPoint, chord: tuple[int, int, int], inversion: int, level: float) -> list[Note]:
    """The notes of one hit at a hit point, on the chord of the moment in its `inversion` (0, 1
    or 2): every pitched layer plays a tone of that chord, so a stab is in the key of the music
    it lands in, and two blows in a row differ by which tone each layer takes."""
    notes = []
    velocity = 62 + 62 * float(np.clip(point.strength, 0.0, 1.0))
    for layer in hit.layers:
        for pitch in _layer_pitches(layer, chord, inversion):
            vel = int(np.clip(velocity * layer.level * level, 1, 127))
            part = DRUMS if layer.drum else Part(layer.program, "fx")
            notes.append(Note(part, pitch, point.time_s, point.time_s + layer.length_s, vel, f"hit:{point.kind}"))
    return notes


def _layer_pitches(layer: Layer, chord: tuple[int, int, int], inversion: int) -> list[int]:
    if layer.drum:
        return [layer.program]
    if layer.voicing == "chord":   # within the layer's octave, where the bank sounds it
        return [_pitch(pc, layer.octave) for pc in chord]
    turned = chord[inversion % 3:] + chord[:inversion % 3]
    # "fixed" (a tuned drum, surf, breath) sounds the lowest tone of the chord in this inversion
    index = {"root": 0, "fixed": 0, "top": 1, "fifth": 2}[layer.voicing]
    return [_pitch(turned[index], layer.octave)]


def _in_series(impacts: list[HitPoint], i: int) -> tuple[bool, bool]:
    """(part of a fast series, last of it) for impact i."""
    before = i > 0 and impacts[i].time_s - impacts[i - 1].time_s < SERIES_GAP_S
    after = i + 1 < len(impacts) and impacts[i + 1].time_s - impacts[i].time_s < SERIES_GAP_S
    return before or after, before and not after


def _sounds(hit: Hit) -> set[tuple[int, bool]]:
    return {(layer.program, layer.drum) for layer in hit.layers}


def _choose(pool: tuple[Hit, ...], recent: list[Hit], rng: np.random.Generator) -> Hit:
    """A hit from the pool sharing no instrument with the previous one of its kind (or at least
    not the same hit), so two in a row never sound alike; and in a register the last two did not
    use where the pool has one, so a string of blows moves low, middle, high rather than see-sawing;
    and not one of the last three hits where another will do."""
    if not recent:
        return pool[int(rng.integers(len(pool)))]
    previous = recent[-1]
    apart = [h for h in pool if h.register != previous.register]
    unshared = [h for h in apart if not _sounds(h) & _sounds(previous)]
    unheard = [h for h in unshared if h.name not in {r.name for r in recent[-3:]}]
    fresh = [h for h in unheard if h.register not in {r.register for r in recent[-2:]}]
    # the first that is not empty, most particular first
    for options in (fresh, unheard, unshared, apart, [h for h in pool if h.name != previous.name], list(pool)):
        if options:
            return options[int(rng.integers(len(options)))]
    raise ValueError("an empty pool of hits")


def whistled(points: list[HitPoint]) -> frozenset[float]:
    """The times of the whooshes that get a slide whistle: strong ones, the strongest first, none
    within WHISTLE_GAP_S of another. Whistling every swing in a busy scene would smear the
    harmony (a glide sounds every pitch on its way) and wear the gag out."""
    chosen: list[float] = []
    strong = [p for p in points if p.kind == "whoosh" and p.strength >= WHISTLE_FROM]
    for point in sorted(strong, key=lambda p: (-p.strength, p.time_s)):
        if all(abs(point.time_s - t) >= WHISTLE_GAP_S for t in chosen):
            chosen.append(point.time_s)
    return frozenset(chosen)


def event_sounds(points: list[HitPoint], orchestra: Orchestra, chord_at: ChordAt,
                 rng: np.random.Generator) -> list[Note]:
    """Every note of the effects stem for these hit points (cuts are ignored here)."""
    whistles_at = whistled(points)
    notes: list[Note] = []
    impacts = [p for p in points if p.kind == "impact"]
    previous: dict[str, list[Hit]] = {}
    last_inversion = 0
    figure: SeriesFigure | None = None
    whistles = 0            # up, then down, then up: a whistle answers the one before
    for point in points:
        if point.kind == "cut":
            continue
        if point.kind == "run":
            if point.strength >= FOOTSTEPS_FROM:
                notes += footsteps(point, orchestra, rng)
            continue
        if point.kind == "impact":
            series, last = _in_series(impacts, impacts.index(point))
            if series and not last:
                if figure is None:
                    before = previous.get("contact", [])[-1:]
                    figure = SeriesFigure(rng, {layer.program for hit in before for layer in hit.layers if layer.drum})
                # uneven accents after a full first blow: a series of blows is not a click track
                accent = point.strength * (float(rng.uniform(0.7, 1.0)) if figure.count else 1.0)
                notes += figure.blow(point.time_s, accent * orchestra.hit_level, chord_at(point.time_s))
                continue
            figure = None
            big = last or (point.strength >= BIG_FROM_STRENGTH and not series)
            pool = orchestra.big_hits + orchestra.small_hits[-1:] if big else orchestra.small_hits
        else:
            pool = orchestra.sounds_for(point.kind) or orchestra.small_hits
        group = "contact" if point.kind in CONTACT_KINDS else point.kind
        hit = _choose(pool, previous.setdefault(group, []), rng)
        previous[group].append(hit)
        if point.kind == "shake" and _after_contact(point, points):
            # The blow's own drums carry the weight; the picture shaking after it only rattles,
            # so the contact, not a rumble common to every blow, is what one hears.
            hit = Hit(hit.name, tuple(layer for layer in hit.layers if layer.drum) or hit.layers, hit.register)
        # a tone of the chord other than the last blow's leads: never the same pitches twice in a row
        inversion = (last_inversion + int(rng.integers(1, 3))) % 3
        last_inversion = inversion
        if point.kind == "landing":
            notes += slide_down(point, chord_at(point.time_s), orchestra)
        if point.kind == "whoosh" and point.time_s in whistles_at:
            whistles += 1
            notes += slide_whistle(point, chord_at(point.time_s), whistles % 2 == 1, orchestra)
        notes += realise(hit, point, chord_at(point.time_s), inversion, orchestra.hit_level)
        if point.kind == "impact" and last and not any(layer.drum and layer.program == CRASH for layer in hit.layers):
            # the pay-off of a flurry lands on a crash, whatever else it is voiced with
            velocity = int(np.clip((62 + 62 * point.strength) * orchestra.hit_level, 1, 127))
            notes.append(Note(DRUMS, CRASH, point.time_s, point.time_s + 0.5, velocity, "hit:impact"))
    return notes


def _after_contact(shake: HitPoint, points: list[HitPoint]) -> bool:
    return any(p.kind in CONTACT_KINDS and 0.0 <= shake.time_s - p.time_s <= AFTERMATH_S for p in points)


def series_band(voices: tuple[int, int]) -> tuple[int, int]:
    """(lowest, highest) MIDI pitch of a flurry's figure on these two voices: where both can
    play it (notation.PLAYABLE), within SERIES_LOW .. SERIES_TOP."""
    low = max(SERIES_LOW, *(PLAYABLE.get(v, (0, 127))[0] for v in voices))
    return low, min(SERIES_TOP, *(PLAYABLE.get(v, (0, 127))[1] for v in voices))


class SeriesFigure:
    """The inside of one flurry of blows: a figure on the chord tones of the moment, one step per
    blow in one direction (turning back at the edge of the range), alternating between two tuned
    voices, each blow over a tick other than the one before. `avoid`: drum keys of the blow
    before the flurry, which its first tick does not repeat."""

    def __init__(self, rng: np.random.Generator, avoid: set[int] = frozenset()) -> None:
        self.rng = rng
        self.avoid = avoid
        self.voices = SERIES_VOICES[int(rng.integers(len(SERIES_VOICES)))]
        self.low, self.high = series_band(self.voices)
        self.direction = 1 if rng.random() < 0.7 else -1     # mostly climbing, as the tension does
        # from near the edge it leaves, so a long flurry climbs (or falls) all the way
        self.pitch = int(rng.integers(self.low, self.low + 4)) if self.direction > 0 \
            else int(rng.integers(self.high - 3, self.high + 1))
        self.count = 0
        self.last_tick = -1

    def _next_pitch(self, chord: tuple[int, int, int]) -> int:
        """The next chord tone from the last pitch, in the figure's direction."""
        tones = self._tones(chord)
        ahead = [m for m in tones if (m - self.pitch) * self.direction > 0]
        if not ahead:
            self.direction = -self.direction
            ahead = [m for m in tones if (m - self.pitch) * self.direction > 0] or tones
        return min(ahead, key=lambda m: abs(m - self.pitch))

    def _tones(self, chord: tuple[int, int, int]) -> list[int]:
        return [m for m in range(self.low, self.high + 1) if m % 12 in {pc % 12 for pc in chord}]

    def blow(self, time_s: float, strength: float, chord: tuple[int, int, int]) -> list[Note]:
        if self.count:
            self.pitch = self._next_pitch(chord)
        else:   # the first blow on the chord tone nearest where the figure starts
            self.pitch = min(self._tones(chord), key=lambda m: (abs(m - self.pitch), m), default=self.pitch)
        voice = self.voices[self.count % 2]
        # the flurry opens on a snare crack (unless the blow before it had one); after that the
        # tick changes colour at every blow
        if not self.count:
            tick = SERIES_TICKS.index(SNARE) if SNARE not in self.avoid else \
                int(self.rng.choice([k for k, key in enumerate(SERIES_TICKS) if key not in self.avoid]))
        else:
            tick = int(self.rng.choice([k for k in range(len(SERIES_TICKS)) if k != self.last_tick]))
        self.last_tick = tick
        self.count += 1
        velocity = 62 + 62 * float(np.clip(strength, 0.0, 1.0))
        tuned = Note(Part(voice, "fx"), self.pitch, time_s, time_s + 0.18, int(np.clip(velocity, 1, 127)), "hit:impact")
        under = Note(DRUMS, SERIES_TICKS[tick], time_s, time_s + 0.1, int(np.clip(velocity, 1, 127)), "hit:impact")
        return [tuned, under]


def footsteps(point: HitPoint, orchestra: Orchestra, rng: np.random.Generator) -> list[Note]:
    """Running feet over the span of a run: alternating blocks, a little uneven, as drawn feet are."""
    notes, t, k = [], point.time_s, 0
    end = min(max(point.end_s, point.time_s + 0.3), point.time_s + FOOTSTEPS_MAX_S)
    while t < end:
        key = orchestra.footsteps[k % len(orchestra.footsteps)]
        velocity = int(np.clip(55 + 45 * point.strength + rng.integers(-8, 9), 1, 127))
        notes.append(Note(DRUMS, key, t, t + 0.1, velocity, "foley:run"))
        t += STEP_S * float(rng.uniform(0.75, 1.3))
        k += 1
    return notes


def slide_down(point: HitPoint, chord: tuple[int, int, int], orchestra: Orchestra) -> list[Note]:
    """A trombone glissando falling a sixth onto the root of the harmony, ending just before the
    thud of a landing: one note, its slide drawn with pitch bend."""
    top = _pitch(chord[0], 4) + SLIDE_FALL
    start, end = max(0.0, point.time_s - SLIDE_S), point.time_s - 0.04
    if end - start <= 0.06:
        return []
    velocity = int(np.clip(50 + 40 * point.strength * orchestra.hit_level, 1, 127))
    return [Note(Part(TROMBONE, "fx"), top, start, end, velocity, "foley:slide", glide=-SLIDE_FALL)]


def slide_whistle(point: HitPoint, chord: tuple[int, int, int], rising: bool, orchestra: Orchestra) -> list[Note]:
    """A slide whistle over a strong whoosh: from a chord tone up (or down) an octave or less,
    as long as the movement lasts, at most WHISTLE_MAX_S."""
    end = point.time_s + min(max(point.end_s - point.time_s, WHISTLE_MIN_S), WHISTLE_MAX_S)
    span = 12 if end - point.time_s > 0.5 else 7
    base = _pitch(chord[1], 5) if rising else _pitch(chord[1], 5) + span
    velocity = int(np.clip(60 + 40 * point.strength * orchestra.hit_level, 1, 127))
    return [Note(Part(SLIDE_WHISTLE, "fx"), base, point.time_s, end, velocity, "foley:whistle",
                 glide=float(span if rising else -span))]
