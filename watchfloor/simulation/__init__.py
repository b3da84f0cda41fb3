"""The simulator: labelled three-domain traffic (normal behaviour, threats and benign
look-alikes) and a multi-domain scenario, written to files or published to Kafka.

It is one test among several, never the truth: detectors are also judged on real capture
formats (``watchfloor.evaluation``). May import ``watchfloor.core`` and ``watchfloor.kafka``;
nothing in the worker imports it.
"""

from watchfloor.simulation.simulator import (
    DEFAULT_START,
    LOOKALIKES,
    THREAT_DETECTORS,
    THREAT_DOMAINS,
    THREAT_TYPES,
    Simulator,
    crossing_points,
    encode,
    haversine_km,
    high_risk_countries,
    lost_stolen,
    multidomain_scenario,
    publish,
    read_jsonl,
    rfc3339,
    watchlist,
    write_jsonl,
)

__all__ = [
    "DEFAULT_START",
    "LOOKALIKES",
    "THREAT_DETECTORS",
    "THREAT_DOMAINS",
    "THREAT_TYPES",
    "Simulator",
    "crossing_points",
    "encode",
    "haversine_km",
    "high_risk_countries",
    "lost_stolen",
    "multidomain_scenario",
    "publish",
    "read_jsonl",
    "rfc3339",
    "watchlist",
    "write_jsonl",
]
