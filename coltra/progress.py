"""What the person watching a run sees on stderr: a bar on a terminal, lines elsewhere."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any, TextIO

__all__ = ["PLAIN_LOG_INTERVAL_S", "Progress"]

PLAIN_LOG_INTERVAL_S = 10.0  # seconds between progress lines when stderr is not a terminal


class Progress:
    """A tqdm bar when ``stream`` is a terminal; otherwise a plain line every ~10 s (and for
    the last iteration), so CI logs and pipes get progress without control characters."""

    def __init__(self, enabled: bool, total: int, initial: int, stream: TextIO) -> None:
        self.enabled = enabled
        self.stream = stream
        self.total = total
        self.bar: Any = None
        self._last_line = -math.inf
        self._last_iteration = initial
        if enabled and stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(
                total=total, initial=initial, file=stream, unit="it", dynamic_ncols=True
            )

    def update(self, iteration: int, fields: Mapping[str, str], last: bool = False) -> None:
        """Show ``iteration``; a plain line only every ~10 s and for the ``last`` one."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(iteration - self.bar.n)
            self.bar.set_postfix(fields, refresh=True)
            return
        now = time.monotonic()
        if now - self._last_line >= PLAIN_LOG_INTERVAL_S or last or iteration >= self.total:
            self._line(iteration, fields)

    def finish(self, iteration: int, fields: Mapping[str, str]) -> None:
        """The last state as a line too, when the run ended between two lines."""
        if self.enabled and self.bar is None and iteration != self._last_iteration:
            self._line(iteration, fields)

    def _line(self, iteration: int, fields: Mapping[str, str]) -> None:
        self._last_line = time.monotonic()
        self._last_iteration = iteration
        parts = " | ".join(f"{key} {value}" for key, value in fields.items())
        self.write(f"iteration {iteration}/{self.total} | {parts}")

    def write(self, message: str, always: bool = False) -> None:
        """``message`` on its own line (above the bar); only when progress is shown, unless
        ``always`` (warnings and notes the person must see)."""
        if not (self.enabled or always):
            return
        if self.bar is not None:
            self.bar.write(message, file=self.stream)
        else:
            print(message, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
