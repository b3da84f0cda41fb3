"""Agreements: default deny, policies, pseudonyms, key secrecy (with a property test)."""

from __future__ import annotations

import pickle
import re
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from watchfloor.alerts.agreements import REDACTED, AgreementPlan, apply_agreement
from watchfloor.config import AgencySpec, Agreement, Config
from watchfloor.core.alert_schema import CONTENT_FIELDS, ENVELOPE_FIELDS, FIELD_POLICIES

PS = re.compile(r"^ps_[0-9a-f]{16}$")
FIELD_POLICIES_SORTED = sorted(FIELD_POLICIES)


def full_alert() -> dict[str, Any]:
    return {
        "alert_id": "wf-abc",
        "version": 3,
        "created_at": "2026-09-21T14:13:20.000Z",
        "updated_at": "2026-09-21T14:14:20.000Z",
        "severity": "critical",
        "score": 0.99,
        "domains": ["financial", "network"],
        "entities": [
            {"type": "ip", "id": "10.0.0.1", "note": "x"},
            {"type": "account", "id": "A1"},
        ],
        "detections": [
            {
                "detector": "port_scan",
                "domain": "network",
                "event_id": "n1",
                "score": 0.95,
                "raw": 40.0,
                "reason": "48 ports in 60 s",
                "ts": 1,
                "jurisdiction": "NL",
                "entity": {"type": "ip", "id": "10.0.0.1", "extra": 1},
            },
        ],
        "detections_omitted": 0,
        "links": [
            {
                "a": {"type": "ip", "id": "10.0.0.1"},
                "b": {"type": "account", "id": "A1"},
                "via": "account_id",
            }
        ],
        "agency": None,
        "agreement": None,
        "kind": "alert",
        "internal_secret": {"analyst": "do not share"},
    }


def agency(name: str, fields: dict[str, str], agreement: str = "AG-1") -> AgencySpec:
    return AgencySpec(
        name, f"alerts.{name}", "", frozenset({"network"}), "low", Agreement(agreement, fields)
    )


def test_default_deny_removes_unnamed_and_unknown_fields(key: bytes) -> None:
    s = apply_agreement(full_alert(), agency("x", {"severity": "full"}), key)
    assert s.view == {
        "alert_id": "wf-abc",
        "version": 3,
        "created_at": "2026-09-21T14:13:20.000Z",
        "updated_at": "2026-09-21T14:14:20.000Z",
        "kind": "alert",
        "agency": "x",
        "agreement": "AG-1",
        "severity": "critical",
    }
    assert (s.shared, s.pseudonymised, s.redacted) == (("severity",), (), ())


def test_nested_keys_not_named_are_removed(key: bytes) -> None:
    s = apply_agreement(
        full_alert(), agency("x", {"entities.id": "full", "detections.entity.id": "full"}), key
    )
    assert s.view["entities"] == [{"id": "10.0.0.1"}, {"id": "A1"}]
    assert s.view["detections"] == [{"entity": {"id": "10.0.0.1"}}]


def test_policies_full_pseudonymize_redact(key: bytes) -> None:
    fields = {
        "score": "full",
        "entities.id": "pseudonymize",
        "detections.entity.id": "pseudonymize",
        "detections.reason": "redact",
        "links.b.id": "pseudonymize",
        "domains": "full",
    }
    s = apply_agreement(full_alert(), agency("x", fields), key)
    v = s.view
    assert v["score"] == 0.99 and v["domains"] == ["financial", "network"]
    ip_ps, acc_ps = (e["id"] for e in v["entities"])
    assert PS.match(ip_ps) and PS.match(acc_ps) and ip_ps != acc_ps
    # The same value gets the same pseudonym in every field, so analysts can link them.
    assert v["detections"][0]["entity"]["id"] == ip_ps
    assert v["links"][0]["b"]["id"] == acc_ps
    assert v["detections"][0]["reason"] == REDACTED
    assert s.shared == ("domains", "score")
    assert s.pseudonymised == ("detections.entity.id", "entities.id", "links.b.id")
    assert s.redacted == ("detections.reason",)


