"""Zeek ``conn.log`` reader: the TSV log (``#separator``, ``#fields``, ``#types`` header
lines, ``-`` for unset, ``(empty)`` for an empty set) and the JSON log (one object per
line), with the optional IoT-23 label columns ``label`` and ``detailed-label``.

IoT-23's ``conn.log.labeled`` files declare ``... tunnel_parents label detailed-label``
in ``#fields`` but write the last three values separated by spaces, not tabs; a data line
one or two fields short whose last field holds whitespace is split on whitespace.
The mapping is in ``docs/formats.md``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from watchfloor.evaluation.formats.base import (
    BENIGN,
    MALICIOUS,
    MAX_LINE,
    UNLABELLED_LABEL,
    BadLine,
    FormatError,
    Label,
    Labelled,
    ReadStats,
    clean,
    epoch_ms,
    numbered_lines,
    to_float,
    to_int,
    to_ip,
    to_port,
)

REQUIRED = ("ts", "id.orig_h", "id.resp_h", "id.resp_p", "proto")

# IoT-23 detailed labels -> threat type (first match wins, case-insensitive substrings).
_DETAILED: tuple[tuple[str, str], ...] = (
    ("portscan", "scan"),
    ("ddos", "dos"),
    ("c&c", "c2"),
    ("heartbeat", "c2"),
    ("filedownload", "malware_download"),
    ("attack", "brute_force"),  # IoT-23 "Attack": telnet/ssh login attempts on the device
    ("okiru", "botnet"),
    ("torii", "botnet"),
)


def label_of(label: str, detailed: str = "") -> Label:
    """The label of IoT-23's ``label`` and ``detailed-label`` values.

    >>> label_of("Malicious", "PartOfAHorizontalPortScan").threat
    'scan'
    >>> label_of("Malicious", "C&C-HeartBeat").threat
    'c2'
    >>> label_of("Benign", "-").kind
    'benign'
    >>> label_of("-").kind
    'unlabelled'
    """
    low = label.strip().lower()
    det = detailed.strip()
    text = clean(label.strip() + (f" {det}" if det and det != "-" else ""), 128)
    if low.startswith("malicious"):
        dl = det.lower()
        threat = next((t for key, t in _DETAILED if key in dl), "botnet")
        return Label(MALICIOUS, threat, text)
    if low.startswith("benign"):
        return Label(BENIGN, None, text)
    return UNLABELLED_LABEL


def _unset(v: Any) -> bool:
    return v is None or v in ("-", "", "(empty)")


def _ts(v: Any) -> int:
    if isinstance(v, int | float) and not isinstance(v, bool):
        return round(float(v) * 1000)
    t = str(v).strip()
    try:
        return round(float(t) * 1000)
    except ValueError:
        pass
    try:  # JSON logs written with JSON::TS_ISO8601
        return epoch_ms(datetime.fromisoformat(t.replace("Z", "+00:00")))
    except ValueError:
        raise BadLine(f"ts: not a time: {t[:40]!r}") from None


def _s(v: Any) -> str:
    return "" if v is None else str(v)


def to_event(rec: dict[str, Any], event_id: str) -> tuple[dict[str, Any], Label]:
    """A network event and its label from one conn.log record (field name -> value)."""
    proto = _s(rec.get("proto")).strip().lower() or "other"
    ev: dict[str, Any] = {
        "event_id": event_id,
        "ts": _ts(rec.get("ts")),
        "src_ip": to_ip(_s(rec.get("id.orig_h")), "id.orig_h"),
        "dst_ip": to_ip(_s(rec.get("id.resp_h")), "id.resp_h"),
        "dst_port": to_port(_s(rec.get("id.resp_p")), "id.resp_p"),
        "protocol": proto,
        "bytes_out": to_int(_s(rec.get("orig_bytes")), "orig_bytes"),
        "bytes_in": to_int(_s(rec.get("resp_bytes")), "resp_bytes"),
        "duration_ms": round(to_float(_s(rec.get("duration")), "duration") * 1000.0, 3),
    }
    if not _unset(rec.get("id.orig_p")):
        ev["src_port"] = to_port(_s(rec["id.orig_p"]), "id.orig_p")
    for src, dst in (("orig_pkts", "packets_out"), ("resp_pkts", "packets_in")):
        if not _unset(rec.get(src)):
            ev[dst] = to_int(_s(rec[src]), src)
    for src, dst in (("conn_state", "conn_state"), ("service", "service"),
                     ("history", "history"), ("uid", "uid")):
        v = rec.get(src)
        if not _unset(v):
            ev[dst] = clean(_s(v))
    label = rec.get("label")
    if label is None:
        return ev, UNLABELLED_LABEL
    return ev, label_of(_s(label), _s(rec.get("detailed-label")))


def _read_json(f: Any, stats: ReadStats, first: str) -> Iterator[Labelled]:
    def numbered() -> Iterator[tuple[int, str]]:
        yield 1, first
        yield from numbered_lines(f, stats, 2)

    for lineno, line in numbered():
        if not line.strip():
            continue
        try:
            rec = orjson.loads(line)
            if type(rec) is not dict:
                raise BadLine("not_object: a JSON line that is not an object")
            missing = [c for c in REQUIRED if c not in rec]
            if missing:
                raise BadLine(f"missing_field: {', '.join(missing)}")
            ev, label = to_event(rec, f"zeek-{lineno}")
        except orjson.JSONDecodeError:
            stats.skip(lineno, "not_json: not a JSON object")
            continue
        except BadLine as exc:
            stats.skip(lineno, str(exc))
            continue
        stats.events += 1
        yield Labelled("network", ev, label)


def read(path: Path, stats: ReadStats) -> Iterator[Labelled]:
    """Connections of a Zeek conn.log (TSV or JSON) in file order."""
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        first = f.readline()
        stats.lines += 1
        if first.lstrip().startswith("{"):
            yield from _read_json(f, stats, first)
            return
        sep, fields = "\t", None
        unset, empty = "-", "(empty)"
        line = first
        lineno = 1
        while line:
            if line.startswith("#"):
                if line.startswith("#separator"):
                    key, value = "#separator", line[len("#separator"):]
                else:
                    key, _, value = line.rstrip("\r\n").partition(sep)
                if key == "#separator":
                    try:
                        sep = value.strip().encode().decode("unicode_escape") or "\t"
                    except UnicodeDecodeError:
                        raise FormatError(f"{path}: unreadable #separator {value[:20]!r}") \
                            from None
                elif key == "#fields":
                    # IoT-23 writes "tunnel_parents   label   detailed-label" here too.
                    fields = [name for part in value.split(sep) for name in part.split()]
                elif key == "#unset_field":
                    unset = value
                elif key == "#empty_field":
                    empty = value
                line = f.readline(MAX_LINE + 1)
                lineno += 1
                stats.lines += bool(line)
                continue
            if fields is None:
                raise FormatError(
                    f"{path}: not a Zeek conn.log (no #fields header line before data; "
                    "JSON logs start with '{')"
                )
            missing = [c for c in REQUIRED if c not in fields]
            if missing:
                raise FormatError(f"{path}: Zeek log lacks fields {', '.join(missing)}")
            break
        else:
            return
        n = len(fields)
        rest = numbered_lines(f, stats, lineno + 1)  # bounded line length from here on
        for num, data in itertools.chain([(lineno, line)], rest):
            text = data.rstrip("\r\n")
            if text.startswith("#fields"):  # concatenated logs: a new header
                fields = [name for part in text.split(sep)[1:] for name in part.split()]
                n = len(fields)
            elif text and not text.startswith("#"):
                values = text.split(sep)
                if len(values) < n and values and len(values[-1].split()) > 1:
                    # IoT-23: "tunnel_parents   label   detailed-label" in one field.
                    values = values[:-1] + values[-1].split()
                if len(values) != n:
                    stats.skip(num, f"field_count: {len(values)} fields, header has {n}")
                else:
                    rec = {
                        k: (None if v == unset else "" if v == empty else v)
                        for k, v in zip(fields, values, strict=True)
                    }
                    try:
                        ev, label = to_event(rec, f"zeek-{num}")
                    except BadLine as exc:
                        stats.skip(num, str(exc))
                    else:
                        stats.events += 1
                        yield Labelled("network", ev, label)


def sniff(first_line: str) -> bool:
    return first_line.startswith("#separator") or '"id.orig_h"' in first_line


__all__ = ["label_of", "read", "sniff", "to_event"]
