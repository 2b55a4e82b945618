"""Progress of a fit: one line per phase, one bar per multiple-imputation stage.

Fits announce their compile phases ("compiling stage 2 model…") and count the imputations of
each stage on one bar, instead of one sampler bar per imputation. Everything is silent when
``enabled`` is False (``fit(progressbar=False)``). Output goes to stderr, with a carriage return
to redraw the bar, which terminals and Jupyter both honour.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """A counting bar with a label; :meth:`note` prints one line.

    Parameters
    ----------
    label : str
        What is counted, e.g. ``"stage 1 (A1): imputations"``.
    total : int
        Number of steps.
    enabled : bool
        False makes every method a no-op.
    stream : file-like or None
        Where to write (default ``sys.stderr``, looked up at each write).

    Examples
    --------
    >>> import io
    >>> out = io.StringIO()
    >>> bar = Progress("stage 1 (A1): imputations", 2, enabled=True, stream=out)
    >>> bar.update(); bar.update(); bar.close()
    >>> out.getvalue().rstrip().split("\\r")[-1].startswith("stage 1 (A1): imputations 2/2")
    True
    """

    width = 24

    def __init__(self, label: str, total: int, *, enabled: bool, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = max(int(total), 1)
        self.enabled = enabled
        self._stream = stream
        self.done = 0
        self._t0 = time.perf_counter()
        self._last = 0.0
        self._open = False
        self._shown = -1

    @property
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stderr

    @staticmethod
    def note(message: str, *, enabled: bool, stream: TextIO | None = None) -> None:
        """Print ``message`` on its own line (e.g. ``"compiling stage 2 model…"``)."""
        if enabled:
            out = stream if stream is not None else sys.stderr
            out.write(message + "\n")
            out.flush()

    def start(self) -> Progress:
        """Draw the empty bar."""
        self._t0 = time.perf_counter()
        self._draw(force=True)
        return self

    def update(self, n: int = 1) -> None:
        """Advance by ``n`` steps and redraw (at most five times a second)."""
        self.done = min(self.total, self.done + n)
        self._draw(force=self.done >= self.total)

    def close(self) -> None:
        """Finish the bar's line."""
        if self.enabled and self._open:
            if self._shown != self.done:
                self._draw(force=True)
            self.stream.write("\n")
            self.stream.flush()
            self._open = False

    def _draw(self, *, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if not force and now - self._last < 0.2:
            return
        self._last = now
        self._shown = self.done
        elapsed = now - self._t0
        filled = int(self.width * self.done / self.total)
        bar = "█" * filled + "·" * (self.width - filled)
        eta = ""
        if 0 < self.done < self.total:
            eta = f", about {elapsed / self.done * (self.total - self.done):.0f} s left"
        self.stream.write(f"\r{self.label} {self.done}/{self.total} |{bar}| {elapsed:.0f} s{eta}   ")
        self.stream.flush()
        self._open = True
