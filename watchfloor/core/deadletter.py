"""The dead-letter record: what an input message that could not be processed becomes.

Every stage that gives up on a record writes one of these (original bytes in base64, its
digest, where it came from, a reason code and a detail), so nothing is ever lost silently.
"""

from __future__ import annotations

import base64
import hashlib
import time
from typing import Any

import orjson

from watchfloor.core.decoding import rfc3339

# Largest original payload copied into a dead letter: base64 grows it by a third and the
# broker's default message limit is 1 MiB. Larger originals are cut, with their digest.
MAX_DEADLETTER_ORIGINAL = 512 * 1024
MAX_EVENT_BYTES = 512 * 1024

# (value, key, topic, partition, offset, broker timestamp in epoch seconds)
RawRecord = tuple[bytes | None, bytes | None, str, int, int, float]


def deadletter(
    value: bytes | None,
    topic: str,
    partition: int,
    offset: int,
    code: str,
    detail: str,
    now: float | None = None,
    key: bytes | None = None,
) -> bytes:
    """The dead-letter record for one message, as JSON bytes.

    >>> rec = orjson.loads(deadletter(b"\\xff", "events.border", 2, 41, "not_utf8", "bad byte", 0))
    >>> rec["reason"], rec["original"], rec["partition"], rec["offset"], rec["time"]
    ('not_utf8', '/w==', 2, 41, '1970-01-01T00:00:00.000Z')
    """
    raw = value or b""
    record: dict[str, Any] = {
        "original": base64.b64encode(raw[:MAX_DEADLETTER_ORIGINAL]).decode("ascii"),
        "original_size": len(raw),
        "original_sha256": hashlib.sha256(raw).hexdigest(),
        "truncated": len(raw) > MAX_DEADLETTER_ORIGINAL,
        "null_value": value is None,
        "key": None if key is None else base64.b64encode(key[:1024]).decode("ascii"),
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "reason": code,
        "detail": detail,
        "time": rfc3339(time.time() if now is None else now),
    }
    return orjson.dumps(record)
