"""CICFlowMeter CSV reader (CIC-IDS2017 ``TrafficLabelling`` and CSE-CIC-IDS2018 styles).

Column names are matched after stripping spaces (CIC-IDS2017 writes `` Destination Port``)
and through aliases for the two naming styles (``Total Fwd Packets`` / ``Tot Fwd Pkts``,
``Source IP`` / ``Src IP`` ...). ``Flow Duration`` is in microseconds. Timestamps are
day-first (``7/7/2017 3:30``, ``14/02/2018 08:31:01``); CIC-IDS2017 writes afternoon
hours on a 12-hour clock without AM/PM, so an hour 1..7 is read as 13..19 (the captures
ran 08:00-18:00); naive times are taken as UTC. A file without source addresses (the
``MachineLearningCSV`` variant, most 2018 files) has no entity to key events by and is
refused with a one-line error. The mapping is in ``docs/formats.md``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from watchfloor.evaluation.formats.base import (
    BENIGN,
    MALICIOUS,
    PROTOCOL_NUMBERS,
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

# our name -> accepted column names (after strip()).
ALIASES: dict[str, tuple[str, ...]] = {
    "src_ip": ("Source IP", "Src IP"),
    "src_port": ("Source Port", "Src Port"),
    "dst_ip": ("Destination IP", "Dst IP"),
    "dst_port": ("Destination Port", "Dst Port"),
    "protocol": ("Protocol",),
    "ts": ("Timestamp",),
    "duration": ("Flow Duration",),
    "fwd_pkts": ("Total Fwd Packets", "Tot Fwd Pkts", "Total Fwd Packet"),
    "bwd_pkts": ("Total Backward Packets", "Tot Bwd Pkts", "Total Bwd packets"),
    "fwd_bytes": ("Total Length of Fwd Packets", "TotLen Fwd Pkts", "Total Length of Fwd Packet"),
    "bwd_bytes": ("Total Length of Bwd Packets", "TotLen Bwd Pkts", "Total Length of Bwd Packet"),
    "label": ("Label",),
    "flow_id": ("Flow ID",),
    "syn": ("SYN Flag Count", "SYN Flag Cnt"),
    "ack": ("ACK Flag Count", "ACK Flag Cnt"),
    "fin": ("FIN Flag Count", "FIN Flag Cnt"),
    "rst": ("RST Flag Count", "RST Flag Cnt"),
    "psh": ("PSH Flag Count", "PSH Flag Cnt"),
}
REQUIRED = ("src_ip", "dst_ip", "dst_port", "protocol", "ts", "duration", "fwd_bytes",
            "bwd_bytes")

_TIME_FORMATS = ("%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M", "%d/%m/%Y %I:%M:%S %p",
                 "%d/%m/%Y %I:%M %p", "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S")


def parse_time(text: str) -> int:
    """Epoch ms of a CICFlowMeter timestamp.

    >>> from datetime import datetime, UTC
    >>> datetime.fromtimestamp(parse_time("7/7/2017 3:30") / 1000, UTC).strftime("%d %b %H:%M")
    '07 Jul 15:30'
    >>> datetime.fromtimestamp(parse_time("14/02/2018 08:31:01") / 1000, UTC).hour
    8
    """
    t = text.strip()
    for fmt in _TIME_FORMATS:
        try:
            dt = datetime.strptime(t, fmt)
        except ValueError:
            continue
        if "%p" not in fmt and "%Y-" not in fmt and 1 <= dt.hour <= 7:
            dt = dt.replace(hour=dt.hour + 12)  # CIC-IDS2017's 12-hour clock
        return epoch_ms(dt)
    raise BadLine(f"Timestamp: not a time: {t[:40]!r}")


def _duration_ms(text: str) -> float:
    # Microseconds; CICFlowMeter writes -1 (and sometimes a negative clock step) for some
    # one-packet flows: those last 0.
    t = text.strip()
    try:
        v = float(t) if t else 0.0
    except ValueError:
        raise BadLine(f"Flow Duration: not a number: {t[:40]!r}") from None
    if v != v or v in (float("inf"), float("-inf")):
        raise BadLine(f"Flow Duration: not finite: {t[:40]!r}")
    return max(0.0, v) / 1000.0


# Label -> threat type (first match wins, case-insensitive substrings).
_THREATS: tuple[tuple[str, str], ...] = (
    ("portscan", "scan"),
    ("scan", "scan"),
    ("patator", "brute_force"),
    ("brute", "brute_force"),
    ("ddos", "dos"),
    ("dos", "dos"),
    ("bot", "c2"),
    ("infilt", "infiltration"),
    ("heartbleed", "exploit"),
    ("sql", "web_attack"),
    ("xss", "web_attack"),
    ("web attack", "web_attack"),
)


def label_of(text: str) -> Label:
    """The label of a CICFlowMeter ``Label`` value.

    >>> label_of("SSH-Patator").threat, label_of("DoS Hulk").threat, label_of("Bot").threat
    ('brute_force', 'dos', 'c2')
    >>> label_of("BENIGN").kind, label_of("Benign").kind
    ('benign', 'benign')
    """
    t = clean(text.strip(), 128)
    low = t.lower()
    if not t or low in ("-", "nan"):
        return UNLABELLED_LABEL
    if low == "benign":
        return Label(BENIGN, None, t)
    return Label(MALICIOUS, next((th for key, th in _THREATS if key in low), "attack"), t)


def read(path: Path, stats: ReadStats) -> Iterator[Labelled]:
    """Flows of a CICFlowMeter CSV in file order."""
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        rows = csv_rows(f, stats, start=1)
        header = [h.strip().lstrip("\ufeff") for h in next(rows, (1, []))[1]]
        names = {name: i for i, name in enumerate(header)}
        col: dict[str, int] = {}
        for ours, theirs in ALIASES.items():
            for name in theirs:
                if name in names:
                    col[ours] = names[name]
                    break
        missing = [ALIASES[c][0] for c in REQUIRED if c not in col]
        if missing:
            if "Destination Port" in missing[:1] or ("src_ip" not in col and "dst_port" in col):
                raise FormatError(
                    f"{path}: CICFlowMeter file without flow addresses ({', '.join(missing)} "
                    "missing): use the TrafficLabelling / GeneratedLabelledFlows CSVs, which "
                    "keep Source IP, Destination IP and Timestamp"
                )
            raise FormatError(f"{path}: not a CICFlowMeter CSV (no {', '.join(missing)})")
        need = max(col.values()) + 1
        for lineno, row in rows:
            if not any(c.strip() for c in row):
                stats.skip(lineno, "empty_row: no values")
                continue
            if len(row) < need:
                stats.skip(lineno, f"short_line: {len(row)} fields, need {need}")
                continue
            try:
                pnum = to_int(row[col["protocol"]], "Protocol")
                flags = "".join(
                    letter
                    for name, letter in (("syn", "S"), ("ack", "A"), ("fin", "F"),
                                         ("rst", "R"), ("psh", "P"))
                    if name in col and to_float(row[col[name]], name) > 0
                )
                ev = {
                    "event_id": f"cic-{lineno}",
                    "ts": parse_time(row[col["ts"]]),
                    "src_ip": to_ip(row[col["src_ip"]], "Source IP"),
                    "dst_ip": to_ip(row[col["dst_ip"]], "Destination IP"),
                    "dst_port": to_port(row[col["dst_port"]], "Destination Port"),
                    "protocol": PROTOCOL_NUMBERS.get(pnum, str(pnum)),
                    "bytes_out": to_int(row[col["fwd_bytes"]], "Total Length of Fwd Packets"),
                    "bytes_in": to_int(row[col["bwd_bytes"]], "Total Length of Bwd Packets"),
                    "duration_ms": _duration_ms(row[col["duration"]]),
                }
                if "src_port" in col:
                    ev["src_port"] = to_port(row[col["src_port"]], "Source Port")
                if "fwd_pkts" in col:
                    ev["packets_out"] = to_int(row[col["fwd_pkts"]], "Total Fwd Packets")
                if "bwd_pkts" in col:
                    ev["packets_in"] = to_int(row[col["bwd_pkts"]], "Total Backward Packets")
                if ev["protocol"] == "tcp" and flags:
                    ev["tcp_flags"] = flags
                label = label_of(row[col["label"]]) if "label" in col else UNLABELLED_LABEL
            except (BadLine, ValueError) as exc:
                stats.skip(lineno, str(exc) if isinstance(exc, BadLine) else f"value: {exc}")
                continue
            stats.events += 1
            yield Labelled("network", ev, label)


def sniff(first_line: str) -> bool:
    return "Flow Duration" in first_line


__all__ = ["label_of", "parse_time", "read", "sniff"]
