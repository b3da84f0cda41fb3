"""Decode and validate raw event bytes.

``decode`` is on the hot path: one ``orjson.loads`` and one pass over the domain's
required fields with pre-built checks. Failures raise :class:`InvalidEvent` with a short
``code`` (a bounded metric label) and a ``detail`` for the dead-letter record.
"""

from __future__ import annotations

import ipaddress
import math
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from watchfloor.core.events import (
    DOMAINS,
    JURISDICTION_FIELDS,
    LINK_FIELDS,
    OPTIONAL_FIELDS,
    REQUIRED_FIELDS,
    canonical_document,
)

# Bounds that keep hostile values out of detectors: timestamps in [2000, 2100),
# sizes and amounts far above anything real but well inside float precision.
MIN_TS_MS = 946_684_800_000
MAX_TS_MS = 4_102_444_800_000
MAX_STR = 512
MAX_COUNT = 1 << 53
MAX_NUM = 1e15
_MIN_NORMAL = sys.float_info.min  # smallest normal float; anything below is denormal
# Bounds on the extra fields a sensor may add. A value nested hundreds of levels deep or a
# string of hundreds of kilobytes is valid JSON that orjson accepts, but it made later
# stages raise (recursion, oversized detections) and lose their whole batch: refuse it here.
MAX_DEPTH = 16  # levels of nesting below the event object
MAX_FIELDS = 256  # keys of the event object
MAX_ITEMS = 4096  # keys and elements of all nested values together
MAX_TEXT = 8192  # characters of any string (or key) anywhere in the event
#: An exercise id (the optional ``exercise`` field of an injected event).
EXERCISE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")

