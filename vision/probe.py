"""Read what a video file is without decoding more than its first picture.

The video stream's packets are demuxed once (no decoding, so this reads the file at disk speed):
that gives the exact frame count even where the container stores none, shows truncation (fewer
packets than the header promises), and yields every frame's timestamp to tell constant from
variable frame rate.
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from vision.errors import NotAVideo, VideoNotFound, VideoUnreadable
from vision.types import AudioTrack, ExtraStream, MediaInfo

log = logging.getLogger(__name__)

# Demuxers that read single pictures, not moving video.
_STILL_IMAGE_FORMATS = ("image2", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe",
                        "svg_pipe", "jpegxl_pipe", "qoi_pipe", "ppm_pipe", "pgm_pipe", "pam_pipe")
# A packet may sit this many time-base ticks off the nominal grid (rounding in ms time bases).
_CFR_TOLERANCE_TICKS = 1
# Frames covering less than this share of the duration a header states mean a truncated file.
TRUNCATION_SHARE = 0.75
# Give up looking for a first picture after this many packets (a broken stream).
_FIRST_FRAME_PACKET_LIMIT = 600
# SMPTE timecode as files state it: HH:MM:SS:FF, with ";" (or "." / ",") before the frames for
# drop-frame; some writers use ";" throughout.
_TIMECODE = re.compile(r"^(\d{1,2})[:;](\d{2})[:;](\d{2})([:;.,])(\d{2,3})$")


@dataclass(frozen=True)
class _PacketScan:
    pts: tuple[int, ...]  # sorted presentation times of the frames shown, in the stream time base
    last_duration: int  # ticks the last frame lasts
    clean_end: bool  # False when demuxing stopped on an error
    # Packets an edit list hides (decoded only to start the first shown frame, as after a
    # `-ss ... -c copy` trim): present in the file, so they count towards its promised frames.
    hidden: int = 0
    # Packets before the first keyframe (a capture that begins mid-GOP): nothing decodes them and
    # ffmpeg's stream copy drops them, so they are no frames of the video either.
    leading: int = 0
    # AVI null frames: zero-size index entries that repeat the picture before for one frame period.
    # The header counts them, but the demuxer skips them and leaves a gap in the timestamps, so
    # the picture before stays on screen across the gap (the video's timing is variable).
    null_frames: int = 0


def probe(path: str | os.PathLike) -> MediaInfo:
    """Describe the video at `path`: exact fps, frame count, size, rotation, codec, every audio
    track, and the subtitle, attachment and cover-art streams.

    Returns:
        MediaInfo; for variable-frame-rate files `is_vfr` is True, `fps` is the average rate and
        `frame_pts` holds each frame's time (time_base ticks, first frame at 0).

    Raises:
        VideoNotFound: no file at `path`.
        NotAVideo: the file is not a video (text, a still image, audio only).
        VideoUnreadable: the file is empty, truncated or cannot be decoded.
    """
    file = _check_file(Path(path))
    container = _open(file)
    with container:
        stream = _video_stream(container, file)
        first = _first_frame(container, stream, file)
        scan = _scan_packets(container, stream, file)
        info = _media_info(file, container, stream, scan, first)
        _check_complete(info, container, stream, scan, file)
    return info


def picture_codec(path: str | os.PathLike) -> str | None:
    """The canonical codec name of a file's first picture stream, read from its header alone
    (milliseconds); None when the file cannot be read as a video (`probe` says why)."""
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            return _codec_name(_video_stream(container, Path(path))) or None
    except (av.error.FFmpegError, NotAVideo, OSError, UnicodeDecodeError):
        return None


def _check_file(path: Path) -> Path:
    if not path.exists():
        raise VideoNotFound(f"No file at {path}; check the path and try again.")
    if path.is_dir():
        raise NotAVideo(f"{path} is a folder, not a video file; give the path of a video file.")
    if path.stat().st_size == 0:
        raise VideoUnreadable(f"{path} is empty (0 bytes); re-export or copy the video again.")
    if not os.access(path, os.R_OK):
        raise VideoUnreadable(f"{path} cannot be read; check its file permissions.")
    return path


def _looks_like_mp4(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(12)[4:8] == b"ftyp"


def _open(path: Path):
    try:
        return av.open(str(path), metadata_errors="ignore")
    except (av.error.InvalidDataError, av.error.EOFError) as exc:
        if _looks_like_mp4(path):
            raise VideoUnreadable(f"{path} is an MP4 file without a readable index, so it is probably "
                                  "truncated; re-export or copy the video again.") from exc
        raise NotAVideo(f"{path} is not a video file ffmpeg can read; give an MP4, MOV, MKV or "
                        "similar video.") from exc
    except av.error.FFmpegError as exc:
        raise VideoUnreadable(f"{path} could not be opened ({exc.strerror}); check the file.") from exc


def _video_stream(container, path: Path):
    if container.format.name == "gif":   # often animated, but no video container takes its pictures as they are
        raise NotAVideo(f"{path} is a GIF, which dub does not read; make it a video first "
                        "(e.g. ffmpeg -i in.gif -vf scale=trunc(iw/2)*2:trunc(ih/2)*2 -pix_fmt yuv420p in.mp4).")
    if container.format.name in _STILL_IMAGE_FORMATS:
        raise NotAVideo(f"{path} is a still image, not a video; give a video file (make an image sequence "
                        "into one first, e.g. ffmpeg -framerate 24 -i frame_%04d.png -c:v prores_ks sequence.mov).")
    pictures = [s for s in container.streams.video
                if not s.disposition & av.stream.Disposition.attached_pic]
    if not pictures:
        if container.streams.audio:
            raise NotAVideo(f"{path} holds only audio and no pictures; give a video file.")
        raise NotAVideo(f"{path} has no video stream; give a video file.")
    return pictures[0]


def _first_frame(container, stream, path: Path):
    """Decode the first picture: proves the stream is decodable and carries the rotation."""
    try:
        for count, packet in enumerate(container.demux(stream)):
            for frame in packet.decode():
                return frame
            if count >= _FIRST_FRAME_PACKET_LIMIT:
                break
    except av.error.FFmpegError as exc:
        raise VideoUnreadable(f"{path} cannot be decoded ({exc.strerror}); the file is damaged or "
                              "uses an unsupported codec, so re-export it as H.264.") from exc
    raise VideoUnreadable(f"{path} has a video stream but no picture could be decoded; the file is "
                          "damaged or truncated, so re-export it.")


def _scan_packets(container, stream, path: Path) -> _PacketScan:
    container.seek(0, stream=stream, any_frame=False, backward=True)
    pts: list[int] = []
    leading: list[int] = []
    last_duration, clean_end, hidden = 0, True, 0
    counts_entries = _dts_counts_index_entries(container, stream)
    first_dts = last_dts = None
    stored = 0   # packets with data, shown or not
    try:
        for packet in container.demux(stream):
            if packet.pts is None or packet.size == 0:
                continue
            stored += 1
            if counts_entries and packet.dts is not None:
                first_dts = packet.dts if first_dts is None else first_dts
                last_dts = packet.dts
            if packet.is_discard:
                hidden += 1
                continue
            if not pts and not hidden and not packet.is_keyframe:
                # (After packets an edit list hides, the first shown one decodes from them.)
                leading.append(packet.pts)
                continue
            pts.append(packet.pts)
            last_duration = packet.duration or 0
    except av.error.FFmpegError as exc:
        log.warning("%s: demuxing stopped early: %s", path, exc)
        clean_end = False
    if not pts:   # no packet is marked as a keyframe: the container does not say, so take them all
        pts, leading = leading, []
    pts.sort()
    # Every index entry between the first and the last stored one is a frame, and those without
    # data are null frames. Null frames after the last stored entry cannot be told from a file
    # cut short, so they are not counted and such a file still reads as truncated.
    null_frames = 0 if first_dts is None else max(0, last_dts - first_dts + 1 - stored)
    return _PacketScan(tuple(pts), last_duration, clean_end, hidden, len(leading), null_frames)


def _dts_counts_index_entries(container, stream) -> bool:
    """True where a video packet's decoding time is its entry number in the file's index, one
    tick per frame (AVI): a skipped number is then an entry without data, a null frame."""
    rate = _nominal_rate(stream)
    return container.format.name == "avi" and rate is not None and rate * Fraction(stream.time_base) == 1


def _nominal_rate(stream) -> Fraction | None:
    for rate in (stream.base_rate, stream.average_rate, stream.guessed_rate):
        if rate is not None and rate > 0:
            return Fraction(rate)
    return None


def _is_cfr(pts: tuple[int, ...], rate: Fraction | None, time_base: Fraction) -> bool:
    if rate is None or len(pts) < 2:
        return rate is not None
    ticks_per_frame = 1 / (rate * time_base)
    # The rounding allowance is for clocks much finer than a frame; where a tick is a whole frame
    # (AVI), a tick off the grid is a frame shown twice or skipped, which changes the timing.
    tolerance = _CFR_TOLERANCE_TICKS if ticks_per_frame > 2 * _CFR_TOLERANCE_TICKS else 0
    first = pts[0]
    return all(abs((p - first) - round(i * ticks_per_frame)) <= tolerance
               for i, p in enumerate(pts))


def _media_info(path: Path, container, stream, scan: _PacketScan, first) -> MediaInfo:
    time_base = Fraction(stream.time_base)
    rate = _nominal_rate(stream)
    count = len(scan.pts)
    if count == 0:
        raise VideoUnreadable(f"{path} has no video frames; re-export the video.")
    cfr = _is_cfr(scan.pts, rate, time_base)
    frame_pts = None
    if cfr:
        fps = rate
    else:
        fps, frame_pts = _vfr_timing(scan, time_base)
    audio = next(iter(container.streams.audio), None)
    return MediaInfo(
        path=str(path), duration_s=float(Fraction(count) / fps), fps=fps, frame_count=count,
        width=stream.codec_context.width, height=stream.codec_context.height,
        rotation=int(first.rotation) % 360, video_codec=_codec_name(stream),
        pix_fmt=stream.codec_context.pix_fmt or "", time_base=time_base, is_vfr=not cfr,
        frame_pts=frame_pts, has_audio=audio is not None,
        audio_codec=_codec_name(audio) if audio is not None else None,
        audio_rate=audio.codec_context.sample_rate if audio is not None else None,
        audio_channels=audio.codec_context.channels if audio is not None else None,
        size_bytes=path.stat().st_size, start_timecode=_start_timecode(container, stream),
        video_start_s=_video_start_s(container, scan.pts[0] * time_base),
        picture_lead_s=_picture_lead_s(container, stream, scan.pts[0]),
        audio_tracks=tuple(_audio_track(s) for s in container.streams.audio),
        extra_streams=_extra_streams(container, stream),
    )


def _audio_track(stream) -> AudioTrack:
    tags = _tags(stream)
    language = tags.get("language")
    return AudioTrack(_codec_name(stream), None if language in (None, "", "und") else language,
                      tags.get("title") or None, bool(stream.disposition & av.stream.Disposition.default))


def _extra_streams(container, picture) -> tuple[ExtraStream, ...]:
    """Subtitle tracks, attached files, cover art and further pictures (a second angle, a proxy),
    in file order (the picture itself excluded)."""
    extras = []
    for stream in container.streams:
        kind = {"subtitle": "subtitle", "attachment": "attachment", "video": "video"}.get(stream.type)
        if stream.type == "video" and stream.disposition & av.stream.Disposition.attached_pic:
            kind = "cover"
        if kind is None or stream.index == picture.index:
            continue
        extras.append(ExtraStream(kind, stream.index, _codec_name(stream), _stream_label(stream, kind)))
    return tuple(extras)


def _tags(stream) -> dict[str, str]:
    """A stream's metadata tags, keys in lower case (containers differ in case)."""
    return {k.lower(): str(v) for k, v in stream.metadata.items()}


