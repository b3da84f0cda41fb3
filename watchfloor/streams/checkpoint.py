"""Worker state checkpointed to a compacted Kafka topic, so a restarted worker, or the one
that takes over a partition, resumes with what the previous owner had learnt.

Each named state (``score.network.2``, ``alerts.0``) is pickled, compressed and written as
chunks under one of two slots, then a manifest for that slot. Writes alternate between
slots, so a crash halfway through a checkpoint leaves the previous one intact.

A partition's detector state (issue 12) is written as a base in one slot followed by
*increments* under the same slot, each holding only what changed since the one before
(:mod:`watchfloor.streams.increments`); a new base, in the other slot, once the
increments add up to the base's size or number :data:`MAX_INCREMENTS`. Reading back
applies the unbroken run of increments after the newest base: a crash halfway through
one leaves the state of the one before.

Trust (issue 9.5):

* The manifest is signed as a whole — name, slot, generation, chunk count, size, the
  blob's SHA-256, the offsets and the time, and for an increment its base's generation
  and its place after it — with the *checkpoint* key, a key derived for
  this purpose only from the worker's master secret (:mod:`watchfloor.core.keys`). A
  re-published manifest with an altered ``next`` offset (which made a restarted worker
  skip every later event) no longer verifies; nor does one signed with the pseudonym key
  or under the version-1 scheme, which left the offsets unsigned.
* State is read back with a restricted unpickler (:mod:`watchfloor.streams.safe_pickle`):
  only classes of watchfloor's detector, alert, core and config modules, of river, of the
  installed detector plugins, and an explicit list of builtins and standard containers
  can be named; functions cannot (except two reconstructors of standard types). So even
  a record signed with the right key cannot make the worker call ``os.system``, ``eval``
  or ``subprocess.Popen``.

Semantics: a checkpoint is taken after a batch has been published and acknowledged; the
consumer offsets Faust commits move independently. After a crash the new owner restores
the last checkpoint and resumes from the last committed offset: events between the two are
either learnt twice or not at all, a bounded and documented imprecision of online state —
never a lost or duplicated input event (offsets govern those).
"""

from __future__ import annotations

import hashlib
import hmac
import pickle
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from watchfloor.streams.increments import load_chain
from watchfloor.streams.safe_pickle import (  # noqa: F401  (re-exported)
    ALLOWED_GLOBALS,
    ALLOWED_PREFIXES,
    CheckpointRefused,
    restricted_loads,
)

CHUNK = 512 * 1024
SLOTS = ("a", "b")
VERSION = 2
_SIG_LABEL = b"watchfloor/checkpoint-manifest/v2\x00"
#: A decompressed state larger than this is refused (a compression bomb is not state).
MAX_STATE_BYTES = 1 << 30
MAX_CHUNKS = MAX_STATE_BYTES // 1024
#: Increments after one base at most: a restore reads and applies all of them.
MAX_INCREMENTS = 64


@dataclass
class Restored:
    name: str
    state: Any
    generation: int
    offsets: dict[str, int]
    time: float


def pickle_state(state: object) -> bytes:
    """The first half of :meth:`Checkpointer.encode`: must run where ``state`` is not
    changing (on the event loop)."""
    return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)


def compress(raw: bytes) -> bytes:
    """The second half: zlib releases the GIL, so it may run in a thread."""
    return zlib.compress(raw, 1)


@dataclass(frozen=True)
class Ticket:
    """A checkpoint's place, taken when its state is pickled (see Checkpointer.reserve)."""

    name: str
    generation: int
    slot: str
    base: int  # generation of the base it extends (its own for a base)
    seq: int  # 0 for a base, n for the n-th increment after it
    base_sha: str  # SHA-256 of the base's blob ("" for a base)
    previous: tuple[int, str] | None  # Checkpointer.last before this reservation


@dataclass
class _Chain:
    base: int
    slot: str
    count: int = 0  # increments after the base so far
    size: int = 0  # the base's size once sealed (0: not yet)
    added: int = 0  # the increments' sizes, summed
    sha: str = ""  # the base blob's SHA-256, once sealed


