"""Put the dub into the video: the picture is copied bit for bit, the dub becomes the first (and
default) audio track, the original sound (every audio track of the source) optionally follows.

Tracks are named twice over: a `title` tag (what mp4/mkv players list) and the handler name
(what QuickTime, Premiere and the .mov muxer keep; .mov drops titles and languages).
Into mp4/mov a constant-rate picture gets a track timescale that holds every frame time as a
whole number of ticks; timestamps from a millisecond container (.mkv, .webm) are snapped back to
that exact frame grid, so the output reads 24000/1001 rather than a rate near it.

The dub track is trimmed or padded to exactly round(frame_count * sr / fps) samples inside
ffmpeg (atrim + apad), so the audio ends where the picture ends even if the WAV were off by a few
samples; the output is written under a hidden temporary name and renamed when ffmpeg succeeds.
A lossy (AAC) dub is decoded from the written file and its true peak measured; where the codec
pushed it over the mix's, it is encoded again a little quieter (`_hold_true_peak`).
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Callable

from vision.types import AudioTrack, ExtraStream, MediaInfo

from ..atomic import atomic_output, check_output_folder, public_path
from ..errors import InputError, OutputError
from .ffmpeg import is_same_file, run_ffmpeg

log = logging.getLogger(__name__)

DUB_TITLE = "Dub"
ORIGINAL_TITLE = "Original"
DUB_LANGUAGE = "zxx"   # ISO 639-2 "no linguistic content": music and effects, no speech
# ffmpeg's native AAC quantizer searches. At 320 kbit/s "fast" encodes a minute of 48 kHz stereo
# 2-4x quicker than "twoloop" (ffmpeg's default) with the same band levels after decoding; with
# intensity stereo off (a low-bitrate tool that discards the high bands' stereo phase) its
# waveform error stays within a few dB of twoloop's.
AAC_CODERS = ("fast", "twoloop")
DEFAULT_AAC_CODER = "fast"
MIN_TIMESCALE = 10_000   # ticks per second of an mp4/mov picture track at least (as ffmpeg picks)
# A lossy encoder rebuilds the waveform from quantised bands, and its peaks move: a mix limited
# to -1.05 dBTP comes back from AAC at -0.95. Such a dub track is decoded and measured after
# encoding, and encoded again that much quieter (and this much more) while it peaks over its
# ceiling, at most MAX_PEAK_ENCODES times in all.
LOSSY_DUB_CODECS = frozenset({"aac"})
PEAK_TRIM_MARGIN_DB = 0.05
MAX_PEAK_ENCODES = 3

# The same inputs and seed give the same bytes: without these the Matroska muxer draws random
# segment and track UIDs on every run, and muxers and encoders stamp ffmpeg's version (the
# container's "encoder" tag, FLAC's vendor string, AAC's fill element). Titles, languages,
# dispositions, timecode and chapters are set explicitly and are unaffected.
BITEXACT_ARGS = ("-fflags", "+bitexact", "-flags:a", "+bitexact")


@dataclass(frozen=True)
class Container:
    """What an output extension means to ffmpeg: the muxer, the codecs the dub may use (first is
    the default), the codecs an original track may be copied in, and whether to move the index
    to the front (progressive playback of mp4/mov)."""

    muxer: str
    dub_codecs: tuple[str, ...]
    copyable: tuple[str, ...] | None   # None: the container takes any audio codec as-is
    faststart: bool


_MP4_COPYABLE = ("aac", "mp3", "alac", "ac3", "eac3", "opus", "flac")
_PCM = ("pcm_s16le", "pcm_s24le", "pcm_s32le", "pcm_f32le", "pcm_s16be", "pcm_s24be", "pcm_s32be", "pcm_f32be")

CONTAINERS: dict[str, Container] = {
    ".mp4": Container("mp4", ("aac", "alac"), _MP4_COPYABLE, True),
    ".m4v": Container("mp4", ("aac", "alac"), _MP4_COPYABLE, True),
    ".mov": Container("mov", ("aac", "alac", "pcm_s24le"), _MP4_COPYABLE + _PCM, True),
    ".mkv": Container("matroska", ("flac", "aac", "pcm_s24le"), None, False),
}


def container_for(path: str | os.PathLike[str]) -> Container:
    """The container an output path asks for, by extension.

    Raises:
        OutputError: an extension we cannot write; the message lists the ones we can.
    """
    suffix = Path(path).suffix.lower()
    try:
        return CONTAINERS[suffix]
    except KeyError:
        valid = ", ".join(CONTAINERS)
        raise OutputError(f"Cannot write a {suffix or 'extension-less'} file; name the output with one of {valid}.") from None


def _check_paths(video_path: Path, audio_wav_path: Path, out_path: Path) -> None:
    if not video_path.is_file():
        raise InputError(f"The video {video_path} does not exist; check the path.")
    if not audio_wav_path.is_file():
        raise InputError(f"The audio file {audio_wav_path} does not exist; render the dub first.")
    for source in (video_path, audio_wav_path):
        if is_same_file(out_path, source):
            raise OutputError(f"The output {out_path} would overwrite an input; choose another output path.")
    check_output_folder(out_path)


def _wav_facts(audio_wav_path: Path) -> tuple[int, int]:
    """(sample rate in Hz, number of samples) of the dub WAV."""
    import soundfile

    try:
        info = soundfile.info(str(audio_wav_path))
    except RuntimeError as err:
        raise InputError(f"The audio file {audio_wav_path} is not a readable WAV; render the dub again.") from err
    return int(info.samplerate), int(info.frames)


def _aac_args(index: int, bitrate: str, coder: str) -> list[str]:
    """Bitrate and quantizer search of the AAC encoder of output audio stream `index`."""
    args = [f"-b:a:{index}", bitrate, f"-aac_coder:a:{index}", coder]
    if coder == "fast":
        args += [f"-aac_is:a:{index}", "0"]
    return args


def _dub_codec_args(codec: str, options: "MuxOptions", total_samples: int) -> list[str]:
    # atrim/apad count samples, so the track length is exact whatever the WAV holds.
    trim = f"volume={options.dub_gain_db:.4f}dB:precision=float," if options.dub_gain_db else ""
    args = ["-filter:a:0", f"{trim}atrim=end_sample={total_samples},apad=whole_len={total_samples}",
            "-c:a:0", codec]
    if codec == "aac":
        args += _aac_args(0, options.bitrate, options.aac_coder)
    return args + ["-disposition:a:0", "default", *_name_args(0, DUB_TITLE, options.container),
                   "-metadata:s:a:0", f"language={DUB_LANGUAGE}"]


def _name_args(index: int, name: str, container: "Container") -> list[str]:
    """Label output audio stream `index`: the title mp4/mkv players list and, in mp4/mov, the
    handler name (what QuickTime and Premiere show, and the only label .mov keeps)."""
    args = [f"-metadata:s:a:{index}", f"title={name}"]
    if container.muxer in ("mp4", "mov"):
        args += [f"-metadata:s:a:{index}", f"handler_name={name}"]
    return args


def original_track_name(track: AudioTrack, number: int, count: int) -> str:
    """"Original" for a lone track; numbered when there are several; the source's title kept."""
    base = ORIGINAL_TITLE if count == 1 else f"{ORIGINAL_TITLE} {number}"
    return f"{base}: {track.title}" if track.title else base


