"""What the export tests feed the exporters: a synthetic analysis (shots, captions, one hit), its
soundtrack and render, the same with a start timecode or a kept original, and readers of FCPXML
times and media."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from fractions import Fraction

import numpy as np

from dubber.export.deliverables import ExportInputs
from dubber.plan import PlanOptions, make_plan
from dubber.types import CueAudio, DubPlan, RenderResult, Soundtrack
from vision.types import MediaInfo, Shot, ShotCaption, VideoAnalysis, VisualEvent

SR = 48000
NTSC = Fraction(24000, 1001)

HOUR_AT_NTSC = 86_400                      # frames of 01:00:00:00 at 24000/1001 fps (non-drop)
HOUR_AT_NTSC_SAMPLES = HOUR_AT_NTSC * 2002  # the same instant in 48 kHz samples (2,002 per frame)


def _analysis(fps: Fraction, bounds: list[int], has_audio: bool = True) -> VideoAnalysis:
    frames = bounds[-1]
    media = MediaInfo(path="/videos/cartoon.mp4", duration_s=float(frames / fps), fps=fps, frame_count=frames,
                      width=320, height=180, has_audio=has_audio, audio_codec="aac" if has_audio else None)
    shots = tuple(Shot(i, a, b) for i, (a, b) in enumerate(zip(bounds, bounds[1:])))
    captions = tuple(ShotCaption(i, f"Shot {i}: the cat chases the mouse", captioner="test")
                     for i in range(len(shots)))
    events = (VisualEvent(frame=30, kind="impact", strength=0.8, end_frame=31),)
    return VideoAnalysis(media=media, shots=shots, events=events, motion=(0.2,) * frames, captions=captions)


def _soundtrack(plan: DubPlan) -> Soundtrack:
    t = np.arange(plan.total_samples) / SR
    music = (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    fx = np.zeros_like(music)
    fx[::4800] = 0.5
    stems = {"music": np.stack([music, music]), "fx": np.stack([fx, fx])}
    return Soundtrack.from_arrays(sample_rate=SR, mix=stems["music"] + stems["fx"], stems=stems,
                                  integrated_lufs=-16.02, true_peak_dbtp=float("-inf"), settings={"lufs": -16.0})


def _render(plan: DubPlan) -> RenderResult:
    cues = tuple(CueAudio(c.index, c.start_sample, {"music": np.zeros((2, c.num_samples), np.float32),
                                                    "fx": np.zeros((2, c.num_samples), np.float32)})
                 for c in plan.cues)
    return RenderResult(backend="score", sample_rate=SR, cues=cues, model_id=None, notes=("procedural",))


def ntsc_inputs() -> ExportInputs:
    """A 300-frame 24000/1001 fps run of three shots: its analysis, plan (seed 5), soundtrack and render."""
    analysis = _analysis(NTSC, [0, 24, 100, 300])
    plan = make_plan(analysis, PlanOptions(seed=5))
    return ExportInputs(analysis=analysis, plan=plan, soundtrack=_soundtrack(plan), render=_render(plan),
                        settings={"backend": "score", "fps": NTSC})


def _seconds(text: str) -> Fraction:
    return Fraction(text.removesuffix("s")) if text != "0s" else Fraction(0)


def _with_timecode(analysis: VideoAnalysis, timecode: str | None, **media_changes) -> VideoAnalysis:
    media = MediaInfo.from_dict({**analysis.media.to_dict(), "start_timecode": timecode, **media_changes})
    return VideoAnalysis(media=media, shots=analysis.shots, events=analysis.events, motion=analysis.motion,
                         captions=analysis.captions)


def _fcpxml_root(path) -> ET.Element:
    return ET.fromstring(path.read_text().split("<!DOCTYPE fcpxml>", 1)[1])


def _media_shown(clip: ET.Element) -> tuple[Fraction, Fraction]:
    """(media time at the clip's first frame, how long the media covers the clip's window) of an
    FCPXML `clip` holding a `video`, or a `gap` carrying an `audio`."""
    start, duration = _seconds(clip.get("start", "0s")), _seconds(clip.get("duration"))
    holder = next(child for child in clip if child.tag in ("video", "gap"))
    media = holder if holder.tag == "video" else holder.find("audio")
    begins = _seconds(holder.get("offset", "0s")) + (_seconds(media.get("offset", "0s")) if media is not holder else 0)
    ends = begins + _seconds(media.get("duration"))
    covered = max(Fraction(0), min(start + duration, ends) - max(start, begins))
    return start - begins + _seconds(media.get("start", "0s")), covered


def _kept_original_run(analysis: VideoAnalysis) -> ExportInputs:
    """A run with --keep-original: the soundtrack's stems hold the source's sound as mixed (ducked)."""
    plan = make_plan(analysis, PlanOptions(seed=5))
    stems = dict(_soundtrack(plan).stems)
    stems["original"] = 0.25 * stems["music"]
    soundtrack = Soundtrack.from_arrays(sample_rate=SR, mix=sum(stems.values()), stems=stems,
                                        integrated_lufs=-16.0, true_peak_dbtp=-1.0)
    return ExportInputs(analysis=analysis, plan=plan, soundtrack=soundtrack)
