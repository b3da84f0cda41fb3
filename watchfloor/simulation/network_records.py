"""What a flow sensor records beyond addresses, bytes and duration: the connection state,
packet counts and TCP flags (optional network fields, ``watchfloor.core.events``).

Real sensors differ, so the simulator's do too. Sensors at the NL and DE sites (and the
edge) write Zeek ``conn.log``-style records: ``conn_state`` (``SF`` completed, ``S0``
no reply, ``REJ`` rejected, ``RSTO``/``RSTR`` reset by the originator/responder,
``OTH``/``RSTRH`` no SYN seen: a reply or backscatter), packet counts, and the
``service`` Zeek's analysers name when a connection carried data on a well-known port.
Sensors at the FR and BE sites write NetFlow-style records: ``tcp_flags`` (the flags the
record's source sent, as letters) and packet counts, no connection state. A detector must
cope with both.

Scripts say what happened to a flow with a Zeek ``conn_state`` (or leave it out: a flow
that moved data both ways completed, one with nothing back had no reply);
:func:`record` turns that into what the flow's sensor writes. It consumes no randomness,
so it changes no other field of the stream.

>>> ev = {"sensor": "nl-tap-1", "protocol": "tcp", "bytes_out": 60, "bytes_in": 0}
>>> record(ev)["conn_state"], ev["packets_out"], ev["packets_in"]
('S0', 1, 0)
>>> ev = {"sensor": "fr-tap-2", "protocol": "tcp", "bytes_out": 9000, "bytes_in": 90000}
>>> record(ev)["tcp_flags"], "conn_state" in ev, ev["packets_out"], ev["packets_in"]
('FSPA', False, 10, 65)
>>> ev = {"sensor": "de-tap-1", "protocol": "tcp", "dst_port": 22, "bytes_out": 2_000,
...       "bytes_in": 3_000, "conn_state": "RSTO"}
>>> record(ev)["service"], ev["conn_state"]
('ssh', 'RSTO')
"""

from __future__ import annotations

from typing import Any

#: Site prefixes of the sensors that export NetFlow-style records (flags, no state).
NETFLOW_SITES: tuple[str, ...] = ("fr-", "be-")

#: Flags the source of a TCP record sent, for each Zeek state it can have.
_FLAGS: dict[str, str] = {
    "SF": "FSPA",  # handshake, data, FIN
    "S0": "S",  # SYN (and retries), nothing back
    "REJ": "S",  # SYN answered by RST: the reset is the responder's
    "RSTO": "SRPA",  # the source reset after (little) data: an aborted login, say
    "RSTR": "SPA",  # the responder reset
    "RSTOS0": "SR",
    "SH": "SF",
    "S1": "SA",
    "OTH": "A",
    "RSTRH": "R",
}

#: What Zeek's protocol analysers name when a connection carried data on these ports.
_SERVICES: dict[int, str] = {
    21: "ftp", 22: "ssh", 23: "telnet", 25: "smtp", 53: "dns", 80: "http", 123: "ntp",
    443: "ssl", 445: "smb", 587: "smtp", 993: "ssl", 3389: "rdp", 5432: "postgresql",
    8080: "http", 8443: "ssl",
}  # fmt: skip
_MSS = 1448  # TCP payload per full packet
_UDP_MAX = 1472


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def default_state(event: dict[str, Any]) -> str:
    """The Zeek state of a flow whose script gave none: completed if data came back."""
    return "SF" if event["bytes_in"] > 0 else "S0"


def _packets(proto: str, state: str, out: int, back: int) -> tuple[int, int]:
    if proto != "tcp":
        return max(1, _ceil_div(out, _UDP_MAX)), _ceil_div(back, _UDP_MAX) if back else 0
    if state in ("S0", "RSTOS0"):
        return max(1, min(3, out // 60)), 0  # one to three SYNs
    if state == "REJ":
        return 1, 1
    if state in ("OTH", "RSTRH", "SH"):
        return (1 if out else 0), (1 if back else 0)
    # Handshake and teardown packets plus full-size segments of data.
    return 3 + _ceil_div(out, _MSS), 2 + _ceil_div(back, _MSS)


def record(event: dict[str, Any]) -> dict[str, Any]:
    """Add what ``event``'s sensor records (state or flags, packets), in place; return it.

    A ``conn_state`` set by the script is the truth of what happened; NetFlow sensors
    replace it by the flags it implies (a ``tcp_flags`` the script set is kept).
    """
    proto = str(event.get("protocol", "tcp"))
    state = event.get("conn_state") or default_state(event)
    if "packets_out" not in event:
        out, back = _packets(proto, state, event["bytes_out"], event["bytes_in"])
        event["packets_out"], event["packets_in"] = out, back
    if str(event.get("sensor", "")).startswith(NETFLOW_SITES):
        event.pop("conn_state", None)
        if proto == "tcp" and "tcp_flags" not in event:
            event["tcp_flags"] = _FLAGS.get(state, "SA")
    else:
        event["conn_state"] = state
        event.pop("tcp_flags", None)  # Zeek records the state, not the flags
        service = _SERVICES.get(event.get("dst_port", 0))
        if service and event["bytes_in"] > 60 and state in ("SF", "RSTO", "RSTR"):
            event.setdefault("service", service)  # only what an analyser could see
    return event


def flow(
    src: str,
    dst: str,
    port: int,
    proto: str,
    bytes_out: int,
    bytes_in: int,
    duration_ms: float,
    sensor: str,
    country: str,
    state: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One network payload in the contract's field order; ``state`` is the Zeek
    ``conn_state`` (see :func:`record`), ``extra`` adds ``src_port``, ``tcp_flags`` ...

    >>> flow("10.20.0.1", "224.0.0.251", 5353, "udp", 80, 0, 0.0, "nl-tap-1", "NL", "S0")
    ... # doctest: +NORMALIZE_WHITESPACE
    {'src_ip': '10.20.0.1', 'dst_ip': '224.0.0.251', 'dst_port': 5353, 'protocol': 'udp',
     'bytes_out': 80, 'bytes_in': 0, 'duration_ms': 0.0, 'sensor': 'nl-tap-1',
     'country': 'NL', 'conn_state': 'S0'}
    """
    payload: dict[str, Any] = {
        "src_ip": src,
        "dst_ip": dst,
        "dst_port": port,
        "protocol": proto,
        "bytes_out": bytes_out,
        "bytes_in": bytes_in,
        "duration_ms": round(duration_ms, 2),
        "sensor": sensor,
        "country": country,
    }
    if state is not None:
        payload["conn_state"] = state
    payload.update(extra)
    return payload