def test_audit_lists_only_fields_present_in_the_alert(key: bytes) -> None:
    alert = full_alert()
    del alert["links"]
    s = apply_agreement(alert, agency("x", {"links.via": "full", "score": "full"}), key)
    assert s.shared == ("score",) and "links" not in s.view


def test_wrong_shapes_are_dropped_not_shared(key: bytes) -> None:
    alert = full_alert()
    alert["entities"] = [{"type": "ip", "id": {"hidden": "x"}}, "loose", {"id": ["a", {"b": 1}]}]
    alert["score"] = {"nested": 1}
    s = apply_agreement(alert, agency("x", {"entities.id": "full", "score": "full"}), key)
    assert s.view["entities"] == [{}, {"id": ["a"]}]
    assert "score" not in s.view


def test_envelope_agency_and_agreement_are_the_recipients(key: bytes) -> None:
    alert = {**full_alert(), "agency": "spoofed", "agreement": "spoofed"}
    v = apply_agreement(alert, agency("fiu", {}, "FIU-AML-2026"), key).view
    assert (v["agency"], v["agreement"]) == ("fiu", "FIU-AML-2026")


def test_real_liaison_agreement(config: Config, key: bytes) -> None:
    liaison = next(a for a in config.agencies if a.name == "liaison")
    v = apply_agreement(full_alert(), liaison, key).view
    assert set(v) == {
        "alert_id",
        "version",
        "created_at",
        "updated_at",
        "kind",
        "agency",
        "agreement",
        "severity",
        "domains",
        "entities",
        "detections",
    }
    assert v["detections"] == [{"detector": "port_scan", "domain": "network", "ts": 1}]
    assert all(PS.match(e["id"]) for e in v["entities"])


def test_key_never_in_repr_pickle_or_errors(key: bytes) -> None:
    plan = AgreementPlan(agency("x", {"entities.id": "pseudonymize"}), key)
    assert key.decode() not in repr(plan)
    with pytest.raises(TypeError) as err:
        pickle.dumps(plan)
    assert key.decode() not in str(err.value)
    with pytest.raises(ValueError) as err2:
        AgreementPlan(agency("x", {}), b"short-key")
    assert "short-key" not in str(err2.value)


# -- property test --------------------------------------------------------------------

ids = st.sampled_from(["10.0.0.1", "A1", "P123", "x", "", "ps_0000000000000000"])
scalars = st.one_of(ids, st.integers(-5, 5), st.floats(0, 1), st.booleans(), st.none())
junk = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["id", "q", "z"]), inner, max_size=3),
    ),
    max_leaves=6,
)
extra = st.dictionaries(st.sampled_from(["secret", "note", "id2"]), junk, max_size=2)


def entity() -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(
        lambda t, i, e: {"type": t, "id": i, **e}, st.sampled_from(["ip", "account"]), ids, extra
    )


detection = st.builds(
    lambda e, d, s, r, x: {
        "detector": d,
        "domain": "network",
        "event_id": "n1",
        "score": s,
        "raw": s * 3,
        "reason": r,
        "ts": 1,
        "entity": e,
        **x,
    },
    entity(),
    st.sampled_from(["port_scan", "fan_out"]),
    st.floats(0, 1),
    ids,
    extra,
)
link = st.builds(lambda a, b, v: {"a": a, "b": b, "via": v}, entity(), entity(), ids)
alerts = st.builds(
    lambda sev, sc, doms, ents, dets, links, x, hostile: {
        "alert_id": "wf-1",
        "version": 1,
        "created_at": "c",
        "updated_at": "u",
        "kind": "alert",
        "severity": sev,
        "score": sc,
        "domains": doms,
        "entities": ents,
        "detections": dets,
        "links": links,
        **x,
        **hostile,
    },
    st.sampled_from(["low", "critical"]),
    st.floats(0, 1),
    st.lists(ids, max_size=3),
    st.lists(entity(), max_size=3),
    st.lists(detection, max_size=3),
    st.lists(link, max_size=2),
    extra,
    # sometimes a content field has a hostile shape
    st.dictionaries(
        st.sampled_from(["entities", "detections", "links", "score"]), junk, max_size=1
    ),
)
agreements = st.dictionaries(
    st.sampled_from(sorted(CONTENT_FIELDS)), st.sampled_from(sorted(FIELD_POLICIES)), max_size=10
)


