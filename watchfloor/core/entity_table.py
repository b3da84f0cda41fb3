"""Bounded per-entity state: least-recently-seen eviction plus an idle time-to-live.

Every per-entity table in watchfloor is an :class:`EntityTable`, so memory is bounded by
``max_entities`` however many distinct IPs, accounts or documents pass.
"""

from __future__ import annotations

import contextlib
import os
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

V = TypeVar("V")

# While a checkpoint pickles (see watchfloor.streams.increments): every table pickled in
# full starts recording its changes, so the next checkpoint can hold only those.
_cutting = False
# While a checkpoint is read back: uid -> table, for the increments that follow it.
_restoring: dict[int, EntityTable[Any]] | None = None


@contextlib.contextmanager
def cutting() -> Iterator[None]:
    """Tables pickled in full meanwhile record their changes from now on."""
    global _cutting
    _cutting = True
    try:
        yield
    finally:
        _cutting = False


@contextlib.contextmanager
def restoring() -> Iterator[dict[int, EntityTable[Any]]]:
    """Tables unpickled meanwhile, by uid (what a checkpoint's increments refer to)."""
    global _restoring
    _restoring = tables = {}
    try:
        yield tables
    finally:
        _restoring = None
        # Restored tables are no one's record: the next checkpoint gives them new ids, so
        # no increment of the chain they came from can ever name them again.
        for table in tables.values():
            table._uid = 0


