"""Flow records of the constructed network captures and the writers that put them in
each real format (Argus CSV, Zeek conn.log with IoT-23 labels, CICFlowMeter CSV).

A generator builds :class:`Flow` records with a Zeek-vocabulary connection state and the
label text of the format it targets; a writer renders them as that format's exporter
would, in start-time order (flow exporters write a flow when it ends: the writers add
that disorder back with ``shuffle_seconds`` so the readers' sort window is exercised).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path


@dataclass(slots=True)
class Flow:
    ts: float  # epoch seconds, flow start
    src: str
    sport: int
    dst: str
    dport: int
    proto: str  # tcp, udp, icmp
    dur: float  # seconds
    bout: int
    bin: int
    pout: int
    pin: int
    state: str  # Zeek conn_state: SF, S0, REJ, S1, OTH, RSTO, RSTR
    label: str


def public_ip(rng: random.Random) -> str:
    """A random globally routable-looking IPv4 address (not private, not reserved)."""
    while True:
        a = rng.randint(1, 223)
        if a in (10, 100, 127, 169, 172, 192, 198, 203) or a >= 224:
            continue
        return f"{a}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def exported_order(flows: list[Flow], rng: random.Random, shuffle_seconds: float) -> list[Flow]:
    """Start-time order, then displaced as an exporter writing at flow end would."""
    flows.sort(key=lambda f: f.ts)
    if shuffle_seconds <= 0:
        return flows
    keyed = [(f.ts + min(f.dur, shuffle_seconds) + rng.random() * 0.5, f) for f in flows]
    keyed.sort(key=lambda kv: kv[0])
    return [f for _, f in keyed]


# -- Argus -------------------------------------------------------------------------------
_ARGUS_TCP = {"SF": "FSPA_FSPA", "S0": "S_", "REJ": "S_RA", "S1": "SPA_SPA", "OTH": "SA_",
              "RSTO": "SRPA_SPA", "RSTR": "SPA_SRPA"}
_ARGUS_UDP = {"SF": "CON", "S0": "INT", "REJ": "RST", "OTH": "INT"}
ARGUS_HEADER = ("StartTime,Dur,Proto,SrcAddr,Sport,Dir,DstAddr,Dport,State,sTos,dTos,"
                "TotPkts,TotBytes,SrcBytes,Label")


def write_argus(path: Path, flows: Iterable[Flow]) -> int:
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        f.write(ARGUS_HEADER + "\n")
        for fl in flows:
            t = datetime.fromtimestamp(fl.ts, UTC).strftime("%Y/%m/%d %H:%M:%S.%f")
            if fl.proto == "tcp":
                state, d = _ARGUS_TCP.get(fl.state, "S_"), "   ->"
            elif fl.proto == "icmp":
                state, d = ("ECR" if fl.state == "SF" else "ECO"), "  <->"
            else:
                state, d = _ARGUS_UDP.get(fl.state, "INT"), "  <->"
            # Argus prints ICMP type/code "ports" in hex.
            sport = f"0x{fl.sport:04x}" if fl.proto == "icmp" else str(fl.sport)
            dport = f"0x{fl.dport:04x}" if fl.proto == "icmp" else str(fl.dport)
            f.write(f"{t},{fl.dur:.6f},{fl.proto},{fl.src},{sport},{d},{fl.dst},{dport},"
                    f"{state},0,0,{fl.pout + fl.pin},{fl.bout + fl.bin},{fl.bout},{fl.label}\n")
            n += 1
    return n


# -- Zeek ---------------------------------------------------------------------------------
ZEEK_FIELDS = ("ts uid id.orig_h id.orig_p id.resp_h id.resp_p proto service duration "
               "orig_bytes resp_bytes conn_state local_orig local_resp missed_bytes history "
               "orig_pkts orig_ip_bytes resp_pkts resp_ip_bytes tunnel_parents label "
               "detailed-label").split()
ZEEK_TYPES = ("time string addr port addr port enum string interval count count string "
              "bool bool count string count count count count set[string] string "
              "string").split()
_HISTORY = {"SF": "ShADadFf", "S0": "S", "REJ": "Sr", "S1": "ShADad", "OTH": "H",
            "RSTO": "ShADaR", "RSTR": "ShADar"}
_SERVICE = {53: "dns", 80: "http", 443: "ssl", 22: "ssh", 21: "ftp", 25: "smtp", 123: "ntp",
            1900: "-", 5353: "dns", 8883: "ssl"}
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def write_zeek(path: Path, flows: Iterable[Flow], rng: random.Random) -> int:
    """IoT-23 ``conn.log.labeled``: tab-separated, the last three values space-separated;
    ``label`` is ``"<label>   <detailed-label>"`` (``Benign   -``)."""
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        f.write("#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n"
                "#unset_field\t-\n#path\tconn\n#open\t2026-01-01-00-00-00\n")
        f.write("#fields\t" + "\t".join(ZEEK_FIELDS) + "\n")
        f.write("#types\t" + "\t".join(ZEEK_TYPES) + "\n")
        for fl in flows:
            uid = "C" + "".join(rng.choice(_B62) for _ in range(17))
            no_reply = fl.state in ("S0", "OTH")
            dur = "-" if no_reply and fl.dur == 0 else f"{fl.dur:.6f}"
            service = _SERVICE.get(fl.dport, "-") if fl.state in ("SF", "S1") else "-"
            history = _HISTORY.get(fl.state, "-") if fl.proto == "tcp" else "D"
            lab, _, det = fl.label.partition(" ")
            vals = [f"{fl.ts:.6f}", uid, fl.src, str(fl.sport), fl.dst, str(fl.dport),
                    fl.proto, service, dur,
                    "-" if no_reply and not fl.bout else str(fl.bout),
                    "-" if no_reply and not fl.bin else str(fl.bin), fl.state, "-", "-",
                    "0", history, str(fl.pout), str(fl.bout + 40 * fl.pout), str(fl.pin),
                    str(fl.bin + 40 * fl.pin)]
            f.write("\t".join(vals) + f"\t(empty)   {lab}   {det or '-'}\n")
            n += 1
        f.write("#close\t2026-01-01-23-59-59\n")
    return n


# -- CICFlowMeter (CIC-IDS2017 TrafficLabelling naming) -------------------------------------
CIC_COLUMNS = ("Flow ID", " Source IP", " Source Port", " Destination IP", " Destination Port",
               " Protocol", " Timestamp", " Flow Duration", " Total Fwd Packets",
               " Total Backward Packets", "Total Length of Fwd Packets",
               " Total Length of Bwd Packets", "FIN Flag Count", " SYN Flag Count",
               " RST Flag Count", " PSH Flag Count", " ACK Flag Count", " Label")
_FLAGS = {"SF": (1, 1, 0, 1, 1), "S0": (0, 1, 0, 0, 0), "REJ": (0, 1, 1, 0, 1),
          "S1": (0, 1, 0, 1, 1), "OTH": (0, 0, 0, 0, 1), "RSTO": (0, 1, 1, 1, 1),
          "RSTR": (0, 1, 1, 1, 1)}
_PROTO = {"tcp": 6, "udp": 17, "icmp": 1}


def cic2017_time(ts: float) -> str:
    """CIC-IDS2017's ``d/m/yyyy h:mm:ss`` on a 12-hour clock without AM/PM."""
    dt = datetime.fromtimestamp(ts, UTC)
    hour = dt.hour % 12 or 12
    return f"{dt.day}/{dt.month}/{dt.year} {hour}:{dt.minute:02d}:{dt.second:02d}"


def write_cic(path: Path, flows: Iterable[Flow]) -> int:
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        f.write(",".join(CIC_COLUMNS) + "\n")
        for fl in flows:
            p = _PROTO.get(fl.proto, 0)
            flags: Sequence[int] = _FLAGS.get(fl.state, (0,) * 5) if p == 6 else (0,) * 5
            fid = f"{fl.dst}-{fl.src}-{fl.dport}-{fl.sport}-{p}"
            f.write(",".join([fid, fl.src, str(fl.sport), fl.dst, str(fl.dport), str(p),
                              cic2017_time(fl.ts), str(round(fl.dur * 1e6)), str(fl.pout),
                              str(fl.pin), str(fl.bout), str(fl.bin),
                              *map(str, flags), fl.label]) + "\n")
            n += 1
        # CIC-IDS2017 files end with rows of empty values; readers must skip them.
        f.write("," * (len(CIC_COLUMNS) - 1) + "\n")
    return n
