"""The sound measures of a WAV on disk, read a block at a time, for any length of film.

`sound_measures.measure` takes the whole soundtrack as one array: for a two-hour film that is
2.8 GB of float32 stereo, and its spectrograms several times more. Here the same figures come
from the file a minute at a time, in memory that does not grow with the film:

- the onset-strength curve (log-mel spectral flux, 100 values a second) is computed block by
  block in two passes over the file (the log-mel floor hangs from the loudest cell of the whole
  film, so the first pass finds that cell and the second takes the flux);
- the 1 s chroma blocks (12 numbers a second) come from the first pass;
- onsets, sync, chance, periodicity and repetition are then read from those small curves with
  `sound_measures`' own functions.

Each block's analysis frames are exactly the frames the whole-array functions would take (the
same centring, zero padding, window and hop), so the figures agree with `sound_measures.measure`
up to float rounding.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from . import sound_measures as sm
from .errors import InputError

BLOCK_FRAMES = 6000  # analysis frames a block (60 s at the 10 ms hop); a multiple of the chroma block


class WavTrack:
    """A WAV file read by sample ranges, as float32 (channels, samples); zeros outside the file.

    Raises:
        InputError: the file is not sound libsndfile reads, or breaks off before its header's end.
    """

    def __init__(self, path: str | os.PathLike):
        import soundfile

        self.path = Path(path)
        try:
            self._file = soundfile.SoundFile(str(self.path))
        except (soundfile.LibsndfileError, OSError) as err:
            raise InputError(f"{self.path} cannot be read as sound ({_reason(err)}); "
                             "export it again or dub again.") from None
        self.sample_rate = int(self._file.samplerate)
        self.samples = int(self._file.frames)
        self.channels = int(self._file.channels)

    @property
    def duration_s(self) -> float:
        return self.samples / self.sample_rate

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples [start, stop) of every channel; the parts outside the file are silence."""
        out = np.zeros((self.channels, max(0, stop - start)), dtype=np.float32)
        a, b = max(0, start), min(self.samples, stop)
        if b > a:
            import soundfile

            try:
                self._file.seek(a)
                got = self._file.read(b - a, dtype="float32", always_2d=True)
            except (soundfile.LibsndfileError, OSError, RuntimeError) as err:
                raise InputError(f"{self.path} cannot be read between seconds {a / self.sample_rate:.1f} and "
                                 f"{b / self.sample_rate:.1f} ({_reason(err)}); the file is damaged, "
                                 "so export it again.") from None
            if got.shape[0] < b - a:   # the header promised samples the file does not hold
                raise InputError(f"{self.path} ends at second {(a + got.shape[0]) / self.sample_rate:.1f}, before the "
                                 f"{self.duration_s:.1f} s its header gives; the file is damaged, so export it again.")
            out[:, a - start:b - start] = got.T
        return out

    def read_all(self) -> np.ndarray:
        return self.read(0, self.samples)

    @property
    def num_samples(self) -> int:   # as an on-disk `Track` names it, for the loudness measures
        return self.samples

    def blocks(self, size: int) -> Iterator[tuple[int, np.ndarray]]:
        """(start, samples) of consecutive blocks of `size` samples over the whole file."""
        for start in range(0, self.samples, size):
            yield start, self.read(start, min(self.samples, start + size))

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "WavTrack":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _reason(err: BaseException) -> str:
    """libsndfile's own words for a failure, without the file name it repeats."""
    return str(getattr(err, "error_string", None) or err).rstrip(".")


def _frame_count(samples: int, n_fft: int, hop: int) -> int:
    """Frames `sound_measures.power_spectrogram` takes of `samples` samples."""
    return max(1, 1 + (samples + 2 * (n_fft // 2) - n_fft) // hop)


def _block_power(track: WavTrack, first: int, stop: int, n_fft: int, hop: int) -> np.ndarray:
    """|STFT|^2 of analysis frames [first, stop), (frames, bins): frame t centred on sample t * hop."""
    start = first * hop - n_fft // 2
    mono = sm.mono(track.read(start, (stop - 1) * hop - n_fft // 2 + n_fft))
    return sm.frame_power(mono, stop - first, n_fft, hop)


def strength_and_chroma(track: WavTrack) -> tuple[np.ndarray, np.ndarray]:
    """(onset strength per 10 ms frame, normalised 0..1; chroma per 1 s block, (blocks, 12)) of
    the whole track, as `sound_measures.onset_strength` and `chroma_blocks` give them."""
    sr = track.sample_rate
    n_fft = sm._fft_size(sr)
    hop = max(1, int(round(sm.FRAME_HOP_S * sr)))
    count = _frame_count(track.samples, n_fft, hop)
    filters = sm.mel_filters(sr, n_fft)
    per_block = max(1, int(round(sm.CHROMA_BLOCK_S / sm.FRAME_HOP_S)))
    step = max(per_block, BLOCK_FRAMES // per_block * per_block)
    # Pass 1: the loudest log-mel cell, and the chroma blocks.
    loudest, chroma = -np.inf, []
    for first in range(0, count, step):
        power = _block_power(track, first, min(count, first + step), n_fft, hop)
        loudest = max(loudest, float((10.0 * np.log10(power @ filters + 1e-10)).max()))
        chroma.append(sm.chroma_of(power, sr))   # each block starts on a whole chroma block
    # Pass 2: the flux of the floored log-mel spectrogram.
    flux = np.zeros(count, dtype=np.float64)
    previous = None
    for first in range(0, count, step):
        power = _block_power(track, first, min(count, first + step), n_fft, hop)
        db = np.maximum(10.0 * np.log10(power @ filters + 1e-10), loudest - sm.DB_RANGE)
        joined = db if previous is None else np.concatenate([previous, db])
        rises = np.maximum(np.diff(joined, axis=0), 0.0).mean(axis=1)
        flux[first + (1 if previous is None else 0):first + db.shape[0]] = rises
        previous = db[-1:]
    flux -= flux.min()
    top = flux.max()
    return (flux / top if top > 0 else flux), (np.concatenate(chroma) if chroma else np.zeros((0, 12), np.float32))


def measure(track: WavTrack, events_s: Sequence[float], marks_s: Sequence[float] = (),
            tolerance_s: float = sm.TOLERANCE_S) -> sm.SyncReport:
    """`sound_measures.measure` of the track, read a block at a time."""
    strength, chroma = strength_and_chroma(track)
    return sm.report_from(strength, chroma, track.duration_s, events_s, marks_s, tolerance_s,
                          sm.hop_s(track.sample_rate))
