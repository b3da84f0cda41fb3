"""Hash-chained audit records: one per delivery, tamper-evident.

Each record carries ``seq`` (0, 1, 2, ... within its ``chain``), ``prev_hash`` (the
previous record's ``hash``; 64 zeros for seq 0) and ``hash``: SHA-256 over the canonical
serialization of the record without ``hash`` (JSON, keys sorted, no whitespace, UTF-8).
Altering a record breaks its hash; deleting or moving one breaks the sequence and the
links. One chain per writer (a worker, a partition): name it with ``chain``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from watchfloor.alerts.correlation import rfc3339

GENESIS = "0" * 64


def canonical(record: dict[str, Any]) -> bytes:
    """The bytes hashed for ``record``: sorted-key compact JSON without ``hash``."""
    body = {k: v for k, v in record.items() if k != "hash"}
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def record_hash(record: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(record)).hexdigest()


class AuditChain:
    """Append-only writer of one audit chain; its state is ``(chain, seq, last_hash)``.

    >>> c = AuditChain("w0")
    >>> r0 = c.append(alert_id="wf-1", version=1, agency="cert", agreement="C-1",
    ...               shared=("severity",), pseudonymised=(), redacted=(), time=1700000000.0)
    >>> r1 = c.append(alert_id="wf-1", version=2, agency="cert", agreement="C-1",
    ...               shared=("severity",), pseudonymised=(), redacted=(), time=1700000001.0)
    >>> (r0["seq"], r1["seq"], r1["prev_hash"] == r0["hash"], verify([r0, r1]))
    (0, 1, True, [])
    >>> AuditChain.from_last(r1).append(alert_id="wf-2", version=1, agency="cert",
    ...     agreement="C-1", shared=(), pseudonymised=(), redacted=(), time=0.0)["seq"]
    2
    """

    __slots__ = ("chain", "last_hash", "seq")

    def __init__(self, chain: str = "audit", seq: int = 0, last_hash: str = GENESIS) -> None:
        self.chain = chain
        self.seq = seq  # the seq the next record gets
        self.last_hash = last_hash

    @classmethod
    def from_last(cls, record: dict[str, Any]) -> AuditChain:
        """Continue a chain after ``record``, its last published record (after a restart)."""
        if record.get("hash") != record_hash(record):
            raise ValueError("the last record does not match its hash; refusing to continue")
        return cls(record["chain"], record["seq"] + 1, record["hash"])

    def __getstate__(self) -> dict[str, Any]:
        return {"chain": self.chain, "seq": self.seq, "last_hash": self.last_hash}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.chain = state["chain"]
        self.seq = state["seq"]
        self.last_hash = state["last_hash"]

    def __repr__(self) -> str:
        head = self.last_hash[:12]
        return f"AuditChain(chain={self.chain!r}, seq={self.seq}, last_hash={head}...)"

    def append(
        self,
        *,
        alert_id: str,
        version: int,
        agency: str,
        agreement: str,
        shared: Sequence[str],
        pseudonymised: Sequence[str],
        redacted: Sequence[str],
        time: float,
        kind: str = "alert",
    ) -> dict[str, Any]:
        """Return the next record (with ``hash``) and advance the chain."""
        rec: dict[str, Any] = {
            "chain": self.chain,
            "seq": self.seq,
            "kind": kind,
            "alert_id": alert_id,
            "version": version,
            "agency": agency,
            "agreement": agreement,
            "shared": list(shared),
            "pseudonymised": list(pseudonymised),
            "redacted": list(redacted),
            "time": rfc3339(time),
            "prev_hash": self.last_hash,
        }
        rec["hash"] = h = record_hash(rec)
        self.seq += 1
        self.last_hash = h
        return rec


def verify(records: Iterable[dict[str, Any]]) -> list[str]:
    """Check records as read from the audit topic; return problems (empty: intact).

    Records of several chains may be interleaved; each chain is checked on its own.
    Positions are 0-based indexes into ``records``. A chain read from the middle (its
    first record is not seq 0) is accepted from that record on.

    Reported: ``altered`` (hash mismatch, or a prev_hash that does not match the record
    before it), ``missing`` (a seq gap whose seqs appear nowhere), ``reordered`` (a seq
    lower than one already seen, or a gap filled later in the input).
    """
    recs = list(records)
    problems: list[str] = []
    seqs_by_chain: dict[Any, set[Any]] = {}
    for r in recs:
        seqs_by_chain.setdefault(r.get("chain"), set()).add(r.get("seq"))
    # chain -> (seq, hash) of the last record in sequence order
    last: dict[Any, tuple[int, str]] = {}
    for pos, r in enumerate(recs):
        chain, seq = r.get("chain"), r.get("seq")
        if type(seq) is not int:
            problems.append(f"position {pos}: altered (seq is not an integer)")
            continue
        stored = r.get("hash")
        if stored != record_hash(r):
            problems.append(f"position {pos}: altered (seq {seq}: hash does not match content)")
        prev = last.get(chain)
        if prev is None:
            if seq == 0 and r.get("prev_hash") != GENESIS:
                problems.append(f"position {pos}: altered (seq 0 does not start from genesis)")
            last[chain] = (seq, str(stored))
            continue
        prev_seq, prev_hash = prev
        if seq <= prev_seq:
            problems.append(
                f"position {pos}: reordered (seq {seq} after seq {prev_seq} in chain {chain!r})"
            )
            continue  # keep checking the rest against the highest seq seen
        if seq > prev_seq + 1:
            gap = range(prev_seq + 1, seq)
            if any(s in seqs_by_chain[chain] for s in gap):
                problems.append(
                    f"position {pos}: reordered (seq {seq} before seq {gap[0]} "
                    f"in chain {chain!r})"
                )
            else:
                problems.append(
                    f"position {pos}: missing seq {gap[0]}..{gap[-1]} before seq {seq} "
                    f"in chain {chain!r}"
                )
        elif r.get("prev_hash") != prev_hash:
            problems.append(
                f"position {pos}: altered (seq {seq}: prev_hash does not match seq {prev_seq})"
            )
        last[chain] = (seq, str(stored))
    return problems


__all__ = ["GENESIS", "AuditChain", "canonical", "record_hash", "verify"]
