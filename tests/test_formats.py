"""The delivery formats editors hand over, dubbed end to end by the `dub` command on the CPU.

Each source is the same synthetic cartoon (two shots, a hard cut at frame 48, a sound track)
encoded as an editor's export would be: ProRes 422 HQ, DNxHR, 10-bit HEVC, interlaced MPEG-2
(DVD), VP9 with Opus (WebM), AV1, MJPEG (AVI), a camera's AVCHD transport stream, and a
phone's variable-frame-rate H.264 shot upright (rotation 90). For each: `dub` succeeds, finds
the cut on its frame, copies every picture packet bit for bit, and the dub track lasts exactly
round(frames * rate / fps) samples. What cannot be done is refused in one sentence (exit 2).
"""
from __future__ import annotations

import functools
import json
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile

from dub_cli import decode_track, dub_env, run_dub, video_packets
from dubber.media.ffmpeg import ffmpeg_exe
from dubber.media.mux import mux
from samples.synth import SynthSpec, synthesize
from vision.probe import probe

WIDTH, HEIGHT = 256, 144          # px
SHOT_FRAMES = (48, 48)            # two shots: the cut is on frame 48
CUT_FRAME = SHOT_FRAMES[0]
SR = 48000                        # Hz, the dub's sample rate

@dataclass(frozen=True)
class Export:
    """How an editor's tool would have written the source: file name, picture rate, ffmpeg's
    output arguments, and the encoders those need."""

    file_name: str
    rate: str
    args: tuple[str, ...]
    encoders: tuple[str, ...]


# DVD: NTSC rate, top field first, a GOP of 15 with B-frames, MPEG audio; the program stream
# starts its sound a little before its picture.
DVD_ARGS = ("-vf", "setfield=tff", "-c:v", "mpeg2video", "-flags", "+ilme+ildct", "-field_order", "tt",
            "-g", "15", "-bf", "2", "-b:v", "2M", "-c:a", "mp2", "-ar", "48000", "-shortest")
HEVC_10BIT_ARGS = ("-c:v", "libx265", "-preset", "ultrafast", "-pix_fmt", "yuv420p10le",
                   "-x265-params", "log-level=error")
EXPORTS = {
    "prores": Export("clip.mov", "24", ("-c:v", "prores_ks", "-profile:v", "3", "-pix_fmt", "yuv422p10le",
                                        "-c:a", "pcm_s24le"), ("prores_ks",)),
    "dnxhr_mxf": Export("clip.mxf", "24", ("-c:v", "dnxhd", "-profile:v", "dnxhr_sq", "-pix_fmt", "yuv422p",
                                           "-c:a", "pcm_s24le"), ("dnxhd",)),
    "hevc_10bit": Export("clip.mp4", "24", (*HEVC_10BIT_ARGS, "-tag:v", "hvc1", "-c:a", "aac"), ("libx265",)),
    "hevc_10bit_mkv": Export("clip.mkv", "24", (*HEVC_10BIT_ARGS, "-c:a", "flac"), ("libx265",)),
    "mpeg2_dvd": Export("clip.mpg", "30000/1001", DVD_ARGS, ("mpeg2video", "mp2")),
    "vp9_webm": Export("clip.webm", "24", ("-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8",
                                           "-b:v", "500k", "-pix_fmt", "yuv420p", "-c:a", "libopus"),
                       ("libvpx-vp9", "libopus")),
    "av1": Export("clip.mkv", "24", ("-c:v", "libsvtav1", "-preset", "12", "-pix_fmt", "yuv420p", "-c:a", "libopus"),
                  ("libsvtav1", "libopus")),
    "mjpeg_avi": Export("clip.avi", "24", ("-c:v", "mjpeg", "-q:v", "3", "-pix_fmt", "yuvj420p", "-c:a", "pcm_s16le"),
                        ("mjpeg",)),
    # Animation intermediates: UT Video in an AVI (lossless, what Blender and After Effects export),
    # and a web upload in VP8.
    "utvideo_avi": Export("clip.avi", "24", ("-c:v", "utvideo", "-pix_fmt", "yuv420p", "-c:a", "pcm_s16le"),
                          ("utvideo",)),
    "vp8_webm": Export("clip.webm", "24", ("-c:v", "libvpx", "-b:v", "500k", "-c:a", "libopus"),
                       ("libvpx", "libopus")),
    # A camera's AVCHD transport stream: interlaced H.264 and AC-3 sound. Its H.264 is repackaged
    # (start codes become lengths) for MP4/MKV, so its slices are compared, not its packets.
    "avchd_m2ts": Export("clip.m2ts", "24", ("-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
                                             "-flags", "+ildct+ilme", "-x264-params", "interlaced=1:tff=1",
                                             "-c:a", "ac3", "-f", "mpegts"), ("libx264", "ac3")),
}
# (source, output suffix) pairs whose every picture packet must come through unchanged.
PACKET_COPIES = [("prores", ".mov"), ("dnxhr_mxf", ".mov"), ("hevc_10bit", ".mp4"), ("hevc_10bit_mkv", ".mkv"),
                 ("mpeg2_dvd", ".mp4"), ("mpeg2_dvd", ".mkv"), ("vp9_webm", ".mp4"), ("av1", ".mkv"),
                 ("mjpeg_avi", ".mp4")]


