"""Border detectors: crossings, one entity per ``document_id``.

Reference lists (watchlist, lost and stolen documents, crossing points) are files loaded
at start. The two lists that change while the worker runs (watchlist, lost/stolen) are
re-read when the file's modification time changes, checked at most every
``reload_seconds`` of wall-clock time (file freshness is an operational matter, unlike
detection which uses event time only), or at once with ``reload()``. The loaded data is
pickled with the detector, so a restarted worker judges exactly as before even if the
file is briefly unavailable, and then picks up any change made meanwhile.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import random
import time
import unicodedata
from collections.abc import Iterator, Mapping
from functools import lru_cache
from importlib.resources import files
from typing import Any, ClassVar

from watchfloor.core.entity_table import EntityTable
from watchfloor.core.events import canonical_document
from watchfloor.detectors.base import NORMAL, Detector, Score
from watchfloor.detectors.calibration import logistic

__all__ = [
    "ImpossibleTravel",
    "LostStolenDocument",
    "UnusualRoute",
    "Watchlist",
    "jaro_winkler",
    "name_tokens",
    "normalise_document",
]

_DATA = files("watchfloor") / "data"
WATCHLIST_PATH = str(_DATA / "watchlist.csv")
LOST_STOLEN_PATH = str(_DATA / "lost_stolen.txt")
CROSSING_POINTS_PATH = str(_DATA / "crossing_points.csv")

_DAY = 86_400.0
_log = logging.getLogger(__name__)


# -- normalisation --------------------------------------------------------------------


def normalise_document(doc: object) -> str:
    """Upper case, letters and digits only: how issuing states' lists compare numbers.

    The same canonical form decoding gives every event's ``document_id``
    (:func:`watchfloor.core.events.canonical_document`), so a listed number and a
    crossing compare equal however either was typed. Only separators and case are
    forgiven; ``O`` and ``0`` stay different, since a document one character away from a
    listed one is a different document.

    >>> normalise_document(" p-000 0913 "), normalise_document("PO000913")
    ('P0000913', 'PO000913')
    """
    return canonical_document(str(doc))


# Letters NFKD does not decompose into ASCII.
_FOLD = str.maketrans({"ß": "SS", "Æ": "AE", "Œ": "OE", "Ø": "O", "Ł": "L", "Đ": "D",
                       "Þ": "TH", "Ð": "D", "İ": "I", "Ħ": "H", "\u0131": "I"})

# Spelling variants of one sound across transliteration schemes (Cyrillic, Arabic,
# Persian...), folded to one spelling so KHALID/HALID, SOKOLOW/SOKOLOV, YUSUF/IUSUF,
# MOUSSA/MUSA compare equal. Longest patterns first.
_TRANSLIT: tuple[tuple[str, str], ...] = (
    ("SCH", "SH"), ("TCH", "CH"), ("DZH", "J"), ("DJ", "J"), ("ZH", "J"), ("KH", "H"),
    ("PH", "F"), ("TH", "T"), ("CK", "K"), ("OU", "U"), ("OO", "U"), ("EE", "I"),
    ("Q", "K"), ("C", "K"), ("X", "KS"), ("W", "V"), ("Y", "I"),
)


def _skeleton(token: str) -> str:
    for a, b in _TRANSLIT:
        if a in token:
            token = token.replace(a, b)
    # Doubled letters are the commonest transliteration difference (HADDAD/HADAD).
    out = [c for i, c in enumerate(token) if i == 0 or c != token[i - 1]]
    return "".join(out)


@lru_cache(maxsize=65_536)
def name_tokens(name: str) -> tuple[str, ...]:
    """A name as its transliteration-folded tokens, in the order written.

    Cached: the same travellers cross again and again.

    >>> name_tokens("Ahmad  Karimí"), name_tokens("Sokolow, Ivan Petrowitsch")
    (('AHMAD', 'KARIMI'), ('SOKOLOV', 'IVAN', 'PETROVITSH'))
    """
    text = unicodedata.normalize("NFKD", name.upper().translate(_FOLD))
    letters = "".join(
        c if c.isalpha() and c.isascii() else " "
        for c in text
        if not unicodedata.combining(c)
    )
    return tuple(_skeleton(t) for t in letters.split())


def jaro_winkler(a: str, b: str, prefix_scale: float = 0.1) -> float:
    """Jaro-Winkler similarity in [0, 1]: forgiving of typos, strict on different names.

    >>> round(jaro_winkler("KARIMI", "KARIMY"), 3), round(jaro_winkler("KARIMI", "RAHIMI"), 3)
    (0.933, 0.822)
    """
    if a == b:
        return 1.0
    la, lb = len(a), len(b)
    if not la or not lb:
        return 0.0
    reach = max(max(la, lb) // 2 - 1, 0)
    b_used = [False] * lb
    a_hits: list[str] = []
    for i, ch in enumerate(a):
        for j in range(max(0, i - reach), min(lb, i + reach + 1)):
            if not b_used[j] and b[j] == ch:
                b_used[j] = True
                a_hits.append(ch)
                break
    m = len(a_hits)
    if not m:
        return 0.0
    b_hits = [b[j] for j in range(lb) if b_used[j]]
    transpositions = sum(x != y for x, y in zip(a_hits, b_hits, strict=True)) / 2
    jaro = (m / la + m / lb + (m - transpositions) / m) / 3
    prefix = 0
    for x, y in zip(a[:4], b[:4], strict=False):
        if x != y:
            break
        prefix += 1
    return jaro + prefix * prefix_scale * (1.0 - jaro)


# -- reloadable reference files -------------------------------------------------------


class _FileBacked(Detector):
    """A detector whose reference list comes from ``self.path`` and follows its changes.

    Subclasses implement ``_parse(path)`` (raise ValueError/OSError on a bad file) and
    ``_install(data)``. The check runs in ``learn_one`` (scoring never changes the
    detector), so an edit is in force from the event after the one that noticed it.
    """

    path: str
    reload_seconds: float

    def _init_file(self) -> None:
        self._signature = self._stat()
        self._next_check = time.monotonic() + self.reload_seconds
        try:
            self._install(self._parse(self.path))
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot load {self.path!r}: {exc}") from exc

    def _parse(self, path: str) -> Any:
        raise NotImplementedError

    def _install(self, data: Any) -> None:
        raise NotImplementedError

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def reload(self) -> bool:
        """Re-read the file now; keep the current list if it cannot be read.

        Returns True if the new list is in force.
        """
        self._signature = self._stat()
        try:
            data = self._parse(self.path)
        except (OSError, ValueError) as exc:
            # Rare (a file being replaced), so logging here is off the per-event path.
            _log.warning("%s: keeping the current list, cannot reload %s: %s",
                         type(self).__name__, self.path, exc)
            return False
        self._install(data)
        return True

    def _maybe_reload(self) -> None:
        now = time.monotonic()
        if now < self._next_check:
            return
        self._next_check = now + self.reload_seconds
        if self._stat() != self._signature:
            self.reload()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_next_check", None)  # a monotonic time means nothing in another process
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._next_check = 0.0  # check the file on the first event after a restart


# -- watchlist ------------------------------------------------------------------------


class _Entry:
    __slots__ = ("doc", "list_name", "name", "tokens", "weight")

    def __init__(self, name: str, doc: str, list_name: str) -> None:
        self.name = name
        self.doc = doc
        self.list_name = list_name
        self.tokens = name_tokens(name)
        self.weight = sum(len(t) for t in self.tokens)

    def __getstate__(self) -> tuple[str, str, str, tuple[str, ...], int]:
        return (self.name, self.doc, self.list_name, self.tokens, self.weight)

    def __setstate__(self, s: tuple[str, str, str, tuple[str, ...], int]) -> None:
        self.name, self.doc, self.list_name, self.tokens, self.weight = s


def _block_keys(token: str) -> tuple[str, ...]:
    # A typo rarely hits both ends of a token, and a name with a typo in one token
    # still shares its other tokens exactly: one shared key makes a candidate.
    return (token,) if len(token) <= 3 else ("<" + token[:3], token[-3:] + ">")


class Watchlist(_FileBacked):
    """A crossing by a watchlisted person: fuzzy name match or listed document number.

    Names are compared token by token after folding case, diacritics and common
    transliteration variants (KH/H, W/V, Y/I, OU/U, doubled letters), in any order.
    Every token of the listed name must find a close token in the traveller's name
    (Jaro-Winkler at least ``min_token_similarity``); the similarity is then the
    length-weighted mean over the listed name's tokens. A traveller sharing only one
    name part with a listed person fails the per-token floor. Candidates come from an
    index of token prefixes and suffixes, so an event is compared with the few entries
    sharing a name part, never the whole list.

    The list is a CSV with columns ``name``, ``document_id`` and optionally ``list``.
    The detector keeps no per-document state.

    Parameters
    ----------
    path
        Watchlist CSV; by default the packaged ``watchfloor/data/watchlist.csv``.
    reload_seconds
        Wall-clock seconds between checks of the file's modification time.
    mid, alarm
        Name similarities scored 0.5 and 0.9.
    min_token_similarity
        Every listed name token must match a traveller token at least this closely.

    Examples
    --------
    >>> from watchfloor.detectors.testkit import START, make_event
    >>> det = Watchlist()
    >>> s = det.score_one(make_event("border", _ts=START, person_name="Karimy, Ahmed"))
    >>> s.score > 0.9, s.reason
    (True, "name 'Karimy, Ahmed' matches AHMAD KARIMI (ct-watch), similarity 0.96")
    >>> det.score_one(make_event("border", _ts=START, person_name="Ivan Petrenko")).score
    0.0
    >>> det.score_one(make_event("border", _ts=START, document_id="y4455-001")).reason
    'document Y4455001 is listed: AHMAD KARIMI (ct-watch)'
    """

    domains: ClassVar[tuple[str, ...]] = ("border",)
    entity: ClassVar[tuple[str, str]] = ("document", "document_id")
    kind: ClassVar[str] = "watchlist_match"

    def __init__(
        self,
        path: str = WATCHLIST_PATH,
        reload_seconds: float = 60.0,
        mid: float = 0.86,
        alarm: float = 0.93,
        min_token_similarity: float = 0.84,
    ) -> None:
        if not 0.0 < mid < alarm <= 1.0:
            raise ValueError("need 0 < mid < alarm <= 1")
        if reload_seconds < 0:
            raise ValueError("reload_seconds must be >= 0")
        self.path = path
        self.reload_seconds = reload_seconds
        self.mid = mid
        self.alarm = alarm
        self.min_token_similarity = min_token_similarity
        self._init_file()

    def _parse(self, path: str) -> list[_Entry]:
        with open(path, encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
        if rows and "name" not in rows[0]:
            raise ValueError("watchlist CSV needs a 'name' column")
        return [
            _Entry((r.get("name") or "").strip(), normalise_document(r.get("document_id") or ""),
                   (r.get("list") or "watchlist").strip())
            for r in rows
            if (r.get("name") or "").strip() or (r.get("document_id") or "").strip()
        ]

    def _install(self, entries: list[_Entry]) -> None:
        by_doc: dict[str, _Entry] = {}
        index: dict[str, list[_Entry]] = {}
        for e in entries:
            if e.doc:
                by_doc[e.doc] = e
            if not e.tokens:
                continue
            for key in {k for t in e.tokens for k in _block_keys(t)}:
                index.setdefault(key, []).append(e)
        self._entries = entries
        self._by_doc = by_doc
        self._index = index
        self._memo: dict[str, tuple[float, _Entry | None]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def _similarity(self, tokens: tuple[str, ...], entry: _Entry) -> float:
        floor = self.min_token_similarity
        total = 0.0
        for w in entry.tokens:
            best = 0.0
            for t in tokens:
                s = jaro_winkler(w, t)
                if s > best:
                    best = s
            if best < floor:
                return 0.0
            total += best * len(w)
        return total / entry.weight

    def _best_match(self, name: str) -> tuple[float, _Entry | None]:
        hit = self._memo.get(name)
        if hit is not None:
            return hit
        tokens = name_tokens(name)
        index = self._index
        candidates: dict[int, _Entry] = {}
        for t in tokens:
            for key in _block_keys(t):
                for e in index.get(key, ()):
                    candidates[id(e)] = e
        best: tuple[float, _Entry | None] = (0.0, None)
        for e in candidates.values():
            s = self._similarity(tokens, e)
            if s > best[0]:
                best = (s, e)
        # A pure function of the name and the list (cleared on reload): caching it is
        # not learning. Bounded crudely, which is enough for a cache.
        if len(self._memo) >= 65_536:
            self._memo.clear()
        self._memo[name] = best
        return best

    def learn_one(self, event: Mapping[str, Any]) -> None:
        self._maybe_reload()

    def score_one(self, event: Mapping[str, Any]) -> Score:
        doc = event.get("document_id")
        if doc is not None and self._by_doc:
            e = self._by_doc.get(doc) or self._by_doc.get(normalise_document(doc))
            if e is not None:
                return Score(1.0, f"document {e.doc} is listed: {e.name} ({e.list_name})", 1.0)
        name = event.get("person_name")
        if type(name) is not str or not name:
            return NORMAL
        sim, entry = self._best_match(name)
        if entry is None:
            return NORMAL
        score = logistic(sim, self.mid, self.alarm)
        return Score(
            score,
            f"name {name!r} matches {entry.name} ({entry.list_name}), similarity {sim:.2f}",
            sim,
        )

    @classmethod
    def _conformance_stream(cls, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Travellers sharing one name part with listed people; then listed people with
        typos, transliteration and reordered names, and a listed document."""
        from watchfloor.detectors.testkit import START, border_traffic, make_event, merge

        rng = random.Random(seed)
        lookalikes = [
            make_event("border", _ts=START + 600 * i + 11, document_id=f"S{i:07d}",
                       person_name=name)
            for i, name in enumerate(SIMILAR_NAMES * 3)
        ]
        normal = merge(border_traffic(seed, n=1_500), lookalikes)
        t = normal[-1]["_ts"]
        listed = [("Sokolov, Iwan Petrowitsch", "P5550001"), ("AHMED KARIMY", "P5550002"),
                  ("Della Rovere Marko", "P5550003"), ("Samir Hadad", "P5550004"),
                  ("JOHN DOE", "x9900-305")]
        rng.shuffle(listed)
        return normal, [
            make_event("border", _ts=t + 60 * (i + 1), person_name=n, document_id=d)
            for i, (n, d) in enumerate(listed)
        ]

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_memo", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._memo = {}


