"""``watchfloor audit``: what was shared with whom, under which agreement; chain checks.

``watchfloor audit [--agency A] [--since 24h] [--json]`` reads the audit topic
(``audit.sharing``) and prints one line per delivery: publication time, alert id,
version, agency, agreement, and the fields shared in full, pseudonymised and redacted.
``--since`` takes a duration (``90s``, ``30m``, ``24h``, ``7d``, ``2w``) or an RFC 3339
time. ``--json`` prints the audit records as stored, one per line.

``watchfloor audit verify [--json]`` reads the whole topic and checks every hash chain
with :func:`watchfloor.alerts.audit.verify`: altered, missing and reordered records are
reported per chain with their partition and offset. It then reads the signed chain heads
of ``audit.anchors`` (readable by oversight only) and checks the chains against them
with :func:`watchfloor.alerts.anchors.check`: truncated tails, records appended after a
chain's newest anchor, foreign chains and forged anchors. The audit key is
``WATCHFLOOR_AUDIT_KEY`` (hex) or derived from the worker's secret
(``WATCHFLOOR_PSEUDONYM_KEY`` or the key file in the state dir). ``--no-anchors`` skips
that part and says so. Exit code 0: intact; 1: problems; 2: the topic does not exist or
no audit key.

The reading and formatting functions are plain Python and are tested without a broker.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from watchfloor.alerts.anchors import DEFAULT_GRACE_SECONDS, audit_key, check
from watchfloor.alerts.audit import verify
from watchfloor.core.sanitize import escape, escape_json

# Records whose Kafka timestamp is this much older than --since are still read: the
# record's own ``time`` is what is filtered on, and the broker's clock may differ a little.
SEEK_MARGIN_SECONDS = 300.0

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0, "w": 604_800.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_POSITION = re.compile(r"^position (\d+): (.*)$", re.S)


def parse_since(text: str, now: float | None = None) -> float:
    """Epoch seconds for ``--since``: a duration back from ``now`` or an RFC 3339 time.

    >>> parse_since("30m", now=10_000.0), parse_since("24h", now=100_000.0)
    (8200.0, 13600.0)
    >>> parse_since("7d", now=1e6), parse_since("2023-11-14T22:13:20Z")
    (395200.0, 1700000000.0)
    >>> parse_since("yesterday")
    Traceback (most recent call last):
    ...
    ValueError: --since 'yesterday': expected a duration (30m, 24h, 7d) or an RFC 3339 time
    """
    m = _DURATION.match(text)
    if m:
        now = time.time() if now is None else now
        return now - float(m.group(1)) * _UNITS[m.group(2)]
    try:
        dt = datetime.fromisoformat(text.strip())
    except ValueError:
        dt = None
    if dt is None or dt.tzinfo is None:
        raise ValueError(
            f"--since {text!r}: expected a duration (30m, 24h, 7d) or an RFC 3339 time"
        )
    return dt.timestamp()


def record_time(record: dict[str, Any]) -> float | None:
    """The record's ``time`` (RFC 3339) as epoch seconds, or None if unreadable."""
    t = record.get("time")
    if type(t) is not str:
        return None
    try:
        return datetime.fromisoformat(t).timestamp()
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Entry:
    """One message of the audit topic: where it is and what it says (None: unreadable)."""

    partition: int
    offset: int
    record: dict[str, Any] | None


def select(
    entries: Iterable[Entry], agency: str | None = None, since: float | None = None
) -> list[dict[str, Any]]:
    """Readable records of ``agency`` (None: all) whose ``time`` is at or after ``since``."""
    out = []
    for e in entries:
        r = e.record
        if r is None:
            continue
        if agency is not None and r.get("agency") != agency:
            continue
        if since is not None:
            t = record_time(r)
            if t is None or t < since:
                continue
        out.append(r)
    return out


def _names(value: Any) -> str:
    if isinstance(value, list) and value:
        return ",".join(str(v) for v in value)
    return "-"


def format_delivery(record: dict[str, Any]) -> str:
    """One line per delivery.

    >>> line = format_delivery({"time": "2026-11-24T21:09:12.000Z", "alert_id": "wf-1",
    ...     "version": 2, "agency": "ctpu", "agreement": "CT-JOINT-2026", "kind": "alert",
    ...     "shared": ["domains", "severity"], "pseudonymised": ["entities.id"],
    ...     "redacted": ["detections.reason"]})
    >>> line[:56]
    '2026-11-24T21:09:12.000Z  wf-1 v2  ctpu  CT-JOINT-2026  '
    >>> line[56:]
    'shared=domains,severity  pseudonymised=entities.id  redacted=detections.reason'
    """
    kind = record.get("kind")
    what = f"v{record.get('version')}" if kind == "alert" else f"({kind} notice)"
    return (
        f"{record.get('time')}  {record.get('alert_id')} {what}  {record.get('agency')}  "
        f"{record.get('agreement')}  shared={_names(record.get('shared'))}  "
        f"pseudonymised={_names(record.get('pseudonymised'))}  "
        f"redacted={_names(record.get('redacted'))}"
    )


