"""Dub Bridge: "Dub selected movie strip" for Blender's Video Sequencer.

Runs the `dub` command on the active movie strip's file in a subprocess, shows its progress in
the Sequencer sidebar (Dub tab) while Blender stays responsive, and adds the result as sound
strips on a free channel, lined up with the movie strip sample for sample: the dub's WAVs cover
the whole video, so the sound strip starts where the movie's first frame sits and takes the
movie strip's trim. Each event the soundtrack hits gets a timeline marker on its frame.

Standard library only (Blender's bundled Python has no dubber). Works as an extension
(blender_manifest.toml, Blender 4.2+) and as a legacy add-on (bl_info). Sound strips need
Blender 4.4+ from the `bpy` wheels; the `strips`/`sequences` collections are both handled.

Threads never touch bpy: a reader thread turns dub's --json-progress lines into events on a
queue.Queue, and a bpy.app.timers function drains it on the main thread. Headless (where
timers never fire) call `run_until_done()` instead.
"""
import json
import logging
import os
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path

import bpy

bl_info = {
    "name": "Dub Bridge",
    "author": "dubber contributors",
    "version": (0, 1, 0),
    "blender": (4, 2, 0),
    "location": "Sequencer > Strip > Dub selected movie strip; Sidebar > Dub",
    "description": "Give a movie strip a soundtrack cut to its shots with the dub command",
    "category": "Sequencer",
}

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.5
# dub's stages in the order it reports them, each with its share of the whole run, so one bar
# fills once from start to end instead of emptying at every stage (measured with the score
# engine: the picture's decode and the render take most of it; mux encodes the sound).
STAGE_SHARES = (("probe", 0.01), ("analyze", 0.35), ("plan", 0.01), ("render", 0.35), ("mix", 0.1),
                ("mux", 0.15), ("export", 0.03))
DECODE_SHARE = 0.9   # of the analysis: decoding the picture; captioning the shots is the rest
DUB_COMMAND_FILE = "dub_command.json"   # written into the package by `dub integrations install blender`
MAX_CHANNEL = 128
KEPT_CONTAINERS = (".mp4", ".mov", ".m4v", ".mkv")   # a dub of one of these keeps its container
# Any other movie: WebM's VP8/VP9/AV1 fit only Matroska of what dub writes, and .mov carries what
# .mxf and .avi hold (DNxHD/DNxHR, ProRes, HuffYUV, UT Video, uncompressed RGB), which .mp4 cannot.
WEBM_OUTPUT_SUFFIX = ".mkv"
OTHER_OUTPUT_SUFFIX = ".mov"
# Each dub goes into a take folder of its own (<name>_dub, <name>_dub-2, ...), never over an
# earlier one: the strips of an earlier dub keep playing exactly what they played.
MAX_TAKES = 999
# Blender stores fps_base as a 32-bit float (1.001 reads back as 1.0010000467), which moves
# 24/1.001 by 5e-8 of itself; a scene one NTSC step off (24 vs 23.976) is 1e-3 away.
FPS_MATCH_TOLERANCE = 1e-5
# dub's notices name its own options; the one the add-on sets from its preferences is named as
# the preference the user can change.
KEEP_ORIGINAL_FLAG = "pass --keep-original"
KEEP_ORIGINAL_SETTING = "turn on \"Keep the movie's sound\" in the Dub Bridge preferences"


# ---------------------------------------------------------------------------------------------
# Collections across Blender versions
# ---------------------------------------------------------------------------------------------

def top_strips(editor):
    """Top-level strips: `strips` (4.4+, the only name in 5.x) or `sequences` (before 4.4)."""
    return editor.strips if hasattr(editor, "strips") else editor.sequences


def all_strips(editor):
    return editor.strips_all if hasattr(editor, "strips_all") else editor.sequences_all


def active_movie_strip(scene):
    editor = scene.sequence_editor
    if editor is None:
        return None
    strip = editor.active_strip
    if strip is not None and strip.type == "MOVIE" and strip.select:
        return strip
    return next((s for s in all_strips(editor) if s.type == "MOVIE" and s.select), None)


# ---------------------------------------------------------------------------------------------
# The dub subprocess (no bpy here: runs beside Blender's main thread)
# ---------------------------------------------------------------------------------------------

