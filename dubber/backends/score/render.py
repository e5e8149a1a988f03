"""The edge of the score engine: notes -> Standard MIDI File -> SoundFont synthesizer -> audio.

The synthesizer is `midirenderer` (rustysynth inside; renders SMF bytes with an SF2 bank to a
48 kHz stereo 16-bit WAV). The default bank is TimGM6mb, the General MIDI SoundFont shipped in
the `pretty_midi` wheel; `--soundfont PATH` takes any other SF2.

Timing: the file uses one fixed MIDI tempo, 120 bpm at 960 ticks per beat, so one tick is
1/1920 s (25 samples at 48 kHz) and a note's tick is its time rounded to 0.26 ms. The musical
tempo map lives in the note times themselves. The synthesizer stops at the last event, so every
file ends with a silent controller event TAIL_S after the last note, letting releases ring out.
Scores are rendered in stretches of notes (by start time) and overlap-added into a track on disk
(dubber.media.tracks), so memory does not grow with the film: a stretch ends where every note
so far has been silent for TAIL_S, or after CHUNK_S of note starts. The synthesizer's time costs
as much for silence as for sound (its reverb and chorus run on), so an effects track, silent
between its hits, is rendered only where they ring, and no stretch runs past the film's end.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.util
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ...errors import InputError
from ...media.tracks import Track, new_track
from .notation import BEND_RANGE, Note, Room

TICKS_PER_BEAT = 960
MIDI_TEMPO_US = 500_000                 # microseconds per MIDI beat (120 bpm)
TICKS_PER_S = TICKS_PER_BEAT * 1_000_000 / MIDI_TEMPO_US
RENDER_RATE = 48_000                    # Hz, fixed by the synthesizer
TAIL_S = 3.0                            # s rendered after the last note ends
CHUNK_S = 60.0                          # s of note starts per synthesizer call, at most
# Stretches start on this grid, where MIDI ticks (1,920 a second) and the synthesizer's blocks of
# 64 samples (it applies MIDI events at their starts) both fall: a note keeps the block grid it
# has in one render of the whole film. (An event exactly on a block's start speaks on that block
# or the next as the synthesizer's own clock rounds, in any render: 1.3 ms either way.)
STRETCH_GRID_S = 1 / 30
DRUM_CHANNEL = 9
CHANNEL_VOLUME = 96                     # CC7 for every channel: headroom against the synth's hard clip
BEND_STEP_S = 0.01                      # s between pitch-bend messages along a glide
BEND_CENTRE = 8192
DEFAULT_BANK = "TimGM6mb.sf2"
# Banks known by their bytes, so a renamed copy keeps its true licence (SHA-256 -> licence).
LICENCES_BY_SHA256 = {
    # TimGM6mb.sf2 (Tim Brechbill) as shipped in the pretty_midi 0.2.11 wheel, 5,994,284 bytes
    "82475b91a76de15cb28a104707d3247ba932e228bada3f47bba63c6b31aaf7a1": "GPL-2.0",
}
# Banks a user is likely to pass whose bytes differ between releases, so only their file name
# (lower case) can hint at the licence; such a licence is shown as a guess.
LICENCES_BY_NAME = {
    "timgm6mb.sf2": "GPL-2.0",              # Tim Brechbill's TimGM6mb, shipped in the pretty_midi wheel
    "fluidr3_gm.sf2": "MIT",                # Frank Wen's FluidR3_GM (Debian fluid-soundfont-gm)
    "musescore_general.sf2": "MIT",         # S. Christian Collins's MuseScore General
    "musescore_general.sf3": "MIT",
}
UNKNOWN_LICENCE = "unknown (see the bank's own notice)"
# The top-level LIST chunks of an SF2 file (SoundFont 2.04 spec, section 4): its INFO, its
# sample data and its preset data; the synthesizer needs all three.
SF2_LISTS = ("INFO", "sdta", "pdta")
RIFF_HEADER_BYTES = 12                  # "RIFF", form size, "sfbk"
CHUNK_HEADER_BYTES = 8                  # chunk id, chunk size


class SoundFontError(InputError, ValueError):
    """The SoundFont bank cannot be found, read or played: a user error, said in one sentence."""


@dataclass(frozen=True)
class SoundFont:
    path: str
    name: str
    licence: str
    data: bytes
    sha256: str

    def describe(self) -> str:
        return f"{self.name}, licence {self.licence}"

    def facts(self) -> dict[str, str]:
        """What the manifest records of the bank: enough to find and verify the very file."""
        return {"name": self.name, "licence": self.licence, "path": self.path, "sha256": self.sha256}


def default_soundfont_path() -> Path:
    """Where the default bank (TimGM6mb, from the pretty_midi wheel) is, found without importing
    pretty_midi.

    Raises:
        SoundFontError: pretty_midi is not installed.
    """
    spec = importlib.util.find_spec("pretty_midi")
    if spec is None or not spec.submodule_search_locations:
        raise SoundFontError("The default SoundFont comes with the pretty_midi package, which is missing; "
                             "reinstall dubber (pip install -e .) or pass --soundfont PATH.")
    return Path(next(iter(spec.submodule_search_locations))) / DEFAULT_BANK


def licence_of(name: str, sha256: str) -> str:
    """The bank's licence: certain for a bank known by its bytes, a guess marked as one for a bank
    known only by its file name, else unknown."""
    if sha256 in LICENCES_BY_SHA256:
        return LICENCES_BY_SHA256[sha256]
    by_name = LICENCES_BY_NAME.get(name.lower())
    return f"{by_name} (by its file name; check the bank's own notice)" if by_name else UNKNOWN_LICENCE


def check_soundfont_file(path: str | os.PathLike) -> None:
    """Refuse a path that is not a whole SF2 bank before any work: missing, a folder, another kind
    of file, or a truncated download (which the synthesizer only notices when it first plays).
    Reads the chunk headers only, never the sample data.

    Raises:
        SoundFontError: what is wrong with the file, and the fix.
    """
    resolved = Path(path).expanduser()
    if resolved.is_dir():
        raise SoundFontError(f"The SoundFont {path} is a folder, not an .sf2 file; "
                             "pass the bank's file with --soundfont.")
    try:
        with resolved.open("rb") as stream:
            _check_sf2_layout(stream, os.fstat(stream.fileno()).st_size, str(path))
    except FileNotFoundError:
        raise SoundFontError(f"The SoundFont {path} does not exist; pass an .sf2 file with --soundfont.") from None
    except OSError as err:
        raise SoundFontError(f"The SoundFont {path} cannot be read: {err.strerror}.") from None


def _check_sf2_layout(stream: BinaryIO, size: int, shown: str) -> None:
    """Walk the top-level chunks of a RIFF 'sfbk' form: the form must fit in the file, every chunk
    in the form, and the INFO, sdta and pdta lists must all be there."""
    head = stream.read(RIFF_HEADER_BYTES)
    if len(head) < RIFF_HEADER_BYTES or head[:4] != b"RIFF" or head[8:12] != b"sfbk":
        raise SoundFontError(f"The SoundFont {shown} is not a SoundFont 2 bank (.sf2); pass one with --soundfont.")
    form_size = int.from_bytes(head[4:8], "little")
    form_end = CHUNK_HEADER_BYTES + form_size
    # Bytes after the form are ignored by the synthesizer, so only a short file is refused.
    if form_end > size:
        raise SoundFontError(f"The SoundFont {shown} is damaged or incomplete (RIFF size {form_size}, "
                             f"file {size} bytes); download it again or pass another bank with --soundfont.")
    lists = set()
    at = RIFF_HEADER_BYTES
    while at + CHUNK_HEADER_BYTES <= form_end:
        stream.seek(at)
        chunk = stream.read(CHUNK_HEADER_BYTES + 4)
        chunk_size = int.from_bytes(chunk[4:8], "little")
        if at + CHUNK_HEADER_BYTES + chunk_size > form_end:
            raise SoundFontError(f"The SoundFont {shown} is damaged (its {chunk[:4].decode('latin-1')!r} chunk "
                                 "runs past the end of the bank); download it again or pass another with --soundfont.")
        if chunk[:4] == b"LIST":
            lists.add(chunk[8:12].decode("latin-1"))
        at += CHUNK_HEADER_BYTES + chunk_size + (chunk_size & 1)   # chunks are padded to an even size
    missing = [name for name in SF2_LISTS if name not in lists]
    if missing:
        raise SoundFontError(f"The SoundFont {shown} is damaged or incomplete (no LIST {', '.join(missing)} "
                             "chunk); download it again or pass another bank with --soundfont.")


def load_soundfont(path: str | os.PathLike | None = None) -> SoundFont:
    """Read an SF2 bank (the default one when `path` is None), cached per file and modification time.

    Raises:
        SoundFontError: the file is missing, unreadable, a folder, not a SoundFont or incomplete.
    """
    resolved = Path(path).expanduser() if path is not None else default_soundfont_path()
    check_soundfont_file(resolved)
    try:
        stat = resolved.stat()
    except OSError:
        raise SoundFontError(f"The SoundFont {resolved} does not exist; pass an .sf2 file with --soundfont.") from None
    return _read_soundfont(str(resolved.resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=4)
def _read_soundfont(path: str, mtime_ns: int, size: int) -> SoundFont:
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise SoundFontError(f"The SoundFont {path} cannot be read: {err.strerror}.") from None
    sha256 = hashlib.sha256(data).hexdigest()
    name = Path(path).name
    return SoundFont(path, name, licence_of(name, sha256), data, sha256)


# ---------------------------------------------------------------------------- MIDI file
def _ticks(time_s: float) -> int:
    return max(0, int(round(time_s * TICKS_PER_S)))


class _Channels:
    """Channels by program: a program keeps its channel; a new program takes the channel that has
    been quiet longest (the synthesizer lets sounding notes finish on their old program).

    Pitch bend moves a whole channel, so a gliding note takes a channel of its own: one where no
    other note of its program sounds, kept apart from the channel of that program's held notes."""

    def __init__(self) -> None:
        self.program: dict[int, tuple[int, bool]] = {}     # channel -> (program, for glides)
        self.quiet_from: dict[int, float] = {c: 0.0 for c in range(16) if c != DRUM_CHANNEL}
        self.bent: set[int] = set()                         # channels left off centre

    def channel_for(self, note: Note, events: list[tuple[int, int, list[int]]]) -> int:
        if note.part.drums:
            return DRUM_CHANNEL
        key = (note.part.program, bool(note.glide))
        channel = next((c for c, k in self.program.items()
                        if k == key and (not note.glide or self.quiet_from[c] <= note.start_s)), None)
        if channel is None:
            channel = min(self.quiet_from, key=lambda c: (self.quiet_from[c], c))
            self.program[channel] = key
            events.append((_ticks(note.start_s), 0, [0xC0 | channel, note.part.program]))
        if channel in self.bent:   # back to true pitch before the next note speaks
            events.append((_ticks(note.start_s), 2, _bend(channel, 0.0)))
            self.bent.discard(channel)
        if note.glide:
            events.extend(_glide(channel, note))
            self.bent.add(channel)
        self.quiet_from[channel] = max(self.quiet_from[channel], note.end_s)
        return channel


