"""What one flow record says, for the network detectors: a probe, an answer, a real
connection; and a bounded, windowed distinct-count set.

Flow formats differ in what they record. Zeek ``conn.log`` has ``conn_state``; Argus
has a ``State`` of TCP flags seen from each side (``S_RA``: SYN answered by RST-ACK);
NetFlow-style exporters give ``tcp_flags`` letters; CICFlowMeter gives packet counts.
:func:`flow_kind` uses the best evidence present and falls back on size otherwise:

* ``PROBE``: an attempt that moved no real data (unanswered, rejected, reset, or only a
  handshake): what a scan, a brute-force attempt or spam to a closed port looks like.
* ``ANSWER``: the record's source is *responding* (SYN-ACK or RST backscatter from a
  host whose address was spoofed, a server port answering a high port): not an attempt
  by the source at all, so no scan or brute force by it.
* ``REAL``: a connection that moved data.

>>> from watchfloor.detectors.testkit import make_event
>>> probe = make_event("network", bytes_out=60, bytes_in=0, conn_state="S0")
>>> syn_ack = make_event("network", bytes_out=60, bytes_in=0, src_port=80, dst_port=51234)
>>> web = make_event("network", bytes_out=9_000, bytes_in=900_000)
>>> [flow_kind(e) for e in (probe, syn_ack, web)] == [PROBE, ANSWER, REAL]
True
>>> flow_kind(make_event("network", bytes_out=120, bytes_in=60, conn_state="S_RA"))
1
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from typing import Any

__all__ = [
    "ANSWER",
    "FAILED_STATES",
    "PROBE",
    "REAL",
    "WindowSet",
    "check_mid_alarm",
    "flow_kind",
    "human_bytes",
    "is_failed",
]

REAL, PROBE, ANSWER = 0, 1, 2

#: Connection states meaning "attempted, no data exchanged": Zeek S0 (no reply), REJ
#: (rejected), RSTOS0 (SYN then RST, no SYN-ACK), RSTO (originator reset), and Argus
#: states whose responder side is empty or only a reset (``S_``, ``S_RA``, ``S_R``),
#: Argus UDP ``INT``/``REQ`` (no reply) and ``URP`` (port unreachable).
FAILED_STATES = frozenset(
    {"S0", "REJ", "RSTOS0", "RSTO", "S_", "S_RA", "S_R", "SR_RA", "SR_R", "SR_", "INT",
     "REQ", "URP", "URH", "URN"}
)
#: States meaning the record's source answered rather than initiated: Zeek SH/SHR (half
#: open, FIN without SYN-ACK), RSTRH (responder SYN-ACK then RST), RSTR, OTH (mid-stream,
#: no SYN seen); SYN-ACK or RST backscatter shows up as these.
ANSWER_STATES = frozenset({"SH", "SHR", "RSTRH", "RSTR", "OTH"})
#: Established states: SF, S1, S2, S3 (Zeek), CON/FIN/RSP (Argus).
_FLAG_LETTERS = frozenset("FSRPAUEC")


def _flags(value: Any) -> frozenset[str]:
    return frozenset(c for c in str(value).upper() if c in _FLAG_LETTERS)


def flow_kind(event: Mapping[str, Any], probe_max_bytes: int = 1_000,
              probe_max_in: int = 300) -> int:
    """``PROBE``, ``ANSWER`` or ``REAL`` for one flow (see the module docstring)."""
    sport = event.get("src_port")
    if isinstance(sport, int) and 0 < sport < 1024 <= event["dst_port"]:
        return ANSWER  # a service port talking to a client port: the reply direction
    state = event.get("conn_state")
    small = (event["bytes_out"] + event["bytes_in"] <= probe_max_bytes
             and event["bytes_in"] <= probe_max_in)
    if state:
        st = str(state).upper()
        if st in ANSWER_STATES:
            return ANSWER
        if st in FAILED_STATES:
            # RSTO after real data is an aborted real connection, not a probe.
            return PROBE if st != "RSTO" or small else REAL
        if "_" in st:  # Argus "src flags _ dst flags"
            src, _, dst = st.partition("_")
            if "S" not in src and ("R" in src or "A" in src) and not dst:
                return ANSWER
            if "P" not in src and "P" not in dst:
                return PROBE if small else REAL
            return REAL
    flags = event.get("tcp_flags")
    if flags:
        f = _flags(flags)
        if f and "S" not in f and f <= {"R", "A"}:
            return ANSWER  # bare RST / RST-ACK: backscatter
    packets = event.get("packets_out")
    if isinstance(packets, int) and packets > 4:
        return REAL
    if event["bytes_in"] > 0 and str(event["protocol"]).lower() == "udp":
        return REAL  # an answered datagram (DNS, NTP): small by nature, not a probe
    return PROBE if small else REAL


def is_failed(event: Mapping[str, Any]) -> bool | None:
    """True if the connection state says the attempt failed, False if it says it
    worked, None when the record has no state."""
    state = event.get("conn_state")
    if not state:
        return None
    return str(state).upper() in FAILED_STATES


def human_bytes(n: float) -> str:
    """``1234567`` -> ``'1.2 MB'`` style sizes for reasons.

    >>> human_bytes(950), human_bytes(800_000_000), human_bytes(2_500_000_000)
    ('950 B', '800 MB', '2.5 GB')
    """
    for unit in ("B", "kB", "MB", "GB"):
        if n < 999.5:
            return f"{n:.0f} {unit}" if n >= 10 or unit == "B" else f"{n:.2g} {unit}"
        n /= 1000.0
    return f"{n:.1f} TB"


def check_mid_alarm(mid: float, alarm: float) -> None:
    if not alarm > mid:
        raise ValueError(f"alarm ({alarm}) must be greater than mid ({mid})")


class WindowSet:
    """Distinct members seen in the last ``window`` seconds, at most ``cap`` of them.

    Each member is remembered with the time it was last seen and whether any of its
    flows was ``REAL`` (moved data). ``preview`` answers "how many probed-only and how
    many real members would there be after adding this one" without changing anything
    (for ``score_one``); ``add`` records it (for ``learn_one``). Members are kept in
    last-seen order, so stale ones form a prefix and both calls are O(1) amortised.
    Beyond ``cap`` the oldest member is forgotten, so counts saturate at ``cap``.

    >>> w = WindowSet(window=60.0, cap=3)
    >>> for i, host in enumerate(["a", "b", "c", "d"]):
    ...     w.add(host, real=False, now=float(i))
    >>> len(w), w.preview("e", False, 10.0), w.preview("b", True, 10.0)
    (3, (4, 0), (2, 1))
    >>> w.preview("x", False, 200.0)   # everything else is stale by then
    (1, 0)
    """

    __slots__ = ("_m", "cap", "n_real", "window")

    def __init__(self, window: float, cap: int) -> None:
        self.window = window
        self.cap = cap
        self._m: OrderedDict[Hashable, list[Any]] = OrderedDict()
        self.n_real = 0

    def __len__(self) -> int:
        return len(self._m)

    def _stale(self, now: float) -> tuple[int, int]:
        cutoff = now - self.window
        n = r = 0
        for t, real in self._m.values():
            if t >= cutoff:
                break
            n += 1
            r += real
        return n, r

    def preview(self, member: Hashable, real: bool, now: float) -> tuple[int, int]:
        """(probed-only members, members with a real flow) after adding ``member``."""
        stale, stale_real = self._stale(now)
        n, n_real = len(self._m) - stale, self.n_real - stale_real
        cur = self._m.get(member)
        if cur is None or cur[0] < now - self.window:
            n += 1
            n_real += real
        elif real and not cur[1]:
            n_real += 1
        return min(n, self.cap + 1) - n_real, n_real

    def add(self, member: Hashable, real: bool, now: float) -> None:
        m = self._m
        cur = m.get(member)
        if cur is None:
            m[member] = [now, real]
            self.n_real += real
        else:
            if cur[0] < now - self.window and cur[1]:
                self.n_real -= 1  # its old real flow has left the window
                cur[1] = False
            cur[0] = max(cur[0], now)
            if real and not cur[1]:
                cur[1] = True
                self.n_real += 1
            m.move_to_end(member)
        cutoff = now - self.window
        while m:
            t, r = next(iter(m.values()))
            if t >= cutoff and len(m) <= self.cap:
                break
            m.popitem(last=False)
            self.n_real -= r

    def __getstate__(self) -> dict[str, Any]:
        return {s: getattr(self, s) for s in self.__slots__}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            setattr(self, k, v)


def log_ratio(x: float, ref: float) -> float:
    """``log10(x / ref)`` with both floored at 1 (sizes and counts)."""
    return math.log10(max(x, 1.0) / max(ref, 1.0))
