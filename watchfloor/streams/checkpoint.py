"""Worker state checkpointed to a compacted Kafka topic, so a restarted worker, or the one
that takes over a partition, resumes with what the previous owner had learnt.

Each named state (``score.network.2``, ``alerts.0``) is pickled, compressed and written as
chunks under one of two slots, then a manifest for that slot. Writes alternate between
slots, so a crash halfway through a checkpoint leaves the previous one intact. The
manifest carries an HMAC over the blob made with a key derived from the worker's secret:
state is unpickled only if the signature verifies, so a record forged into the topic is
refused, not executed.

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

CHUNK = 512 * 1024
SLOTS = ("a", "b")


def checkpoint_key(secret: bytes) -> bytes:
    return hmac.digest(secret, b"watchfloor/checkpoint/v1", "sha256")


@dataclass
class Restored:
    name: str
    state: Any
    generation: int
    offsets: dict[str, int]
    time: float


class Checkpointer:
    """Encode states into messages for the checkpoint topic, and decode them back."""

    def __init__(self, secret: bytes, chunk_size: int = CHUNK) -> None:
        self._key = checkpoint_key(secret)
        self.chunk_size = chunk_size
        # name -> (generation, slot) of the last checkpoint written or restored here
        self.last: dict[str, tuple[int, str]] = {}

    def __repr__(self) -> str:
        return f"Checkpointer(states={len(self.last)})"

    def encode(
        self, name: str, state: object, offsets: dict[str, int] | None = None
    ) -> list[tuple[bytes, bytes]]:
        """Messages (key, value) that store ``state`` under ``name``; manifest last."""
        gen, slot = self.last.get(name, (0, SLOTS[1]))
        gen += 1
        slot = SLOTS[0] if slot == SLOTS[1] else SLOTS[1]
        blob = zlib.compress(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL), 1)
        chunks = [blob[i : i + self.chunk_size] for i in range(0, len(blob), self.chunk_size)]
        out = [(f"c|{name}|{slot}|{i}".encode(), c) for i, c in enumerate(chunks)]
        manifest = {
            "name": name,
            "slot": slot,
            "gen": gen,
            "chunks": len(chunks),
            "size": len(blob),
            "offsets": offsets or {},
            "time": time.time(),
            "sig": hmac.new(self._key, _signed(name, slot, gen, blob), "sha256").hexdigest(),
        }
        out.append((f"m|{name}|{slot}".encode(), orjson.dumps(manifest)))
        self.last[name] = (gen, slot)
        return out

    def decode(
        self, records: Iterable[tuple[bytes, bytes | None]], wanted: set[str] | None = None
    ) -> dict[str, Restored]:
        """The newest verifiable state per name (only ``wanted`` names, if given) from the
        topic's records, in topic order."""
        latest: dict[bytes, bytes | None] = {}
        for key, value in records:
            latest[key] = value
        manifests: dict[str, list[dict[str, Any]]] = {}
        for key, value in latest.items():
            if key.startswith(b"m|") and value is not None:
                try:
                    m = orjson.loads(value)
                except orjson.JSONDecodeError:
                    continue
                manifests.setdefault(m.get("name", ""), []).append(m)
        restored: dict[str, Restored] = {}
        for name, candidates in manifests.items():
            if wanted is not None and name not in wanted:
                continue
            for m in sorted(candidates, key=lambda m: m.get("gen", 0), reverse=True):
                blob = b"".join(
                    latest.get(f"c|{name}|{m['slot']}|{i}".encode()) or b""
                    for i in range(m["chunks"])
                )
                expected = hmac.new(self._key, _signed(name, m["slot"], m["gen"], blob), "sha256")
                if len(blob) != m["size"] or not hmac.compare_digest(
                    expected.hexdigest(), str(m.get("sig", ""))
                ):
                    continue  # torn (crash mid-write) or forged: try the other slot
                state = pickle.loads(zlib.decompress(blob))  # signature verified above
                restored[name] = Restored(name, state, m["gen"], m["offsets"], m["time"])
                self.last[name] = (m["gen"], m["slot"])
                break
        return restored


def _signed(name: str, slot: str, gen: int, blob: bytes) -> bytes:
    return f"{name}|{slot}|{gen}|".encode() + hashlib.sha256(blob).digest()
