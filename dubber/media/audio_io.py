"""Audio files in and out: WAV writing and reading, and the original sound track of a video.

Audio arrays are float32 shaped (channels, samples) everywhere in the product.
"""
from __future__ import annotations

import logging
import os
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, Callable

import numpy as np
import soundfile
import soxr

from ..atomic import atomic_output
from ..errors import InputError
from .bwf import BroadcastInfo, data_size, encode_samples, wav_header
from .tracks import Track, new_track

log = logging.getLogger(__name__)

WRITE_BLOCK = 1 << 20                    # samples per channel written at a time (about 22 s at 48 kHz)


def write_wav(path: str | os.PathLike, audio: np.ndarray, sample_rate: int, bits: int = 24) -> Path:
    """Write (channels, samples) float audio as WAV, atomically (temp name, then rename).

    Args:
        path: destination file; its folder must exist.
        audio: float array (channels, samples), nominally in [-1, 1]; integer formats clip there.
        sample_rate: Hz.
        bits: 16 or 24 (integer PCM) or 32 (float).

    Returns:
        The destination path.

    Raises:
        ValueError: unsupported `bits` or a badly shaped array.
        OutputError: the folder cannot be written, or the disk is full.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None, :]
    if audio.ndim != 2:
        raise ValueError(f"expected audio shaped (channels, samples), got {audio.shape}")
    return write_wav_blocks(path, lambda a, b: audio[:, a:b], audio.shape[0], audio.shape[-1], sample_rate, bits)


def write_wav_blocks(path: str | os.PathLike, read: Callable[[int, int], np.ndarray], channels: int,
                     num_samples: int, sample_rate: int, bits: int = 24,
                     broadcast: BroadcastInfo = BroadcastInfo()) -> Path:
    """`write_wav` of a track read a block at a time: `read(start, stop)` gives float samples
    (channels, stop - start), so a film's track (on disk, or gained as it is read) is never
    whole in memory.

    The file is a Broadcast WAV (see `dubber.media.bwf`) whose bext chunk says `broadcast`: its
    start time for editors that place sound by timecode, and what it is. Over 4 GiB it is RF64.

    Raises:
        ValueError: unsupported `bits` or channel count, or `read` gave a block of another shape
            (no file is left).
        OutputError: the folder cannot be written, or the disk is full.
    """
    header = wav_header(channels, int(sample_rate), bits, num_samples, broadcast)   # checks bits and channels
    dest = Path(path)
    with atomic_output(dest) as tmp, open(tmp, "wb") as out:
        out.write(header)
        over = _write_samples(out, read, channels, num_samples, bits)
        if data_size(channels, bits, num_samples) & 1:
            out.write(b"\0")   # RIFF pads an odd-sized chunk to an even size
    if bits != 32 and over > 1.0:
        log.warning("%s: peak %.2f is over full scale; clipped to write %d-bit PCM", path, over, bits)
    return dest


def _write_samples(out: BinaryIO, read: Callable[[int, int], np.ndarray], channels: int, num_samples: int,
                   bits: int) -> float:
    """Write the track a block at a time (transposed to interleave, clipped and encoded per
    block); returns its sample peak. Integer formats are clipped to full scale, since an
    out-of-range float would otherwise wrap around to the other extreme.

    Raises:
        ValueError: `read` gave a block of another shape: the header already states the length.
    """
    over = 0.0
    for start in range(0, num_samples, WRITE_BLOCK):
        stop = min(start + WRITE_BLOCK, num_samples)
        block = np.asarray(read(start, stop), dtype=np.float32).T
        if block.shape != (stop - start, channels):
            raise ValueError(f"read({start}, {stop}) gave {block.T.shape}, expected ({channels}, {stop - start})")
        if block.size:
            over = max(over, float(np.abs(block).max()))
        out.write(encode_samples(np.clip(block, -1.0, 1.0) if bits != 32 else block, bits))
    return over


def read_wav(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read a WAV (or any libsndfile format) as float32 (channels, samples) and its rate (Hz).

    Raises:
        InputError: the file is missing or not audio.
    """
    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (OSError, RuntimeError, soundfile.LibsndfileError) as err:
        raise InputError(f"Cannot read audio file {path}: {err}; check the path and that it is a WAV file.") from err
    return np.ascontiguousarray(data.T), int(rate)


# ---------------------------------------------------------------------------- video sound tracks
def decode_audio(video_path: str | os.PathLike, sample_rate: int, total_samples: int) -> np.ndarray | None:
    """The video's own sound track as stereo float32 (2, total_samples) at `sample_rate`
    (see `decode_audio_track`, which keeps a film-length track on disk instead).

    Returns:
        The audio, or None when the file has no audio stream.

    Raises:
        InputError: the file cannot be opened or its audio cannot be decoded.
    """
    track = decode_audio_track(video_path, sample_rate, total_samples)
    if track is None:
        return None
    audio = track.to_array()
    track.close()
    return audio