def _stream_label(stream, kind: str) -> str:
    tags = _tags(stream)
    name = tags.get("filename") or tags.get("title") or tags.get("language")
    return f"{kind} {name}" if name and name != "und" else f"{kind} (stream {stream.index})"


def _video_start_s(container, first_pts_s: Fraction) -> float:
    """Seconds from the file's start (its earliest stream, as ffmpeg reads it) to the first picture
    shown: after a trim or in camera files the sound often starts before the picture."""
    file_start_s = Fraction(container.start_time or 0, 1_000_000)   # AV_TIME_BASE units
    return max(0.0, float(first_pts_s - file_start_s))


def _picture_lead_s(container, stream, first_pts: int) -> float | None:
    """In a container whose clock may jump, seconds from the video stream's start (its first
    packet, shown or not) to its first picture; None for other containers."""
    if not container.format.flags & av.format.Flags.ts_discont.value:
        return None
    start = stream.start_time if stream.start_time is not None else first_pts
    return max(0.0, float((first_pts - start) * stream.time_base))


def _codec_name(stream) -> str:
    """The codec's canonical ffmpeg name ("mp3", "av1"), not the decoder's ("mp3float", "libdav1d")."""
    context = stream.codec_context
    codec = getattr(context, "codec", None) if context is not None else None
    if codec is None:  # no decoder in this ffmpeg build: the descriptor name is all there is
        return getattr(context, "name", None) or ""
    return codec.canonical_name or codec.name


