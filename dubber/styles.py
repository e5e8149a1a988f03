"""Soundtrack styles: the text appended to every cue prompt and the lead of the long-form instruction.

A style is plain text on purpose: it is what the text-to-audio model reads, and what a user edits
in a saved plan. The instruction lead follows the wording of AudioStory's dubbing example
("Generate a classic Tom and Jerry style soundtrack for a moment in the cartoon that includes ...").

Each style also carries its `Orchestra`: the General MIDI instruments and idioms the score engine
writes for (tempo range, metre, modes, which instrument plays the tune, the bass, the harmony, the
runs, and which sounds answer each kind of visual event). Styles are data: the composer reads
these tables and has no branch per style.
"""
from __future__ import annotations

from dataclasses import dataclass

DEFAULT_STYLE = "tom-and-jerry"


# A hit is a few layers sounding together. A layer is a General MIDI program (0-based) or, with
# `drum`, a key of the GM percussion map; `voicing` picks its pitches from the harmony of the
# moment ("chord", "root", "fifth", "top" or "fixed" for drums and effects).
@dataclass(frozen=True)
class Layer:
    program: int
    voicing: str = "root"
    octave: int = 4          # register of a pitched layer (MIDI octave, 4 = middle C's)
    length_s: float = 0.25   # how long the note is held
    level: float = 1.0       # velocity scale
    drum: bool = False


@dataclass(frozen=True)
class Hit:
    """A named hit. `register` ("low", "mid", "high") is where its energy lies: two impacts in a
    row never share a register, which keeps their spectra apart."""

    name: str
    layers: tuple[Layer, ...]
    register: str = "mid"


def _drum(key: int, level: float = 1.0, length_s: float = 0.2) -> Layer:
    return Layer(key, "fixed", 0, length_s, level, drum=True)


# GM percussion keys used below. Pitched drums (timpani, taiko, melodic tom) are preferred to the
# kit's kick and toms: they follow the harmony, so hits do not all share one pitch colour.
SIDE_STICK, SNARE, CRASH, SPLASH, CHINA = 37, 38, 49, 55, 52
HI_WOOD, LOW_WOOD, TRIANGLE, VIBRASLAP, CLAVES, GUIRO, SHORT_GUIRO, CABASA = 76, 77, 81, 58, 75, 74, 73, 69
# GM programs (0-based).
ORCH_HIT, TIMPANI, BRASS, TROMBONE, TUBA, PIZZICATO, XYLOPHONE, GLOCKENSPIEL = 55, 47, 61, 57, 58, 45, 13, 9
TAIKO, MELODIC_TOM, SEASHORE, BREATH, TREMOLO, CELESTA = 116, 117, 122, 121, 44, 8
TRUMPET, HORNS, PICCOLO = 56, 60, 72
KICK, BASS_DRUM, CLOSED_HAT, TAMBOURINE, COWBELL, RIDE_BELL = 35, 36, 42, 54, 56, 53
PIANO, HONKY_TONK, VIBRAPHONE, MARIMBA, UPRIGHT_BASS, HARP, MUTED_TRUMPET, TENOR_SAX = 0, 3, 11, 12, 32, 46, 59, 66
SYNTH_BASS, SYNTH_BRASS, SQUARE_LEAD, SAW_LEAD, CRYSTAL, SCI_FI, KALIMBA, WOODBLOCK, SYNTH_DRUM = \
    38, 62, 80, 81, 98, 103, 108, 115, 118

