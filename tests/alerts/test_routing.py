"""Routing rules per agency with the real topics.yaml."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import pytest

from watchfloor.alerts.routing import Router
from watchfloor.config import Config


def alert(
    severity: str,
    domains: list[str],
    detectors: tuple[str, ...] = ("port_scan",),
    jurisdiction: str = "NL",
) -> dict[str, Any]:
    return {
        "alert_id": "wf-1",
        "version": 1,
        "created_at": "c",
        "updated_at": "u",
        "kind": "alert",
        "severity": severity,
        "score": 0.9,
        "domains": domains,
        "entities": [{"type": "ip", "id": "10.0.0.1"}],
        "detections": [
            {
                "detector": d,
                "domain": (domains or ["network"])[0],
                "event_id": "e",
                "score": 0.9,
                "raw": 1.0,
                "reason": "r",
                "ts": 1,
                "entity": {"type": "ip", "id": "10.0.0.1"},
                "jurisdiction": jurisdiction,
            }
            for d in detectors
        ],
        "links": [
            {
                "a": {"type": "ip", "id": "10.0.0.1"},
                "b": {"type": "account", "id": "A1"},
                "via": "account_id",
            }
        ],
        "agency": None,
        "agreement": None,
    }


@pytest.mark.parametrize(
    ("severity", "domains", "expected"),
    [
        ("low", ["network"], ["cert"]),
        ("medium", ["financial"], ["fiu"]),
        ("low", ["border"], ["border"]),
        ("high", ["network"], ["cert", "ctpu"]),
        ("high", ["financial", "border"], ["fiu", "border", "ctpu"]),
        ("critical", ["network"], ["cert", "ctpu", "liaison"]),
        (
            "critical",
            ["network", "financial", "border"],
            ["cert", "fiu", "border", "ctpu", "liaison"],
        ),
    ],
)
def test_real_config_recipients(
    config: Config, key: bytes, severity: str, domains: list[str], expected: list[str]
) -> None:
    deliveries = Router(config.agencies, key).route(alert(severity, domains))
    assert [d.agency for d in deliveries] == expected
    topics = {a.name: a.topic for a in config.agencies}
    names = {a.name: a.agreement.name for a in config.agencies}
    for d in deliveries:
        assert d.topic == topics[d.agency]
        assert d.value["agency"] == d.agency
        assert d.value["agreement"] == d.agreement == names[d.agency]


def test_each_agency_gets_its_own_view(config: Config, key: bytes) -> None:
    by = {
        d.agency: d
        for d in Router(config.agencies, key).route(alert("critical", ["network", "financial"]))
    }
    assert by["cert"].value["entities"] == [{"type": "ip", "id": "10.0.0.1"}]
    assert "links" not in by["cert"].value
    # Qualified policies: the FIU sees accounts in clear, other identifiers as pseudonyms.
    assert by["fiu"].value["links"][0]["b"]["id"] == "A1"
    assert by["fiu"].value["links"][0]["a"]["id"].startswith("ps_")
    assert re.match(r"ps_[0-9a-f]{16}$", by["ctpu"].value["entities"][0]["id"])
    assert by["ctpu"].value["detections"][0]["reason"] == "[redacted]"
    assert "event_id" not in by["ctpu"].value["detections"][0]
    assert "score" not in by["liaison"].value
    assert by["ctpu"].redacted == ("detections.reason",)
    assert "raw" not in by["fiu"].value["detections"][0]
    assert by["cert"].value["detections"][0]["raw"] == 1.0
    # Pseudonyms differ between agencies for the same entity.
    assert by["ctpu"].value["entities"][0]["id"] != by["liaison"].value["entities"][0]["id"]


def test_detector_and_jurisdiction_rules(config: Config, key: bytes) -> None:
    cert = next(a for a in config.agencies if a.name == "cert")
    only_scans = replace(cert, name="scans", detectors=frozenset({"port_scan"}))
    only_de = replace(cert, name="de", jurisdictions=frozenset({"DE", "AT"}))
    r = Router([only_scans, only_de], key)
    assert [d.agency for d in r.route(alert("low", ["network"]))] == ["scans"]
    assert [d.agency for d in r.route(alert("low", ["network"], ("beaconing",), "DE"))] == ["de"]
    assert r.route(alert("low", ["network"], ("beaconing", "exfiltration"), "FR")) == []
    both = alert("low", ["network"], ("beaconing", "port_scan"), "AT")
    assert [d.agency for d in r.route(both)] == ["scans", "de"]


def test_unknown_severity_or_no_domain_goes_nowhere(config: Config, key: bytes) -> None:
    r = Router(config.agencies, key)
    assert r.route(alert("bogus", ["network"])) == []
    assert r.route(alert("critical", [])) == []


def test_router_hides_key(config: Config, key: bytes) -> None:
    r = Router(config.agencies, key)
    assert key.decode() not in repr(r)
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(r)
