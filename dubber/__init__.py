"""dubber: give a video a timed soundtrack cut to its shots.

    import dubber
    result = dubber.dub("film.mp4", "film.dub.mp4", dubber.DubOptions(style="tom-and-jerry"))

Names are loaded on first use, so `import dubber` stays light (no torch, no video stack).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import DubResult, dub
    from .options import DubOptions
    from .backends import available_backends

__all__ = ["dub", "DubOptions", "DubResult", "available_backends", "__version__"]

_LAZY = {
    "dub": ("dubber.api", "dub"),
    "DubOptions": ("dubber.options", "DubOptions"),
    "DubResult": ("dubber.api", "DubResult"),
    "available_backends": ("dubber.backends", "available_backends"),
}


def _installed_version() -> str:
    """The one source of the version: the installed distribution's metadata (pyproject.toml)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dubber")
    except PackageNotFoundError:   # run from a source tree that was never installed
        return "0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        value = _installed_version()
        globals()[name] = value
        return value
    if name in _LAZY:
        import importlib

        module_name, attr = _LAZY[name]
        value = getattr(importlib.import_module(module_name), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'dubber' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