# Big hits answer strong impacts; small ones weak impacts and the inside of a fast series.
BIG_HITS: tuple[Hit, ...] = (
    # The bank's orchestra-hit sample keeps one low thump whatever its pitch: one of them on top,
    # the horns carry the chord.
    Hit("orchestra hit", (Layer(ORCH_HIT, "top", 4, 0.35), Layer(HORNS, "chord", 4, 0.3, 0.8), _drum(CRASH, 0.35, 0.4), Layer(TIMPANI, "root", 2, 0.6)), "low"),
    Hit("brass stab", (Layer(BRASS, "chord", 4, 0.3), _drum(SNARE), Layer(TIMPANI, "root", 2, 0.3, 0.9))),
    Hit("timpani and tuba", (Layer(TIMPANI, "root", 2, 0.8), Layer(TUBA, "fifth", 2, 0.3, 0.9), Layer(TAIKO, "fixed", 3, 0.3, 0.8)), "low"),
    Hit("taiko boom", (Layer(TAIKO, "fixed", 3, 0.6), Layer(TUBA, "root", 2, 0.3, 0.9), _drum(SPLASH, 0.5)), "low"),
    # (brass speaks slowly: the wood gives the blow its edge)
    Hit("low brass bonk", (Layer(TROMBONE, "fifth", 3, 0.25), Layer(MELODIC_TOM, "fixed", 3, 0.2), Layer(BRASS, "top", 4, 0.2, 0.7),
                           _drum(LOW_WOOD, 0.9))),
    # Bright pay-offs: not every big blow needs a drum under it, and a run of low booms blurs.
    Hit("trumpet stab", (Layer(TRUMPET, "chord", 5, 0.25), _drum(CRASH, 0.5, 0.5), Layer(GLOCKENSPIEL, "top", 6, 0.4, 0.8)), "high"),
    Hit("xylophone smash", (Layer(XYLOPHONE, "chord", 5, 0.2), _drum(SPLASH, 0.7, 0.5), _drum(SNARE, 0.8)), "high"),
)
SMALL_HITS: tuple[Hit, ...] = (
    Hit("wood block", (_drum(HI_WOOD), Layer(PIZZICATO, "top", 5, 0.15, 0.8)), "high"),
    Hit("snare crack", (_drum(SNARE), _drum(SIDE_STICK, 0.7))),
    Hit("tom thump", (Layer(MELODIC_TOM, "fixed", 4, 0.2), Layer(MELODIC_TOM, "fixed", 3, 0.2, 0.8))),
    Hit("xylophone plink", (Layer(XYLOPHONE, "top", 5, 0.15), _drum(CLAVES, 0.7)), "high"),
    Hit("low wood knock", (_drum(LOW_WOOD), Layer(PIZZICATO, "root", 3, 0.15, 0.8))),
    Hit("taiko and stick", (Layer(TAIKO, "fixed", 3, 0.2), _drum(SIDE_STICK)), "low"),
)
# The other styles answer blows in their own band's voice: an orchestra hit over a lone piano
# jumps out of the picture's world (and out of its level: the bank's piano sits some 10 dB under
# its brass and drums).
# A 1920s cinema pianist with the theatre's trap drummer: low-register slams, bass drum and
# cymbal, rim shots; blocks, cowbell and a struck treble for the small blows.
SILENT_FILM_BIG_HITS: tuple[Hit, ...] = (
    Hit("piano slam", (Layer(PIANO, "chord", 2, 0.4), Layer(PIANO, "root", 1, 0.5), _drum(BASS_DRUM, 0.7)), "low"),
    Hit("drum and cymbal", (_drum(BASS_DRUM), _drum(CRASH, 0.8, 0.6), Layer(PIANO, "root", 2, 0.3, 0.7)), "low"),
    Hit("rim shot", (_drum(SNARE), _drum(SIDE_STICK, 0.8), Layer(PIANO, "chord", 4, 0.25, 0.8))),
    Hit("treble crash", (Layer(HONKY_TONK, "chord", 5, 0.3, 0.8), _drum(SPLASH, 0.8, 0.5), _drum(SNARE, 0.6)), "high"),
)
SILENT_FILM_SMALL_HITS: tuple[Hit, ...] = (
    Hit("wood block", (_drum(HI_WOOD, 1.1), Layer(PIANO, "top", 5, 0.15, 0.9)), "high"),
    Hit("snare tap", (_drum(SNARE), Layer(PIANO, "root", 3, 0.15, 0.8))),
    Hit("cowbell", (_drum(COWBELL, 1.1), _drum(SIDE_STICK, 0.6)), "high"),
    Hit("low block", (_drum(LOW_WOOD), Layer(PIANO, "fifth", 2, 0.2, 0.7)), "low"),
)
# A small jazz band in a smoky room: a drummer's kick and cymbal, a muted trumpet's or a
# trombone's blat, the vibes; side stick, hi-hat and a slapped bass for the small blows.
NOIR_BIG_HITS: tuple[Hit, ...] = (
    Hit("kick and cymbal", (_drum(KICK), _drum(CRASH, 0.7, 0.8), Layer(UPRIGHT_BASS, "root", 2, 0.3, 0.8)), "low"),
    Hit("muted stab", (Layer(MUTED_TRUMPET, "chord", 4, 0.25), _drum(SNARE, 0.9))),
    Hit("trombone blat", (Layer(TROMBONE, "fifth", 3, 0.3), Layer(TENOR_SAX, "root", 3, 0.25), _drum(BASS_DRUM)), "low"),
    Hit("vibes and splash", (Layer(VIBRAPHONE, "chord", 5, 0.4, 0.7), _drum(SPLASH, 0.8, 0.6), _drum(SIDE_STICK, 0.7)), "high"),
)
NOIR_SMALL_HITS: tuple[Hit, ...] = (
    Hit("side stick", (_drum(SIDE_STICK, 1.1), _drum(CLOSED_HAT, 0.8), _drum(CLAVES, 0.6)), "high"),
    Hit("bass slap", (Layer(UPRIGHT_BASS, "root", 2, 0.2, 0.7), _drum(SNARE, 0.5)), "low"),
    Hit("ride bell", (_drum(RIDE_BELL, 1.0, 0.4), Layer(VIBRAPHONE, "top", 5, 0.15, 0.65)), "high"),
    Hit("brush tap", (_drum(SNARE, 0.85), _drum(TAMBOURINE, 0.7))),
)
# Electronics: synth drums and stabs, a sub-bass drop, metallic zaps and blips.
SCI_FI_BIG_HITS: tuple[Hit, ...] = (
    Hit("synth stab", (Layer(SYNTH_BRASS, "chord", 4, 0.3, 0.75), Layer(SYNTH_DRUM, "fixed", 3, 0.4), _drum(CRASH, 0.5, 0.6))),
    Hit("sub drop", (Layer(SYNTH_BASS, "root", 1, 0.5, 0.7), Layer(SYNTH_DRUM, "fixed", 2, 0.5), _drum(KICK, 0.8)), "low"),
    Hit("zap", (Layer(SAW_LEAD, "top", 5, 0.2), Layer(SCI_FI, "fixed", 4, 0.5, 0.7), _drum(SNARE, 0.7)), "high"),
    Hit("impact", (Layer(ORCH_HIT, "top", 3, 0.3), Layer(SYNTH_BASS, "root", 2, 0.3), Layer(TAIKO, "fixed", 3, 0.4, 1.0)), "low"),
)
SCI_FI_SMALL_HITS: tuple[Hit, ...] = (
    Hit("blip", (Layer(SQUARE_LEAD, "top", 6, 0.1), _drum(CLAVES, 0.6)), "high"),
    Hit("synth tom", (Layer(SYNTH_DRUM, "fixed", 4, 0.2),)),
    Hit("crystal ping", (Layer(CRYSTAL, "top", 6, 0.3, 1.1), _drum(SIDE_STICK, 0.6)), "high"),
    Hit("low thump", (Layer(SYNTH_BASS, "root", 2, 0.15), _drum(KICK, 0.7)), "low"),
)
# Wood and skin, softly: marimba, kalimba, harp, log drum and a padded timpani.
NATURE_BIG_HITS: tuple[Hit, ...] = (
    Hit("soft timpani", (Layer(TIMPANI, "root", 2, 0.6), Layer(MARIMBA, "chord", 4, 0.3, 0.8)), "low"),
    Hit("log drum", (Layer(TAIKO, "fixed", 3, 0.4), Layer(HARP, "root", 3, 0.4, 0.8))),
    Hit("marimba chord", (Layer(MARIMBA, "chord", 5, 0.3), _drum(LOW_WOOD, 0.8)), "high"),
)
NATURE_SMALL_HITS: tuple[Hit, ...] = (
    Hit("kalimba", (Layer(KALIMBA, "top", 5, 0.2),), "high"),
    Hit("wood knock", (Layer(WOODBLOCK, "fixed", 4, 0.15, 1.2), _drum(CLAVES, 0.6))),
    Hit("harp pluck", (Layer(HARP, "root", 3, 0.3), _drum(LOW_WOOD, 0.6)), "low"),
)
# Sounds by event kind, beyond the hits; the foley layer that music does not do.
KIND_SOUNDS: dict[str, tuple[Hit, ...]] = {
    # Landings share one history with impacts (a fall after a blow must not sound like it), so
    # no instrument runs through all of them.
    "landing": (Hit("thud", (Layer(TAIKO, "fixed", 2, 0.4), Layer(TIMPANI, "root", 2, 0.5), Layer(MELODIC_TOM, "fixed", 3, 0.2, 0.9)),
                    "low"),
                Hit("crash landing", (_drum(CRASH, 0.7, 0.6), Layer(TUBA, "root", 2, 0.3), _drum(SNARE, 0.8)), "high"),
                Hit("flump", (Layer(PIZZICATO, "fifth", 4, 0.2), _drum(LOW_WOOD, 0.9), Layer(MELODIC_TOM, "fixed", 4, 0.2, 0.7)))),
    # A whoosh speaks on its first frame: a scraped or shaken attack, then air.
    "whoosh": (Hit("swish", (_drum(SHORT_GUIRO, 1.0, 0.2), Layer(BREATH, "fixed", 5, 0.5, 0.9))),
               Hit("air", (_drum(CABASA, 1.0, 0.2), Layer(PICCOLO, "top", 6, 0.3, 0.7))),
               Hit("zip", (Layer(PIZZICATO, "top", 6, 0.1), Layer(BREATH, "fixed", 6, 0.4, 1.0)))),
    # (the default bank's surf is silent above D6, its reverse cymbal below C#7 and its whistle above F#5)
    "splash": (Hit("splash", (Layer(SEASHORE, "fixed", 4, 0.8), _drum(SPLASH, 0.9, 0.8), Layer(MELODIC_TOM, "fixed", 5, 0.2, 0.8))),
               Hit("spray", (Layer(SEASHORE, "fixed", 5, 0.6), _drum(SPLASH, 1.0, 0.8), _drum(TRIANGLE, 0.8)))),
    "explosion": (Hit("blast", (Layer(TIMPANI, "root", 2, 1.2), _drum(CRASH, 1.0, 1.5), Layer(TAIKO, "fixed", 3, 0.8),
                                Layer(ORCH_HIT, "chord", 3, 0.4))),
                  Hit("boom", (Layer(TAIKO, "fixed", 2, 0.6), _drum(CHINA, 1.0, 1.5), Layer(TUBA, "root", 1, 0.6),
                               Layer(BRASS, "chord", 3, 0.4)))),
    "flash": (Hit("sparkle", (Layer(GLOCKENSPIEL, "chord", 6, 0.5, 0.9), _drum(TRIANGLE, 0.9, 0.6))),
              Hit("zing", (Layer(CELESTA, "chord", 6, 0.5), _drum(VIBRASLAP, 0.8, 0.5)))),
    "shake": (Hit("rumble", (Layer(TIMPANI, "root", 2, 0.9), _drum(VIBRASLAP, 0.9, 0.6))),
              Hit("rattle", (Layer(TAIKO, "fixed", 3, 0.5), _drum(GUIRO, 0.9, 0.5)))),
}


