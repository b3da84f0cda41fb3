"""Hand-built flow sequences modelled on what real captures contain (issue 10): the benign
look-alikes that fooled the first network detectors and the attacks they missed.

Flows carry the optional fields a Zeek ``conn.log`` gives (``conn_state``, ``src_port``)
only where the case says so; ``zeek=False`` builds size-only records (NetFlow without
flags), which the detectors must also handle.
"""

from __future__ import annotations

import random
from typing import Any

from watchfloor.detectors.testkit import START, make_event

Flow = dict[str, Any]


def flow(t: float, **kw: Any) -> Flow:
    return make_event("network", _ts=t, **kw)


def _ext(rng: random.Random) -> str:
    return f"{rng.choice((23, 31, 45, 62, 77, 89, 104, 151, 185))}.{rng.randrange(256)}." \
           f"{rng.randrange(256)}.{rng.randrange(1, 255)}"


def p2p_client(src: str = "10.5.0.20", t0: float = START, peers: int = 20_000,
               seconds: float = 3_600.0, seed: int = 0, zeek: bool = True) -> list[Flow]:
    """A BitTorrent client: thousands of peers, each on its own port (many on 6881), a
    large share of attempts failing (peers gone), the rest moving real payloads."""
    rng = random.Random(seed)
    out = []
    for i in range(peers):
        t = t0 + seconds * i / peers
        port = 6881 if rng.random() < 0.3 else rng.randrange(1024, 65535)
        failed = rng.random() < 0.45
        kw: dict[str, Any] = {"conn_state": rng.choice(("S0", "S0", "REJ"))} if zeek and failed \
            else ({"conn_state": "SF"} if zeek else {})
        out.append(flow(t, src_ip=src, dst_ip=_ext(rng), dst_port=port,
                        protocol=rng.choice(("tcp", "tcp", "udp")),
                        bytes_out=rng.randint(0, 120) if failed else rng.randint(2_000, 400_000),
                        bytes_in=0 if failed else rng.randint(2_000, 4_000_000),
                        duration_ms=rng.uniform(0, 3_000) if failed else rng.uniform(1e3, 6e5),
                        **kw))
    return out


def nat_gateway(src: str = "10.5.0.1", t0: float = START, n: int = 30_000,
                seconds: float = 3_600.0, seed: int = 1, zeek: bool = True) -> list[Flow]:
    """A campus NAT/VPN gateway: one address for thousands of users' connections."""
    rng = random.Random(seed)
    pool = [_ext(rng) for _ in range(8_000)]
    out = []
    for i in range(n):
        failed = rng.random() < 0.06
        port = rng.choice((443,) * 12 + (80,) * 4 + (993, 22, 8080, 5222, 3478, 1194))
        kw: dict[str, Any] = {"conn_state": "S0" if failed else "SF"} if zeek else {}
        out.append(flow(t0 + seconds * i / n, src_ip=src, dst_ip=rng.choice(pool),
                        dst_port=port, bytes_out=rng.randint(40, 100) if failed
                        else int(rng.lognormvariate(7.5, 1.3)) + 300,
                        bytes_in=0 if failed else int(rng.lognormvariate(10, 1.6)) + 500,
                        duration_ms=rng.uniform(1, 4e5), **kw))
    return out


