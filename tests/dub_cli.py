"""Running the real `dub` command in a subprocess, and small media helpers for its tests."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import struct
import subprocess
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

BIN = Path(sys.executable).parent / "dub"


@contextlib.contextmanager
def reaped(proc: subprocess.Popen):
    """`proc` for the block; killed if it is still running when the block ends (a wait that
    failed leaves no process behind)."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()


def restore_ctrl_c() -> None:
    """In a child process (a `preexec_fn`): Ctrl-C as a terminal has it, even when the tests run
    from a script in a shell's background (which starts them with SIGINT ignored, and a child
    inherits that)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def dub_command() -> list[str]:
    """The installed console script when present, else the module (same entry point)."""
    return [str(BIN)] if BIN.exists() else [sys.executable, "-m", "dubber.cli"]


def dub_env(tmp: Path, **extra: str) -> dict[str, str]:
    """An environment that cannot see real weights or the user's cache, and never downloads."""
    env = dict(os.environ)
    env.update(DUB_CACHE_DIR=str(tmp / "dub-cache"), HF_HOME=str(tmp / "hf-home"), HF_HUB_OFFLINE="1",
               HF_HUB_CACHE=str(tmp / "hf-home" / "hub"), AUDIOSTORY_CACHE=str(tmp / "audiostory-cache"),
               PYTHONDONTWRITEBYTECODE="1")
    env.pop("DUB_FFMPEG", None)
    env.update(extra)
    return env


def run_dub(args: Sequence[str | os.PathLike], env: dict[str, str], timeout: float = 120,
            cwd: str | os.PathLike | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*dub_command(), *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, stdin=subprocess.DEVNULL)


def json_events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under `folder` (hidden ones too) with size and mtime."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def ffmpeg(*args: str) -> None:
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
                    *args], check=True, capture_output=True)


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """(channels, samples) float array and rate of a WAV file."""
    import soundfile

    data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    return data.T, rate


def decode_track(path: Path, track: int = 0) -> tuple[np.ndarray, int]:
    """Decode audio track `track` of a media file to (channels, samples) float32, with PyAV
    (edit lists honoured, so encoder priming is not counted)."""
    import av

    chunks, rate = [], 0
    with av.open(str(path)) as container:
        stream = container.streams.audio[track]
        for frame in container.decode(stream):
            arr = frame.to_ndarray()
            if frame.format.is_packed:
                arr = arr.reshape(-1, len(frame.layout.channels)).T
            chunks.append(arr.astype(np.float32))
            rate = frame.sample_rate
    return np.concatenate(chunks, axis=1), rate


def video_packets(path: Path) -> list[bytes]:
    """The raw bytes of every video packet, in file order."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [bytes(p) for p in container.demux(stream) if p.size]


def wav_chunks(path: Path) -> list[tuple[str, int, bytes]]:
    """(id, size, payload) of each chunk of a WAV or RF64 file, in file order, read by hand (not
    through the writer's own code). The walk stops at the data chunk, listed with no payload."""
    chunks = []
    with open(path, "rb") as f:
        f.seek(12)   # RIFF/RF64, its size, WAVE
        while len(header := f.read(8)) == 8:
            chunk_id, size = header[:4].decode("ascii"), struct.unpack("<I", header[4:])[0]
            if chunk_id == "data":
                chunks.append((chunk_id, size, b""))
                break
            chunks.append((chunk_id, size, f.read(size)))
            f.seek(size & 1, os.SEEK_CUR)   # an odd-sized chunk is followed by a pad byte
    return chunks


def bext_time_reference(path: Path) -> int:
    """TimeReference of a Broadcast WAV: the 64-bit sample count at byte 338 of its bext chunk
    (after Description 256, Originator 32, OriginatorReference 32, OriginationDate 10 and
    OriginationTime 8 bytes, EBU Tech 3285)."""
    bext = next(payload for chunk_id, _, payload in wav_chunks(path) if chunk_id == "bext")
    return struct.unpack_from("<Q", bext, 338)[0]


def placeholder_checkpoint(root: Path, parts: Sequence[str]) -> Path:
    """A checkpoint folder with the files `parts` (relative paths) standing in for the real ones:
    empty configs, and weights files whose own index is whole (a .safetensors header naming no
    tensor, a legacy pickle of a small dict), so the layout is found without any weights in it."""
    import pickle

    for rel in parts:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".safetensors":
            path.write_bytes(struct.pack("<Q", 2) + b"{}")
        elif path.suffix == ".bin":
            path.write_bytes(pickle.dumps({"placeholder": 0}, protocol=2))
        else:
            path.write_text("{}")
    return root