@dataclass(frozen=True)
class Orchestra:
    """How the score engine writes for one style. Programs are General MIDI, 0-based."""

    tempo_bpm: tuple[float, float]      # calm shots near the first, busy ones near the second
    meter: int                          # beats per bar
    modes: tuple[str, ...]              # scale names from dubber.backends.score.compose.MODES
    roots: tuple[int, ...]              # pitch classes a score may start in
    modulations: tuple[int, ...]        # semitone moves of the key at a cut
    melody: tuple[int, ...]             # the tune passes between these, shot by shot
    busy_melody: tuple[int, ...]        # ... or these when the shot is busy
    bass: tuple[int, ...]
    harmony: tuple[int, ...]            # sustained chords (never a sync point: slow attacks)
    runs: tuple[int, ...]               # scurrying runs over fast motion and runs
    footsteps: tuple[int, ...]          # GM percussion keys for running feet
    suspense: int                       # tremolo under shakes and quiet tense shots
    notes_per_beat: tuple[float, float] # tune density wanted, calm .. busy: a sparse shot hears the motif
                                        # augmented more often, a busy one diminished
    room: tuple[int, int]               # reverb send range (0-127), one room per shot
    hit_level: float = 1.0              # loudness of the event sounds against the music
    big_hits: tuple[Hit, ...] = BIG_HITS        # strong blows
    small_hits: tuple[Hit, ...] = SMALL_HITS    # weak blows (and the quiet end of the big pool)
    kind_sounds: tuple[tuple[str, tuple[Hit, ...]], ...] = ()   # per-style extras over KIND_SOUNDS
    rubato: float = 0.12                # how far the tempo pulls and pushes within a span (fraction)

    def sounds_for(self, kind: str) -> tuple[Hit, ...]:
        extra = dict(self.kind_sounds).get(kind, ())
        return extra + KIND_SOUNDS.get(kind, ())


