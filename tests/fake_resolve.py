"""A stand-in for DaVinci Resolve's scripting objects, limited to the recorded API surface.

Each fake class names the Resolve object it stands for; at class creation it is checked against
integrations/resolve/api_surface.json, so it cannot grow a method Resolve does not have. Anything
not implemented raises AttributeError, exactly as an unknown method would in Resolve, and a
method can be hidden per instance to play an edition or version that lacks it.

It enforces the behaviour found by live probes: recordFrame is absolute, endFrame is exclusive,
one non-int frame rejects the whole AppendToTimeline batch (None), and WAV media counts its
frames at the project's frame rate at the time it was imported (and keeps it).
"""
from __future__ import annotations

import json
import math
import wave
from fractions import Fraction
from pathlib import Path
from typing import Any

SURFACE_PATH = Path(__file__).resolve().parent.parent / "integrations" / "resolve" / "api_surface.json"
SURFACE = json.loads(SURFACE_PATH.read_text())
NTSC = {"23.976": Fraction(24000, 1001), "29.97": Fraction(30000, 1001), "59.94": Fraction(60000, 1001)}


def rate_of(text: str) -> Fraction:
    return NTSC.get(text, Fraction(text))


class _SurfaceChecked(type):
    """Refuses, when the class is created, any public method outside the recorded surface."""

    def __new__(mcs, name, bases, namespace, api: str | None = None):
        cls = super().__new__(mcs, name, bases, namespace)
        if api is not None:
            allowed = set(SURFACE["objects"][api])
            public = {k for k, v in namespace.items() if not k.startswith("_") and callable(v)}
            extra = public - allowed
            assert not extra, f"{name} implements {sorted(extra)} outside the recorded {api} surface"
            cls._api = api
        return cls


class _Fake(metaclass=_SurfaceChecked):
    _api = ""

    def __init__(self, hidden: frozenset[str] = frozenset()):
        self._hidden = hidden

    def __getattribute__(self, name: str) -> Any:
        if not name.startswith("_") and f"{type(self)._api}.{name}" in object.__getattribute__(self, "_hidden"):
            raise AttributeError(f"'{type(self)._api}' object has no attribute '{name}'")
        return object.__getattribute__(self, name)


class FakeMediaPoolItem(_Fake, api="MediaPoolItem"):
    def __init__(self, path: str, fps: str, frames: int, hidden=frozenset()):
        super().__init__(hidden)
        self._path, self._fps, self._frames = path, fps, frames

    def GetClipProperty(self, key: str) -> str:
        return {"File Path": self._path, "FPS": self._fps, "Frames": str(self._frames)}.get(key, "")

    def GetName(self) -> str:
        return Path(self._path).name


class FakeTimelineItem(_Fake, api="TimelineItem"):
    def __init__(self, media: FakeMediaPoolItem, start: int, end: int, left_offset: int,
                 source_range: tuple[int, int] = (0, 0), hidden=frozenset()):
        super().__init__(hidden)
        self._media, self._start, self._end, self._left = media, start, end, left_offset
        self._source_range = source_range  # [start, end) in the media's own frame units

    def GetStart(self) -> int:
        return self._start

    def GetEnd(self) -> int:
        return self._end

    def GetDuration(self) -> int:
        return self._end - self._start

    def GetLeftOffset(self) -> int:
        return self._left

    def GetMediaPoolItem(self) -> FakeMediaPoolItem:
        return self._media

    def GetName(self) -> str:
        return self._media.GetName()


class FakeFolder(_Fake, api="Folder"):
    def __init__(self, name: str, hidden=frozenset()):
        super().__init__(hidden)
        self._name, self._subfolders, self._clips = name, [], []

    def GetName(self) -> str:
        return self._name

    def GetSubFolderList(self) -> list:
        return list(self._subfolders)


