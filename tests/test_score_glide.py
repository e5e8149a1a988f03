"""Glissandi: the trombone falls into a landing and the slide whistle over a whoosh really glide,
measured as pitch from the rendered audio, and a glide bends only its own note."""
from __future__ import annotations

import numpy as np
import pytest

from dubber.backends.score.foley import SLIDE_FALL, TROMBONE, slide_down, slide_whistle
from dubber.backends.score.hitpoints import HitPoint
from dubber.backends.score.notation import Note, Part
from dubber.backends.score.render import RENDER_RATE, load_soundfont, render_notes
from dubber.styles import STYLES

SR = RENDER_RATE
FRAME_S, HOP_S = 0.03, 0.005
ORCHESTRA = STYLES["tom-and-jerry"].orchestra
C_MAJOR = (0, 4, 7)


def pitch_track(audio: np.ndarray, start_s: float, end_s: float, low_hz: float, high_hz: float) -> np.ndarray:
    """MIDI pitch (fractional) every HOP_S in [start_s, end_s), from the autocorrelation peak of
    each FRAME_S window, refined by parabolic interpolation between lags."""
    mono = audio.mean(axis=0)
    n = int(FRAME_S * SR)
    lags = np.arange(int(SR / high_hz), int(SR / low_hz) + 1)
    out = []
    for a in range(int(start_s * SR), int(end_s * SR) - n, int(HOP_S * SR)):
        w = mono[a:a + n] * np.hanning(n)
        spectrum = np.fft.rfft(w, 2 * n)
        ac = np.fft.irfft(np.abs(spectrum) ** 2)[:lags[-1] + 2]
        k = lags[int(np.argmax(ac[lags]))]
        y0, y1, y2 = ac[k - 1], ac[k], ac[k + 1]
        shift = 0.5 * (y0 - y2) / (y0 - 2 * y1 + y2) if (y0 - 2 * y1 + y2) != 0 else 0.0
        out.append(69 + 12 * np.log2(SR / (k + shift) / 440.0))
    return np.asarray(out)


def render(notes: list[Note], seconds: float) -> np.ndarray:
    return render_notes(notes, [], load_soundfont(), int(seconds * SR), SR)


def frame_times(start_s: float, count: int) -> np.ndarray:
    return start_s + FRAME_S / 2 + HOP_S * np.arange(count)


def assert_glides(track: np.ndarray, times: np.ndarray, note: Note) -> None:
    """The measured pitch follows the straight line from the note's pitch to pitch + glide over
    the note, every step one way, passing between the semitones (a stepped scale sits on them)."""
    wanted = note.pitch + note.glide * (times - note.start_s) / (note.end_s - note.start_s)
    off = np.abs(track - wanted)
    assert np.mean(off < 0.5) >= 0.9, f"measured {np.round(track, 2)}\nwanted {np.round(wanted, 2)}"
    assert abs(track[-1] - track[0]) > 0.8 * abs(wanted[-1] - wanted[0])
    assert np.all(np.diff(track) * np.sign(note.glide) > -0.2), f"turns back: {np.round(track, 2)}"
    between = np.abs(track - np.round(track)) > 0.2
    assert between.mean() > 0.3, f"moves in steps, not a glide: {np.round(track, 2)}"


def test_the_trombone_falls_a_sixth_into_a_landing_as_one_glide():
    landing = HitPoint(0.6, "landing", 0.9, 0.64)
    notes = slide_down(landing, C_MAJOR, ORCHESTRA)
    assert len(notes) == 1 and notes[0].part.program == TROMBONE
    note = notes[0]
    audio = render(notes, 1.2)
    track = pitch_track(audio, note.start_s + 0.02, note.end_s - 0.01, 150.0, 700.0)
    assert len(track) >= 30
    assert_glides(track, frame_times(note.start_s + 0.02, len(track)), note)
    assert note.pitch - SLIDE_FALL == 60        # it lands on the root of the harmony (C4)
    # The glide holds its last pitch through the release (no jump back up as the note dies away).
    tail = pitch_track(audio, note.end_s, note.end_s + 0.07, 150.0, 700.0)
    assert np.all(np.abs(tail - (note.pitch - SLIDE_FALL)) < 0.7), np.round(tail, 2)


@pytest.mark.parametrize("rising", [True, False])
def test_the_slide_whistle_glides_over_a_whoosh_up_then_down(rising):
    whoosh = HitPoint(0.1, "whoosh", 0.8, 0.7)
    (note,) = slide_whistle(whoosh, C_MAJOR, rising, ORCHESTRA)
    assert note.start_s == whoosh.time_s and note.end_s == pytest.approx(whoosh.end_s)
    audio = render([note], 1.5)
    track = pitch_track(audio, note.start_s + 0.05, note.end_s - 0.01, 300.0, 3000.0)
    assert abs(note.glide) == 12 and (note.glide > 0) == rising
    assert_glides(track, frame_times(note.start_s + 0.05, len(track)), note)


def test_a_glide_bends_only_its_own_note():
    """A trombone chord held under a trombone glide keeps its pitch: a glide has a channel of its own."""
    held = Note(Part(TROMBONE, "fx"), 55, 0.0, 1.0, 90)
    glide = Note(Part(TROMBONE, "fx"), 72, 0.2, 0.8, 90, glide=-7.0)
    alone = render([held], 1.2)
    both = render([held, glide], 1.2)
    glide_only = render([glide], 1.2)
    residue = both - glide_only
    a = pitch_track(alone, 0.3, 0.75, 100.0, 400.0)
    b = pitch_track(residue, 0.3, 0.75, 100.0, 400.0)
    assert np.all(np.abs(a - 55) < 0.3) and np.all(np.abs(b - 55) < 0.3), np.round(b, 2)


def test_a_glide_is_refused_on_drums_and_past_the_bend_range():
    with pytest.raises(ValueError):
        Note(Part(0, "fx", drums=True), 38, 0.0, 0.2, 90, glide=2.0)
    with pytest.raises(ValueError):
        Note(Part(TROMBONE, "fx"), 60, 0.0, 0.2, 90, glide=-13.0)
