"""Runs inside the bpy venv (python -m is not needed: `python blender_harness.py job.json`).

Installs the Dub Bridge extension zip headless, builds a scene with a movie strip, runs the
"Dub selected movie strip" operator and drives its poll function directly (timers do not run
without a window), then saves, reopens and mixes the scene down to WAV. Prints one JSON line of
facts for tests/test_blender.py to check; it asserts nothing itself.

The job file names: zip, movie, work (a folder), dub (the dub command path), backend,
separate_stems, fps, movie_start_frame, trim_start_frames, blocker_channel; optionally fps_base,
style, keep_original, recorded_dub (the command the installed package records, used with an empty preference),
rerun_style (dub the strip a second time in that style, recording the first dub's
strips and the digests of their files in between) and reload ("same": the project is saved before
the dub and opened again while it runs; "other": while it runs the strip comes to show another
movie file, as in another project with a scene and strip of the same names). When the operator refuses to start, the facts
are its error and the strips.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import wave
from pathlib import Path

import numpy as np

import bpy

MODULE = "bl_ext.user_default.dub_bridge"


def install(zip_path: str):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    result = bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default",
                                                      enable_on_install=True)
    assert result == {"FINISHED"}, result
    return sys.modules[MODULE]


def make_scene(job: dict):
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = int(job["fps"]), float(job.get("fps_base", 1.0))
    scene.frame_start = 1
    editor = scene.sequence_editor_create()
    movie = editor.strips.new_movie(name="picture", filepath=job["movie"], channel=1,
                                    frame_start=int(job["movie_start_frame"]))
    movie.frame_offset_start = int(job["trim_start_frames"])
    scene.frame_end = movie.frame_final_end + 30
    if job.get("blocker_channel"):
        where = {"name": "blocker", "type": "COLOR", "channel": int(job["blocker_channel"]),
                 "frame_start": movie.frame_final_start}
        try:
            blocker = editor.strips.new_effect(**where, length=10)                      # 5.x
        except TypeError:
            blocker = editor.strips.new_effect(**where, frame_end=movie.frame_final_start + 10)  # 4.4
        blocker.select = False
    for strip in editor.strips:
        strip.select = strip == movie
    editor.active_strip = movie
    return scene, movie


def set_prefs(job: dict, module) -> None:
    prefs = bpy.context.preferences.addons[MODULE].preferences
    prefs.dub_path = job["dub"]
    if job.get("recorded_dub"):   # no preference: the command the installer recorded is used
        prefs.dub_path = ""
        Path(module.__file__).with_name(module.DUB_COMMAND_FILE).write_text(json.dumps({"dub": [job["recorded_dub"]]}))
    prefs.backend = job["backend"]
    prefs.separate_stems = bool(job["separate_stems"])
    prefs.keep_original = bool(job.get("keep_original", False))
    if job.get("style"):
        prefs.style = job["style"]


def _absolute(path: str) -> str:
    """Blender stores paths relative to the .blend once saved; compare them as absolute paths."""
    return os.path.normpath(bpy.path.abspath(path)) if path else ""


def strip_facts(scene) -> list[dict]:
    return sorted(({"name": s.name, "type": s.type, "channel": s.channel, "frame_start": s.frame_start, "mute": s.mute,
                    "frame_final_start": s.frame_final_start, "frame_final_end": s.frame_final_end,
                    "filepath": _absolute(s.sound.filepath if s.type == "SOUND" else getattr(s, "filepath", ""))}
                   for s in scene.sequence_editor.strips_all), key=lambda f: (f["channel"], f["name"]))


def mixdown(scene, path: Path) -> dict:
    bpy.ops.sound.mixdown(filepath=str(path), container="WAV", codec="PCM", format="S16", mixrate=48000,
                          channels="STEREO", check_existing=False)
    with wave.open(str(path), "rb") as wav:
        rate, data = wav.getframerate(), wav.readframes(wav.getnframes())
    audio = np.frombuffer(data, dtype="<i2").reshape(-1, 2).astype(np.float64) / 32768.0
    loud = np.flatnonzero(np.abs(audio).max(axis=1) > 0.01)
    return {"rate": rate, "samples": int(audio.shape[0]),
            "first_sample": int(loud[0]) if loud.size else None,
            "last_sample": int(loud[-1]) if loud.size else None}


def sound_digests(scene) -> dict[str, str]:
    """SHA-1 of the file under each sound strip, by strip name."""
    return {s.name: hashlib.sha1(Path(_absolute(s.sound.filepath)).read_bytes()).hexdigest()
            for s in scene.sequence_editor.strips_all if s.type == "SOUND"}


PROGRESS: dict = {}


def dub(module, job: dict) -> str:
    work = Path(job["work"])
    if job.get("reload") == "same":
        bpy.ops.wm.save_as_mainfile(filepath=str(work / "project.blend"))
    assert bpy.ops.sequencer.dub_movie_strip() == {"FINISHED"}
    running = module.JOBS[-1]
    shown = PROGRESS.setdefault("shown", [])
    noted = running.note

    def note(event):   # the progress bar's value after each of dub's events
        noted(event)
        shown.append([str(event.get("stage") or event.get("event")), round(running.fraction, 4)])
    running.note = note
    if job.get("reload") == "same":
        bpy.ops.wm.open_mainfile(filepath=str(work / "project.blend"))
    elif job.get("reload") == "other":
        other = work / ("other" + Path(job["movie"]).suffix)
        other.write_bytes(Path(job["movie"]).read_bytes())
        bpy.context.scene.sequence_editor.active_strip.filepath = str(other)
    return module.run_until_done(running, timeout_s=float(job.get("timeout_s", 300)))


def main(job_path: str) -> None:
    job = json.loads(Path(job_path).read_text())
    work = Path(job["work"])
    module = install(job["zip"])
    scene, movie = make_scene(job)
    set_prefs(job, module)
    try:
        status = dub(module, job)
        scene = bpy.context.scene   # the file may have been opened again meanwhile
    except RuntimeError as err:   # an operator's error report, raised when it is called from Python
        print("HARNESS " + json.dumps({"operator_error": str(err), "jobs": len(module.JOBS),
                                       "strips": strip_facts(scene)}))
        return
    first = None
    if job.get("rerun_style"):
        first = {"status": status, "strips": strip_facts(scene), "digests": sound_digests(scene),
                 "markers": sorted((m.frame, m.name) for m in scene.timeline_markers)}
        bpy.context.preferences.addons[MODULE].preferences.style = job["rerun_style"]
        status = dub(module, job)
    older = type("EditorBefore44", (), {"sequences": "top", "sequences_all": "all"})()  # Blender < 4.4 names
    facts = {"status": status, "uses_strips": hasattr(scene.sequence_editor, "strips"),
             "shim_old": [module.top_strips(older), module.all_strips(older)],
             "strips": strip_facts(scene), "mix": mixdown(scene, work / "mix_before.wav"),
             "markers": sorted((m.frame, m.name) for m in scene.timeline_markers),
             "progress": PROGRESS.get("shown", [])}
    if first is not None:
        facts["first"], facts["digests"] = first, sound_digests(scene)
    blend = work / "dubbed.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    reopened = bpy.context.scene
    facts["reopened_strips"] = strip_facts(reopened)
    facts["reopened_mix"] = mixdown(reopened, work / "mix_after.wav")
    print("HARNESS " + json.dumps(facts))


if __name__ == "__main__":
    main(sys.argv[1])