def backscatter(local: str = "10.5.0.80", t0: float = START, n: int = 3_000,
                seconds: float = 600.0, seed: int = 2) -> list[Flow]:
    """A local web server answering a spoofed SYN flood: SYN-ACKs from port 80 to random
    addresses and high ports (the record's source is the responder), plus RSTs arriving
    from remote hosts that received SYN-ACKs in this site's name."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        t = t0 + seconds * i / n
        if i % 3:
            out.append(flow(t, src_ip=local, src_port=80, dst_ip=_ext(rng),
                            dst_port=rng.randrange(1024, 65535), bytes_out=0, bytes_in=0,
                            conn_state=rng.choice(("SH", "OTH", "SHR")), duration_ms=0))
        else:
            out.append(flow(t, src_ip=_ext(rng), src_port=rng.randrange(1024, 65535),
                            dst_ip=f"10.5.{rng.randrange(4)}.{rng.randrange(1, 254)}",
                            dst_port=rng.randrange(1024, 65535), bytes_out=40, bytes_in=0,
                            tcp_flags="R", duration_ms=0))
    return out


def poller(src: str, dst: str, period: float, n: int, t0: float = START, jitter: float = 0.002,
           seed: int = 3, port: int = 443) -> list[Flow]:
    """A benign poller (antivirus update check, CDN keep-alive): very regular."""
    rng = random.Random(seed)
    out, t = [], t0
    for _ in range(n):
        t += period * (1 + rng.uniform(-jitter, jitter))
        out.append(flow(t, src_ip=src, dst_ip=dst, dst_port=port, bytes_out=rng.randint(400, 700),
                        bytes_in=rng.randint(300, 2_000), duration_ms=rng.uniform(50, 400),
                        conn_state="SF"))
    return out


def popular_service(dst: str, hosts: int = 60, n: int = 2_000, t0: float = START,
                    seconds: float = 86_400.0, seed: int = 4) -> list[Flow]:
    """Many internal hosts using one external service (an update server, a CDN)."""
    rng = random.Random(seed)
    times = sorted(t0 + rng.uniform(0, seconds) for _ in range(n))
    return [flow(t, src_ip=f"10.6.{h // 250}.{h % 250 + 1}", dst_ip=dst, dst_port=443,
                 bytes_out=rng.randint(500, 20_000), bytes_in=rng.randint(1_000, 5_000_000),
                 conn_state="SF")
            for t, h in ((t, rng.randrange(hosts)) for t in times)]


def multicast(src: str = "10.5.0.30", t0: float = START, n: int = 500) -> list[Flow]:
    """SSDP, mDNS, LLMNR and a vendor discovery protocol, all on timers."""
    out = []
    for i in range(n):
        for dst, port, period in (("239.255.255.250", 1900, 30.0), ("224.0.0.251", 5353, 60.0),
                                  ("224.0.0.252", 5355, 45.0), ("239.192.0.1", 8612, 20.0),
                                  ("10.5.0.255", 9999, 30.0)):
            out.append(flow(t0 + i * period, src_ip=src, dst_ip=dst, dst_port=port,
                            protocol="udp", bytes_out=180, bytes_in=0, conn_state="S0"))
    out.sort(key=lambda e: e["_ts"])
    return out


def horizontal_scan(src: str = "10.5.1.66", t0: float = START, hosts: int = 122,
                    port: int = 445, seconds: float = 60.0, seed: int = 5,
                    zeek: bool = True) -> list[Flow]:
    """One port across many hosts in a minute (the labelled scanner the issue missed)."""
    rng = random.Random(seed)
    out = []
    for i in range(hosts):
        st = rng.choice(("S0", "S0", "S0", "REJ", "RSTO"))
        kw: dict[str, Any] = {"conn_state": st} if zeek else {}
        out.append(flow(t0 + seconds * i / hosts, src_ip=src,
                        dst_ip=f"10.7.{i // 250}.{i % 250 + 1}", dst_port=port,
                        bytes_out=0 if zeek else rng.randint(40, 80),
                        bytes_in=0, duration_ms=0.5, **kw))
    return out


def nmap_vertical(src: str = "10.5.1.77", t0: float = START, hosts: int = 45,
                  ports: int = 100, seed: int = 6) -> list[Flow]:
    """Nmap's port phase: about 100 ports on each of ~45 hosts, host after host."""
    rng = random.Random(seed)
    plist = rng.sample(range(1, 10_000), ports)
    out, t = [], t0
    for h in range(hosts):
        for p in plist:
            t += rng.uniform(0.005, 0.05)
            open_ = rng.random() < 0.03
            out.append(flow(t, src_ip=src, dst_ip=f"10.8.0.{h + 1}", dst_port=p,
                            bytes_out=0, bytes_in=0, duration_ms=0.2,
                            conn_state="RSTO" if open_ else rng.choice(("REJ", "S0"))))
    return out