def decode_audio_track(video_path: str | os.PathLike, sample_rate: int, total_samples: int) -> Track | None:
    """The video's own sound (its programme track: the one marked default, else the first) as a
    stereo float32 track on disk (2, total_samples) at `sample_rate`, decoded and written a frame
    at a time.

    Decoded with PyAV, resampled with soxr, mono copied to both sides, more than two channels
    folded down to stereo. The result lines up with the first video frame: audio that starts
    later than the picture gets silence in front, audio that starts earlier loses its head.
    The end is padded with silence or cut so the length is exactly `total_samples`.

    Returns:
        The track, or None when the file has no audio stream.

    Raises:
        InputError: the file cannot be opened or its audio cannot be decoded.
    """
    import av

    try:
        # Titles in a legacy encoding must not stop the sound from being read (as in the probe).
        with av.open(str(video_path), metadata_errors="ignore") as container:
            if not container.streams.audio:
                return None
            track = new_track("original", 2, total_samples)
            _decode_stream_into(container, sample_rate, _video_start_s(container), track)
    except (av.error.FFmpegError, OSError) as err:
        raise InputError(f"Cannot decode the audio of {video_path}: {err}; check that the file is a playable video.") from err
    return track


def _video_start_s(container) -> Fraction:
    """Presentation time of the first video frame (0 if the file has no video or no times)."""
    if not container.streams.video:
        return Fraction(0)
    stream = container.streams.video[0]
    if stream.start_time is None or stream.time_base is None:
        return Fraction(0)
    return Fraction(stream.start_time) * stream.time_base


class _Placer:
    """Writes consecutive pieces of decoded audio into a track, shifted by the audio's start
    relative to the picture (known at the first frame): a head before the picture is cut, a
    late start leaves silence in front, anything past the end is dropped."""

    def __init__(self, track: Track, sample_rate: int, video_start_s: Fraction) -> None:
        self.track, self.sample_rate, self.video_start_s = track, sample_rate, video_start_s
        self.offset: int | None = None
        self.written = 0

    def start_at(self, audio_start_s: Fraction) -> None:
        if self.offset is None:
            self.offset = int(round((audio_start_s - self.video_start_s) * self.sample_rate))

    def put(self, piece: np.ndarray) -> None:
        """`piece` (samples, channels) from the resampler."""
        if self.offset is None:
            self.start_at(Fraction(0))
        audio = piece.T
        if audio.shape[0] == 1:
            audio = np.repeat(audio, 2, axis=0)
        self.track.write(self.written + self.offset, audio)
        self.written += audio.shape[-1]


def programme_track(defaults: list[bool]) -> int:
    """Which of a file's audio tracks (by their default flags, in file order) is its programme
    sound: the first the file marks as default, else the first."""
    return next((i for i, default in enumerate(defaults) if default), 0)


def _decode_stream_into(container, sample_rate: int, video_start_s: Fraction, track: Track) -> None:
    """Decode the programme audio stream (`programme_track`) to stereo float32 at `sample_rate`
    into `track`, aligned to the first video frame (see `_Placer`)."""
    import av

    streams = list(container.streams.audio)
    stream = streams[programme_track([bool(s.disposition & av.stream.Disposition.default) for s in streams])]
    channels = stream.codec_context.channels or 2
    # Planar float at the stream's own rate; >2 channels use ffmpeg's standard stereo fold-down.
    layout = "mono" if channels == 1 else "stereo"
    converter = av.AudioResampler(format="fltp", layout=layout)
    resampler: soxr.ResampleStream | None = None
    placer = _Placer(track, sample_rate, video_start_s)
    width = 0
    for frame in container.decode(stream):
        if frame.pts is not None and frame.time_base is not None:
            placer.start_at(Fraction(frame.pts) * frame.time_base)
        for out in converter.resample(frame):
            samples = out.to_ndarray()
            width = samples.shape[0]
            resampler = resampler or soxr.ResampleStream(out.sample_rate, sample_rate, width,
                                                         dtype="float32", quality="HQ")
            placer.put(resampler.resample_chunk(samples.T.copy()))
    for out in converter.resample(None):
        if resampler is not None:
            placer.put(resampler.resample_chunk(out.to_ndarray().T.copy()))
    if resampler is not None:
        placer.put(resampler.resample_chunk(np.zeros((0, width), dtype=np.float32), last=True))
