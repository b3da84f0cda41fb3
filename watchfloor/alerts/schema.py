"""The alert contract: which fields an alert has and which a sharing agreement may name.

Envelope fields identify a delivery (so an agency can deduplicate and acknowledge it) and
carry no intelligence; every agency receives them. Content fields are shared only where the
agency's agreement names them (default deny).
"""

from __future__ import annotations

SEVERITIES: tuple[str, ...] = ("low", "medium", "high", "critical")
SEVERITY_RANK: dict[str, int] = {s: i for i, s in enumerate(SEVERITIES)}

ENVELOPE_FIELDS: frozenset[str] = frozenset(
    {"alert_id", "version", "created_at", "updated_at", "agency", "agreement", "kind"}
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
