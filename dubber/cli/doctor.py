"""`dub doctor` and `dub models`: what this machine can run, and the AudioStory and captioner weights.

Nothing here downloads unless the user runs `dub models download`.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from ..errors import EXIT_USER_ERROR


def _line(label: str, value: str) -> None:
    print(f"{label:<20} {value}")


def _ffmpeg_status() -> tuple[bool, str]:
    from ..media.ffmpeg import FFmpegError, ffmpeg_exe, ffmpeg_version

    try:
        exe = ffmpeg_exe()
        return True, f"{ffmpeg_version().split(' Copyright')[0]} ({exe})"
    except (FFmpegError, OSError) as err:
        return False, f"not usable: {err}"


def _ffprobe_status() -> str:
    """`dub` itself never runs ffprobe; the studio's video players (Gradio) use it, from PATH, to
    convert a video a browser cannot play."""
    import shutil

    found = shutil.which("ffprobe")
    return (f"found ({found}); the studio's video players use it" if found else
            "not on PATH: `dub` does not need it; the studio's video players use it to convert a video a "
            "browser cannot play (.mkv, ProRes) for the preview (it comes with ffmpeg)")


def _torch_status() -> tuple[str, str]:
    if importlib.util.find_spec("torch") is None:
        return "not installed (pip install 'dubber[ml]' for the audiostory backend)", "no"
    import torch

    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        return torch.__version__, f"yes ({names})"
    return torch.__version__, "no"


def _captioner_status(name: str) -> str:
    """Whether a learned captioner can run: its packages, then its default weights in the cache."""
    from vision.captioners import DEFAULT_MODELS, REQUIREMENTS
    from vision.captioners._loading import download_command, resolve_model_dir
    from vision.errors import ModelIncomplete, ModelUnavailable

    missing = [p for p in REQUIREMENTS[name] if importlib.util.find_spec(p) is None]
    if missing:
        return f"needs {' and '.join(missing)} (pip install 'dubber[ml]')"
    repo = DEFAULT_MODELS[name]
    try:
        return f"ready ({resolve_model_dir(repo, what='model', example=repo)})"
    except ModelIncomplete as err:   # there, but it would not load
        return f"not usable: {err}"
    except ModelUnavailable:
        return f"no weights for {repo}; run {download_command(repo)}"


def _soundfont_status() -> str:
    """The score engine's default bank: its name, licence and where it is (or why it is missing)."""
    from ..backends.score.render import SoundFontError, load_soundfont

    try:
        bank = load_soundfont()
    except SoundFontError as err:
        return str(err)
    return f"{bank.describe()}, in {bank.path}; another bank: --soundfont PATH"


def _weights_line(weights) -> str:
    """Where the weights are, or why not; on the weights' own line the subject is not repeated."""
    from audiostory_core.errors import NOT_CACHED

    from ..backends import DAMAGED

    if weights.available:
        return f"found in {weights.location}"
    why = ("not found in the Hugging Face cache" if weights.reason == NOT_CACHED else
           f"not usable: {weights.message}" if weights.reason == DAMAGED else f"not found: {weights.message}")
    return f"{why} ({weights.fix})" if weights.fix else why


def doctor(model: str | None = None) -> int:
    """Print one line per check; exit 0 when dubbing can run here (ffmpeg found), else 2."""
    from ..backends import choose_auto, weights_availability
    from .. import __version__

    _line("dub", __version__)
    _line("python", sys.version.split()[0])
    ok, ffmpeg = _ffmpeg_status()
    _line("ffmpeg", ffmpeg)
    _line("ffprobe", _ffprobe_status())
    torch_version, cuda = _torch_status()
    _line("torch", torch_version)
    _line("CUDA", cuda)
    _line("AudioStory weights", _weights_line(weights_availability(model)) if importlib.util.find_spec("torch")
          else "not found: needs torch")
    for captioner in ("clip", "vlm"):
        _line(f"{captioner} captioner", _captioner_status(captioner))
    _line("SoundFont", _soundfont_status())
    name, reason = choose_auto(model)
    _line("auto backend", f"{name}: {reason.split(': ', 1)[-1]}")
    return 0 if ok else EXIT_USER_ERROR


