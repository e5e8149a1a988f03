"""What shapes a run (`DubOptions`) and stage 0 of it: every input, option and output is checked
before any compute, so a user error is one sentence up front, never a failure half-way through a
long render. Suffixes and output naming are defined here once."""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .atomic import TEMP_NAME_EXTRA_BYTES
from .errors import BackendUnavailable, InputError, OutputError

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv")   # what a dub is written as
# What a watch folder takes as a video by its name (anything ffmpeg reads can be dubbed by path).
INPUT_VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv", ".avi", ".webm", ".mxf", ".mts", ".m2ts", ".ts", ".mpg",
                        ".mpeg", ".wmv", ".flv", ".3gp")
MP4_SUFFIXES = (".mp4", ".m4v")
# Picture codecs (ffmpeg's canonical names) an MP4 file cannot carry; the picture is copied, never
# re-encoded, so these need a .mov or .mkv output. A deny list: decoder names vary (AV1 reads as "libdav1d").
MOV_ONLY_VIDEO_CODECS = frozenset("prores dnxhd cfhd qtrle rawvideo v210 v410 r210 dvvideo huffyuv ffvhuff utvideo "
                                  "magicyuv hap cinepak svq1 rpza smc".split())
# What each container dub writes refuses when a picture is copied into it, as ffmpeg's muxers answer
# (ffmpeg 9.0): Windows Media, Flash and H.263 pictures, GIF and Theora fit no MP4; VP8 fits only
# Matroska; VP9 and AV1 fit no QuickTime file; uncompressed video no Matroska file.
CANNOT_CARRY: dict[str, frozenset[str]] = {
    ".mp4": MOV_ONLY_VIDEO_CODECS | frozenset("wmv1 wmv2 flv1 msmpeg4v1 msmpeg4v2 msmpeg4v3 h263 h263p gif theora "
                                              "vp8".split()),
    ".mov": frozenset({"vp8", "vp9", "av1"}),
    ".mkv": frozenset({"rawvideo"}),
}
CANNOT_CARRY[".m4v"] = CANNOT_CARRY[".mp4"]
NAME_MAX_BYTES = 255 - TEMP_NAME_EXTRA_BYTES   # a file name's limit, less what its temporary name adds
MIN_DURATION_S = 0.5            # s; shorter clips cannot hold a cue worth rendering
MIN_FRAMES = 2
MAX_SIDE_PIXELS = 8192          # widest/tallest picture accepted (8K)
MAX_AREA_PIXELS = 8192 * 4320   # 8K full-aperture; a larger picture is refused before decoding
LUFS_RANGE = (-40.0, -5.0)      # LUFS; outside it a mix is either inaudible or crushed
ORIGINAL_GAIN_RANGE = (-60.0, 12.0)   # dB
STUDIO_HOST = "127.0.0.1"       # `dub studio` serves this machine only unless told otherwise
STUDIO_PORT = 7860
MAX_SEED = 2**63 - 1            # manifests and timelines (OTIO) carry seeds as signed 64-bit integers


