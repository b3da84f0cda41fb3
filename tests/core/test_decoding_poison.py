"""Issue 9 items 3, 4 and 8 at the core: poison pills, event-time attacks, control
characters. Each test reproduces what the outside probe sent (it failed before the fix:
the record raised later, or was accepted) and asserts what an operator would see."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from tests.conftest import ROOT
from watchfloor.config import load_config
from watchfloor.core.decoding import INVALID_CODES, MAX_DEPTH, InvalidEvent, decode
from watchfloor.core.events import EXAMPLES
from watchfloor.core.sanitize import escape
from watchfloor.settings import Settings
from watchfloor.streams.runtime import Runtime

NOW = time.time()
STOLEN = "P0008842"  # on the shipped lost/stolen list: one event is a detection


def _runtime() -> Runtime:
    return Runtime.build(
        Settings(pseudonym_key="9c1f4e7a2b8d3f60a5e1c7b94d2f8e3a6b0c9d1e7f4a2b5c8d3e6f9a1b4c7d0e"),
        load_config(ROOT / "topics.yaml"),
        CollectorRegistry(),
    )


def crossing(i: int, ts: float = NOW, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": f"brd-poison-{i}",
        "ts": int(ts * 1000),
        "document_id": STOLEN if i == 0 else f"X{i:07d}",
        "nationality": "FRA",
        "crossing_point": "CDG-T2",
        "direction": "entry",
        **extra,
    }


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _code(domain: str, raw: bytes) -> str | None:
    try:
        decode(domain, raw)
    except InvalidEvent as exc:
        assert exc.code in INVALID_CODES
        return exc.code
    return None


# -- bounds at decoding -------------------------------------------------------------------


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 300, 1000])
def test_deeply_nested_extra_field_is_refused_as_too_deep(depth: int) -> None:
    raw = orjson.dumps(crossing(1))[:-1] + b',"blob":' + nested(depth) + b"}"
    assert _code("border", raw) == "too_deep"


def test_nesting_within_the_bound_is_kept() -> None:
    raw = orjson.dumps(crossing(1))[:-1] + b',"blob":' + nested(MAX_DEPTH) + b"}"
    assert _code("border", raw) is None


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        ({"note": "x" * 400_000}, "too_long"),  # a giant free-text string
        ({"note": ["x" * 10_000]}, "too_long"),
        ({"person_id": "p" * 10_000}, "bad_value"),  # a link becomes an entity id
        ({"person_id": {"a": [1, 2]}}, "wrong_type"),
        ({"device_id": 12}, "wrong_type"),
        ({"tags": list(range(5000))}, "too_many_fields"),
        ({f"k{i}": i for i in range(300)}, "too_many_fields"),
    ],
)
def test_giant_values_are_refused_with_specific_reasons(extra: dict, code: str) -> None:
    assert _code("border", orjson.dumps(crossing(1, **extra))) == code


def test_network_jurisdiction_must_be_an_identifier() -> None:
    # "country" is optional on network events but becomes a routing label: a nested
    # value there made every detection of the event unserialisable.
    ev = dict(EXAMPLES["network"])
    raw = orjson.dumps(ev)[:-1] + b',"country":' + nested(300) + b"}"
    assert _code("network", raw) == "wrong_type"


# -- control characters ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad", ["\x1b[2J\x1b[31mCRITICAL", "a\rb", "\x00", "\x7f", "\x9b31m", "exe\u202etxt", "\u2066x"]
)
def test_identifiers_with_control_characters_are_dead_lettered(bad: str) -> None:
    # Decision: identifiers (every required string, and link fields) must be printable;
    # a sensor has no reason to send an escape sequence in an id.
    assert _code("border", orjson.dumps(crossing(1, nationality=bad))) == "control_character"
    assert _code("border", orjson.dumps(crossing(1, person_id=bad))) == "control_character"
    ev = dict(EXAMPLES["network"], protocol="tcp" + bad)
    assert _code("network", orjson.dumps(ev)) == "control_character"


def test_printable_identifiers_in_any_script_are_accepted() -> None:
    assert _code("border", orjson.dumps(crossing(1, nationality="Zoë 東京"))) is None


def test_free_text_extras_keep_control_characters_and_are_escaped_on_output() -> None:
    # Decision: extra free text is kept as sent (nothing lost); every human-facing output
    # escapes it, so the terminal shows the escape instead of obeying it.
    raw = orjson.dumps(crossing(1, note="\x1b[2Jfake CRITICAL"))
    event = decode("border", raw)
    assert escape(event["note"]) == "\\x1b[2Jfake CRITICAL"


# -- per-record isolation in the scoring stage ------------------------------------------------


def test_a_batch_with_poison_records_keeps_its_detection() -> None:
    rt = _runtime()
    records = [
        (orjson.dumps(crossing(1)), None, "events.border", 0, 10, NOW),
        (orjson.dumps(crossing(2))[:-1] + b',"x":' + nested(1000) + b"}", None,
         "events.border", 0, 11, NOW),
        (orjson.dumps(crossing(3, note="y" * 400_000)), None, "events.border", 0, 12, NOW),
        (orjson.dumps(crossing(0)), None, "events.border", 0, 13, NOW),  # the real one
    ]
    detections, letters = rt.processor.process("border", records)
    assert [d["entity"]["id"] for d in detections] == [STOLEN]
    got = {orjson.loads(x)["offset"]: orjson.loads(x)["reason"] for x in letters}
    assert got == {11: "too_deep", 12: "too_long"}
    for det in detections:
        orjson.dumps(det)  # publishable


def test_a_record_whose_scoring_raises_is_dead_lettered_with_the_class_only() -> None:
    rt = _runtime()
    engine = rt.processor.engine("border", 0)
    process = engine.process

    def fragile(event: Any, arrival: float) -> Any:
        if event["event_id"] == "brd-poison-2":
            raise RecursionError("secret=hunter2 maximum recursion depth exceeded")
        return process(event, arrival)

    engine.process = fragile  # type: ignore[method-assign]
    records = [
        (orjson.dumps(crossing(i)), None, "events.border", 0, i, NOW) for i in (1, 2, 0)
    ]
    detections, letters = rt.processor.process("border", records)
    assert [d["entity"]["id"] for d in detections] == [STOLEN]
    (letter,) = [orjson.loads(x) for x in letters]
    assert (letter["offset"], letter["reason"], letter["detail"]) == (
        2,
        "processing_error",
        "RecursionError",
    )
    assert b"hunter2" not in letters[0]


# -- event time -----------------------------------------------------------------------------


def test_event_from_the_future_is_dead_lettered() -> None:
    rt = _runtime()
    records = [
        (orjson.dumps(crossing(1, ts=4_070_908_800.0)), None, "events.border", 0, 1, NOW),  # 2099
        (orjson.dumps(crossing(2, ts=NOW + 301)), None, "events.border", 0, 2, NOW),
        (orjson.dumps(crossing(3, ts=NOW + 299)), None, "events.border", 0, 3, NOW),  # clock skew
    ]
    _, letters = rt.processor.process("border", records)
    got = {orjson.loads(x)["offset"]: orjson.loads(x)["reason"] for x in letters}
    assert got == {1: "future_timestamp", 2: "future_timestamp"}
    assert rt.processor.engines[("border", 0)].watermark == pytest.approx(NOW + 299, abs=0.01)


def test_an_event_from_2000_is_scored_but_moves_no_detector_clock() -> None:
    rt = _runtime()
    rt.processor.process(
        "border", [(orjson.dumps(crossing(1)), None, "events.border", 0, 1, NOW)]
    )
    engine = rt.processor.engines[("border", 0)]
    before = engine.watermark
    old = crossing(0, ts=946_771_200.0)  # 2000-01-02: the stolen document, long ago
    detections, letters = rt.processor.process(
        "border", [(orjson.dumps(old), None, "events.border", 0, 2, NOW)]
    )
    assert not letters
    assert [d["entity"]["id"] for d in detections] == [STOLEN]  # scored: nothing is lost
    assert engine.late == 1 and engine.watermark == before  # but not learnt
