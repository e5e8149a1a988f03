"""The picture of a sound with the picture's structure drawn on it: a log-frequency spectrogram
as a PNG, with cuts, transitions, visual events and detected onsets marked, and a seconds ruler.

    spectrogram_png(audio, sr, cuts_s=..., events=..., onsets_s=...)  -> PNG bytes
    track_spectrogram_png(track, ...)                                 -> PNG bytes of a WAV on disk

Drawn with numpy and Pillow only (no plotting library), so the review page and the studio can
show it on any machine.
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image, ImageDraw

from . import sound_measures as sm
from .atomic import atomic_write_bytes
from .wav_measures import WavTrack

SPECTROGRAM_FFT = 2048          # samples per analysis window (43 ms at 48 kHz)
SPECTROGRAM_LOW_HZ = 40.0       # bottom row of the picture
SPECTROGRAM_RANGE_DB = 80.0     # colours span this far under the loudest cell
QUIET_TOP_DB = 0.0              # cell power (dB) taken as the loudest when nothing is louder (about -54 dBFS)
PIXELS_PER_S = 100              # default picture width per second of audio
MAX_WIDTH_PX = 6000
AXIS_PX = 16                    # strip under the picture with the seconds ruler

# A dark-to-bright colour ramp (black, violet, red, orange, pale yellow): loud reads as bright.
_RAMP = np.array([[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66],
                  [245, 125, 21], [250, 193, 39], [252, 255, 164]], dtype=np.float64)
CUT_COLOUR = (255, 255, 255)
TRANSITION_COLOUR = (120, 200, 255)
ONSET_COLOUR = (0, 230, 200)
EVENT_COLOURS: dict[str, tuple[int, int, int]] = {
    "impact": (255, 60, 60), "landing": (255, 140, 0), "explosion": (255, 0, 200),
    "splash": (60, 140, 255), "whoosh": (180, 255, 80), "flash": (255, 255, 0),
    "run": (120, 255, 255), "shake": (200, 160, 255), "fast_motion": (180, 255, 80),
}


def _log_frequency_rows(power: np.ndarray, sr: int, rows: int) -> np.ndarray:
    """Resample the linear bins to `rows` rows spaced evenly in log frequency, top row highest."""
    bin_hz = np.arange(power.shape[0]) * sr / SPECTROGRAM_FFT
    row_hz = np.geomspace(SPECTROGRAM_LOW_HZ, sr / 2, rows)
    idx = np.clip(np.searchsorted(bin_hz, row_hz), 1, power.shape[0] - 1)
    return power[idx][::-1]


def _colour(values01: np.ndarray) -> np.ndarray:
    position = np.clip(values01, 0.0, 1.0) * (len(_RAMP) - 1)
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, len(_RAMP) - 1)
    frac = (position - low)[..., None]
    return (_RAMP[low] * (1 - frac) + _RAMP[high] * frac).astype(np.uint8)


def _event_fields(event: object) -> tuple[float, str]:
    if isinstance(event, dict):
        return float(event["t"]), str(event.get("kind", "impact"))
    time_s, kind = event[0], event[1]   # (time_s, kind, ...) pairs
    return float(time_s), str(kind)


def spectrogram_png(audio: np.ndarray, sample_rate: int, *, duration_s: float | None = None,
                    cuts_s: Sequence[float] = (), transitions_s: Sequence[tuple[float, float]] = (),
                    events: Iterable[object] = (), onsets_s: Sequence[float] = (),
                    out_path: str | os.PathLike | None = None, height: int = 240) -> bytes:
    """Draw the spectrogram of `audio` with the picture's structure on top, as a PNG.

    Frequency runs up on a log scale from 40 Hz to Nyquist; time runs right at PIXELS_PER_S
    pixels a second (narrower for long audio, at most MAX_WIDTH_PX wide), with a seconds ruler
    underneath. Drawn over it: cuts as full-height white lines, transitions as pale blue bands,
    visual events as a coloured triangle at the top with a line down a third of the height
    (colour by kind, see EVENT_COLOURS), and detected onsets as short green ticks at the bottom.

    Args:
        audio: float samples, (channels, samples) or (samples,); channels are averaged.
        sample_rate: Hz.
        duration_s: seconds the picture covers (default: the audio's length); marks past it are
            not drawn.
        cuts_s: cut times, s.
        transitions_s: (start_s, end_s) spans of dissolves, fades and wipes.
        events: (time_s, kind) pairs (further items ignored) or {"t": s, "kind": k} mappings.
        onsets_s: detected onset times, s.
        out_path: also write the PNG here (to a temporary name, then renamed).
        height: pixels of the spectrogram itself (the ruler adds AXIS_PX).

    Returns:
        The PNG file's bytes.

    Raises:
        ValueError: sample_rate or height not positive.
    """
    if sample_rate <= 0 or height <= 0:
        raise ValueError(f"sample_rate and height must be positive, got {sample_rate} and {height}")
    mono = sm.mono(audio)
    total_s = float(duration_s) if duration_s is not None else mono.size / sample_rate
    width, hop, wanted = _picture_grid(total_s, sample_rate)
    mono = np.pad(mono[:wanted], (0, max(0, wanted - mono.size)))
    power, _ = sm.power_spectrogram(mono, sample_rate, n_fft=SPECTROGRAM_FFT, hop=hop)
    return _draw_spectrogram(power, sample_rate, max(total_s, 1e-3), width, height, cuts_s, transitions_s, events,
                             onsets_s, out_path)


def track_spectrogram_png(track: WavTrack, *, cuts_s: Sequence[float] = (),
                          transitions_s: Sequence[tuple[float, float]] = (), events: Iterable[object] = (),
                          onsets_s: Sequence[float] = (), height: int = 240) -> bytes:
    """`spectrogram_png` of a whole WAV on disk, reading only the few thousand short windows the
    picture's columns are drawn from: the overview of a two-hour film without loading it."""
    sample_rate = track.sample_rate
    width, hop, wanted = _picture_grid(track.duration_s, sample_rate)
    half = SPECTROGRAM_FFT // 2
    power = np.empty((1 + wanted // hop, half + 1), dtype=np.float32)
    for column in range(power.shape[0]):
        start = column * hop - half
        piece = sm.mono(track.read(start, min(start + SPECTROGRAM_FFT, wanted)))
        piece = np.pad(piece, (0, SPECTROGRAM_FFT - piece.size))   # past the end: silence, as in spectrogram_png
        power[column] = sm.frame_power(piece, 1, SPECTROGRAM_FFT, hop)[0]
    return _draw_spectrogram(power, sample_rate, max(track.duration_s, 1e-3), width, height, cuts_s, transitions_s,
                             events, onsets_s, None)


def _picture_grid(total_s: float, sample_rate: int) -> tuple[int, int, int]:
    """(picture width px, samples between columns, samples covered) for `total_s` of sound."""
    total_s = max(total_s, 1e-3)
    width = int(np.clip(round(total_s * PIXELS_PER_S), 64, MAX_WIDTH_PX))
    return width, max(1, int(round(total_s * sample_rate / width))), int(round(total_s * sample_rate))


def _draw_spectrogram(power: np.ndarray, sample_rate: int, total_s: float, width: int, height: int, cuts_s,
                      transitions_s, events, onsets_s, out_path) -> bytes:
    rows = _log_frequency_rows(power.T, sample_rate, height)
    db = 10.0 * np.log10(rows + 1e-12)
    db -= max(float(db.max()), QUIET_TOP_DB)   # silence stays dark instead of being stretched to bright
    picture = _colour(1.0 + db / SPECTROGRAM_RANGE_DB)
    image = Image.new("RGB", (width, height + AXIS_PX), (20, 20, 20))
    image.paste(Image.fromarray(picture).resize((width, height), Image.BILINEAR), (0, 0))
    _draw_marks(ImageDraw.Draw(image, "RGBA"), width, height, total_s, cuts_s, transitions_s, events, onsets_s)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    data = buffer.getvalue()
    if out_path is not None:
        write_atomically(Path(out_path), data)
    return data


def _draw_marks(draw: ImageDraw.ImageDraw, width: int, height: int, total_s: float, cuts_s, transitions_s,
                events, onsets_s) -> None:
    def x_of(t: float) -> int:
        return int(round(t / total_s * (width - 1)))

    for start_s, end_s in transitions_s:
        draw.rectangle((x_of(start_s), 0, max(x_of(end_s), x_of(start_s) + 1), height - 1),
                       fill=TRANSITION_COLOUR + (70,))
    for t in cuts_s:
        if 0 <= t <= total_s:
            draw.line((x_of(t), 0, x_of(t), height - 1), fill=CUT_COLOUR + (255,), width=2)
    for event in events:
        t, kind = _event_fields(event)
        if 0 <= t <= total_s:
            colour = EVENT_COLOURS.get(kind, (255, 255, 255)) + (255,)
            x = x_of(t)
            draw.line((x, 0, x, height // 3), fill=colour, width=1)
            draw.polygon(((x - 5, 0), (x + 5, 0), (x, 9)), fill=colour)
    for t in onsets_s:
        if 0 <= t <= total_s:
            draw.line((x_of(t), height - 14, x_of(t), height - 1), fill=ONSET_COLOUR + (255,), width=2)
    step_s = next(s for s in (1, 2, 5, 10, 30, 60, 300, 600, 1e9) if width / total_s * s >= 40)
    for k in range(int(total_s // step_s) + 1):
        x = x_of(k * step_s)
        draw.line((x, height, x, height + 4), fill=(200, 200, 200, 255))
        draw.text((x + 2, height + 3), f"{k * step_s:g}s", fill=(200, 200, 200, 255))


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` with the one atomic writer, creating its folder first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data)
