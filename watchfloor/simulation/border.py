"""Border traffic: the travellers, their ordinary crossings (:class:`BorderTraffic`, mixed
into the simulator), and the clock-driven border look-alikes and threat campaigns
(:class:`BorderScript`, mixed into the script).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from watchfloor.simulation.common import _BENIGN, DAY, HOUR, _pick, _sim, _weighted_cum

if TYPE_CHECKING:
    from watchfloor.simulation.simulator import Simulator

# Background share of the labelled look-alikes that are kinds of traffic rather than
# clock-driven scripts (per domain's background events).
P_SIMILAR_NAME = 0.01
P_NEAR_MISS = 0.006

# Background names avoid every watchlist name part (and near spellings of them), so an
# unlabelled crossing never resembles a listed person: only `similar_name` travellers do.
_FIRST_NAMES: tuple[str, ...] = (
    "ANNA", "MARIE", "SOPHIE", "JULIA", "LAURA", "SARA", "EMMA", "CLARA", "INES", "NINA",
    "PAULA", "EVA", "LENA", "HANNA", "MAJA", "AINO", "KATRI", "RUTA", "AGNIESZKA", "ZOFIA",
    "PIERRE", "LUC", "THOMAS", "NICOLAS", "JAN", "PIETER", "DIRK", "LUKAS", "FELIX", "JONAS",
    "MATTEO", "LUCA", "PABLO", "JAVIER", "JOAO", "RUI", "NIKOS", "GIORGOS", "MIKKO", "JUHA",
    "TOOMAS", "MARTYNAS", "TOMASZ", "PIOTR", "OLIVER", "GEORGE", "HENRY", "DAVID", "SIMON",
)  # fmt: skip
_LAST_NAMES: tuple[str, ...] = (
    "DUPONT", "MARTIN", "BERNARD", "MOREAU", "LAURENT", "MUELLER", "SCHMIDT", "SCHNEIDER",
    "FISCHER", "WAGNER", "JANSSEN", "DE VRIES", "BAKKER", "VISSER", "PEETERS", "MAES",
    "GARCIA", "FERNANDEZ", "LOPEZ", "SANTOS", "FERREIRA", "COSTA", "PAPADOPOULOS",
    "GEORGIOU", "VIRTANEN", "KORHONEN", "TAMM", "SAAR", "KAZLAUSKAS", "JANKAUSKAS", "NOWAK",
    "KOWALSKI", "WISNIEWSKI", "SMITH", "JONES", "TAYLOR", "BROWN", "ROSSI", "BIANCHI",
    "ESPOSITO", "ROMANO", "GALLO", "HUBER", "GRUBER", "NIELSEN", "HANSEN", "LINDQVIST",
)  # fmt: skip
_NATIONALITIES: tuple[tuple[str, float], ...] = (
    ("FRA", 18), ("DEU", 18), ("NLD", 10), ("BEL", 6), ("ESP", 9), ("PRT", 4), ("GRC", 4),
    ("FIN", 3), ("EST", 2), ("LTU", 2), ("GBR", 10), ("ITA", 9), ("POL", 5),
)  # fmt: skip

# Hand-written transliterations: how the listed names come out of other alphabets/systems.
_TRANSLITERATIONS: dict[str, str] = {
    "IVAN PETROVICH SOKOLOV": "IWAN PETROWITSCH SOKOLOW",
    "AHMAD KARIMI": "AHMED KARIMY",
    "MARCO DELLA ROVERE": "MARKO DELA ROVERE",
    "ELENA VOSKRESENSKAYA": "YELENA VOSKRESENSKAIA",
    "JOHAN VAN DER BERGH": "JOHANN VANDERBERGH",
    "SAMIR HADDAD": "SAMEER HADAD",
    "VIKTOR LEBEDEV": "VICTOR LEBEDEFF",
    "CARLOS MENDOZA RUIZ": "KARLOS MENDOSA RUIS",
    "LI WEI CHEN": "LEE WEI CHENG",
    "OMAR FAROUK SALEH": "UMAR FARUQ SALIH",
}
_WATCHLIST_VARIANTS: tuple[str, ...] = ("typo", "transliteration", "reordered", "document", "exact")
_DOCUMENT_FORMATS: tuple[str, ...] = ("lower", "spaces", "dashes", "as_is", "mixed")


@dataclass(slots=True)
class Traveller:
    document_id: str
    person_id: str
    name: str
    nationality: str
    points: tuple[int, ...]  # indexes into crossing_points(); 1 or 2 habitual points
    last_t: float = -1e18
    last_point: int = -1
    inbound: bool = False



class BorderTraffic:
    """The simulator's travellers and background crossings."""

    def _document_id(self, rng: random.Random) -> str:
        # Two positions (letter, first digit) can never match a listed document, so a
        # background document is never within one edit of the lost/stolen or watch lists.
        while True:
            doc = f"{rng.choice('CEGHKMNRT')}{rng.choice('3568')}{rng.randrange(10**6):06d}"
            if doc not in self._taken_docs:
                self._taken_docs.add(doc)
                return doc

    def _name(self, rng: random.Random) -> str:
        return f"{rng.choice(_FIRST_NAMES)} {rng.choice(_LAST_NAMES)}"

    def _home_points(self, rng: random.Random) -> tuple[int, ...]:
        first = rng.randrange(len(self.points))
        if rng.random() < 0.6:
            return (first,)
        near = [k for k in range(len(self.points)) if k != first and self._dist[first][k] < 500]
        return (first, rng.choice(near)) if near else (first,)

    def _nationality(self, rng: random.Random) -> str:
        return rng.choices([c for c, _ in _NATIONALITIES], [w for _, w in _NATIONALITIES])[0]

    def _new_traveller(self, rng: random.Random, name: str | None = None) -> Traveller:
        self._fresh += 1
        return Traveller(
            document_id=self._document_id(rng),
            person_id=f"PER-9{self._fresh:05d}",
            name=name or self._name(rng),
            nationality=self._nationality(rng),
            points=self._home_points(rng),
        )

    def _build_travellers(self, rng: random.Random, n: int) -> None:
        self.travellers = [
            Traveller(
                document_id=self._document_id(rng),
                person_id=f"PER-{i:06d}",
                name=self._name(rng),
                nationality=self._nationality(rng),
                points=self._home_points(rng),
            )
            for i in range(n)
        ]
        self._traveller_cum = _weighted_cum(rng.lognormvariate(0.0, 1.0) for _ in range(n))
        # similar_name: one name part shared with a listed person, the rest ordinary.
        self.similar_name_travellers: list[Traveller] = []
        for k in range(40):
            entry = self._watchlist[k % len(self._watchlist)]
            part = rng.choice(entry.name.split())
            name = (
                f"{part} {rng.choice(_LAST_NAMES)}"
                if k % 2
                else f"{rng.choice(_FIRST_NAMES)} {part}"
            )
            self.similar_name_travellers.append(self._new_traveller(rng, name))
        # near_miss_document: one character away from a lost/stolen document.
        self.near_miss_travellers: list[Traveller] = []
        for doc in self._lost_stolen:
            for _ in range(2):
                pos = rng.randrange(1, len(doc))
                digit = rng.choice([d for d in "0123456789" if d != doc[pos]])
                near = doc[:pos] + digit + doc[pos + 1 :]
                if near in self._taken_docs:
                    continue
                self._taken_docs.add(near)
                tr = self._new_traveller(rng)
                tr.document_id = near
                self.near_miss_travellers.append(tr)

    def crossing(
        self, rng: random.Random, tr: Traveller, point: int, document_id: str | None = None
    ) -> dict[str, Any]:
        """A crossing of ``tr`` at ``point``, alternating entry and exit."""
        tr.inbound = not tr.inbound
        return {
            "document_id": document_id or tr.document_id,
            "nationality": tr.nationality,
            "crossing_point": self.points[point].code,
            "direction": "entry" if tr.inbound else "exit",
            "person_name": tr.name,
            "person_id": tr.person_id,
        }

    def _bg_border(self, rng: random.Random, t: float) -> tuple[dict[str, Any], dict]:
        r = rng.random()
        if r < P_SIMILAR_NAME:
            tr, sim = rng.choice(self.similar_name_travellers), _sim(lookalike="similar_name")
        elif r < P_SIMILAR_NAME + P_NEAR_MISS:
            tr, sim = rng.choice(self.near_miss_travellers), _sim(lookalike="near_miss_document")
        else:
            sim = _BENIGN
            for _ in range(4):
                tr = self.travellers[_pick(rng, self._traveller_cum)]
                if t - tr.last_t > 1_800:  # nobody crosses twice within half an hour
                    break
        hour = (t % DAY) / HOUR
        point = rng.choice(tr.points)
        if sim is _BENIGN and 7 <= hour < 20 and rng.random() < 0.03:
            # An occasional trip elsewhere, by day only (a night crossing at a new point
            # after a daytime routine is the unusual_route threat).
            point = rng.randrange(len(self.points))
        if 1 <= hour < 5 and tr.last_point >= 0:
            # At night a traveller crosses where they last did: a first use of even a
            # habitual second point at night, after a daytime routine at the first, is
            # exactly the unusual_route threat and must not appear unlabelled.
            point = tr.last_point
        if tr.last_point >= 0 and point != tr.last_point:
            hours = max(t - tr.last_t, 1.0) / HOUR
            if self._dist[tr.last_point][point] / hours > 400.0:
                # Too fast to be plausible: stay at the previous point.
                point = tr.last_point
        tr.last_t, tr.last_point = t, point
        return self.crossing(rng, tr, point), sim



