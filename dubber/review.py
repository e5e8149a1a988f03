"""The review page: one self-contained HTML file a person reads instead of the manifest.

    write_review(manifest_path, out_path=None)                          -> path of the page

Per shot a thumbnail strip, the spectrogram of the mix with the picture's structure drawn on it
(`dubber.spectrogram`), the caption and prompt and the sync figures; players for the mix and each
stem. The page embeds every picture, and every sound of up to EMBED_AUDIO_MAX_S, as a data URI:
it opens offline, from a mail attachment or a USB stick, with nothing fetched. Longer sound (a
feature film's mix and stems) is linked to the files beside the page instead, which still plays
offline. The mix is read from disk a block at a time, so the page of a two-hour film takes the
memory of a short clip's.
"""
from __future__ import annotations

import base64
import html
import io
import json
import logging
import os
import tempfile
import urllib.parse
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from vision.types import MediaInfo

from . import sound_measures as sm
from . import wav_measures
from .errors import InputError, OutputError
from .spectrogram import EVENT_COLOURS, ONSET_COLOUR, spectrogram_png, track_spectrogram_png, write_atomically
from .types import MANIFEST_SCHEMA, ProgressFn, is_manifest, no_progress
from .wav_measures import WavTrack

log = logging.getLogger(__name__)

EMBED_AUDIO_MAX_S = 180.0       # longer sound is linked from the page, not embedded in it (3 min of 4 tracks: ~12 MB)
SOUND_SUFFIXES = (".wav", ".flac", ".aif", ".aiff", ".w64", ".rf64")   # read here, so short ones are embedded
MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)   # Hz an MP3 can hold

# The whole soundtrack's figures (`sound_measures.SyncReport`), as a reader names them.
FIGURE_LABELS = {
    "duration_s": "length (s)",
    "onsets": "onsets in the mix",
    "events": "visual events",
    "hit_rate": "share of the events with an onset within 0.1 s",
    "chance_rate": "chance: share of random instants with an onset within 0.1 s",
    "unmatched_onsets": "onsets that match no event or cut",
    "periodicity": "periodicity (1: a metronome)",
    "repetition": "repetition (1: a loop)",
}


# ---------------------------------------------------------------------------- the review page
THUMBS_PER_SHOT = 3
THUMB_HEIGHT_PX = 72
PROGRESS_EVERY_FRAMES = 240   # how often the thumbnails' pass says how far it is (10 s of 24p)
REVIEW_ROLE = "review"   # the page's role among a manifest's outputs


def load_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """The `dub.json` manifest at `path`.

    Raises:
        InputError: missing, not JSON, not a dubber manifest, or without the analysis and outputs
            of a finished dub.
    """
    file = Path(path)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{str(file)!r} does not exist; pass the .json manifest that dub wrote beside its output.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise InputError(f"{str(file)!r} is not a readable JSON manifest; pass the .json file dub wrote.") from None
    if not is_manifest(data):
        raise InputError(f"{str(file)!r} is not a dub manifest (no dubber.manifest schema); pass the .json file dub wrote.")
    if not _has_review_parts(data):
        raise InputError(f"{str(file)!r} lacks the analysis or the outputs of a finished dub; pass the .json file "
                         "dub wrote when it finished.")
    return data


def _has_review_parts(manifest: Mapping[str, Any]) -> bool:
    """Whether the manifest holds what the page is drawn from: the frame rate, the shots as frame
    spans, the output files by role, and (when present) well-formed events, transitions, captions
    and cues."""
    try:
        analysis = manifest["analysis"]
        if Fraction(analysis["media"]["fps"]) <= 0 or not isinstance(analysis["shots"], list):
            return False
        for shot in analysis["shots"]:
            int(shot["index"]), int(shot["start_frame"]), int(shot["end_frame"])
        for event in analysis.get("events", []):
            int(event["frame"]), str(event["kind"]), float(event["strength"])
        for span in analysis.get("transitions", []):
            int(span["start_frame"]), int(span["end_frame"])
        for caption in analysis.get("captions", []):
            caption["shot_index"], caption["text"]
        outputs, plan = manifest.get("outputs", {}), manifest.get("plan") or {}
        for cue in plan.get("cues", []):
            int(cue["shot_index"])
        return isinstance(outputs, dict) and all(isinstance(v, str) for v in outputs.values())
    except (AttributeError, KeyError, TypeError, ValueError, ZeroDivisionError):
        return False