def _start_timecode(container, video) -> str | None:
    """First frame's timecode: the picture stream's tag, a timecode (tmcd) track's, or the file's."""
    data = [s for s in container.streams if s.type == "data"]
    for tags in (video.metadata, *(s.metadata for s in data), container.metadata):
        text = next((str(v).strip() for k, v in tags.items() if k.lower() == "timecode"), None)
        if text:
            timecode = _normalise_timecode(text)
            if timecode is not None:
                return timecode
            log.debug("ignoring unreadable timecode tag %r", text)
    return None


def _normalise_timecode(text: str) -> str | None:
    match = _TIMECODE.match(text)
    if match is None:
        return None
    hours, minutes, seconds, mark, frames = match.groups()
    if int(minutes) > 59 or int(seconds) > 59:
        return None
    drop = mark != ":" or ";" in text[:-len(frames) - 1]
    return f"{int(hours):02d}:{minutes}:{seconds}{';' if drop else ':'}{frames}"


def _vfr_timing(scan: _PacketScan, time_base: Fraction) -> tuple[Fraction, tuple[int, ...]]:
    first = scan.pts[0]
    rel = tuple(p - first for p in scan.pts)
    last = scan.last_duration
    if last <= 0:  # no duration stored: assume the last frame lasts as long as the one before
        last = rel[-1] - rel[-2] if len(rel) > 1 else 1
    total_s = (rel[-1] + last) * time_base
    return Fraction(len(rel)) / total_s, rel


