"""Soundtrack styles: the text appended to every cue prompt and the lead of the long-form instruction.

A style is plain text on purpose: it is what the text-to-audio model reads, and what a user edits
in a saved plan. The instruction lead follows the wording of AudioStory's dubbing example
("Generate a classic Tom and Jerry style soundtrack for a moment in the cartoon that includes ...").
"""
from __future__ import annotations

from dataclasses import dataclass

DEFAULT_STYLE = "tom-and-jerry"


@dataclass(frozen=True)
class Style:
    """One named style: `prompt` is appended to each cue's caption, `lead` opens the instruction."""

    name: str
    prompt: str
    lead: str


STYLES: dict[str, Style] = {
    s.name: s
    for s in (
        Style(
            "tom-and-jerry",
            "Classic orchestral cartoon score in the style of Tom and Jerry: brisk strings, "
            "woodwinds and brass that mickey-mouse every movement, pizzicato sneaking, "
            "xylophone runs, slide-whistle whooshes and slapstick crashes, bonks and boings.",
            "Generate a classic Tom and Jerry style soundtrack for a moment in the cartoon that includes",
        ),
        Style(
            "nature",
            "Nature-documentary score: gentle marimba and soft flute-like pads, unhurried, over a "
            "natural soundscape of birdsong, wind, rustling leaves, water and animal sounds.",
            "Generate a nature-documentary soundtrack with gentle music and natural ambience for a film that includes",
        ),
        Style(
            "sci-fi",
            "Science-fiction sound design: deep synthesizer drones, pulsing electronic score, "
            "servo motors, laser zaps, energy hums and spacious metallic reverb.",
            "Generate a science-fiction soundtrack with synthesizer score and futuristic sound effects for a film that includes",
        ),
        Style(
            "silent-film",
            "Silent-film accompaniment: a lone upright piano improvising in 1920s style, "
            "ragtime for chases, tremolo for danger, light percussive accents on the action.",
            "Generate a 1920s silent-film piano accompaniment for a film that includes",
        ),
        Style(
            "noir",
            "Film-noir score: smoky muted trumpet, walking upright bass, brushed drums, "
            "rain on the street, distant sirens and footsteps echoing in alleys.",
            "Generate a film-noir jazz soundtrack with city ambience for a film that includes",
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