@dataclass(frozen=True)
class DubOptions:
    """Everything that shapes a run besides the input and output paths.

    Attributes:
        backend: "auto", "audiostory" or "score".
        style: a style name from `dubber.styles` ("tom-and-jerry", "nature", ...).
        seed: base seed of every cue (same seed, same soundtrack).
        lufs: integrated loudness target in LUFS, or "ebu" (-23) / "atsc" (-24).
        keep_original: mix the original audio under the new one and keep it as a second track.
        original_gain_db: level of the original audio bed, in dB.
        stems_dir: folder for the mix WAV and one WAV per stem (None: not written, unless `timeline`).
        timeline: also write .otio/.fcpxml/.srt next to the output.
        model: AudioStory checkpoint folder or Hub repo id (None: the official one).
        device: "cpu", "cuda", "cuda:N" or None (CUDA when present).
        precision: AudioStory's "float16", "bfloat16" or "float32" (None: float16 on CUDA, as the
            released model runs, float32 on the CPU, which has no half precision to speak of).
        timing: "shots" (a clip per cue) or "free" (the model lays out its own clips).
        captioner: "auto" (vlm when its weights are on this machine, else motion), "motion", "clip" or "vlm".
        captioner_model: the clip or vlm captioner's weights, a local folder or a Hub repo id (None: its
            default model).
        force: overwrite existing outputs and recompute every cached stage.
        overwrite: overwrite existing outputs, reusing what the stage cache holds.
        cache_dir: cache root (None: $DUB_CACHE_DIR or ~/.cache/dubber).
        use_cache: read and write the stage cache at all.
        full_hash: key the cache on a hash of every byte of the input instead of size/mtime/edges.
        plan_path: render this plan file instead of planning from the analysis.
        render_group: cues per backend call, cached as each ends (None: the backend's default).
        muted_cues: indices of cues rendered (and cached) as usual but left silent in the mix.
        soundfont: SF2 bank for the score engine (None: its default General MIDI bank).
        hits_path: a hit list (see `dubber.spotting`): frames the soundtrack must hit, laid over
            the events the analysis found.
        hits_only: the hit list replaces the detected events instead of adding to them.
    """

    backend: str = "auto"
    style: str = "tom-and-jerry"
    seed: int = 0
    lufs: float | str = -16.0
    keep_original: bool = False
    original_gain_db: float = -12.0
    stems_dir: str | None = None
    timeline: bool = False
    model: str | None = None
    device: str | None = None
    precision: str | None = None
    timing: str = "shots"
    captioner: str = "auto"
    captioner_model: str | None = None
    force: bool = False
    overwrite: bool = False
    cache_dir: str | None = None
    use_cache: bool = True
    full_hash: bool = False
    plan_path: str | None = None
    render_group: int | None = None
    muted_cues: tuple[int, ...] = ()
    soundfont: str | None = None
    hits_path: str | None = None
    hits_only: bool = False


def default_output_path(video_path: str | os.PathLike, codec: str | None = None) -> Path:
    """`<input stem>.dub.mp4` next to the input; a .mov, .m4v or .mkv input keeps its container,
    and an .mxf master (DNxHD/DNxHR, XDCAM, which no .mp4 carries) gets a .mov. When the picture's
    `codec` is known and that container cannot carry it (UT Video in an .avi, VP8 in a .webm), the
    first of .mov and .mkv that can."""
    p = Path(video_path)
    source = p.suffix.lower()
    suffix = source if source in VIDEO_SUFFIXES else ".mov" if source == ".mxf" else ".mp4"
    if codec:
        suffix = next((s for s in (suffix, ".mov", ".mkv") if carries(s, codec)), suffix)
    return p.with_name(f"{p.stem}.dub{suffix}")


def carries(suffix: str, codec: str) -> bool:
    """Whether a dub written as `suffix` can carry a copy of a `codec` picture."""
    return codec.lower() not in CANNOT_CARRY.get(suffix.lower(), frozenset())


def check_input_file(video_path: str | os.PathLike) -> Path:
    """The input as an absolute path, or an InputError naming what is wrong with it.

    A symbolic link stays a link (not its target), so outputs named after the input land next to
    the link the user gave."""
    path = usable_path(video_path, "input")
    if not path.exists():
        raise InputError(f"The input file {path} does not exist; check the path.")
    if path.is_dir():
        raise InputError(f"{path} is a folder, not a video file; give the path of a video file.")
    if not path.is_file():
        raise InputError(f"{path} is not a regular file; give the path of a video file.")
    if not os.access(path, os.R_OK):
        raise InputError(f"The input file {path} cannot be read; check its permissions.")
    if path.stat().st_size == 0:
        raise InputError(f"The input file {path} is empty (0 bytes); give a complete video file.")
    return Path(os.path.abspath(path))


