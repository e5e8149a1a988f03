"""Interrupts that Python would lose, sent again.

A signal handler runs wherever the main thread is, and that can be a weakref callback or a
`__del__` (the import system's module locks have such a callback, so any import is exposed).
A KeyboardInterrupt raised there cannot propagate: Python prints "Exception ignored in ..." with
a traceback and carries on, as if the signal had never come. Here such an interrupt is kept off
stderr and the same signal is sent again to the main thread a moment later, where it lands in
ordinary code and unwinds the command as any interrupt does.
"""
from __future__ import annotations

import signal
import sys
import threading
import time
from typing import Callable

# Long enough for the callback that swallowed the interrupt to return first.
RESEND_AFTER_S = 0.01

_resend = threading.Event()
_resend_signal = signal.SIGINT
_relay: threading.Thread | None = None


def _relay_signals() -> None:
    # Stop signals are the main thread's to take: one taken here would not end its blocking call.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    while True:
        _resend.wait()
        _resend.clear()
        time.sleep(RESEND_AFTER_S)
        # To the main thread itself, so that a system call it is blocked in (a wait on ffmpeg, on
        # a future) ends early and its handler runs, as for the signal it replaces.
        signal.pthread_kill(threading.main_thread().ident, _resend_signal)


def keep_interrupts(signal_to_resend: Callable[[KeyboardInterrupt], int]):
    """Install the hook; returns the previous `sys.unraisablehook`, to put back when done.
    `signal_to_resend` gets the interrupt that was lost and returns the signal to send again,
    after re-arming its handler if that handler raises only once."""
    global _relay
    previous = sys.unraisablehook

    def hook(unraisable) -> None:
        global _resend_signal
        if unraisable.exc_type is None or not issubclass(unraisable.exc_type, KeyboardInterrupt):
            previous(unraisable)
            return
        _resend_signal = signal_to_resend(unraisable.exc_value)
        _resend.set()

    if _relay is None and hasattr(signal, "pthread_kill"):
        _relay = threading.Thread(target=_relay_signals, daemon=True, name="dub-interrupt-relay")
        _relay.start()
    if _relay is not None:
        sys.unraisablehook = hook
    return previous
