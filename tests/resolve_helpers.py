"""The scene of the Resolve script tests: a fake Resolve whose timeline (at 24, 25, 29.97 or 30
fps) holds one clip, 100 frames in, that skips its media's first 20 frames; a stand-in `dub`
command (a tiny script) that emits --json-progress lines and writes stems, dub.json and an .otio;
and the frames where its shots must land."""
from __future__ import annotations

import json
import sys
from fractions import Fraction
from pathlib import Path

from integrations.resolve import dub_resolve as dr
from tests import fake_resolve as fr

rb = dr.rb  # the bridge module exactly as the launcher imported it
SCRIPTS = (Path(dr.__file__), Path(rb.__file__))
SHOTS = ((0, 48), (48, 120), (120, 240))
CAPTIONS = ("a cat tiptoes past the vase", "the vase wobbles and falls", "crash, shards everywhere")
# Timeline start 01:00:00:00 at each rate (29.97 counted non-drop-frame).
TIMELINE_START = {"24": 86400, "25": 90000, "29.97": 108000, "30": 108000}
RATES = {"24": Fraction(24), "25": Fraction(25), "29.97": Fraction(30000, 1001), "30": Fraction(30)}
# Source ranges of the three shots in frames of the WAV (the clip uses media frames [20, 240)).
# Resolve counts a WAV at the project's rate when it is imported, here the video's own, so they
# are the shots' own frames at every rate.
EXPECTED_SOURCE = {rate: [(20, 48), (48, 120), (120, 240)] for rate in ("24", "25", "29.97", "30")}
# The same shots in a WAV counted at 24 fps (imported while the project ran at 24), worked out
# by hand: frame -> sample (48 kHz) -> units of 1/24 s, rounded.
EXPECTED_SOURCE_AT_24 = {
    "25": [(19, 46), (46, 115), (115, 230)],
    "29.97": [(16, 38), (38, 96), (96, 192)],
}
CLIP_OFFSET, LEFT_OFFSET, CLIP_FRAMES = 100, 20, 220
# The clip starts 100 frames into the timeline and skips the media's first 20 frames, so the
# shots at media frames 0 (trimmed to 20), 48 and 120 start 100, 128 and 200 frames in.
EXPECTED_RECORD_OFFSETS = [100, 128, 200]
EXPECTED_END_OFFSETS = [128, 200, 320]

FAKE_DUB = r'''
import json, sys, time, wave
from pathlib import Path
template, source = sys.argv[1], sys.argv[2]
args = sys.argv[3:]
out = Path(args[args.index("-o") + 1]); stems_dir = Path(args[args.index("--stems") + 1])
assert "--json-progress" in args and "--timeline" in args
manifest = json.loads(Path(template).read_text())
if manifest.get("fail"):
    print("dub: The input has no video stream; choose a video file.", file=sys.stderr); sys.exit(2)
if out.exists() and "--overwrite" not in args:
    print(f"dub: {out} exists; pass --overwrite to replace it.", file=sys.stderr); sys.exit(2)
if manifest.get("notice"):
    print(json.dumps({"event": "notice", "message": manifest["notice"]}), flush=True)
if manifest.get("source_has_audio") and "--keep-original" not in args:   # as dub says it
    print(json.dumps({"event": "notice", "message": "the source's audio track is not in the output, only the "
                      "dub; pass --keep-original to keep it after the dub"}), flush=True)
total = manifest["plan"]["total_samples"]
for i, stage in enumerate(("analyze", "plan", "render", "mix")):
    print(json.dumps({"stage": stage, "done": i + 1, "total": 4, "message": stage}), flush=True)
    time.sleep(manifest.get("sleep_s", 0))
stems_dir.mkdir(parents=True, exist_ok=True)
outputs = {"video": str(out)}
level = int(manifest.get("level", 0)).to_bytes(2, "little", signed=True)
for name in ["mix"] + manifest["stem_names"]:
    with wave.open(str(stems_dir / f"{name}.wav"), "wb") as w:
        w.setnchannels(2); w.setsampwidth(2); w.setframerate(48000); w.writeframes(level * 2 * total)
    outputs["mix" if name == "mix" else "stem:" + name] = str(stems_dir / f"{name}.wav")
base = out.with_suffix("")
otio = base.with_name(base.name + ".otio"); otio.write_text(json.dumps({"OTIO_SCHEMA": "Timeline.1"}))
outputs["otio"] = str(otio)
manifest_path = base.with_name(base.name + ".json")
outputs["manifest"] = str(manifest_path)
manifest["outputs"] = {k: str(Path(v).relative_to(out.parent)) for k, v in outputs.items()}
manifest_path.write_text(json.dumps(manifest))
out.write_bytes(b"muxed")
print(json.dumps({"event": "done", "outputs": outputs}), flush=True)
'''


def make_manifest(fps: Fraction, stems=("music", "fx"), rate: int = 48000, shots=SHOTS) -> dict:
    frames = shots[-1][1]
    captions = CAPTIONS if shots is SHOTS else tuple(f"shot {i}" for i in range(len(shots)))
    cues = []
    for i, (a, b) in enumerate(shots):
        start, end = round(a * rate / fps), round(b * rate / fps)
        cues.append({"index": i, "shot_index": i, "start_frame": a, "end_frame": b, "start_sample": start,
                     "num_samples": end - start, "caption": captions[i]})
    return {
        "schema": "dubber.manifest/1",
        "media": {"fps": f"{fps.numerator}/{fps.denominator}", "frame_count": frames, "width": 320, "height": 180},
        "analysis": {"schema": "dubber.analysis/1",
                     "shots": [{"index": i, "start_frame": a, "end_frame": b} for i, (a, b) in enumerate(shots)],
                     "captions": [{"shot_index": i, "text": t} for i, t in enumerate(captions)]},
        "plan": {"sample_rate": rate, "total_samples": round(frames * rate / fps), "cues": cues},
        "stem_names": list(stems),
    }


def make_setup(tmp_path: Path, rate_name: str, hidden=frozenset(), **manifest_extra):
    timeline = fr.FakeTimeline("Edit 1", rate_name, TIMELINE_START[rate_name], hidden)
    source = tmp_path / "media" / "clip.mp4"
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_bytes(b"not read by the stand-in dub")
    fr.add_video_clip(timeline, str(source), CLIP_OFFSET, LEFT_OFFSET, CLIP_FRAMES, media_frames=240)
    timeline._playhead = TIMELINE_START[rate_name] + 150
    resolve = fr.FakeResolve(timeline, hidden)
    template = tmp_path / "template.json"
    template.write_text(json.dumps({**make_manifest(RATES[rate_name]), **manifest_extra}))
    fake_dub = tmp_path / "fake_dub.py"
    fake_dub.write_text(FAKE_DUB)
    config = {"dub": [sys.executable, str(fake_dub), str(template)]}
    return resolve, timeline, config, source


def runner(on_event=lambda e: None, cancelled=lambda: False):
    return lambda args: rb.run_dub(args, on_event, cancelled)


def audio_items(timeline: fr.FakeTimeline, track: int) -> list:
    return sorted(timeline.GetItemListInTrack("audio", track), key=lambda item: item.GetStart())