def jittery_beacon(src: str = "10.5.2.9", dst: str = "45.9.20.33", t0: float = START,
                   n: int = 60, seed: int = 7) -> list[Flow]:
    """A 33 s beacon with 28/40/42 s variants, each beat a pair of sub-second flows."""
    rng = random.Random(seed)
    out, t = [], t0
    for _ in range(n):
        t += rng.choice((33, 33, 33, 28, 40, 42)) + rng.uniform(-0.5, 0.5)
        out.append(flow(t, src_ip=src, dst_ip=dst, dst_port=80, bytes_out=rng.randint(300, 500),
                        bytes_in=rng.randint(200, 900), duration_ms=rng.uniform(100, 600),
                        conn_state="SF"))
        out.append(flow(t + rng.uniform(0.1, 0.9), src_ip=src, dst_ip=dst, dst_port=80,
                        bytes_out=rng.randint(300, 500), bytes_in=rng.randint(200, 900),
                        duration_ms=rng.uniform(100, 600), conn_state="SF"))
    return out


def mirai_retries(src: str = "192.168.1.195", dst: str = "185.244.25.10", t0: float = START,
                  n: int = 80, seed: int = 8) -> list[Flow]:
    """Mirai's C2 connection loop: attempts alternating 3 s and 7 s apart, most refused."""
    rng = random.Random(seed)
    out, t = [], t0
    for i in range(n):
        t += (3.0 if i % 2 else 7.0) + rng.uniform(-0.3, 0.3)
        st = "S0" if rng.random() < 0.7 else "REJ"
        out.append(flow(t, src_ip=src, dst_ip=dst, dst_port=23, bytes_out=0, bytes_in=0,
                        duration_ms=rng.uniform(0, 3_000), conn_state=st))
    return out


def password_guessing(src: str = "10.5.3.50", dst: str = "10.9.0.21", port: int = 22,
                      t0: float = START, n: int = 120, seed: int = 9,
                      zeek: bool = True) -> list[Flow]:
    """Hydra against SSH or FTP: one short connection per guess, nearly identical sizes."""
    rng = random.Random(seed)
    base_out, base_in = (2_100, 2_900) if port == 22 else (190, 420)
    out, t = [], t0
    for _ in range(n):
        t += rng.uniform(0.8, 3.0)
        kw: dict[str, Any] = {"conn_state": "SF"} if zeek else {}
        out.append(flow(t, src_ip=src, dst_ip=dst, dst_port=port,
                        bytes_out=base_out + rng.randint(0, 60),
                        bytes_in=base_in + rng.randint(0, 60),
                        duration_ms=rng.uniform(500, 4_000), **kw))
    return out


def spam_run(src: str = "10.5.4.61", t0: float = START, n: int = 300, seed: int = 10,
             seconds: float = 1_800.0) -> list[Flow]:
    """A spam bot: SMTP to hundreds of MX hosts, most attempts refused or empty."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        ok = rng.random() < 0.3
        out.append(flow(t0 + seconds * i / n, src_ip=src, dst_ip=_ext(rng), dst_port=25,
                        bytes_out=rng.randint(2_000, 9_000) if ok else rng.randint(0, 400),
                        bytes_in=rng.randint(300, 900) if ok else 0,
                        conn_state="SF" if ok else rng.choice(("REJ", "S0", "RSTO")),
                        duration_ms=rng.uniform(100, 5_000)))
    return out


def mail_server(src: str = "10.5.0.25", t0: float = START, n: int = 3_000, seed: int = 11,
                seconds: float = 86_400.0) -> list[Flow]:
    """A legitimate outbound MTA: steady deliveries to many MX hosts, few failures."""
    rng = random.Random(seed)
    pool = [_ext(rng) for _ in range(600)]
    out = []
    for i in range(n):
        ok = rng.random() < 0.95
        out.append(flow(t0 + seconds * i / n, src_ip=src, dst_ip=rng.choice(pool), dst_port=25,
                        bytes_out=rng.randint(3_000, 200_000) if ok else 200,
                        bytes_in=rng.randint(400, 1_500), duration_ms=rng.uniform(200, 9_000),
                        conn_state="SF" if ok else "RSTO"))
    return out


def flood(dst: str = "10.5.0.80", t0: float = START, n: int = 14_000, seconds: float = 300.0,
          seed: int = 12) -> list[Flow]:
    """A 14k-flow SYN flood on one web server from many spoofed sources."""
    rng = random.Random(seed)
    return [flow(t0 + seconds * i / n, src_ip=_ext(rng), dst_ip=dst, dst_port=80,
                 bytes_out=60, bytes_in=0, duration_ms=0.0, conn_state="S0")
            for i in range(n)]
