"""The Resolve side of the dub integration: read the timeline, run `dub`, place the result.

Standard library only: it runs inside DaVinci Resolve's Python and never imports the dubbing
engine. The launcher (dub_resolve.py, the Workspace > Scripts menu item) imports it from the
installed dubber package, so the bridge always matches the `dub` command it calls.

Resolve behaviour this relies on is recorded in api_surface.json next to this file: recordFrame
is absolute, endFrame is exclusive, every frame value must be an int (one float rejects the
whole batch), and WAV media counts its frames at the rate the project had when it was imported
(24 in a 24 fps project, 29.97 in a 29.97 one), which the imported item's FPS property tells. Shot
audio therefore starts within half a frame of that rate of its picture (exactly on it when the
project runs at the video's rate); the .otio route is frame-exact.
"""
from __future__ import annotations

import json
import logging
import math
import queue
import subprocess
import threading
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

log = logging.getLogger("dub_resolve.bridge")

# Frames per second Resolve counts a WAV in when its item does not say (the rate of a 24 fps
# project, in which WAVs were first measured).
DEFAULT_WAV_FPS = Fraction(24)
DUB_BIN_NAME = "Dub"         # media-pool bin the stems are imported into
MARKER_COLOR = "Blue"
# Hit markers by event kind, in Resolve's colours: the nearest to those the dub's .otio gives them.
HIT_MARKER_COLORS = {"impact": "Red", "landing": "Sand", "explosion": "Fuchsia", "flash": "Yellow",
                     "splash": "Cyan", "whoosh": "Green", "run": "Green", "shake": "Purple"}
MEDIA_TYPE_AUDIO = 2
# Resolve's frame-rate strings for the NTSC family; every other rate is the number itself.
NTSC_RATES = {"23.976": Fraction(24000, 1001), "29.97": Fraction(30000, 1001),
              "47.952": Fraction(48000, 1001), "59.94": Fraction(60000, 1001),
              "119.88": Fraction(120000, 1001)}


class DubScriptError(Exception):
    """Something the user can fix; the message is one plain sentence."""


# ---------------------------------------------------------------------------------------------
# Frame rates and timecode
# ---------------------------------------------------------------------------------------------

def parse_frame_rate(text: str | float | int) -> Fraction:
    """Resolve's frame-rate setting ('29.97', '25', '23.976 DF') as an exact Fraction."""
    value = str(text).strip().upper().replace("NDF", "").replace("DF", "").strip()
    if value in NTSC_RATES:
        return NTSC_RATES[value]
    rate = Fraction(value).limit_denominator(1001)
    if rate <= 0:
        raise DubScriptError(f"The timeline frame rate {text!r} is not usable; set a positive rate in Project Settings.")
    return rate


