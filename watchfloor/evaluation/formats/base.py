"""What every capture reader shares: labels, read statistics, time ordering, parsing helpers.

A reader turns one capture file into :class:`Labelled` records ``(domain, event, label)``
in file order, streaming (one line at a time, constant memory). A malformed line is
counted in :class:`ReadStats` with its line number and skipped; it never stops the read.
A file that is not in the format at all (no recognisable header) raises
:class:`FormatError`, a one-line message for the command line.
"""

from __future__ import annotations

import csv
import functools
import heapq
import ipaddress
import itertools
import math
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

#: Label kinds. ``unlabelled`` (background) traffic is neither a hit nor a false alert.
MALICIOUS, BENIGN, UNLABELLED = "malicious", "benign", "unlabelled"

#: How many skipped lines are kept (line number and reason) for the report.
MAX_SKIPPED_KEPT = 20


class FormatError(ValueError):
    """The file is not in the format the reader expects (header missing or unknown)."""


@dataclass(frozen=True, slots=True)
class Label:
    """The ground truth a capture attaches to one event.

    ``kind`` is malicious, benign or unlabelled; ``threat`` the threat type the label
    names (``scan``, ``c2``, ``brute_force``, ``spam``, ``dos``, ``fraud``,
    ``laundering_fan_in`` ...), None when it names none; ``detail`` the original label
    text; ``source`` whether the label describes the event's entity (its source host or
    sending account): a CTU-13 ``To-Botnet`` flow is malicious but its source is not
    the bot. ``group`` names the labelled campaign the event belongs to when the capture
    says (an AMLSim alert id), for per-campaign figures such as fan-in beneficiaries.
    """

    kind: str
    threat: str | None = None
    detail: str = ""
    source: bool = True
    group: str | None = None


UNLABELLED_LABEL = Label(UNLABELLED)


class Labelled(NamedTuple):
    """One event of a capture with its label."""

    domain: str
    event: dict[str, Any]
    label: Label


@dataclass
class ReadStats:
    """What a read saw: lines, events produced, lines skipped (and why)."""

    lines: int = 0
    events: int = 0
    skipped: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    examples: list[tuple[int, str]] = field(default_factory=list)
    late: int = 0  # events older than one already emitted by the time-ordering window

    def skip(self, lineno: int, reason: str) -> None:
        self.skipped += 1
        self.reasons[reason.split(":")[0]] += 1
        if len(self.examples) < MAX_SKIPPED_KEPT:
            self.examples.append((lineno, reason))

    def summary(self) -> str:
        """One line for stderr."""
        text = f"{self.lines} lines, {self.events} events, {self.skipped} skipped"
        if self.skipped:
            first = "; ".join(f"line {n}: {r}" for n, r in self.examples[:3])
            text += f" ({first})"
        if self.late:
            text += f", {self.late} out of order beyond the sort window"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "lines": self.lines,
            "events": self.events,
            "skipped": self.skipped,
            "skipped_by_reason": dict(self.reasons),
            "skipped_examples": [{"line": n, "reason": r} for n, r in self.examples],
            "late": self.late,
        }


#: Longest line a reader accepts; longer ones are skipped (and not held in memory).
MAX_LINE = 65_536


def numbered_lines(f: Any, stats: ReadStats, start: int = 2) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of a text file, counting lines in ``stats``; a line longer
    than ``MAX_LINE`` is skipped in chunks (never read whole) and counted."""
    lineno = start - 1
    while True:
        text = f.readline(MAX_LINE + 1)
        if not text:
            return
        lineno += 1
        stats.lines += 1
        if len(text) > MAX_LINE and not text.endswith("\n"):
            while (more := f.readline(MAX_LINE + 1)) and not more.endswith("\n"):
                pass
            stats.skip(lineno, f"too_long: more than {MAX_LINE} characters")
            continue
        yield lineno, text


def csv_rows(f: Any, stats: ReadStats, delimiter: str = ",",
             start: int = 2) -> Iterator[tuple[int, list[str]]]:
    """``(line number, fields)`` of a CSV without quoted newlines (every capture format
    here), one line at a time so that one bad line costs only itself."""
    for lineno, text in numbered_lines(f, stats, start):
        try:
            row = next(csv.reader([text], delimiter=delimiter), [])
        except csv.Error as exc:
            stats.skip(lineno, f"csv: {exc}")
            continue
        yield lineno, row


class BadLine(ValueError):
    """Raised inside a reader's line parser; the reader counts the line and goes on."""


