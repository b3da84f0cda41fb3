"""An alert as an agency received it, as a STIX 2.1 bundle marked with TLP 2.0.

The input is the agency's *view* (after its agreement was applied), never the full alert:
whatever the agreement withheld is absent here too, and pseudonyms stay pseudonyms. The
bundle holds:

* the producing centre as an ``identity``;
* the incident as a ``grouping`` (context ``suspicious-activity``) whose id is derived
  from ``alert_id``: a new version of the alert keeps every STIX id and moves
  ``modified`` forward, so a partner's store updates the object instead of adding one;
* one ``observed-data`` per detection, referring to the entity it is about;
* entities as cyber-observables: ``ipv4-addr``/``ipv6-addr`` for addresses shared in
  clear, custom ``x-watchfloor-account``/``x-watchfloor-document``/``x-watchfloor-person``
  objects for other kinds, ``x-watchfloor-pseudonym`` for a pseudonymised value;
* a ``relationship`` (``related-to``) per link between entities;
* the agreement's TLP 2.0 ``marking-definition`` (the OASIS TLP 2.0 extension's fixed
  ids), referenced from every object through ``object_marking_refs``.

Built as plain dicts (no STIX library on the hot path); the tests validate every bundle
with the OASIS ``stix2`` parser and ``stix2-validator``.

>>> view = {"alert_id": "a1", "version": 2, "created_at": "2026-11-24T21:04:05.000Z",
...         "updated_at": "2026-11-24T21:09:12.000Z", "agency": "liaison",
...         "severity": "critical", "entities": [{"type": "ip", "id": "ps_0011223344556677"}]}
>>> bundle = alert_bundle(view, tlp="amber", producer="National watch floor")
>>> sorted({o["type"] for o in bundle["objects"]})
['grouping', 'identity', 'marking-definition', 'x-watchfloor-pseudonym']
>>> group = next(o for o in bundle["objects"] if o["type"] == "grouping")
>>> group["id"] == alert_bundle(dict(view, version=3), "amber", "National watch floor")[
...     "objects"][2]["id"]
True
>>> group["object_marking_refs"] == [TLP_MARKINGS["amber"]["id"]]
True
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Mapping
from typing import Any

import orjson

# Namespace of our SDO/SRO ids (uuid5 over a stable name), fixed forever: changing it
# would give every object a new identity in partners' stores.
WATCHFLOOR_NS = uuid.UUID("6c1f5d8e-3b8a-5d2e-9c4f-7a0e2b9d1c33")
# STIX 2.1 §2.9: deterministic SCO ids are uuid5 in this namespace over the object's
# id-contributing properties as canonical JSON.
SCO_NS = uuid.UUID("00abedb4-aa42-466c-9c01-fed23315a9b7")

TLP_EXTENSION = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"
# The TLP 2.0 marking definitions published with the OASIS extension (fixed ids).
_TLP_IDS = {
    "clear": "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
    "green": "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
    "amber": "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
    "amber+strict": "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
    "red": "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
}
TLP_MARKINGS: dict[str, dict[str, Any]] = {
    level: {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": mid,
        "created": "2022-10-01T00:00:00.000Z",
        "name": f"TLP:{level.upper()}",
        "extensions": {TLP_EXTENSION: {"extension_type": "property-extension", "tlp_2_0": level}},
    }
    for level, mid in _TLP_IDS.items()
}
TLP_LEVELS: tuple[str, ...] = tuple(_TLP_IDS)

_KIND_TYPES = {
    "account": "x-watchfloor-account",
    "document": "x-watchfloor-document",
    "person": "x-watchfloor-person",
    "device": "x-watchfloor-device",
}
_EPOCH = "1970-01-01T00:00:00.000Z"


def _sdo_id(kind: str, *parts: object) -> str:
    return f"{kind}--{uuid.uuid5(WATCHFLOOR_NS, '/'.join(str(p) for p in parts))}"


def _sco_id(kind: str, contributing: Mapping[str, Any]) -> str:
    canonical = orjson.dumps(dict(contributing), option=orjson.OPT_SORT_KEYS).decode()
    return f"{kind}--{uuid.uuid5(SCO_NS, canonical)}"


def _ts(value: Any, default: str) -> str:
    """A STIX timestamp (RFC 3339, UTC, 'Z') from the alert's strings or an event's epoch
    milliseconds; ``default`` for anything else."""
    if isinstance(value, str) and value.endswith("Z") and len(value) <= 40:
        return value
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < 1e14:
        from datetime import UTC, datetime

        dt = datetime.fromtimestamp(value / 1000, UTC)
        return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return default


def entity_sco(entity: Mapping[str, Any]) -> dict[str, Any] | None:
    """The cyber-observable for one ``{type, id}`` entity of a view (None if the view
    carries no id for it)."""
    etype, eid = entity.get("type"), entity.get("id")
    if not isinstance(eid, str) or not eid:
        return None
    etype = etype if isinstance(etype, str) else "unknown"
    if eid.startswith("ps_") or eid == "[redacted]":
        props = {"value": eid, "entity_type": etype}
        return {"type": "x-watchfloor-pseudonym", "spec_version": "2.1",
                "id": _sco_id("x-watchfloor-pseudonym", props), **props}
    if etype == "ip":
        try:
            addr = ipaddress.ip_address(eid)
        except ValueError:
            addr = None
        if addr is not None:
            kind = "ipv4-addr" if addr.version == 4 else "ipv6-addr"
            return {"type": kind, "spec_version": "2.1",
                    "id": _sco_id(kind, {"value": str(addr)}), "value": str(addr)}
    kind = _KIND_TYPES.get(etype, "x-watchfloor-entity")
    props = {"value": eid, "entity_type": etype}
    return {"type": kind, "spec_version": "2.1", "id": _sco_id(kind, props), **props}


def alert_bundle(view: Mapping[str, Any], tlp: str, producer: str) -> dict[str, Any]:
    """The STIX 2.1 bundle of one agency view of an alert.

    Parameters
    ----------
    view
        The alert exactly as the agency received it (its agreement already applied).
    tlp
        The agreement's TLP 2.0 level: one of :data:`TLP_LEVELS`.
    producer
        Name of the producing centre (the ``identity`` every object is created by).
    """
    if tlp not in TLP_MARKINGS:
        raise ValueError(f"unknown TLP level {tlp!r}; valid: {', '.join(TLP_LEVELS)}")
    marking = TLP_MARKINGS[tlp]
    marks = [marking["id"]]
    alert_id = str(view.get("alert_id", ""))
    agency = str(view.get("agency", ""))
    created = _ts(view.get("created_at"), _EPOCH)
    modified = max(created, _ts(view.get("updated_at"), created))

    identity = {
        "type": "identity", "spec_version": "2.1", "id": _sdo_id("identity", "producer", producer),
        "created": _EPOCH, "modified": _EPOCH, "name": producer,
        "identity_class": "organization", "object_marking_refs": marks,
    }
    common = {"spec_version": "2.1", "created": created, "modified": modified,
              "created_by_ref": identity["id"], "object_marking_refs": marks}

    scos: dict[str, dict[str, Any]] = {}

    def sco_for(entity: Any) -> str | None:
        if not isinstance(entity, Mapping):
            return None
        sco = entity_sco(entity)
        if sco is None:
            return None
        sco["object_marking_refs"] = marks
        scos.setdefault(sco["id"], sco)
        return sco["id"]

    for entity in view.get("entities") or ():
        sco_for(entity)

    observed = []
    for i, det in enumerate(view.get("detections") or ()):
        if not isinstance(det, Mapping):
            continue
        own = sco_for(det.get("entity"))
        # Where the agreement withholds which entity a detection is about, it was
        # observed in this incident: refer to the incident's entities, and say so.
        refs = [own] if own is not None else list(scos)
        if not refs:
            continue  # observed-data must refer to something the agency may see
        when = _ts(det.get("ts"), modified)
        obj: dict[str, Any] = {
            "type": "observed-data",
            "id": _sdo_id("observed-data", alert_id, det.get("event_id", i), det.get("detector")),
            **common,
            "first_observed": when, "last_observed": when, "number_observed": 1,
            "object_refs": refs,
        }
        if own is None:
            obj["x_watchfloor_entity_withheld"] = True
        for field in ("detector", "domain", "score", "reason", "event_id"):
            if field in det:
                obj[f"x_watchfloor_{field}"] = det[field]
        observed.append(obj)

    relationships = []
    for link in view.get("links") or ():
        if not isinstance(link, Mapping):
            continue
        a, b = sco_for(link.get("a")), sco_for(link.get("b"))
        if a is None or b is None or a == b:
            continue
        rel = {"type": "relationship", "id": _sdo_id("relationship", alert_id, a, b), **common,
               "relationship_type": "related-to", "source_ref": a, "target_ref": b}
        if isinstance(link.get("via"), str):
            rel["description"] = f"linked through {link['via']}"
        relationships.append(rel)

    refs = [o["id"] for o in (*scos.values(), *observed, *relationships)]
    grouping: dict[str, Any] = {
        "type": "grouping", "id": _sdo_id("grouping", alert_id), **common,
        "name": f"watchfloor incident {alert_id}", "context": "suspicious-activity",
        "object_refs": refs or [identity["id"]],
        "x_watchfloor_alert_id": alert_id, "x_watchfloor_version": view.get("version"),
        "x_watchfloor_agency": agency,
    }
    for field in ("severity", "score", "domains"):
        if field in view:
            grouping[f"x_watchfloor_{field}"] = view[field]
    objects = [marking, identity, grouping, *scos.values(), *observed, *relationships]
    return {"type": "bundle", "id": _sdo_id("bundle", alert_id, view.get("version")),
            "objects": objects}


__all__ = ["TLP_LEVELS", "TLP_MARKINGS", "alert_bundle", "entity_sco"]
