"""Argus bidirectional flow CSV (``ra -n -s ...`` / CTU-13 ``.binetflow``) reader.

Header (CTU-13)::

    StartTime,Dur,Proto,SrcAddr,Sport,Dir,DstAddr,Dport,State,sTos,dTos,TotPkts,TotBytes,SrcBytes,Label

Some files add ``srcUdata,dstUdata``; columns are found by name. The mapping is in
``docs/formats.md``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from watchfloor.evaluation.formats.base import (
    BENIGN,
    MALICIOUS,
    UNLABELLED_LABEL,
    BadLine,
    FormatError,
    Label,
    Labelled,
    ReadStats,
    clean,
    csv_rows,
    epoch_ms,
    to_float,
    to_int,
    to_ip,
    to_port,
)

REQUIRED = ("StartTime", "Dur", "Proto", "SrcAddr", "DstAddr", "Dport", "TotBytes", "SrcBytes")

_TIME_FORMATS = ("%Y/%m/%d %H:%M:%S.%f", "%Y/%m/%d %H:%M:%S", "%Y-%m-%d %H:%M:%S.%f",
                 "%Y-%m-%d %H:%M:%S")


def parse_time(text: str) -> int:
    t = text.strip()
    try:  # fast path: fromisoformat reads "2011-08-10 09:46:59.607825" (and "/" swapped)
        return epoch_ms(datetime.fromisoformat(t.replace("/", "-")))
    except ValueError:
        pass
    for fmt in _TIME_FORMATS:
        try:
            return epoch_ms(datetime.strptime(t, fmt))
        except ValueError:
            continue
    try:  # ra -u: epoch seconds
        return round(float(t) * 1000)
    except ValueError:
        raise BadLine(f"StartTime: not a time: {t[:40]!r}") from None


# Threat named by a CTU-13 label, first match wins (tokens of the label, case-insensitive).
_THREATS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"spam", re.I), "spam"),
    (re.compile(r"scan", re.I), "scan"),
    (re.compile(r"ddos|flood|dos\b", re.I), "dos"),
    (re.compile(r"brute|bruteforce", re.I), "brute_force"),
    (re.compile(r"exfil", re.I), "exfiltration"),
    (re.compile(r"(?:^|-)(?:cc\d*|c&c|irc)(?:-|$)", re.I), "c2"),
)


def label_of(text: str) -> Label:
    """The label of a CTU-13 ``Label`` value.

    >>> label_of("flow=From-Botnet-V42-TCP-CC6-Plain-HTTP-Encrypted-Data").threat
    'c2'
    >>> label_of("flow=From-Botnet-V42-TCP-Attempt-SPAM").threat
    'spam'
    >>> to_bot = label_of("flow=To-Botnet-V42-UDP-DNS")  # malicious, but not its source
    >>> to_bot.kind, to_bot.threat, to_bot.source
    ('malicious', 'botnet', False)
    >>> label_of("flow=Background-Established-cmpgw-CVUT").kind
    'unlabelled'
    >>> label_of("flow=From-Normal-V42-Grill").kind
    'benign'
    """
    t = clean(text.strip(), 128)
    if not t:
        return UNLABELLED_LABEL
    body = t.split("=", 1)[1] if t.lower().startswith("flow=") else t
    low = body.lower()
    # "From-X" describes the source host; "To-X" only the destination.
    source = not low.startswith("to-")
    if "botnet" in low:
        threat = next((name for pat, name in _THREATS if pat.search(body)), "botnet")
        return Label(MALICIOUS, threat, t, source)
    if "normal" in low:
        return Label(BENIGN, None, t, source)
    return Label("unlabelled", None, t, source)


# Argus TCP state "SRCFLAGS_DSTFLAGS" (and summary states for other protocols) -> the
# Zeek conn_state vocabulary the network contract documents, so detectors see one
# vocabulary whatever the sensor.
def conn_state(proto: str, state: str) -> str:
    """Zeek-style ``conn_state`` of an Argus state.

    >>> conn_state("tcp", "S_RA"), conn_state("tcp", "S_"), conn_state("tcp", "FSPA_FSPA")
    ('REJ', 'S0', 'SF')
    >>> conn_state("tcp", "SA_"), conn_state("udp", "CON"), conn_state("udp", "INT")
    ('OTH', 'SF', 'S0')
    """
    s = state.strip().upper()
    if proto == "tcp" and "_" in s:
        src, _, dst = s.partition("_")
        if "S" not in src:
            return "OTH"  # mid-stream: the source's SYN was never seen
        if "S" not in dst:  # the destination never answered with a SYN-ACK
            if "A" in src:
                return "OTH"  # a SYN-ACK from the "source": backscatter, not a connection
            return "REJ" if "R" in dst else "S0"
        if "F" in src and "F" in dst:
            return "SF"
        if "R" in src:
            return "RSTO"
        if "R" in dst:
            return "RSTR"
        return "S1"
    if s in ("CON", "ECR", "RSP", "FIN"):
        return "SF"
    if s in ("INT", "REQ", "ECO", "ACC"):
        return "S0"
    if s in ("RST", "URP", "URH", "URN", "URHPRO", "URFIL", "URO", "URHU"):
        return "REJ"
    return "OTH"


def read(path: Path, stats: ReadStats) -> Iterator[Labelled]:
    """Flows of an Argus CSV in file order (see the module docstring)."""
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        header_line = f.readline()
        stats.lines += 1
        sep = "\t" if header_line.count("\t") > header_line.count(",") else ","
        header = [h.strip() for h in header_line.rstrip("\r\n").split(sep)]
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise FormatError(
                f"{path}: not an Argus flow CSV (header lacks {', '.join(missing)}; "
                f"expected {','.join(REQUIRED)}...)"
            )
        col = {name: i for i, name in enumerate(header)}
        need = max(col[c] for c in REQUIRED) + 1
        get = col.get
        label_at = get("Label")
        label_last = label_at == len(header) - 1
        stem = "argus"
        for lineno, row in csv_rows(f, stats, sep):
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) < need:
                stats.skip(lineno, f"short_line: {len(row)} fields, need {need}")
                continue
            try:
                proto = row[col["Proto"]].strip().lower() or "other"
                src_b = to_int(row[col["SrcBytes"]], "SrcBytes")
                tot_b = to_int(row[col["TotBytes"]], "TotBytes")
                state = row[get("State")].strip() if get("State") is not None else ""
                ev = {
                    "event_id": f"{stem}-{lineno}",
                    "ts": parse_time(row[col["StartTime"]]),
                    "src_ip": to_ip(row[col["SrcAddr"]], "SrcAddr"),
                    "dst_ip": to_ip(row[col["DstAddr"]], "DstAddr"),
                    "dst_port": to_port(row[col["Dport"]], "Dport"),
                    "protocol": proto,
                    "bytes_out": src_b,
                    "bytes_in": max(0, tot_b - src_b),
                    "duration_ms": round(to_float(row[col["Dur"]], "Dur") * 1000.0, 3),
                }
                if get("Sport") is not None:
                    ev["src_port"] = to_port(row[col["Sport"]], "Sport")
                if get("TotPkts") is not None:
                    ev["packets"] = to_int(row[col["TotPkts"]], "TotPkts")
                if state:
                    ev["conn_state"] = conn_state(proto, state)
                    ev["argus_state"] = clean(state, 32)
                if get("Dir") is not None and row[col["Dir"]].strip():
                    ev["direction"] = clean(row[col["Dir"]].strip(), 8)
                label = UNLABELLED_LABEL
                if label_at is not None and len(row) > label_at:
                    # srcUdata/dstUdata payload columns may hold commas: the label is the
                    # last field whenever it is the header's last column.
                    label = label_of(row[-1] if label_last else row[label_at])
            except BadLine as exc:
                stats.skip(lineno, str(exc))
                continue
            stats.events += 1
            yield Labelled("network", ev, label)


def sniff(first_line: str) -> bool:
    return "StartTime" in first_line and "SrcAddr" in first_line


__all__ = ["conn_state", "label_of", "read", "sniff"]