INVALID_CODES: tuple[str, ...] = (
    "not_utf8",
    "not_json",
    "not_object",
    "missing_field",
    "wrong_type",
    "bad_value",
    "bad_timestamp",
    "too_large",
    "too_deep",
    "too_many_fields",
    "too_long",
    "control_character",
    "future_timestamp",
    "processing_error",
    "bad_amount",
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
    # Identifiers end up on operators' terminals: C0/C1 controls, DEL, ANSI escapes and bidi
    # overrides could redraw a screen or reorder what it shows. str.isprintable is False
    # for all of them (categories Cc, Cf, Zl, Zp, Zs except space) and costs ~50 ns.
    if not v.isprintable():
        raise InvalidEvent("control_character", f"{name!r} contains a non-printable character")


#: Addresses already found valid: a sensor's traffic repeats a few hosts, and parsing one
#: with ipaddress costs microseconds. Cleared when full, so it stays bounded.
_VALID_IPS: set[str] = set()
_VALID_IPS_MAX = 1 << 16


def _check_ip(name: str, v: Any) -> None:
    if type(v) is str and v in _VALID_IPS:  # (type first: a list is unhashable)
        return
    _check_str(name, v)
    try:
        ipaddress.ip_address(v)
    except ValueError:
        raise InvalidEvent("bad_value", f"{name!r} is not an IP address: {_short(v)}") from None
    if len(_VALID_IPS) >= _VALID_IPS_MAX:
        _VALID_IPS.clear()
    _VALID_IPS.add(v)


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


def _check_amount(name: str, v: Any) -> None:
    """Money: a finite number in [0, 1e15] that is 0 or a normal float.

    Negative amounts (direction belongs in the fields, not the sign), denormals
    (``5e-324`` made a detector's log scale raise on every later event of the account)
    and absurd sizes are refused here, with their own reason, so no detector meets them.
    """
    t = type(v)
    if t is not float and t is not int:
        raise InvalidEvent("wrong_type", f"{name!r} must be a number, got {t.__name__}")
    if not (math.isfinite(v) and 0 <= v <= MAX_NUM) or (v and v < _MIN_NORMAL):
        raise InvalidEvent(
            "bad_amount", f"{name!r} must be 0 or a normal number up to 1e15: {_short(v)}"
        )


def _check_ts(name: str, v: Any) -> None:  # handled inline in decode(); see there
    parse_ts(v)


_CHECKS: dict[str, Callable[[str, Any], None]] = {
    "str": _check_str,
    "ip": _check_ip,
    "port": _check_port,
    "count": _check_count,
    "num": _check_num,
    "amount": _check_amount,
    "ts": _check_ts,
}

_PLANS: dict[str, tuple[tuple[str, Callable[[str, Any], None]], ...]] = {
    domain: tuple((f, _CHECKS[kind]) for f, kind in fields.items())
    for domain, fields in REQUIRED_FIELDS.items()
}


# Optional fields of the contract, checked when sent (balances are money, like amounts).
_OPTIONAL_PLANS: dict[str, tuple[tuple[str, Callable[[str, Any], None]], ...]] = {
    domain: tuple((f, _CHECKS[kind]) for f, kind in OPTIONAL_FIELDS.get(domain, {}).items())
    for domain in REQUIRED_FIELDS
}


# Optional fields that become entity ids (links) or routing labels (jurisdiction) when
# present: they must be identifiers too, not a nested structure turned into a huge id.
_OPTIONAL_IDS: dict[str, tuple[str, ...]] = {
    domain: tuple(
        f
        for f in (*LINK_FIELDS.get(domain, {}), JURISDICTION_FIELDS.get(domain, ""))
        if f and f not in REQUIRED_FIELDS[domain]
    )
    for domain in REQUIRED_FIELDS
}


def _check_exercise(v: Any) -> None:
    """``exercise``: the id of the joint exercise an injected event belongs to (its alerts
    are labelled and kept apart from real ones). Names a topic-safe, short id."""
    if v is None:
        return
    if type(v) is not str or not EXERCISE_ID.fullmatch(v):
        raise InvalidEvent(
            "bad_value", "'exercise' must be 1..64 letters, digits, '.', '_' or '-'"
        )


def _check_optional_id(name: str, v: Any) -> None:
    if v is None or v == "":
        return  # absent in all but name: the engine ignores empty links
    _check_str(name, v)


def _check_nested(name: str, root: dict[str, Any] | list[Any]) -> None:
    """Depth, size and string bounds of one nested extra value, without recursion (a
    recursive walk would itself hit the interpreter's recursion limit)."""
    stack: list[tuple[Any, int]] = [(root, 1)]
    items = 0
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise InvalidEvent("too_deep", f"{name!r} is nested deeper than {MAX_DEPTH} levels")
        items += len(value)
        if items > MAX_ITEMS:
            raise InvalidEvent("too_many_fields", f"{name!r} holds more than {MAX_ITEMS} items")
        if type(value) is dict:
            for k in value:
                if len(k) > MAX_TEXT:
                    raise InvalidEvent("too_long", f"a key in {name!r} is over {MAX_TEXT} chars")
            value = value.values()
        for x in value:
            t = type(x)
            if t is str:
                if len(x) > MAX_TEXT:
                    raise InvalidEvent("too_long", f"a string in {name!r} is over {MAX_TEXT} chars")
            elif t is dict or t is list:
                stack.append((x, depth + 1))


def _check_extras(event: dict[str, Any]) -> None:
    if len(event) > MAX_FIELDS:
        raise InvalidEvent("too_many_fields", f"event has {len(event)} fields, limit {MAX_FIELDS}")
    for k, v in event.items():
        t = type(v)
        # Scalars other than strings need no check: only strings and containers can grow.
        if t is str:
            if len(v) > MAX_TEXT:
                raise InvalidEvent("too_long", f"{_short(k)} is over {MAX_TEXT} characters")
        elif t is dict or t is list:
            _check_nested(k[:60], v)
        if len(k) > MAX_TEXT:
            raise InvalidEvent("too_long", f"a field name is over {MAX_TEXT} characters")


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
    for name in _OPTIONAL_IDS[domain]:
        _check_optional_id(name, event.get(name))
    if "exercise" in event:
        _check_exercise(event["exercise"])
    for name, check in _OPTIONAL_PLANS[domain]:
        value = event.get(name)
        if value is not None and value != "":  # sent empty: treated as not sent
            check(name, value)
    if domain == "border":
        # One passport typed two ways is one entity and one pseudonym (issue 11).
        doc = canonical_document(event["document_id"])
        if not doc:
            raise InvalidEvent("bad_value", "'document_id' has no letters or digits")
        event["document_id"] = doc
    # Fast path, nearly every event: a message this short can hold no string or key over
    # MAX_TEXT nor MAX_ITEMS items, and with this few brackets no value nested deeper than
    # MAX_DEPTH (bytes.count runs in C; the walk below costs a few microseconds).
    if len(raw) > MAX_TEXT or raw.count(b"{") + raw.count(b"[") > MAX_DEPTH:  # type: ignore
        _check_extras(event)
    elif len(event) > MAX_FIELDS:
        raise InvalidEvent("too_many_fields", f"event has {len(event)} fields, limit {MAX_FIELDS}")
    return event


__all__ = ["DOMAINS", "INVALID_CODES", "InvalidEvent", "decode", "load_object", "parse_ts"]


def rfc3339(t: float) -> str:
    """Epoch seconds as an RFC 3339 UTC string with milliseconds.

    >>> rfc3339(1700000000.5)
    '2023-11-14T22:13:20.500Z'
    """
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"