def _bend(channel: int, semitones: float) -> list[int]:
    value = int(np.clip(round(BEND_CENTRE + semitones / BEND_RANGE * BEND_CENTRE), 0, 16383))
    return [0xE0 | channel, value & 0x7F, value >> 7]


def _glide(channel: int, note: Note) -> list[tuple[int, int, list[int]]]:
    """Pitch-bend messages sliding evenly from the note's pitch to pitch + glide over its length;
    the last one lands at the note's end (with the note-offs, before any next note on the channel)
    and holds through its release."""
    steps = max(2, int(np.ceil((note.end_s - note.start_s) / BEND_STEP_S)))
    order = {0: 2, steps: 1}
    return [(_ticks(note.start_s + k / steps * (note.end_s - note.start_s)), order.get(k, 3),
             _bend(channel, note.glide * k / steps)) for k in range(steps + 1)]


def smf_bytes(notes: list[Note], rooms: list[Room], end_s: float) -> bytes:
    """A format-0 Standard MIDI File of `notes` (times from 0), with the reverb rooms and a
    silent event at `end_s` so the synthesizer renders that far."""
    # (tick, order, message bytes): at one tick, setup < note off < note on.
    events: list[tuple[int, int, list[int]]] = []
    channels = _Channels()
    keys: dict[tuple[int, int], list[list[int]]] = {}     # (channel, pitch) -> [on, off, velocity] each
    for note in sorted(notes, key=lambda n: (n.start_s, n.part.program, n.pitch)):
        channel = channels.channel_for(note, events)
        keys.setdefault((channel, note.pitch), []).append([_ticks(note.start_s), _ticks(note.end_s), note.velocity])
    for (channel, pitch), struck in keys.items():
        for on, off, velocity in _one_key(struck):
            events.append((on, 2, [0x90 | channel, pitch, velocity]))
            events.append((off, 1, [0x80 | channel, pitch, 0]))
    for channel in range(16):
        events.append((0, -1, [0xB0 | channel, 7, CHANNEL_VOLUME]))
        events.append((0, -1, [0xB0 | channel, 93, 0]))
        # pitch-bend range (RPN 0) to BEND_RANGE semitones, then the RPN closed again
        for control, value in ((101, 0), (100, 0), (6, BEND_RANGE), (38, 0), (101, 127), (100, 127)):
            events.append((0, -1, [0xB0 | channel, control, value]))
        for room in rooms:
            events.append((_ticks(room.start_s), 0, [0xB0 | channel, 91, int(np.clip(room.reverb, 0, 127))]))
    events.append((_ticks(end_s), 3, [0xB0, 91, rooms[-1].reverb if rooms else 40]))
    return _write_smf(sorted(events, key=lambda e: (e[0], e[1])))


