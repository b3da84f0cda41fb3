"""PaySim mobile-money CSV reader.

Header::

    step,type,amount,nameOrig,oldbalanceOrg,newbalanceOrig,nameDest,oldbalanceDest,newbalanceDest,isFraud,isFlaggedFraud

``step`` is an hour of simulated time (:class:`~watchfloor.evaluation.formats.base.StepClock`
spreads one hour's transactions over it in file order). ``isFraud`` is the label: both the
sending account (taken over) and the receiving account (the mule) of a fraudulent
transaction are fraudulent accounts. ``isFlaggedFraud`` is the old rule system's flag and
is not passed on. The mapping is in ``docs/formats.md``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from watchfloor.evaluation.formats.base import (
    BENIGN,
    MALICIOUS,
    BadLine,
    FormatError,
    Label,
    Labelled,
    ReadStats,
    StepClock,
    clean,
    csv_rows,
    to_float,
    to_int,
)

REQUIRED = ("step", "type", "amount", "nameOrig", "nameDest", "isFraud")
#: 2026-11-02T00:00:00Z: PaySim has no dates; a fixed start keeps runs reproducible.
DEFAULT_START_MS = 1_793_577_600_000
CURRENCY = "XXX"  # ISO 4217 "no currency": PaySim's amounts are in an unnamed unit
COUNTRY = "ZZ"  # unknown country (ISO 3166 user-assigned)

FRAUD = Label(MALICIOUS, "fraud", "isFraud=1")
NOT_FRAUD = Label(BENIGN, None, "isFraud=0")


def _id(text: str, name: str) -> str:
    t = text.strip()
    if not t or len(t) > 128 or not t.isprintable():
        raise BadLine(f"{name}: not an account id: {t[:40]!r}")
    return t


def read(path: Path, stats: ReadStats, start_ms: int = DEFAULT_START_MS) -> Iterator[Labelled]:
    """Transactions of a PaySim CSV in file order."""
    clock = StepClock(start_ms, 3600.0)
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        rows = csv_rows(f, stats, start=1)
        header = [h.strip() for h in next(rows, (1, []))[1]]
        col = {name: i for i, name in enumerate(header)}
        missing = [c for c in REQUIRED if c not in col]
        if missing:
            raise FormatError(f"{path}: not a PaySim CSV (header lacks {', '.join(missing)})")
        need = max(col.values()) + 1
        opt = {
            "oldbalanceOrg": "balance_before",
            "newbalanceOrig": "balance_after",
            "oldbalanceDest": "counterparty_balance_before",
            "newbalanceDest": "counterparty_balance_after",
        }
        for lineno, row in rows:
            if not row:
                continue
            if len(row) < need:
                stats.skip(lineno, f"short_line: {len(row)} fields, need {need}")
                continue
            try:
                ev = {
                    "event_id": f"paysim-{lineno}",
                    "ts": clock(to_int(row[col["step"]], "step")),
                    "account_id": _id(row[col["nameOrig"]], "nameOrig"),
                    "counterparty_id": _id(row[col["nameDest"]], "nameDest"),
                    "amount": to_float(row[col["amount"]], "amount"),
                    "currency": CURRENCY,
                    "country": COUNTRY,
                    "tx_type": clean(row[col["type"]].strip(), 32) or "UNKNOWN",
                    "channel": "mobile",
                }
                for src, dst in opt.items():
                    if src in col:
                        ev[dst] = to_float(row[col[src]], src)
                fraud = row[col["isFraud"]].strip()
                if fraud not in ("0", "1"):
                    raise BadLine(f"isFraud: not 0 or 1: {fraud[:10]!r}")
            except BadLine as exc:
                stats.skip(lineno, str(exc))
                continue
            stats.events += 1
            yield Labelled("financial", ev, FRAUD if fraud == "1" else NOT_FRAUD)


def sniff(first_line: str) -> bool:
    return "nameOrig" in first_line and "step" in first_line


__all__ = ["read", "sniff"]
