"""Network detectors, one module each; this module re-exports them (entry points and
older imports name ``watchfloor.detectors.network``).

All work on decoded network flow events (``src_ip``, ``dst_ip``, ``dst_port``,
``protocol``, ``bytes_out``, ``bytes_in``, ``duration_ms``, ``_ts``) and use the optional
fields ``conn_state``, ``tcp_flags``, ``packets_out``, ``packets_in``, ``src_port`` when
a record has them (:mod:`watchfloor.detectors.netflow`). Which addresses are internal is
the site's setting (:mod:`watchfloor.detectors.sites`, ``site.internal`` in
``topics.yaml``). Scores follow :mod:`watchfloor.detectors.calibration`: 0.9 is the
alarm point described in ``docs/threats.md``.

=================  ==========================================  =====================
detector           module                                      about
=================  ==========================================  =====================
``port_scan``      :mod:`~watchfloor.detectors.network_scan`    the scanning source
``beaconing``      :mod:`~watchfloor.detectors.network_beacon`  the beaconing source
``exfiltration``   :mod:`~watchfloor.detectors.network_volume`  the sending source
``flood``          :mod:`~watchfloor.detectors.network_volume`  the flooded target
``brute_force``    :mod:`~watchfloor.detectors.network_auth`    the guessing source
``spam``           :mod:`~watchfloor.detectors.network_auth`    the sending source
``flow_halfspace`` :mod:`~watchfloor.detectors.network_flow`    the flow's source
=================  ==========================================  =====================
"""

from __future__ import annotations

from watchfloor.detectors.network_auth import BruteForce, Spam
from watchfloor.detectors.network_beacon import Beaconing
from watchfloor.detectors.network_flow import FlowHalfSpace
from watchfloor.detectors.network_scan import PortScan
from watchfloor.detectors.network_volume import Exfiltration, Flood
from watchfloor.detectors.sites import DEFAULT_INTERNAL as INTERNAL_NETWORKS
from watchfloor.detectors.sites import is_internal as _is_internal

__all__ = [
    "INTERNAL_NETWORKS",
    "Beaconing",
    "BruteForce",
    "Exfiltration",
    "Flood",
    "FlowHalfSpace",
    "PortScan",
    "Spam",
    "_is_internal",
]