def _outputs(manifest: Mapping[str, Any], folder: Path) -> dict[str, Path]:
    """Each output the manifest names (`recorded_outputs`), resolved like the page's folder, so
    links stay short and relative when the folder is reached by a link."""
    from .export.deliverables import recorded_outputs

    return {role: path.resolve() for role, path in recorded_outputs(manifest, folder).items()}


def video_audio_to_wav(video: Path, wav: Path, seconds: float | None = None) -> None:
    """Decode the first audio track of a video into a float32 stereo WAV, a packet at a time;
    `seconds`: the film's length, past which the encoder's padding of its last packet is left out.

    Raises:
        InputError: the file has no audio track or cannot be decoded.
    """
    import av
    import soundfile

    try:
        with av.open(str(video)) as container:
            if not container.streams.audio:
                raise InputError(f"{video} has no audio track to review; pass the manifest of a finished dub.")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="fltp", layout="stereo", rate=stream.rate)
            left = round(seconds * stream.rate) if seconds else None   # samples still wanted
            with soundfile.SoundFile(str(wav), "w", samplerate=int(stream.rate), channels=2, subtype="FLOAT") as out:
                for frame in [*container.decode(stream), None]:
                    for piece in resampler.resample(frame):
                        samples = piece.to_ndarray().T
                        if left is not None:
                            samples, left = samples[:max(left, 0)], left - len(samples)
                        out.write(samples)
    except av.error.FFmpegError as err:
        raise InputError(f"{video} cannot be decoded ({err}); pass the manifest of a finished dub.") from None


def _player_source(path: Path, page_folder: Path) -> str:
    """What an audio player on the page plays: the sound itself as an MP3 data URI when it is
    short, else a link to the file beside the page (minutes of sound would make the page
    hundreds of megabytes, and the browser would hold it all in memory)."""
    if path.suffix.lower() in SOUND_SUFFIXES:
        with WavTrack(path) as track:
            if track.duration_s <= EMBED_AUDIO_MAX_S:
                return _mp3_uri(track.read_all(), track.sample_rate)
    return urllib.parse.quote(Path(os.path.relpath(path, page_folder)).as_posix())


def _mp3_rate(sample_rate: int) -> int:
    """The MP3 rate a preview of `sample_rate` sound is heard at: itself when MP3 holds it, 44.1 kHz
    for the 88.2 and 176.4 kHz masters, else the lowest listed rate at or over it (48 kHz at most)."""
    if sample_rate in MP3_RATES:
        return sample_rate
    if sample_rate > MP3_RATES[-1] and sample_rate % 44_100 == 0:
        return 44_100
    return min(r for r in MP3_RATES if r >= min(sample_rate, MP3_RATES[-1]))


