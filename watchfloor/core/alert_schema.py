"""The alert contract: which fields an alert has and which a sharing agreement may name.

Envelope fields identify a delivery (so an agency can deduplicate and acknowledge it) and
carry no intelligence; every agency receives them. Content fields are shared only where the
agency's agreement names them (default deny).
"""

from __future__ import annotations

SEVERITIES: tuple[str, ...] = ("low", "medium", "high", "critical")
SEVERITY_RANK: dict[str, int] = {s: i for i, s in enumerate(SEVERITIES)}

# Traffic Light Protocol 2.0 levels an agreement marks what it shares with (FIRST TLP 2.0;
# STIX/TAXII carry them as the OASIS TLP 2.0 marking definitions).
TLP_LEVELS: tuple[str, ...] = ("clear", "green", "amber", "amber+strict", "red")

ENVELOPE_FIELDS: frozenset[str] = frozenset(
    {"alert_id", "version", "created_at", "updated_at", "agency", "agreement", "kind",
     "exercise"}
)

# Dotted paths; a path under a list (``entities.id``) applies to every element.
CONTENT_FIELDS: frozenset[str] = frozenset(
    {
        "severity",
        "score",
        "domains",
        "entities.type",
        "entities.id",
        "detections.detector",
        "detections.domain",
        "detections.event_id",
        "detections.score",
        "detections.raw",
        "detections.reason",
        "detections.ts",
        "detections.entity.type",
        "detections.entity.id",
        "links.a.type",
        "links.a.id",
        "links.b.type",
        "links.b.id",
        "links.via",
    }
)

FIELD_POLICIES: frozenset[str] = frozenset({"full", "pseudonymize", "redact"})

ENTITY_TYPES: tuple[str, ...] = ("ip", "account", "document", "person", "device")
DOMAIN_NAMES: tuple[str, ...] = ("network", "financial", "border")

# A path may be qualified, ``entities.id[account]``, to set the policy for the elements of
# one kind only: the qualifier is matched against the element's ``type`` (entities, link
# ends, a detection's entity) or ``domain`` (detections). A qualified policy overrides the
# unqualified one for those elements; elements of other kinds follow the unqualified policy
# or, if there is none, are not shared (default deny). Parent object -> valid qualifiers:
QUALIFIERS: dict[str, tuple[str, ...]] = {
    "entities": ENTITY_TYPES,
    "detections.entity": ENTITY_TYPES,
    "links.a": ENTITY_TYPES,
    "links.b": ENTITY_TYPES,
    "detections": DOMAIN_NAMES,
}


def split_qualified(path: str) -> tuple[str, str | None]:
    """``"entities.id[account]"`` -> ``("entities.id", "account")``.

    >>> split_qualified("entities.id[account]"), split_qualified("severity")
    (('entities.id', 'account'), ('severity', None))
    """
    if path.endswith("]") and "[" in path:
        base, _, qual = path[:-1].partition("[")
        return base, qual
    return path, None
