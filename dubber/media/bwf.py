"""Broadcast WAV files (EBU Tech 3285): the header, with the `bext` chunk that dates the sound,
and the encoding of float samples into the data that follows it.

What is written, little-endian throughout:

    RIFF <size> WAVE                    RF64 -1 WAVE ds64 <sizes>   (EBU Tech 3306: over 4 GiB)
    bext <602>   description, originator, TimeReference, version 1
    fmt  <16>    integer PCM (<18>, then a fact chunk, for 32-bit float)
    data <size>  interleaved samples, and a pad byte when the size is odd

TimeReference counts the samples from midnight to the file's first sample. Editors and DAWs that
place sound by timecode read it, so a WAV whose TimeReference is the video's start timecode drops
in at the picture's first frame.

Every size follows from the length, which the writer knows before the first sample: the header is
written once, in front, and the samples stream after it a block at a time, so no chunk is ever
inserted into a finished file.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

SUPPORTED_BITS = (16, 24, 32)            # 16/24-bit integer PCM, 32-bit float
RIFF_LIMIT_BYTES = 0xFFFF_FFFF - 1024    # data beyond this needs the RF64 header (the rest is header room)
BEXT_VERSION = 1                         # UMID field present (zero); no loudness fields
_WAVE_FORMAT_PCM = 0x0001
_WAVE_FORMAT_IEEE_FLOAT = 0x0003
_UNKNOWN_SIZE = 0xFFFF_FFFF              # a 32-bit size field of RF64, whose true value is in ds64
# bext: Description[256] Originator[32] OriginatorReference[32] OriginationDate[10]
# OriginationTime[8] TimeReference (low and high DWORD) Version UMID[64] Reserved[190].
_BEXT = struct.Struct("<256s32s32s10s8sQH64s190s")
_DS64 = struct.Struct("<QQQI")           # RIFF size, data size, sample count, table length


@dataclass(frozen=True)
class BroadcastInfo:
    """What a WAV's `bext` chunk says about its sound.

    Attributes:
        time_reference_samples: the first sample's time of day, in samples since midnight at the
            file's own rate (a video's start timecode, converted); 0: the sound starts at zero.
        description: what the sound is ("dub music stem"), ASCII; at most 256 bytes are kept.
        originator: who made it, ASCII; at most 32 bytes are kept.
    """

    time_reference_samples: int = 0
    description: str = ""
    originator: str = "dubber"

    def __post_init__(self) -> None:
        if not 0 <= self.time_reference_samples < 1 << 64:
            raise ValueError(f"time_reference_samples must fit in 64 bits, got {self.time_reference_samples}")


def _ascii(text: str) -> bytes:
    """bext text fields are ASCII: a character outside it becomes "?", and struct pads with NULs."""
    return text.encode("ascii", errors="replace")


def bext_chunk(info: BroadcastInfo) -> bytes:
    """The `bext` chunk (id, size, fields) of `info`.

    Origination date and time stay empty: a run and its rerun must write byte-identical files
    (a resumed job is checked against an uninterrupted one that way)."""
    fields = _BEXT.pack(_ascii(info.description), _ascii(info.originator), b"", b"", b"",
                        info.time_reference_samples, BEXT_VERSION, b"", b"")
    return _chunk(b"bext", fields)


def _chunk(chunk_id: bytes, payload: bytes) -> bytes:
    """A RIFF chunk; an odd-sized payload gets the pad byte RIFF requires after it."""
    return chunk_id + struct.pack("<I", len(payload)) + payload + b"\0" * (len(payload) & 1)


def _format_chunks(channels: int, sample_rate: int, bits: int, num_samples: int) -> bytes:
    """`fmt ` (and for float the `fact` chunk that non-PCM formats carry)."""
    block_align = channels * bits // 8
    tag = _WAVE_FORMAT_IEEE_FLOAT if bits == 32 else _WAVE_FORMAT_PCM
    fmt = struct.pack("<HHIIHH", tag, channels, sample_rate, sample_rate * block_align, block_align, bits)
    if tag == _WAVE_FORMAT_PCM:
        return _chunk(b"fmt ", fmt)
    fact = struct.pack("<I", min(num_samples, _UNKNOWN_SIZE))
    return _chunk(b"fmt ", fmt + struct.pack("<H", 0)) + _chunk(b"fact", fact)


def data_size(channels: int, bits: int, num_samples: int) -> int:
    """Bytes of sample data (pad byte not counted)."""
    return num_samples * channels * bits // 8


def wav_header(channels: int, sample_rate: int, bits: int, num_samples: int,
               info: BroadcastInfo = BroadcastInfo()) -> bytes:
    """Everything in front of the samples: the RIFF (or RF64) header, bext, fmt, and the data
    chunk's id and size. The caller writes `data_size(...)` bytes of samples after it, then one
    zero byte when that count is odd.

    Raises:
        ValueError: `bits` is not 16, 24 or 32, or `channels` is not 1-8.
    """
    if bits not in SUPPORTED_BITS:
        raise ValueError(f"bits must be one of {list(SUPPORTED_BITS)}, got {bits}")
    if not 0 < channels <= 8:
        raise ValueError(f"expected 1 to 8 channels, got {channels}")
    samples_bytes = data_size(channels, bits, num_samples)
    chunks = bext_chunk(info) + _format_chunks(channels, sample_rate, bits, num_samples)
    # RIFF size: everything after its own 8 bytes, "WAVE" and the data chunk's pad byte included.
    riff_bytes = 4 + len(chunks) + 8 + samples_bytes + (samples_bytes & 1)
    if samples_bytes <= RIFF_LIMIT_BYTES:
        return b"RIFF" + struct.pack("<I", riff_bytes) + b"WAVE" + chunks + b"data" + struct.pack("<I", samples_bytes)
    ds64 = _chunk(b"ds64", _DS64.pack(riff_bytes + 8 + _DS64.size, samples_bytes, num_samples, 0))
    unknown = struct.pack("<I", _UNKNOWN_SIZE)
    return b"RF64" + unknown + b"WAVE" + ds64 + chunks + b"data" + unknown


def encode_samples(block: np.ndarray, bits: int) -> bytes:
    """Float samples (samples, channels) as interleaved little-endian WAV data.

    Integers are the nearest step of 2**(bits-1) to full scale (the inverse of how readers scale
    them back), so +1.0 stops one step short; the caller clips to [-1, 1] first, since anything
    further out would wrap around. 32 bits keep the floats as they are.
    """
    interleaved = np.ascontiguousarray(block, dtype=np.float32).reshape(-1)
    if bits == 32:
        return interleaved.astype("<f4", copy=False).tobytes()
    full_scale = 1 << (bits - 1)
    steps = np.rint(interleaved * np.float32(full_scale))   # exact in float32: a power-of-two scale
    ints = np.clip(steps, -full_scale, full_scale - 1).astype("<i4")
    if bits == 16:
        return ints.astype("<i2").tobytes()
    return ints.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()   # the low three bytes of each, in order