def _mp3_uri(audio: np.ndarray, sample_rate: int) -> str:
    """The sound as an MP3 data URI. MP3 holds two channels at up to 48 kHz: a surround mix is
    heard folded to one channel, and studio rates (96 kHz, 88.2 kHz) are resampled."""
    import soundfile

    if audio.shape[0] > 2:
        audio = sm.mono(audio)[None]
    rate = _mp3_rate(sample_rate)
    if rate != sample_rate and audio.shape[1] > 0:
        import soxr

        audio = soxr.resample(np.ascontiguousarray(audio.T), sample_rate, rate).T
    buffer = io.BytesIO()
    soundfile.write(buffer, np.clip(audio.T, -1.0, 1.0), rate, format="MP3", subtype="MPEG_LAYER_III")
    return "data:audio/mpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def thumbnails(video: Path, frames: Sequence[int], height: int = THUMB_HEIGHT_PX,
               decoded: Callable[[int], None] = lambda count: None, rotation: int = 0) -> dict[int, str]:
    """JPEG data URIs of the given frame indices of `video` (decoded in one pass, stopping after
    the last one wanted), turned upright by `rotation` (degrees counter-clockwise, as players
    show a phone's video); empty when the video cannot be read. `decoded` hears how many frames
    are decoded, now and then: a feature film's pass takes minutes."""
    import av

    wanted = sorted(set(int(f) for f in frames))
    out: dict[int, str] = {}
    if not wanted or not video.is_file():
        return out
    try:
        with av.open(str(video)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for index, frame in enumerate(container.decode(stream)):
                if index % PROGRESS_EVERY_FRAMES == 0:
                    decoded(index)
                if index in wanted:
                    image = frame.to_image()
                    if rotation % 360:
                        image = image.rotate(rotation % 360, expand=True)
                    image = image.resize((max(1, round(image.width * height / image.height)), height))
                    buffer = io.BytesIO()
                    image.save(buffer, format="JPEG", quality=80)
                    out[index] = "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
                if index >= wanted[-1]:
                    break
    except (av.error.FFmpegError, IndexError, OSError):
        return out
    return out


def frame_clock(analysis: Mapping[str, Any]) -> Callable[[int], float]:
    """Seconds of a frame index on the analysed video: each frame's own time, as the mix places
    sound (a variable-frame-rate phone video drifts far from frame / average rate)."""
    if not analysis["media"].get("frame_pts"):   # a constant rate: frame / rate is each frame's time
        fps = Fraction(analysis["media"]["fps"])
        return lambda frame: float(Fraction(int(frame)) / fps)
    media = MediaInfo.from_dict(dict(analysis["media"]))
    return lambda frame: float(media.frame_time(min(max(int(frame), 0), media.frame_count)))


def shot_figures(onsets_s: np.ndarray, events_s: list[float], marks_s: list[float], fps: Fraction,
                 every_onset_s: np.ndarray | None = None) -> dict[str, Any]:
    """Sync figures of one stretch: events hit within a frame and within 0.1 s, onsets that match
    nothing. `every_onset_s`: the whole film's onsets on the stretch's clock (default `onsets_s`),
    which hit its events: a sound a few milliseconds before a cut hits the event on the cut's
    frame, as the figures of the whole dub count it, though the onset belongs to the shot before."""
    frame_s = float(1 / fps)
    hitting = onsets_s if every_onset_s is None else every_onset_s
    matched = sm.hit_flags(np.asarray(events_s + marks_s), onsets_s) if (events_s or marks_s) else np.zeros(len(onsets_s), bool)
    return {"events": len(events_s),
            "hit_within_frame": int(np.sum(sm.hit_flags(hitting, events_s, frame_s))) if events_s else 0,
            "hit_within_0.1s": int(np.sum(sm.hit_flags(hitting, events_s))) if events_s else 0,
            "onsets": int(len(onsets_s)), "unmatched_onsets": int(np.sum(~matched))}


def _shot_rows(manifest: Mapping[str, Any], mix: WavTrack, onsets_s: np.ndarray,
               thumbs: Mapping[int, str], written: Callable[[int], None] = lambda count: None) -> list[str]:
    analysis, plan = manifest["analysis"], manifest.get("plan") or {}
    fps = Fraction(analysis["media"]["fps"])
    at = frame_clock(analysis)
    # Onsets are matched against every event and cut of the film, as in the figures for the whole
    # dub: an onset on the next shot's cut, or on an event just over a shot's edge, matches there too.
    all_events_s = [at(e["frame"]) for e in analysis.get("events", [])]
    all_cuts_s = [at(sh["start_frame"]) for sh in analysis["shots"] if sh["start_frame"] > 0]
    captions = {c["shot_index"]: c["text"] for c in analysis.get("captions", [])}
    prompts: dict[int, list[str]] = {}
    for cue in plan.get("cues", []):
        prompts.setdefault(int(cue["shot_index"]), []).append(str(cue.get("prompt", "")))
    rows = []
    for shot in analysis["shots"]:
        a_s, b_s = at(shot["start_frame"]), at(shot["end_frame"])
        events = [e for e in analysis.get("events", []) if shot["start_frame"] <= e["frame"] < shot["end_frame"]]
        times = [at(e["frame"]) - a_s for e in events]
        local = onsets_s[(onsets_s >= a_s) & (onsets_s < b_s)] - a_s
        spans = [(at(t["start_frame"]) - a_s, at(t["end_frame"]) - a_s)
                 for t in analysis.get("transitions", []) if t["end_frame"] > shot["start_frame"] and t["start_frame"] < shot["end_frame"]]
        sr = mix.sample_rate
        piece = mix.read(int(round(a_s * sr)), int(round(b_s * sr)))
        png = spectrogram_png(piece, sr, duration_s=b_s - a_s, transitions_s=spans, cuts_s=[0.0],
                              events=[(t, e["kind"]) for t, e in zip(times, events)], onsets_s=local)
        figures = shot_figures(local, times, [t - a_s for t in all_events_s + all_cuts_s], fps, onsets_s - a_s)
        strip = "".join(f'<img class="thumb" alt="frame {f}" src="{thumbs[f]}">' for f in _shot_frames(shot) if f in thumbs)
        event_list = ", ".join(f"{e['kind']} @ {at(e['frame']):.2f}s ({e['strength']:.2f})" for e in events) or "none"
        rows.append(
            f'<section class="shot" id="shot-{shot["index"]}"><h2>Shot {shot["index"] + 1}: '
            f'{a_s:.2f}s to {b_s:.2f}s (frames {shot["start_frame"]} to {shot["end_frame"] - 1})</h2>'
            f'<div class="strip">{strip}</div>'
            f'<p class="caption"><b>Caption:</b> {html.escape(captions.get(shot["index"], ""))}</p>'
            f'<p class="prompt"><b>Prompt:</b> {html.escape(" / ".join(prompts.get(shot["index"], [])))}</p>'
            f'<img class="spectrogram" alt="spectrogram of shot {shot["index"] + 1}" src="{_png_uri(png)}">'
            f'<p class="sync">Events: {html.escape(event_list)}<br>'
            f'{figures["hit_within_frame"]} of {figures["events"]} events hit within a frame, '
            f'{figures["hit_within_0.1s"]} within 0.1 s; {figures["unmatched_onsets"]} of {figures["onsets"]} '
            f'onsets match no event or cut.</p></section>')
        written(len(rows))
    return rows


def _shot_frames(shot: Mapping[str, Any]) -> list[int]:
    a, b = int(shot["start_frame"]), int(shot["end_frame"])
    return sorted({int(round(a + (b - 1 - a) * k / max(1, THUMBS_PER_SHOT - 1))) for k in range(THUMBS_PER_SHOT)})


PAGE_STYLE = """body{font-family:sans-serif;background:#181818;color:#e8e8e8;margin:1.5em;max-width:1400px}
h1{font-size:1.4em}h2{font-size:1.05em;margin:.2em 0}section.shot{border-top:1px solid #444;padding:.8em 0}
img.spectrogram{max-width:100%;display:block;margin:.4em 0}img.thumb{height:72px;margin-right:4px}
audio{width:100%;max-width:700px}table{border-collapse:collapse}td,th{padding:2px 10px;text-align:left}
.legend span{margin-right:1.2em}"""


def review_html(manifest: Mapping[str, Any], folder: Path, page_folder: Path | None = None,
                progress: ProgressFn = no_progress) -> str:
    """The review page for a manifest whose files are relative to `folder`; sound that is not
    embedded is linked relative to `page_folder` (default: `folder`). `progress` hears
    ("review", done, total), counting the video frames decoded for thumbnails, then the shots.

    The mix is read from disk a block at a time, so a feature film's page is made in the memory
    a short clip's takes.

    Raises:
        InputError: neither the mix WAV nor the dubbed video named in the manifest exists, or the
            video's sound cannot be decoded.
    """
    outputs = _outputs(manifest, folder)
    # Resolved like the outputs, so links stay short and relative when the folder is reached by a link.
    page_folder = Path(page_folder if page_folder is not None else folder).resolve()
    mix_path, video_path = outputs.get("mix"), outputs.get("video")
    with tempfile.TemporaryDirectory(prefix="dub-review-") as scratch:
        if mix_path is not None and mix_path.is_file():
            mix_file, mix_role = mix_path, "mix"
        elif video_path is not None and video_path.is_file():
            # No stems were kept: the dubbed video's own track, decoded to disk.
            mix_file, mix_role = Path(scratch) / "mix.wav", "mix (from the video)"
            media = manifest["analysis"]["media"]
            length = media.get("duration_s") or (media.get("frame_count") and float(media["frame_count"] / Fraction(media["fps"])))
            video_audio_to_wav(video_path, mix_file, length or None)
        else:
            raise InputError("Neither the mix WAV nor the dubbed video named in the manifest exists; "
                             "review the manifest where dub wrote it, with its files beside it.")
        with WavTrack(mix_file) as mix:
            return _page(manifest, outputs, mix, mix_role, video_path if mix_file != mix_path else None, page_folder,
                         progress)


def _page(manifest: Mapping[str, Any], outputs: Mapping[str, Path], mix: WavTrack, mix_role: str,
          mix_source: Path | None, page_folder: Path, progress: ProgressFn = no_progress) -> str:
    """The page's HTML; `mix_source` is the video the mix was decoded from, if it was."""
    analysis = manifest["analysis"]
    at = frame_clock(analysis)
    events_s = [at(e["frame"]) for e in analysis.get("events", [])]
    cuts_s = [at(s["start_frame"]) for s in analysis["shots"] if s["start_frame"] > 0]
    report = wav_measures.measure(mix, events_s, marks_s=cuts_s)
    onsets_s = np.asarray(report.onsets_s, dtype=np.float64)
    wanted = [f for shot in analysis["shots"] for f in _shot_frames(shot)]
    # The work in units a person can watch: the frames the thumbnails' pass decodes, then the shots.
    frames, shots = max(wanted, default=-1) + 1, len(analysis["shots"])
    progress("review", 0, frames + shots)
    # the dub's picture, else the source's (the same frames) when the dubbed video is not there
    video = next((Path(p) for p in (outputs.get("video"), analysis["media"].get("path")) if p and Path(p).is_file()),
                 Path(analysis["media"].get("path", "")))
    thumbs = thumbnails(Path(video), wanted, decoded=lambda count: progress("review", count, frames + shots),
                        rotation=int(analysis["media"].get("rotation", 0) or 0))
    overview = track_spectrogram_png(
        mix, cuts_s=cuts_s, events=[(t, e["kind"]) for t, e in zip(events_s, analysis.get("events", []))],
        transitions_s=[(at(t["start_frame"]), at(t["end_frame"]))
                       for t in analysis.get("transitions", [])], onsets_s=onsets_s)
    stems = [(role, path) for role, path in sorted(outputs.items()) if role.startswith("stem:") and path.is_file()]
    if mix_source is None:
        mix_player = _player_source(mix.path, page_folder)
    elif mix.duration_s <= EMBED_AUDIO_MAX_S:
        mix_player = _mp3_uri(mix.read_all(), mix.sample_rate)
    else:
        mix_player = _player_source(mix_source, page_folder)   # the dubbed video itself plays
    players = "".join(f'<p>{html.escape(role)}<br><audio controls preload="none" src="{html.escape(source)}"></audio></p>'
                      for role, source in [(mix_role, mix_player),
                                           *((role, _player_source(path, page_folder)) for role, path in stems)])
    render = manifest.get("render") or {}
    figures = report.to_dict()
    rows = "".join(f"<tr><th>{html.escape(FIGURE_LABELS.get(k, k.replace('_', ' ')))}</th>"
                   f"<td>{html.escape('n/a' if v is None else str(v))}</td></tr>" for k, v in figures.items())
    notes = "<br>".join(html.escape(str(n)) for n in render.get("notes", []))
    def swatch(rgb: tuple[int, int, int], mark: str) -> str:
        return f"<b style='color:rgb{rgb}'>{mark}</b>"

    kinds = " ".join(f"{swatch(rgb, '&#9660;')}&nbsp;{html.escape(kind)}" for kind, rgb in EVENT_COLOURS.items()
                     if kind != "fast_motion")   # the old name of a whoosh, drawn as one
    legend = ("<p class='legend'><span>white line: cut</span><span>pale band: transition</span>"
              f"<span>visual events: {kinds}</span>"
              f"<span>{swatch(ONSET_COLOUR, '|')} detected onset</span></p>")
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>dub review: "
            f"{html.escape(Path(str(analysis['media'].get('path', ''))).name)}</title><style>{PAGE_STYLE}</style></head><body>"
            f"<h1>Review: {html.escape(str(analysis['media'].get('path', '')))}</h1>"
            f"<p>Backend: {html.escape(str(render.get('backend')))}; {notes}</p>"
            f"<h2>Whole soundtrack</h2><img class='spectrogram' alt='spectrogram of the mix' src='{_png_uri(overview)}'>{legend}"
            f"<table>{rows}</table><h2>Listen</h2>{players}"
            + "".join(_shot_rows(manifest, mix, onsets_s, thumbs,
                                 written=lambda count: progress("review", frames + count, frames + shots)))
            + "</body></html>")


