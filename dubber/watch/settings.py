"""How the watcher runs (`WatchOptions`, from its command line), and the watch folder's per-folder
settings: ROOT/dub-watch.toml, and the dub options they give."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import DubError

if TYPE_CHECKING:
    from .dispatch import Processor, Validator

SETTINGS_FILE = "dub-watch.toml"
DUPLICATE_MODES = ("done", "skip")


@dataclass(frozen=True)
class WatchOptions:
    """How the watcher runs.

    Attributes:
        stable_s: seconds a file's size and mtime must stay unchanged before it is taken.
        poll_s: seconds between inbox scans (events only make a scan come sooner).
        workers: jobs at once (`--jobs`); None picks 1 for GPU backends and 2 for the score
            engine, or one per CPU of a Ray cluster.
        once: process what is stable now, wait for it, then return (for cron).
        duplicates: "done" moves a copy of already-dubbed content to done/ with a note;
            "skip" leaves it in the inbox untouched.
        empty_timeout_s: an empty file unchanged this long goes to failed/.
        arriving_s: a file that reads as a video cut short and changed less than this long ago
            may still be arriving (an uploader that opens it again for every chunk, pausing
            longer than stable_s): it waits in the inbox until it has been unchanged this long,
            and fails only then.
        processor: does the work in a thread of the watcher (default: the dubbing pipeline, run
            by the batch machinery: local worker processes, or Ray tasks).
        validator: checks the input first (default: the real probe before a processor; none
            before the pipeline, whose first stage is that probe).
        use_events: also listen to file-system events (watchdog) as scan hints.
        out_dir: where output folders go (default: ROOT/output); on Ray, a path every node reaches.
        ray: dub on a Ray cluster instead of local worker processes.
        ray_address: the cluster to join ("host:port"); None: RAY_ADDRESS, else the local one.
    """

    stable_s: float = 2.0
    poll_s: float = 0.5
    workers: int | None = None
    once: bool = False
    duplicates: str = "done"
    empty_timeout_s: float = 600.0
    arriving_s: float = 60.0
    processor: Processor | None = None
    validator: Validator | None = None
    use_events: bool = True
    out_dir: str | None = None
    ray: bool = False
    ray_address: str | None = None

    def __post_init__(self) -> None:
        if self.duplicates not in DUPLICATE_MODES:
            raise ValueError(f"duplicates must be one of {DUPLICATE_MODES}, not {self.duplicates!r}")
        if self.stable_s < 0 or self.poll_s <= 0 or self.arriving_s < 0 or (self.workers is not None
                                                                             and self.workers < 1):
            raise ValueError(f"bad timing or workers: stable_s={self.stable_s}, poll_s={self.poll_s}, "
                             f"arriving_s={self.arriving_s}, workers={self.workers}")
        if self.ray and self.processor is not None:
            raise ValueError("a processor runs inside the watcher, so it cannot run on a Ray cluster")


class WatchSettingsError(DubError):
    """dub-watch.toml is malformed or names an unknown value."""


@dataclass(frozen=True)
class WatchSettings:
    """Per-folder dub settings, read from ROOT/dub-watch.toml (every key optional)."""

    style: str = "tom-and-jerry"
    backend: str = "auto"
    lufs: float | str = -16.0
    keep_original: bool = False
    stems: bool = True
    timeline: bool = True


_SETTING_TYPES = {"style": (str,), "backend": (str,), "lufs": (int, float, str), "keep_original": (bool,),
                  "stems": (bool,), "timeline": (bool,)}
_SETTING_HINTS = {"style": "a style name in quotes", "backend": "a backend name in quotes",
                  "lufs": "a number such as -16, or \"ebu\" / \"atsc\"", "keep_original": "true or false",
                  "stems": "true or false", "timeline": "true or false"}


def load_settings(root: Path) -> WatchSettings:
    """The folder's settings, validated.

    Raises:
        WatchSettingsError: the file is not valid TOML, has unknown keys or values.
    """
    path = Path(root) / SETTINGS_FILE
    if not path.is_file():
        return WatchSettings()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise WatchSettingsError(f"{path} is not valid TOML ({err}); fix it or delete it.") from None
    unknown = sorted(set(data) - set(_SETTING_TYPES))
    if unknown:
        raise WatchSettingsError(f"{path} has unknown setting(s) {', '.join(unknown)}; "
                                 f"use only {', '.join(_SETTING_TYPES)}.")
    for key, value in data.items():
        if not isinstance(value, _SETTING_TYPES[key]) or (key == "lufs" and isinstance(value, bool)):
            raise WatchSettingsError(f"{path}: {key} = {value!r} has the wrong type; give {_SETTING_HINTS[key]}.")
    settings = WatchSettings(**data)
    _check_dub_values(settings, path)
    return settings


def _check_dub_values(settings: WatchSettings, path: Path) -> None:
    from ..api import DubOptions, check_options, resolve_backend

    options = DubOptions(style=settings.style, backend=settings.backend, lufs=settings.lufs,
                         keep_original=settings.keep_original)
    try:
        check_options(options)
        # A backend asked for by name must be able to run here (torch, its weights): else every
        # file dropped would fail on it. `auto` always finds one, so it is not looked into.
        if settings.backend == "audiostory":
            resolve_backend(options)
    except DubError as err:
        raise WatchSettingsError(f"{path.name}: {err}") from None


def dub_options(settings: WatchSettings, stems_dir: Path | None) -> Any:
    """The DubOptions of one job: the folder's settings, stems into `stems_dir` when asked."""
    from ..api import DubOptions

    return DubOptions(style=settings.style, backend=settings.backend, lufs=settings.lufs,
                      keep_original=settings.keep_original,
                      stems_dir=str(stems_dir) if settings.stems and stems_dir is not None else None,
                      timeline=settings.timeline)


def default_workers(settings: WatchSettings) -> int:
    """One job at a time on a GPU (one model in memory); two for the CPU score engine."""
    backend = settings.backend
    if backend == "auto":
        try:
            from ..api import DubOptions, resolve_backend
            backend = resolve_backend(DubOptions(backend="auto"))[0]
        except DubError:
            backend = "audiostory"
    return 2 if backend == "score" else 1
