"""AMLSim (IBM's anti-money-laundering simulator) export reader.

Three transaction layouts are accepted, matched by column name:

* Kaggle / ``outputs/sample`` export ``transactions.csv``:
  ``TX_ID,SENDER_ACCOUNT_ID,RECEIVER_ACCOUNT_ID,TX_TYPE,TX_AMOUNT,TIMESTAMP,IS_FRAUD,ALERT_ID``
  (``TIMESTAMP`` a simulation step, one day);
* ``convert_logs.py`` output ``transactions.csv``:
  ``tran_id,orig_acct,bene_acct,tx_type,base_amt,tran_timestamp,is_sar,alert_id``
  (``tran_timestamp`` ISO 8601);
* the raw ``tx_log.csv``: ``step,type,amount,nameOrig,oldbalanceOrig,newbalanceOrig,
  nameDest,oldbalanceDest,newbalanceDest,isSAR,alertID``.

``PATH`` may be the transactions file or the directory holding it. Companions in the same
directory give each alert its typology and the labelled accounts: ``alerts.csv``
(``ALERT_ID,ALERT_TYPE,IS_FRAUD,...``), ``alert_accounts.csv``
(``alert_id,alert_type,acct_id,...,is_sar``) or ``alert_transactions.csv``; and
``accounts.csv`` (``ACCOUNT_ID``/``acct_id`` with ``IS_FRAUD``/``prior_sar_count``/
``is_sar``). A SAR transaction's threat is ``laundering_<typology>`` (``fan_in``,
``fan_out``, ``cycle``, ``scatter_gather`` ...), ``laundering`` when no companion says.
The mapping is in ``docs/formats.md``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
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
    epoch_ms,
    to_float,
)

ALIASES: dict[str, tuple[str, ...]] = {
    "id": ("TX_ID", "tran_id"),
    "sender": ("SENDER_ACCOUNT_ID", "orig_acct", "nameOrig"),
    "receiver": ("RECEIVER_ACCOUNT_ID", "bene_acct", "nameDest"),
    "type": ("TX_TYPE", "tx_type", "type"),
    "amount": ("TX_AMOUNT", "base_amt", "amount"),
    "ts": ("TIMESTAMP", "tran_timestamp", "step"),
    "sar": ("IS_FRAUD", "is_sar", "isSAR"),
    "alert": ("ALERT_ID", "alert_id", "alertID"),
    "balance_before": ("oldbalanceOrig",),
    "balance_after": ("newbalanceOrig",),
}
REQUIRED = ("sender", "receiver", "amount", "ts", "sar")
TX_FILES = ("transactions.csv", "tx_log.csv")
#: 2017-01-01T00:00:00Z, AMLSim's default base date: step k is day k after it.
DEFAULT_START_MS = 1_483_228_800_000
CURRENCY = "USD"  # AMLSim's default reporting currency
COUNTRY = "ZZ"

_TRUE = {"1", "true", "t", "yes", "y"}


def _truthy(text: str) -> bool:
    return text.strip().lower() in _TRUE


def threat_of(alert_type: str | None) -> str:
    """``laundering_<typology>`` for an AMLSim alert type.

    >>> threat_of("fan_in"), threat_of("Scatter-Gather"), threat_of(None)
    ('laundering_fan_in', 'laundering_scatter_gather', 'laundering')
    """
    if not alert_type or not alert_type.strip():
        return "laundering"
    t = alert_type.strip().lower().replace("-", "_").replace(" ", "_")
    return f"laundering_{t}"


def transactions_file(path: Path) -> Path:
    if path.is_dir():
        for name in TX_FILES:
            if (path / name).exists():
                return path / name
        raise FormatError(f"{path}: no {' or '.join(TX_FILES)} in this directory")
    return path


def _rows(path: Path) -> Iterator[dict[str, str]]:
    """A companion file's rows as dicts (malformed lines skipped, like the readers')."""
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        rows = csv_rows(f, ReadStats(), start=1)
        header = [h.strip() for h in next(rows, (1, []))[1]]
        for _, row in rows:
            if len(row) == len(header):
                yield {k: v.strip() for k, v in zip(header, row, strict=True)}


def alert_types(directory: Path) -> dict[str, str]:
    """Alert id -> typology from the companion files (empty when there are none)."""
    out: dict[str, str] = {}
    for name in ("alerts.csv", "alert_accounts.csv", "alert_transactions.csv"):
        p = directory / name
        if not p.exists():
            continue
        for row in _rows(p):
            aid = row.get("ALERT_ID") or row.get("alert_id")
            typ = row.get("ALERT_TYPE") or row.get("alert_type")
            if aid and typ:
                out.setdefault(aid, typ)
    return out


def entity_labels(path: Path) -> dict[str, Label]:
    """Account id -> label from ``alert_accounts.csv``/``alerts.csv``/``accounts.csv``."""
    directory = path if path.is_dir() else path.parent
    out: dict[str, Label] = {}
    types = alert_types(directory)
    p = directory / "alert_accounts.csv"
    if p.exists():
        for row in _rows(p):
            acct, aid = row.get("acct_id") or row.get("ACCOUNT_ID"), row.get("alert_id", "")
            if acct and _truthy(row.get("is_sar", "true")):
                out[acct] = Label(MALICIOUS, threat_of(types.get(aid)), f"alert {aid}",
                                  group=aid or None)
    p = directory / "alerts.csv"
    if p.exists():
        for row in _rows(p):
            if not _truthy(row.get("IS_FRAUD", "true")):
                continue
            aid = row.get("ALERT_ID", "")
            for key in ("SENDER_ACCOUNT_ID", "RECEIVER_ACCOUNT_ID"):
                acct = row.get(key)
                if acct and acct not in out:
                    out[acct] = Label(MALICIOUS, threat_of(types.get(aid)), f"alert {aid}",
                                      group=aid or None)
    p = directory / "accounts.csv"
    if p.exists():
        for row in _rows(p):
            acct = row.get("ACCOUNT_ID") or row.get("acct_id")
            flag = row.get("IS_FRAUD") or row.get("is_sar") or row.get("prior_sar_count")
            if acct and acct not in out and flag is not None:
                out[acct] = (Label(MALICIOUS, "laundering", "account flagged")
                             if _truthy(flag) else Label(BENIGN, None, "account"))
    return out


def _time(text: str, clock: StepClock) -> int:
    t = text.strip()
    try:
        return clock(int(t))
    except ValueError:
        pass
    try:
        return epoch_ms(datetime.fromisoformat(t.replace("Z", "+00:00")))
    except ValueError:
        raise BadLine(f"timestamp: not a step or ISO time: {t[:40]!r}") from None


def read(path: Path, stats: ReadStats, start_ms: int = DEFAULT_START_MS) -> Iterator[Labelled]:
    """Transactions of an AMLSim export in file order."""
    tx = transactions_file(path)
    types = alert_types(tx.parent)
    clock = StepClock(start_ms, 86_400.0)
    with open(tx, encoding="utf-8", errors="replace", newline="") as f:
        rows = csv_rows(f, stats, start=1)
        header = [h.strip() for h in next(rows, (1, []))[1]]
        names = {name: i for i, name in enumerate(header)}
        col: dict[str, int] = {}
        for ours, theirs in ALIASES.items():
            for name in theirs:
                if name in names:
                    col[ours] = names[name]
                    break
        missing = [ALIASES[c][0] for c in REQUIRED if c not in col]
        if missing:
            raise FormatError(
                f"{tx}: not an AMLSim transaction export (no {', '.join(missing)})"
            )
        need = max(col.values()) + 1
        for lineno, row in rows:
            if not row:
                continue
            if len(row) < need:
                stats.skip(lineno, f"short_line: {len(row)} fields, need {need}")
                continue
            try:
                sender, receiver = row[col["sender"]].strip(), row[col["receiver"]].strip()
                if not sender or not receiver:
                    raise BadLine("account: empty sender or receiver")
                if not (sender.isprintable() and receiver.isprintable()):
                    raise BadLine("account: control characters in an account id")
                ev = {
                    "event_id": f"amlsim-{row[col['id']].strip() or lineno}"
                    if "id" in col else f"amlsim-{lineno}",
                    "ts": _time(row[col["ts"]], clock),
                    "account_id": sender[:128],
                    "counterparty_id": receiver[:128],
                    "amount": to_float(row[col["amount"]], "amount"),
                    "currency": CURRENCY,
                    "country": COUNTRY,
                    "tx_type": clean(row[col["type"]].strip() if "type" in col else "", 32)
                    or "TRANSFER",
                }
                for name in ("balance_before", "balance_after"):
                    if name in col:
                        ev[name] = to_float(row[col[name]], name)
                aid = row[col["alert"]].strip() if "alert" in col else ""
                if aid in ("-1", ""):
                    aid = ""
                if _truthy(row[col["sar"]]):
                    label = Label(MALICIOUS, threat_of(types.get(aid)),
                                  f"alert {aid}" if aid else "SAR", group=aid or None)
                else:
                    label = Label(BENIGN, None, "")
            except BadLine as exc:
                stats.skip(lineno, str(exc))
                continue
            stats.events += 1
            yield Labelled("financial", ev, label)


def sniff(first_line: str) -> bool:
    return any(k in first_line for k in ("SENDER_ACCOUNT_ID", "orig_acct", "isSAR"))


__all__ = ["alert_types", "entity_labels", "read", "sniff", "threat_of"]
