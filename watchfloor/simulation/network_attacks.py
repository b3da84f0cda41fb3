"""Network attacks the way real captures show them (issue 10): horizontal, block and
Mirai-style telnet scans with failed connection states; C2 beacons with 10-30 % jitter,
missed beats and retries, a 33 s beacon with 28/40/42 s variants and paired sub-second
flows, Mirai-style 3 s / 7 s alternating retries; SSH/RDP/FTP/SMB/telnet password
guessing; spam bots; floods from one source or many. Sizes keep threats a few per cent
of the network events: rare, as they are.

:class:`RealNetworkAttacks` is a mixin of the simulator's script. Each shape has its own
random stream and ``n_campaigns`` campaigns after the warm-up day, labelled with the
threat type and a campaign id naming the shape (``port_scan-horizontal-2``).
"""

from __future__ import annotations

import math
import random

from watchfloor.simulation.common import HOUR, _sim
from watchfloor.simulation.network_lookalikes import RealNetworkBase, _state
from watchfloor.simulation.network_records import flow

#: Ports of the authentication services password guessers try, with the sizes (bytes
#: out, bytes in) and duration (ms) of one failed login: narrow, as a tool repeats it.
_AUTH: tuple[tuple[int, tuple[int, int], tuple[int, int], tuple[float, float]], ...] = (
    (22, (1_200, 2_600), (1_800, 3_600), (500.0, 4_000.0)),  # SSH
    (3389, (1_500, 4_000), (3_000, 8_000), (300.0, 3_000.0)),  # RDP
    (21, (60, 130), (200, 420), (100.0, 2_500.0)),  # FTP
    (445, (600, 2_000), (400, 1_500), (50.0, 800.0)),  # SMB
    (23, (40, 120), (60, 300), (200.0, 3_000.0)),  # telnet
)
_FAILED_PROBE = (("S0", 0.6), ("REJ", 0.3), ("SF", 0.1))


