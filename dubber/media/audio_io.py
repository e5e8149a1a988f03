"""Audio files in and out: WAV writing and reading, and the original sound track of a video.

Audio arrays are float32 shaped (channels, samples) everywhere in the product.
"""
from __future__ import annotations

import errno
import logging
import os
import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile
import soxr

from ..atomic import atomic_output, write_error
from ..errors import InputError

log = logging.getLogger(__name__)

WAV_SUBTYPES = {16: "PCM_16", 24: "PCM_24", 32: "FLOAT"}
RIFF_LIMIT_BYTES = 0xFFFF_FFFF - 1024   # beyond this a WAV needs the RF64 header
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
    if bits not in WAV_SUBTYPES:
        raise ValueError(f"bits must be one of {sorted(WAV_SUBTYPES)}, got {bits}")
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None, :]
    if audio.ndim != 2 or audio.shape[0] > 8:
        raise ValueError(f"expected audio shaped (channels, samples), got {audio.shape}")
    if bits != 32:
        # libsndfile wraps out-of-range floats around when it converts to integers; clip instead.
        over = max((float(np.abs(audio[:, a:a + WRITE_BLOCK]).max()) for a in range(0, audio.shape[-1], WRITE_BLOCK)),
                   default=0.0)
        if over > 1.0:
            log.warning("%s: peak %.2f is over full scale; clipping to write %d-bit PCM", path, over, bits)
    dest = Path(path)
    data_bytes = audio.size * bits // 8
    container = "RF64" if data_bytes > RIFF_LIMIT_BYTES else "WAV"
    with atomic_output(dest) as tmp:
        try:
            _write_blocks(tmp, audio, int(sample_rate), WAV_SUBTYPES[bits], container, clip=bits != 32)
        except soundfile.LibsndfileError as err:
            # libsndfile reports a full disk as a bare "System error"; the free space tells.
            free = shutil.disk_usage(tmp.parent).free
            code = errno.ENOSPC if free < data_bytes + (1 << 20) else errno.EIO
            reason = os.strerror(code) if code == errno.ENOSPC else err.error_string
            raise write_error(OSError(code, reason), dest.expanduser().absolute()) from err
    return dest


def _write_blocks(path: Path, audio: np.ndarray, sample_rate: int, subtype: str, container: str, clip: bool) -> None:
    """Write `audio` (channels, n) a block at a time: a feature film's track is never copied whole
    (transposed, clipped or converted) in memory."""
    with soundfile.SoundFile(str(path), "w", sample_rate, audio.shape[0], subtype=subtype, format=container) as f:
        for start in range(0, audio.shape[-1], WRITE_BLOCK):
            block = audio[:, start:start + WRITE_BLOCK].T
            f.write(np.clip(block, -1.0, 1.0) if clip else np.ascontiguousarray(block))


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
    """The video's own sound track as stereo float32 (2, total_samples) at `sample_rate`.

    Decoded with PyAV, resampled with soxr, mono copied to both sides, more than two channels
    folded down to stereo. The result lines up with the first video frame: audio that starts
    later than the picture gets silence in front, audio that starts earlier loses its head.
    The end is padded with silence or cut so the length is exactly `total_samples`.

    Returns:
        The audio, or None when the file has no audio stream.

    Raises:
        InputError: the file cannot be opened or its audio cannot be decoded.
    """
    import av

    try:
        # Titles in a legacy encoding must not stop the sound from being read (as in the probe).
        with av.open(str(video_path), metadata_errors="ignore") as container:
            if not container.streams.audio:
                return None
            video_start_s = _video_start_s(container)
            decoded = _decode_stream(container, sample_rate)
    except (av.error.FFmpegError, OSError) as err:
        raise InputError(f"Cannot decode the audio of {video_path}: {err}; check that the file is a playable video.") from err
    if decoded is None:
        return np.zeros((2, total_samples), dtype=np.float32)
    audio, audio_start_s = decoded
    offset = int(round((audio_start_s - video_start_s) * sample_rate))
    return _fit(audio, offset, total_samples)


def _video_start_s(container) -> Fraction:
    """Presentation time of the first video frame (0 if the file has no video or no times)."""
    if not container.streams.video:
        return Fraction(0)
    stream = container.streams.video[0]
    if stream.start_time is None or stream.time_base is None:
        return Fraction(0)
    return Fraction(stream.start_time) * stream.time_base


def _decode_stream(container, sample_rate: int) -> tuple[np.ndarray, Fraction] | None:
    """Decode the first audio stream to stereo float32 at `sample_rate`; (audio, start time s)."""
    import av

    stream = container.streams.audio[0]
    channels = stream.codec_context.channels or 2
    # Planar float at the stream's own rate; >2 channels use ffmpeg's standard stereo fold-down.
    layout = "mono" if channels == 1 else "stereo"
    converter = av.AudioResampler(format="fltp", layout=layout)
    resampler: soxr.ResampleStream | None = None
    pieces: list[np.ndarray] = []
    start_s: Fraction | None = None
    for frame in container.decode(stream):
        if start_s is None and frame.pts is not None and frame.time_base is not None:
            start_s = Fraction(frame.pts) * frame.time_base
        for out in converter.resample(frame):
            resampler = resampler or soxr.ResampleStream(out.sample_rate, sample_rate, out.to_ndarray().shape[0],
                                                         dtype="float32", quality="HQ")
            pieces.append(resampler.resample_chunk(out.to_ndarray().T.copy()))
    for out in converter.resample(None):
        if resampler is not None:
            pieces.append(resampler.resample_chunk(out.to_ndarray().T.copy()))
    if resampler is None:
        return None
    pieces.append(resampler.resample_chunk(np.zeros((0, pieces[0].shape[1]), dtype=np.float32), last=True))
    audio = np.concatenate(pieces, axis=0).T                       # (channels, samples)
    if audio.shape[0] == 1:
        audio = np.repeat(audio, 2, axis=0)
    return np.ascontiguousarray(audio, dtype=np.float32), start_s or Fraction(0)


def _fit(audio: np.ndarray, offset: int, total_samples: int) -> np.ndarray:
    """Place `audio` starting `offset` samples after sample 0 (negative: its head is cut) in a
    silent (2, total_samples) track."""
    out = np.zeros((2, total_samples), dtype=np.float32)
    src = audio[:, max(0, -offset):]
    start = max(0, offset)
    count = max(0, min(src.shape[-1], total_samples - start))
    out[:, start:start + count] = src[:, :count]
    return out