def verify_report(
    entries: Sequence[Entry],
    whole_topic: bool = True,
    anchors: Sequence[Any] | None = None,
    key: bytes | None = None,
    now: float | None = None,
    grace: float = DEFAULT_GRACE_SECONDS,
) -> tuple[list[str], list[dict[str, Any]], bool]:
    """Check the chains of ``entries`` (in topic order); return (lines, problems, ok).

    Each problem is ``{"chain", "partition", "offset", "seq", "problem"}``, ``problem``
    starting with ``altered``, ``missing``, ``reordered`` or ``unreadable``.

    ``whole_topic``: ``entries`` are the whole topic (the audit topic is never deleted
    from: ``retention_ms: -1``), so a chain whose first record is not seq 0 lost its
    head, which :func:`~watchfloor.alerts.audit.verify` alone accepts (it also checks
    chains read from the middle).

    ``anchors`` (the decoded anchor topic) with ``key``: also check the chains against
    their signed heads (:func:`watchfloor.alerts.anchors.check`); problems ``truncated``,
    ``unanchored``, ``foreign`` and ``forged anchor``, and notes (lines ``note:``) that
    do not fail verification.

    >>> from watchfloor.alerts.audit import AuditChain
    >>> c = AuditChain("w0")
    >>> recs = [c.append(alert_id=f"wf-{i}", version=1, agency="cert", agreement="C-1",
    ...     shared=(), pseudonymised=(), redacted=(), time=0.0) for i in range(3)]
    >>> lines, problems, ok = verify_report([Entry(0, i, r) for i, r in enumerate(recs)])
    >>> print("\\n".join(lines))
    chain w0: 3 records, seq 0..2: intact
    anchors not checked: truncated tails and appended records go unseen
    OK: 3 records in 1 chain, no problems
    >>> lines, problems, ok = verify_report([Entry(0, 0, recs[0]), Entry(0, 2, recs[2])])
    >>> print("\\n".join(lines))
    chain w0: 2 records, seq 0..2: 1 problem
      partition 0 offset 2: missing seq 1..1 before seq 2 in chain 'w0'
    anchors not checked: truncated tails and appended records go unseen
    FAILED: 1 problem in 1 of 1 chain
    >>> print(verify_report([Entry(0, 1, recs[1]), Entry(0, 2, recs[2])])[0][1])
      partition 0 offset 1: missing seq 0..0 at the start of chain 'w0'
    """
    readable = [e for e in entries if e.record is not None]
    problems: list[dict[str, Any]] = [
        {
            "chain": None,
            "partition": e.partition,
            "offset": e.offset,
            "seq": None,
            "problem": "unreadable (not a JSON object)",
        }
        for e in entries
        if e.record is None
    ]
    for text in verify([e.record for e in readable]):  # type: ignore[misc]
        m = _POSITION.match(text)
        if m is None:  # verify() always names a position; keep anything else verbatim
            problems.append(
                {"chain": None, "partition": None, "offset": None, "seq": None, "problem": text}
            )
            continue
        e = readable[int(m.group(1))]
        rec = e.record or {}
        problems.append(
            {
                "chain": rec.get("chain"),
                "partition": e.partition,
                "offset": e.offset,
                "seq": rec.get("seq"),
                "problem": m.group(2),
            }
        )
    notes: list[dict[str, Any]] = []
    if anchors is not None and key is not None:
        at = time.time() if now is None else now
        for f in check([e.record for e in readable], anchors, key, at, grace):
            e = readable[f.position] if f.position is not None else None
            (notes if f.note else problems).append(
                {
                    "chain": f.chain,
                    "partition": None if e is None else e.partition,
                    "offset": None if e is None else e.offset,
                    "seq": f.seq,
                    "problem": f.problem,
                }
            )
    chains: dict[Any, list[Any]] = {}
    for e in readable:
        rec = e.record or {}
        seqs = chains.setdefault(rec.get("chain"), [])
        if whole_topic and not seqs and type(rec.get("seq")) is int and rec["seq"] > 0:
            problems.append(
                {
                    "chain": rec.get("chain"),
                    "partition": e.partition,
                    "offset": e.offset,
                    "seq": rec["seq"],
                    "problem": f"missing seq 0..{rec['seq'] - 1} at the start of chain "
                    f"{rec.get('chain')!r}",
                }
            )
        seqs.append(rec.get("seq"))
    by_chain: dict[Any, list[dict[str, Any]]] = {}
    problems.sort(key=lambda p: (p["partition"] is None, p["partition"] or 0, p["offset"] or 0))
    for p in problems:
        by_chain.setdefault(p["chain"], []).append(p)
    notes_by_chain: dict[Any, list[dict[str, Any]]] = {}
    for n in notes:
        notes_by_chain.setdefault(n["chain"], []).append(n)
    lines = []
    for chain in sorted(set(chains) | {p["chain"] for p in problems if p["chain"]}, key=str):
        seqs = [s for s in chains.get(chain, []) if type(s) is int]
        span = f"seq {min(seqs)}..{max(seqs)}" if seqs else "no seq"
        found = by_chain.get(chain, [])
        status = "intact" if not found else _plural(len(found), "problem")
        n_recs = _plural(len(chains.get(chain, [])), "record")
        lines.append(f"chain {chain}: {n_recs}, {span}: {status}")
        lines += [f"  {_where(p)}{p['problem']}" for p in found]
        lines += [f"  note: {_where(n)}{n['problem']}" for n in notes_by_chain.get(chain, [])]
    if None not in chains and by_chain.get(None):  # unreadable messages belong to no chain
        lines.append(f"unreadable: {_plural(len(by_chain[None]), 'message')}")
        lines += [f"  {_where(p)}{p['problem']}" for p in by_chain[None]]
    if anchors is None:
        lines.append("anchors not checked: truncated tails and appended records go unseen")
    else:
        lines.append(f"anchors: {_plural(len(anchors), 'anchor')} checked")
    ok = not problems
    n_chains = _plural(len(chains), "chain")
    if ok:
        lines.append(f"OK: {_plural(len(readable), 'record')} in {n_chains}, no problems")
    else:
        bad = len({p["chain"] for p in problems})
        lines.append(f"FAILED: {_plural(len(problems), 'problem')} in {bad} of {n_chains}")
    return lines, problems, ok


