"""Benign network traffic that real networks have and that looks like an attack to a naive
detector (issue 10): a P2P client talking to thousands of peers, a NAT/VPN gateway,
SYN-ACK/RST backscatter, low-jitter pollers (antivirus updates every ~302 s, a CDN every
900 s, NTP, DNS), multicast and broadcast, SSH automation, an outbound mail relay and a
software roll-out pulling from one internal server.

:class:`RealNetworkLookalikes` is a mixin of the simulator's script. Each pattern draws
from its own random stream (:meth:`RealNetworkBase.own_rng`), so adding or changing one
leaves the others, and the older campaigns, as they were.
"""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING

from watchfloor.simulation.common import DAY, DIURNAL, HOUR, _pick, _sim, _weighted_cum
from watchfloor.simulation.network_records import flow

if TYPE_CHECKING:
    from watchfloor.simulation.network import Host
    from watchfloor.simulation.simulator import Simulator

_HOUR_CUM = _weighted_cum(DIURNAL)
_EDGE = ("nl-edge-1", "NL")
_VPN = ("nl-vpn-1", "NL")
#: The NAT/VPN egress: many internal users behind one address.
NAT_GATEWAY_IP = "10.0.8.1"
#: The internal software-update server (WSUS-style, port 8530).
_UPDATE_PORT = 8530


class RealNetworkBase:
    """Helpers the real-network look-alikes and attack variants share.

    A mixin of :class:`~watchfloor.simulation.simulator._Script`, which provides ``s``,
    ``used_hosts``, ``n_campaigns``, ``scale`` and the helpers ``add`` and ``count``.
    """

    s: Simulator
    used_hosts: set[str]
    n_campaigns: int
    scale: float

    def own_rng(self, name: str) -> random.Random:
        """A random stream of this pattern alone, derived from the script's seed."""
        return random.Random(f"{self.s._seed_script}-{name}")

    def fresh_host(self, rng: random.Random, pool: list[Host]) -> Host:
        """A host of ``pool`` no other pattern or campaign uses (reused if none is left)."""
        for _ in range(100):
            h = rng.choice(pool)
            if h.ip not in self.used_hosts:
                self.used_hosts.add(h.ip)
                return h
        return rng.choice(pool)

    def diurnal_time(self, rng: random.Random) -> float:
        """A time in the span, more likely in busy hours (the background's profile)."""
        day = rng.randrange(max(1, math.ceil(self.s.days)))
        hour = _pick(rng, _HOUR_CUM)
        midnight = self.s.start - (self.s.start % DAY)
        return midnight + day * DAY + (hour + rng.random()) * HOUR

    def on_hours(self, rng: random.Random, always_on: bool) -> list[tuple[float, float]]:
        """When a machine runs: the whole span, or office hours on each day."""
        if always_on:
            return [(self.s.start, self.s.end)]
        midnight = self.s.start - (self.s.start % DAY)
        return [
            (
                midnight + d * DAY + rng.uniform(7.5, 9.5) * HOUR,
                midnight + d * DAY + rng.uniform(16.5, 19.0) * HOUR,
            )
            for d in range(math.ceil(self.s.days) + 1)
        ]

    def periodic(
        self, rng: random.Random, lo: float, hi: float, period: float, jitter: float
    ) -> list[float]:
        """Times from a random phase in ``[lo, hi)`` every ``period`` (relative jitter)."""
        out, t = [], lo + rng.uniform(0, period)
        while t < hi:
            out.append(t)
            t += period * (1 + rng.uniform(-jitter, jitter))
        return out

    def campaign_starts(self, rng: random.Random, duration: float) -> list[float]:
        """Like the script's ``campaign_times`` (after the warm-up day, one start per
        equal slice), from ``rng``."""
        lo, hi = self.s.start + DAY + 600.0, self.s.end - duration - 600.0
        if hi <= lo or not self.n_campaigns:
            return []
        k = self.n_campaigns
        return [lo + (hi - lo) * (j + rng.random()) / k for j in range(k)]