def overall_fraction(stage, within, before):
    """How far the whole dub is (0..1) when `stage` ("analyze", "analyze/decode", ...) is
    `within` (0..1) done; `before` is the fraction shown so far, which the bar never goes under.
    Stages inside the analysis move the bar through its share; those of other stages (the
    render's per-cue steps) only say what is being done."""
    top, _, part = stage.partition("/")
    names = [name for name, _ in STAGE_SHARES]
    if top not in names:
        return before
    start = sum(share for _, share in STAGE_SHARES[:names.index(top)])
    share = STAGE_SHARES[names.index(top)][1]
    if part == "decode":
        share *= DECODE_SHARE
    elif part == "caption":
        start, share = start + share * DECODE_SHARE, share * (1.0 - DECODE_SHARE)
    elif part:
        within = 0.0
    return max(before, min(1.0, start + share * min(max(within, 0.0), 1.0)))


class DubJob:
    """`dub --json-progress` running in a subprocess; `drain()` returns the events read so far."""

    def __init__(self, args, scene_name, strip_name, out_dir, separate_stems, video=""):
        self.args, self.scene_name, self.strip_name = list(args), scene_name, strip_name
        self.video = os.path.normpath(str(video)) if video else ""   # the movie file being dubbed
        self.out_dir, self.separate_stems = Path(out_dir), separate_stems
        flags = getattr(subprocess, "CREATE_NO_WINDOW", 0)
        try:
            self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         stdin=subprocess.DEVNULL, text=True, encoding="utf-8",
                                         errors="replace", creationflags=flags)
        except OSError as err:
            raise RuntimeError(f"The dub command {self.args[0]} could not be started "
                               f"({err.strerror or err}); set its path in the Dub Bridge preferences.") from None
        self.events = queue.Queue()
        self.stderr_lines = []
        self.outputs = None
        self.stdout_closed = False
        self.over = False
        self.cancelled = False
        self.error_message = ""
        self.status = "Starting dub"
        self.fraction = 0.0
        self.notices = []   # dub's own sentences for the user, shown again with the result
        threading.Thread(target=self._read_stdout, daemon=True).start()
        self.stderr_reader = threading.Thread(target=self._read_stderr, daemon=True)
        self.stderr_reader.start()

    def _read_stdout(self):
        for line in self.proc.stdout:
            line = line.strip()
            if line.startswith("{"):
                try:
                    self.events.put(json.loads(line))
                except ValueError:
                    pass
        self.events.put(None)  # end of output

    def _read_stderr(self):
        for line in self.proc.stderr:
            self.stderr_lines.append(line.rstrip())

    def drain(self):
        """Every event queued so far; sets `stdout_closed` once dub's output has ended."""
        events = []
        while True:
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                return events
            if event is None:
                self.stdout_closed = True
            else:
                events.append(event)

    def note(self, event):
        if event.get("event") == "error":
            self.error_message = str(event.get("message") or "")
        elif event.get("event") == "notice":
            text = str(event.get("message") or "").strip().replace(KEEP_ORIGINAL_FLAG, KEEP_ORIGINAL_SETTING)
            if text and text not in self.notices:
                self.notices.append(text)
            if text:
                self.status = f"dub: {text}"
        elif event.get("event") == "done":
            self.outputs = dict(event.get("outputs") or {})
            self.status, self.fraction = "Adding the dub to the sequencer", 1.0
        elif "stage" in event:
            total = int(event.get("total") or 0)
            within = int(event.get("done") or 0) / total if total else 0.0
            self.fraction = overall_fraction(str(event["stage"]), within, self.fraction)
            self.status = f"{event['stage']}: {event.get('message') or ''}".strip(": ")

    def cancel(self):
        self.cancelled = True
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def failure(self):
        self.stderr_reader.join(timeout=5)
        text = [line for line in self.stderr_lines if line.strip()]
        if self.error_message:
            return self.error_message
        return text[-1] if text else f"dub stopped with exit code {self.proc.returncode}."


# ---------------------------------------------------------------------------------------------
# Reading the result and adding strips
# ---------------------------------------------------------------------------------------------

def _resolve(value, base):
    path = Path(str(value))
    return path if path.is_absolute() else base / path


