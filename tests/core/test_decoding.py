from __future__ import annotations

import base64

import orjson
import pytest

from watchfloor.core.decoding import InvalidEvent, decode
from watchfloor.core.events import DOMAINS, EXAMPLES, REQUIRED_FIELDS
from watchfloor.streams.pipeline import deadletter


@pytest.mark.parametrize("domain", DOMAINS)
def test_documented_example_is_valid_and_keeps_extra_fields(domain: str) -> None:
    event = decode(domain, orjson.dumps(EXAMPLES[domain]))
    for key, value in EXAMPLES[domain].items():
        assert event[key] == value
    assert isinstance(event["_ts"], float)


@pytest.mark.parametrize("domain", DOMAINS)
@pytest.mark.parametrize("missing", ["event_id", "ts"])
def test_missing_field_names_the_field(domain: str, missing: str) -> None:
    ev = dict(EXAMPLES[domain])
    del ev[missing]
    with pytest.raises(InvalidEvent) as err:
        decode(domain, orjson.dumps(ev))
    assert err.value.code == "missing_field"
    assert repr(missing) in err.value.detail


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"\xff\xfe not utf8", "not_utf8"),
        (b"{not json", "not_json"),
        (b"[1, 2, 3]", "not_object"),
        (b'"a string"', "not_object"),
        (b'{"a": NaN}', "not_json"),
        (b"", "not_json"),
        (None, "not_json"),
    ],
)
def test_undecodable_input_gets_a_specific_code(raw: bytes | None, code: str) -> None:
    with pytest.raises(InvalidEvent) as err:
        decode("network", raw)
    assert err.value.code == code


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("dst_port", "443", "wrong_type"),
        ("dst_port", 70000, "bad_value"),
        ("dst_port", True, "wrong_type"),
        ("bytes_out", -1, "bad_value"),
        ("bytes_out", 1.5, "wrong_type"),
        ("src_ip", "999.1.1.1", "bad_value"),
        ("src_ip", 167772161, "wrong_type"),
        ("protocol", "", "bad_value"),
        ("protocol", "x" * 10_000, "bad_value"),
        ("duration_ms", "fast", "wrong_type"),
        ("ts", "2026-13-45T00:00:00Z", "bad_timestamp"),
        ("ts", "2026-11-24T10:00:00", "bad_timestamp"),  # no offset: ambiguous
        ("ts", 4_200_000_000_000, "bad_timestamp"),  # year 2103
        ("ts", 12, "bad_timestamp"),
        ("ts", None, "bad_timestamp"),
    ],
)
def test_wrong_types_and_values(field: str, value: object, code: str) -> None:
    ev = dict(EXAMPLES["network"])
    ev[field] = value
    with pytest.raises(InvalidEvent) as err:
        decode("network", orjson.dumps(ev))
    assert err.value.code == code
    assert repr(field) in err.value.detail


def test_integer_beyond_64_bits_is_refused() -> None:
    # orjson reads integers past 64 bits as floats: a count must stay an integer.
    raw = orjson.dumps(EXAMPLES["network"]).replace(
        b'"bytes_out":18234', b'"bytes_out":' + b"9" * 30
    )
    with pytest.raises(InvalidEvent) as err:
        decode("network", raw)
    assert err.value.code == "wrong_type"


def test_financial_amount_must_be_finite_number() -> None:
    ev = dict(EXAMPLES["financial"], amount="100")
    with pytest.raises(InvalidEvent, match="wrong_type"):
        decode("financial", orjson.dumps(ev))
    raw = orjson.dumps(EXAMPLES["financial"]).replace(b'"amount":9400.0', b'"amount":1e400')
    with pytest.raises(InvalidEvent):
        decode("financial", raw)


def test_oversized_message_is_refused_before_parsing() -> None:
    with pytest.raises(InvalidEvent) as err:
        decode("border", b" " * 2_000_000, max_bytes=1 << 20)
    assert err.value.code == "too_large"


def test_epoch_ms_and_rfc3339_agree() -> None:
    base = dict(EXAMPLES["border"])
    a = decode("border", orjson.dumps(dict(base, ts="2026-11-24T20:04:05.123Z")))
    b = decode("border", orjson.dumps(dict(base, ts=1795550645123)))
    assert a["_ts"] == pytest.approx(b["_ts"])


def test_every_domain_documents_its_required_fields() -> None:
    for domain, fields in REQUIRED_FIELDS.items():
        assert set(fields) <= set(EXAMPLES[domain]), domain


def test_deadletter_keeps_original_bytes_and_location() -> None:
    raw = b"\x00\x01 hostile \xff"
    rec = orjson.loads(deadletter(raw, "events.network", 2, 99, "not_utf8", "detail"))
    assert base64.b64decode(rec["original"]) == raw
    assert (rec["topic"], rec["partition"], rec["offset"]) == ("events.network", 2, 99)
    assert rec["reason"] == "not_utf8" and rec["detail"] == "detail"
    assert rec["time"].endswith("Z") and not rec["truncated"]


def test_deadletter_of_huge_message_is_cut_with_digest() -> None:
    raw = b"x" * (2 << 20)
    rec = orjson.loads(deadletter(raw, "events.network", 0, 1, "too_large", "big"))
    assert rec["truncated"] and rec["original_size"] == len(raw)
    assert len(base64.b64decode(rec["original"])) < len(raw)
    assert len(rec["original_sha256"]) == 64