class FakeTimeline(_Fake, api="Timeline"):
    def __init__(self, name: str, fps: str, start_frame: int, hidden=frozenset()):
        super().__init__(hidden)
        self._name, self._fps, self._start_frame = name, fps, start_frame
        self._tracks: dict[str, list[list[FakeTimelineItem]]] = {"video": [[]], "audio": [[]]}
        self._track_names: dict[tuple[str, int], str] = {}
        self._markers: dict[int, dict] = {}
        self._playhead = start_frame
        self._marks: dict = {}  # GetMarkInOut's answer: offsets from the start, 'out' inclusive

    @property
    def _rate(self) -> Fraction:
        return rate_of(self._fps)

    def GetName(self) -> str:
        return self._name

    def GetStartFrame(self) -> int:
        return self._start_frame

    def GetSetting(self, key: str) -> str:
        return {"timelineFrameRate": self._fps, "timelineDropFrameTimecode": "0"}.get(key, "")

    def GetCurrentTimecode(self) -> str:
        nominal = round(self._rate)  # non-drop-frame counting
        frames, ff = divmod(self._playhead, nominal)
        hh, rest = divmod(frames, 3600)
        mm, ss = divmod(rest, 60)
        return f"{hh:02d}:{mm:02d}:{ss:02d}:{ff:02d}"

    def GetMarkInOut(self) -> dict:
        return {kind: dict(marks) for kind, marks in self._marks.items()}

    def GetTrackCount(self, kind: str) -> int:
        return len(self._tracks[kind])

    def GetItemListInTrack(self, kind: str, index: int) -> list:
        if not 1 <= index <= len(self._tracks[kind]):
            return None
        return list(self._tracks[kind][index - 1])

    def AddTrack(self, kind: str, sub_type: str = "") -> bool:
        self._tracks[kind].append([])
        return True

    def SetTrackName(self, kind: str, index: int, name: str) -> bool:
        self._track_names[(kind, index)] = name
        return True

    def DeleteTrack(self, kind: str, index: int) -> bool:
        if not 1 <= index <= len(self._tracks[kind]):
            return False
        del self._tracks[kind][index - 1]
        # names of the tracks above move down with them
        self._track_names = {(k, i - (k == kind and i > index)): n for (k, i), n in self._track_names.items()
                             if (k, i) != (kind, index)}
        return True

    def AddMarker(self, frame_id, color, name, note, duration, custom_data="") -> bool:
        if frame_id in self._markers or not isinstance(frame_id, int):
            return False
        self._markers[frame_id] = {"color": color, "name": name, "note": note, "duration": duration,
                                   "customData": custom_data}
        return True