# Uncompressed and lossless production sound: kept lossless (ALAC) where it cannot be copied.
LOSSLESS_AUDIO = ("pcm_", "truehd", "mlp", "wavpack", "tta", "flac", "alac")


def original_codec(track: AudioTrack, container: Container, dub_codec: str) -> str:
    """How a source audio track is kept after the dub: "copy" where the container takes its codec;
    lossless sound the container cannot take as it is becomes ALAC where the container has it;
    anything else is re-encoded as the dub is."""
    if container.copyable is None or track.codec in container.copyable:
        return "copy"
    if track.codec.startswith(LOSSLESS_AUDIO) and "alac" in container.dub_codecs:
        return "alac"
    return dub_codec


def reencoded_originals(tracks: tuple[AudioTrack, ...], container: Container, dub_codec: str) -> list[str]:
    """One phrase per kept source track that loses quality in this container ("audio track 1
    (dts, re-encoded as aac)"); lossless conversions are not listed."""
    return [f"audio track {number} ({track.codec}, re-encoded as {codec})" for number, track in enumerate(tracks, start=1)
            if (codec := original_codec(track, container, dub_codec)) not in ("copy", "alac")]


def _original_args(tracks: tuple[AudioTrack, ...], options: "MuxOptions") -> list[str]:
    """Every source audio track after the dub (see `original_codec`); never default; the source's
    language tag travels with it."""
    container = options.container
    args = ["-map", "0:a"]
    for number, track in enumerate(tracks, start=1):
        codec = original_codec(track, container, options.codec)
        if codec != "copy":
            log.info("original audio track %d (%s) cannot be stored in %s as-is; re-encoding it as %s",
                     number, track.codec, container.muxer, codec)
        args += [f"-c:a:{number}", codec]
        if codec == "aac":
            args += _aac_args(number, options.bitrate, options.aac_coder)
        name = original_track_name(track, number, len(tracks))
        args += [f"-disposition:a:{number}", "0", *_name_args(number, name, container)]
        if track.language:
            args += [f"-metadata:s:a:{number}", f"language={track.language}"]
    return args