class Checkpointer:
    """Encode states into messages for the checkpoint topic, and decode them back.

    ``key``: the checkpoint-signing key (``watchfloor.keys.load_keys(s).checkpoint``), at
    least 32 bytes. ``allowed_modules``: module prefixes of detector plugins whose
    classes may appear in restored state.
    """

    def __init__(
        self, key: bytes, chunk_size: int = CHUNK, allowed_modules: Iterable[str] = ()
    ) -> None:
        if not isinstance(key, bytes) or len(key) < 32:
            raise ValueError("the checkpoint key must be at least 32 bytes")
        self._key = key
        self.chunk_size = chunk_size
        self.allowed = tuple(allowed_modules)
        # name -> (generation, slot) of the last checkpoint written or restored here
        self.last: dict[str, tuple[int, str]] = {}
        # name -> the base this worker wrote last and the increments after it
        self.chains: dict[str, _Chain] = {}
        # (name, reason) of checkpoints that verified but were refused by the unpickler
        self.refused: list[tuple[str, str]] = []

    def __repr__(self) -> str:
        return f"Checkpointer(states={len(self.last)})"

    def sign(self, body: dict[str, Any]) -> str:
        """The signature of a manifest (every field but ``sig``)."""
        data = _SIG_LABEL + orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
        return hmac.new(self._key, data, "sha256").hexdigest()

    def encode(
        self, name: str, state: object, offsets: dict[str, int] | None = None
    ) -> list[tuple[bytes, bytes]]:
        """Messages (key, value) that store ``state`` under ``name``; manifest last."""
        return self.seal(name, compress(pickle_state(state)), offsets)

    # -- bases and increments ---------------------------------------------------------
    def increment_due(self, name: str) -> bool:
        """Whether the next checkpoint of ``name`` may be an increment: this worker wrote
        its base, and the increments since are fewer than MAX_INCREMENTS and smaller
        than the base (a restore reads at most twice the state)."""
        chain = self.chains.get(name)
        return (
            chain is not None
            and chain.size > 0
            and chain.count < MAX_INCREMENTS
            and chain.added < chain.size
        )

    def reserve(self, name: str, increment: bool) -> Ticket:
        """The place of a checkpoint of ``name`` whose state was just pickled (as an
        increment of the chain if ``increment``), before it is compressed and sealed:
        two checkpoints of one state in flight at once get successive places."""
        previous = self.last.get(name)
        gen, slot = previous or (0, SLOTS[1])
        gen += 1
        chain = self.chains.get(name)
        if increment and chain is not None and chain.sha:
            chain.count += 1
            ticket = Ticket(name, gen, chain.slot, chain.base, chain.count, chain.sha, previous)
        else:
            slot = SLOTS[0] if slot == SLOTS[1] else SLOTS[1]
            self.chains[name] = _Chain(gen, slot)
            ticket = Ticket(name, gen, slot, gen, 0, "", previous)
        self.last[name] = (gen, ticket.slot)
        return ticket

    def abandon(self, ticket: Ticket) -> None:
        """The checkpoint ``ticket`` reserved was not written: its changes are in no
        increment, so none may follow (the next checkpoint is a base), and the last one
        of its name is the one before."""
        self.chains.pop(ticket.name, None)
        if self.last.get(ticket.name) == (ticket.generation, ticket.slot):
            if ticket.previous is None:
                self.last.pop(ticket.name, None)
            else:
                self.last[ticket.name] = ticket.previous

    def forget(self, name: str) -> None:
        """The next checkpoint of ``name`` is a base (its tables' record may be lost)."""
        self.chains.pop(name, None)

    def seal(
        self,
        name: str,
        blob: bytes,
        offsets: dict[str, int] | None = None,
        ticket: Ticket | None = None,
    ) -> list[tuple[bytes, bytes]]:
        """:meth:`encode` of a state already pickled and compressed (``blob``), in the
        place ``ticket`` reserved (default: a base reserved now)."""
        t = ticket or self.reserve(name, False)
        if t.seq:
            prefix, manifest_key = f"d|{name}|{t.slot}|{t.seq}", f"n|{name}|{t.slot}|{t.seq}"
        else:
            prefix, manifest_key = f"c|{name}|{t.slot}", f"m|{name}|{t.slot}"
        chunks = [blob[i : i + self.chunk_size] for i in range(0, len(blob), self.chunk_size)]
        out = [(f"{prefix}|{i}".encode(), c) for i, c in enumerate(chunks)]
        manifest: dict[str, Any] = {
            "v": VERSION,
            "name": name,
            "slot": t.slot,
            "gen": t.generation,
            "chunks": len(chunks),
            "size": len(blob),
            "sha256": hashlib.sha256(blob).hexdigest(),
            "offsets": dict(offsets or {}),
            "time": time.time(),
        }
        if t.seq:
            # Its base by generation and by content: an increment left over from another
            # worker's chain (same slot and generation after a takeover) does not fit.
            manifest["base"], manifest["seq"], manifest["base_sha"] = t.base, t.seq, t.base_sha
        manifest["sig"] = self.sign(manifest)
        out.append((manifest_key.encode(), orjson.dumps(manifest)))
        chain = self.chains.get(name)
        if chain is not None and chain.base == t.base:
            if t.seq:
                chain.added += len(blob)
            else:
                chain.size, chain.sha = len(blob), manifest["sha256"]
        return out

    def verified(self, key: bytes, value: bytes) -> dict[str, Any] | None:
        """The manifest in record (``key``, ``value``) if it is well-formed, signed with
        our key, and stored under its own name, slot and place; else None."""
        try:
            m = orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(m, dict) or m.get("v") != VERSION:
            return None  # version 1 left the offsets unsigned: never trusted again
        sig = m.pop("sig", None)
        if not isinstance(sig, str) or not hmac.compare_digest(self.sign(m), sig):
            return None
        name, slot = m.get("name"), m.get("slot")
        if "seq" in m:
            if not (
                _nat(m["seq"])
                and m["seq"] >= 1
                and _nat(m.get("base"))
                and isinstance(m.get("base_sha"), str)
            ):
                return None
            expected = f"n|{name}|{slot}|{m['seq']}"
        else:
            expected = f"m|{name}|{slot}"
        if key != expected.encode() or slot not in SLOTS:
            return None
        ok = (
            _nat(m.get("gen"))
            and _nat(m.get("chunks"))
            and 0 < m["chunks"] <= MAX_CHUNKS
            and _nat(m.get("size"))
            and isinstance(m.get("sha256"), str)
            and isinstance(m.get("time"), int | float)
            and isinstance(m.get("offsets"), dict)
            and all(isinstance(k, str) and _nat(v) for k, v in m["offsets"].items())
        )
        return m if ok else None

    def decode(
        self, records: Iterable[tuple[bytes, bytes | None]], wanted: set[str] | None = None
    ) -> dict[str, Restored]:
        """The newest verifiable state per name (only ``wanted`` names, if given) from the
        topic's records, in topic order: its newest base and the unbroken run of
        increments after it."""
        latest: dict[bytes, bytes | None] = {}
        for key, value in records:
            latest[key] = value
        bases: dict[str, list[dict[str, Any]]] = {}
        # (name, slot, base generation) -> seq -> manifest
        increments: dict[tuple[str, str, int], dict[int, dict[str, Any]]] = {}
        for key, value in latest.items():
            if value is not None and key[:2] in (b"m|", b"n|"):
                m = self.verified(key, value)
                if m is None:
                    continue
                if "seq" in m:
                    run = increments.setdefault((m["name"], m["slot"], m["base"]), {})
                    run[m["seq"]] = m
                else:
                    bases.setdefault(m["name"], []).append(m)
        restored: dict[str, Restored] = {}
        for name, candidates in bases.items():
            if wanted is not None and name not in wanted:
                continue
            for m in sorted(candidates, key=lambda m: m["gen"], reverse=True):
                run = increments.get((name, m["slot"], m["gen"]), {})
                state, last = self._load(name, m, run, latest)
                if state is _MISSING:
                    continue  # torn (crash mid-write), forged or refused: try the other slot
                restored[name] = Restored(name, state, last["gen"], last["offsets"], last["time"])
                self.last[name] = (last["gen"], m["slot"])
                self.chains.pop(name, None)  # not this worker's chain: a base comes next
                break
        return restored

    def _blob(self, m: dict[str, Any], prefix: str, latest: dict[bytes, bytes | None]) -> bytes:
        blob = b"".join(latest.get(f"{prefix}|{i}".encode()) or b"" for i in range(m["chunks"]))
        if len(blob) != m["size"] or not hmac.compare_digest(
            hashlib.sha256(blob).hexdigest(), m["sha256"]
        ):
            return b""
        return blob

    def _load(
        self,
        name: str,
        m: dict[str, Any],
        run: dict[int, dict[str, Any]],
        latest: dict[bytes, bytes | None],
    ) -> tuple[Any, dict[str, Any]]:
        blob = self._blob(m, f"c|{name}|{m['slot']}", latest)
        if not blob:
            return _MISSING, m
        blobs, manifests = [blob], [m]
        # The increments in order, while each is whole, newer than the one before and
        # made on this very base.
        seq = 1
        while (
            (nxt := run.get(seq)) is not None
            and nxt["gen"] > manifests[-1]["gen"]
            and hmac.compare_digest(nxt["base_sha"], m["sha256"])
        ):
            blob = self._blob(nxt, f"d|{name}|{m['slot']}|{seq}", latest)
            if not blob:
                break  # a crash mid-write: the state as of the increment before
            blobs.append(blob)
            manifests.append(nxt)
            seq += 1
        while True:
            try:
                budget, raws = MAX_STATE_BYTES, []
                for blob in blobs:
                    inflate = zlib.decompressobj()
                    raws.append(inflate.decompress(blob, budget))
                    budget -= len(raws[-1])
                    if inflate.unconsumed_tail or budget <= 0:
                        raise CheckpointRefused("state larger than MAX_STATE_BYTES")
                return load_chain(raws, self.allowed), manifests[len(blobs) - 1]
            except Exception as exc:  # refused, or damaged despite its signature
                self.refused.append((name, str(exc)[:200]))
                failed = getattr(exc, "increment", 0)
                if failed < 1:
                    return _MISSING, m
                del blobs[failed:]  # the state as of the increment before the bad one


_MISSING = object()


def _nat(v: Any) -> bool:
    return type(v) is int and v >= 0
