"""Checkpoints of what changed: a partition's detector state as a base plus increments.

Almost all of a partition's state is in its per-entity tables (95 % of 12 MB after 100,000
simulator events), and between two checkpoints only the entities that were seen change.
A *base* pickles the state in full, and from then on every
:class:`~watchfloor.core.entity_table.EntityTable` in it records which keys it set, read
(a learner may change a value in place) and dropped. An *increment* pickles the rest of
the state in full (models, calibrations: small) with each recording table replaced by a
reference to it, followed by the tables' changes. Reading back applies the increments to
the base in order, and gives the state exactly as it was, entity order included.

A checkpoint whose increments lost one (a write that failed, a cut dropped by a
rebalance) is never extended: the next one is a base (see
:class:`~watchfloor.streams.checkpoint.Checkpointer`).

>>> from watchfloor.core.entity_table import EntityTable
>>> t = EntityTable(max_entities=2)
>>> state = {"table": t, "n": 0}
>>> t.put("a", 0.0, 1)
>>> base = pickle_base(state)
>>> t.put("b", 1.0, 2); t.put("c", 2.0, 3); state["n"] = 1  # evicts "a"
>>> step = pickle_increment(state)
>>> restored = load_chain([base, step])
>>> sorted(restored["table"].items()), restored["n"], restored["table"].evicted
([('b', 2), ('c', 3)], 1, 1)
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Iterable, Sequence
from typing import Any

from watchfloor.core.entity_table import EntityTable, cutting, restoring
from watchfloor.streams.safe_pickle import ALLOWED_PREFIXES, CheckpointRefused, RestrictedUnpickler


def pickle_base(state: object) -> bytes:
    """``state`` in full; its tables record their changes from now on."""
    with cutting():
        return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)


class _IncrementPickler(pickle.Pickler):
    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.tables: dict[int, EntityTable[Any]] = {}

    def persistent_id(self, obj: Any) -> Any:
        # A table recording since the last checkpoint is only a reference here; one that
        # is not (new since, or it stopped recording) is pickled in full, and records on.
        if type(obj) is EntityTable:
            uid = obj.uid
            if uid:
                self.tables[uid] = obj
                return uid
        return None


def pickle_increment(state: object) -> bytes:
    """What changed in ``state`` since its last checkpoint (base or increment)."""
    buf = io.BytesIO()
    p = _IncrementPickler(buf)
    with cutting():
        p.dump(state)
        p.dump([(uid, table.changes()) for uid, table in p.tables.items()])
    return buf.getvalue()


class _IncrementUnpickler(RestrictedUnpickler):
    def __init__(
        self, data: bytes, prefixes: tuple[str, ...], tables: dict[int, EntityTable[Any]]
    ) -> None:
        super().__init__(data, prefixes)
        self._tables = tables

    def persistent_load(self, pid: Any) -> Any:
        table = self._tables.get(pid) if type(pid) is int else None
        if table is None:
            raise CheckpointRefused("checkpoint increment refers to a table it does not have")
        return table


def load_chain(blobs: Sequence[bytes], extra_prefixes: Iterable[str] = ()) -> Any:
    """The state a base and its increments (uncompressed, in order) describe."""
    prefixes = ALLOWED_PREFIXES + tuple(extra_prefixes)
    with restoring() as tables:
        state = RestrictedUnpickler(blobs[0], prefixes).load()
        for i, blob in enumerate(blobs[1:], 1):
            try:
                u = _IncrementUnpickler(blob, prefixes, tables)
                state = u.load()
                changes = u.load()
                if not isinstance(changes, list):
                    raise CheckpointRefused("checkpoint increment without its table changes")
                for uid, change in changes:
                    table = tables.get(uid)
                    if table is None:
                        raise CheckpointRefused("checkpoint increment changes a table it lacks")
                    table.apply(change)
            except Exception as exc:
                exc.increment = i  # type: ignore[attr-defined]  # the caller retries before it
                raise
    return state
