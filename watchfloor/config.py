"""``topics.yaml`` parsed into frozen dataclasses and validated.

The file is the single source of truth for topics, which detectors run on which domain,
which agencies receive what, and under which sharing agreement. Errors name the place in
the file (``agencies.fiu.agreement.fields.entities.idd``) and what is wrong with it.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from watchfloor.core.alert_schema import (
    CONTENT_FIELDS,
    FIELD_POLICIES,
    QUALIFIERS,
    SEVERITIES,
    TLP_LEVELS,
    split_qualified,
)
from watchfloor.core.events import DOMAINS, ENTITY_FIELDS

CLEANUP_POLICIES = frozenset({"delete", "compact", "compact,delete"})
TOPIC_ROLES = frozenset(
    {
        "input",
        "deadletter",
        "detections",
        "alerts",
        "feedback",
        "audit",
        "checkpoints",
        "published",
        "anchors",
        "rekeyed",
    }
)


class ConfigError(ValueError):
    """``topics.yaml`` is invalid; the message says where and what."""


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    retention_ms: int
    cleanup_policy: str
    role: str
    domain: str | None = None
    description: str = ""
    # role feedback: the agency whose principal alone may write it (the broker vouches
    # for the writer; the worker takes the agency from the topic, never the payload).
    agency: str | None = None

    @property
    def configs(self) -> dict[str, str]:
        """Broker-side topic configs, as ``kafka-configs`` names them."""
        configs = {"retention.ms": str(self.retention_ms), "cleanup.policy": self.cleanup_policy}
        if self.role == "input":
            # The broker stamps arrival time, so alert latency is measured from the moment
            # the event reached Kafka, not from a sensor's clock.
            configs["message.timestamp.type"] = "LogAppendTime"
        return configs


@dataclass(frozen=True)
class DetectorSpec:
    name: str
    domain: str
    threshold: float
    params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class Agreement:
    name: str
    # dotted alert path -> "full" | "pseudonymize" | "redact"
    fields: Mapping[str, str]
    # TLP 2.0 level of everything shared under it (STIX/TAXII markings); required in
    # topics.yaml: sharing without a handling marking is a configuration error.
    tlp: str = ""


@dataclass(frozen=True)
class AgencySpec:
    name: str
    topic: str
    description: str
    domains: frozenset[str]
    min_severity: str
    agreement: Agreement
    # None means "every detector"/"every jurisdiction".
    detectors: frozenset[str] | None = None
    jurisdictions: frozenset[str] | None = None
    # How fast the agency committed to acknowledge an alert (alert rule, report).
    response_target_seconds: float = 3600.0


@dataclass(frozen=True)
class CorrelationSpec:
    window_seconds: float = 3600.0
    cooldown_seconds: float = 300.0
    max_incidents: int = 100_000
    max_links: int = 200_000
    multi_domain_boost: float = 0.15


@dataclass(frozen=True)
class TimeSpec:
    """How far event time (the sensor's clock) is trusted against the broker's clock."""

    # An event dated further ahead of its broker arrival time than this is refused
    # (dead-lettered as future_timestamp): a sensor clock a little fast is normal, a 2099
    # date is an attempt to expire every incident and wipe detector state.
    max_future_seconds: float = 300.0
    # An event older than its partition's watermark by more than this is scored but not
    # learnt, and a detection that old cannot move correlation clocks or take over an
    # entity's incident.
    max_lateness_seconds: float = 86_400.0


@dataclass(frozen=True)
class SiteSpec:
    """The deployment's own address ranges (``site:`` in topics.yaml)."""

    # CIDRs the site calls internal: network detectors use them to tell which side of a
    # flow is local and whether a destination is external. None: the detectors' default
    # (RFC 1918, loopback, link-local, CGNAT, multicast, broadcast; IPv6 equivalents).
    internal: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Config:
    topics: tuple[TopicSpec, ...]
    detectors: tuple[DetectorSpec, ...]
    agencies: tuple[AgencySpec, ...]
    correlation: CorrelationSpec
    source: str = "topics.yaml"
    time: TimeSpec = field(default_factory=TimeSpec)
    site: SiteSpec = field(default_factory=SiteSpec)

    def topic(self, role: str, domain: str | None = None) -> TopicSpec:
        for t in self.topics:
            if t.role == role and (domain is None or t.domain == domain):
                return t
        raise KeyError(f"no topic with role {role!r}" + (f" for {domain!r}" if domain else ""))

    @property
    def feedback_topics(self) -> dict[str, TopicSpec]:
        """Agency -> its feedback topic (only that agency's principal may write it)."""
        return {t.agency: t for t in self.topics if t.role == "feedback" and t.agency}

    def feedback_agency(self, topic: str) -> str | None:
        """The agency that alone writes feedback topic ``topic`` (None: not one)."""
        for t in self.topics:
            if t.name == topic and t.role == "feedback":
                return t.agency
        return None

    @property
    def input_topics(self) -> dict[str, TopicSpec]:
        return {t.domain: t for t in self.topics if t.role == "input" and t.domain}

    def detectors_for(self, domain: str) -> tuple[DetectorSpec, ...]:
        return tuple(d for d in self.detectors if d.domain == domain)


def _fail(where: str, what: str) -> ConfigError:
    return ConfigError(f"{where}: {what}")


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(where, f"expected a mapping, got {type(value).__name__}")
    return value


def _keys(cls: type, *, without: tuple[str, ...] = ()) -> frozenset[str]:
    """The keys a section of topics.yaml may have: its dataclass's fields (minus those
    that come from elsewhere, such as a name given by the parent key). Adding a setting
    is adding a field; the allow-list follows."""
    return frozenset(f.name for f in dataclasses.fields(cls)) - set(without)


def _known(value: Any, allowed: frozenset[str], where: str) -> Mapping[str, Any]:
    """``value`` as a mapping whose every key is in ``allowed``.

    A misspelt key is not ignored: ``min_severty: high`` silently left an agency receiving
    low-severity alerts its agreement excludes. The error names the nearest valid key.
    """
    value = _mapping(value, where or "(top level)")
    for key in value:
        if key not in allowed:
            place = f"{where}.{key}" if where else str(key)
            near = difflib.get_close_matches(str(key), sorted(allowed), n=1, cutoff=0.6)
            hint = f"did you mean {near[0]!r}?" if near else f"valid: {', '.join(sorted(allowed))}"
            raise _fail(place, f"unknown key; {hint}")
    return value


def _int(value: Any, where: str, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(where, f"expected an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise _fail(where, f"must be >= {minimum}, got {value}")
    return value


def _number(value: Any, where: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(where, f"expected a number, got {value!r}")
    if not lo <= value <= hi:
        raise _fail(where, f"must be between {lo} and {hi}, got {value}")
    return float(value)


def _str_set(value: Any, where: str, allowed: frozenset[str] | None = None) -> frozenset[str]:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise _fail(where, f"expected a list of names, got {value!r}")
    for item in value:
        if not isinstance(item, str):
            raise _fail(where, f"expected names, got {item!r}")
        if allowed is not None and item not in allowed:
            raise _fail(where, f"unknown {item!r}; valid: {', '.join(sorted(allowed))}")
    return frozenset(value)


def _parse_topics(raw: Any) -> tuple[TopicSpec, ...]:
    topics = []
    for name, spec in _mapping(raw, "topics").items():
        where = f"topics.{name}"
        spec = _known(spec, _keys(TopicSpec, without=("name",)), where)
        role = spec.get("role")
        if role not in TOPIC_ROLES:
            raise _fail(f"{where}.role", f"{role!r} is not one of {sorted(TOPIC_ROLES)}")
        domain = spec.get("domain")
        if role == "input" and domain not in DOMAINS:
            raise _fail(f"{where}.domain", f"input topic needs a domain of {list(DOMAINS)}")
        cleanup = spec.get("cleanup_policy", "delete")
        if cleanup not in CLEANUP_POLICIES:
            raise _fail(f"{where}.cleanup_policy", f"{cleanup!r} not in {sorted(CLEANUP_POLICIES)}")
        topics.append(
            TopicSpec(
                name=str(name),
                partitions=_int(spec.get("partitions", 1), f"{where}.partitions", 1),
                retention_ms=_int(
                    spec.get("retention_ms", 604_800_000), f"{where}.retention_ms", -1
                ),
                cleanup_policy=cleanup,
                role=role,
                domain=domain,
                description=str(spec.get("description", "")),
                agency=_topic_agency(spec.get("agency"), role, where),
            )
        )
    names = {t.name for t in topics}
    for role in ("deadletter", "detections", "feedback", "audit", "checkpoints", "published"):
        if not any(t.role == role for t in topics):
            raise _fail("topics", f"no topic has role {role!r}")
    for d in DOMAINS:
        if not any(t.role == "input" and t.domain == d for t in topics):
            raise _fail("topics", f"no input topic for domain {d!r}")
    assert len(names) == len(topics)
    published = next(t for t in topics if t.role == "published")
    for feedback in (t for t in topics if t.role == "feedback"):
        if published.partitions != feedback.partitions:
            raise _fail(
                f"topics.{published.name}.partitions",
                f"must equal {feedback.name}'s ({feedback.partitions}): both are keyed by "
                "alert id and one worker must own the same partition of each",
            )
    return tuple(topics)


def _topic_agency(agency: Any, role: str, where: str) -> str | None:
    if role != "feedback":
        if agency is not None:
            raise _fail(f"{where}.agency", "only feedback topics belong to an agency")
        return None
    if not isinstance(agency, str) or not agency:
        raise _fail(
            f"{where}.agency",
            "a feedback topic names the agency whose principal alone writes it",
        )
    return agency


def _check_feedback_topics(topics: tuple[TopicSpec, ...], agencies: tuple[AgencySpec, ...]) -> None:
    names = {a.name for a in agencies}
    owner: dict[str, str] = {}
    for t in topics:
        if t.role != "feedback":
            continue
        if t.agency not in names:
            raise _fail(
                f"topics.{t.name}.agency",
                f"unknown agency {t.agency!r}; agencies: {', '.join(sorted(names))}",
            )
        if t.agency in owner:
            raise _fail(
                f"topics.{t.name}.agency",
                f"{t.agency!r} already has feedback topic {owner[t.agency]!r} (one per agency)",
            )
        owner[t.agency] = t.name
    for a in agencies:
        if a.name not in owner:
            raise _fail(
                f"agencies.{a.name}",
                f"no feedback topic; add `feedback.{a.name}: {{role: feedback, agency: "
                f"{a.name}}}` under topics",
            )


def _parse_detectors(raw: Any) -> tuple[DetectorSpec, ...]:
    out = []
    for domain, specs in _mapping(raw, "detectors").items():
        if domain not in DOMAINS:
            raise _fail(f"detectors.{domain}", f"unknown domain; valid: {', '.join(DOMAINS)}")
        if not isinstance(specs, list):
            raise _fail(f"detectors.{domain}", "expected a list of detectors")
        for i, spec in enumerate(specs):
            where = f"detectors.{domain}[{i}]"
            spec = _known(spec, _keys(DetectorSpec, without=("domain",)), where)
            name = spec.get("name")
            if not isinstance(name, str):
                raise _fail(f"{where}.name", "a detector needs a name")
            params = _mapping(spec.get("params", {}), f"{where}.params")
            out.append(
                DetectorSpec(
                    name=name,
                    domain=domain,
                    threshold=_number(spec.get("threshold", 0.9), f"{where}.threshold", 0, 1),
                    params=MappingProxyType(dict(params)),
                )
            )
    return tuple(out)


def _parse_agreement(raw: Any, where: str) -> Agreement:
    raw = _known(raw, _keys(Agreement), where)
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise _fail(f"{where}.name", "an agreement needs a name")
    fields: dict[str, str] = {}
    for path, policy in _mapping(raw.get("fields", {}), f"{where}.fields").items():
        base, qualifier = split_qualified(str(path))
        if base not in CONTENT_FIELDS:
            raise _fail(
                f"{where}.fields.{path}",
                f"unknown alert field; valid: {', '.join(sorted(CONTENT_FIELDS))}",
            )
        if qualifier is not None:
            valid = QUALIFIERS.get(base.rsplit(".", 1)[0], ())
            if qualifier not in valid:
                raise _fail(
                    f"{where}.fields.{path}",
                    f"qualifier [{qualifier}] is not valid here; valid: "
                    + (", ".join(valid) if valid else "none (this field cannot be qualified)"),
                )
        if policy not in FIELD_POLICIES:
            raise _fail(
                f"{where}.fields.{path}", f"policy {policy!r} not in {sorted(FIELD_POLICIES)}"
            )
        fields[path] = policy
    tlp = raw.get("tlp")
    if tlp not in TLP_LEVELS:
        raise _fail(
            f"{where}.tlp",
            f"{'missing' if tlp is None else repr(tlp) + ' is not'} a TLP 2.0 level "
            f"(the marking partners apply); valid: {', '.join(TLP_LEVELS)}",
        )
    return Agreement(name=name, fields=MappingProxyType(fields), tlp=str(tlp))


def _parse_agencies(raw: Any, topics: tuple[TopicSpec, ...]) -> tuple[AgencySpec, ...]:
    alert_topics = {t.name for t in topics if t.role == "alerts"}
    out = []
    for name, spec in _mapping(raw, "agencies").items():
        where = f"agencies.{name}"
        spec = _known(spec, _keys(AgencySpec, without=("name",)), where)
        topic = spec.get("topic", f"alerts.{name}")
        if topic not in alert_topics:
            raise _fail(
                f"{where}.topic", f"{topic!r} is not declared under topics with role alerts"
            )
        severity = spec.get("min_severity", "low")
        if severity not in SEVERITIES:
            raise _fail(f"{where}.min_severity", f"{severity!r} not in {list(SEVERITIES)}")
        detectors = spec.get("detectors")
        jurisdictions = spec.get("jurisdictions")
        out.append(
            AgencySpec(
                name=str(name),
                topic=topic,
                description=str(spec.get("description", "")),
                domains=_str_set(spec.get("domains", []), f"{where}.domains", frozenset(DOMAINS)),
                min_severity=severity,
                agreement=_parse_agreement(spec.get("agreement"), f"{where}.agreement"),
                detectors=None if detectors is None else _str_set(detectors, f"{where}.detectors"),
                jurisdictions=None
                if jurisdictions is None
                else _str_set(jurisdictions, f"{where}.jurisdictions"),
                response_target_seconds=_number(
                    spec.get("response_target_seconds", 3600.0),
                    f"{where}.response_target_seconds",
                    1,
                    7 * 86400,
                ),
            )
        )
    if not out:
        raise _fail("agencies", "at least one agency is needed")
    return tuple(out)


def _parse_correlation(raw: Any) -> CorrelationSpec:
    raw = _known(raw or {}, _keys(CorrelationSpec), "correlation")
    base = CorrelationSpec()
    return CorrelationSpec(
        window_seconds=_number(
            raw.get("window_seconds", base.window_seconds),
            "correlation.window_seconds",
            1,
            30 * 86400,
        ),
        cooldown_seconds=_number(
            raw.get("cooldown_seconds", base.cooldown_seconds),
            "correlation.cooldown_seconds",
            0,
            86400,
        ),
        max_incidents=_int(
            raw.get("max_incidents", base.max_incidents), "correlation.max_incidents", 1
        ),
        max_links=_int(raw.get("max_links", base.max_links), "correlation.max_links", 1),
        multi_domain_boost=_number(
            raw.get("multi_domain_boost", base.multi_domain_boost),
            "correlation.multi_domain_boost",
            0,
            1,
        ),
    )


def _parse_time(raw: Any) -> TimeSpec:
    raw = _known(raw or {}, _keys(TimeSpec), "time")
    base = TimeSpec()
    return TimeSpec(
        max_future_seconds=_number(
            raw.get("max_future_seconds", base.max_future_seconds),
            "time.max_future_seconds",
            0,
            86400,
        ),
        max_lateness_seconds=_number(
            raw.get("max_lateness_seconds", base.max_lateness_seconds),
            "time.max_lateness_seconds",
            1,
            365 * 86400,
        ),
    )


def _parse_site(raw: Any) -> SiteSpec:
    raw = _known(raw or {}, _keys(SiteSpec), "site")
    internal = raw.get("internal")
    if internal is None:
        return SiteSpec()
    if not isinstance(internal, list) or not internal:
        raise _fail("site.internal", "expected a non-empty list of CIDRs")
    for i, cidr in enumerate(internal):
        try:
            ipaddress.ip_network(str(cidr), strict=False)
        except ValueError:
            raise _fail(f"site.internal[{i}]", f"{cidr!r} is not a network (CIDR)") from None
    return SiteSpec(internal=tuple(str(c) for c in internal))


def parse_config(data: Any, source: str = "topics.yaml") -> Config:
    """Validate a parsed YAML document; raise :class:`ConfigError` naming the place."""
    try:
        data = _known(data, _keys(Config, without=("source",)), "")
        topics = _parse_topics(data.get("topics"))
        agencies = _parse_agencies(data.get("agencies"), topics)
        _check_feedback_topics(topics, agencies)
        return Config(
            topics=topics,
            detectors=_parse_detectors(data.get("detectors", {})),
            agencies=agencies,
            correlation=_parse_correlation(data.get("correlation")),
            source=source,
            time=_parse_time(data.get("time")),
            site=_parse_site(data.get("site")),
        )
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def load_config(path: str | Path) -> Config:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot read ({exc.strerror}); give --topics-file or "
            "WATCHFLOOR_TOPICS_FILE, or unset it to use ./topics.yaml or the packaged default"
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_config(data, str(path))


__all__ = [
    "ENTITY_FIELDS",
    "AgencySpec",
    "Agreement",
    "Config",
    "ConfigError",
    "CorrelationSpec",
    "DetectorSpec",
    "SiteSpec",
    "TimeSpec",
    "TopicSpec",
    "load_config",
    "parse_config",
]
