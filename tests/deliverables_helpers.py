"""Media and readers shared by the deliverables tests: a 6 s, 24 fps clip with sound and the same
clip as trims and camera files leave it; the pictures a player shows, where picture and dub
start, the one error line of a run, and copying an input into place."""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import av

from tests.dub_cli import ffmpeg

FPS = 24
FRAMES = 144


def deliverables_media_in(folder: Path) -> dict[str, Path]:
    """A 6 s, 24 fps clip with sound, and the same clip as trims and camera files leave it."""
    base = folder / "base.mp4"
    ffmpeg("-f", "lavfi", "-i", f"testsrc=size=160x90:rate={FPS}", "-f", "lavfi", "-i", "sine=f=440:sample_rate=48000",
           "-t", "6", "-c:v", "libx264", "-g", "12", "-pix_fmt", "yuv420p", "-c:a", "aac", str(base))
    made = {"base": base}
    # Picture 1 s after the sound: what trims and many camera files look like.
    made["late_picture"] = folder / "late picture.mp4"
    ffmpeg("-itsoffset", "1.0", "-i", str(base), "-i", str(base), "-map", "0:v", "-map", "1:a", "-c", "copy",
           str(made["late_picture"]))
    # A lossless trim: the MP4 keeps the pictures before 1.3 s that the edit list hides.
    made["edit_list"] = folder / "edit list.mp4"
    ffmpeg("-ss", "1.3", "-i", str(base), "-c", "copy", str(made["edit_list"]))
    # Broadcast timestamps: the file starts at 3600 s (01:00:00:00).
    made["timecode_mkv"] = folder / "broadcast.mkv"
    ffmpeg("-i", str(base), "-c", "copy", "-output_ts_offset", "3600", str(made["timecode_mkv"]))
    return made


def _shown_pictures(path: Path) -> tuple[int, str]:
    """(count, sha256) of the video packets a player shows (edit-list pre-roll left out)."""
    digest, count = hashlib.sha256(), 0
    with av.open(str(path)) as container:
        for packet in container.demux(container.streams.video[0]):
            if packet.size and not packet.is_discard:
                digest.update(bytes(packet))
                count += 1
    return count, digest.hexdigest()


def _first_times(path: Path) -> tuple[float, float]:
    """(first picture's time, first dub sample's time) in seconds, as a player places them."""
    with av.open(str(path)) as container:
        video = next(f for f in container.decode(container.streams.video[0]))
    with av.open(str(path)) as container:
        audio = next(f for f in container.decode(container.streams.audio[0]))
    return float(video.time), float(audio.time)


def _one_sentence(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.startswith("dub: ") and "backend:" not in line]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def _copy(src: Path, folder: Path, name: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copyfile(src, folder / (name or src.name)))