# Subtitle codecs that are text: an MP4/MOV output carries them as mov_text.
TEXT_SUBTITLES = frozenset({"subrip", "srt", "ass", "ssa", "webvtt", "mov_text", "text"})
PICTURE_CODECS = frozenset({"mjpeg", "png"})   # cover art an MP4 can hold (.mov and .mkv keep none)


def _extra_args(extras: tuple[ExtraStream, ...], container: Container) -> tuple[list[str], list[str]]:
    """ffmpeg arguments that carry the source's subtitles, attachments and cover art over where
    the output container can hold them, and one phrase for each that it cannot: MP4/MOV hold only
    text subtitles (as mov_text) and no attachments, cover art stays only in MP4, MKV holds every
    subtitle and attachment."""
    args: list[str] = []
    dropped: list[str] = []
    mkv = container.muxer == "matroska"
    subtitles, pictures = 0, 1   # output subtitle / video stream numbers (video 0 is the picture)
    for extra in extras:
        if extra.kind == "subtitle" and (mkv or extra.codec in TEXT_SUBTITLES):
            text_in_mkv = "srt" if extra.codec == "mov_text" else "copy"   # mov_text exists only in MP4/MOV
            codec = text_in_mkv if mkv else ("copy" if extra.codec == "mov_text" else "mov_text")
            args += ["-map", f"0:{extra.index}", f"-c:s:{subtitles}", codec]
            subtitles += 1
        elif extra.kind == "attachment" and mkv:
            args += ["-map", f"0:{extra.index}"]
        elif extra.kind == "cover" and container.muxer == "mp4" and extra.codec in PICTURE_CODECS:
            args += ["-map", f"0:{extra.index}", f"-c:v:{pictures}", "copy", f"-disposition:v:{pictures}", "attached_pic"]
            pictures += 1
        elif extra.kind == "video":
            continue   # a dub carries one picture in any container; named by the caller (`other_pictures`)
        else:
            dropped.append(f"{extra.label} ({extra.codec})" if extra.codec else extra.label)
    if any(e.kind == "attachment" for e in extras) and mkv:
        args += ["-c:t", "copy"]
    return args, dropped


def _subtitles_from_picture_args(picture_s: Fraction) -> list[str]:
    """Text subtitles made to start no earlier than the picture, which lies at `picture_s` on the
    timeline before the muxer: a packet that ends by then is dropped, one that spans it starts with
    it. In an MP4/MOV whose timeline moved back, a text sample starting before zero is cut by the
    edit list, and ffmpeg's reader then shows every later cue early by the part cut off.
    The expressions hold no commas (they separate the filters): max(a, b) is written with abs, and
    ceil of a tiny fraction is 1 for a packet that ends no later than the picture, else 0."""
    at = f"{float(picture_s):.6f}"

    def before(ts: str) -> str:   # how far a timestamp lies before the picture, else 0
        return f"(abs({ts}-{at}/TB)-({ts}-{at}/TB))/2"

    return ["-bsf:s", f"noise=drop=ceil(({at}/tb-pts-duration+0.5)/1e30),"
                      f"setts=pts=PTS+{before('PTS')}:dts=DTS+{before('DTS')}:duration=DURATION-{before('PTS')}"]


def other_pictures(extras: tuple[ExtraStream, ...]) -> list[str]:
    """The source's picture streams besides the one dubbed, one phrase each ("video (stream 1)
    (h264)"): a dub carries one picture, whatever the container."""
    return [f"{e.label} ({e.codec})" if e.codec else e.label for e in extras if e.kind == "video"]


def video_timescale(fps: Fraction) -> int:
    """Ticks per second for an mp4/mov picture track at `fps`: a multiple of fps's numerator, so
    every frame time is a whole number of ticks, doubled up to at least MIN_TIMESCALE."""
    timescale = fps.numerator
    while timescale < MIN_TIMESCALE:
        timescale *= 2
    return timescale


