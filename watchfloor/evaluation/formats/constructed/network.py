"""Constructed labelled network captures that differ from the simulator: another address
plan, other services, real-looking timing (jitter, retries, paired flows, missed beats),
and the benign look-alikes real networks have (P2P, NAT gateways, backscatter, pollers,
multicast, monitoring sweeps).

* :func:`campus` (Argus, CTU-13 labels): background traffic, a horizontal scanner, a
  jittery HTTP bot beacon with paired flows, an IRC bot that also spams, P2P and NAT.
* :func:`iot` (Zeek conn.log, IoT-23 labels): Mirai-style scanning of 23/2323, C2 retries
  alternating 3 s / 7 s then a heartbeat, an Okiru-style 37215 scanner, cloud pollers.
* :func:`workstation` (CICFlowMeter, CIC-IDS2017 labels): an office day with FTP-Patator,
  SSH-Patator, a PortScan and a DoS Hulk, antivirus/CDN pollers and a monitoring sweep.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from watchfloor.evaluation.formats.constructed.flows import Flow, public_ip

#: 2025-03-10T13:00:00Z (campus), 2025-06-02T00:00:00Z (IoT), 2017-07-06T08:00:00Z (CIC).
CAMPUS_START, IOT_START, CIC_START = 1_741_611_600.0, 1_748_822_400.0, 1_499_328_000.0


class _Net:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.flows: list[Flow] = []

    def add(self, ts: float, src: str, dst: str, dport: int, proto: str = "tcp",
            state: str = "SF", bout: int = 0, bin: int = 0, dur: float = 0.0,
            label: str = "", pout: int | None = None, pin: int | None = None) -> None:
        r = self.rng
        if pout is None:
            pout = max(1, bout // 900 + 1) if state not in ("S0", "OTH") else r.randint(1, 3)
        if pin is None:
            pin = 0 if state in ("S0",) else max(1, bin // 1200 + 1)
        self.flows.append(Flow(ts, src, r.randint(1024, 65535), dst, dport, proto, dur, bout,
                               bin, pout, pin, state, label))

    def web(self, t: float, src: str, dst: str, label: str, big: float = 1.0) -> None:
        r = self.rng
        self.add(t, src, dst, r.choice((443, 443, 443, 80)), bout=r.randint(300, 3000),
                 bin=int(r.lognormvariate(9.0, 1.5) * big), dur=r.expovariate(1 / 4.0),
                 label=label)

    def poller(self, src: str, dst: str, port: int, start: float, end: float, period: float,
               jitter: float, label: str, proto: str = "tcp", size: tuple[int, int] = (400, 900),
               ) -> None:
        t = start + self.rng.random() * period
        while t < end:
            self.add(t, src, dst, port, proto, bout=size[0], bin=size[1],
                     dur=0.05 + self.rng.random() * 0.3, label=label)
            t += period + self.rng.uniform(-jitter, jitter)


def _poisson(rng: random.Random, start: float, end: float, rate: float) -> list[float]:
    out, t = [], start
    while True:
        t += rng.expovariate(rate)
        if t >= end:
            return out
        out.append(t)


def campus(seed: int = 1, scale: float = 1.0, hours: float = 2.0) -> list[Flow]:
    """A campus network in Argus flows with CTU-13 labels (see the module docstring)."""
    n = _Net(seed)
    r = n.rng
    t0, t1 = CAMPUS_START, CAMPUS_START + hours * 3600
    servers = [public_ip(r) for _ in range(600)]
    weights = [1.0 / (i + 1) for i in range(len(servers))]
    resolver = "172.16.0.53"
    bg_hosts = [f"172.16.{r.randint(2, 60)}.{r.randint(2, 254)}" for _ in range(int(250 * scale))]
    bg = "flow=Background-TCP-Established"
    for h in bg_hosts:
        for t in _poisson(r, t0, t1, 1 / 90.0):
            dst = r.choices(servers, weights)[0]
            if r.random() < 0.5:
                n.add(t - 0.05, h, resolver, 53, "udp", bout=70, bin=180, dur=0.01,
                      label="flow=To-Background-UDP-CVUT-DNS-Server")
            n.web(t, h, dst, bg)
    # Inbound background to the campus web server.
    for t in _poisson(r, t0, t1, 0.5 * scale):
        n.add(t, public_ip(r), "172.16.1.10", r.choice((80, 443)), bout=r.randint(300, 900),
              bin=r.randint(2000, 90000), dur=r.random() * 3, label="flow=Background-Established")
    normal = [f"172.16.70.{i}" for i in range(10, 16)]
    for i, h in enumerate(normal):
        lab = f"flow=From-Normal-V42-Host{i}"
        for t in _poisson(r, t0, t1, 1 / 60.0):
            n.web(t, h, r.choices(servers, weights)[0], lab)
        for ntp in ("195.113.144.201", "147.231.2.6"):
            n.poller(h, ntp, 123, t0, t1, 1024, 1, lab, "udp", (76, 76))
        n.poller(h, "224.0.0.251", 5353, t0, t1, 120, 0.2, lab, "udp", (120, 0))
        n.poller(h, "239.255.255.250", 1900, t0, t1, 60, 0.1, lab, "udp", (170, 0))
    av, cdn = "92.52.176.19", "151.101.2.133"
    n.poller(normal[0], av, 443, t0, t1, 302, 0.5, "flow=From-Normal-V42-Antivirus-Update")
    n.poller(normal[1], av, 443, t0, t1, 302, 0.5, "flow=From-Normal-V42-Antivirus-Update")
    n.poller(normal[2], cdn, 443, t0, t1, 900, 1.0, "flow=From-Normal-V42-CDN")
    # P2P client: thousands of peers on high ports, many unanswered, real payload too.
    p2p, peers = "172.16.71.5", [public_ip(r) for _ in range(int(3000 * scale))]
    for t in _poisson(r, t0, t1, len(peers) / (hours * 3600) * 1.3):
        ok = r.random() < 0.55
        n.add(t, p2p, r.choice(peers), r.choice((6881, 51413, r.randint(10000, 65000))),
              r.choice(("tcp", "udp")), "SF" if ok else r.choice(("S0", "REJ")),
              bout=r.randint(100, 60000) if ok else 0, bin=r.randint(100, 200000) if ok else 0,
              dur=r.random() * 20 if ok else 0.0, label="flow=From-Normal-V42-P2P-Client")
    # NAT/VPN gateway: many clients behind one address.
    for t in _poisson(r, t0, t1, 0.8 * scale):
        n.web(t, "172.16.0.1", r.choices(servers, weights)[0], "flow=From-Normal-V42-NAT-Gateway")
    # Backscatter: a spoofed-SYN victim's SYN-ACKs reach random campus addresses.
    victim = "198.51.100.77"
    for t in _poisson(r, t0 + 1800, t0 + 2400, 0.4):
        n.add(t, victim, f"172.16.{r.randint(2, 60)}.{r.randint(2, 254)}",
              r.randint(1024, 65535), state="OTH", bout=60, pout=1, pin=0,
              label="flow=From-Normal-Backscatter")
    # Bot 1: HTTP C2 beacon, 33 s with 28/40/42 s variants, two flows per beat, 5 % missed.
    bot1, c2a = "172.16.5.21", "185.141.27.90"
    cc = "flow=From-Botnet-V42-TCP-CC6-Plain-HTTP-Encrypted-Data"
    t = t0 + 300 + r.random() * 60
    while t < t1:
        if r.random() > 0.05:
            n.add(t, bot1, c2a, 80, bout=r.randint(280, 340), bin=r.randint(500, 700), dur=0.4,
                  label=cc)
            n.add(t + r.uniform(0.05, 0.6), bot1, c2a, 80, bout=220, bin=r.randint(200, 260),
                  dur=0.2, label=cc)
        t += r.choices((33.0, 28.0, 40.0, 42.0), (0.7, 0.1, 0.1, 0.1))[0] + r.uniform(-1, 1)
    # Bot 1: horizontal scan of 445 over 122 campus hosts within a minute.
    ts = t0 + 2400
    for k in range(122):
        n.add(ts + k * 0.45 + r.random() * 0.2, bot1, f"172.16.{80 + k // 60}.{10 + k % 60}",
              445, state=r.choice(("S0", "S0", "S0", "REJ")), bout=0, dur=0.0,
              label="flow=From-Botnet-V42-TCP-Attempt-Scan-445")
    # Bot 2: IRC C2 with 30 % jitter, then a spam run.
    bot2, irc = "172.16.7.33", "89.248.172.16"
    irc_lab = "flow=From-Botnet-V44-TCP-CC-IRC"
    t = t0 + 120
    while t < t1:
        n.add(t, bot2, irc, 6667, bout=r.randint(60, 200), bin=r.randint(60, 400),
              dur=r.random() * 2, label=irc_lab)
        t += 60 * r.uniform(0.7, 1.3)
    mx = [public_ip(r) for _ in range(int(300 * scale) + 20)]
    for t in _poisson(r, t0 + 3600, t0 + 4200, len(mx) / 600 * 1.5):
        ok = r.random() < 0.4
        n.add(t, bot2, r.choice(mx), 25, state="SF" if ok else r.choice(("S0", "REJ")),
              bout=r.randint(1500, 9000) if ok else 0, bin=r.randint(200, 600) if ok else 0,
              dur=r.random() * 3 if ok else 0.0, label="flow=From-Botnet-V44-TCP-Attempt-SPAM")
    return n.flows


def iot(seed: int = 2, scale: float = 1.0, hours: float = 3.0) -> list[Flow]:
    """A home/IoT network in Zeek conn.log with IoT-23 labels."""
    n = _Net(seed)
    r = n.rng
    t0, t1 = IOT_START, IOT_START + hours * 3600
    ben = "Benign -"
    router = "192.168.100.1"
    devices = [f"192.168.100.{i}" for i in range(20, 20 + max(6, int(15 * scale)))]
    vendor = "52.28.14.91"
    for i, d in enumerate(devices):
        cloud = vendor if i % 5 else public_ip(r)  # most share one vendor cloud
        n.poller(d, cloud, 8883 if i % 2 else 443, t0, t1, 60 if i % 5 else 300, 0.2, ben,
                 size=(150, 90))
        n.poller(d, router, 53, t0, t1, 45, 20, ben, "udp", (60, 120))
        n.poller(d, "162.159.200.123", 123, t0, t1, 600, 2, ben, "udp", (76, 76))
        if i % 3 == 0:
            n.poller(d, "239.255.255.250", 1900, t0, t1, 30, 0.05, ben, "udp", (300, 0))
            n.poller(d, "224.0.0.251", 5353, t0, t1, 20, 0.05, ben, "udp", (90, 0))
    servers = [public_ip(r) for _ in range(200)]
    for laptop in ("192.168.100.5", "192.168.100.6", "192.168.100.7"):
        for t in _poisson(r, t0, t1, 1 / 40.0):
            n.web(t, laptop, r.choice(servers), ben)
    cam, c2 = devices[3], "45.95.147.236"
    # C2: unreachable at first, retries alternate 3 s / 7 s; then a 90 s heartbeat.
    t, k = t0 + 900, 0
    while t < t0 + 1200:
        n.add(t, cam, c2, 48101, state="S0", bout=0, dur=0.0, label="Malicious C&C")
        t += 3.0 if k % 2 == 0 else 7.0
        k += 1
    while t < t1:
        n.add(t, cam, c2, 48101, bout=r.randint(40, 80), bin=r.randint(20, 60),
              dur=r.random(), label="Malicious C&C-HeartBeat")
        t += 90 * r.uniform(0.8, 1.2)
    # Mirai scanning: bursts of SYNs to random Internet hosts on 23 (90 %) and 2323.
    for start in (t0 + 1300, t0 + 5000):
        for t in _poisson(r, start, start + 1200, 3.0 * scale + 0.5):
            n.add(t, cam, public_ip(r), 23 if r.random() < 0.9 else 2323,
                  state="S0" if r.random() < 0.93 else "REJ", bout=0, dur=0.0,
                  label="Malicious PartOfAHorizontalPortScan")
    plug, c2b = devices[5], "193.142.146.35"
    n.poller(plug, c2b, 6738, t0 + 2000, t1, 120, 25, "Malicious C&C-HeartBeat",
             size=(60, 40))
    for t in _poisson(r, t0 + 2500, t0 + 3700, 1.5 * scale + 0.3):
        n.add(t, plug, public_ip(r), 37215, state="S0", bout=0, dur=0.0,
              label="Malicious PartOfAHorizontalPortScan")
    return n.flows


def workstation(seed: int = 3, scale: float = 1.0, hours: float = 9.0) -> list[Flow]:
    """An office day in CICFlowMeter flows with CIC-IDS2017 labels."""
    n = _Net(seed)
    r = n.rng
    t0 = CIC_START
    t1 = t0 + hours * 3600
    ben = "BENIGN"
    dc, web = "192.168.10.3", "192.168.10.50"
    hosts = [f"192.168.10.{i}" for i in range(5, 5 + max(6, int(12 * scale)))]
    servers = [public_ip(r) for _ in range(300)]
    for h in hosts:
        for t in _poisson(r, t0, t1, 1 / 45.0):
            n.web(t, h, r.choice(servers), ben)
            if r.random() < 0.3:
                n.add(t - 0.02, h, dc, 53, "udp", bout=60, bin=150, dur=0.002, label=ben)
        for t in _poisson(r, t0, t1, 1 / 600.0):
            for port in (88, 389, 445):
                n.add(t + r.random(), h, dc, port, bout=r.randint(300, 3000),
                      bin=r.randint(300, 6000), dur=r.random(), label=ben)
    n.poller(hosts[0], "23.38.97.12", 443, t0, t1, 302, 0.5, ben)  # antivirus update
    n.poller(hosts[3], "151.101.1.69", 443, t0, t1, 900, 1.0, ben)  # CDN
    # Monitoring server sweeping every workstation every 5 minutes (benign sweep).
    t = t0 + 30
    while t < t1:
        for k, h in enumerate(hosts):
            n.add(t + k * 0.2, "192.168.10.2", h, 5985, bout=800, bin=2500, dur=0.3, label=ben)
        t += 300
    for t in _poisson(r, t0, t1, 1 / 1200.0):
        n.add(t, hosts[1], web, 22, bout=r.randint(3000, 40000), bin=r.randint(3000, 90000),
              dur=r.uniform(60, 900), label=ben)  # an administrator's SSH sessions
    ftp_att, scan_att, dos_att = "205.174.165.73", "205.174.165.80", "205.174.165.90"

    def brute(start: float, minutes: float, port: int, lab: str, rate: float) -> None:
        for t in _poisson(r, start, start + minutes * 60, rate):
            n.add(t, ftp_att, web, port, state=r.choice(("SF", "SF", "RSTO")),
                  bout=r.randint(60, 200), bin=r.randint(80, 300), dur=r.uniform(0.2, 3),
                  label=lab)

    brute(t0 + 1.3 * 3600, 30 * scale + 5, 21, "FTP-Patator", 2.0)
    brute(t0 + 6.0 * 3600, 30 * scale + 5, 22, "SSH-Patator", 1.5)
    ports = r.sample(range(1, 65535), int(1000 * scale) + 50)
    ts = t0 + 5.9 * 3600
    for k, p in enumerate(ports):
        n.add(ts + k * 0.05, scan_att, web, p, state="REJ" if p not in (21, 22, 80) else "SF",
              bout=0, bin=0, dur=0.0, label="PortScan")
    for t in _poisson(r, t0 + 2.7 * 3600, t0 + 2.7 * 3600 + 300 * scale + 60, 40.0):
        n.add(t, dos_att, web, 80, bout=r.randint(300, 600), bin=r.randint(0, 400),
              state=r.choice(("SF", "S1", "RSTO")), dur=r.uniform(0.01, 5), label="DoS Hulk")
    return n.flows


NETWORK_CAPTURES: dict[str, tuple[str, Callable[..., list[Flow]]]] = {
    "campus": ("argus", campus),
    "iot": ("zeek", iot),
    "workstation": ("cicflowmeter", workstation),
}