def leaves(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted path, scalar) for every scalar in a view; list elements share the path."""
    if isinstance(value, dict):
        out = []
        for k, v in value.items():
            out += leaves(v, f"{prefix}.{k}" if prefix else k)
        return out
    if isinstance(value, list):
        return [pair for v in value for pair in leaves(v, prefix)]
    return [(prefix, value)]


def key_paths(value: Any, prefix: str = "") -> set[str]:
    """Every dict key path in a view (interior ones too)."""
    out: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            p = f"{prefix}.{k}" if prefix else k
            out |= {p} | key_paths(v, p)
    elif isinstance(value, list):
        for v in value:
            out |= key_paths(v, prefix)
    return out


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(alert=alerts, fields=agreements, key=st.binary(min_size=16, max_size=32))
def test_views_never_leak(alert: dict[str, Any], fields: dict[str, str], key: bytes) -> None:
    raw_in = orjson.dumps(alert)
    assume(key not in raw_in and key.hex().encode() not in raw_in)
    one = AgreementPlan(agency("one", fields), key)
    two = AgreementPlan(agency("two", fields), key)
    s1, s1b, s2 = (
        one.apply(alert),
        AgreementPlan(agency("one", fields), key).apply(alert),
        two.apply(alert),
    )

    allowed_prefixes = {p.rsplit(".", i)[0] for p in fields for i in range(p.count(".") + 1)}
    for path in key_paths(s1.view):
        assert path in ENVELOPE_FIELDS or path in allowed_prefixes, path
    for path, value in leaves(s1.view):
        if path in ENVELOPE_FIELDS:
            continue
        policy = fields[path]  # KeyError = a leaf outside the agreement
        if policy == "pseudonymize":
            assert isinstance(value, str) and PS.match(value)
        elif policy == "redact":
            assert value == REDACTED
    # Stable within an agency (a plan rebuilt after a restart gives the same view) ...
    assert s1b.view == s1.view
    # ... and different between agencies for every pseudonymised value.
    ps1 = [v for p, v in leaves(s1.view) if fields.get(p) == "pseudonymize"]
    ps2 = [v for p, v in leaves(s2.view) if fields.get(p) == "pseudonymize"]
    assert len(ps1) == len(ps2)
    assert all(a != b for a, b in zip(ps1, ps2, strict=True))
    # The key appears nowhere.
    out = orjson.dumps(s1.view) + repr(s1).encode() + repr(one).encode()
    assert key not in out and key.hex().encode() not in out
    # Audit lists are within the agreement and match the policies.
    for p in s1.shared:
        assert fields[p] == "full"
    for p in s1.pseudonymised:
        assert fields[p] == "pseudonymize"
    for p in s1.redacted:
        assert fields[p] == "redact"


def test_pseudonym_of_equal_values_equal_within_agency_only(key: bytes) -> None:
    a = AgreementPlan(agency("a", {}), key)
    b = AgreementPlan(agency("b", {}), key)
    assert a.pseudonym("10.0.0.1") == a.pseudonym("10.0.0.1") != b.pseudonym("10.0.0.1")
    assert a.pseudonym(1) != a.pseudonym("1")
    other_key = AgreementPlan(agency("a", {}), key[::-1])
    assert other_key.pseudonym("10.0.0.1") != a.pseudonym("10.0.0.1")


MULTI = {
    "alert_id": "wf-1",
    "version": 3,
    "severity": "critical",
    "entities": [
        {"type": "ip", "id": "10.0.0.9"},
        {"type": "account", "id": "ACC-1"},
        {"type": "document", "id": "P1"},
    ],
    "detections": [
        {
            "detector": "beaconing",
            "domain": "network",
            "reason": "contacted 203.0.113.5",
            "entity": {"type": "ip", "id": "10.0.0.9"},
        },
        {
            "detector": "structuring",
            "domain": "financial",
            "reason": "3 payments under 10k",
            "entity": {"type": "account", "id": "ACC-1"},
        },
    ],
    "links": [
        {
            "a": {"type": "account", "id": "ACC-1"},
            "b": {"type": "ip", "id": "10.0.0.9"},
            "via": "src_ip",
        }
    ],
}


def test_qualified_policies_share_only_the_agencys_own_kind_in_clear(key: bytes) -> None:
    plan = AgreementPlan(
        agency(
            "fiu",
            {
                "entities.type": "full",
                "entities.id": "pseudonymize",
                "entities.id[account]": "full",
                "detections.detector": "full",
                "detections.reason[financial]": "full",
                "detections.entity.id[account]": "full",
                "links.a.id[account]": "full",
                "links.b.id": "pseudonymize",
            },
        ),
        key,
    )
    view = plan.apply(MULTI).view
    ids = {e["type"]: e["id"] for e in view["entities"]}
    assert ids["account"] == "ACC-1"
    assert ids["ip"].startswith("ps_") and ids["document"].startswith("ps_")
    # Reasons of other domains are not named for this agency: absent, not just hidden.
    assert view["detections"][0] == {"detector": "beaconing", "entity": {}}
    assert view["detections"][1]["reason"] == "3 payments under 10k"
    assert view["detections"][1]["entity"] == {"id": "ACC-1"}
    assert view["links"][0]["a"] == {"id": "ACC-1"}
    assert view["links"][0]["b"]["id"].startswith("ps_")
    text = orjson.dumps(view).decode()
    assert "10.0.0.9" not in text and "203.0.113.5" not in text and "P1" not in text


def test_qualified_order_does_not_matter(key: bytes) -> None:
    a = {"entities.id[account]": "full", "entities.id": "redact"}
    b = {"entities.id": "redact", "entities.id[account]": "full"}
    va = AgreementPlan(agency("x", a), key).apply(MULTI).view
    vb = AgreementPlan(agency("x", b), key).apply(MULTI).view
    assert va == vb == {**va, "entities": [{"id": REDACTED}, {"id": "ACC-1"}, {"id": REDACTED}]}


_TYPES = ("ip", "account", "document", "person", "device")
_POLICY_OR_NONE = st.sampled_from([None, "full", "pseudonymize", "redact"])


@settings(max_examples=200)
@given(
    entities=st.lists(
        st.fixed_dictionaries({"type": st.sampled_from(_TYPES), "id": st.text(min_size=1)}),
        max_size=8,
    ),
    default=_POLICY_OR_NONE,
    per_type=st.dictionaries(st.sampled_from(_TYPES), st.sampled_from(FIELD_POLICIES_SORTED)),
    key=st.binary(min_size=16, max_size=32),
)
def test_qualified_policies_resolve_per_element(
    entities: list[dict[str, str]], default: str | None, per_type: dict[str, str], key: bytes
) -> None:
    fields = {"entities.type": "full", **{f"entities.id[{t}]": p for t, p in per_type.items()}}
    if default is not None:
        fields["entities.id"] = default
    plan = AgreementPlan(agency("q", fields), key)
    view = plan.apply({"alert_id": "wf-1", "version": 1, "entities": entities}).view
    assert len(view["entities"]) == len(entities)
    for original, shared in zip(entities, view["entities"], strict=True):
        policy = per_type.get(original["type"], default)
        if policy is None:
            assert "id" not in shared  # default deny for kinds the agreement does not name
        elif policy == "full":
            assert shared["id"] == original["id"]
        elif policy == "redact":
            assert shared["id"] == REDACTED
        else:
            assert shared["id"] == plan.pseudonym(original["id"])


# -- the audit lists say what the agency received, per field and per entity kind ---------
def _cert_alert(entities: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "alert_id": "wf-1",
        "version": 1,
        "severity": "high",
        "domains": ["network"],
        "entities": entities,
        "detections": [
            {"detector": "port_scan", "domain": "network", "event_id": "n1", "reason": "scan",
             "entity": {"type": e["type"], "id": e["id"]}}
            for e in entities
        ],
    }


def test_cert_alert_with_only_ips_lists_no_pseudonymised_entity_ids(
    config: Config, key: bytes
) -> None:
    cert = next(a for a in config.agencies if a.name == "cert")
    s = AgreementPlan(cert, key).apply(_cert_alert([{"type": "ip", "id": "10.0.0.1"}]))
    assert s.view["entities"] == [{"type": "ip", "id": "10.0.0.1"}]  # in clear
    assert s.pseudonymised == ()  # nothing was pseudonymised
    assert "entities.id[ip]" in s.shared and "detections.entity.id[ip]" in s.shared
    assert "detections.reason[network]" in s.shared
    assert "entities.id" not in s.shared and "detections.entity.id" not in s.shared
    # Every path listed is the agreement's rule that was applied, with its policy.
    for listed, policy in ((s.shared, "full"), (s.pseudonymised, "pseudonymize")):
        assert all(cert.agreement.fields[p] == policy for p in listed), listed


def test_cert_alert_with_an_ip_and_an_account_lists_each_kind_as_received(
    config: Config, key: bytes
) -> None:
    cert = next(a for a in config.agencies if a.name == "cert")
    s = AgreementPlan(cert, key).apply(
        _cert_alert([{"type": "ip", "id": "10.0.0.1"}, {"type": "account", "id": "A1"}])
    )
    ip, account = s.view["entities"]
    assert ip["id"] == "10.0.0.1" and PS.match(account["id"])
    # IPs in clear under entities.id[ip]; the account under the default rule, entities.id.
    assert "entities.id[ip]" in s.shared and "detections.entity.id[ip]" in s.shared
    assert s.pseudonymised == ("detections.entity.id", "entities.id")


def test_explicit_kind_rules_are_listed_per_kind_only_when_that_kind_is_present(
    key: bytes
) -> None:
    plan = AgreementPlan(
        agency("x", {"entities.type": "full", "entities.id[ip]": "full",
                     "entities.id[account]": "pseudonymize", "entities.id[document]": "redact",
                     "detections.reason": "redact"}),
        key,
    )
    both = plan.apply(_cert_alert([{"type": "ip", "id": "10.0.0.1"},
                                   {"type": "account", "id": "A1"}]))
    assert both.shared == ("entities.id[ip]", "entities.type")
    assert both.pseudonymised == ("entities.id[account]",)
    assert both.redacted == ("detections.reason",)  # no document: not listed as redacted
    only_ip = plan.apply({**_cert_alert([{"type": "ip", "id": "10.0.0.1"}]), "detections": []})
    assert (only_ip.shared, only_ip.pseudonymised, only_ip.redacted) == (
        ("entities.id[ip]", "entities.type"), (), ())
    # A kind without a rule (and no default) is withheld: in neither list, nor in the view.
    person = plan.apply({"alert_id": "wf-2", "version": 1,
                         "entities": [{"type": "person", "id": "P1"}]})
    assert person.view["entities"] == [{"type": "person"}]
    assert (person.shared, person.pseudonymised, person.redacted) == (("entities.type",), (), ())