# -- lost and stolen documents --------------------------------------------------------


class LostStolenDocument(_FileBacked):
    """A crossing with a document reported lost or stolen.

    Exact match after removing spaces, dashes and case (``normalise_document``); a number
    one character away from a listed one is a different document and is not a match.
    The list is a text file with one document number per line (``#`` comments). The
    detector keeps no per-document state.

    Parameters
    ----------
    path
        List file; by default the packaged ``watchfloor/data/lost_stolen.txt``.
    reload_seconds
        Wall-clock seconds between checks of the file's modification time.

    Examples
    --------
    >>> from watchfloor.detectors.testkit import START, make_event
    >>> det = LostStolenDocument()
    >>> det.score_one(make_event("border", _ts=START, document_id="p000-0913"))
    Score(score=1.0, reason='document P0000913 is reported lost or stolen', raw=1.0)
    >>> det.score_one(make_event("border", _ts=START, document_id="P0000914")).score
    0.0
    """

    domains: ClassVar[tuple[str, ...]] = ("border",)
    entity: ClassVar[tuple[str, str]] = ("document", "document_id")
    kind: ClassVar[str] = "stolen_document"

    def __init__(self, path: str = LOST_STOLEN_PATH, reload_seconds: float = 60.0) -> None:
        if reload_seconds < 0:
            raise ValueError("reload_seconds must be >= 0")
        self.path = path
        self.reload_seconds = reload_seconds
        self._init_file()

    def _parse(self, path: str) -> frozenset[str]:
        with open(path, encoding="utf-8") as fh:
            ids = (normalise_document(line.split("#", 1)[0]) for line in fh)
            return frozenset(i for i in ids if i)

    def _install(self, ids: frozenset[str]) -> None:
        self._ids = ids

    def __len__(self) -> int:
        return len(self._ids)

    def learn_one(self, event: Mapping[str, Any]) -> None:
        self._maybe_reload()

    @classmethod
    def _conformance_stream(cls, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Documents one character away from listed ones; then a listed one, re-typed."""
        from watchfloor.detectors.testkit import START, border_traffic, make_event, merge

        rng = random.Random(seed)
        near = [make_event("border", _ts=START + 300 * i + 7, document_id=d)
                for i, d in enumerate(NEAR_MISS_DOCUMENTS)]
        normal = merge(border_traffic(seed, n=1_500), near)
        doc = rng.choice(("p000-0913", "P 0007781", "l1000233"))
        return normal, [make_event("border", _ts=normal[-1]["_ts"] + 60, document_id=doc)]

    def score_one(self, event: Mapping[str, Any]) -> Score:
        doc = event.get("document_id")
        if doc is None:
            return NORMAL
        ids = self._ids
        if doc not in ids:
            doc = normalise_document(doc)
            if doc not in ids:
                return NORMAL
        # An exact list match is certain evidence, not a matter of degree.
        return Score(1.0, f"document {doc} is reported lost or stolen", 1.0)


# -- benign look-alikes used by the planted scenarios (docs/threats.md) ---------------

#: Travellers sharing one name part with a listed person (``lookalike: similar_name``).
SIMILAR_NAMES: tuple[str, ...] = (
    "IVAN PETRENKO", "AHMAD RAHIMI", "MARCO ROSSI", "ELENA PETROVA", "JOHAN SMIT",
    "SAMIR NASSER", "VIKTOR ORBAN", "CARLOS SANTANA", "LI NA", "OMAR SHARIF",
    "MARIA DELLA CASA", "PETER VAN DER MEER", "NINA SOKOLOVA", "ALI KARIM",
)

#: Documents one character away from listed ones (``lookalike: near_miss_document``).
NEAR_MISS_DOCUMENTS: tuple[str, ...] = (
    "P0000914", "P0000193", "PO000913", "P00009130", "P000913", "L1000018", "L1000234",
    "X9900113", "P0007718", "Y4455011",
)

_AIRPORTS = ("CDG-T2", "FRA-T1", "MUC-T2", "AMS-SPL", "BRU-ZAV", "MAD-T4", "LIS-T1",
             "ATH-EV", "HEL-VAN")


def frequent_travellers(
    rng: random.Random, start: float, travellers: int, trips: int
) -> list[dict[str, Any]]:
    """Business travellers flying between airports at all hours at airliner speeds.

    Each leg takes the flight time at 600 km/h plus an hour or more at the airports
    (``lookalike: frequent_traveller``).
    """
    from watchfloor.detectors.testkit import make_event

    points = load_crossing_points(CROSSING_POINTS_PATH)
    out = []
    for k in range(travellers):
        t = start + rng.uniform(0, 6) * 3600
        here = rng.choice(_AIRPORTS)
        for _ in range(trips):
            out.append(make_event("border", _ts=t, document_id=f"F{k:07d}",
                                  person_name=f"FREQUENT FLYER {k}", crossing_point=here))
            there = rng.choice([a for a in _AIRPORTS if a != here])
            km = haversine_km(points[here], points[there])
            t += (km / 600.0 + rng.uniform(1.0, 6.0)) * 3600
            here = there
    out.sort(key=lambda e: e["_ts"])
    return out


# -- impossible travel ----------------------------------------------------------------

_EARTH_KM = 6371.0088


def load_crossing_points(path: str) -> dict[str, tuple[float, float]]:
    """Crossing point code -> (latitude, longitude) in radians, from the points CSV."""
    with open(path, encoding="utf-8", newline="") as fh:
        return {
            r["code"].strip(): (math.radians(float(r["lat"])), math.radians(float(r["lon"])))
            for r in csv.DictReader(fh)
        }


def haversine_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance in km between two (lat, lon) points given in radians."""
    (la1, lo1), (la2, lo2) = a, b
    h = math.sin((la2 - la1) / 2) ** 2 + math.cos(la1) * math.cos(la2) * math.sin(
        (lo2 - lo1) / 2
    ) ** 2
    return 2 * _EARTH_KM * math.asin(min(1.0, math.sqrt(h)))


class ImpossibleTravel(Detector):
    """One document crosses at two points further apart than anyone could travel.

    Keeps each document's last crossing (time and point) and scores the speed implied
    by the next one: ``mid_kmh`` scores 0.5 and ``max_kmh`` 0.9. Hops shorter than
    ``min_km`` are not scored, since neighbouring points (Paris CDG and Orly, Calais and
    Dover) with clock skew between them can imply any speed. Unknown point codes are
    ignored.

    Parameters
    ----------
    path
        Crossing points CSV (code, name, country, lat, lon); by default the packaged
        ``watchfloor/data/crossing_points.csv``.
    mid_kmh, max_kmh
        Implied speeds scored 0.5 and 0.9.
    min_km
        Shortest hop that is scored.
    max_entities, ttl_seconds
        Bound on documents tracked and idle time (event time) after which one is dropped.

    Examples
    --------
    >>> from watchfloor.detectors.testkit import START, make_event
    >>> det = ImpossibleTravel()
    >>> det.learn_one(make_event("border", _ts=START, document_id="P1", crossing_point="CDG-T2"))
    >>> s = det.score_one(make_event("border", _ts=START + 3600, document_id="P1",
    ...                              crossing_point="ATH-EV"))
    >>> s.score > 0.9, s.reason
    (True, 'CDG-T2 -> ATH-EV: 2,107 km in 1.0 h (2,107 km/h)')
    >>> det.score_one(make_event("border", _ts=START + 5 * 3600, document_id="P1",
    ...                          crossing_point="ATH-EV")).score < 0.9
    True
    """

    domains: ClassVar[tuple[str, ...]] = ("border",)
    entity: ClassVar[tuple[str, str]] = ("document", "document_id")
    kind: ClassVar[str] = "impossible_travel"

    def __init__(
        self,
        path: str = CROSSING_POINTS_PATH,
        mid_kmh: float = 700.0,
        max_kmh: float = 1000.0,
        min_km: float = 100.0,
        max_entities: int = 200_000,
        ttl_seconds: float = 2 * _DAY,
    ) -> None:
        if not 0.0 < mid_kmh < max_kmh:
            raise ValueError("need 0 < mid_kmh < max_kmh")
        self.path = path
        self.mid_kmh = mid_kmh
        self.max_kmh = max_kmh
        self.min_km = min_km
        self.max_entities = max_entities
        self.ttl_seconds = ttl_seconds
        try:
            self._points = load_crossing_points(path)
        except (OSError, KeyError, ValueError) as exc:
            raise ValueError(f"cannot load crossing points {path!r}: {exc}") from exc
        self._table: EntityTable[tuple[float, str]] = EntityTable(max_entities, ttl_seconds)

    def learn_one(self, event: Mapping[str, Any]) -> None:
        point = event.get("crossing_point")
        if point in self._points:
            now = event["_ts"]
            self._table.put(event["document_id"], now, (now, point))

    def score_one(self, event: Mapping[str, Any]) -> Score:
        last = self._table.get(event["document_id"])
        if last is None:
            return NORMAL
        point = event.get("crossing_point")
        here = self._points.get(point)  # type: ignore[arg-type]
        t0, p0 = last
        if here is None or p0 == point:
            return NORMAL
        km = haversine_km(self._points[p0], here)
        if km < self.min_km:
            return NORMAL
        # Out-of-order delivery can make dt negative; a simultaneous crossing is "1 s".
        hours = max(abs(event["_ts"] - t0), 1.0) / 3600.0
        kmh = km / hours
        score = logistic(kmh, self.mid_kmh, self.max_kmh)
        if score < 0.01:
            return NORMAL
        return Score(
            score, f"{p0} -> {point}: {km:,.0f} km in {hours:.1f} h ({kmh:,.0f} km/h)", kmh
        )

    @classmethod
    def _unit_test_params(cls) -> Iterator[dict[str, Any]]:
        yield {}
        yield {"max_kmh": 800.0, "max_entities": 10}

    @classmethod
    def _conformance_stream(cls, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Frequent travellers flying between points at airliner speeds; then a document
        crossing in Paris and Helsinki an hour apart."""
        from watchfloor.detectors.testkit import START, border_traffic, make_event, merge

        rng = random.Random(seed)
        normal = merge(border_traffic(seed, n=1_500),
                       frequent_travellers(rng, START, travellers=20, trips=8))
        t = normal[-1]["_ts"]
        return normal, [
            make_event("border", _ts=t + 60, document_id="P8880001", crossing_point="CDG-T2"),
            make_event("border", _ts=t + 3_660, document_id="P8880001", crossing_point="HEL-VAN"),
        ]


# -- unusual route --------------------------------------------------------------------


class _Route:
    """One document's crossing habits: count, night crossings, points (None: many)."""

    __slots__ = ("n", "night", "points")

    def __init__(self) -> None:
        self.n = 0
        self.night = 0
        self.points: dict[str, int] | None = {}

    def __getstate__(self) -> tuple[int, int, dict[str, int] | None]:
        return (self.n, self.night, self.points)

    def __setstate__(self, s: tuple[int, int, dict[str, int] | None]) -> None:
        self.n, self.night, self.points = s


class UnusualRoute(Detector):
    """A creature of habit crosses at a new point in the middle of the night.

    Per document: how many crossings, at which points (up to ``max_points``; a
    document seen at more is a frequent traveller and never scored) and how many in the
    night window. A crossing scores high when the document made at least
    ``min_crossings`` earlier crossings, all in daytime at 1 to ``max_points`` points,
    and this one is at a new point between ``night_start_hour`` and ``night_end_hour``.
    ``raw`` is the number of earlier crossings: one fewer than ``min_crossings`` scores
    0.5.

    Parameters
    ----------
    min_crossings
        Earlier crossings needed before a habit is established.
    max_points
        Most distinct points of an established habit.
    night_start_hour, night_end_hour
        Night window, hours of the day [start, end) in local time.
    utc_offset_hours
        Local time = UTC + offset (event time is UTC epoch seconds).
    max_entities, ttl_seconds
        Bound on documents tracked and idle time (event time) after which one is dropped.

    Examples
    --------
    >>> from watchfloor.detectors.testkit import START, feed, make_event
    >>> det = UnusualRoute()
    >>> commute = [make_event("border", _ts=START + d * _DAY + 9 * 3600, document_id="P7",
    ...                       crossing_point=("KHG-ROAD", "CDG-T2")[d % 2]) for d in range(8)]
    >>> night = make_event("border", _ts=START + 8 * _DAY + 3 * 3600, document_id="P7",
    ...                    crossing_point="NAR-ROAD")
    >>> s = feed(det, [*commute, night])[-1]
    >>> s.score > 0.95, s.reason
    (True, 'new point NAR-ROAD at 03:00 after 8 daytime crossings at 2 points')
    >>> det.score_one(make_event("border", _ts=START + 9 * _DAY + 3 * 3600,
    ...                          document_id="P7", crossing_point="KHG-ROAD")).score
    0.0
    """

    domains: ClassVar[tuple[str, ...]] = ("border",)
    entity: ClassVar[tuple[str, str]] = ("document", "document_id")
    kind: ClassVar[str] = "unusual_route"

    def __init__(
        self,
        min_crossings: int = 6,
        max_points: int = 2,
        night_start_hour: int = 1,
        night_end_hour: int = 5,
        utc_offset_hours: float = 0.0,
        max_entities: int = 200_000,
        ttl_seconds: float = 90 * _DAY,
    ) -> None:
        if min_crossings < 2 or max_points < 1:
            raise ValueError("need min_crossings >= 2 and max_points >= 1")
        if not 0 <= night_start_hour < night_end_hour <= 24:
            raise ValueError("need 0 <= night_start_hour < night_end_hour <= 24")
        self.min_crossings = min_crossings
        self.max_points = max_points
        self.night_start_hour = night_start_hour
        self.night_end_hour = night_end_hour
        self.utc_offset_hours = utc_offset_hours
        self.max_entities = max_entities
        self.ttl_seconds = ttl_seconds
        self._offset = utc_offset_hours * 3600.0
        self._night = (night_start_hour * 3600.0, night_end_hour * 3600.0)
        self._table: EntityTable[_Route] = EntityTable(max_entities, ttl_seconds)

    def _second_of_day(self, ts: float) -> float:
        return (ts + self._offset) % _DAY

    def learn_one(self, event: Mapping[str, Any]) -> None:
        r = self._table.setdefault(event["document_id"], event["_ts"], _Route)
        r.n += 1
        lo, hi = self._night
        if lo <= self._second_of_day(event["_ts"]) < hi:
            r.night += 1
        points = r.points
        if points is not None:
            point = str(event.get("crossing_point", ""))
            points[point] = points.get(point, 0) + 1
            if len(points) > self.max_points:
                r.points = None  # many points: a frequent traveller, nothing to learn

    def score_one(self, event: Mapping[str, Any]) -> Score:
        r = self._table.get(event["document_id"])
        if r is None or r.points is None or r.night or r.n < self.min_crossings - 2:
            return NORMAL
        sec = self._second_of_day(event["_ts"])
        lo, hi = self._night
        point = event.get("crossing_point", "")
        if not lo <= sec < hi or point in r.points:
            return NORMAL
        # A count rule: min_crossings - 1 is the edge (0.5), min_crossings the alarm.
        score = logistic(r.n, self.min_crossings - 1, self.min_crossings - 0.5)
        h, m = divmod(int(sec // 60), 60)
        where = "1 point" if len(r.points) == 1 else f"{len(r.points)} points"
        return Score(
            score,
            f"new point {point} at {h:02d}:{m:02d} after {r.n} daytime crossings at {where}",
            r.n,
        )

    @classmethod
    def _unit_test_params(cls) -> Iterator[dict[str, Any]]:
        yield {}
        yield {"min_crossings": 3, "max_points": 1, "max_entities": 10}

    @classmethod
    def _conformance_stream(cls, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Daytime commuters and frequent travellers at all hours; then a commuter
        crossing at a new point at 03:00."""
        from watchfloor.detectors.testkit import START, border_traffic, make_event, merge

        rng = random.Random(seed)
        commute = [
            make_event("border", _ts=START + d * _DAY + rng.uniform(9, 17) * 3600,
                       document_id="P7770001", crossing_point=("KHG-ROAD", "CDG-T2")[d % 2])
            for d in range(8)
        ]
        normal = merge(border_traffic(seed, n=1_500), commute,
                       frequent_travellers(rng, START, travellers=20, trips=10))
        night = math.floor(normal[-1]["_ts"] / _DAY + 1) * _DAY + 3 * 3600
        return normal, [make_event("border", _ts=night, document_id="P7770001",
                                   crossing_point="NAR-ROAD")]
