"""`dub integrations install resolve|blender`: put the editor integrations where editors find them.

- resolve: copies the launcher into DaVinci Resolve's per-user Workspace > Scripts > Utility
  folder as "Dub Shot Audio.py", with `dub_resolve.json` beside it naming this environment's
  `dub` command and the folder of the bridge module it imports. A reinstall updates only those
  two keys and keeps the settings a user added (style, lufs, backend), saying which.
- blender: builds the extension zip (blender_manifest.toml + the add-on, with this
  environment's `dub` command recorded inside), to install with Edit > Preferences >
  Get Extensions > Install from Disk.

Both write to a temporary name and rename, so a half-written script or zip never appears.
"""
from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import sys
import tomllib
import zipfile
from pathlib import Path

from dubber.atomic import atomic_output, atomic_write_bytes
from dubber.errors import DubError

log = logging.getLogger(__name__)

TARGETS = ("resolve", "blender")
PACKAGE_DIR = Path(__file__).resolve().parent
RESOLVE_DIR = PACKAGE_DIR / "resolve"
BLENDER_DIR = PACKAGE_DIR / "blender"
RESOLVE_MENU_FILE = "Dub Shot Audio.py"
RESOLVE_CONFIG_FILE = "dub_resolve.json"
RESOLVE_INSTALLER_KEYS = ("dub", "bridge_dir")   # rewritten on every install; the other keys are the user's
BLENDER_FILES = ("blender_manifest.toml", "__init__.py")
BLENDER_COMMAND_FILE = "dub_command.json"


class IntegrationError(DubError):
    """An integration cannot be installed where asked."""


def resolve_scripts_dir(system: str | None = None, home: Path | None = None,
                        environ: dict[str, str] | None = None) -> Path:
    """Resolve's per-user Workspace > Scripts > Utility folder on this (or the named) system."""
    system = system or platform.system()
    home = home or Path.home()
    environ = dict(os.environ if environ is None else environ)
    if system == "Darwin":
        base = home / "Library" / "Application Support" / "Blackmagic Design" / "DaVinci Resolve" / "Fusion"
    elif system == "Windows":
        appdata = Path(environ.get("APPDATA", home / "AppData" / "Roaming"))
        base = appdata / "Blackmagic Design" / "DaVinci Resolve" / "Support" / "Fusion"
    else:
        base = home / ".local" / "share" / "DaVinciResolve" / "Fusion"
    return base / "Scripts" / "Utility"


def dub_command() -> list[str]:
    """How editors should start this environment's `dub`: its console script when present,
    else this interpreter running the CLI module."""
    bin_dir = Path(sys.executable).parent
    for name in ("dub.exe", "dub") if os.name == "nt" else ("dub",):
        if (bin_dir / name).is_file():
            return [str(bin_dir / name)]
    found = shutil.which("dub")
    return [found] if found else [sys.executable, "-m", "dubber.cli"]


def _make_folder(folder: Path, what: str) -> Path:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise IntegrationError(f"Cannot create the {what} folder {folder} ({err.strerror}); "
                               "pass another destination.") from None
    if not os.access(folder, os.W_OK):
        raise IntegrationError(f"The {what} folder {folder} is not writable; pass another destination.")
    return folder


def install_resolve(dest: Path | None = None) -> Path:
    """Copy the Resolve launcher into `dest` (default: Resolve's per-user Utility scripts folder).

    Returns:
        The installed script's path.
    """
    folder = _make_folder(Path(dest) if dest is not None else resolve_scripts_dir(), "Resolve scripts")
    script = folder / RESOLVE_MENU_FILE
    config_path = folder / RESOLVE_CONFIG_FILE
    kept = user_settings(config_path)  # read before anything is written, so a refusal changes nothing
    atomic_write_bytes(script, (RESOLVE_DIR / "dub_resolve.py").read_bytes())
    config = {"dub": dub_command(), "bridge_dir": str(RESOLVE_DIR), **kept}
    atomic_write_bytes(config_path, (json.dumps(config, indent=2) + "\n").encode("utf-8"))
    if kept:
        # Said on stderr rather than logged: the CLI shows library logs only for errors, and whoever
        # reinstalls should know which of their settings the script will go on using.
        settings = ", ".join(f"{key}={json.dumps(value)}" for key, value in kept.items())
        print(f"dub: kept your settings in {config_path}: {settings}", file=sys.stderr)
    log.info("installed %s; restart Resolve and use Workspace > Scripts > Utility > Dub Shot Audio", script)
    return script


def user_settings(config_path: Path) -> dict:
    """What a user put in an earlier `dub_resolve.json` (style, lufs, backend, ...): every key but
    the ones the installer writes, so a reinstall keeps them.

    Raises:
        IntegrationError: the file exists but is not a JSON object; replacing it would lose the
            user's settings without a word.
    """
    if not config_path.exists():
        return {}
    try:
        earlier = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise IntegrationError(f"{config_path} cannot be read as JSON ({err}); fix or delete it, "
                               "then install again.") from None
    if not isinstance(earlier, dict):
        raise IntegrationError(f"{config_path} does not hold a JSON object of settings; fix or delete it, "
                               "then install again.")
    return {key: value for key, value in earlier.items() if key not in RESOLVE_INSTALLER_KEYS}


def blender_manifest() -> dict:
    return tomllib.loads((BLENDER_DIR / "blender_manifest.toml").read_text(encoding="utf-8"))


def build_blender_zip(dest: Path | None = None) -> Path:
    """Build the Blender extension zip in `dest` (default: the current folder).

    Returns:
        The zip's path, `dub_bridge-<version>.zip`.
    """
    folder = _make_folder(Path(dest) if dest is not None else Path.cwd(), "output")
    manifest = blender_manifest()
    target = folder / f"{manifest['id']}-{manifest['version']}.zip"
    with atomic_output(target) as temp, zipfile.ZipFile(temp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in BLENDER_FILES:
            archive.write(BLENDER_DIR / name, name)
        archive.writestr(BLENDER_COMMAND_FILE, json.dumps({"dub": dub_command()}, indent=2) + "\n")
    log.info("built %s; install it with Edit > Preferences > Get Extensions > Install from Disk", target)
    return target


def install(target: str, dest: Path | None = None) -> Path:
    """Install one integration.

    Args:
        target: "resolve" or "blender".
        dest: destination folder (Resolve: the scripts folder; Blender: where the zip goes).

    Returns:
        The installed script (resolve) or the built extension zip (blender).

    Raises:
        IntegrationError: unknown target, the destination cannot be written, or an earlier
            dub_resolve.json there is not valid JSON (so the user's settings in it would be lost).
    """
    if target == "resolve":
        return install_resolve(dest)
    if target == "blender":
        return build_blender_zip(dest)
    raise IntegrationError(f"Unknown integration {target!r}; choose one of: {', '.join(TARGETS)}.")
