"""Network traffic: the internal hosts, their ordinary flows and the background's network
look-alikes (:class:`NetworkTraffic`, mixed into the simulator), and the clock-driven
network look-alikes and threat campaigns (:class:`NetworkScript`, mixed into the script).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from watchfloor.simulation.common import _BENIGN, HOUR, _pick, _sim, _weighted_cum

if TYPE_CHECKING:
    from watchfloor.simulation.simulator import Simulator

# Background share of the labelled look-alikes that are kinds of traffic rather than
# clock-driven scripts (per domain's background events).
P_PROXY = 0.05
P_DOWNLOAD = 0.004
P_DNS = 0.12
P_BANKING = 0.02

# Public-looking first octets for synthetic external addresses (no private/reserved ones).
_PUBLIC_OCTETS: tuple[int, ...] = (
    13, 20, 23, 31, 34, 35, 37, 45, 46, 51, 52, 54, 62, 77, 78, 80, 81, 82, 85, 87, 89,
    91, 93, 94, 104, 108, 130, 140, 141, 145, 146, 151, 157, 176, 178, 185, 188, 193, 194,
    195, 212, 213, 217,
)  # fmt: skip

_SITES: tuple[str, ...] = ("NL", "DE", "FR", "BE")

_PROXY_IPS: tuple[str, ...] = ("10.0.0.11", "10.0.0.12", "10.0.0.13")
_NTP_SERVER = "10.0.0.123"
_DNS_SERVERS: tuple[str, ...] = ("10.0.0.53", "10.0.1.53")
_BANK_IPS: tuple[str, ...] = ("193.0.14.20", "193.0.14.21")

@dataclass(slots=True)
class Host:
    ip: str
    kind: str  # "workstation" | "server" | "backup"
    country: str
    sensor: str
    mu_out: float
    sigma_out: float
    cap_out: int
    mu_in: float
    favourites: tuple[str, ...]
    ports: tuple[int, ...]
    port_cum: tuple[float, ...]
    account_id: str | None = None



class NetworkTraffic:
    """The simulator's network population and background flows."""

    @staticmethod
    def _public_ip(rng: random.Random) -> str:
        return (
            f"{rng.choice(_PUBLIC_OCTETS)}.{rng.randrange(256)}."
            f"{rng.randrange(256)}.{rng.randrange(1, 255)}"
        )

    def _build_hosts(self, rng: random.Random, n: int) -> None:
        n_servers = max(10, n // 10)
        n_ws = n - n_servers
        self.workstations: list[Host] = []
        self.servers: list[Host] = []
        for i in range(n_ws):
            site = _SITES[i % len(_SITES)]
            favs = tuple(self._popular[_pick(rng, self._popular_cum)] for _ in range(8))
            self.workstations.append(
                Host(
                    ip=f"10.20.{i // 250}.{i % 250 + 1}",
                    kind="workstation",
                    country=site,
                    sensor=f"{site.lower()}-tap-{i % 3 + 1}",
                    # Per-host habit: each workstation has its own typical upload size.
                    mu_out=math.log(rng.uniform(1_500, 8_000)),
                    sigma_out=rng.uniform(0.7, 1.1),
                    cap_out=100_000,
                    mu_in=math.log(rng.uniform(8_000, 60_000)),
                    favourites=favs,
                    ports=(443, 80, 8443, 993, 22),
                    port_cum=_weighted_cum((0.84, 0.1, 0.03, 0.02, 0.01)),
                    account_id=None,
                )
            )
        for j in range(n_servers):
            site = _SITES[j % len(_SITES)]
            favs = tuple(rng.choice(self._ext_pool) for _ in range(4))
            self.servers.append(
                Host(
                    ip=f"10.10.{j // 250}.{j % 250 + 1}",
                    kind="server",
                    country=site,
                    sensor=f"{site.lower()}-dc-tap-{j % 2 + 1}",
                    mu_out=math.log(rng.uniform(10_000, 80_000)),
                    sigma_out=rng.uniform(1.0, 1.4),
                    cap_out=20_000_000,
                    mu_in=math.log(rng.uniform(2_000, 20_000)),
                    favourites=favs,
                    ports=(443, 5432, 22, 8080, 9092),
                    port_cum=_weighted_cum((0.6, 0.15, 0.1, 0.1, 0.05)),
                )
            )
        # Backup servers: quiet by day, 1-5 GB to one target every night (nightly_backup).
        self.backup_hosts = [
            Host(
                ip=f"10.10.200.{k + 1}",
                kind="backup",
                country=_SITES[k % len(_SITES)],
                sensor="nl-dc-tap-1",
                mu_out=math.log(5_000),
                sigma_out=0.8,
                cap_out=2_000_000,
                mu_in=math.log(5_000),
                favourites=(self._ext_pool[-1],),
                ports=(443, 22),
                port_cum=_weighted_cum((0.7, 0.3)),
            )
            for k in range(3)
        ]
        self.backup_target = self._ext_pool[-1]
        all_hosts = self.workstations + self.servers + self.backup_hosts
        self.hosts = all_hosts
        # Heavy-tailed activity: a few hosts are far busier than most.
        weights = [rng.lognormvariate(0.0, 1.0) for _ in all_hosts]
        for k, h in enumerate(all_hosts):
            if h.kind == "backup":
                weights[k] = 0.05
        self._host_weights = weights
        self._host_cum = _weighted_cum(weights)

    # -- background events -----------------------------------------------------------------
    @staticmethod
    def _lognorm_int(rng: random.Random, mu: float, sigma: float, cap: int, floor: int = 1) -> int:
        # Resample above the cap rather than clip, so no point mass sits at the cap.
        for _ in range(8):
            v = rng.lognormvariate(mu, sigma)
            if v <= cap:
                return max(floor, int(v))
        return cap

    def flow(self, rng: random.Random, host: Host, dst: str | None = None) -> dict[str, Any]:
        """One ordinary flow following ``host``'s habits."""
        if dst is None:
            if host.kind == "server" and rng.random() < 0.5:
                dst = rng.choice(self.servers).ip
            elif rng.random() < 0.7:
                dst = rng.choice(host.favourites)
            else:
                dst = rng.choice(self._ext_pool)
        port = host.ports[_pick(rng, host.port_cum)]
        return {
            "src_ip": host.ip,
            "dst_ip": dst,
            "dst_port": port,
            "protocol": "tcp",
            "bytes_out": self._lognorm_int(rng, host.mu_out, host.sigma_out, host.cap_out),
            "bytes_in": self._lognorm_int(rng, host.mu_in, 1.5, 50_000_000),
            "duration_ms": round(rng.lognormvariate(math.log(300), 1.2), 2),
            "sensor": host.sensor,
            "country": host.country,
        }

    def _bg_network(self, rng: random.Random, t: float) -> tuple[dict[str, Any], dict]:
        r = rng.random()
        if r < P_PROXY:
            # shared_proxy: NAT/proxy egress reaching many distinct hosts, on 80/443 only.
            return {
                "src_ip": rng.choice(_PROXY_IPS),
                "dst_ip": rng.choice(self._ext_pool),
                "dst_port": 443 if rng.random() < 0.85 else 80,
                "protocol": "tcp",
                "bytes_out": self._lognorm_int(rng, math.log(1_200), 1.0, 200_000, 60),
                "bytes_in": self._lognorm_int(rng, math.log(30_000), 1.6, 50_000_000),
                "duration_ms": round(rng.lognormvariate(math.log(400), 1.0), 2),
                "sensor": "nl-edge-1",
                "country": "NL",
            }, _sim(lookalike="shared_proxy")
        host = self.hosts[_pick(rng, self._host_cum)]
        r -= P_PROXY
        if r < P_DOWNLOAD and host.kind == "workstation":
            # large_download: big bytes_in over long HTTPS, small upload.
            size = self._lognorm_int(rng, math.log(300e6), 1.0, 4_000_000_000, 20_000_000)
            return {
                "src_ip": host.ip,
                "dst_ip": rng.choice(self._popular[:40]),
                "dst_port": 443,
                "protocol": "tcp",
                "bytes_out": rng.randint(8_000, 90_000),
                "bytes_in": size,
                "duration_ms": round(size / rng.uniform(5e6, 60e6) * 1000, 2),
                "sensor": host.sensor,
                "country": host.country,
            }, _sim(lookalike="large_download")
        r -= P_DOWNLOAD
        if r < P_DNS:
            return {
                "src_ip": host.ip,
                "dst_ip": rng.choice(_DNS_SERVERS),
                "dst_port": 53,
                "protocol": "udp",
                "bytes_out": rng.randint(40, 120),
                "bytes_in": rng.randint(80, 500),
                "duration_ms": round(rng.uniform(0.5, 60.0), 2),
                "sensor": host.sensor,
                "country": host.country,
            }, _BENIGN
        r -= P_DNS
        payload = self.flow(rng, host)
        if r < P_BANKING and host.account_id is not None:
            # Online banking session: ties this workstation to its owner's account.
            payload["dst_ip"] = rng.choice(_BANK_IPS)
            payload["dst_port"] = 443
            payload["account_id"] = host.account_id
        return payload, _BENIGN



class NetworkScript:
    """Clock-driven network events: look-alikes and threat campaigns.

    A mixin of :class:`~watchfloor.simulation.simulator._Script`, which provides ``s``
    (the simulator), ``rng`` (the script's own random stream) and the helpers ``add``,
    ``at``, ``days``, ``count``, ``host``, ``account`` and ``campaign_times``.
    """

    s: Simulator
    rng: random.Random

    def nightly_backup(self) -> None:
        rng, s = self.rng, self.s
        for host in s.backup_hosts:
            for day in self.days():
                t = self.at(day, 1.0 + rng.uniform(0, 0.6))
                total = rng.uniform(1e9, 5e9)
                parts = rng.randint(1, 3)
                for _ in range(parts):
                    size = int(total / parts * rng.uniform(0.9, 1.1))
                    dur = size / rng.uniform(80e6, 200e6)
                    self.add(
                        t,
                        "network",
                        {
                            "src_ip": host.ip,
                            "dst_ip": s.backup_target,
                            "dst_port": 22,
                            "protocol": "tcp",
                            "bytes_out": size,
                            "bytes_in": rng.randint(200_000, 2_000_000),
                            "duration_ms": round(dur * 1000, 2),
                            "sensor": host.sensor,
                            "country": host.country,
                        },
                        _sim(lookalike="nightly_backup"),
                    )
                    t += dur + rng.uniform(5, 60)

    def ntp_sync(self) -> None:
        rng, s = self.rng, self.s
        for k in range(self.count(8, 2)):
            host = self.host(s.servers)
            ntp = k % 2 == 0
            period = rng.choice((512.0, 1024.0)) if ntp else 300.0
            dst = _NTP_SERVER if ntp else rng.choice(_DNS_SERVERS)
            t = s.start + rng.uniform(0, period)
            while t < s.end:
                self.add(
                    t,
                    "network",
                    {
                        "src_ip": host.ip,
                        "dst_ip": dst,
                        "dst_port": 123 if ntp else 53,
                        "protocol": "udp",
                        "bytes_out": 76 if ntp else rng.randint(50, 70),
                        "bytes_in": 76 if ntp else rng.randint(90, 140),
                        "duration_ms": round(rng.uniform(0.2, 3.0), 2),
                        "sensor": host.sensor,
                        "country": host.country,
                    },
                    _sim(lookalike="ntp_sync"),
                )
                t += period * (1 + rng.uniform(-0.002, 0.002))

    def cdn_browsing(self) -> None:
        rng, s = self.rng, self.s
        for _ in range(self.count(10, 2)):
            host = self.host(s.workstations)
            cdn = rng.choice(s._popular[:20])
            for day in self.days():
                for _ in range(rng.randint(2, 5)):
                    t = self.at(day, rng.uniform(8.0, 18.0))
                    for _ in range(rng.randint(15, 80)):
                        self.add(
                            t,
                            "network",
                            {
                                **s.flow(rng, host, cdn),
                                "dst_port": 443,
                                "bytes_out": rng.randint(400, 5_000),
                                "bytes_in": s._lognorm_int(rng, math.log(60_000), 1.3, 5_000_000),
                            },
                            _sim(lookalike="cdn_browsing"),
                        )
                        # Bursty and irregular: mostly seconds apart, sometimes minutes.
                        t += rng.lognormvariate(math.log(15), 1.2)

    # -- network threats -----------------------------------------------------------------
    def history_flows(self, host: Host, until: float, k: int) -> None:
        # Benign per-entity history a baseline detector needs, in the day before `until`.
        for _ in range(k):
            t = until - self.rng.uniform(0.5, 24.0) * HOUR
            self.add(t, "network", self.s.flow(self.rng, host), _BENIGN)

    def port_scan(self) -> None:
        rng, s = self.rng, self.s
        for c, t0 in enumerate(self.campaign_times(120.0), 1):
            cid = f"port_scan-{c}"
            src = self.host(s.workstations)
            targets = rng.sample(s.servers, rng.randint(1, 3))
            window = rng.uniform(10.0, 55.0)
            for target in targets:
                ports = rng.sample(range(1, 10_000), rng.randint(40, 120))
                for port in ports:
                    t = t0 + rng.uniform(0, window)
                    probe = {
                        "src_ip": src.ip,
                        "dst_ip": target.ip,
                        "dst_port": port,
                        "protocol": "tcp",
                        "bytes_out": rng.randint(40, 120),
                        "bytes_in": rng.choice((0, 0, 40, 54, 60)),
                        "duration_ms": round(rng.uniform(0.1, 40.0), 2),
                        "sensor": src.sensor,
                        "country": src.country,
                    }
                    # A closed port answers with a reset; a filtered one not at all.
                    probe["conn_state"] = "REJ" if probe["bytes_in"] else "S0"
                    self.add(t, "network", probe, _sim("port_scan", cid))

    def exfiltration(self) -> None:
        rng, s = self.rng, self.s
        for c, t0 in enumerate(self.campaign_times(2 * HOUR), 1):
            cid = f"exfiltration-{c}"
            victim = self.host(s.workstations, top=0.2)
            self.history_flows(victim, t0, 40)
            dst = s._public_ip(rng)
            t = t0
            for _ in range(rng.randint(1, 2)):
                size = rng.randint(200_000_000, 2_000_000_000)
                dur = size / rng.uniform(5e6, 40e6)
                self.add(
                    t,
                    "network",
                    {
                        **s.flow(rng, victim, dst),
                        "dst_port": 443,
                        "bytes_out": size,
                        "bytes_in": rng.randint(20_000, 400_000),
                        "duration_ms": round(dur * 1000, 2),
                    },
                    _sim("exfiltration", cid),
                )
                t += dur + rng.uniform(60, 900)

    def beaconing(self) -> None:
        rng, s = self.rng, self.s
        for c, t0 in enumerate(self.campaign_times(60 * 300.0), 1):
            cid = f"beaconing-{c}"
            host = self.host(s.workstations)
            c2 = s._public_ip(rng)
            period = rng.uniform(60, 300)
            jitter = rng.uniform(0.002, 0.03)
            port = rng.choice((443, 8443, 80))
            t = t0
            for _ in range(rng.randint(20, 60)):
                self.add(
                    t,
                    "network",
                    {
                        **s.flow(rng, host, c2),
                        "dst_port": port,
                        "bytes_out": rng.randint(200, 800),
                        "bytes_in": rng.randint(100, 2_000),
                        "duration_ms": round(rng.uniform(50, 400), 2),
                    },
                    _sim("beaconing", cid),
                )
                t += period * (1 + rng.uniform(-jitter, jitter))

    def dns_tunnel(self) -> None:
        rng, s = self.rng, self.s
        for c, t0 in enumerate(self.campaign_times(3 * HOUR), 1):
            cid = f"dns_tunnel-{c}"
            host = self.host(s.workstations)
            resolver = s._public_ip(rng)
            t = t0
            for _ in range(rng.randint(4, 12)):
                dur = rng.uniform(20.0, 120.0)
                self.add(
                    t,
                    "network",
                    {
                        **s.flow(rng, host, resolver),
                        "dst_port": 53,
                        "protocol": "udp",
                        "bytes_out": rng.randint(50_000, 500_000),
                        "bytes_in": rng.randint(5_000, 60_000),
                        "duration_ms": round(dur * 1000, 2),
                    },
                    _sim("dns_tunnel", cid),
                )
                t += dur + rng.uniform(30, 900)
