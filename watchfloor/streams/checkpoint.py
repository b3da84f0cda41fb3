"""Worker state checkpointed to a compacted Kafka topic, so a restarted worker, or the one
that takes over a partition, resumes with what the previous owner had learnt.

Each named state (``score.network.2``, ``alerts.0``) is pickled, compressed and written as
chunks under one of two slots, then a manifest for that slot. Writes alternate between
slots, so a crash halfway through a checkpoint leaves the previous one intact.

Trust (issue 9.5):

* The manifest is signed as a whole — name, slot, generation, chunk count, size, the
  blob's SHA-256, the offsets and the time — with the *checkpoint* key, a key derived for
  this purpose only from the worker's master secret (:mod:`watchfloor.core.keys`). A
  re-published manifest with an altered ``next`` offset (which made a restarted worker
  skip every later event) no longer verifies; nor does one signed with the pseudonym key
  or under the version-1 scheme, which left the offsets unsigned.
* State is read back with a restricted unpickler: only classes of watchfloor's detector,
  alert, core and config modules, of river, of the installed detector plugins, and an
  explicit list of builtins and standard containers can be named; functions cannot
  (except two reconstructors of standard types). So even a record signed with the right
  key cannot make the worker call ``os.system``, ``eval`` or ``subprocess.Popen``.

Semantics: a checkpoint is taken after a batch has been published and acknowledged; the
consumer offsets Faust commits move independently. After a crash the new owner restores
the last checkpoint and resumes from the last committed offset: events between the two are
either learnt twice or not at all, a bounded and documented imprecision of online state —
never a lost or duplicated input event (offsets govern those).
"""

from __future__ import annotations

import hashlib
import hmac
import io
import pickle
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

CHUNK = 512 * 1024
SLOTS = ("a", "b")
VERSION = 2
_SIG_LABEL = b"watchfloor/checkpoint-manifest/v2\x00"
#: A decompressed state larger than this is refused (a compression bomb is not state).
MAX_STATE_BYTES = 1 << 30
MAX_CHUNKS = MAX_STATE_BYTES // 1024

#: Modules whose classes (never functions) a checkpoint may name.
ALLOWED_PREFIXES = (
    "watchfloor.detectors",
    "watchfloor.alerts",
    "watchfloor.core",
    "watchfloor.config",
    "river",
)
#: Everything else a checkpoint may name, one by one.
ALLOWED_GLOBALS = frozenset(
    {("builtins", n) for n in (
        "bool", "bytearray", "bytes", "complex", "dict", "float", "frozenset", "int",
        "list", "object", "range", "set", "slice", "str", "tuple",
    )}
    | {("collections", n) for n in ("Counter", "OrderedDict", "defaultdict", "deque")}
    | {
        ("array", "array"),
        ("array", "_array_reconstructor"),  # rebuilds an array from bytes, nothing else
        ("copyreg", "_reconstructor"),  # object.__new__ + base.__init__ of allowed types
        ("datetime", "date"),
        ("datetime", "datetime"),
        ("datetime", "timedelta"),
        ("datetime", "timezone"),
        ("decimal", "Decimal"),
        ("fractions", "Fraction"),
        ("functools", "partial"),  # its callable must itself be allowed
        ("random", "Random"),
    }
    # numpy arrays (value_anomaly's windows): dtypes and arrays rebuilt from raw bytes.
    # An object array's elements are unpickled through this same allow-list.
    | {("numpy", n) for n in ("dtype", "ndarray")}
    | {
        (f"numpy.{core}.{module}", n)
        for core in ("core", "_core")
        for module, n in (
            ("numeric", "_frombuffer"),
            ("multiarray", "_reconstruct"),
            ("multiarray", "scalar"),
        )
    }
)


class CheckpointRefused(pickle.UnpicklingError):
    """A verified checkpoint names something it may not (never unpickled further)."""


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, prefixes: tuple[str, ...]) -> None:
        super().__init__(io.BytesIO(data))
        self._prefixes = prefixes

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED_GLOBALS:
            return super().find_class(module, name)
        # Dotted names reach attributes of attributes (``Cls.method.__globals__``).
        if "." not in name and not name.startswith("__") and _under(module, self._prefixes):
            obj = super().find_class(module, name)
            # A class defined there: not a function, nor a name imported from elsewhere
            # (``from subprocess import Popen`` in an allowed module stays refused).
            if isinstance(obj, type) and obj.__module__ == module:
                return obj
        raise CheckpointRefused(f"checkpoint names {module}.{name}: not an allowed class")

    def persistent_load(self, pid: Any) -> Any:
        raise CheckpointRefused("checkpoint uses persistent ids")