def _video_timing_args(info: MediaInfo, container: "Container") -> list[str]:
    """Exact frame timing and Apple's HEVC tag for mp4/mov; nothing for mkv or VFR pictures."""
    if container.muxer not in ("mp4", "mov"):
        return []
    args = ["-tag:v:0", "hvc1"] if info.video_codec == "hevc" else []
    if info.is_vfr or info.fps <= 0:
        return args
    timescale = video_timescale(info.fps)
    args += ["-video_track_timescale", str(timescale)]
    frame_ticks = timescale * info.fps.denominator // info.fps.numerator
    if (1 / (info.fps * info.time_base)).denominator != 1:
        # The source's clock cannot hold the frame times (1 ms in mkv): snap every timestamp,
        # counted in the new ticks from the first packet, to the nearest frame.
        snap = f"round((%s-STARTPTS)/{frame_ticks})*{frame_ticks}+STARTPTS"
        args += ["-bsf:v:0", f"setts=time_base=1/{timescale}:prescale=1:pts={snap % 'PTS'}:"
                           f"dts={snap % 'DTS'}:duration={frame_ticks}"]
    return args


@dataclass(frozen=True)
class MuxOptions:
    """Resolved settings of one mux: output container, dub codec, bitrate and AAC quantizer
    search, keep the original?"""

    container: Container
    codec: str
    bitrate: str
    original_audio: bool
    aac_coder: str = DEFAULT_AAC_CODER
    original_tracks: tuple[AudioTrack, ...] = ()
    extras: tuple[ExtraStream, ...] = ()
    dub_gain_db: float = 0.0   # applied to the dub as it is encoded (0 or less: a true-peak trim)


def _picture_start_s(info: MediaInfo, keeps_original: bool) -> Fraction:
    """Where ffmpeg puts the first picture on the output's timeline: `video_start_s` after the
    file's start, except in a container whose clock may jump (MPEG program and transport streams),
    where ffmpeg starts the timeline at the first stream used: the picture's own stream when it is
    the only one taken from the source."""
    start_s = info.video_start_s if info.picture_lead_s is None or keeps_original else info.picture_lead_s
    return Fraction(start_s).limit_denominator(1_000_000)


def mux_args(video_path: Path, audio_wav_path: Path, out_temp: Path, info: MediaInfo,
             options: MuxOptions) -> list[str]:
    """The ffmpeg arguments (after the common flags) that write `out_temp`."""
    container = options.container
    sample_rate, _ = _wav_facts(audio_wav_path)
    # The picture may start after the file's first sound (trimmed and camera files): the dub starts
    # with the first picture, and the output ends with the last one, both counted from the file start.
    keeps_original = options.original_audio and bool(options.original_tracks)
    start_s = _picture_start_s(info, keeps_original)
    picture_offset: list[str] = []
    timeline_shift: list[str] = []
    chapters_input: list[str] = []
    chapters_from = "0"
    if start_s > 0 and not keeps_original and info.picture_lead_s is None:
        # Nothing of the source's sound comes along, so nothing needs to start before the picture:
        # the picture moves to the start instead of the dub to the picture. A dub encoded with a
        # delay (AAC) then has its priming hidden by the edit list, as at a start of 0, instead of
        # sounding for 1024 samples before the first picture.
        picture_offset, start_s = ["-itsoffset", f"{-float(start_s):.6f}"], Fraction(0)
    elif start_s > 0 and keeps_original and container.muxer in ("mp4", "mov"):
        # The kept sound starts before the picture. An MP4/MOV track can either wait (an empty
        # edit) or skip its encoder priming, not both, so a dub that waited for the picture would
        # sound its 1024 priming samples before it and be that much longer than the pictures.
        # Instead the output's timeline moves back so that the picture and the dub start at zero;
        # the original's head before the picture falls before zero, where the edit list hides it.
        # The muxer makes the shift, in each output stream's clock: an input offset would be
        # rounded to each input stream's own clock (a whole packet for an AVI's MP3 or AC-3) and
        # move the original against the picture. (Matroska has no edit lists: its muxer would
        # move every stream forward again, but not the chapters; there the dub waits instead.)
        timeline_shift = ["-output_ts_offset", f"{-float(start_s):.6f}"]
        # The muxer does not move chapters: they come from the source opened once more and moved
        # back at its input (ffmpeg reads no packets of an input that no stream is taken from).
        chapters_input = ["-itsoffset", f"{-float(start_s):.6f}", "-i", str(video_path)]
        chapters_from = "2"
    end_s = start_s + info.frame_time(info.frame_count)
    dub_offset = ["-itsoffset", f"{float(start_s):.6f}"] if start_s > 0 else []
    # MPEG program streams stamp only the frames that begin a packet; genpts fills in the others,
    # which an MP4 needs for every frame and without which the Matroska muxer refuses the copy.
    args = ["-fflags", "+genpts", *picture_offset, "-i", str(video_path), *dub_offset, "-i", str(audio_wav_path),
            *chapters_input, "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", *_video_timing_args(info, container)]
    args += _dub_codec_args(options.codec, options, info.total_samples(sample_rate))
    if options.original_audio and options.original_tracks:
        args += _original_args(options.original_tracks, options)
    args += _extra_args(options.extras, container)[0]
    if (picture_offset or timeline_shift) and container.muxer in ("mp4", "mov") and any(
            e.kind == "subtitle" and e.codec in TEXT_SUBTITLES for e in options.extras):
        args += _subtitles_from_picture_args(start_s)
    # -t stops copied streams at the picture's end (a kept original is often a few ms longer);
    # the last frame starts a whole frame earlier, so the picture is never cut.
    args += ["-t", f"{float(end_s):.6f}", *timeline_shift, "-map_metadata", "0", "-map_chapters", chapters_from]
    if info.start_timecode:
        args += ["-timecode", info.start_timecode]   # only the picture is mapped, not a tmcd track
    if container.faststart:
        args += ["-movflags", "+faststart"]
    return args + [*BITEXACT_ARGS, "-f", container.muxer, str(out_temp)]