def usable_path(text: str | os.PathLike, what: str) -> Path:
    """`text` as a path the system can look up, or one sentence on why not: a NUL character, or a
    name longer than the file system allows (255 bytes a name, 4096 a path on Linux), which the
    checks that follow would meet as a bare OSError."""
    path = Path(text).expanduser()
    shown = str(path) if len(str(path)) <= 80 else f"{str(path)[:40]}...{str(path)[-30:]}"
    if "\x00" in str(path):
        raise InputError(f"The {what} path {shown!r} holds a NUL character; give the file's real name.")
    try:
        path.exists()
    except OSError as err:
        raise InputError(f"The {what} path {shown} cannot be used: {err.strerror or err}; give a shorter "
                         "name or path.") from None
    return path


def check_output_file(out_path: Path, input_path: Path, force: bool) -> Path:
    """Refuse outputs that would clobber the input or an existing file, or cannot be written."""
    out = usable_path(out_path, "output").absolute()
    if out.is_dir():
        raise OutputError(f"The output {out} is a folder; give a file name with -o.")
    if out.suffix.lower() not in VIDEO_SUFFIXES:
        raise OutputError(f"The output {out.name} must end in one of {', '.join(VIDEO_SUFFIXES)}; "
                          "choose a video file name with -o.")
    if out.resolve() == input_path.resolve() or (out.exists() and os.path.samefile(out, input_path)):
        raise OutputError("The output path is the input file itself; choose another name with -o "
                          "(the input is never overwritten).")
    if out.exists() and not force:
        raise OutputError(f"The output {out} already exists; pass --overwrite to replace it or choose "
                          "another name with -o.")
    check_writable_folder(out.parent, what="output")
    return out


def check_container(out_path: Path, media: Any) -> None:
    """Refuse, before any compute, an output container that cannot carry the picture's codec."""
    codec = (media.video_codec or "").lower()
    suffix = out_path.suffix.lower()
    if carries(suffix, codec):
        return
    fits = " or ".join(f"{out_path.stem}{s}" for s in (".mov", ".mkv", ".mp4") if s != suffix and carries(s, codec))
    article = "A" if suffix == ".mov" else "An"
    raise OutputError(f"{article} {suffix} file cannot carry {codec} video without re-encoding it; "
                      f"name the output {fits} with -o.")


def check_writable_folder(folder: Path, what: str, new_parents: bool = False) -> None:
    """The folder (or the nearest existing folder above it) must accept new files. A missing
    folder is made for the run, but only one level of it unless `new_parents`: a path whose
    parent does not exist either is more likely a typo than a tree to create."""
    folder = Path(folder).expanduser().absolute()
    if not new_parents and not folder.exists() and not folder.parent.exists():
        raise OutputError(f"The {what} folder {folder} does not exist, nor does {folder.parent}; create it first "
                          "or check the path.")
    probe_dir = folder
    while not probe_dir.exists():
        probe_dir = probe_dir.parent
    if not probe_dir.is_dir():
        raise OutputError(f"The {what} folder {folder} cannot be created because {probe_dir} is a file; "
                          "choose another location.")
    try:
        fd, tmp = tempfile.mkstemp(dir=probe_dir, prefix=".dub-write-check-")
    except OSError:
        raise OutputError(f"The {what} folder {probe_dir} is not writable; choose another location "
                          "or fix its permissions.") from None
    os.close(fd)
    os.unlink(tmp)


# Integrated loudness targets (LUFS): streaming/web, EBU R128 broadcast, ATSC A/85 (US TV).
# Defined here, beside the option that names them, so that checking options never loads the
# mixer and its signal libraries (about a second of imports for a command that stops at a mistake).
LOUDNESS_PRESETS: dict[str, float] = {"web": -16.0, "ebu-r128": -23.0, "atsc-a85": -24.0}
# Their true-peak ceilings (dBTP): A/85 asks for -2, EBU R128 and streaming services for -1.
TRUE_PEAK_CEILINGS: dict[str, float] = {"web": -1.0, "ebu-r128": -1.0, "atsc-a85": -2.0}


