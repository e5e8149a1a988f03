"""Ctrl-C while `dub` is still loading its command (before its signal handlers are in place)
ends it with one line and status 130, never a traceback; a reader of its output that goes away
ends it quietly."""
from __future__ import annotations

import subprocess

import pytest

from dub_cli import dub_command, dub_env

# Loaded by Python at start-up from PYTHONPATH: the moment the command module is imported, the
# interrupt arrives, as a Ctrl-C pressed right after Enter does on a slow disk.
_CTRL_C_DURING_IMPORT = '''
import sys

class CtrlC:
    def find_spec(self, name, path=None, target=None):
        if name == "dubber.cli.main":
            raise KeyboardInterrupt
        return None

sys.meta_path.insert(0, CtrlC())
'''


@pytest.mark.parametrize("args", [["--help"], ["batch", "nothing-here"], ["doctor"]])
def test_ctrl_c_while_the_command_loads_is_one_line(tmp_path, args):
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(_CTRL_C_DURING_IMPORT)
    done = subprocess.run([*dub_command(), *args], env=dub_env(tmp_path, PYTHONPATH=str(hook)),
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 130, done.stderr
    assert done.stderr == "dub: interrupted while starting; nothing was read or written.\n"
    assert done.stdout == "" and list(tmp_path.iterdir()) == [hook]


@pytest.mark.parametrize("args", [["models", "list"], ["{video}", "-o", "{out}", "--json-progress"]],
                         ids=["models-list", "dub-json-progress"])
def test_a_reader_that_goes_away_ends_the_command_quietly(tmp_path, demo_sample, args):
    """`dub ... | head -1`: once the pipe's reader is gone, the command stops as command-line tools
    do, with the status a shell gives SIGPIPE, no traceback, and no half-written output left."""
    out = tmp_path / "out" / "demo.mp4"
    out.parent.mkdir()
    args = [a.format(video=demo_sample[0], out=out) for a in args]
    proc = subprocess.Popen([*dub_command(), *args], env=dub_env(tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, cwd=tmp_path)
    proc.stdout.close()   # before its first line: the reader has gone
    stderr = proc.stderr.read()
    assert proc.wait(timeout=300) == 141, stderr
    assert "Traceback" not in stderr and "Error" not in stderr, stderr
    assert list(out.parent.iterdir()) == []
