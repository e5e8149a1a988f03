"""The `dub` console script's first code. It loads the command and runs it; a Ctrl-C that lands
while the command is still loading (before `main` has its signal handlers in place) ends it with
one line and status 130, not with a traceback of the import it cut short. A reader of its
standard output that goes away early (`dub models list | head -1`) ends it quietly, as any
command-line tool stops when its pipe closes: status 141, what a shell reports for SIGPIPE."""
from __future__ import annotations

import os
import select
import sys

STARTING_UP = "dub: interrupted while starting; nothing was read or written."
PIPE_CLOSED_STATUS = 128 + 13


def run() -> int:
    try:
        from .main import main

        status = main()
        sys.stdout.flush()   # here, not at exit, where a closed pipe could only be reported
        return status
    except KeyboardInterrupt:   # `main` ends the interrupts of a running command itself
        print(STARTING_UP, file=sys.stderr)
        return 130
    except BrokenPipeError:
        if not _stdout_closed():
            raise   # another pipe (to ffmpeg, say): a failure to report
        # The command unwound as for any error (its temporaries removed); what is still
        # buffered for the gone reader is dropped rather than fail again at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return PIPE_CLOSED_STATUS


def _stdout_closed() -> bool:
    """Whether standard output is a pipe nobody reads any more."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):   # no poll (Windows) or no real stdout
        return False