def resolve_lufs(value: float | str) -> float:
    """A loudness target in LUFS from a number or a preset name ("web", "ebu", "atsc", or the
    full preset names of `LOUDNESS_PRESETS`)."""
    if isinstance(value, str):
        key = value.strip().lower()
        for name, lufs in LOUDNESS_PRESETS.items():
            if key in (name, name.split("-")[0]):
                return float(lufs)
        try:
            value = float(key)
        except ValueError:
            raise InputError(f"Unknown loudness target {value!r}; give a number in LUFS such as -16 "
                             "or one of: web, ebu, atsc.") from None
    lo, hi = LUFS_RANGE
    if not lo <= float(value) <= hi:
        raise InputError(f"The loudness target {value:g} LUFS is outside {lo:g}..{hi:g}; "
                         "pick a value such as -16 (web) or -23 (broadcast).")
    return float(value)


def resolve_true_peak(value: float | str) -> float:
    """The true-peak ceiling (dBTP) that goes with a loudness target: its preset's (ATSC A/85's
    -2 dBTP), else -1 dBTP."""
    resolve_lufs(value)   # the same checks
    key = value.strip().lower() if isinstance(value, str) else None
    named = [name for name in LOUDNESS_PRESETS if key in (name, name.split("-")[0])]
    return TRUE_PEAK_CEILINGS[named[0]] if named else -1.0


def _check_cache_folder(folder: Path) -> None:
    """A --cache-dir given by hand that is a file, or lies under one, is said at once: the run
    would otherwise go on without a cache and the user would never know why reruns are slow."""
    for place in (folder, *folder.parents):
        if place.exists():
            if not place.is_dir():
                raise InputError(f"The cache folder {folder} {'is' if place == folder else 'lies under'} a file"
                                 f"{'' if place == folder else f' ({place})'}; give a folder with --cache-dir.")
            return


def check_options(options: DubOptions) -> None:
    """Reject unknown names and out-of-range values before any work starts."""
    from vision.captioners import CAPTIONER_CHOICES   # the registry; no torch until a captioner loads

    from .backends import TIMINGS, available_backends
    from .styles import available_styles

    if options.backend not in ("auto", *available_backends()):
        raise InputError(f"Unknown backend {options.backend!r}; choose one of: auto, "
                         f"{', '.join(available_backends())}.")
    if options.style not in available_styles():
        raise InputError(f"Unknown style {options.style!r}; choose one of: {', '.join(available_styles())}.")
    if options.soundfont is not None:
        from .backends.score.render import check_soundfont_file

        check_soundfont_file(options.soundfont)   # a bad bank would otherwise fail after the analysis
    if options.cache_dir is not None and options.use_cache:
        _check_cache_folder(Path(options.cache_dir).expanduser())
    if options.timing not in TIMINGS:
        raise InputError(f"Unknown timing {options.timing!r}; choose one of: {', '.join(TIMINGS)}.")
    if options.timing == "free" and options.backend == "score":
        raise InputError("Free timing needs the audiostory backend; drop --timing free or use --backend audiostory.")
    if options.captioner not in CAPTIONER_CHOICES:
        raise InputError(f"Unknown captioner {options.captioner!r}; choose one of: {', '.join(CAPTIONER_CHOICES)}.")
    for flag, named in (("--model", options.model), ("--captioner-model", options.captioner_model)):
        # A path that names nothing is a typo, whatever backend or captioner `auto` would choose:
        # left alone, it would be passed over for the default without a word.
        if named is not None and spelled_as_path(named) and not Path(named).expanduser().exists():
            raise InputError(f"{flag} {named}: there is no folder there; give the model's folder, or a Hugging "
                             "Face Hub repo id (owner/name).")
    if options.captioner_model is not None and options.captioner == "motion":
        raise InputError("--captioner-model names the weights of the clip or vlm captioner; the motion captioner "
                         "has none, so drop it or choose --captioner clip or vlm.")
    if isinstance(options.seed, bool) or not isinstance(options.seed, int) or not 0 <= options.seed <= MAX_SEED:
        raise InputError(f"The seed {options.seed!r} is not a whole number from 0 to {MAX_SEED}; "
                         "pass a seed such as --seed 7.")
    lo, hi = ORIGINAL_GAIN_RANGE
    if not lo <= options.original_gain_db <= hi:
        raise InputError(f"The original-audio gain {options.original_gain_db:g} dB is outside {lo:g}..{hi:g}; "
                         "pick a value such as -12.")
    if options.render_group is not None and options.render_group < 1:
        raise InputError(f"The render group must be at least 1 cue (got {options.render_group}); "
                         "pass --render-group 1 or more.")
    if options.hits_only and options.hits_path is None:
        raise InputError("--hits-only needs a hit list; pass it with --hits FILE.")
    if options.hits_path is not None:
        from .spotting import read_hit_list

        read_hit_list(options.hits_path)   # its form now; its times once the video is probed
    resolve_lufs(options.lufs)
    check_device(options.device)
    check_precision(options.precision, options.device, options.backend)


