"""The review page: one self-contained HTML file a person reads instead of the manifest.

    spectrogram_png(audio, sr, cuts_s=..., events=..., onsets_s=...)  -> PNG bytes
    write_review(manifest_path, out_path=None)                          -> path of the page

The spectrogram picture is drawn with numpy and Pillow only (no plotting library), so the page
and the studio app can show it on any machine. The page embeds every picture and sound as a
data URI: it opens offline, from a mail attachment or a USB stick, with nothing fetched.
"""
from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image, ImageDraw

SPECTROGRAM_FFT = 2048          # samples per analysis window (43 ms at 48 kHz)
SPECTROGRAM_LOW_HZ = 40.0       # bottom row of the picture
SPECTROGRAM_RANGE_DB = 80.0     # colours span this far under the loudest cell
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


def _mono(audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    return audio if audio.ndim == 1 else audio.mean(axis=0)


def _power_columns(mono: np.ndarray, hop: int) -> np.ndarray:
    """|STFT|^2, (frequency bins, columns), one column per `hop` samples."""
    padded = np.pad(mono, (SPECTROGRAM_FFT // 2, SPECTROGRAM_FFT // 2))
    count = max(1, 1 + (padded.size - SPECTROGRAM_FFT) // hop)
    window = np.hanning(SPECTROGRAM_FFT).astype(np.float32)
    out = np.empty((SPECTROGRAM_FFT // 2 + 1, count), dtype=np.float32)
    for start in range(0, count, 512):   # in blocks so a long film never builds one huge frame array
        idx = np.arange(start, min(count, start + 512))[:, None] * hop + np.arange(SPECTROGRAM_FFT)
        frames = padded[np.minimum(idx, padded.size - 1)] * window
        out[:, start:start + idx.shape[0]] = (np.abs(np.fft.rfft(frames, axis=1)) ** 2).T
    return out


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
    mono = _mono(audio)
    total_s = float(duration_s) if duration_s is not None else mono.size / sample_rate
    total_s = max(total_s, 1e-3)
    width = int(np.clip(round(total_s * PIXELS_PER_S), 64, MAX_WIDTH_PX))
    hop = max(1, int(round(total_s * sample_rate / width)))
    wanted = int(round(total_s * sample_rate))
    mono = np.pad(mono[:wanted], (0, max(0, wanted - mono.size)))
    rows = _log_frequency_rows(_power_columns(mono, hop), sample_rate, height)
    db = 10.0 * np.log10(rows + 1e-12)
    db -= max(float(db.max()), -100.0)
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
            draw.line((x_of(t), height - 12, x_of(t), height - 1), fill=ONSET_COLOUR + (255,), width=1)
    step_s = next(s for s in (1, 2, 5, 10, 30, 60, 300, 600, 1e9) if width / total_s * s >= 40)
    for k in range(int(total_s // step_s) + 1):
        x = x_of(k * step_s)
        draw.line((x, height, x, height + 4), fill=(200, 200, 200, 255))
        draw.text((x + 2, height + 3), f"{k * step_s:g}s", fill=(200, 200, 200, 255))


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