def timecode_to_frame(timecode: str, fps: Fraction, drop_frame: bool) -> int:
    """Absolute frame number of an 'HH:MM:SS:FF' (or 'HH:MM:SS;FF' drop-frame) timecode."""
    parts = timecode.replace(";", ":").replace(".", ":").split(":")
    hours, minutes, seconds, frames = (int(p) for p in parts)
    nominal = round(fps)
    total_minutes = 60 * hours + minutes
    frame = (total_minutes * 60 + seconds) * nominal + frames
    if drop_frame:
        # Drop-frame skips 2 frame numbers (4 at 59.94) each minute except every tenth minute.
        dropped = 2 * round(fps / 30)
        frame -= dropped * (total_minutes - total_minutes // 10)
    return frame


# ---------------------------------------------------------------------------------------------
# Placement: pure functions of the manifest and the clip's place on the timeline
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ClipSpan:
    """Where a video clip sits: absolute timeline frame of its first frame, source frames
    trimmed from the media's head, its length in timeline frames, and the two frame rates."""

    record_start_frame: int
    left_offset_frame: int
    duration_frames: int
    timeline_fps: Fraction
    source_fps: Fraction


@dataclass(frozen=True)
class Placement:
    """One clip to append: stem file, source range in WAV units [start, end) and the absolute
    timeline frame where it starts."""

    stem: str
    shot_index: int
    record_frame: int
    start_frame: int
    end_frame: int
    caption: str


@dataclass(frozen=True)
class ShotSpan:
    index: int
    start_frame: int
    end_frame: int
    start_sample: int
    end_sample: int
    caption: str


def manifest_fps(manifest: Mapping[str, Any]) -> Fraction:
    text = str(manifest["media"]["fps"])
    if "/" in text:
        num, den = text.split("/", 1)
        return Fraction(int(num), int(den))
    return Fraction(text)


def manifest_sample_rate(manifest: Mapping[str, Any]) -> int:
    plan = manifest.get("plan") or {}
    return int(plan.get("sample_rate") or manifest.get("sample_rate") or 48000)


def shot_spans(manifest: Mapping[str, Any]) -> list[ShotSpan]:
    """Shots with their sample ranges (from the plan's cues, which may split a long shot) and
    captions, in time order."""
    fps, rate = manifest_fps(manifest), manifest_sample_rate(manifest)
    cues = (manifest.get("plan") or {}).get("cues") or manifest.get("cues") or []
    analysis = manifest.get("analysis") or manifest  # shots and captions live in the analysis
    captions = {int(c["shot_index"]): str(c.get("text", "")) for c in analysis.get("captions", [])}
    spans = []
    for shot in analysis["shots"]:
        index, a, b = int(shot["index"]), int(shot["start_frame"]), int(shot["end_frame"])
        own = [c for c in cues if int(c["shot_index"]) == index]
        start = min((int(c["start_sample"]) for c in own), default=round(a * rate / fps))
        end = max((int(c["start_sample"]) + int(c["num_samples"]) for c in own), default=round(b * rate / fps))
        caption = captions.get(index) or (str(own[0].get("caption", "")) if own else "")
        spans.append(ShotSpan(index, a, b, start, end, caption))
    return sorted(spans, key=lambda s: s.start_frame)


def _source_to_record(frame: int, clip: ClipSpan) -> int:
    offset = Fraction(frame - clip.left_offset_frame) * clip.timeline_fps / clip.source_fps
    return clip.record_start_frame + int(round(offset))


def _record_to_wav_units(record_frame: int, clip: ClipSpan, wav_fps: Fraction) -> int:
    """The WAV frame heard with timeline frame `record_frame`: the clip's media time there, in
    units of `wav_fps`. Rounded half up, so at wav_fps == timeline rate it is the record frame
    plus one fixed offset, and neighbouring clips cut from the same boundary meet exactly."""
    media_s = Fraction(record_frame - clip.record_start_frame) / clip.timeline_fps \
        + Fraction(clip.left_offset_frame) / clip.source_fps
    return math.floor(media_s * wav_fps + Fraction(1, 2))


def wav_media_fps(item: Any) -> Fraction:
    """The frame rate Resolve counts an imported WAV in: its FPS property (the project's rate
    when it was imported), or 24 when the item does not say."""
    try:
        return parse_frame_rate(item.GetClipProperty("FPS")) if item.GetClipProperty("FPS") else DEFAULT_WAV_FPS
    except (DubScriptError, ValueError, ZeroDivisionError):
        return DEFAULT_WAV_FPS


def plan_placements(manifest: Mapping[str, Any], clip: ClipSpan, stems: Sequence[str],
                    wav_fps: Fraction = DEFAULT_WAV_FPS) -> list[Placement]:
    """One placement per shot (and per stem) that overlaps the part of the media the clip uses.

    Each shot boundary is rounded once, to the timeline frame nearest its picture cut (the clip's
    own in and out points are its first and last frames); a shot's recordFrame and its source
    range [start, end) in frames of the WAV media (`wav_fps`, see `wav_media_fps`) both come from
    those rounded boundaries. When the WAV counts at the timeline's rate (the usual case: it was
    imported into this project) the clips of a stem therefore butt exactly, record + end - start
    being the next clip's record, and every clip is within half a frame of its picture. A shot
    cut by the clip's in or out point is trimmed to it.
    """
    used_start = clip.left_offset_frame
    used_end = used_start + int(round(Fraction(clip.duration_frames) * clip.source_fps / clip.timeline_fps))
    clip_end = clip.record_start_frame + clip.duration_frames
    wav_units = _wav_length_units(manifest, wav_fps)
    out = []
    for shot in shot_spans(manifest):
        a, b = max(shot.start_frame, used_start), min(shot.end_frame, used_end)
        if a >= b:
            continue
        record = _source_to_record(a, clip)
        record_end = clip_end if b == used_end else min(_source_to_record(b, clip), clip_end)
        start = _record_to_wav_units(record, clip, wav_fps)
        end = min(_record_to_wav_units(record_end, clip, wav_fps), wav_units)
        if end <= start:
            continue
        for stem in stems:
            out.append(Placement(stem, shot.index, record, start, end, shot.caption))
    return out


@dataclass(frozen=True)
class TimelineMarker:
    """A marker to add: a shot's start or an event the soundtrack hits, on the absolute timeline
    frame showing it."""

    record_frame: int
    duration_frames: int
    name: str
    color: str
    note: str = ""
    custom_data: str = "dubber:hit"


def hit_markers(manifest: Mapping[str, Any], clip: ClipSpan) -> list[TimelineMarker]:
    """The events the dub's soundtrack hits (its manifest's analysis events) in the part of the
    media the clip uses, each on the timeline frame that shows it. They are named as the dub's
    .otio names them ("impact 0.80"): a timeline exported from Resolve as .otio, with these markers
    moved, deleted or renamed ("none"), is a hit list for `dub --hits`."""
    clip_end = clip.record_start_frame + clip.duration_frames
    events = (manifest.get("analysis") or {}).get("events") or []
    out = []
    for event in events:
        try:
            frame, kind, strength = int(event["frame"]), str(event["kind"]), float(event["strength"])
            end = max(int(event.get("end_frame", frame)), frame + 1)
        except (KeyError, TypeError, ValueError):
            continue   # not an event this script knows how to read
        record = _source_to_record(frame, clip)
        if frame < clip.left_offset_frame or record >= clip_end:
            continue   # in the media's trimmed head or tail
        length = max(1, min(_source_to_record(end, clip), clip_end) - record)
        out.append(TimelineMarker(record, length, f"{kind} {strength:.2f}", HIT_MARKER_COLORS.get(kind, "Cream")))
    return out


def _wav_length_units(manifest: Mapping[str, Any], wav_fps: Fraction) -> int:
    """The stems' length in frames of `wav_fps`, rounded up as Resolve counts a WAV's last samples."""
    total = (manifest.get("plan") or {}).get("total_samples")
    if total is None:
        return 1 << 62  # unknown: no clamp
    return math.ceil(Fraction(int(total)) * wav_fps / manifest_sample_rate(manifest))


def clip_infos(placements: Sequence[Placement], items: Mapping[str, Any], tracks: Mapping[str, int]) -> list[dict]:
    """The AppendToTimeline batch: plain ints only, because one float rejects the whole batch."""
    return [{"mediaPoolItem": items[p.stem], "startFrame": int(p.start_frame), "endFrame": int(p.end_frame),
             "mediaType": MEDIA_TYPE_AUDIO, "trackIndex": int(tracks[p.stem]), "recordFrame": int(p.record_frame)}
            for p in placements]


# ---------------------------------------------------------------------------------------------
# Reading the timeline
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TimelineContext:
    project: Any
    timeline: Any
    media_pool: Any
    start_frame: int
    fps: Fraction
    drop_frame: bool


def connect(resolve: Any = None) -> Any:
    """The Resolve object: the one given (Resolve injects `resolve` into menu scripts), or one
    reached through DaVinciResolveScript from outside. None when none is reachable."""
    if resolve is not None:
        return resolve
    try:
        import DaVinciResolveScript as dvr  # type: ignore[import-not-found]
    except ImportError:
        return None
    return dvr.scriptapp("Resolve")


def read_context(resolve: Any) -> TimelineContext:
    project = resolve.GetProjectManager().GetCurrentProject()
    if project is None:
        raise DubScriptError("No project is open; open a project with a timeline and run Dub Shot Audio again.")
    timeline = project.GetCurrentTimeline()
    if timeline is None:
        raise DubScriptError("No timeline is open; open the timeline to dub and run Dub Shot Audio again.")
    rate = timeline.GetSetting("timelineFrameRate") or project.GetSetting("timelineFrameRate")
    drop = str(timeline.GetSetting("timelineDropFrameTimecode") or "0") == "1" or "DF" in str(rate).upper().replace("NDF", "")
    return TimelineContext(project, timeline, project.GetMediaPool(), int(timeline.GetStartFrame()),
                           parse_frame_rate(rate), drop)


def playhead_frame(ctx: TimelineContext) -> int:
    return timecode_to_frame(ctx.timeline.GetCurrentTimecode(), ctx.fps, ctx.drop_frame)


def clip_at(ctx: TimelineContext, frame: int) -> Any:
    """The topmost video item under `frame` that has a media file. Items above it without one
    (titles, generators, adjustment clips, compound and Fusion clips: no "File Path") are passed
    over; a clip whose file is missing is still chosen, so the editor learns to relink it."""
    for track in range(int(ctx.timeline.GetTrackCount("video")), 0, -1):
        for item in ctx.timeline.GetItemListInTrack("video", track) or []:
            if item.GetStart() <= frame < item.GetEnd() and _file_path(item):
                return item
    raise DubScriptError("No video clip is under the playhead; move the playhead onto the clip to dub.")


def marked_range(ctx: TimelineContext) -> tuple[int, int] | None:
    """The timeline's video mark in/out as absolute frames [in, out + 1), or None when unset or
    when this Resolve (before 19.1) has no GetMarkInOut."""
    try:
        marks = ctx.timeline.GetMarkInOut()
    except AttributeError:
        return None
    video = (marks or {}).get("video") or {}
    if video.get("in") is None or video.get("out") is None or int(video["out"]) < int(video["in"]):
        return None
    return ctx.start_frame + int(video["in"]), ctx.start_frame + int(video["out"]) + 1


def narrow(span: ClipSpan, start_frame: int, end_frame: int) -> ClipSpan:
    """The part of a clip inside timeline frames [start_frame, end_frame)."""
    first = max(span.record_start_frame, start_frame)
    last = min(span.record_start_frame + span.duration_frames, end_frame)
    if first >= last:
        raise DubScriptError("The marked in/out range does not cover the clip under it; mark a range on the clip to dub.")
    skipped = Fraction(first - span.record_start_frame) * span.source_fps / span.timeline_fps
    return ClipSpan(first, span.left_offset_frame + int(round(skipped)), last - first, span.timeline_fps,
                    span.source_fps)


def clip_span(ctx: TimelineContext, item: Any) -> ClipSpan:
    media = item.GetMediaPoolItem()
    source_rate = media.GetClipProperty("FPS")
    source_fps = parse_frame_rate(source_rate) if source_rate else ctx.fps
    return ClipSpan(int(item.GetStart()), int(item.GetLeftOffset()), int(item.GetDuration()), ctx.fps, source_fps)


def _file_path(item: Any) -> str:
    """The media file behind a timeline item, "" for one without (see `clip_at`)."""
    pool_item = item.GetMediaPoolItem()
    return (pool_item.GetClipProperty("File Path") or "") if pool_item is not None else ""


def media_path(item: Any) -> Path:
    path = _file_path(item)
    if not path or not Path(path).is_file():
        raise DubScriptError(f"The clip's media file {path!r} is offline; relink it and run Dub Shot Audio again.")
    return Path(path)


# ---------------------------------------------------------------------------------------------
# Running `dub`
# ---------------------------------------------------------------------------------------------

ProgressSink = Callable[[Mapping[str, Any]], None]


class DubProcess:
    """`dub --json-progress` in a subprocess. A reader thread turns its stdout lines into events
    on a queue, so the caller's loop stays responsive and can cancel at any time."""

    def __init__(self, args: Sequence[str]):
        flags = getattr(subprocess, "CREATE_NO_WINDOW", 0)
        try:
            self.proc = subprocess.Popen(list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         stdin=subprocess.DEVNULL, text=True, encoding="utf-8",
                                         errors="replace", creationflags=flags)
        except OSError as err:
            raise DubScriptError(f"The dub command {args[0]} could not be started ({err.strerror or err}); "
                                 "set \"dub\" in dub_resolve.json or run `dub integrations install resolve` "
                                 "again.") from None
        self.events: queue.Queue = queue.Queue()
        self.stderr_lines: list[str] = []
        self.error_message = ""
        threading.Thread(target=self._read_stdout, daemon=True).start()
        self.stderr_reader = threading.Thread(target=self._read_stderr, daemon=True)
        self.stderr_reader.start()

    def _read_stdout(self) -> None:
        for line in self.proc.stdout:
            line = line.strip()
            if line.startswith("{"):
                try:
                    self.events.put(json.loads(line))
                except ValueError:
                    log.debug("not a progress line: %s", line)
        self.events.put(None)  # end of output: every line before it has been queued

    def _read_stderr(self) -> None:
        for line in self.proc.stderr:
            self.stderr_lines.append(line.rstrip())

    def cancel(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def failure_sentence(self) -> str:
        self.stderr_reader.join(timeout=5)
        text = [line for line in self.stderr_lines if line.strip()]
        if self.error_message:
            return self.error_message
        return text[-1] if text else f"dub stopped with exit code {self.proc.returncode}."


def run_dub(args: Sequence[str], on_event: ProgressSink, cancelled: Callable[[], bool],
            poll_s: float = 0.2) -> dict:
    """Run dub to the end; returns the `outputs` of its final "done" event.

    Raises DubScriptError when dub fails or `cancelled()` turns true (the process is killed)."""
    job = DubProcess(args)
    outputs = None
    while True:
        try:
            event = job.events.get(timeout=poll_s)
        except queue.Empty:
            event = {}
        if event is None:
            break
        if event:
            on_event(event)
            if event.get("event") == "done":
                outputs = dict(event.get("outputs") or {})
            elif event.get("event") == "error":
                job.error_message = str(event.get("message") or "")
        if cancelled():
            job.cancel()
            raise DubScriptError("Dubbing was cancelled; nothing was added to the timeline.")
    if job.proc.wait() != 0 or outputs is None:
        raise DubScriptError(job.failure_sentence())
    return outputs


# dub's notices name its own options; the one this script sets from dub_resolve.json is named
# as the setting the user can change.
KEEP_ORIGINAL_FLAG = "pass --keep-original"
KEEP_ORIGINAL_SETTING = 'set "keep_original": true in dub_resolve.json'


def describe(event: Mapping[str, Any]) -> str:
    """One line for the user: a stage with its share done, dub's own notice sentence, or the end."""
    if event.get("event") == "notice" and str(event.get("message") or "").strip():
        return f"dub: {str(event['message']).strip().replace(KEEP_ORIGINAL_FLAG, KEEP_ORIGINAL_SETTING)}"
    if "stage" not in event:
        return "dub: finished" if event.get("event") == "done" else "dub: working"
    total, done = int(event.get("total") or 0), int(event.get("done") or 0)
    share = f" {100 * done // total}%" if total else ""
    return f"dub: {event['stage']}{share} {event.get('message') or ''}".rstrip()


Runner = Callable[[Sequence[str]], dict]


# ---------------------------------------------------------------------------------------------
# Reading the result and placing it
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DubOutputs:
    manifest: dict
    stems: dict            # stem name -> absolute WAV path
    otio: Path | None


def _resolve_path(value: Any, base: Path) -> Path:
    path = Path(str(value))
    return path if path.is_absolute() else base / path


def find_manifest(outputs: Mapping[str, Any], out_dir: Path) -> Path:
    if outputs.get("manifest"):
        return _resolve_path(outputs["manifest"], out_dir)
    for path in sorted(out_dir.glob("*.json")):
        try:
            if str(json.loads(path.read_text(encoding="utf-8")).get("schema", "")).startswith("dubber.manifest/"):
                return path
        except (ValueError, AttributeError, OSError):
            continue
    raise DubScriptError(f"dub finished but wrote no manifest in {out_dir}; run it again.")


def read_outputs(outputs: Mapping[str, Any], out_dir: Path) -> DubOutputs:
    """The manifest, the stems and the .otio, from dub's final event and the manifest's file list
    (roles "stem:<name>", "mix", "otio"; paths relative to the manifest's folder)."""
    manifest_path = find_manifest(outputs, out_dir)
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    base = manifest_path.parent
    roles = {str(k): _resolve_path(v, base) for k, v in dict(manifest.get("outputs") or {}).items()
             if isinstance(v, str)}
    roles.update({str(k): _resolve_path(v, out_dir) for k, v in outputs.items() if isinstance(v, str) and v})
    stems = {k.split(":", 1)[1]: p for k, p in roles.items() if k.startswith("stem:")}
    if not stems and "mix" in roles:
        stems = {"mix": roles["mix"]}
    return DubOutputs(manifest, stems, roles.get("otio"))


def dub_bin(media_pool: Any) -> Any:
    root = media_pool.GetRootFolder()
    for folder in root.GetSubFolderList() or []:
        if folder.GetName() == DUB_BIN_NAME:
            return folder
    return media_pool.AddSubFolder(root, DUB_BIN_NAME)


def import_stems(media_pool: Any, stems: Mapping[str, Path]) -> dict:
    media_pool.SetCurrentFolder(dub_bin(media_pool))
    items = {}
    for name, path in stems.items():
        imported = media_pool.ImportMedia([str(path)]) or []
        if not imported:
            raise DubScriptError(f"Resolve could not import {path}; check that the file exists and is a WAV.")
        items[name] = imported[0]
    return items


def add_tracks(timeline: Any, stems: Sequence[str]) -> dict:
    tracks = {}
    for name in stems:
        if not timeline.AddTrack("audio", "stereo"):
            raise DubScriptError("Resolve refused to add an audio track; unlock the timeline and try again.")
        index = int(timeline.GetTrackCount("audio"))
        timeline.SetTrackName("audio", index, f"Dub {name}")
        tracks[name] = index
    return tracks


def remove_tracks(timeline: Any, tracks: Mapping[str, int]) -> None:
    """Delete tracks `add_tracks` made (highest first, so the others keep their index); a
    Resolve without DeleteTrack keeps them, named "Dub ..." and empty."""
    for index in sorted(tracks.values(), reverse=True):
        try:
            timeline.DeleteTrack("audio", index)
        except AttributeError:
            return


def add_markers(ctx: TimelineContext, placements: Sequence[Placement], wav_fps: Fraction = DEFAULT_WAV_FPS,
                hits: Sequence[TimelineMarker] = ()) -> int:
    """A marker at each shot's start (its caption as the note) and at each hit; returns how many
    Resolve took. Resolve keeps one marker per frame: a hit on a shot's first frame shares its
    marker, named for the hit first ("impact 0.80 - Shot 2") so that it still reads back as the
    hit, and of two hits on one timeline frame (a video faster than the timeline) the first stays."""
    markers: dict[int, TimelineMarker] = {}
    for p in placements:
        if p.record_frame not in markers:   # one per shot, not one per stem
            length = max(1, int(round(Fraction(p.end_frame - p.start_frame) / wav_fps * ctx.fps)))
            markers[p.record_frame] = TimelineMarker(p.record_frame, length, f"Shot {p.shot_index + 1}", MARKER_COLOR,
                                                     p.caption, f"dubber:shot:{p.shot_index}")
    hit_frames: set[int] = set()
    for hit in hits:
        if hit.record_frame not in hit_frames:
            hit_frames.add(hit.record_frame)
            shot = markers.get(hit.record_frame)
            markers[hit.record_frame] = hit if shot is None else replace(shot, name=f"{hit.name} - {shot.name}",
                                                                          color=hit.color)
    # frame ids count from the timeline start
    return sum(bool(ctx.timeline.AddMarker(int(m.record_frame - ctx.start_frame), m.color, m.name, m.note,
                                           int(m.duration_frames), m.custom_data))
               for _, m in sorted(markers.items()))


def place_dub(ctx: TimelineContext, clip: ClipSpan, result: DubOutputs) -> tuple[list, int]:
    """Import the stems, append every shot clip in one batch and mark the shots and hits; returns
    the new TimelineItems and how many hits the clip shows."""
    if not plan_placements(result.manifest, clip, list(result.stems)):
        raise DubScriptError("No shot of the dub overlaps the clip's used range; widen the clip and run again.")
    items = import_stems(ctx.media_pool, result.stems)
    # The stems were imported together, so Resolve counts them all at one rate: the project's now.
    wav_fps = wav_media_fps(next(iter(items.values())))
    placements = plan_placements(result.manifest, clip, list(result.stems), wav_fps)
    tracks = add_tracks(ctx.timeline, list(result.stems))
    try:
        appended = ctx.media_pool.AppendToTimeline(clip_infos(placements, items, tracks))
    except AttributeError:
        appended = None
    if not appended:
        # nothing was placed: the new tracks would only stand empty in the editor's timeline
        remove_tracks(ctx.timeline, tracks)
        raise DubScriptError("Resolve rejected the clip placements; import the .otio with File > Import > Timeline instead.")
    for placed, want in zip(appended, placements):
        if int(placed.GetStart()) != want.record_frame:
            log.warning("shot %d landed on frame %s instead of %d", want.shot_index, placed.GetStart(), want.record_frame)
    hits = hit_markers(result.manifest, clip)
    add_markers(ctx, placements, wav_fps, hits)
    return list(appended), len(hits)


def fallback(media_pool: Any, otio: Path | None, name: str) -> str:
    """Import the .otio as a new timeline where the API allows; otherwise say how by hand."""
    if otio is None or not otio.is_file():
        return "dub wrote no .otio timeline; run `dub VIDEO --timeline` and use File > Import > Timeline with it."
    try:
        timeline = media_pool.ImportTimelineFromFile(str(otio), {"timelineName": name, "importSourceClips": True})
    except AttributeError:
        timeline = None
    if timeline:
        return f"Imported the dub as the new timeline {name!r} from {otio}."
    return f"Use File > Import > Timeline and choose {otio} to bring in the dub."