def _where(p: dict[str, Any]) -> str:
    if p["partition"] is None:
        return ""
    return f"partition {p['partition']} offset {p['offset']}: "


def _plural(n: int, word: str) -> str:
    """
    >>> _plural(1, "delivery"), _plural(2, "delivery"), _plural(0, "chain")
    ('1 delivery', '2 deliveries', '0 chains')
    """
    if n == 1:
        return f"{n} {word}"
    return f"{n} {word[:-1]}ies" if word.endswith("y") else f"{n} {word}s"


def decode_entry(partition: int, offset: int, value: bytes | None) -> Entry:
    try:
        rec = orjson.loads(value) if value is not None else None
    except orjson.JSONDecodeError:
        rec = None
    return Entry(partition, offset, rec if type(rec) is dict else None)


async def read_audit(
    bootstrap: str,
    topic: str,
    since: float | None = None,
    security: dict[str, Any] | None = None,
) -> list[Entry] | None:
    """Every message of ``topic`` up to its current end, partition by partition (so each
    chain, keyed to one partition, stays in order); None if the topic does not exist.

    With ``since`` (epoch s), each partition starts at the first message whose Kafka
    timestamp is at or after ``since`` minus :data:`SEEK_MARGIN_SECONDS`.
    """
    from watchfloor.kafka.clients import assigned_consumer

    consumer = await assigned_consumer(
        bootstrap, topic, from_beginning=True, **({"security": security} if security else {})
    )
    if consumer is None:
        return None
    try:
        tps = sorted(consumer.assignment(), key=lambda tp: tp.partition)
        ends = await consumer.end_offsets(tps)
        if since is not None:
            ms = max(0, int((since - SEEK_MARGIN_SECONDS) * 1000))
            found = await consumer.offsets_for_times({tp: ms for tp in tps})
            for tp in tps:
                ot = found.get(tp)
                consumer.seek(tp, ot.offset if ot is not None else ends[tp])
        per_partition: dict[int, list[Entry]] = {tp.partition: [] for tp in tps}
        while True:
            pending = [tp for tp in tps if await consumer.position(tp) < ends[tp]]
            if not pending:
                break
            batch = await consumer.getmany(*pending, timeout_ms=1000, max_records=5000)
            for tp, records in batch.items():
                for r in records:
                    if r.offset < ends[tp]:
                        per_partition[tp.partition].append(
                            decode_entry(tp.partition, r.offset, r.value)
                        )
    finally:
        await consumer.stop()
    return [e for p in sorted(per_partition) for e in per_partition[p]]


# -- command line ---------------------------------------------------------------------
def _settings_and_config(args: argparse.Namespace) -> tuple[Any, Any]:
    from pathlib import Path

    from watchfloor.config import load_config
    from watchfloor.settings import Settings

    s = Settings.from_env()
    if getattr(args, "topics_file", None):
        s = Settings(**{**s.__dict__, "topics_file": Path(args.topics_file)})
    return s, load_config(s.topics_file)


