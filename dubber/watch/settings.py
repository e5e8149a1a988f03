"""The watch folder's per-folder settings: ROOT/dub-watch.toml, and the dub options they give."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DubError

SETTINGS_FILE = "dub-watch.toml"


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
