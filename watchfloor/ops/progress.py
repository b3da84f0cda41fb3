"""Progress lines for long commands, on stderr so stdout stays for results.

On a terminal the line is redrawn in place; elsewhere (a log file, CI) a plain line is
written every ``every`` seconds, with no carriage returns or escape codes. ``quiet``
silences it for scripts.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """``Progress("sent", "events")(done, total, seconds)`` prints
    ``sent 1,200/30,000 events (400/s, 72 s left)``.

    >>> import io
    >>> out = io.StringIO()
    >>> p = Progress("sent", "events", stream=out, every=0.0)
    >>> p(1_200, 30_000, 3.0); p.close()
    >>> out.getvalue()
    'sent 1,200/30,000 events (400/s, 72 s left)\\n'
    """

    def __init__(
        self,
        verb: str,
        noun: str,
        *,
        stream: TextIO | None = None,
        quiet: bool = False,
        every: float = 5.0,
    ) -> None:
        self.verb, self.noun = verb, noun
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.every = every
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last = float("-inf")
        self._drawn = False

    def __call__(self, done: int, total: int, seconds: float) -> None:
        if self.quiet:
            return
        now = time.monotonic()
        final = 0 < total <= done
        if now - self._last < (self.every if not self.tty else 0.1) and not final:
            return
        self._last = now
        rate = done / seconds if seconds > 0 else 0.0
        left = f", {(total - done) / rate:.0f} s left" if rate > 0 and done < total else ""
        of = f"/{total:,}" if total > 0 else ""  # total 0: not known (a streamed capture)
        line = f"{self.verb} {done:,}{of} {self.noun} ({rate:,.0f}/s{left})"
        if self.tty:
            self.stream.write("\r" + line + "\x1b[K")
            self._drawn = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End the redrawn line (a terminal), so what follows starts on its own."""
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
