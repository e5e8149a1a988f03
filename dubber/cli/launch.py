"""The `dub` console script's first code. It loads the command and runs it; a Ctrl-C that lands
while the command is still loading (before `main` has its signal handlers in place) ends it with
one line and status 130, not with a traceback of the import it cut short."""
from __future__ import annotations

import sys

STARTING_UP = "dub: interrupted while starting; nothing was read or written."


def run() -> int:
    try:
        from .main import main

        return main()
    except KeyboardInterrupt:   # `main` ends the interrupts of a running command itself
        print(STARTING_UP, file=sys.stderr)
        return 130