def result_sounds(outputs, out_dir, separate_stems):
    """{name: wav} to add: every stem ("stem:<name>" roles) when asked, else the mixed WAV."""
    roles = {}
    manifest = outputs.get("manifest")
    if manifest and Path(manifest).is_file():
        base = Path(manifest).parent
        listed = json.loads(Path(manifest).read_text(encoding="utf-8")).get("outputs") or {}
        roles.update({k: _resolve(v, base) for k, v in listed.items() if isinstance(v, str)})
    roles.update({k: _resolve(v, out_dir) for k, v in outputs.items() if isinstance(v, str) and v})
    stems = {k.split(":", 1)[1]: p for k, p in roles.items() if k.startswith("stem:")}
    if separate_stems and stems:
        return stems
    if "mix" in roles:
        return {"dub": roles["mix"]}
    if stems:
        return stems
    raise RuntimeError(f"dub finished but listed no WAV in {out_dir}; run it again with --stems.")


def channel_is_free(editor, channel, start, end):
    return not any(s.channel == channel and s.frame_final_start < end and start < s.frame_final_end
                   for s in top_strips(editor))


def free_channel(editor, above, start, end):
    """Lowest channel above `above` with nothing in frames [start, end)."""
    for channel in range(above + 1, MAX_CHANNEL + 1):
        if channel_is_free(editor, channel, start, end):
            return channel
    raise RuntimeError("Every sequencer channel above the movie is busy here; free a channel and dub again.")


TAKE_PROPERTY = "dub_take"   # on each sound strip this add-on adds: the take folder it plays from


def mute_earlier_takes(scene, movie):
    """Mute the dub strips an earlier take added over this movie strip, so the new take plays
    alone (two scores summed are no take at all); they stay in the edit to compare or go back
    to. Returns how many were muted."""
    start, end = movie.frame_final_start, movie.frame_final_end
    muted = 0
    for strip in top_strips(scene.sequence_editor):
        earlier = strip.get(TAKE_PROPERTY) is not None or (
            strip.type == "SOUND" and strip.name.startswith(f"{movie.name} ")
            and "_dub" in Path(bpy.path.abspath(strip.sound.filepath)).parent.parent.name)
        if strip != movie and earlier and not strip.mute and strip.frame_final_start < end and start < strip.frame_final_end:
            strip.mute = True
            muted += 1
    return muted


def add_sound_strips(scene, movie, sounds, take=""):
    """One sound strip per WAV, each on its own free channel, starting where the movie's first
    frame sits and trimmed exactly like the movie strip; each marked with its take folder."""
    editor = scene.sequence_editor
    start, end = movie.frame_final_start, movie.frame_final_end
    added, above = [], movie.channel
    for name, wav in sounds.items():
        channel = free_channel(editor, above, start, end)
        strip = top_strips(editor).new_sound(name=f"{movie.name} {name}", filepath=str(wav), channel=channel,
                                             frame_start=int(round(movie.frame_start)))
        strip.frame_final_start, strip.frame_final_end = start, end
        strip.channel = channel  # trimming may have nudged it; keep the free channel
        strip[TAKE_PROPERTY] = str(take)
        added.append(strip)
        above = channel
    return added


HIT_MARKER_PREFIX = "dub "   # timeline markers this add-on placed, replaced by the next take's


def add_hit_markers(scene, movie, events, video_fps):
    """A timeline marker at each event the dub's soundtrack hits ("dub impact 0.80"), on the scene
    frame showing it, where the movie strip is visible. The markers an earlier take placed over
    this strip go first. Returns how many were placed."""
    start, end = movie.frame_final_start, movie.frame_final_end
    markers = scene.timeline_markers
    for old in [m for m in markers if m.name.startswith(HIT_MARKER_PREFIX) and start <= m.frame < end]:
        markers.remove(old)
    scene_fps = scene.render.fps / scene.render.fps_base
    placed = 0
    for event in events:
        # by time, so a scene at another rate than the video still marks the right moment
        frame = int(round(movie.frame_start + event["frame"] / video_fps * scene_fps))
        if start <= frame < end:
            markers.new(f"{HIT_MARKER_PREFIX}{event['kind']} {float(event['strength']):.2f}", frame=frame)
            placed += 1
    return placed