def _known_models() -> list[tuple[str, str]]:
    """(what, Hub repo id) of every model `dub models download` fetches by default."""
    from audiostory_core import hub
    from vision.captioners import DEFAULT_MODELS

    return ([("audiostory", hub.REPO_ID), ("audiostory", hub.QWEN_REPO_ID), ("audiostory", hub.T5_REPO_ID)]
            + [(name, repo) for name, repo in DEFAULT_MODELS.items()])


def _cached_repos(cache) -> dict:
    if not cache.is_dir():
        return {}
    from huggingface_hub import scan_cache_dir

    return {r.repo_id: r for r in scan_cache_dir(cache).repos}


def _held_by_checkpoint() -> dict[str, Path]:
    """The helper repos (Qwen tokenizer, T5) whose files the cached AudioStory checkpoint holds
    itself, by repo id, with the folder: nothing more is to be fetched for them."""
    from audiostory_core import hub
    from audiostory_core.errors import AudioStoryError

    try:
        files = hub.locate(None, local_only=True)
    except AudioStoryError:
        return {}
    snapshot = files.model_dir.parent
    held = {hub.QWEN_REPO_ID: files.qwen_dir, hub.T5_REPO_ID: files.t5_dir}
    return {repo: folder for repo, folder in held.items() if folder is not None and snapshot in folder.parents}


def models_list() -> int:
    """List the AudioStory and captioner models, cached or not, with their size and folder."""
    from audiostory_core import hub

    cache = hub.hub_cache_dir()
    cached = _cached_repos(cache)
    held = _held_by_checkpoint()
    print(f"Hugging Face cache: {cache}")
    for what, repo_id in _known_models():
        found = cached.get(repo_id)
        if found is None and repo_id in held:
            print(f"{what:<11} {repo_id:<32} in the AudioStory checkpoint ({held[repo_id]})")
        elif found is None and repo_id == hub.T5_REPO_ID:
            print(f"{what:<11} {repo_id:<32} not cached; `dub models download audiostory` fetches it "
                  "when the AudioStory weights lack it")
        elif found is None:
            print(f"{what:<11} {repo_id:<32} not cached; run `dub models download {what}`")
        else:
            print(f"{what:<11} {repo_id:<32} {found.size_on_disk / 2**30:7.2f} GiB  {found.repo_path}")
    return 0


def models_download(what: str = "audiostory", repo: str | None = None) -> int:
    """Fetch AudioStory (with its tokenizer) or a captioner's model into the Hugging Face cache.

    Args:
        what: "audiostory", "clip" or "vlm".
        repo: a Hub repo id instead of the default model for `what`.
    """
    if repo is not None:
        _check_repo_id(repo, "--model" if what == "audiostory" else "--captioner-model")
    if what == "audiostory":
        from audiostory_core import hub

        files = hub.download(repo or hub.REPO_ID)
        print(f"AudioStory weights ready in {files.model_dir}")
        return 0
    from vision.captioners import download

    folder = download(what, repo)
    print(f"{what} captioner model ready in {folder}")
    return 0


def _check_repo_id(repo: str, dub_option: str) -> None:
    """`dub models download --model` fetches a Hub repo: a folder on this machine (given where
    `dub`'s `dub_option` takes one) has nothing to fetch, and a path is no repo id.

    Raises:
        InputError: `repo` is a folder here, or spelled as a path.
    """
    from ..errors import InputError
    from ..options import spelled_as_path

    folder = Path(repo).expanduser()
    if folder.is_dir():
        raise InputError(f"{repo} is a folder on this machine, so there is nothing to download; "
                         f"dub with {dub_option} {repo} as it is.")
    if spelled_as_path(repo):
        raise InputError(f"--model of `dub models download` takes a Hugging Face Hub repo id (owner/name); {repo} "
                         "is a path, and no folder is there.")
