"""The cartoon sound-event vocabulary that every captioner tags shots with.

One table, shared by the rule-based `motion` captioner (which picks tags by rule), the `clip`
captioner (which scores every entry zero-shot against a shot's keyframes) and the `vlm`
captioner (which finds entries named in its free-text caption). Downstream, the planner and
the score engine read the tag names, so names are stable identifiers: lower case, words
separated by single spaces.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

FAMILIES = ("movement", "impact", "music", "creature", "weather", "effect")


@dataclass(frozen=True)
class SoundTag:
    """One entry of the vocabulary.

    Attributes:
        name: the stable tag name ("door slam").
        family: one of FAMILIES, for renderers that group sounds.
        sight: what the sound looks like on screen; zero-shot image models match pictures, not
            sounds, so their text prompt describes this.
        phrase: how a caption says the sound ("a door slamming shut").
        keywords: word stems that mean this sound when they appear in free text.
    """

    name: str
    family: str
    sight: str
    phrase: str
    keywords: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"tag {self.name!r}: family {self.family!r} not in {FAMILIES}")


def _tag(name: str, family: str, sight: str, phrase: str, *keywords: str) -> SoundTag:
    return SoundTag(name, family, sight, phrase, keywords or (name,))


VOCABULARY: tuple[SoundTag, ...] = (
    # movement
    _tag("footsteps", "movement", "a character walking along", "pattering footsteps",
         "footstep", "walk", "stroll", "step"),
    _tag("tiptoe", "movement", "a character sneaking on tiptoe", "sneaky tiptoeing",
         "tiptoe", "sneak", "creep"),
    _tag("running", "movement", "a character running fast with legs spinning", "scrambling, running feet",
         "run", "chase", "sprint", "dash", "flee"),
    _tag("whoosh", "movement", "something flying fast past the camera with speed lines", "a fast whoosh",
         "whoosh", "swoosh", "fly", "swing", "zoom"),
    _tag("zip", "movement", "a character vanishing in a puff of dust", "a zip-away exit",
         "zip", "vanish", "disappear"),
    _tag("slide whistle", "movement", "a character falling from a great height", "a falling slide whistle",
         "fall", "drop", "plummet", "slide whistle"),
    _tag("skid", "movement", "a character braking hard with heels dug in", "a screeching skid",
         "skid", "brake", "screech to a halt"),
    # impacts
    _tag("crash", "impact", "things smashing together in a heap", "a loud crash",
         "crash", "smash", "collide", "collision", "wreck"),
    _tag("bonk", "impact", "a character hit on the head with a lump", "a comic bonk",
         "bonk", "hit", "whack", "bop", "knock"),
    _tag("thud", "impact", "a heavy object landing on the floor", "a heavy thud",
         "thud", "lands", "landing", "landed", "thump"),
    _tag("door slam", "impact", "a door slamming shut", "a door slamming shut",
         "door", "slam"),
    _tag("glass breaking", "impact", "a window shattering into pieces", "glass shattering",
         "glass", "shatter", "window break"),
    _tag("explosion", "impact", "a big cartoon explosion with smoke", "a booming explosion",
         "explo", "blast", "dynamite", "bomb", "kaboom"),
    _tag("punch", "impact", "a fist punching a character", "a punchy smack",
         "punch", "smack", "slap"),
    _tag("splash", "impact", "a character falling into water with a splash", "a big splash",
         "splash", "water", "swim", "dive", "pool", "lake"),
    _tag("boing", "impact", "a character bouncing on a spring", "a springy boing",
         "boing", "bounc", "spring", "jump", "hops ", "hopping"),
    _tag("pop", "impact", "a balloon popping", "a quick pop",
         "pop ", "pops ", "popping", "popped", "balloon", "bubble", "cork"),
    _tag("clang", "impact", "a frying pan hitting a head", "a metallic clang",
         "clang", "frying pan", "pan ", "metal", "bell ", "bells", "anvil"),
    # music
    _tag("piano", "music", "a character playing the piano", "a bouncy piano tune",
         "piano", "keys"),
    _tag("pizzicato", "music", "a character sneaking carefully in the dark", "plucked pizzicato strings",
         "pizzicato", "pluck", "strings"),
    _tag("fanfare", "music", "a triumphant character taking a bow", "a brassy fanfare",
         "fanfare", "trumpet", "triumph", "victory", "celebrat"),
    _tag("drum roll", "music", "a tense moment before a stunt", "a tense drum roll",
         "drum", "suspense", "tense"),
    _tag("harp glissando", "music", "a dreamy sparkling transition", "a dreamy harp glissando",
         "harp", "dream", "float"),
    # creatures
    _tag("cat screech", "creature", "a cat screeching with its fur standing up", "a screeching cat",
         "cat ", "cats ", "kitten", "screech", "yowl", "hiss"),
    _tag("dog bark", "creature", "a dog barking", "a barking dog",
         "dog", "bark", "growl", "bulldog"),
    _tag("mouse squeak", "creature", "a small mouse scurrying", "a tiny mouse squeak",
         "mouse", "squeak", "scurry"),
    _tag("bird chirp", "creature", "birds singing in a tree", "chirping birds",
         "bird", "chirp", "tweet"),
    _tag("snoring", "creature", "a character asleep in bed", "loud snoring",
         "snor", "sleep", "asleep", "nap ", "naps", "napping"),
    # weather and places
    _tag("rain", "weather", "rain pouring down", "pattering rain",
         "rain ", "rains ", "rainy", "raining", "storm", "drizzle"),
    _tag("wind", "weather", "wind blowing leaves around", "howling wind",
         "wind ", "winds ", "windy", "gust", "breeze"),
    _tag("thunder", "weather", "lightning in a dark stormy sky", "rolling thunder",
         "thunder", "lightning"),
    _tag("clock ticking", "effect", "a clock on the wall", "a ticking clock",
         "clock", "ticking", "ticks", "tick tock"),
    _tag("fire crackle", "effect", "a fire burning", "crackling fire",
         "fire", "flame", "burn", "crackl"),
    # effects
    _tag("zing", "effect", "a bright flash of light", "a bright zing",
         "zing", "flash", "gleam", "shine"),
    _tag("twinkle", "effect", "sparkles and twinkling stars", "a magical twinkle",
         "twinkl", "sparkl", "magic", "stars", "starry"),
    _tag("sizzle", "effect", "food frying in a pan", "a hot sizzle", "sizzl", "fry", "cook"),
    _tag("gulp", "effect", "a nervous character gulping", "a nervous gulp",
         "gulp", "swallow", "nervous"),
    _tag("ricochet", "effect", "an object bouncing wildly off the walls", "a ricocheting ping",
         "ricochet", "ping", "deflect"),
)

TAGS: dict[str, SoundTag] = {t.name: t for t in VOCABULARY}
TAG_NAMES: tuple[str, ...] = tuple(TAGS)

assert len(TAGS) == len(VOCABULARY), "duplicate tag names in the vocabulary"


def tag(name: str) -> SoundTag:
    """The vocabulary entry called `name`.

    Raises:
        ValueError: `name` is not in the vocabulary (the message lists the valid names).
    """
    try:
        return TAGS[name]
    except KeyError:
        raise ValueError(f"Unknown sound tag {name!r}; valid tags: {', '.join(TAG_NAMES)}.") from None


def tags_in_text(text: str) -> tuple[str, ...]:
    """Vocabulary tags named in `text`, in vocabulary order.

    A keyword matches the start of a word ("bounc" finds "bouncing"); a keyword ending in a
    space must match a whole word ("cat " finds "cat" but not "catch").
    """
    words = " " + re.sub(r"[^a-z]+", " ", text.lower()) + " "
    return tuple(t.name for t in VOCABULARY if any(f" {k}" in words for k in t.keywords))


def join_phrases(phrases: list[str] | tuple[str, ...]) -> str:
    """"a", "b", "c" -> "a, b and c"."""
    items = [p for p in phrases if p]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]
