"""Bounded per-entity state: least-recently-seen eviction plus an idle time-to-live.

Every per-entity table in watchfloor is an :class:`EntityTable`, so memory is bounded by
``max_entities`` however many distinct IPs, accounts or documents pass.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

V = TypeVar("V")


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

    __slots__ = ("_data", "_seen", "evicted", "expired", "max_entities", "ttl_seconds")

    def __init__(self, max_entities: int = 100_000, ttl_seconds: float = 86_400.0) -> None:
        if max_entities < 1:
            raise ValueError("max_entities must be >= 1")
        self.max_entities = max_entities
        self.ttl_seconds = ttl_seconds
        self._data: OrderedDict[str, V] = OrderedDict()
        self._seen: dict[str, float] = {}
        self.evicted = 0
        self.expired = 0

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
        return self._data.get(key, default)

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
            value = data[key] = factory()
        else:
            data.move_to_end(key)
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

    def __getstate__(self) -> dict[str, object]:
        return {s: getattr(self, s) for s in self.__slots__}

    def __setstate__(self, state: dict[str, object]) -> None:
        for k, v in state.items():
            setattr(self, k, v)


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
