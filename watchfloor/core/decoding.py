"""Decode and validate raw event bytes.

``decode`` is on the hot path: one ``orjson.loads`` and one pass over the domain's
required fields with pre-built checks. Failures raise :class:`InvalidEvent` with a short
``code`` (a bounded metric label) and a ``detail`` for the dead-letter record.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from watchfloor.core.events import DOMAINS, REQUIRED_FIELDS

# Bounds that keep hostile values out of detectors: timestamps in [2000, 2100),
# sizes and amounts far above anything real but well inside float precision.
MIN_TS_MS = 946_684_800_000
MAX_TS_MS = 4_102_444_800_000
MAX_STR = 512
MAX_COUNT = 1 << 53
MAX_NUM = 1e15

INVALID_CODES: tuple[str, ...] = (
    "not_utf8",
    "not_json",
    "not_object",
    "missing_field",
    "wrong_type",
    "bad_value",
    "bad_timestamp",
    "too_large",
)


class InvalidEvent(ValueError):
    """An input message that cannot be processed; ``code`` is one of INVALID_CODES."""

    __slots__ = ("code", "detail")

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


def parse_ts(value: Any) -> float:
    """Return epoch seconds for an RFC 3339 string or epoch milliseconds.

    >>> parse_ts(1700000000000)
    1700000000.0
    >>> parse_ts("2023-11-14T22:13:20Z")
    1700000000.0
    >>> parse_ts("yesterday")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    watchfloor.core.decoding.InvalidEvent: bad_timestamp: 'ts' is not RFC 3339 ...: 'yesterday'
    """
    if type(value) is int:
        ms = value
    elif type(value) is str and 10 <= len(value) <= 40:
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidEvent(
                "bad_timestamp", f"'ts' is not RFC 3339 or epoch ms: {value[:40]!r}"
            ) from None
        if dt.tzinfo is None:
            raise InvalidEvent("bad_timestamp", f"'ts' has no UTC offset: {value!r}")
        ms = dt.timestamp() * 1000.0
    else:
        raise InvalidEvent("bad_timestamp", f"'ts' is not RFC 3339 or epoch ms: {_short(value)}")
    if not MIN_TS_MS <= ms < MAX_TS_MS:
        raise InvalidEvent("bad_timestamp", f"'ts' {_short(value)} is outside 2000..2100")
    return ms / 1000.0


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_str(name: str, v: Any) -> None:
    if type(v) is not str:
        raise InvalidEvent("wrong_type", f"{name!r} must be a string, got {type(v).__name__}")
    if not v or len(v) > MAX_STR:
        raise InvalidEvent("bad_value", f"{name!r} must be 1..{MAX_STR} characters")


def _check_ip(name: str, v: Any) -> None:
    _check_str(name, v)
    try:
        ipaddress.ip_address(v)
    except ValueError:
        raise InvalidEvent("bad_value", f"{name!r} is not an IP address: {_short(v)}") from None


def _check_port(name: str, v: Any) -> None:
    if type(v) is not int:
        raise InvalidEvent("wrong_type", f"{name!r} must be an integer, got {type(v).__name__}")
    if not 0 <= v <= 65535:
        raise InvalidEvent("bad_value", f"{name!r} must be 0..65535, got {v}")


def _check_count(name: str, v: Any) -> None:
    if type(v) is not int:
        raise InvalidEvent("wrong_type", f"{name!r} must be an integer, got {type(v).__name__}")
    if not 0 <= v <= MAX_COUNT:
        raise InvalidEvent("bad_value", f"{name!r} must be 0..2^53, got {_short(v)}")


def _check_num(name: str, v: Any) -> None:
    t = type(v)
    if t is not float and t is not int:
        raise InvalidEvent("wrong_type", f"{name!r} must be a number, got {t.__name__}")
    if not (math.isfinite(v) and -MAX_NUM <= v <= MAX_NUM):
        raise InvalidEvent("bad_value", f"{name!r} is out of range: {_short(v)}")


def _check_ts(name: str, v: Any) -> None:  # handled inline in decode(); see there
    parse_ts(v)


_CHECKS: dict[str, Callable[[str, Any], None]] = {
    "str": _check_str,
    "ip": _check_ip,
    "port": _check_port,
    "count": _check_count,
    "num": _check_num,
    "ts": _check_ts,
}

_PLANS: dict[str, tuple[tuple[str, Callable[[str, Any], None]], ...]] = {
    domain: tuple((f, _CHECKS[kind]) for f, kind in fields.items())
    for domain, fields in REQUIRED_FIELDS.items()
}


def load_object(raw: bytes | None, max_bytes: int) -> dict[str, Any]:
    """Parse one message that must be a JSON object, or raise InvalidEvent saying why."""
    if raw is None:
        raise InvalidEvent("not_json", "message has no value (tombstone)")
    if len(raw) > max_bytes:
        raise InvalidEvent("too_large", f"message is {len(raw)} bytes, limit {max_bytes}")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        msg = str(exc)
        code = "not_utf8" if "UTF-8" in msg else "not_json"
        raise InvalidEvent(code, msg[:200]) from None
    if type(obj) is not dict:
        raise InvalidEvent("not_object", f"expected a JSON object, got {type(obj).__name__}")
    return obj


def decode(domain: str, raw: bytes | None, max_bytes: int = 1 << 20) -> dict[str, Any]:
    """Decode one message of ``domain``; return the event dict or raise InvalidEvent.

    The returned dict is the event as sent (extra fields kept) plus ``_ts``, the event
    time in epoch seconds. Keys starting with ``_`` are reserved for the pipeline.

    >>> raw = (b'{"event_id":"e1","ts":1700000000000,"document_id":"P1","nationality":"FRA",'
    ...        b'"crossing_point":"CDG","direction":"entry","x":1}')
    >>> decode("border", raw)["x"]
    1
    >>> decode("border", b'{"event_id":"e1"}')
    Traceback (most recent call last):
    ...
    watchfloor.core.decoding.InvalidEvent: missing_field: required field 'ts' is missing
    """
    event = load_object(raw, max_bytes)
    for name, check in _PLANS[domain]:
        try:
            value = event[name]
        except KeyError:
            raise InvalidEvent("missing_field", f"required field {name!r} is missing") from None
        if check is _check_ts:
            # Parsed once here; detectors and correlation read the reserved "_ts" key.
            event["_ts"] = parse_ts(value)
        else:
            check(name, value)
    return event


__all__ = ["DOMAINS", "INVALID_CODES", "InvalidEvent", "decode", "load_object", "parse_ts"]


def rfc3339(t: float) -> str:
    """Epoch seconds as an RFC 3339 UTC string with milliseconds.

    >>> rfc3339(1700000000.5)
    '2023-11-14T22:13:20.500Z'
    """
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"