def _under(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def restricted_loads(data: bytes, extra_prefixes: Iterable[str] = ()) -> Any:
    """Unpickle ``data`` allowing only the classes described in the module doc (plus
    classes of the modules under ``extra_prefixes``); raise CheckpointRefused otherwise.

    >>> import os, pickle
    >>> class Evil:
    ...     def __reduce__(self):
    ...         return (os.system, ("echo pwned",))
    >>> restricted_loads(pickle.dumps(Evil()))
    Traceback (most recent call last):
    ...
    watchfloor.streams.checkpoint.CheckpointRefused: checkpoint names posix.system: not an \
allowed class
    >>> from collections import deque
    >>> restricted_loads(pickle.dumps({"q": deque([1, 2], maxlen=3)}))
    {'q': deque([1, 2], maxlen=3)}
    """
    return _RestrictedUnpickler(data, ALLOWED_PREFIXES + tuple(extra_prefixes)).load()


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

    def seal(
        self, name: str, blob: bytes, offsets: dict[str, int] | None = None
    ) -> list[tuple[bytes, bytes]]:
        """:meth:`encode` of a state already pickled and compressed (``blob``)."""
        gen, slot = self.last.get(name, (0, SLOTS[1]))
        gen += 1
        slot = SLOTS[0] if slot == SLOTS[1] else SLOTS[1]
        chunks = [blob[i : i + self.chunk_size] for i in range(0, len(blob), self.chunk_size)]
        out = [(f"c|{name}|{slot}|{i}".encode(), c) for i, c in enumerate(chunks)]
        manifest: dict[str, Any] = {
            "v": VERSION,
            "name": name,
            "slot": slot,
            "gen": gen,
            "chunks": len(chunks),
            "size": len(blob),
            "sha256": hashlib.sha256(blob).hexdigest(),
            "offsets": dict(offsets or {}),
            "time": time.time(),
        }
        manifest["sig"] = self.sign(manifest)
        out.append((f"m|{name}|{slot}".encode(), orjson.dumps(manifest)))
        self.last[name] = (gen, slot)
        return out

    def verified(self, key: bytes, value: bytes) -> dict[str, Any] | None:
        """The manifest in record (``key``, ``value``) if it is well-formed, signed with
        our key, and stored under its own name and slot; else None."""
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
        if key != f"m|{name}|{slot}".encode() or slot not in SLOTS:
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
        topic's records, in topic order."""
        latest: dict[bytes, bytes | None] = {}
        for key, value in records:
            latest[key] = value
        manifests: dict[str, list[dict[str, Any]]] = {}
        for key, value in latest.items():
            if key.startswith(b"m|") and value is not None:
                m = self.verified(key, value)
                if m is not None:
                    manifests.setdefault(m["name"], []).append(m)
        restored: dict[str, Restored] = {}
        for name, candidates in manifests.items():
            if wanted is not None and name not in wanted:
                continue
            for m in sorted(candidates, key=lambda m: m["gen"], reverse=True):
                state = self._load(name, m, latest)
                if state is _MISSING:
                    continue  # torn (crash mid-write), forged or refused: try the other slot
                restored[name] = Restored(name, state, m["gen"], m["offsets"], m["time"])
                self.last[name] = (m["gen"], m["slot"])
                break
        return restored

    def _load(self, name: str, m: dict[str, Any], latest: dict[bytes, bytes | None]) -> Any:
        blob = b"".join(
            latest.get(f"c|{name}|{m['slot']}|{i}".encode()) or b"" for i in range(m["chunks"])
        )
        if len(blob) != m["size"] or not hmac.compare_digest(
            hashlib.sha256(blob).hexdigest(), m["sha256"]
        ):
            return _MISSING
        try:
            inflate = zlib.decompressobj()
            data = inflate.decompress(blob, MAX_STATE_BYTES)
            if inflate.unconsumed_tail:
                raise CheckpointRefused("state larger than MAX_STATE_BYTES")
            return restricted_loads(data, self.allowed)
        except Exception as exc:  # refused, or damaged despite its signature
            self.refused.append((name, str(exc)[:200]))
            return _MISSING


_MISSING = object()


def _nat(v: Any) -> bool:
    return type(v) is int and v >= 0