@functools.lru_cache(maxsize=1)
def _encoders() -> frozenset[str]:
    done = subprocess.run([ffmpeg_exe(), "-hide_banner", "-encoders"], capture_output=True, text=True, check=True)
    return frozenset(line.split()[1] for line in done.stdout.splitlines() if line.startswith((" V", " A")))


def _ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args],
                   check=True, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def cartoon(tmp_path_factory) -> Path:
    """The pictures as raw RGB and the sound as a WAV, from one lossless master, for every format."""
    folder = tmp_path_factory.mktemp("formats")
    master = folder / "master.mp4"
    synthesize(master, SynthSpec(width=WIDTH, height=HEIGHT, fps=Fraction(24), shot_frames=SHOT_FRAMES,
                                 audio=True, crf=0))
    _ffmpeg("-i", str(master), "-map", "0:v", "-f", "rawvideo", "-pix_fmt", "rgb24", str(folder / "frames.rgb"))
    _ffmpeg("-i", str(master), "-map", "0:a", "-c:a", "pcm_s16le", str(folder / "sound.wav"))
    return folder


def _source(cartoon: Path, name: str) -> Path:
    export = EXPORTS[name]
    missing = [e for e in export.encoders if e not in _encoders()]
    if missing:
        pytest.skip(f"this ffmpeg has no {', '.join(missing)} encoder")
    path = cartoon / name / export.file_name
    if not path.exists():
        path.parent.mkdir()
        _ffmpeg("-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{WIDTH}x{HEIGHT}", "-framerate", export.rate,
                "-i", str(cartoon / "frames.rgb"), "-i", str(cartoon / "sound.wav"), "-map", "0:v", "-map", "1:a",
                *export.args, str(path))
    return path


def _dub(source: Path, out: Path, *extra: str) -> dict:
    """Run `dub` and return its manifest; the command must succeed."""
    proc = run_dub([source, "-o", out, "--json-progress", *extra], dub_env(out.parent), timeout=180)
    assert proc.returncode == 0, proc.stderr
    done = json.loads(proc.stdout.strip().splitlines()[-1])
    return json.loads(Path(done["outputs"]["manifest"]).read_text())


def _cuts(manifest: dict) -> list[int]:
    return [shot["start_frame"] for shot in manifest["analysis"]["shots"][1:]]


def _refusal(proc) -> str:
    """The one sentence a refused command printed; it must exit 2 without a traceback."""
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def _video_codec(path: Path) -> str:
    with av.open(str(path)) as container:
        return container.streams.video[0].codec_context.codec.canonical_name


def _dub_track_samples(path: Path) -> int:
    """Samples the dub track (the first audio track) plays: the length an MP4/MOV states, which
    trims the AAC encoder's priming and padding; Matroska's FLAC is decoded and counted."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        if container.format.name.startswith("mov"):
            return round(stream.duration * stream.time_base * stream.codec_context.sample_rate)
    return decode_track(path)[0].shape[1]


@pytest.mark.parametrize(("name", "suffix"), PACKET_COPIES)
def test_editor_format_is_dubbed_with_its_picture_untouched(cartoon, tmp_path, name, suffix):
    source = _source(cartoon, name)
    info = probe(source)
    out = tmp_path / f"dubbed{suffix}"
    manifest = _dub(source, out)

    assert _cuts(manifest) == [CUT_FRAME]
    assert _video_codec(out) == _video_codec(source)
    assert video_packets(out) == video_packets(source)
    assert _dub_track_samples(out) == round(Fraction(info.frame_count) * SR / info.fps)


def test_kept_original_sound_of_a_prores_master_is_copied_as_pcm(cartoon, tmp_path):
    """A ProRes master gets its dub as 24-bit PCM beside its own PCM sound, copied as it was; a
    phone's H.264 .mov keeps an AAC dub."""
    source = _source(cartoon, "prores")
    out = tmp_path / "dubbed.mov"
    _dub(source, out, "--keep-original")
    with av.open(str(out)) as container:
        codecs = [s.codec_context.name for s in container.streams.audio]
    assert codecs == ["pcm_s24le", "pcm_s24le"]
    original, _ = decode_track(out, 1)
    source_sound, _ = decode_track(source, 0)
    assert original.shape == source_sound.shape
    assert np.array_equal(original, source_sound)