def _check_complete(info: MediaInfo, container, stream, scan: _PacketScan, path: Path) -> None:
    promised = stream.frames or 0
    present = info.frame_count + scan.hidden + scan.leading + scan.null_frames
    if not scan.clean_end or (promised and present < promised):
        found = f"{present} of {promised}" if promised else f"only {info.frame_count}"
        raise VideoUnreadable(f"{path} is truncated or damaged (it holds {found} frames); "
                              "re-export or copy the video again.")
    stated_s = _stated_duration_s(container, stream)
    # Containers without a frame count (Matroska, WebM) still state a duration in their header.
    if stated_s is not None and info.duration_s < TRUNCATION_SHARE * stated_s and stated_s - info.duration_s > 1.0:
        raise VideoUnreadable(f"{path} is truncated (its frames cover {info.duration_s:.1f} s of the "
                              f"{stated_s:.1f} s its header states); re-export or copy the video again.")


def _stated_duration_s(container, stream) -> float | None:
    if stream.duration:
        return float(stream.duration * stream.time_base)
    if container.duration:
        stated_s = container.duration / 1_000_000  # AV_TIME_BASE units
        start_s = (container.start_time or 0) / 1_000_000
        # Matroska writers that start at a broadcast timecode (01:00:00:00) store the end time as
        # the duration; a duration past the start is read as that end.
        return stated_s - start_s if 0 < start_s < stated_s else stated_s
    return None