def manifest_events(job):
    """The events the dub's soundtrack hits, from its manifest (none when it lists none)."""
    manifest = (job.outputs or {}).get("manifest")
    try:
        events = json.loads(Path(manifest).read_text())["analysis"]["events"]
    except (OSError, KeyError, TypeError, ValueError):
        return []
    return [e for e in events if isinstance(e, dict) and {"frame", "kind", "strength"} <= set(e)]


# ---------------------------------------------------------------------------------------------
# Running jobs: timer (interactive) or a direct loop (headless)
# ---------------------------------------------------------------------------------------------

JOBS = []


def _set_status(text, fraction):
    wm = bpy.context.window_manager
    if wm is None:
        return
    wm.dub_status, wm.dub_progress = text, 100.0 * fraction
    for window in wm.windows:
        for area in window.screen.areas:
            if area.type == "SEQUENCE_EDITOR":
                area.tag_redraw()


def _sentence(text):
    return text if text.endswith((".", "!", "?")) else text + "."


def fps_matches(fps, fps_base, video_fps):
    """Whether the scene's rate (fps / fps_base, as Blender stores them) is the video's."""
    return abs(fps / fps_base - video_fps) <= FPS_MATCH_TOLERANCE * video_fps


def discard_take(job):
    """A take folder whose dub failed or was cancelled holds nothing in the edit; remove it so
    the next run reuses its name."""
    shutil.rmtree(job.out_dir, ignore_errors=True)


def _finish(job):
    """On the main thread, after dub exited: add strips, or report the failure."""
    if job.cancelled:
        discard_take(job)
        return "Dub cancelled; nothing was added."
    if job.proc.wait() != 0 or job.outputs is None:
        discard_take(job)
        return f"Dub failed: {job.failure()}"
    scene = bpy.data.scenes.get(job.scene_name)
    movie = all_strips(scene.sequence_editor).get(job.strip_name) if scene and scene.sequence_editor else None
    if movie is not None and job.video and os.path.normpath(bpy.path.abspath(movie.filepath)) != job.video:
        movie = None   # another file is open now, with a strip of the same name over another movie
    if movie is None:
        return f"The movie strip {job.strip_name!r} is gone; its dub is in {job.out_dir}."
    sounds = result_sounds(job.outputs, job.out_dir, job.separate_stems)
    muted = mute_earlier_takes(scene, movie)
    added = add_sound_strips(scene, movie, sounds, job.out_dir)
    message = f"Added {len(added)} dub strip(s) under {movie.name}."
    if muted:
        message += f" Muted the {muted} strip(s) of the earlier take, kept to compare."
    video_fps = job_fps(job)
    marked = add_hit_markers(scene, movie, manifest_events(job), video_fps) if video_fps else 0
    if marked:
        message += f" Marked the {marked} hit(s) it plays on the timeline."
    if video_fps and not fps_matches(scene.render.fps, scene.render.fps_base, video_fps):
        message += f" Set the scene to the video's {video_fps:.3f} fps, or picture and dub drift apart."
    # The strips arrive from a timer, after the operator has ended: they get an undo step of their
    # own, so Ctrl+Z takes back the dub and not the edit before it (headless, there is no undo).
    if bpy.ops.ed.undo_push.poll():
        bpy.ops.ed.undo_push(message="Dub")
    # dub's notices (a backend fallback, a dropped audio track) follow, marked as dub's own
    # words as the Resolve script prints them: they often start in lowercase.
    return " ".join([message] + [f"dub: {_sentence(text)}" for text in job.notices])


def job_fps(job):
    manifest = (job.outputs or {}).get("manifest")
    try:
        num, _, den = str(json.loads(Path(manifest).read_text())["media"]["fps"]).partition("/")
        return int(num) / int(den or 1)
    except (OSError, KeyError, TypeError, ValueError):
        return 0.0


def poll_job(job):
    """One step: drain progress, and when dub has exited add the strips. Returns the seconds to
    the next call, or None once the job is over (the bpy.app.timers contract)."""
    if job.over:
        return None
    for event in job.drain():
        job.note(event)
    if not job.stdout_closed or job.proc.poll() is None:
        _set_status(job.status, job.fraction)
        return POLL_INTERVAL_S
    try:
        message = _finish(job)
    except (RuntimeError, OSError, ValueError) as err:
        message = f"Dub failed: {err}"
    job.status, job.over = message, True
    _set_status(message, 1.0 if not message.startswith("Dub failed") else 0.0)
    if job in JOBS:
        JOBS.remove(job)
    log.info("%s", message)
    return None