def _same_file(a: Path, b: Path) -> bool:
    """Whether `a` and `b` name one file, through links and different spellings of the path."""
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def default_review_path(manifest_path: str | os.PathLike) -> Path:
    path = Path(manifest_path)
    return path.with_name(f"{path.stem}.review.html")


def check_review_target(target: Path, overwrite: bool) -> None:
    """Refuse to replace a file already where the page goes, unless told to.

    Raises:
        OutputError: `target` exists and `overwrite` is False.
    """
    if target.exists() and not overwrite:
        raise OutputError(f"{target} already exists; pass --overwrite to replace it or choose another page name.")


def missing_sound(manifest: Mapping[str, Any], folder: Path) -> list[str]:
    """The mix and stem WAVs the manifest names that are not where it says (a project folder moved
    without its stems folder), as "mix (../stems/a.mix.wav)"."""
    outputs = manifest.get("outputs") or {}
    return [f"{role} ({outputs[role]})" for role, path in sorted(_outputs(manifest, folder).items())
            if (role == "mix" or role.startswith("stem:")) and not path.is_file()]


def write_review(manifest_path: str | os.PathLike, out_path: str | os.PathLike | None = None,
                 overwrite: bool = False, on_notice: Callable[[str], None] = log.warning,
                 record: bool = False, progress: ProgressFn = no_progress) -> Path:
    """Write the self-contained review page of a dub (beside the manifest unless `out_path`).

    `out_path` may be a folder: the page goes inside it, named as beside the manifest. An
    existing file there is replaced only when `overwrite`. `record`: the page is one of the dub's
    outputs (`dub --review`), listed in its manifest as "review" once written, so tools reading
    the manifest find it and a dub replacing this one removes it with the rest. `progress`
    hears ("review", done, total) as the page is made (see `review_html`).

    Returns:
        The page's path.

    Raises:
        InputError: the manifest is missing or unusable (see `load_manifest`, `review_html`), or
            the page would replace the manifest or one of the files it names.
        OutputError: a file is already there and `overwrite` is False.
    """
    manifest_file = Path(manifest_path)
    manifest = load_manifest(manifest_file)
    target = Path(out_path) if out_path is not None else default_review_path(manifest_file)
    if target.is_dir() or (out_path is not None and str(out_path).endswith(("/", os.sep))):
        target = target / default_review_path(manifest_file).name   # a folder, there or to be made
    media = manifest["analysis"]["media"].get("path")
    # The page the manifest lists is the one file it names that a new page may replace.
    named = [path for role, path in _outputs(manifest, manifest_file.parent).items() if role != REVIEW_ROLE]
    kept = [manifest_file, *named, *([Path(media)] if media else [])]
    if any(_same_file(target, path) for path in kept):
        raise InputError(f"{target} is the manifest or one of the files it names; write the page to a new .html path.")
    check_review_target(target, overwrite)
    if out_path is not None:
        from .options import check_writable_folder

        check_writable_folder(target.parent, what="review page")
    if manifest.get("schema") != MANIFEST_SCHEMA:
        on_notice(f"{manifest_file.name} was written by another version of dub ({manifest.get('schema')}; this one "
                  f"reads {MANIFEST_SCHEMA}): the page shows what this version knows of it.")
    missing = missing_sound(manifest, manifest_file.parent)
    playable = [_outputs(manifest, manifest_file.parent).get(role) for role in ("mix", "video")]
    if missing and any(path is not None and path.is_file() for path in playable):   # else no page: one error
        on_notice(f"not found beside {manifest_file.name}, so left off the page: {', '.join(missing)}")
    write_atomically(target, review_html(manifest, manifest_file.parent, target.parent, progress).encode("utf-8"))
    if record:
        from .export.deliverables import add_recorded_output

        try:
            add_recorded_output(manifest_file, REVIEW_ROLE, target)
        except OutputError as err:   # the page is there all the same: said, not a failed run
            on_notice(f"{err} The review page is written to {target}.")
    return target