def spelled_as_path(text: str) -> bool:
    """Whether a model named on the command line is written as a path, not as a Hub repo id
    ("owner/name"): absolute, relative to a folder (./, ../, ~), or more than two parts deep."""
    return text.startswith(("/", "./", "../", "~")) or text in (".", "..") or "\\" in text or text.count("/") > 1


PRECISIONS = ("float16", "bfloat16", "float32")


def check_precision(precision: str | None, device: str | None, backend: str = "auto") -> None:
    """A known precision, and half precision only where a GPU runs it."""
    if precision is None:
        return
    if precision not in PRECISIONS:
        raise InputError(f"Unknown precision {precision!r}; choose one of: {', '.join(PRECISIONS)}.")
    if precision == "float32":
        return
    if str(device).lower() == "cpu":
        raise InputError(f"--precision {precision} needs a GPU; on the CPU AudioStory runs in float32, so drop "
                         "--precision or --device cpu.")
    if device is None and backend == "audiostory":
        from .backends import cuda_available

        if not cuda_available():
            raise InputError(f"--precision {precision} needs a GPU and this machine has none; drop --precision "
                             "(AudioStory runs in float32 on the CPU).")


def check_device(device: str | None) -> None:
    """A CUDA device asked for on a machine without one is a user error, whatever the backend."""
    name = str(device).lower()
    if device is None or name == "cpu":
        return
    if not (name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit())):
        raise InputError(f"Unknown device {device!r}; use cpu, cuda or cuda:N.")
    from .backends import cuda_available

    if not cuda_available():
        raise BackendUnavailable(f"Device {device!r} was requested but this machine has no CUDA GPU; "
                                 "use --device cpu or run on a machine with an NVIDIA GPU.")


def check_media(media: Any) -> None:
    """Refuse videos too short to dub or too large to decode safely."""
    w, h = media.width, media.height
    if max(w, h) > MAX_SIDE_PIXELS:
        side = "width" if w >= h else "height"
        raise InputError(f"The video's {side} of {max(w, h)} pixels ({w}x{h}) is over the {MAX_SIDE_PIXELS}-pixel "
                         "limit per side; scale it down first (e.g. ffmpeg -i in.mp4 -vf scale=-2:2160 small.mp4).")
    if w * h > MAX_AREA_PIXELS:
        raise InputError(f"The video is {w}x{h} pixels, {w * h / 1e6:.1f} million, over the limit of "
                         f"{MAX_AREA_PIXELS / 1e6:.1f} million ({MAX_SIDE_PIXELS}x4320); scale it down first "
                         "(e.g. ffmpeg -i in.mp4 -vf scale=-2:2160 small.mp4).")
    if media.frame_count < MIN_FRAMES or media.duration_s < MIN_DURATION_S:
        raise InputError(f"The video is only {media.frame_count} frame(s) and {media.duration_s:.2f} s long; "
                         f"give a clip of at least {MIN_FRAMES} frames and {MIN_DURATION_S:g} s.")