class BorderScript:
    """Clock-driven border events: look-alikes and threat campaigns.

    A mixin of :class:`~watchfloor.simulation.simulator._Script`, which provides ``s``
    (the simulator), ``rng`` (the script's own random stream) and the helpers ``add``,
    ``at``, ``days``, ``count``, ``host``, ``account`` and ``campaign_times``.
    """

    s: Simulator
    rng: random.Random

    def frequent_traveller(self) -> None:
        rng, s = self.rng, self.s
        for _ in range(self.count(12, 2)):
            tr = s._new_traveller(rng)
            point = rng.randrange(len(s.points))
            t = s.start + rng.uniform(0, 6) * HOUR
            while t < s.end:
                self.add(
                    t, "border", s.crossing(rng, tr, point), _sim(lookalike="frequent_traveller")
                )
                nxt = rng.choice([k for k in range(len(s.points)) if k != point])
                # Plausible: at most 450 km/h door to door, plus time on the ground.
                t += s._dist[point][nxt] / 450.0 * HOUR + rng.uniform(1.5, 9.0) * HOUR
                point = nxt

    # -- border threats --------------------------------------------------------------------
    def _typo(self, name: str) -> str:
        rng = self.rng
        parts = name.split()
        k = max(range(len(parts)), key=lambda j: len(parts[j]))
        p = parts[k]
        i = rng.randrange(1, len(p) - 1)
        op = rng.randrange(3)
        if op == 0:  # substitution
            p = p[:i] + rng.choice([ch for ch in "AEIOUY" if ch != p[i]]) + p[i + 1 :]
        elif op == 1:  # deletion
            p = p[:i] + p[i + 1 :]
        else:  # transposition
            p = p[: i - 1] + p[i] + p[i - 1] + p[i + 1 :]
        parts[k] = p
        return " ".join(parts)

    def watchlist_match(self) -> None:
        rng, s = self.rng, self.s
        for c, t0 in enumerate(self.campaign_times(12 * HOUR), 1):
            cid = f"watchlist_match-{c}"
            entry = s._watchlist[(c - 1 + rng.randrange(len(s._watchlist))) % len(s._watchlist)]
            tr = s._new_traveller(rng, entry.name)
            tr.nationality = entry.nationality
            point = rng.randrange(len(s.points))
            t = t0
            # Out and back, each time written differently: all variants appear over the
            # default three campaigns.
            for leg in range(2):
                variant = _WATCHLIST_VARIANTS[(2 * (c - 1) + leg) % len(_WATCHLIST_VARIANTS)]
                ev = s.crossing(rng, tr, point)
                if variant == "typo":
                    ev["person_name"] = self._typo(entry.name)
                elif variant == "transliteration":
                    ev["person_name"] = _TRANSLITERATIONS.get(entry.name, entry.name)
                elif variant == "reordered":
                    parts = entry.name.split()
                    ev["person_name"] = " ".join([parts[-1], *parts[:-1]])
                elif variant == "document":
                    ev["document_id"] = entry.document_id
                    ev["person_name"] = s._name(rng)  # travelling under an alias
                self.add(t, "border", ev, _sim("watchlist_match", cid))
                t += rng.uniform(4, 10) * HOUR

    def impossible_travel(self) -> None:
        rng, s = self.rng, self.s
        pairs = [
            (a, b)
            for a in range(len(s.points))
            for b in range(len(s.points))
            if s._dist[a][b] >= 800
        ]
        for c, t0 in enumerate(self.campaign_times(4 * HOUR), 1):
            cid = f"impossible_travel-{c}"
            tr = s._new_traveller(rng)
            a, b = rng.choice(pairs)
            speed = rng.uniform(1_500, 6_000)  # km/h: well above any airliner
            self.add(t0, "border", s.crossing(rng, tr, a), _sim("impossible_travel", cid))
            t1 = t0 + s._dist[a][b] / speed * HOUR
            self.add(t1, "border", s.crossing(rng, tr, b), _sim("impossible_travel", cid))

    def stolen_document(self) -> None:
        rng, s = self.rng, self.s
        for c, t0 in enumerate(self.campaign_times(12 * HOUR), 1):
            cid = f"stolen_document-{c}"
            doc = rng.choice(s._lost_stolen)
            tr = s._new_traveller(rng)
            point = rng.choice(tr.points)
            t = t0
            for leg in range(2):
                fmt = _DOCUMENT_FORMATS[(2 * (c - 1) + leg) % len(_DOCUMENT_FORMATS)]
                written = {
                    "lower": doc.lower(),
                    "spaces": f"{doc[:4]} {doc[4:]}",
                    "dashes": f"{doc[:1]}-{doc[1:4]}-{doc[4:]}",
                    "as_is": doc,
                    "mixed": f"{doc[:1].lower()} {doc[1:]}",
                }[fmt]
                self.add(
                    t, "border", s.crossing(rng, tr, point, written), _sim("stolen_document", cid)
                )
                t += rng.uniform(3, 10) * HOUR

    def unusual_route(self) -> None:
        rng, s = self.rng, self.s
        first_day = math.ceil((s.start + DAY - self._midnight) / DAY)
        nights = [d for d in range(first_day, math.ceil(s.days) + 1) if self.at(d, 5.0) <= s.end]
        if not nights:
            return
        for c in range(1, self.n_campaigns + 1):
            cid = f"unusual_route-{c}"
            tr = s._new_traveller(rng)
            night = nights[(c - 1) % len(nights)]
            t_night = self.at(night, rng.uniform(1.2, 4.8))
            if t_night < s.start + DAY:
                continue
            # Routine: 6-10 daytime crossings at the habitual 1-2 points, before the night.
            # Hourly daytime slots, at least 1.5 h apart: even between the two habitual
            # points (< 500 km apart) the routine itself stays at plausible speeds.
            slots = [
                t
                for d in range(night)
                for t in (self.at(d, h + rng.uniform(0, 0.5)) for h in range(7, 19, 2))
                if s.start <= t < t_night - 4 * HOUR
            ]
            if len(slots) < 6:
                continue
            for t in sorted(rng.sample(slots, min(len(slots), rng.randint(6, 10)))):
                self.add(t, "border", s.crossing(rng, tr, rng.choice(tr.points)), _BENIGN)
            home = tr.points[0]
            # A new point among the five nearest: a plausible drive or flight from home.
            new = sorted(
                (k for k in range(len(s.points)) if k not in tr.points),
                key=lambda k: s._dist[home][k],
            )[:5]
            self.add(
                t_night, "border", s.crossing(rng, tr, rng.choice(new)), _sim("unusual_route", cid)
            )