def _security(settings: Any) -> dict[str, Any]:
    try:
        from watchfloor.kafka.security import client_kwargs
    except ImportError:  # a build without Kafka authentication support
        return {}
    kwargs = client_kwargs(settings)
    return {} if kwargs == {"security_protocol": "PLAINTEXT"} else kwargs


def cmd_audit(args: argparse.Namespace) -> int:
    settings, cfg = _settings_and_config(args)
    topic = cfg.topic("audit").name
    if args.action == "verify":
        anchors_topic = next((t.name for t in cfg.topics if t.role == "anchors"), None)
        key = None
        if not args.no_anchors:
            if anchors_topic is None:
                print(
                    f"error: {cfg.source} has no topic with role anchors: tails cannot be "
                    "checked (add audit.anchors, or pass --no-anchors)",
                    file=sys.stderr,
                )
                return 2
            try:
                key = audit_key(settings)
            except ValueError as exc:  # a weak secret: the message names the variable
                print(f"error: {exc}", file=sys.stderr)
                return 2
            if key is None:
                print(
                    "error: no audit key: set WATCHFLOOR_AUDIT_KEY (hex) or "
                    "WATCHFLOOR_PSEUDONYM_KEY as the worker has it (or pass --no-anchors)",
                    file=sys.stderr,
                )
                return 2
        security = _security(settings)
        started = time.time()  # anchors younger than this may vouch for records not read
        entries = asyncio.run(read_audit(settings.bootstrap_servers, topic, security=security))
        if entries is None:
            print(f"error: topic {topic!r} does not exist", file=sys.stderr)
            return 2
        anchors = None
        if key is not None and anchors_topic is not None:
            # Read after the records: every anchor of a record read is then read too.
            found = asyncio.run(
                read_audit(settings.bootstrap_servers, anchors_topic, security=security)
            )
            if found is None:
                print(f"error: topic {anchors_topic!r} does not exist", file=sys.stderr)
                return 2
            anchors = [e.record for e in found]
        lines, problems, ok = verify_report(
            entries, anchors=anchors, key=key, now=started, grace=args.grace
        )
        if args.json:
            print(
                orjson.dumps(
                    {"topic": topic, "records": len(entries), "ok": ok, "problems": problems,
                     "anchors": None if anchors is None else len(anchors),
                     "notes": [x.strip()[len("note: "):] for x in lines
                               if x.startswith("  note: ")]}
                ).decode()
            )
        else:
            print(f"{topic}: {_plural(len(entries), 'message')}")
            # Record fields are quoted in the report: escaped for the terminal.
            print("\n".join(escape(line) for line in lines))
        return 0 if ok else 1

    agencies = [a.name for a in cfg.agencies]
    if args.agency is not None and args.agency not in agencies:
        print(
            f"error: unknown agency {args.agency!r}; agencies: {', '.join(agencies)}",
            file=sys.stderr,
        )
        return 2
    try:
        since = parse_since(args.since)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    entries = asyncio.run(
        read_audit(settings.bootstrap_servers, topic, since, security=_security(settings))
    )
    if entries is None:
        print(f"error: topic {topic!r} does not exist", file=sys.stderr)
        return 2
    records = select(entries, args.agency, since)
    for r in records:
        if args.json:
            sys.stdout.write(escape_json(orjson.dumps(r).decode()) + "\n")
        else:
            print(escape(format_delivery(r)))
    if not args.json:
        who = args.agency or "all agencies"
        print(
            f"{_plural(len(records), 'delivery')} to {who} since "
            f"{datetime.fromtimestamp(since).astimezone().isoformat(timespec='seconds')}",
            file=sys.stderr,
        )
    return 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``audit`` to the ``watchfloor`` command line's subparsers."""
    p = subparsers.add_parser(
        "audit",
        help="what was shared with whom under which agreement; `audit verify` checks chains",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    p.add_argument(
        "action",
        nargs="?",
        choices=["list", "verify"],
        default="list",
        help="list deliveries (default) or verify the hash chains of the whole topic",
    )
    p.add_argument(
        "--agency", help="only deliveries to this agency (list; default: all agencies)"
    )
    p.add_argument(
        "--since",
        default="24h",
        help="30m, 24h, 7d or an RFC 3339 time (list; default 24h)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--no-anchors",
        action="store_true",
        help="verify: skip the check against audit.anchors (tails and foreign chains unseen)",
    )
    p.add_argument(
        "--grace",
        type=float,
        default=DEFAULT_GRACE_SECONDS,
        help=f"verify: seconds a new record may await its anchor (default "
        f"{DEFAULT_GRACE_SECONDS:g})",
    )
    p.set_defaults(func=cmd_audit)
    return p


__all__ = [
    "Entry",
    "add_parser",
    "cmd_audit",
    "format_delivery",
    "parse_since",
    "read_audit",
    "select",
    "verify_report",
]