# Picture codecs of post-production masters: a .mov holding one gets its dub as 24-bit PCM, as
# editors and delivery specs expect beside ProRes or DNx picture, not as a lossy AAC track.
MASTER_VIDEO_CODECS = ("prores", "dnxhd", "dnxhr", "cfhd", "v210", "v410", "rawvideo", "qtrle", "ffv1")


def resolve_dub_codec(out_path: Path, audio_codec: str | None, video_info: MediaInfo | None = None) -> str:
    container = container_for(out_path)
    if audio_codec is None:
        if "pcm_s24le" in container.dub_codecs and container.muxer == "mov" and video_info is not None and (
                video_info.video_codec in MASTER_VIDEO_CODECS
                or any(t.codec.startswith("pcm_") for t in video_info.audio_tracks)):
            return "pcm_s24le"   # a master, or a source whose own sound is uncompressed
        return container.dub_codecs[0]
    if audio_codec not in container.dub_codecs:
        valid = ", ".join(container.dub_codecs)
        raise OutputError(f"A {out_path.suffix} file cannot carry the dub as {audio_codec}; use one of {valid}.")
    return audio_codec


def encoded_true_peak_db(path: Path, sample_rate: int, total_samples: int) -> float:
    """True peak (dBTP, 4x oversampled) of the dub track of a written output, as a player
    decodes it (the programme track: the dub is the default)."""
    from ..loudness import track_true_peak_db
    from .audio_io import decode_audio_track

    decoded = decode_audio_track(path, sample_rate, total_samples)
    try:
        return track_true_peak_db(decoded) if decoded is not None else float("-inf")
    finally:
        if decoded is not None:
            decoded.close()


def _hold_true_peak(write: Callable[[MuxOptions], None], options: MuxOptions, encoded: Path, wav: Path,
                    total_samples: int, ceiling_db: float | None) -> float:
    """Encode the lossy dub again, quieter, while its decoded true peak is over `ceiling_db`
    (None: the true peak of the WAV it is encoded from, which the mix held under its ceiling).
    Returns the gain the written dub got (dB, 0 or less)."""
    from ..loudness import track_true_peak_db
    from ..wav_measures import WavTrack

    if ceiling_db is None:
        with WavTrack(wav) as mix:
            limit_db = track_true_peak_db(mix)
    else:
        limit_db = ceiling_db
    if not math.isfinite(limit_db):   # a silent mix encodes to silence: nothing to hold
        return 0.0
    sample_rate, _ = _wav_facts(wav)
    gain_db = 0.0
    for encodes in range(1, MAX_PEAK_ENCODES + 1):
        peak_db = encoded_true_peak_db(encoded, sample_rate, total_samples)
        if peak_db <= limit_db or encodes == MAX_PEAK_ENCODES:
            break
        gain_db += limit_db - peak_db - PEAK_TRIM_MARGIN_DB
        log.info("the encoded dub peaks at %.2f dBTP, over %.2f; encoding it again %.2f dB quieter",
                 peak_db, limit_db, -gain_db)
        options = replace(options, dub_gain_db=gain_db)
        write(options)
    if peak_db > limit_db:
        log.warning("the encoded dub still peaks at %.2f dBTP, over %.2f, after %d encodes", peak_db, limit_db,
                    MAX_PEAK_ENCODES)
    return gain_db


