"""Ctrl-C and SIGTERM during training: finish the iteration, save, stop; twice: stop now."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["StopSignals"]


class StopSignals:
    """While :meth:`installed`, the first SIGINT or SIGTERM sets :attr:`received` (the loop
    stops after the current iteration, with a checkpoint); a second one raises
    KeyboardInterrupt at once. While :attr:`interrupt_now` is set (work that can be thrown
    away, such as an evaluation), the first signal raises at once.

    Outside the main thread Python delivers no signals to handlers: nothing is installed.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self.interrupt_now = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        first = self.received is None
        self.received = self.received or signum
        if not first or self.interrupt_now:
            raise KeyboardInterrupt
        # os.write, not print: a handler may run in the middle of another print.
        name = signal.Signals(signum).name
        message = f"\n{name}: stopping after this iteration (again to stop now)\n"
        try:
            os.write(sys.stderr.fileno(), message.encode())
        except (OSError, ValueError, AttributeError):  # no real stderr (captured)
            pass

    @contextmanager
    def installed(self) -> Iterator[StopSignals]:
        self.received = None
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        for sig in previous:
            signal.signal(sig, self._handle)
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