def _one_key(struck: list[list[int]]) -> list[list[int]]:
    """The notes of one key on one channel ([on, off, velocity] in ticks, by onset) as the key
    is played: a note that begins while another still holds the key strikes it again, releasing
    the one before at that moment, and holds it for as long as either wanted. Played as written,
    the first note's note-off would silence the key under the second note, which then drops out
    early. Notes struck on the same tick are one note, as loud and as long as the longest."""
    out: list[list[int]] = []
    for on, off, velocity in struck:
        if out and on < out[-1][1]:
            held = out[-1]
            if on <= held[0]:
                held[1], held[2] = max(held[1], off), max(held[2], velocity)
                continue
            off = max(off, held[1])
            held[1] = on
        out.append([on, off, velocity])
    return out


def _varlen(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def _write_smf(events: list[tuple[int, int, list[int]]]) -> bytes:
    track = bytearray(b"\x00\xff\x51\x03" + MIDI_TEMPO_US.to_bytes(3, "big"))
    now = 0
    for tick, _, message in events:
        track += _varlen(tick - now) + bytes(message)
        now = tick
    track += b"\x00\xff\x2f\x00"
    header = b"MThd" + (6).to_bytes(4, "big") + (0).to_bytes(2, "big") + (1).to_bytes(2, "big") \
        + TICKS_PER_BEAT.to_bytes(2, "big")
    return header + b"MTrk" + len(track).to_bytes(4, "big") + bytes(track)


# ---------------------------------------------------------------------------- synthesis
def synthesize(midi: bytes, soundfont: SoundFont) -> np.ndarray:
    """Render SMF bytes with the bank: float32 (2, samples) at RENDER_RATE."""
    import midirenderer

    try:
        wav = midirenderer.render_wave_from(soundfont.data, midi)
    except RuntimeError as err:
        # A bank the synthesizer cannot play is the user's to replace; any other failure (a MIDI
        # error) is ours and keeps its traceback.
        if not str(err).startswith("SoundFont error"):
            raise
        raise SoundFontError(f"The synthesizer cannot play the SoundFont {soundfont.path} ({err}); "
                             "pass another bank with --soundfont.") from err
    return _wav_to_float(wav)


def _wav_to_float(wav: bytes) -> np.ndarray:
    import soundfile

    audio, rate = soundfile.read(io.BytesIO(wav), dtype="float32", always_2d=True)
    if rate != RENDER_RATE:
        raise RuntimeError(f"synthesizer rendered at {rate} Hz, expected {RENDER_RATE}")
    return np.ascontiguousarray(audio.T)


def _rooms_from(rooms: list[Room], start_s: float, end_s: float) -> list[Room]:
    """The rooms seen from a chunk [start_s, end_s), re-timed to the chunk."""
    before = [r for r in rooms if r.start_s <= start_s]
    inside = [Room(r.start_s - start_s, r.reverb) for r in rooms if start_s < r.start_s < end_s]
    return ([Room(0.0, before[-1].reverb)] if before else []) + inside


def render_notes(notes: list[Note], rooms: list[Room], soundfont: SoundFont, total_samples: int,
                 sample_rate: int) -> np.ndarray:
    """All `notes` as float32 (2, total_samples) audio at sample_rate (resampled if not 48 kHz),
    in memory (see `render_notes_into` for a film's track)."""
    track = new_track("notes", 2, total_samples)
    render_notes_into(track, notes, rooms, soundfont, sample_rate)
    audio = track.to_array()
    track.close()
    return audio


def render_notes_into(track: Track, notes: list[Note], rooms: list[Room], soundfont: SoundFont,
                      sample_rate: int) -> None:
    """Add all `notes` into `track` (2, n) at sample_rate (resampled if not 48 kHz), a chunk of
    notes at a time: memory stays one chunk's audio whatever the length of the film."""
    if sample_rate == RENDER_RATE:
        _synthesize_into(track, notes, rooms, soundfont)
        return
    native = new_track("notes-48k", 2, int(np.ceil(track.num_samples * RENDER_RATE / sample_rate)))
    _synthesize_into(native, notes, rooms, soundfont)
    _resample_into(native, track, sample_rate)
    native.close()


def _synthesize_into(out: Track, notes: list[Note], rooms: list[Room], soundfont: SoundFont) -> None:
    """Stretches of notes (see `stretches`) synthesized and overlap-added into `out` at RENDER_RATE."""
    track_end_s = out.num_samples / RENDER_RATE
    for start_s, stretch, rings_until_s in stretches(notes):
        end = min(rings_until_s, track_end_s) - start_s
        if end <= 0:
            continue
        shifted = [dataclasses.replace(n, start_s=n.start_s - start_s, end_s=n.end_s - start_s) for n in stretch]
        audio = synthesize(smf_bytes(shifted, _rooms_from(rooms, start_s, start_s + end), end), soundfont)
        out.add(int(round(start_s * RENDER_RATE)), audio)


def stretches(notes: list[Note]) -> list[tuple[float, list[Note], float]]:
    """(start, notes, end) of each stretch of the score to synthesize on its own, in time order:
    notes by start time, a new stretch where every note before has rung out (TAIL_S after its
    end, so what the stretch before leaves behind is silence) or where the stretch's note starts
    would span more than CHUNK_S. A stretch starts on STRETCH_GRID_S before its first note (or at
    0) and lasts until TAIL_S after its last note ends."""
    out: list[tuple[float, list[Note], float]] = []
    for note in sorted(notes, key=lambda n: n.start_s):
        if out:
            start_s, members, rings_until_s = out[-1]
            if note.start_s < rings_until_s and note.start_s - start_s < CHUNK_S:
                members.append(note)
                out[-1] = (start_s, members, max(rings_until_s, note.end_s + TAIL_S))
                continue
        start = float(np.floor(note.start_s / STRETCH_GRID_S)) * STRETCH_GRID_S
        if start > note.start_s:   # the division rounded up onto the next point of the grid
            start -= STRETCH_GRID_S
        # From a point of the grid before the note: an event at the very start of a file is applied
        # before the synthesizer's clock runs, a block sooner than the tie-breaking of later ones.
        out.append((max(0.0, start - STRETCH_GRID_S), [note], note.end_s + TAIL_S))
    return out


def _resample_into(source: Track, out: Track, sample_rate: int) -> None:
    """`source` (at RENDER_RATE) resampled to `sample_rate` into `out`, a block at a time."""
    import soxr

    stream = soxr.ResampleStream(RENDER_RATE, sample_rate, source.channels, dtype="float32")
    at = 0
    for start, block in source.blocks():
        last = start + block.shape[-1] >= source.num_samples
        piece = stream.resample_chunk(np.ascontiguousarray(block.T), last=last).T
        out.write(at, piece)
        at += piece.shape[-1]
