"""Anchors for the audit trail: signed chain heads that the chain's writer cannot unsay.

A hash chain proves that records were not altered, removed from the middle or
reordered, but anyone able to write the audit topic can append records (the hash needs no
key) or write a whole new chain, and records cut off the end leave no trace. So after
every batch of audit records it published, the worker publishes each chain's head to
``audit.anchors`` (role ``anchors``)::

    {"chain": "alerts-0-1a2b3c4d", "seq": 41, "hash": "<record 41's hash>",
     "time": "2026-11-24T21:09:12.000Z", "sig": "<HMAC-SHA256 with the audit key>"}

The worker principal may only append to that topic (WRITE; no READ, no DELETE), only
oversight reads it. :func:`check` then finds, given the whole audit topic and every
anchor:

* ``forged anchor``: an anchor whose signature does not verify with the audit key;
* ``truncated``: a chain whose records end before its newest anchor (or are gone);
* ``foreign``: a record at an anchored seq whose hash is not the anchored one (a forked
  or rewritten chain), or a chain no anchor vouches for;
* ``unanchored``: records after a chain's newest anchor that are older than the grace
  period. If the very same delivery (agency, alert, version, fields) is recorded in an
  anchored chain, this is what a worker crash between publishing records and their
  anchor leaves (the batch was replayed under the next owner's chain): reported as a
  note, not a problem; the same holds for a chain killed before its first anchor.

The anchors are signed with a key derived for this purpose only (see :func:`anchor_key`):
a holder of the worker's Kafka credentials alone cannot forge them. A holder of the
worker's secrets can; anchors bound what the *Kafka principal* can do, not a compromised
worker host.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from watchfloor.alerts.audit import AuditChain
from watchfloor.alerts.correlation import rfc3339

ANCHOR_LABEL = b"watchfloor/audit-anchor/v1"
MIN_AUDIT_KEY_BYTES = 32
# Records this much younger than the verification time may still await their anchor
# (published right after them, in the next round trip).
DEFAULT_GRACE_SECONDS = 60.0
# What a delivery record says, for recognising the same delivery in another chain.
_CONTENT = ("kind", "alert_id", "version", "agency", "agreement", "shared", "pseudonymised",
            "redacted")


def anchor_key(master: bytes) -> bytes:
    """The audit-anchor signing key derived from the worker's secret, for builds without
    :mod:`watchfloor.keys` (which :func:`audit_key` prefers): a domain-separated HMAC of
    the secret, so the pseudonym key itself never signs.

    >>> anchor_key(b"k" * 32).hex()[:16]
    '27069f0d2295fb44'
    """
    return hmac.digest(master, ANCHOR_LABEL, "sha256")


def audit_key(settings: Any, env: Any = None) -> bytes | None:
    """The anchors' signing key, the same for the worker and ``watchfloor audit verify``:

    1. ``WATCHFLOOR_AUDIT_KEY`` (hex, >= 32 bytes), so oversight can verify without the
       worker's master secret (set the same value on the worker);
    2. else the ``audit`` key of :mod:`watchfloor.keys` (per-purpose keys derived from
       the master secret, issue 9 item 5) when that module is installed;
    3. else :func:`anchor_key` of the worker's secret (``WATCHFLOOR_PSEUDONYM_KEY`` or
       the key file in the state dir).

    None if no secret is configured or on disk (a verifier never generates one). Raises
    ValueError (``WeakKeyError``) for a weak secret.
    """
    import os

    env = os.environ if env is None else env
    given = env.get("WATCHFLOOR_AUDIT_KEY", "").strip()
    if given:
        try:
            key = bytes.fromhex(given)
        except ValueError:
            key = b""
        if len(key) < MIN_AUDIT_KEY_BYTES:
            raise _weak_key_error()(
                f"WATCHFLOOR_AUDIT_KEY must be at least {MIN_AUDIT_KEY_BYTES} bytes as hex; "
                "generate one with: python -c 'import secrets; print(secrets.token_hex(32))'"
            )
        return key
    state = settings.state_dir
    files = [state / "master.key", state / "pseudonym.key"]
    configured = getattr(settings, "master_key", "") or settings.pseudonym_key
    if not configured and not any(f.exists() for f in files):
        return None
    try:
        from watchfloor.keys import load_keys
    except ImportError:
        load_keys = None
    if load_keys is not None:
        return load_keys(settings).audit
    if settings.pseudonym_key:
        return anchor_key(settings.pseudonym_key.encode())
    for f in files:
        try:
            return anchor_key(f.read_text().strip().encode())
        except OSError:
            continue
    return None


def _weak_key_error() -> type[ValueError]:
    # The command line answers WeakKeyError with one line (exit 2); it is a ValueError.
    try:
        from watchfloor.core.keys import WeakKeyError
    except ImportError:
        return ValueError
    return WeakKeyError


def _body(anchor: Mapping[str, Any]) -> bytes:
    return orjson.dumps({k: v for k, v in anchor.items() if k != "sig"},
                        option=orjson.OPT_SORT_KEYS)


def sign(key: bytes, chain: str, seq: int, head: str, t: float) -> dict[str, Any]:
    """The anchor of ``chain`` whose record ``seq`` has hash ``head``, at time ``t``.

    >>> a = sign(b"k" * 32, "w0", 4, "ab" * 32, 0.0)
    >>> a["chain"], a["seq"], a["time"], valid(b"k" * 32, a), valid(b"x" * 32, a)
    ('w0', 4, '1970-01-01T00:00:00.000Z', True, False)
    """
    anchor: dict[str, Any] = {"chain": chain, "seq": seq, "hash": head, "time": rfc3339(t)}
    anchor["sig"] = hmac.new(key, _body(anchor), hashlib.sha256).hexdigest()
    return anchor


def valid(key: bytes, anchor: Any) -> bool:
    """Whether ``anchor`` is well formed and signed with ``key``."""
    if type(anchor) is not dict or type(anchor.get("sig")) is not str:
        return False
    if type(anchor.get("chain")) is not str or type(anchor.get("seq")) is not int:
        return False
    want = hmac.new(key, _body(anchor), hashlib.sha256).hexdigest()
    return hmac.compare_digest(want, anchor["sig"])


class Anchorer:
    """Signs the heads of audit chains that moved since their last anchor (worker side).

    >>> c = AuditChain("w0")
    >>> _ = c.append(alert_id="wf-1", version=1, agency="cert", agreement="C", shared=(),
    ...              pseudonymised=(), redacted=(), time=0.0)
    >>> an = Anchorer(b"k" * 32)
    >>> [(a["chain"], a["seq"]) for a in an.heads([c], 1.0)], an.heads([c], 2.0)
    ([('w0', 0)], [])
    """

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._anchored: dict[str, int] = {}  # chain -> seq of its last anchor

    def __reduce__(self) -> Any:
        raise TypeError("Anchorer holds key material")

    def heads(self, chains: Iterable[AuditChain], t: float) -> list[dict[str, Any]]:
        """Anchors for every chain with records not yet anchored."""
        out = []
        seen: dict[str, int] = {}
        for c in chains:
            last = c.seq - 1
            if last < 0:
                continue
            seen[c.chain] = last
            if self._anchored.get(c.chain) != last:
                out.append(sign(self._key, c.chain, last, c.last_hash, t))
        # Only chains still written are remembered: bounded by the stages held.
        self._anchored = seen
        return out


@dataclass(frozen=True)
class Finding:
    """One result of :func:`check`; ``note`` findings do not fail verification."""

    chain: str | None
    position: int | None  # index into the records given to check()
    seq: int | None
    problem: str
    note: bool = False


def _time(value: Any) -> float | None:
    if type(value) is not str:
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


def check(
    records: Sequence[dict[str, Any] | None],
    anchors: Sequence[Any],
    key: bytes,
    now: float,
    grace: float = DEFAULT_GRACE_SECONDS,
) -> list[Finding]:
    """Check audit ``records`` (the whole topic, in order; None: unreadable) against
    ``anchors`` (the whole anchor topic, decoded; anything else counts as forged).

    >>> c = AuditChain("w0")
    >>> recs = [c.append(alert_id=f"wf-{i}", version=1, agency="cert", agreement="C",
    ...     shared=(), pseudonymised=(), redacted=(), time=0.0) for i in range(3)]
    >>> k = b"k" * 32
    >>> check(recs, [sign(k, "w0", 2, recs[2]["hash"], 1.0)], k, now=1e6)
    []
    >>> [f.problem for f in check(recs[:2], [sign(k, "w0", 2, recs[2]["hash"], 1.0)], k, 1e6)]
    ["truncated: chain 'w0' ends at seq 1, but its newest anchor, of \
1970-01-01T00:00:01.000Z, vouches for seq 2"]
    """
    findings: list[Finding] = []
    heads: dict[str, dict[int, tuple[str, str]]] = {}  # chain -> seq -> (hash, time)
    for i, a in enumerate(anchors):
        if not valid(key, a):
            chain = a.get("chain") if type(a) is dict else None
            findings.append(Finding(
                chain if type(chain) is str else "(anchors)", None, None,
                f"forged anchor (anchor #{i}: its signature does not verify with the audit "
                "key)",
            ))
            continue
        heads.setdefault(a["chain"], {})[a["seq"]] = (str(a.get("hash")), str(a.get("time")))

    by_chain: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for pos, r in enumerate(records):
        if r is not None and type(r.get("seq")) is int:
            by_chain.setdefault(str(r.get("chain")), []).append((pos, r))

    def settled_anchor(anchored: Mapping[int, tuple[str, str]], top: int) -> int | None:
        # The newest anchor beyond seq ``top`` older than the grace period: records read
        # a moment ago may have been anchored since, with their anchor read after them.
        old = [s for s, (_h, t) in anchored.items()
               if s > top and (_time(t) or float("inf")) < now - grace]
        return max(old, default=None)

    def content(r: Mapping[str, Any]) -> bytes:
        return orjson.dumps([r.get(k) for k in _CONTENT])

    anchored_content: set[bytes] = set()
    tails: list[tuple[str, list[tuple[int, dict[str, Any]]], int | None]] = []
    for chain, recs in by_chain.items():
        anchored = heads.get(chain, {})
        newest = max(anchored, default=None)
        by_seq = {r["seq"]: (pos, r) for pos, r in recs}
        top = max(by_seq)
        for seq, (h, t) in sorted(anchored.items()):
            if seq in by_seq:
                pos, r = by_seq[seq]
                if r.get("hash") != h:
                    findings.append(Finding(
                        chain, pos, seq,
                        f"foreign: seq {seq} of chain {chain!r} is not the record anchored "
                        f"at {t} (a forked or rewritten chain)",
                    ))
        beyond = settled_anchor(anchored, top)
        if beyond is not None:
            findings.append(Finding(
                chain, by_seq[top][0], top,
                f"truncated: chain {chain!r} ends at seq {top}, but its newest anchor, of "
                f"{anchored[beyond][1]}, vouches for seq {beyond}",
            ))
        for _pos, r in recs:
            if newest is not None and r["seq"] <= newest:
                anchored_content.add(content(r))
        tail = [(pos, r) for pos, r in recs if newest is None or r["seq"] > newest]
        if tail:
            tails.append((chain, tail, newest))
    for chain, seqs in heads.items():
        seq = settled_anchor(seqs, -1)
        if chain not in by_chain and seq is not None:
            findings.append(Finding(
                chain, None, seq,
                f"truncated: chain {chain!r}, anchored up to seq {seq} at {seqs[seq][1]}, "
                "has no records in the topic",
            ))

    for chain, tail, newest in tails:
        # Young: recorded within the grace period of now. A record's time is written by
        # whoever wrote the record, so one dated in the future is not young: it is checked.
        settled = [(pos, r) for pos, r in tail
                   if not now - grace <= (_time(r.get("time")) or float("-inf")) <= now + grace]
        if not settled:
            continue  # young records: their anchor is on its way
        # A crash between a batch's records and its anchor leaves a tail (or, on a chain's
        # first batch, a whole chain) that the next owner replayed into its own chain:
        # the same deliveries, anchored there. A copy of real deliveries is no forgery.
        replayed = [x for x in settled if content(x[1]) in anchored_content]
        alone = [x for x in settled if x not in replayed]
        after = "no anchor vouches for it" if newest is None else f"after seq {newest}"
        first, last = settled[0][1]["seq"], settled[-1][1]["seq"]
        if alone:
            what = (f"chain {chain!r}: no anchor vouches for it" if newest is None
                    else f"seq {alone[0][1]['seq']}..{alone[-1][1]['seq']} of chain {chain!r} "
                    f"written after its newest anchor (seq {newest})")
            kind = "foreign" if newest is None else "unanchored"
            findings.append(Finding(
                chain, alone[0][0], alone[0][1]["seq"],
                f"{kind}: {what}; {len(alone)} record(s) recording deliveries found in no "
                "anchored chain (appended by someone other than the worker)",
            ))
        if replayed:
            findings.append(Finding(
                chain, replayed[0][0], replayed[0][1]["seq"],
                f"unanchored seq {first}..{last} ({after}) repeat deliveries recorded in "
                "anchored chains: what a worker crash before anchoring leaves",
                note=True,
            ))
    return findings


__all__ = ["Anchorer", "Finding", "anchor_key", "audit_key", "check", "sign", "valid"]