@dataclass(frozen=True)
class Style:
    """One named style: `prompt` is appended to each cue's caption, `lead` opens the instruction,
    `orchestra` is what the score engine writes for."""

    name: str
    prompt: str
    lead: str
    orchestra: Orchestra


STYLES: dict[str, Style] = {
    s.name: s
    for s in (
        Style(
            "tom-and-jerry",
            "Classic orchestral cartoon score in the style of Tom and Jerry: brisk strings, "
            "woodwinds and brass that mickey-mouse every movement, pizzicato sneaking, "
            "xylophone runs, slide-whistle whooshes and slapstick crashes, bonks and boings.",
            "Generate a classic Tom and Jerry style soundtrack for a moment in the cartoon that includes",
            # The tune goes to violins, clarinet, recorder and muted trumpet (xylophone when
            # busy): instruments whose held notes hold steady. The default bank's flute, oboe
            # and piccolo samples carry a deep recorded vibrato (5 Hz, the oboe's 14 dB deep),
            # as does its open trumpet from D5 up, and an onset detector hears its every swell
            # as a new note: 2-7 onsets a second of held tune that no note starts, enough to put
            # a random instant within 0.1 s of an onset 36 % of the time on a calm clip, not 21 %.
            Orchestra((96.0, 140.0), 4, ("major", "major", "mixolydian", "minor"), (0, 2, 5, 7, 10),
                      (3, 4, -3, -4, 2, -2, 1, 6), (40, 71, 74, 59), (13, 74, 40), (45, 58, 43),
                      (48, 60), (13, 9, 72), (HI_WOOD, LOW_WOOD), TREMOLO, (0.35, 0.8), (30, 70)),
        ),
        Style(
            "nature",
            "Nature-documentary score: gentle marimba and soft flute-like pads, unhurried, over a "
            "natural soundscape of birdsong, wind, rustling leaves, water and animal sounds.",
            "Generate a nature-documentary soundtrack with gentle music and natural ambience for a film that includes",
            Orchestra((66.0, 100.0), 3, ("major", "lydian", "pentatonic"), (0, 2, 4, 7, 9),
                      (3, 4, -3, 2, -4), (73, 68, 71, 46), (12, 73), (42, 32), (48, 89), (46, 12, 8),
                      (CLAVES, LOW_WOOD), TREMOLO, (0.35, 0.8), (50, 95), hit_level=0.9,
                      big_hits=NATURE_BIG_HITS, small_hits=NATURE_SMALL_HITS,
                      kind_sounds=(("flash", (Hit("birds", (Layer(123, "fixed", 6, 0.5),)),)),)),
        ),
        Style(
            "sci-fi",
            "Science-fiction sound design: deep synthesizer drones, pulsing electronic score, "
            "servo motors, laser zaps, energy hums and spacious metallic reverb.",
            "Generate a science-fiction soundtrack with synthesizer score and futuristic sound effects for a film that includes",
            Orchestra((80.0, 128.0), 4, ("minor", "phrygian", "whole-tone"), (1, 4, 6, 9, 11),
                      (6, 3, -4, 1, -3), (80, 98, 11), (81, 98), (38, 39), (89, 94, 50), (98, 11, 8),
                      (CLAVES, HI_WOOD), 50, (0.35, 0.85), (60, 110), hit_level=0.8,
                      big_hits=SCI_FI_BIG_HITS, small_hits=SCI_FI_SMALL_HITS,
                      kind_sounds=(("flash", (Hit("laser", (Layer(103, "fixed", 6, 0.4), Layer(80, "top", 6, 0.2))),)),)),
        ),
        Style(
            "silent-film",
            "Silent-film accompaniment: a lone upright piano improvising in 1920s style, "
            "ragtime for chases, tremolo for danger, light percussive accents on the action.",
            "Generate a 1920s silent-film piano accompaniment for a film that includes",
            Orchestra((90.0, 150.0), 2, ("major", "minor", "major"), (0, 5, 7, 10, 3),
                      (3, -3, 4, 2, -4), (0, 0, 19), (0,), (0,), (0, 19), (0,),
                      (HI_WOOD, LOW_WOOD), 0, (0.4, 0.9), (15, 40), hit_level=0.7,
                      big_hits=SILENT_FILM_BIG_HITS, small_hits=SILENT_FILM_SMALL_HITS,
                      # A lone pianist follows the picture, not a click track: at the studio
                      # orchestra's 0.12 the beats of a long calm clip's shots lined up, and its
                      # onset curve peaked at the beat (over 0.18 in 1 render of 5; tests/test_score_piano.py)
                      rubato=0.2),
        ),
        Style(
            "noir",
            "Film-noir score: smoky muted trumpet, walking upright bass, brushed drums, "
            "rain on the street, distant sirens and footsteps echoing in alleys.",
            "Generate a film-noir jazz soundtrack with city ambience for a film that includes",
            Orchestra((70.0, 112.0), 4, ("dorian", "minor", "blues"), (2, 4, 7, 9),
                      (3, -2, 4, -3, 1), (59, 65, 66), (59, 56), (32,), (0, 11, 48), (11, 0),
                      (SIDE_STICK, CLAVES), TREMOLO, (0.4, 1.0), (55, 100), hit_level=0.85,
                      big_hits=NOIR_BIG_HITS, small_hits=NOIR_SMALL_HITS),
        ),
    )
}

# The contract name: style name -> prompt text appended to every cue.
STYLE_PRESETS: dict[str, str] = {name: style.prompt for name, style in STYLES.items()}


def available_styles() -> tuple[str, ...]:
    return tuple(STYLES)


def get_style(name: str) -> Style:
    """The style called `name`.

    Raises:
        ValueError: unknown name; the message lists the valid ones.
    """
    try:
        return STYLES[name]
    except KeyError:
        valid = ", ".join(STYLES)
        raise ValueError(f"unknown style {name!r}; choose one of: {valid}") from None