def run_until_done(job, timeout_s=600.0):
    """Headless path: call poll_job until it is over (timers do not run in background mode)."""
    deadline = time.monotonic() + timeout_s
    while poll_job(job) is not None:
        if time.monotonic() > deadline:
            job.cancel()
            raise TimeoutError(f"dub ran longer than {timeout_s:.0f} s and was stopped")
        time.sleep(0.05)
    return job.status


# ---------------------------------------------------------------------------------------------
# Preferences, command line, operators, panel
# ---------------------------------------------------------------------------------------------

def _prefs(context):
    addon = context.preferences.addons.get(__package__)
    return addon.preferences if addon else None


def dub_command(prefs):
    """The dub command: the preference, else the one the installer recorded, else PATH."""
    if prefs is not None and prefs.dub_path.strip():
        given = prefs.dub_path.strip()
        path = bpy.path.abspath(given)
        if Path(path).is_file():
            return [path]
        found = shutil.which(given) if os.sep not in given and "/" not in given else None
        if found is not None:   # a bare command name, found on PATH
            return [found]
        raise RuntimeError(f"The dub command {path} set in the Dub Bridge preferences does not exist; "
                           "correct that path, or clear it to use the installed dub.")
    recorded = Path(__file__).with_name(DUB_COMMAND_FILE)
    if recorded.is_file():
        command = [str(p) for p in json.loads(recorded.read_text(encoding="utf-8"))["dub"]]
        if not Path(command[0]).is_file():
            raise RuntimeError(f"The dub command {command[0]} recorded at install no longer exists; run "
                               "`dub integrations install blender` again, or set its path in the Dub Bridge "
                               "preferences.")
        return command
    found = shutil.which("dub")
    if found is None:
        raise RuntimeError("The dub command was not found; set its path in the Dub Bridge preferences.")
    return [found]


def take_names(video):
    """<name>_dub, then <name>_dub-2, <name>_dub-3, ...: the take folders of one movie."""
    yield f"{video.stem}_dub"
    for number in range(2, MAX_TAKES + 1):
        yield f"{video.stem}_dub-{number}"


def output_dir_for(video):
    """A new, empty take folder beside the movie (else in Blender's temporary folder). It is
    created here, so no other dub, in this Blender or another, can be given the same one."""
    for base in (video.parent, Path(bpy.app.tempdir or os.path.expanduser("~")) / "dub"):
        try:
            base.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        for name in take_names(video):
            try:
                (base / name).mkdir()
                return base / name
            except FileExistsError:
                continue
            except OSError:
                break
        else:
            raise RuntimeError(f"{base} already holds {MAX_TAKES} dubs of {video.name}; move or delete some "
                               "that are no longer in the edit.")
    raise RuntimeError(f"Cannot write next to {video}; move the movie to a writable folder.")


def output_suffix_for(video):
    """The container of the dubbed video: dub copies the picture unchanged, so it must carry the
    movie's codec. The add-on cannot probe the codec, so the rule goes by the movie's suffix."""
    suffix = video.suffix.lower()
    if suffix in KEPT_CONTAINERS:
        return suffix
    return WEBM_OUTPUT_SUFFIX if suffix == ".webm" else OTHER_OUTPUT_SUFFIX


def build_args(command, video, out_dir, prefs):
    """The dub command line, writing into the take folder `out_dir` with files named after it.
    No --overwrite: the folder is new, and a dub already in the edit must never change. A rerun
    (after a change of style, say) still reuses dub's cached analysis of the same movie."""
    out_video = out_dir / f"{out_dir.name}{output_suffix_for(video)}"
    args = command + [str(video), "-o", str(out_video), "--json-progress", "--stems", str(out_dir / "stems")]
    if prefs is not None:
        args += ["--style", prefs.style, "--backend", prefs.backend]
        if prefs.keep_original:
            args.append("--keep-original")
    return args


