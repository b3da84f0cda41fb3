"""The simulator: labelled three-domain traffic (normal behaviour, threats and benign
look-alikes) and a multi-domain scenario, written to files or published to Kafka.
``common`` holds what every part shares (threat catalogue and labels, scenario clock, ids,
encoding, reference data); ``network``, ``financial`` and ``border`` each hold one domain's
population, normal traffic, look-alikes and threat campaigns, as mixins that
``simulator`` (:class:`Simulator` and its clock-driven script) combines;
``network_lookalikes`` and ``network_attacks`` what real networks add (P2P, NAT, backscatter,
pollers, multicast; horizontal scans, jittery beacons, brute force, spam, floods) and
``network_records`` the state/flags/packets a flow sensor writes; ``multidomain`` the
linked cross-domain attack; ``sinks`` the JSON-lines files and Kafka publishing.

It is one test among several, never the truth: detectors are also judged on real capture
formats (``watchfloor.evaluation``). May import ``watchfloor.core`` and ``watchfloor.kafka``;
nothing in the worker imports it.
"""

from watchfloor.simulation.common import (
    DEFAULT_START,
    LOOKALIKES,
    THREAT_DETECTORS,
    THREAT_DOMAINS,
    THREAT_TYPES,
    crossing_points,
    encode,
    haversine_km,
    high_risk_countries,
    lost_stolen,
    rfc3339,
    watchlist,
)
from watchfloor.simulation.multidomain import multidomain_scenario
from watchfloor.simulation.simulator import Simulator
from watchfloor.simulation.sinks import publish, read_jsonl, write_jsonl

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
