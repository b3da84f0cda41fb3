"""STIX 2.1 bundles of agency views: valid for the OASIS validator and parser, stable ids
across versions, TLP on every object, nothing beyond what the agreement let through."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
import stix2
from stix2validator import ValidationOptions, validate_string

from tests.alerts.conftest import T0, Det
from watchfloor.alerts.stage import AlertStage
from watchfloor.alerts.stix import TLP_LEVELS, TLP_MARKINGS, alert_bundle
from watchfloor.config import Config

PRODUCER = "National watch floor"


def views(config: Config, key: bytes, det: Det) -> dict[str, list[dict[str, Any]]]:
    """Every agency's views of a multi-domain incident (network + financial + border,
    linked through a person), as the alert stage publishes them."""
    stage = AlertStage(config, key, clock=lambda: T0 + 30)
    out = []
    out += stage.process(det(entity="ip:10.0.0.7", score=0.97, links=("person:P-1",)))
    out += stage.process(
        det(entity="account:NL01BANK0001", detector="structuring", domain="financial",
            score=0.98, t=T0 + 10, links=("person:P-1",))
    )
    out += stage.process(
        det(entity="document:X1234567", detector="watchlist", domain="border", score=0.99,
            t=T0 + 20, links=("person:P-1",))
    )
    by_agency: dict[str, list[dict[str, Any]]] = {}
    for o in out:
        if o.kind == "alert":
            by_agency.setdefault(o.agency, []).append(orjson.loads(o.value))
    return by_agency


def validate(bundle: dict[str, Any]) -> None:
    text = json.dumps(bundle)
    result = validate_string(text, ValidationOptions(version="2.1"))
    results = getattr(result, "object_results", None) or [result]
    errors = [str(e) for obj in results for e in obj.errors]
    assert result.is_valid and errors == [], errors
    parsed = stix2.parse(text, allow_custom=True)
    assert parsed.type == "bundle"


@pytest.mark.parametrize("tlp", TLP_LEVELS)
def test_every_agency_view_is_a_valid_bundle(
    config: Config, key: bytes, det: Det, tlp: str
) -> None:
    seen = views(config, key, det)
    assert {"cert", "fiu", "border", "ctpu"} <= set(seen)
    for agency_views in seen.values():
        for view in agency_views:
            bundle = alert_bundle(view, tlp, PRODUCER)
            validate(bundle)
            marking = TLP_MARKINGS[tlp]["id"]
            for obj in bundle["objects"]:
                if obj["type"] != "marking-definition":
                    assert obj["object_marking_refs"] == [marking], obj["type"]


def test_a_new_version_keeps_ids_and_moves_modified(config: Config, key: bytes, det: Det) -> None:
    ctpu = views(config, key, det)["ctpu"]
    first, last = ctpu[0], ctpu[-1]
    assert first["alert_id"] == last["alert_id"] and last["version"] > first["version"]
    b1, b2 = (alert_bundle(v, "amber", PRODUCER) for v in (first, last))
    g1 = next(o for o in b1["objects"] if o["type"] == "grouping")
    g2 = next(o for o in b2["objects"] if o["type"] == "grouping")
    assert g1["id"] == g2["id"] and g2["modified"] >= g1["modified"]
    assert g2["created"] == g1["created"]
    assert len(g2["object_refs"]) > len(g1["object_refs"])


def test_pseudonyms_stay_pseudonyms_and_withheld_fields_stay_out(
    config: Config, key: bytes, det: Det
) -> None:
    ctpu = views(config, key, det)["ctpu"][-1]
    text = json.dumps(alert_bundle(ctpu, "amber", PRODUCER))
    # The counter-terrorism unit sees identifiers only as pseudonyms, reasons redacted.
    for clear in ("10.0.0.7", "NL01BANK0001", "X1234567", "P-1", "fired on"):
        assert clear not in text
    observables = [o for o in json.loads(text)["objects"] if o["type"].startswith("x-watchfloor")]
    assert observables and all(o["value"].startswith("ps_") for o in observables)
    links = [o for o in json.loads(text)["objects"] if o["type"] == "relationship"]
    assert links  # the person link survives as a relationship between pseudonyms


def test_cert_sees_addresses_as_ipv4_observables(config: Config, key: bytes, det: Det) -> None:
    cert = views(config, key, det)["cert"][0]
    objs = alert_bundle(cert, "green", PRODUCER)["objects"]
    ips = [o for o in objs if o["type"] == "ipv4-addr"]
    assert [o["value"] for o in ips] == ["10.0.0.7"]
    # Deterministic SCO id: the one the OASIS library computes for the same address.
    assert ips[0]["id"] == stix2.IPv4Address(value="10.0.0.7").id
    observed = [o for o in objs if o["type"] == "observed-data"]
    assert observed and observed[0]["object_refs"] == [ips[0]["id"]]
    assert observed[0]["x_watchfloor_detector"] == "port_scan"


def test_hostile_identifiers_stay_data(config: Config, key: bytes) -> None:
    view = {"alert_id": "x", "version": 1, "created_at": "2026-11-24T21:04:05.000Z",
            "updated_at": "2026-11-24T21:04:05.000Z", "agency": "cert",
            "entities": [{"type": "ip", "id": "10.0.0.1\u001b[2J<script>"}, {"type": 7}],
            "detections": [{"detector": "port_scan", "reason": "</script>\u202e", "entity": {}},
                           "not-a-dict"],
            "links": [{"a": {"type": "ip", "id": "1.2.3.4"}, "b": None}]}
    bundle = alert_bundle(view, "red", PRODUCER)
    validate(bundle)
    ent = [o for o in bundle["objects"] if o["type"] == "x-watchfloor-entity"]
    assert ent and ent[0]["value"] == "10.0.0.1\u001b[2J<script>"  # kept as data, not an IP


def test_unknown_tlp_level_is_refused() -> None:
    with pytest.raises(ValueError, match="valid: clear, green, amber, amber\\+strict, red"):
        alert_bundle({"alert_id": "x"}, "white", PRODUCER)


def test_withheld_detection_entities_refer_to_the_incident(
    config: Config, key: bytes, det: Det
) -> None:
    liaison = views(config, key, det)["liaison"][-1]
    objs = alert_bundle(liaison, "amber", PRODUCER)["objects"]
    entities = {o["id"] for o in objs if o["type"].startswith("x-watchfloor")}
    observed = [o for o in objs if o["type"] == "observed-data"]
    assert len(observed) == 3 and len(entities) == 3
    # The liaison desk is not told which entity each detection is about: each refers to
    # the incident's entities and says so, rather than pinning it on the first one.
    for o in observed:
        assert set(o["object_refs"]) == entities and o["x_watchfloor_entity_withheld"]
    assert {o["first_observed"] for o in observed} != {observed[0]["modified"]}
