"""The Python the Blender tests run in: one with the `bpy` wheel, which pins numpy<2 and so cannot
share the project's venv.

Found as $DUB_BPY_PYTHON, else <repo>/.venv-bpy (what .ci/run builds), else built once into the
user's cache (~/.cache/dubber-test/bpy-venv, or under $XDG_CACHE_HOME) and reused by every later
run, unless $DUB_BPY_NO_BUILD is set (.ci/run sets it when the wheel could not be installed).
`python tests/bpy_env.py` builds it ahead of time and prints its interpreter.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BPY_REQUIREMENTS = ("bpy==5.0.1", "numpy==1.26.4")   # bpy 5.0.1 ships for CPython 3.11 only
BUILD_TIMEOUT_S = 1800


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "dubber-test"


def _works(python: Path) -> bool:
    if not python.is_file():
        return False
    check = subprocess.run([str(python), "-c", "import bpy"], capture_output=True, text=True, timeout=300)
    return check.returncode == 0


def _say(text: str) -> None:
    """A progress line the user sees even while pytest captures output."""
    stream = sys.__stderr__ or sys.stderr
    stream.write(f"\n[blender tests] {text}\n")
    stream.flush()


@contextlib.contextmanager
def _build_lock(folder: Path):
    """One build at a time (two test runs starting together wait for each other)."""
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".bpy-venv.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build(target: Path) -> tuple[Path | None, str]:
    """Build the venv at `target` (in a side folder, renamed when complete)."""
    if sys.version_info[:2] != (3, 11):
        return None, f"bpy 5.0.1 wheels exist for Python 3.11 only, and this is {sys.version.split()[0]}"
    building = target.with_name(target.name + f".building-{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    _say(f"building a Python with bpy for the Blender tests in {target} (once; a ~360 MB download) ...")
    started = time.monotonic()
    steps = [[sys.executable, "-m", "venv", str(building)],
             [str(building / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
              *BPY_REQUIREMENTS]]
    for step in steps:
        try:
            done = subprocess.run(step, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            shutil.rmtree(building, ignore_errors=True)
            return None, f"building it took longer than {BUILD_TIMEOUT_S} s"
        if done.returncode != 0:
            shutil.rmtree(building, ignore_errors=True)
            last = (done.stderr or done.stdout).strip().splitlines()
            return None, f"`{' '.join(step[-3:])}` failed: {last[-1] if last else 'no message'}"
    shutil.rmtree(target, ignore_errors=True)
    os.replace(building, target)
    _say(f"bpy venv ready after {time.monotonic() - started:.0f} s: {target}")
    return target / "bin" / "python", ""


def bpy_python() -> tuple[str | None, str]:
    """(interpreter with bpy, "") or (None, why none could be found or built)."""
    chosen = os.environ.get("DUB_BPY_PYTHON")
    if chosen:
        if _works(Path(chosen)):
            return chosen, ""
        return None, f"DUB_BPY_PYTHON={chosen} cannot import bpy; point it at a Python with bpy 4.4+ or unset it"
    ci = REPO / ".venv-bpy" / "bin" / "python"
    if _works(ci):
        return str(ci), ""
    venv = cache_dir() / "bpy-venv"
    if os.environ.get("DUB_BPY_NO_BUILD") and not _works(venv / "bin" / "python"):
        return None, "none was given and DUB_BPY_NO_BUILD forbids building one"
    with _build_lock(cache_dir()):
        if _works(venv / "bin" / "python"):
            return str(venv / "bin" / "python"), ""
        built, why = _build(venv)
    if built is None or not _works(built):
        return None, f"no Python with bpy could be built ({why or 'bpy does not import'})"
    return str(built), ""


if __name__ == "__main__":
    python, reason = bpy_python()
    if python is None:
        sys.exit(f"bpy_env: {reason}")
    print(python)