# -- field parsers ------------------------------------------------------------------------
def clean(text: str, limit: int = 64) -> str:
    """A short printable string: a capture is input too, and its free-text fields end up
    on operators' screens (control characters and escapes are dropped).

    >>> clean("ssl\x1b[31m", 8)
    'ssl[31m'
    """
    t = text[:limit]
    return t if t.isprintable() else "".join(ch for ch in t if ch.isprintable())


def to_int(text: str, name: str) -> int:
    """A non-negative integer; ``-``, empty and ``(empty)`` are 0 (Zeek's unset)."""
    t = text.strip()
    if t in ("", "-", "(empty)"):
        return 0
    try:
        v = int(t, 0) if t[:2] in ("0x", "0X") else int(float(t))
    except (ValueError, OverflowError):
        raise BadLine(f"{name}: not a number: {t[:40]!r}") from None
    if v < 0:
        raise BadLine(f"{name}: negative: {v}")
    return v


def to_float(text: str, name: str) -> float:
    """A finite non-negative float; unset is 0."""
    t = text.strip()
    if t in ("", "-", "(empty)"):
        return 0.0
    try:
        v = float(t)
    except ValueError:
        raise BadLine(f"{name}: not a number: {t[:40]!r}") from None
    if not math.isfinite(v) or v < 0:
        raise BadLine(f"{name}: out of range: {t[:40]!r}")
    return v


def to_port(text: str, name: str) -> int:
    """A port: decimal or hex (Argus writes ``0x0303``); unset is 0."""
    v = to_int(text, name)
    if v > 65535:
        raise BadLine(f"{name}: not a port: {text.strip()[:20]!r}")
    return v


def to_ip(text: str, name: str) -> str:
    t = text.strip()
    ip = _canonical_ip(t)
    if ip is None:
        raise BadLine(f"{name}: not an IP address: {t[:60]!r}")
    return ip


@functools.lru_cache(maxsize=65_536)
def _canonical_ip(text: str) -> str | None:
    # Captures repeat the same few thousand addresses: parse each once (bounded cache).
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


class StepClock:
    """Event times for captures whose time is a simulation step (PaySim: one hour,
    AMLSim: one day): ``start + step * step_seconds``, plus ``index in the step *
    step_seconds / 1000`` so the transactions of one step keep their file order and
    spread over the step (the 1000th and later share its last slot). One counter per
    step seen (a few thousand at most)."""

    def __init__(self, start_ms: int, step_seconds: float) -> None:
        self.start_ms = start_ms
        self.step_ms = step_seconds * 1000.0
        self.slot_ms = self.step_ms / 1000.0
        self.seen: Counter[int] = Counter()

    def __call__(self, step: int) -> int:
        idx = min(self.seen[step], 999)
        self.seen[step] += 1
        return round(self.start_ms + step * self.step_ms + idx * self.slot_ms)


def epoch_ms(dt: datetime) -> int:
    """Epoch milliseconds; a naive time is taken as UTC (captures rarely say their zone)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return round(dt.timestamp() * 1000)


PROTOCOL_NUMBERS = {
    0: "hopopt", 1: "icmp", 2: "igmp", 6: "tcp", 17: "udp", 47: "gre", 58: "ipv6-icmp"
}


# -- time order -----------------------------------------------------------------------------
def time_ordered(
    records: Iterable[Labelled], window: int, stats: ReadStats | None = None
) -> Iterator[Labelled]:
    """Re-emit ``records`` in event-time order using a bounded sort window.

    Flow exporters write a record when the flow *ends* (Zeek, CICFlowMeter) while its
    ``ts`` is when it *started*, so files are only nearly sorted. A heap of ``window``
    records repairs any disorder shorter than the window in constant memory; a record
    older than one already emitted is emitted at once and counted in ``stats.late``.
    Ties keep file order. ``window <= 0`` sorts everything in memory.
    """
    seq = itertools.count()
    heap: list[tuple[int, int, Labelled]] = []
    if window <= 0:
        yield from sorted(records, key=lambda r: r.event["ts"])
        return
    last = -(1 << 62)
    for rec in records:
        ts = rec.event["ts"]
        if ts < last:
            if stats is not None:
                stats.late += 1
            yield rec
            continue
        heapq.heappush(heap, (ts, next(seq), rec))
        if len(heap) > window:
            last, _, out = heapq.heappop(heap)
            yield out
    while heap:
        _, _, out = heapq.heappop(heap)
        yield out
