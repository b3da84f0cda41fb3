"""Event contracts for the three sensor domains.

Each domain names its required fields and the type each must have. Extra fields are kept.
"""

from __future__ import annotations

import unicodedata

DOMAINS: tuple[str, ...] = ("network", "financial", "border")

# field -> kind. Kinds: "str" (non-empty string), "int" (64-bit integer, not bool),
# "num" (finite int or float), "ts" (RFC 3339 string or epoch milliseconds), "port",
# "amount" (money: finite, >= 0, not denormal, <= 1e15).
REQUIRED_FIELDS: dict[str, dict[str, str]] = {
    "network": {
        "event_id": "str",
        "ts": "ts",
        "src_ip": "ip",
        "dst_ip": "ip",
        "dst_port": "port",
        "protocol": "str",
        "bytes_out": "count",
        "bytes_in": "count",
        "duration_ms": "num",
    },
    "financial": {
        "event_id": "str",
        "ts": "ts",
        "account_id": "str",
        "counterparty_id": "str",
        "amount": "amount",
        "currency": "str",
        "country": "str",
    },
    "border": {
        "event_id": "str",
        "ts": "ts",
        "document_id": "str",
        "nationality": "str",
        "crossing_point": "str",
        "direction": "str",
    },
}

# Optional fields detectors read when present (field -> kind, as in REQUIRED_FIELDS;
# "amount" is a finite, non-negative, normal number <= 1e15). Decoding validates them
# when they are sent; events without them are judged without them.
OPTIONAL_FIELDS: dict[str, dict[str, str]] = {
    "network": {
        # What flow formats add (Zeek conn.log, Argus, NetFlow, CICFlowMeter); network
        # detectors use them when present and fall back on sizes otherwise.
        "conn_state": "str",  # Zeek conn_state (S0, REJ, SF, RSTO, SH, OTH, ...) or Argus State
        "tcp_flags": "str",  # TCP flags seen, as letters: "S", "SA", "FSPA", "....S."
        "packets_out": "count",  # packets from src to dst
        "packets_in": "count",  # packets from dst to src
        "service": "str",  # application protocol a sensor identified (ssh, dns, http, ...)
        "src_port": "port",  # the source's port: a server port answering shows backscatter
    },
    "financial": {
        "balance_before": "amount",  # sender's balance before the payment
        "balance_after": "amount",  # sender's balance after it (0: the account was emptied)
        "channel": "str",  # online, card, branch, batch, atm, mobile ...
        "tx_type": "str",  # PAYMENT, TRANSFER, CASH_OUT, CASH_IN, DEBIT (PaySim's names)
        "counterparty_country": "str",  # where the receiving account is held
    },
    "border": {},
}


def canonical_document(doc: str) -> str:
    """A document number as one canonical id: compatibility-folded, upper case,
    letters and digits only.

    Sensors type the same passport as ``P000 4418``, ``p0004418`` or ``P-000-4418``;
    decoding applies this to ``document_id`` so every detector, the correlation and the
    pseudonymiser see one entity. ``O`` and ``0`` stay different: a document one
    character away from another is a different document.

    >>> canonical_document(" p000 4418 "), canonical_document("P-000-4418")
    ('P0004418', 'P0004418')
    >>> canonical_document("\uff30\uff10\uff11"), canonical_document("PO004418")
    ('P01', 'PO004418')
    """
    text = unicodedata.normalize("NFKC", doc).upper()
    return "".join(ch for ch in text if ch.isalnum())


# The typed entity each domain's events are primarily about: (entity type, event field).
ENTITY_FIELDS: dict[str, tuple[str, str]] = {
    "network": ("ip", "src_ip"),
    "financial": ("account", "account_id"),
    "border": ("document", "document_id"),
}

EXAMPLES: dict[str, dict[str, object]] = {
    "network": {
        "event_id": "net-000001",
        "ts": "2026-11-24T21:04:05.123Z",
        "src_ip": "10.20.3.44",
        "dst_ip": "203.0.113.9",
        "dst_port": 443,
        "protocol": "tcp",
        "bytes_out": 18234,
        "bytes_in": 923311,
        "duration_ms": 5321,
        "sensor": "dc1-tap-2",
    },
    "financial": {
        "event_id": "fin-000001",
        "ts": 1795640645123,
        "account_id": "ACC-0042-7781",
        "counterparty_id": "ACC-9911-0003",
        "amount": 9400.0,
        "currency": "EUR",
        "country": "NL",
        "channel": "online",
    },
    "border": {
        "event_id": "brd-000001",
        "ts": "2026-11-24T21:04:05+01:00",
        "document_id": "P1234567",
        "nationality": "FRA",
        "crossing_point": "CDG-T2",
        "direction": "entry",
        "person_name": "JEAN DUPONT",
    },
}

# Optional fields that tie an event's primary entity to others (entity links, one hop):
# field -> entity type. A transaction made from an IP, a crossing carrying a person, ...
# Both ends of a payment are links of every financial detection (the engine leaves out
# the field a detection is keyed by), so an alert about the sender names the receiving
# (mule) account and an alert about a beneficiary names the sender.
LINK_FIELDS: dict[str, dict[str, str]] = {
    "network": {"account_id": "account", "device_id": "device", "person_id": "person"},
    "financial": {"src_ip": "ip", "device_id": "device", "person_id": "person",
                  "account_id": "account", "counterparty_id": "account"},
    "border": {"person_id": "person", "device_id": "device"},
}

# The field naming the jurisdiction an event belongs to, for agency routing rules.
JURISDICTION_FIELDS: dict[str, str] = {
    "network": "country",
    "financial": "country",
    "border": "nationality",
}