def start_dub(context, movie):
    prefs = _prefs(context)
    video = Path(bpy.path.abspath(movie.filepath))
    if not video.is_file():
        raise RuntimeError(f"The movie file {video} is missing; relink the strip and dub again.")
    command = dub_command(prefs)
    out_dir = output_dir_for(video)
    separate = bool(prefs.separate_stems) if prefs is not None else False
    try:
        job = DubJob(build_args(command, video, out_dir, prefs), context.scene.name, movie.name,
                     out_dir, separate, video)
    except RuntimeError:
        shutil.rmtree(out_dir, ignore_errors=True)
        raise
    JOBS.append(job)
    return job


class DubBridgePreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    dub_path: bpy.props.StringProperty(name="dub command", subtype="FILE_PATH",
                                       description="Path of the dub executable (empty: the installed one, or PATH)")
    style: bpy.props.StringProperty(name="Style", default="tom-and-jerry")
    backend: bpy.props.EnumProperty(name="Backend", default="auto",
                                    items=[("auto", "Auto", "AudioStory on a GPU with weights, else the score engine"),
                                           ("audiostory", "AudioStory", "the model (GPU)"),
                                           ("score", "Score", "orchestral score engine on the CPU")])
    separate_stems: bpy.props.BoolProperty(name="Stems as separate strips", default=False)
    keep_original: bpy.props.BoolProperty(
        name="Keep the movie's sound", default=False,
        description="The dub keeps the movie's own sound, lowered and ducked under the new one (in the mix, "
                    "and as an \"original\" stem); mute the movie's own sound strip, or it plays twice")

    def draw(self, context):
        for prop in ("dub_path", "style", "backend", "separate_stems", "keep_original"):
            self.layout.prop(self, prop)


class SEQUENCER_OT_dub_movie_strip(bpy.types.Operator):
    """Give the selected movie strip a soundtrack cut to its shots"""

    bl_idname = "sequencer.dub_movie_strip"
    bl_label = "Dub selected movie strip"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context):
        return context.scene is not None and active_movie_strip(context.scene) is not None

    def execute(self, context):
        try:
            job = start_dub(context, active_movie_strip(context.scene))
        except (RuntimeError, OSError) as err:
            self.report({"ERROR"}, str(err))
            return {"CANCELLED"}
        # persistent: the timer outlives loading a file, so a dub started before File > Open
        # (or a revert) still finishes: into the same project reopened, else it says where it is
        bpy.app.timers.register(lambda: poll_job(job), first_interval=POLL_INTERVAL_S, persistent=True)
        self.report({"INFO"}, "Dubbing started; progress is in the Sidebar's Dub tab.")
        return {"FINISHED"}


class SEQUENCER_OT_dub_cancel(bpy.types.Operator):
    """Stop every running dub"""

    bl_idname = "sequencer.dub_cancel"
    bl_label = "Cancel dub"

    def execute(self, context):
        for job in list(JOBS):
            job.cancel()
        _set_status("Dub cancelled", 0.0)
        return {"FINISHED"}


class SEQUENCER_PT_dub(bpy.types.Panel):
    bl_space_type = "SEQUENCE_EDITOR"
    bl_region_type = "UI"
    bl_category = "Dub"
    bl_label = "Dub"

    def draw(self, context):
        layout, wm = self.layout, context.window_manager
        layout.operator(SEQUENCER_OT_dub_movie_strip.bl_idname)
        if wm.dub_status:
            layout.label(text=wm.dub_status)
            layout.prop(wm, "dub_progress", text="Progress", slider=True)
        if JOBS:
            layout.operator(SEQUENCER_OT_dub_cancel.bl_idname)


def _menu_entry(self, context):
    self.layout.operator(SEQUENCER_OT_dub_movie_strip.bl_idname)


CLASSES = (DubBridgePreferences, SEQUENCER_OT_dub_movie_strip, SEQUENCER_OT_dub_cancel, SEQUENCER_PT_dub)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.WindowManager.dub_status = bpy.props.StringProperty(name="Dub status")
    bpy.types.WindowManager.dub_progress = bpy.props.FloatProperty(name="Dub progress", min=0.0, max=100.0,
                                                                   subtype="PERCENTAGE")
    bpy.types.SEQUENCER_MT_strip.append(_menu_entry)


def unregister():
    for job in list(JOBS):
        job.cancel()
    bpy.types.SEQUENCER_MT_strip.remove(_menu_entry)
    del bpy.types.WindowManager.dub_status, bpy.types.WindowManager.dub_progress
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
