"""What the TAXII server serves: one bounded collection of STIX objects per agency.

Each alert an agency received (its own view, read from its alert topic) becomes a STIX
bundle (:func:`watchfloor.alerts.stix.alert_bundle`) whose objects are added to that
agency's collection with a ``date_added``. A new version of an alert re-adds the same
STIX ids with a newer ``modified``: the collection keeps each object's versions and
serves the latest by default, as TAXII's ``match[version]=last``.

``date_added`` is strictly increasing within a collection (the broker's append time,
nudged by a microsecond when two records share a millisecond), so ``added_after``
polling never misses or repeats an object. Bounded: past ``max_entries`` the oldest
entries are dropped.

>>> c = Collection("cert", max_entries=3)
>>> for i in range(4):
...     _ = c.add({"type": "indicator", "id": f"indicator--{i}",
...                 "modified": "2026-01-01T00:00:00Z"}, 1_700_000_000_000 + i)
>>> [e.obj["id"] for e in c.page(None, 10)[0]]
['indicator--1', 'indicator--2', 'indicator--3']
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# Fixed namespace: a collection's id must not change between restarts.
COLLECTION_NS = uuid.UUID("b7a1f6a2-0e0c-5c8e-9a52-3f1d8c0e4b11")


def collection_id(agency: str) -> str:
    return str(uuid.uuid5(COLLECTION_NS, f"watchfloor/taxii/{agency}"))


def taxii_time(us: int) -> str:
    """Microseconds since the epoch as a TAXII timestamp (RFC 3339, UTC, µs)."""
    return datetime.fromtimestamp(us / 1e6, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_taxii_time(value: str) -> int:
    """A TAXII/STIX timestamp as microseconds since the epoch (ValueError if not one)."""
    if not isinstance(value, str) or not value.endswith("Z") or len(value) > 40:
        raise ValueError("timestamps are RFC 3339 in UTC ('…Z')")
    dt = datetime.fromisoformat(value[:-1] + "+00:00")
    return int(dt.timestamp() * 1_000_000)


@dataclass(frozen=True, slots=True)
class Entry:
    seq: int
    added_us: int
    obj: dict[str, Any]

    @property
    def version(self) -> str:
        return str(self.obj.get("modified") or self.obj.get("created") or taxii_time(self.added_us))


class Collection:
    """One agency's objects, in the order they were added."""

    def __init__(self, agency: str, max_entries: int = 100_000) -> None:
        self.agency = agency
        self.id = collection_id(agency)
        self.max_entries = max_entries
        self._entries: OrderedDict[int, Entry] = OrderedDict()  # seq -> entry
        self._latest: dict[str, int] = {}  # STIX id -> seq of its latest version
        self._seq = 0
        self._last_us = 0

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, obj: dict[str, Any], appended_ms: int) -> Entry | None:
        """Add one object; a version already held (same id and modified) is ignored."""
        sid = obj.get("id")
        if not isinstance(sid, str):
            return None
        entry_version = str(obj.get("modified") or obj.get("created") or "")
        held = self._latest.get(sid)
        if held is not None and held in self._entries:
            current = self._entries[held]
            # A replayed or older version is nothing new for partners; observables carry
            # no timestamps, so for them "same content" is the test.
            if current.obj == obj or (entry_version and current.version >= entry_version):
                return None
        us = max(appended_ms * 1000, self._last_us + 1)
        self._last_us = us
        self._seq += 1
        entry = Entry(self._seq, us, obj)
        self._entries[self._seq] = entry
        self._latest[sid] = self._seq
        while len(self._entries) > self.max_entries:
            seq, old = self._entries.popitem(last=False)
            if self._latest.get(old.obj["id"]) == seq:
                del self._latest[old.obj["id"]]
        return entry

    def page(
        self,
        added_after_us: int | None,
        limit: int,
        after_seq: int = 0,
        ids: frozenset[str] | None = None,
        types: frozenset[str] | None = None,
        all_versions: bool = False,
    ) -> tuple[list[Entry], bool]:
        """Up to ``limit`` entries after ``after_seq`` (the ``next`` cursor) and
        ``added_after_us``, latest versions only unless ``all_versions``; and whether
        more remain."""
        out: list[Entry] = []
        for seq, entry in self._entries.items():
            if seq <= after_seq:
                continue
            if added_after_us is not None and entry.added_us <= added_after_us:
                continue
            sid = entry.obj["id"]
            if not all_versions and self._latest.get(sid) != seq:
                continue
            if ids is not None and sid not in ids:
                continue
            if types is not None and entry.obj.get("type") not in types:
                continue
            if len(out) == limit:
                return out, True
            out.append(entry)
        return out, False

    def object_versions(self, sid: str) -> list[Entry]:
        return [e for e in self._entries.values() if e.obj.get("id") == sid]


__all__ = ["Collection", "Entry", "collection_id", "parse_taxii_time", "taxii_time"]
