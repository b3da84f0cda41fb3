"""Kafka's default partitioner, remembering the partition hashes of recent keys.

aiokafka's ``DefaultPartitioner`` runs murmur2 in pure Python for every record sent
(about 3 % of the worker's CPU, issue 12), while the worker's keys repeat: the entities
its detections and re-keyed events are about. Same partitions as Kafka's (and the Java
client's) default: only the hash is cached, and the cache is cleared when full.

>>> from aiokafka.partitioner import DefaultPartitioner
>>> p, parts = CachedPartitioner(size=2), [0, 1, 2]
>>> keys = [b"10.0.0.1", b"acct-7", b"x", b"10.0.0.1"]
>>> [p(k, parts, parts) for k in keys] == [DefaultPartitioner()(k, parts, parts) for k in keys]
True
"""

from __future__ import annotations

import random

from aiokafka.partitioner import murmur2

__all__ = ["CachedPartitioner"]


class CachedPartitioner:
    """``partitioner(key, all_partitions, available)`` as aiokafka calls it."""

    def __init__(self, size: int = 1 << 16) -> None:
        self.size = size
        self._hashes: dict[bytes, int] = {}

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:  # as the default: any available partition
            return random.choice(available or all_partitions)
        h = self._hashes.get(key)
        if h is None:
            if len(self._hashes) >= self.size:
                self._hashes.clear()
            h = self._hashes[key] = murmur2(key) & 0x7FFFFFFF
        return all_partitions[h % len(all_partitions)]