def mux(video_path: str | os.PathLike[str], audio_wav_path: str | os.PathLike[str],
        out_path: str | os.PathLike[str], *, original_audio: bool = False, video_info: MediaInfo,
        audio_codec: str | None = None, audio_bitrate: str = "320k", aac_coder: str = DEFAULT_AAC_CODER,
        on_progress: Callable[[float], None] | None = None,
        true_peak_ceiling_db: float | None = None) -> tuple[str, ...]:
    """Write `out_path`: the video stream of `video_path` copied, the dub WAV as the first,
    default audio track ("Dub"), the original audio tracks after it when asked, and the source's
    subtitles, attachments and cover art wherever the output container can hold them.

    Args:
        video_path: the source video (never modified).
        audio_wav_path: the mixed dub, as long as the video.
        out_path: .mp4, .m4v, .mov or .mkv; written atomically.
        original_audio: keep every audio track of the source after the dub (each copied when
            the container allows, else re-encoded like the dub), with its language tag.
        video_info: the probed facts of `video_path` (frame count, fps, codec, timecode, its
            audio tracks and other streams); the input is not opened again to learn them.
        audio_codec: dub codec; None picks by container: AAC for mp4/mov (24-bit PCM for a .mov
            whose picture is a master codec such as ProRes or DNx, or whose sound is PCM), FLAC
            for mkv.
        audio_bitrate: AAC bitrate.
        aac_coder: ffmpeg's AAC quantizer search, "fast" (default) or "twoloop" (slower).
        on_progress: called with the seconds of the output written so far, while ffmpeg writes.
        true_peak_ceiling_db: what a lossy (AAC) dub may peak at, in dBTP, measured on the
            encoded track after writing: over it, the dub is encoded again, as much quieter
            (see `LOSSY_DUB_CODECS`). None: the WAV's own true peak, so the delivered track
            peaks no higher than the mix it carries.

    Returns:
        What the output could not keep, one phrase each ("attachment font.ttf (ttf)"); empty when
        every stream came along.

    Raises:
        InputError: the video or WAV is missing or unreadable.
        OutputError: the output would overwrite an input, its folder is not writable, or the
            extension or codec is not supported.
        FFmpegError: ffmpeg failed (its last message is included).
    """
    video, wav, out = (Path(p).expanduser().resolve() for p in (video_path, audio_wav_path, out_path))
    codec = resolve_dub_codec(out, audio_codec, video_info)
    if aac_coder not in AAC_CODERS:
        raise OutputError(f"Unknown AAC coder {aac_coder!r}; use one of {', '.join(AAC_CODERS)}.")
    _check_paths(video, wav, out)
    keep = original_audio and video_info.has_audio
    if original_audio and not keep:
        log.warning("%s has no audio track to keep; writing the dub alone", video)
    expected = _samples_to_fit(wav, video_info)
    tracks = video_info.audio_tracks if keep else ()
    options = MuxOptions(container_for(out), codec, audio_bitrate, keep, aac_coder, tracks, video_info.extra_streams)
    with atomic_output(out) as temp:
        def write(chosen: MuxOptions) -> None:
            run_ffmpeg(mux_args(video, wav, temp, video_info, chosen), what=f"writing {public_path(out).name}",
                       on_progress=on_progress)

        write(options)
        if codec in LOSSY_DUB_CODECS:
            _hold_true_peak(write, options, temp, wav, expected, true_peak_ceiling_db)
    log.info("wrote %s", out)
    return tuple(_extra_args(options.extras, options.container)[1])


def _samples_to_fit(wav: Path, video_info: MediaInfo) -> int:
    """The samples the dub track must have to last as long as the video; a WAV of another length
    is said (ffmpeg trims or pads it to fit)."""
    sample_rate, samples = _wav_facts(wav)
    expected = video_info.total_samples(sample_rate)
    if samples != expected:
        log.warning("dub WAV has %d samples, the video needs %d; trimming/padding to fit", samples, expected)
    return expected