def test_kept_pcm_sound_in_an_mp4_stays_lossless_and_a_lossy_re_encode_is_said(cartoon, tmp_path):
    """An .mp4 cannot hold PCM: the master's production sound goes in as ALAC, sample for sample;
    a track that must lose quality (MPEG-1 Layer II into an .mp4, as AAC) is named in one line."""
    source = tmp_path / "camera.mov"   # H.264 with 24-bit PCM sound, as cameras and recorders write
    _ffmpeg("-i", str(_source(cartoon, "prores")), "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "copy",
            str(source))
    out = tmp_path / "dubbed.mp4"
    proc = run_dub([source, "-o", out, "--keep-original", "--json-progress"], dub_env(tmp_path), timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert not any("re-encoded" in w for w in json.loads(proc.stdout.splitlines()[-1])["warnings"])
    with av.open(str(out)) as container:
        assert [s.codec_context.name for s in container.streams.audio] == ["aac", "alac"]
    original, _ = decode_track(out, 1)
    source_sound, _ = decode_track(source, 0)
    assert np.array_equal(original, source_sound)
    broadcast = tmp_path / "broadcast.mkv"
    _ffmpeg("-i", str(source), "-map", "0:v", "-map", "0:a", "-c:v", "copy", "-c:a", "mp2", str(broadcast))
    proc = run_dub([broadcast, "-o", tmp_path / "b.mp4", "--keep-original", "--json-progress"], dub_env(tmp_path),
                   timeout=180)
    assert proc.returncode == 0, proc.stderr
    (note,) = [w for w in json.loads(proc.stdout.splitlines()[-1])["warnings"] if "re-encoded" in w]
    assert note.startswith("a .mp4 file cannot hold the source's audio track 1 (mp2, re-encoded as aac) as it is;")


def test_a_second_picture_stream_is_named_as_left_out(cartoon, tmp_path):
    source = tmp_path / "two_pictures.mp4"   # a main picture and a small proxy, as some cameras write
    _ffmpeg("-i", str(_source(cartoon, "prores")), "-map", "0:v", "-map", "0:v", "-map", "0:a",
            "-c:v:0", "libx264", "-c:v:1", "libx264", "-s:v:1", "64x36", "-pix_fmt", "yuv420p", "-c:a", "aac",
            str(source))
    proc = run_dub([source, "-o", tmp_path / "out.mp4", "--json-progress"], dub_env(tmp_path), timeout=180)
    assert proc.returncode == 0, proc.stderr
    warnings = json.loads(proc.stdout.splitlines()[-1])["warnings"]
    assert "the source's other picture stream (video (stream 1) (h264)) is not in the output: a dub carries the " \
           "first picture only" in warnings, warnings
    with av.open(str(tmp_path / "out.mp4")) as container:
        assert len(container.streams.video) == 1


def test_phone_video_keeps_rotation_and_variable_frame_times(cartoon, tmp_path):
    spec = SynthSpec(width=WIDTH, height=HEIGHT, fps=Fraction(24), shot_frames=SHOT_FRAMES, audio=False, vfr=True)
    upright = tmp_path / "upright.mp4"
    synthesize(upright, spec)
    phone = tmp_path / "phone.mp4"
    _ffmpeg("-display_rotation", "90", "-i", str(upright), "-i", str(cartoon / "sound.wav"), "-map", "0:v",
            "-map", "1:a", "-c:v", "copy", "-c:a", "aac", "-shortest", str(phone))
    source = probe(phone)
    assert source.is_vfr and source.rotation == 90

    out = tmp_path / "phone.dub.mp4"
    manifest = _dub(phone, out)
    dubbed = probe(out)
    assert _cuts(manifest) == [CUT_FRAME]
    assert dubbed.rotation == 90
    assert dubbed.frame_pts == source.frame_pts
    assert video_packets(out) == video_packets(phone)
    assert _dub_track_samples(out) == source.total_samples(SR)


def _h264_slices(path: Path, folder: Path) -> list[bytes]:
    """The coded picture slices (NAL units of type 1 and 5) of a file's H.264, container aside."""
    annex_b = folder / f"{path.name}.h264"
    _ffmpeg("-i", str(path), "-map", "0:v", "-c", "copy", "-bsf:v", "h264_mp4toannexb", "-f", "h264", str(annex_b))
    units = (unit.rstrip(b"\x00") for unit in annex_b.read_bytes().split(b"\x00\x00\x01"))
    return [unit for unit in units if unit and unit[0] & 0x1F in (1, 5)]


def test_camera_transport_stream_keeps_its_coded_pictures(cartoon, tmp_path):
    source = _source(cartoon, "avchd_m2ts")
    info = probe(source)
    out = tmp_path / "dubbed.mp4"
    manifest = _dub(source, out)

    assert _cuts(manifest) == [CUT_FRAME]
    slices = _h264_slices(out, tmp_path)
    assert len(slices) == info.frame_count and slices == _h264_slices(source, tmp_path)
    assert _dub_track_samples(out) == info.total_samples(SR)


def _click_at_frame(info, frame: int, path: Path) -> None:
    """A silent dub WAV as long as the video with one short click where `frame` starts."""
    audio = np.zeros((info.total_samples(SR), 2), np.float32)
    at = info.frame_to_sample(frame, SR)
    audio[at:at + 48] = 0.9
    soundfile.write(str(path), audio, SR, subtype="FLOAT")


def _shown_and_heard_s(path: Path, frame: int) -> tuple[float, float]:
    """When the output shows picture `frame` and when its first track's click sounds (seconds)."""
    with av.open(str(path)) as container:
        shown = sorted(float(f.time) for f in container.decode(container.streams.video[0]))[frame]
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        start_s = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
    sound, rate = decode_track(path, 0)
    level = np.abs(sound[0])
    heard = start_s + int(np.argmax(level > 0.5 * level.max())) / rate
    return shown, heard


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
@pytest.mark.parametrize("keep_original", [False, True])
@pytest.mark.parametrize("name", ["mpeg2_dvd", "avchd_m2ts"])
def test_mpeg_stream_dub_is_in_sync_with_its_picture(cartoon, tmp_path, name, suffix, keep_original):
    # In these MPEG streams the sound starts a few ms before the picture; the dub must still land
    # on the frame it was written for, and every copied frame needs its own timestamp, one frame apart.
    source = _source(cartoon, name)
    info = probe(source)
    assert info.video_start_s > 0.004
    wav = tmp_path / "click.wav"
    _click_at_frame(info, CUT_FRAME, wav)
    out = tmp_path / f"dubbed{suffix}"
    mux(source, wav, out, video_info=info, original_audio=keep_original)

    shown, heard = _shown_and_heard_s(out, CUT_FRAME)
    assert abs(heard - shown) < 0.0015   # Matroska's clock counts whole milliseconds
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        times = sorted(Fraction(p.pts) * stream.time_base for p in container.demux(stream) if p.size)
    frame_s = 1 / info.fps
    assert len(set(times)) == info.frame_count
    assert all(abs((b - a) - frame_s) <= Fraction(1, 1000) for a, b in zip(times, times[1:]))


def test_an_mxf_master_is_dubbed_to_a_mov_next_to_it_by_default(cartoon, tmp_path):
    source = _source(cartoon, "dnxhr_mxf")
    proc = run_dub([source], dub_env(tmp_path), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert [p.name for p in source.parent.glob("clip.dub.*") if p.suffix in (".mov", ".mp4", ".mxf")] == ["clip.dub.mov"]


@pytest.mark.parametrize("name,suffix", [("utvideo_avi", ".mov"), ("vp8_webm", ".mkv"), ("mjpeg_avi", ".mp4")])
def test_a_dub_is_written_by_default_into_a_container_that_carries_its_picture(cartoon, tmp_path, name, suffix):
    """The picture is copied, never re-encoded: UT Video fits no .mp4, VP8 only Matroska; MJPEG
    fits the usual .mp4. The same naming holds for `dub batch`."""
    source = _source(cartoon, name)
    folder = tmp_path / "in"
    folder.mkdir()
    copy = folder / source.name
    copy.write_bytes(source.read_bytes())
    proc = run_dub([copy], dub_env(tmp_path), timeout=180)
    assert proc.returncode == 0, proc.stderr
    dubbed = [p.name for p in folder.iterdir() if p.name.startswith("clip.dub.") and p.suffix != ".json"]
    assert dubbed == [f"clip.dub{suffix}"]
    assert video_packets(folder / dubbed[0]) == video_packets(copy)
    if name != "mjpeg_avi":
        batch = run_dub(["batch", folder / source.name, "-o", tmp_path / "out"], dub_env(tmp_path), timeout=180)
        assert batch.returncode == 0, batch.stderr
        assert (tmp_path / "out" / f"clip.dub{suffix}").is_file()


@pytest.mark.parametrize("name,given,fits", [("vp8_webm", ".mp4", "dubbed.mkv"), ("vp9_webm", ".mov", "dubbed.mkv or dubbed.mp4")])
def test_a_container_that_cannot_carry_the_picture_is_refused_before_any_work(cartoon, tmp_path, name, given, fits):
    sentence = _refusal(run_dub([_source(cartoon, name), "-o", tmp_path / f"dubbed{given}"], dub_env(tmp_path),
                                timeout=60))
    assert sentence.endswith(f"name the output {fits} with -o.")
    assert not list(tmp_path.glob("dubbed*"))


@pytest.mark.parametrize("suffix", [".webm", ".avi", ".mxf"])
def test_output_container_we_cannot_write_is_refused_in_one_sentence(cartoon, tmp_path, suffix):
    source = _source(cartoon, "mjpeg_avi")
    sentence = _refusal(run_dub([source, "-o", tmp_path / f"dubbed{suffix}"], dub_env(tmp_path), timeout=60))
    assert suffix in sentence and ".mov" in sentence
    assert not list(tmp_path.glob("dubbed*"))


def test_image_sequence_is_refused_with_the_command_that_makes_it_a_video(cartoon, tmp_path):
    sequence = tmp_path / "sequence"
    sequence.mkdir()
    _ffmpeg("-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{WIDTH}x{HEIGHT}", "-framerate", "24",
            "-i", str(cartoon / "frames.rgb"), str(sequence / "frame_%04d.png"))
    sentence = _refusal(run_dub([sequence / "frame_0001.png", "-o", tmp_path / "dubbed.mov"], dub_env(tmp_path),
                                timeout=60))
    assert "image sequence" in sentence
    advice = sentence.split("e.g. ")[1].rstrip(").").split()
    assert advice[0] == "ffmpeg"

    # The advice, followed in the sequence's folder, gives a video that dubs with its cut found.
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", *advice[1:]], cwd=sequence, check=True, timeout=120)
    manifest = _dub(sequence / advice[-1], tmp_path / "dubbed.mov")
    assert _cuts(manifest) == [CUT_FRAME]
    assert manifest["media"]["frame_count"] == sum(SHOT_FRAMES)


def _first_picture_index(video: Path, cartoon: Path) -> int:
    """Which frame of the cartoon a video's first decoded picture is (the closest one)."""
    frames = np.frombuffer((cartoon / "frames.rgb").read_bytes(), np.uint8).reshape(-1, HEIGHT, WIDTH, 3)
    with av.open(str(video)) as container:
        first = next(container.decode(container.streams.video[0])).to_ndarray(format="rgb24").astype(np.int32)
    return int(np.argmin([np.abs(first - frame).mean() for frame in frames]))


def test_capture_that_begins_mid_gop_is_dubbed_in_sync(cartoon, tmp_path):
    # A broadcast or camera capture cut at any transport packet starts with pictures whose
    # keyframe is missing: nothing shows them, so the dub starts with the first picture that shows.
    if not {"libx264", "mp2"} <= _encoders():
        pytest.skip("this ffmpeg has no libx264 or mp2 encoder")
    whole = tmp_path / "whole.ts"
    _ffmpeg("-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{WIDTH}x{HEIGHT}", "-framerate", "24",
            "-i", str(cartoon / "frames.rgb"), "-i", str(cartoon / "sound.wav"), "-map", "0:v", "-map", "1:a",
            "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-g", "24", "-x264-params", "open-gop=1",
            "-c:a", "mp2", "-f", "mpegts", str(whole))
    data = whole.read_bytes()
    capture = tmp_path / "capture.ts"
    capture.write_bytes(data[len(data) // 188 // 5 * 188:])   # a fifth in, on a transport packet
    with av.open(str(capture)) as container:
        first_packet = next(p for p in container.demux(container.streams.video[0]) if p.size)
        assert not first_packet.is_keyframe
        shown = sum(1 for _ in container.decode(container.streams.video[0]))

    info = probe(capture)
    assert info.frame_count == shown
    first = _first_picture_index(capture, cartoon)
    assert 0 < first < CUT_FRAME
    manifest = _dub(capture, tmp_path / "capture.dub.mp4")
    assert _cuts(manifest) == [CUT_FRAME - first]

    wav = tmp_path / "click.wav"
    _click_at_frame(info, CUT_FRAME - first, wav)
    out = tmp_path / "clicked.mp4"
    mux(capture, wav, out, video_info=info)
    shown_s, heard_s = _shown_and_heard_s(out, CUT_FRAME - first)
    assert abs(heard_s - shown_s) < 0.0015