def _state(rng: random.Random, weights: tuple[tuple[str, float], ...]) -> str:
    r = rng.random() * sum(w for _, w in weights)
    for state, w in weights:
        r -= w
        if r < 0:
            return state
    return weights[-1][0]


class RealNetworkLookalikes(RealNetworkBase):
    """Benign real-network patterns (``sim.lookalike``), clock-driven."""

    def real_network_lookalikes(self) -> None:
        self.p2p_client()
        self.nat_gateway()
        self.backscatter()
        self.pollers()
        self.multicast()
        self.ssh_automation()
        self.mail_relay()
        self.update_rollout()

    def p2p_client(self) -> None:
        # A BitTorrent-style client: a DHT burst to hundreds of peers when it starts, then
        # a steady trickle to thousands of peers, each on its own high port; many peers
        # are gone (no reply) or refuse. Not a scan: one port per peer, real payloads.
        rng, s = self.own_rng("p2p_client"), self.s
        for _ in range(self.count(2)):
            host = self.fresh_host(rng, s.workstations)
            peers = [
                (s._public_ip(rng), rng.choice((6881, 6889, 51413)))
                if rng.random() < 0.2
                else (s._public_ip(rng), rng.randint(1024, 65535))
                for _ in range(rng.randint(3_000, 6_000))
            ]
            for day in range(math.ceil(s.days) + 1):
                start = s.start - (s.start % DAY) + day * DAY + rng.uniform(7, 21) * HOUR
                end = start + rng.uniform(1.5, 5.0) * HOUR
                for _ in range(rng.randint(120, 250)):
                    self._peer_flow(rng, host, peers, start + rng.uniform(0, 90), True)
                t = start + 90
                # Short streams sample a smaller network: the trickle thins, the burst
                # (the part that looks like a scan) stays.
                gap = 25.0 / max(0.2, min(1.0, self.scale))
                while t < end:
                    self._peer_flow(rng, host, peers, t, rng.random() < 0.4)
                    t += rng.expovariate(1 / gap)

    def _peer_flow(
        self, rng: random.Random, host: Host, peers: list[tuple[str, int]], t: float, udp: bool
    ) -> None:
        s = self.s
        ip, port = rng.choice(peers)
        if udp:
            ok = rng.random() < 0.6
            payload = flow(host.ip, ip, port, "udp", rng.randint(90, 320),
                           rng.randint(200, 900) if ok else 0,
                           rng.uniform(5, 400) if ok else 0.0,
                           host.sensor, host.country, "SF" if ok else "S0")
        else:
            state = _state(rng, (("SF", 0.55), ("S0", 0.3), ("REJ", 0.1), ("RSTR", 0.05)))
            big = state == "SF"
            payload = flow(
                host.ip, ip, port, "tcp",
                s._lognorm_int(rng, math.log(60_000), 1.8, 50_000_000) if big
                else rng.randint(60, 180),
                s._lognorm_int(rng, math.log(400_000), 1.8, 200_000_000) if big
                else (rng.randint(40, 60) if state != "S0" else 0),
                rng.lognormvariate(math.log(30_000), 1.5) if big else rng.uniform(0, 3_000),
                host.sensor, host.country, state,
            )  # fmt: skip
        self.add(t, "network", payload, _sim(lookalike="p2p_client"))

    def nat_gateway(self) -> None:
        # NAT/VPN egress: the flows of many users from one address, to many destinations
        # on many ports, nearly all completing. A sensor inside the VPN also sees some of
        # them with the clients' own tunnel addresses: many sources with little history.
        rng, s = self.own_rng("nat_gateway"), self.s
        label = _sim(lookalike="nat_gateway")
        services = (
            (443, "tcp", 0.55), (80, "tcp", 0.12), (443, "udp", 0.08), (993, "tcp", 0.04),
            (53, "udp", 0.04), (587, "tcp", 0.03), (22, "tcp", 0.03), (8080, "tcp", 0.03),
            (5222, "tcp", 0.02), (123, "udp", 0.02), (3478, "udp", 0.02), (3389, "tcp", 0.01),
            (1194, "udp", 0.01),
        )  # fmt: skip
        cum = _weighted_cum(w for *_, w in services)
        clients = [f"10.8.{k // 250}.{k % 250 + 2}" for k in range(self.count(200, 20))]
        for _ in range(self.count(4_500, 50)):
            inner = rng.random() < 0.35
            src, where = (rng.choice(clients), _VPN) if inner else (NAT_GATEWAY_IP, _EDGE)
            port, proto, _w = services[_pick(rng, cum)]
            dst = (s._popular[_pick(rng, s._popular_cum)] if rng.random() < 0.6
                   else rng.choice(s._ext_pool))  # fmt: skip
            state = _state(rng, (("SF", 0.9), ("S0", 0.05), ("REJ", 0.02), ("RSTO", 0.02),
                                 ("RSTR", 0.01)))  # fmt: skip
            if proto == "udp" and state != "S0":
                state = "SF"  # UDP has no handshake to refuse or reset
            done = state not in ("S0", "REJ")
            if proto == "udp" and port in (53, 123):
                # Name lookups and time queries stay tiny, behind a gateway or not.
                payload = flow(src, dst, port, proto, rng.randint(60, 120),
                               rng.randint(80, 400) if done else 0, rng.uniform(1, 60),
                               *where, "SF" if done else "S0")  # fmt: skip
                self.add(self.diurnal_time(rng), "network", payload, label)
                continue
            payload = flow(
                src, dst, port, proto,
                s._lognorm_int(rng, math.log(1_500), 1.2, 5_000_000, 60) if done else 60,
                s._lognorm_int(rng, math.log(25_000), 1.7, 80_000_000) if done
                else (40 if state == "REJ" else 0),
                rng.lognormvariate(math.log(500), 1.3) if done else rng.uniform(0, 3_000),
                *where, state,
            )  # fmt: skip
            self.add(self.diurnal_time(rng), "network", payload, label)

    def backscatter(self) -> None:
        # Someone floods a remote server with SYNs spoofing our addresses; its SYN-ACKs and
        # resets land on us. Seen two ways: the remote server answering many of our
        # addresses on random high ports (variant A), or one of our hosts, the spoofed
        # one, "talking" to many remote servers' port 80/443 with only resets (variant B,
        # the direction a flow exporter guesses).
        rng, s = self.own_rng("backscatter"), self.s
        label = _sim(lookalike="backscatter")
        for k in range(self.count(8, 2)):
            t0 = s.start + rng.uniform(0.02, 0.98) * (s.end - s.start)
            window = rng.uniform(60, 600)
            port = rng.choice((80, 443, 53, 22))
            if k % 2 == 0:
                remote = s._public_ip(rng)
                for _ in range(rng.randint(60, 400)):
                    dst = f"10.20.{rng.randrange(12)}.{rng.randrange(1, 255)}"
                    synack = rng.random() < 0.7
                    payload = flow(
                        remote, dst, rng.randint(1024, 65535), "tcp", rng.choice((44, 54, 60)),
                        0, 0.0, *_EDGE, "OTH" if synack else "RSTRH",
                        src_port=port, tcp_flags="SA" if synack else "RA",
                    )  # fmt: skip
                    self.add(t0 + rng.uniform(0, window), "network", payload, label)
            else:
                host = self.fresh_host(rng, s.workstations)
                for _ in range(rng.randint(100, 500)):
                    payload = flow(
                        host.ip, s._public_ip(rng), port, "tcp", 40, rng.choice((44, 54, 60)),
                        rng.uniform(0, 1.0), host.sensor, host.country, "OTH",
                        src_port=rng.randint(1024, 65535), tcp_flags="R",
                    )  # fmt: skip
                    self.add(t0 + rng.uniform(0, window), "network", payload, label)

    def pollers(self) -> None:
        # Machines polling on a timer, far more regular than any bot: antivirus updates
        # every ~302 s and a CDN every 900 s (a fleet of hosts each), NTP to public pool
        # servers every 1024 s, DNS to a public resolver every 5 or 10 minutes.
        rng, s = self.own_rng("pollers"), self.s
        av_server, cdns = s._public_ip(rng), [s._public_ip(rng) for _ in range(2)]
        ntp_pool, resolvers = [s._public_ip(rng) for _ in range(2)], [s._public_ip(rng)]
        kinds = (
            ("av_update", s.workstations, self.count(9, 2), 302.0, 0.002),
            ("cdn_poll", s.workstations, self.count(6, 2), 900.0, 0.005),
            ("ntp_poll", s.workstations, self.count(6, 2), 1024.0, 0.001),
            ("dns_poll", s.servers, self.count(2, 1), 0.0, 0.01),
        )
        for name, pool, n, period, jitter in kinds:
            label = _sim(lookalike=name)
            for j in range(n):
                host = self.fresh_host(rng, pool)
                always_on = name in ("ntp_poll", "dns_poll") or j % 3 == 0
                cdn = rng.choice(cdns)
                ntp = rng.choice(ntp_pool)
                every = period or rng.choice((300.0, 600.0))
                for lo, hi in self.on_hours(rng, always_on):
                    for k, t in enumerate(self.periodic(rng, lo, hi, every, jitter)):
                        if name == "av_update":
                            big = k % 12 == 11  # now and then a definitions download
                            payload = flow(
                                host.ip, av_server, 443, "tcp", rng.randint(350, 700),
                                rng.randint(500_000, 15_000_000) if big
                                else rng.randint(500, 2_500),
                                rng.uniform(2_000, 20_000) if big else rng.uniform(40, 300),
                                host.sensor, host.country,
                            )  # fmt: skip
                        elif name == "cdn_poll":
                            payload = flow(host.ip, cdn, 443, "tcp", rng.randint(500, 1_500),
                                           rng.randint(2_000, 40_000), rng.uniform(50, 600),
                                           host.sensor, host.country)  # fmt: skip
                        elif name == "ntp_poll":
                            payload = flow(host.ip, ntp, 123, "udp", 76, 76,
                                           rng.uniform(5, 40), host.sensor, host.country)
                        else:
                            payload = flow(host.ip, resolvers[0], 53, "udp",
                                           rng.randint(60, 90), rng.randint(90, 300),
                                           rng.uniform(2, 30), host.sensor, host.country)
                        self.add(t, "network", payload, label)

    def multicast(self) -> None:
        # Discovery chatter nobody answers as a flow: SSDP M-SEARCH bursts (two or three
        # datagrams within a second) every ~10 minutes, mDNS queries, NetBIOS browser
        # announcements to the subnet broadcast every 12 minutes. All "unanswered".
        rng, s = self.own_rng("multicast"), self.s
        label = _sim(lookalike="multicast")
        for host in [self.fresh_host(rng, s.workstations) for _ in range(self.count(4))]:
            for lo, hi in self.on_hours(rng, False):
                for t in self.periodic(rng, lo, hi, 600.0, 0.03):
                    for k in range(rng.randint(2, 3)):
                        payload = flow(host.ip, "239.255.255.250", 1900, "udp",
                                       rng.randint(120, 200), 0, 0.0, host.sensor,
                                       host.country, "S0")  # fmt: skip
                        self.add(t + k * rng.uniform(0.05, 0.4), "network", payload, label)
        for host in [self.fresh_host(rng, s.workstations) for _ in range(self.count(8, 2))]:
            for lo, hi in self.on_hours(rng, False):
                t = lo + rng.uniform(0, 600)
                while t < hi:
                    payload = flow(host.ip, "224.0.0.251", 5353, "udp", rng.randint(60, 450),
                                   0, 0.0, host.sensor, host.country, "S0")  # fmt: skip
                    self.add(t, "network", payload, label)
                    t += rng.uniform(300, 1_800)
        for host in [self.fresh_host(rng, s.workstations) for _ in range(self.count(5))]:
            subnet = host.ip.rsplit(".", 1)[0]
            for lo, hi in self.on_hours(rng, False):
                for t in self.periodic(rng, lo, hi, 720.0, 0.01):
                    port = 138 if rng.random() < 0.8 else 137
                    payload = flow(host.ip, f"{subnet}.255", port, "udp", rng.randint(200, 250),
                                   0, 0.0, host.sensor, host.country, "S0")  # fmt: skip
                    self.add(t, "network", payload, label)

    def ssh_automation(self) -> None:
        # Configuration management logging into 15-40 servers every hour of the working
        # day, and a monitor checking one server's SSH banner every 5 minutes: many
        # short connections to port 22, all of them successful.
        rng, s = self.own_rng("ssh_automation"), self.s
        label = _sim(lookalike="ssh_automation")
        controller = self.fresh_host(rng, s.servers)
        # Short streams: runs every few hours and a monitor for part of the span only.
        thin = max(0.1, min(1.0, 2 * self.scale))
        for lo, hi in self.on_hours(rng, False):
            for t in self.periodic(rng, lo, hi, HOUR / thin, 0.01):
                for target in rng.sample(s.servers, min(len(s.servers), rng.randint(15, 40))):
                    payload = flow(
                        controller.ip, target.ip, 22, "tcp", rng.randint(4_000, 40_000),
                        rng.randint(6_000, 80_000), rng.uniform(1_500, 25_000),
                        controller.sensor, controller.country,
                    )  # fmt: skip
                    self.add(t + rng.uniform(0, 120), "network", payload, label)
        monitor = self.fresh_host(rng, s.servers)
        watched = rng.choice(s.servers)
        for t in self.periodic(rng, s.start, s.start + thin * (s.end - s.start), 300.0, 0.005):
            payload = flow(monitor.ip, watched.ip, 22, "tcp", 22, 41, rng.uniform(2, 15),
                           monitor.sensor, monitor.country, rng.choice(("SF", "SF", "RSTO")))
            self.add(t, "network", payload, label)

    def mail_relay(self) -> None:
        # The organisation's outbound mail relay: many SMTP connections to port 25 of many
        # mail exchangers, nearly all delivering a message.
        rng, s = self.own_rng("mail_relay"), self.s
        label = _sim(lookalike="mail_relay")
        relay = self.fresh_host(rng, s.servers)
        mx = [s._public_ip(rng) for _ in range(rng.randint(300, 600))]
        mx_cum = _weighted_cum(1.0 / (k + 1) for k in range(len(mx)))  # a few big providers
        for _ in range(self.count(2_500, 30)):
            state = _state(rng, (("SF", 0.94), ("REJ", 0.03), ("S0", 0.02), ("RSTR", 0.01)))
            sent = state in ("SF", "RSTR")
            payload = flow(
                relay.ip, mx[_pick(rng, mx_cum)], 25, "tcp",
                s._lognorm_int(rng, math.log(15_000), 1.2, 20_000_000, 300) if sent else 60,
                rng.randint(300, 1_500) if sent else (40 if state == "REJ" else 0),
                rng.uniform(200, 4_000) if sent else rng.uniform(0, 3_000),
                relay.sensor, relay.country, state,
            )  # fmt: skip
            self.add(self.diurnal_time(rng), "network", payload, label)

    def update_rollout(self) -> None:
        # Patch day: 20-150 workstations pull updates from one internal server within a
        # quarter of an hour: one destination receiving far more flows than usual.
        rng, s = self.own_rng("update_rollout"), self.s
        label = _sim(lookalike="update_rollout")
        server = self.fresh_host(rng, s.servers)
        for day in range(math.ceil(s.days) + 1):
            t0 = s.start - (s.start % DAY) + day * DAY + rng.uniform(10, 12) * HOUR
            n = min(len(s.workstations), self.count(150, 20))
            for host in rng.sample(s.workstations, n):
                for _ in range(rng.randint(2, 6)):
                    payload = flow(
                        host.ip, server.ip, _UPDATE_PORT, "tcp", rng.randint(800, 3_000),
                        s._lognorm_int(rng, math.log(5e6), 1.0, 400_000_000),
                        rng.uniform(500, 60_000), host.sensor, host.country,
                    )  # fmt: skip
                    self.add(t0 + rng.uniform(0, 900), "network", payload, label)