class EntityTable(Generic[V]):
    """A mapping from entity id to state with a size bound and an idle TTL.

    Time is event time (seconds), so replaying old traffic behaves like live traffic.

    >>> t = EntityTable(max_entities=2, ttl_seconds=60)
    >>> t.setdefault("a", 0.0, list).append(1)
    >>> t.setdefault("b", 1.0, list).append(2)
    >>> t.setdefault("c", 2.0, list).append(3)   # evicts "a", the least recently seen
    >>> sorted(t.keys()), t.evicted
    (['b', 'c'], 1)
    >>> _ = t.setdefault("d", 200.0, list)  # "b" and "c" idle > 60 s: expired
    >>> sorted(t.keys()), t.expired
    (['d'], 2)
    """

    __slots__ = (
        "_data", "_moved", "_read", "_removed", "_seen", "_uid",
        "evicted", "expired", "max_entities", "ttl_seconds",
    )  # fmt: skip
    _STATE = ("_data", "_seen", "evicted", "expired", "max_entities", "ttl_seconds", "_uid")

    def __init__(self, max_entities: int = 100_000, ttl_seconds: float = 86_400.0) -> None:
        if max_entities < 1:
            raise ValueError("max_entities must be >= 1")
        self.max_entities = max_entities
        self.ttl_seconds = ttl_seconds
        self._data: OrderedDict[str, V] = OrderedDict()
        self._seen: dict[str, float] = {}
        self.evicted = 0
        self.expired = 0
        self._untracked()

    def _untracked(self) -> None:
        # Changes since the last checkpoint of this table (None: not recorded): keys set
        # or refreshed (moved to the end), keys read (whose value a caller may change in
        # place) and keys gone. Each is bounded: see _gone.
        self._uid = 0
        self._moved: set[str] | None = None
        self._read: set[str] | None = None
        self._removed: set[str] | None = None

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def keys(self) -> Iterator[str]:
        return iter(self._data.keys())

    def items(self) -> Iterator[tuple[str, V]]:
        return iter(self._data.items())

    def get(self, key: str, default: V | None = None) -> V | None:
        """Read without touching (scoring must not change state)."""
        value = self._data.get(key)
        if value is None:
            return default
        if self._read is not None:
            self._read.add(key)  # a learner may change the value it got in place
        return value

    def last_seen(self, key: str) -> float | None:
        return self._seen.get(key)

    def setdefault(self, key: str, now: float, factory: Callable[[], V]) -> V:
        """Return the state for ``key`` (creating it), marking it seen at ``now``."""
        data = self._data
        value = data.get(key)
        if value is None:
            self._expire(now)
            if len(data) >= self.max_entities:
                old, _ = data.popitem(last=False)
                del self._seen[old]
                self.evicted += 1
                if self._removed is not None:
                    self._gone(old)
            value = data[key] = factory()
        else:
            data.move_to_end(key)
        if self._moved is not None:
            self._moved.add(key)
        # Event time can step back a little (out-of-order events); keep the latest.
        seen = self._seen
        if now >= seen.get(key, now):
            seen[key] = now
        return value

    def put(self, key: str, now: float, value: V) -> None:
        self.setdefault(key, now, lambda: value)
        self._data[key] = value

    def pop(self, key: str) -> V | None:
        self._seen.pop(key, None)
        if self._removed is not None and key in self._data:
            self._gone(key)
        return self._data.pop(key, None)

    def _expire(self, now: float) -> None:
        # The first item is the least recently touched; stop at the first fresh one.
        data, seen, cutoff = self._data, self._seen, now - self.ttl_seconds
        while data:
            key = next(iter(data))
            if seen[key] >= cutoff:
                break
            del data[key]
            del seen[key]
            self.expired += 1
            if self._removed is not None:
                self._gone(key)

    # -- checkpoints of the changes only (watchfloor.streams.increments) -----------------
    def _gone(self, key: str) -> None:
        removed = self._removed
        assert removed is not None
        removed.add(key)
        # More keys gone than the table holds: the changes are no smaller than the
        # table. Stop recording (memory stays bounded); the next checkpoint has it all.
        if len(removed) > self.max_entities:
            self._moved = self._read = self._removed = None

    @property
    def uid(self) -> int:
        """Non-zero while the table records its changes since its last checkpoint."""
        return self._uid if self._moved is not None else 0

    def track(self) -> None:
        """Record changes from now on (the table has just been checkpointed in full)."""
        if not self._uid:
            self._uid = int.from_bytes(os.urandom(8)) >> 2 or 1
        self._moved, self._read, self._removed = set(), set(), set()

    def changes(self) -> tuple[Any, ...]:
        """The changes since the last checkpoint, which they restart from: what
        :meth:`apply` makes of the table as it was then to give the table as it is now
        (its order, hence what it evicts and expires next, included)."""
        assert self._moved is not None and self._read is not None and self._removed is not None
        data, seen = self._data, self._seen
        # Keys set or refreshed since and still here are exactly the last ones, in that
        # order: each went to the end when touched, and no other key moves.
        n = sum(1 for k in self._moved if k in data)
        tail = []
        for key in reversed(data):
            if len(tail) == n:
                break
            tail.append((key, data[key], seen[key]))
        tail.reverse()
        moved = self._moved
        read = [(k, data[k]) for k in self._read if k not in moved and k in data]
        removed = [k for k in self._removed if k not in data]
        self.track()
        return (self.evicted, self.expired, removed, read, tail)

    def apply(self, changes: tuple[Any, ...]) -> None:
        """Bring the table up to date with :meth:`changes` recorded since its state."""
        data, seen = self._data, self._seen
        self.evicted, self.expired, removed, read, tail = changes
        for key in removed:
            data.pop(key, None)
            seen.pop(key, None)
        for key, value in read:
            if key in data:
                data[key] = value
        for key, value, t in tail:
            data[key] = value
            data.move_to_end(key)
            seen[key] = t

    def __getstate__(self) -> dict[str, object]:
        if _cutting:
            self.track()
        return {s: getattr(self, s) for s in self._STATE}

    def __setstate__(self, state: dict[str, object]) -> None:
        self._untracked()
        for k, v in state.items():
            setattr(self, k, v)
        if _restoring is not None and self._uid:
            _restoring[self._uid] = self


class Recent(list):  # type: ignore[type-arg]
    """The last ``maxlen`` items appended: a bounded list for per-entity rings.

    A ``deque(maxlen=...)`` allocates a 64-slot block (~600 bytes) however few items it
    holds; most entities of a large deployment are seen once or twice, so a table of
    deques cost ~0.6 kB per entity per ring. A list grows with what it holds; dropping
    the oldest of a few dozen items is a short memmove.

    >>> r = Recent(3)
    >>> for i in range(5):
    ...     r.append(i)
    >>> r, list(reversed(r)), r.maxlen
    ([2, 3, 4], [4, 3, 2], 3)
    """

    __slots__ = ("maxlen",)

    def __init__(self, maxlen: int) -> None:
        super().__init__()
        self.maxlen = maxlen

    def append(self, item: object) -> None:
        list.append(self, item)
        if len(self) > self.maxlen:
            del self[0]

    def __reduce__(self) -> tuple[object, ...]:
        # The class itself rebuilds it (checkpoints may name classes, never functions).
        return (Recent, (self.maxlen,), None, iter(self))