class FakeMediaPool(_Fake, api="MediaPool"):
    def __init__(self, project: "FakeProject", hidden=frozenset()):
        super().__init__(hidden)
        self._project = project
        self._root = FakeFolder("Master", hidden)
        self._current = self._root
        self._imported_timelines: list[tuple[str, dict]] = []
        self._rejected_batches = 0
        self._append_calls = 0

    def GetRootFolder(self) -> FakeFolder:
        return self._root

    def AddSubFolder(self, parent: FakeFolder, name: str) -> FakeFolder:
        folder = FakeFolder(name, self._hidden)
        parent._subfolders.append(folder)
        return folder

    def SetCurrentFolder(self, folder: FakeFolder) -> bool:
        self._current = folder
        return True

    def ImportMedia(self, paths: list) -> list:
        items = []
        for path in paths:
            # A WAV is counted in frames of the project's rate now, rounded up to cover the last
            # samples; the rate stays with the item if the project changes later.
            fps = self._project.GetSetting("timelineFrameRate") or "24"
            with wave.open(str(path), "rb") as wav:
                frames = math.ceil(Fraction(wav.getnframes()) * rate_of(fps) / wav.getframerate())
            item = FakeMediaPoolItem(str(path), fps, frames, self._hidden)
            self._current._clips.append(item)
            items.append(item)
        return items

    def AppendToTimeline(self, infos: list) -> list | None:
        timeline = self._project._timeline
        self._append_calls += 1
        placed = [self._place(timeline, info) for info in infos]
        if any(p is None for p in placed):
            self._rejected_batches += 1
            return None  # Resolve rejects the whole batch
        for item, (kind, track) in placed:
            timeline._tracks[kind][track - 1].append(item)
        return [item for item, _ in placed]

    def _place(self, timeline: FakeTimeline, info: dict):
        if set(info) - set(SURFACE["clip_info_keys"]):
            return None
        frames = [info.get(k, 0) for k in ("startFrame", "endFrame", "recordFrame", "trackIndex")]
        if any(type(v) is not int for v in frames):
            return None
        media: FakeMediaPoolItem = info["mediaPoolItem"]
        start, end, record = info["startFrame"], info["endFrame"], info["recordFrame"]
        kind = "audio" if info.get("mediaType") == 2 else "video"
        track = info.get("trackIndex", 1)
        if not (0 <= start < end <= media._frames) or not 1 <= track <= len(timeline._tracks[kind]):
            return None
        # endFrame is exclusive; the source counts in the media's rate, the record in the timeline's.
        length = round(Fraction(end - start) / rate_of(media._fps) * timeline._rate)
        return FakeTimelineItem(media, record, record + length, start, (start, end), self._hidden), (kind, track)

    def ImportTimelineFromFile(self, path: str, options: dict | None = None):
        name = (options or {}).get("timelineName", Path(path).stem)
        taken = {self._project._timeline.GetName()} | {o.get("timelineName") for _, o in self._imported_timelines}
        if name in taken:   # Resolve keeps timeline names unique
            return None
        self._imported_timelines.append((path, dict(options or {})))
        return FakeTimeline(name, self._project._timeline._fps, self._project._timeline._start_frame)


class FakeProject(_Fake, api="Project"):
    def __init__(self, timeline: FakeTimeline | None, hidden=frozenset()):
        super().__init__(hidden)
        self._timeline = timeline
        self._media_pool = FakeMediaPool(self, hidden)

    def GetCurrentTimeline(self) -> FakeTimeline | None:
        return self._timeline

    def GetMediaPool(self) -> FakeMediaPool:
        return self._media_pool

    def GetSetting(self, key: str) -> str:
        return self._timeline.GetSetting(key) if self._timeline else ""


class FakeProjectManager(_Fake, api="ProjectManager"):
    def __init__(self, project: FakeProject, hidden=frozenset()):
        super().__init__(hidden)
        self._project = project

    def GetCurrentProject(self) -> FakeProject:
        return self._project


class FakeResolve(_Fake, api="Resolve"):
    """Entry object. `hidden` names methods ("MediaPool.AppendToTimeline") this Resolve lacks."""

    def __init__(self, timeline: FakeTimeline, hidden: frozenset[str] = frozenset()):
        super().__init__(hidden)
        for obj in [timeline]:
            obj._hidden = hidden
        self._manager = FakeProjectManager(FakeProject(timeline, hidden), hidden)

    def GetProjectManager(self) -> FakeProjectManager:
        return self._manager

    @property
    def _media_pool(self) -> FakeMediaPool:
        return self._manager._project._media_pool


FAKE_CLASSES = (FakeResolve, FakeProjectManager, FakeProject, FakeMediaPool, FakeFolder, FakeMediaPoolItem,
                FakeTimeline, FakeTimelineItem)


def add_video_clip(timeline: FakeTimeline, path: str, record_offset: int, left_offset: int, duration: int,
                   media_frames: int) -> FakeTimelineItem:
    """Put a video clip on V1 at `record_offset` frames after the timeline start (same rate as the timeline)."""
    media = FakeMediaPoolItem(path, timeline._fps, media_frames, timeline._hidden)
    start = timeline._start_frame + record_offset
    item = FakeTimelineItem(media, start, start + duration, left_offset, (left_offset, left_offset + duration),
                            timeline._hidden)
    timeline._tracks["video"][0].append(item)
    return item