class RealNetworkAttacks(RealNetworkBase):
    """Network threat campaigns in real-capture shapes."""

    def real_network_attacks(self) -> None:
        if not self.n_campaigns:
            return
        self.scan_horizontal()
        self.scan_block()
        self.scan_telnet_worm()
        self.beacon_jittery()
        self.beacon_paired()
        self.beacon_retries()
        self.brute_force()
        self.spam()
        self.flood()

    def _probe(
        self, t: float, rng: random.Random, src_ip: str, sensor: str, country: str, dst: str,
        port: int, cid: str, weights: tuple[tuple[str, float], ...] = _FAILED_PROBE,
    ) -> None:  # fmt: skip
        state = _state(rng, weights)
        back = 0 if state == "S0" else rng.choice((40, 54, 60)) if state == "REJ" else (
            rng.randint(60, 600))  # fmt: skip
        payload = flow(src_ip, dst, port, "tcp", rng.randint(40, 120), back,
                       rng.uniform(0, 40) if state != "S0" else 0.0, sensor, country, state)
        self.add(t, "network", payload, _sim("port_scan", cid))

    # -- scans ------------------------------------------------------------------------------
    def scan_horizontal(self) -> None:
        # One port across 100-250 hosts within a minute: the most common scan. Odd
        # campaigns sweep addresses in order, even ones at random.
        rng, s = self.own_rng("scan_horizontal"), self.s
        ports = (445, 22, 3389, 80, 5900, 1433)
        for c, t0 in enumerate(self.campaign_starts(rng, 120.0), 1):
            cid = f"port_scan-horizontal-{c}"
            src = self.fresh_host(rng, s.workstations)
            port = ports[(c - 1) % len(ports)]
            k = rng.randint(100, 250)
            window = rng.uniform(20.0, 60.0)
            base = rng.randrange(12)
            targets = [f"10.{rng.choice((10, 20))}.{(base + j // 254) % 16}.{j % 254 + 1}"
                       for j in range(k)] if c % 2 else [
                f"10.{rng.choice((10, 20))}.{rng.randrange(16)}.{rng.randrange(1, 255)}"
                for _ in range(k)]  # fmt: skip
            for j, dst in enumerate(targets):
                t = t0 + window * j / k if c % 2 else t0 + rng.uniform(0, window)
                self._probe(t, rng, src.ip, src.sensor, src.country, dst, port, cid)

    def scan_block(self) -> None:
        # A few service ports across a block of 20-40 hosts, within two minutes.
        rng, s = self.own_rng("scan_block"), self.s
        services = (21, 22, 23, 25, 53, 80, 110, 135, 139, 143, 443, 445, 1433, 3306, 3389,
                    5432, 5900, 8080, 8443, 9200)  # fmt: skip
        for c, t0 in enumerate(self.campaign_starts(rng, 180.0), 1):
            cid = f"port_scan-block-{c}"
            src = self.fresh_host(rng, s.workstations)
            ports = rng.sample(services, rng.randint(4, 8))
            subnet = f"10.10.{rng.randrange(4)}"
            hosts = rng.sample(range(1, 255), rng.randint(20, 40))
            window = rng.uniform(40.0, 120.0)
            for h in hosts:
                for port in ports:
                    self._probe(t0 + rng.uniform(0, window), rng, src.ip, src.sensor,
                                src.country, f"{subnet}.{h}", port, cid)

    def scan_telnet_worm(self) -> None:
        # An infected device (Mirai-style) scanning random Internet addresses on telnet
        # 23 and 2323: hundreds of unanswered SYNs within minutes.
        rng, s = self.own_rng("scan_telnet_worm"), self.s
        for c, t0 in enumerate(self.campaign_starts(rng, 600.0), 1):
            cid = f"port_scan-telnet-{c}"
            device = f"10.40.{rng.randrange(256)}.{rng.randrange(1, 255)}"  # the IoT VLAN
            window = rng.uniform(180.0, 480.0)
            for _ in range(rng.randint(150, 400)):
                port = 23 if rng.random() < 0.9 else 2323
                self._probe(t0 + rng.uniform(0, window), rng, device, "nl-tap-3", "NL",
                            s._public_ip(rng), port, cid, (("S0", 0.85), ("REJ", 0.12),
                                                           ("SF", 0.03)))  # fmt: skip

    # -- beacons ----------------------------------------------------------------------------
    def _beat(self, t: float, rng: random.Random, host_ip: str, sensor: str, country: str,
              c2: str, port: int, cid: str, state: str = "SF") -> None:  # fmt: skip
        ok = state == "SF"
        payload = flow(host_ip, c2, port, "tcp", rng.randint(200, 900) if ok else 60,
                       rng.randint(100, 2_500) if ok else (40 if state == "REJ" else 0),
                       rng.uniform(40, 500) if ok else rng.uniform(0, 3_000), sensor,
                       country, state)  # fmt: skip
        self.add(t, "network", payload, _sim("beaconing", cid))

    def beacon_jittery(self) -> None:
        # Period 60-600 s with 10-30 % jitter; 5-20 % of the beats missed; now and then a
        # failed attempt retried a few seconds later.
        rng, s = self.own_rng("beacon_jittery"), self.s
        for c, t0 in enumerate(self.campaign_starts(rng, 60 * 600.0), 1):
            cid = f"beaconing-jittery-{c}"
            host = self.fresh_host(rng, s.workstations)
            c2, port = s._public_ip(rng), rng.choice((443, 80, 8080))
            period, jitter = rng.uniform(60, 600), rng.uniform(0.1, 0.3)
            miss = rng.uniform(0.05, 0.2)
            t = t0
            for _ in range(rng.randint(30, 60)):
                if rng.random() >= miss:
                    if rng.random() < 0.1:
                        self._beat(t, rng, host.ip, host.sensor, host.country, c2, port, cid,
                                   "S0")
                        t += rng.uniform(1, 5)
                    self._beat(t, rng, host.ip, host.sensor, host.country, c2, port, cid)
                t += period * (1 + rng.uniform(-jitter, jitter))

    def beacon_paired(self) -> None:
        # A 33 s beacon whose interval is sometimes 28, 40 or 42 s, each beat two flows
        # less than a second apart (a check-in and its follow-up request).
        rng, s = self.own_rng("beacon_paired"), self.s
        for c, t0 in enumerate(self.campaign_starts(rng, 2 * HOUR), 1):
            cid = f"beaconing-paired-{c}"
            host = self.fresh_host(rng, s.workstations)
            c2, port = s._public_ip(rng), rng.choice((80, 6667, 8080))
            t = t0
            for _ in range(rng.randint(60, 120)):
                self._beat(t, rng, host.ip, host.sensor, host.country, c2, port, cid)
                self._beat(t + rng.uniform(0.05, 0.9), rng, host.ip, host.sensor,
                           host.country, c2, port, cid)  # fmt: skip
                t += rng.choices((33.0, 28.0, 40.0, 42.0), (0.6, 0.15, 0.1, 0.15))[0]
                t += rng.uniform(-0.3, 0.3)

    def beacon_retries(self) -> None:
        # A bot whose C2 is down: connection attempts alternating 3 s and 7 s apart,
        # nearly all unanswered or refused, for 8-20 minutes.
        rng, s = self.own_rng("beacon_retries"), self.s
        for c, t0 in enumerate(self.campaign_starts(rng, 40 * 60.0), 1):
            cid = f"beaconing-retries-{c}"
            device = f"10.40.{rng.randrange(256)}.{rng.randrange(1, 255)}"
            c2, port = s._public_ip(rng), rng.choice((23, 48101, 6667))
            t, end, k = t0, t0 + rng.uniform(8, 20) * 60, 0
            while t < end:
                state = _state(rng, (("S0", 0.7), ("REJ", 0.25), ("SF", 0.05)))
                self._beat(t, rng, device, "nl-tap-3", "NL", c2, port, cid, state)
                t += (3.0 if k % 2 == 0 else 7.0) + rng.uniform(-0.2, 0.2)
                k += 1

    # -- password guessing, spam, floods ----------------------------------------------------
    def brute_force(self) -> None:
        # 100-300 short failed logins to one authentication port of one server over 5-40
        # minutes, from outside (odd campaigns) or a compromised workstation (even).
        rng, s = self.own_rng("brute_force"), self.s
        for c, t0 in enumerate(self.campaign_starts(rng, 40 * 60.0), 1):
            cid = f"brute_force-{c}"
            port, size_out, size_in, dur = _AUTH[(c - 1) % len(_AUTH)]
            target = self.fresh_host(rng, s.servers)
            if c % 2:
                src, sensor, country = s._public_ip(rng), target.sensor, target.country
            else:
                ws = self.fresh_host(rng, s.workstations)
                src, sensor, country = ws.ip, ws.sensor, ws.country
            t, end = t0, t0 + rng.uniform(5, 40) * 60
            n = rng.randint(100, 300)
            for _ in range(n):
                state = _state(rng, (("SF", 0.7), ("RSTO", 0.15), ("RSTR", 0.05),
                                     ("REJ", 0.05), ("S0", 0.05)))  # fmt: skip
                tried = state in ("SF", "RSTO", "RSTR")
                payload = flow(
                    src, target.ip, port, "tcp", rng.randint(*size_out) if tried else 60,
                    rng.randint(*size_in) if tried else (40 if state == "REJ" else 0),
                    rng.uniform(*dur) if tried else rng.uniform(0, 3_000), sensor, country,
                    state,
                )  # fmt: skip
                self.add(t, "network", payload, _sim("brute_force", cid))
                t += rng.expovariate(n / (end - t0))

    def spam(self) -> None:
        # A spam bot: 200-500 short SMTP connections to port 25 of hundreds of mail
        # exchangers within 20-90 minutes; many refuse it.
        rng, s = self.own_rng("spam"), self.s
        for c, t0 in enumerate(self.campaign_starts(rng, 90 * 60.0), 1):
            cid = f"spam-{c}"
            bot = self.fresh_host(rng, s.workstations)
            mx = [s._public_ip(rng) for _ in range(rng.randint(150, 400))]
            window = rng.uniform(20, 90) * 60
            for _ in range(rng.randint(200, 500)):
                state = _state(rng, (("SF", 0.55), ("REJ", 0.2), ("S0", 0.15), ("RSTR", 0.1)))
                sent = state in ("SF", "RSTR")
                payload = flow(
                    bot.ip, rng.choice(mx), 25, "tcp",
                    rng.randint(2_000, 12_000) if state == "SF" else rng.randint(60, 400),
                    rng.randint(300, 1_200) if sent else (40 if state == "REJ" else 0),
                    rng.uniform(200, 3_000) if sent else rng.uniform(0, 3_000),
                    bot.sensor, bot.country, state,
                )  # fmt: skip
                self.add(t0 + rng.uniform(0, window), "network", payload, _sim("spam", cid))

    def flood(self) -> None:
        # Odd campaigns: one internal host floods an external target (UDP to 53/123 or a
        # SYN flood on 80), 600-1,500 flows in minutes. Even campaigns: 40-120 external
        # sources flood one internal server's web port.
        rng, s = self.own_rng("flood"), self.s
        size = max(0.3, min(1.0, self.scale))  # short streams: smaller floods
        for c, t0 in enumerate(self.campaign_starts(rng, 10 * 60.0), 1):
            cid = f"flood-{c}"
            label = _sim("flood", cid)
            if c % 2:
                src = self.fresh_host(rng, s.servers + s.workstations)
                target, window = s._public_ip(rng), rng.uniform(120, 300)
                udp_port = rng.choice((53, 123, 0))
                for _ in range(math.ceil(rng.randint(600, 1_500) * size)):
                    if udp_port:
                        payload = flow(src.ip, target, udp_port, "udp", rng.randint(60, 1_400),
                                       0, 0.0, src.sensor, src.country, "S0")  # fmt: skip
                    else:
                        payload = flow(src.ip, target, 80, "tcp", 60, 0, 0.0, src.sensor,
                                       src.country, "S0", src_port=rng.randint(1024, 65535))
                    self.add(t0 + rng.uniform(0, window), "network", payload, label)
            else:
                server = self.fresh_host(rng, s.servers)
                port, window = rng.choice((80, 443)), rng.uniform(180, 480)
                for _ in range(math.ceil(rng.randint(40, 120) * size)):
                    src = s._public_ip(rng)
                    for _ in range(rng.randint(5, 15)):
                        state = _state(rng, (("S0", 0.7), ("REJ", 0.1), ("SF", 0.2)))
                        payload = flow(
                            src, server.ip, port, "tcp", rng.randint(60, 400),
                            0 if state == "S0" else rng.randint(40, 1_200),
                            0.0 if state == "S0" else rng.uniform(0, 500),
                            server.sensor, server.country, state,
                        )  # fmt: skip
                        self.add(t0 + rng.uniform(0, window), "network", payload, label)
