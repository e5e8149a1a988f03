"""`dub doctor` and `dub models`: what this machine can run, and the AudioStory weights.

Nothing here downloads unless the user runs `dub models download`.
"""
from __future__ import annotations

import importlib.util
import sys

from .errors import EXIT_USER_ERROR


def _line(label: str, value: str) -> None:
    print(f"{label:<20} {value}")


def _ffmpeg_status() -> tuple[bool, str]:
    from .ffmpeg import FFmpegError, ffmpeg_exe, ffmpeg_version

    try:
        exe = ffmpeg_exe()
        return True, f"{ffmpeg_version().split(' Copyright')[0]} ({exe})"
    except (FFmpegError, OSError) as err:
        return False, f"not usable: {err}"


def _torch_status() -> tuple[str, str]:
    if importlib.util.find_spec("torch") is None:
        return "not installed (pip install 'dubber[ml]' for the audiostory backend)", "no"
    import torch

    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        return torch.__version__, f"yes ({names})"
    return torch.__version__, "no"


def doctor(model: str | None = None) -> int:
    """Print one line per check; exit 0 when dubbing can run here (ffmpeg found), else 2."""
    from .backends import choose_auto, weights_status
    from ._cli import _version

    _line("dub", _version())
    _line("python", sys.version.split()[0])
    ok, ffmpeg = _ffmpeg_status()
    _line("ffmpeg", ffmpeg)
    torch_version, cuda = _torch_status()
    _line("torch", torch_version)
    _line("CUDA", cuda)
    found, where = weights_status(model) if importlib.util.find_spec("torch") else (False, "needs torch")
    _line("AudioStory weights", f"found in {where}" if found else f"not found: {where}")
    name, reason = choose_auto(model)
    _line("auto backend", f"{name} ({reason.split(': ', 1)[-1]})")
    return 0 if ok else EXIT_USER_ERROR


def models_list() -> int:
    """List the AudioStory-related snapshots in the Hugging Face cache."""
    from audiostory_core import hub

    cache = hub.hub_cache_dir()
    wanted = {hub.REPO_ID, hub.QWEN_REPO_ID, hub.T5_REPO_ID}
    repos = []
    if cache.is_dir():
        from huggingface_hub import scan_cache_dir

        repos = [r for r in scan_cache_dir(cache).repos if r.repo_id in wanted]
    print(f"Hugging Face cache: {cache}")
    if not repos:
        print(f"No AudioStory files cached; run `dub models download` to fetch {hub.REPO_ID}.")
        return 0
    for repo in sorted(repos, key=lambda r: r.repo_id):
        print(f"{repo.repo_id:<32} {repo.size_on_disk / 2**30:7.2f} GiB  {repo.repo_path}")
    return 0


def models_download(repo: str | None = None) -> int:
    """Fetch the AudioStory checkpoint (and its tokenizer) into the Hugging Face cache."""
    from audiostory_core import hub

    files = hub.download(repo or hub.REPO_ID)
    print(f"AudioStory weights ready in {files.model_dir}")
    return 0
