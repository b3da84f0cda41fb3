"""Apply a sharing agreement to a full alert: the agency's view, default deny.

An agreement names content paths (``entities.id``, ``detections.reason``) with a policy:

* ``full``: the value is copied (scalars, or lists of scalars such as ``domains``);
* ``pseudonymize``: the value is replaced by ``ps_`` + the first 16 hex digits of
  HMAC-SHA256 under the agency's sub-key, so equal values get equal pseudonyms within an
  agency (analysts can still link them) and different pseudonyms across agencies (two
  agencies cannot join their views on a pseudonym);
* ``redact``: the value becomes ``"[redacted]"``: the agency learns the field exists.

Everything else is removed, including unknown keys, nested keys not named, and values of
an unexpected shape (a dict where the agreement names a scalar). Envelope fields
(:data:`~watchfloor.core.alert_schema.ENVELOPE_FIELDS`) are always kept; ``agency`` and
``agreement`` are set to the receiving agency and its agreement.

The master key never appears in a view, a repr or an exception; plans refuse to pickle.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from watchfloor.config import AgencySpec
from watchfloor.core.alert_schema import ENVELOPE_FIELDS, split_qualified

REDACTED = "[redacted]"
MIN_KEY_BYTES = 16
_SUBKEY_LABEL = b"watchfloor/pseudonym/v1\x00"
_COPIED_ENVELOPE = tuple(sorted(ENVELOPE_FIELDS - {"agency", "agreement"}))
_SCALARS = (str, int, float, bool, type(None))
_PSEUDONYM_CACHE = 65_536  # per agency; cleared when full (entity ids repeat a lot)


class _Drop:
    """Marker: the value has no shareable form under this node."""


_DROP = _Drop()


@dataclass(frozen=True, slots=True)
class Shared:
    """One agency's view of an alert plus what was shared, for the audit record.

    ``shared`` lists paths copied in full, ``pseudonymised`` and ``redacted`` the others;
    a path is listed when its top-level field was present (and not empty) in the alert.
    """

    view: dict[str, Any]
    shared: tuple[str, ...]
    pseudonymised: tuple[str, ...]
    redacted: tuple[str, ...]


def check_key(key: bytes) -> bytes:
    """Validate the pseudonymisation master key without ever echoing it."""
    if not isinstance(key, bytes | bytearray):
        raise TypeError("key must be bytes")
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"key must be at least {MIN_KEY_BYTES} bytes")
    return bytes(key)


def agency_subkey(key: bytes, agency: str) -> bytes:
    """Per-agency pseudonym key: HMAC(master key, label + agency name)."""
    return hmac.digest(check_key(key), _SUBKEY_LABEL + agency.encode(), "sha256")


class _ByKind:
    """A leaf whose policy depends on its element's kind (``type`` or ``domain``)."""

    __slots__ = ("by_kind", "default")

    def __init__(self, default: str | None) -> None:
        self.default = default
        self.by_kind: dict[str, str] = {}

    def policy(self, element: Mapping[str, Any]) -> str | None:
        kind = element.get("type", element.get("domain"))
        return self.by_kind.get(kind, self.default) if type(kind) is str else self.default


def _tree(fields: Mapping[str, str]) -> dict[str, Any]:
    """Dotted paths -> nested dict whose leaves are policies (or per-kind policies)."""
    root: dict[str, Any] = {}
    for path, policy in fields.items():
        base, qualifier = split_qualified(path)
        *parents, leaf = base.split(".")
        node = root
        for p in parents:
            node = node.setdefault(p, {})
            if type(node) is not dict:  # "a: full" and "a.b: full": the finer one wins
                raise ValueError(f"agreement names both {p!r} and a path under it")
        current = node.get(leaf)
        if qualifier is None:
            if isinstance(current, _ByKind):
                current.default = policy
            else:
                node[leaf] = policy
        else:
            if not isinstance(current, _ByKind):
                current = node[leaf] = _ByKind(current if type(current) is str else None)
            current.by_kind[qualifier] = policy
    return root


class AgreementPlan:
    """An agreement compiled once for one agency; :meth:`apply` runs per alert.

    >>> from watchfloor.config import Agreement
    >>> spec = AgencySpec("x", "alerts.x", "", frozenset({"network"}), "low",
    ...     Agreement("X-1", {"severity": "full", "entities.id": "pseudonymize",
    ...                        "detections.reason": "redact"}))
    >>> plan = AgreementPlan(spec, b"k" * 32)
    >>> out = plan.apply({"alert_id": "wf-1", "version": 1, "severity": "high",
    ...     "score": 0.9, "entities": [{"type": "ip", "id": "10.0.0.1"}],
    ...     "detections": [{"detector": "port_scan", "reason": "scan"}], "secret": 1})
    >>> out.view["entities"][0]["id"].startswith("ps_"), "score" in out.view
    (True, False)
    >>> out.view["detections"], out.view["agency"], out.view["agreement"]
    ([{'reason': '[redacted]'}], 'x', 'X-1')
    >>> out.shared, out.pseudonymised, out.redacted
    (('severity',), ('entities.id',), ('detections.reason',))
    >>> plan
    AgreementPlan(agency='x', agreement='X-1', fields=3)
    """

    __slots__ = ("_cache", "_paths", "_ps", "_subkey", "_tree", "agency", "agreement")

    def __init__(self, agency: AgencySpec, key: bytes) -> None:
        self.agency = agency.name
        self.agreement = agency.agreement.name
        self._subkey = agency_subkey(key, agency.name)
        fields = dict(agency.agreement.fields)
        self._tree = _tree(fields)
        # top-level key -> (full, pseudonymised, redacted) paths under it, so the audit
        # lists cost a dict lookup per alert instead of a walk.
        per_top: dict[str, tuple[list[str], list[str], list[str]]] = {}
        for path, policy in fields.items():
            lists = per_top.setdefault(path.split(".", 1)[0], ([], [], []))
            idx = {"full": 0, "pseudonymize": 1, "redact": 2}[policy]
            lists[idx].append(path)
        self._paths = per_top
        self._cache: dict[tuple[str, ...], tuple[tuple[str, ...], ...]] = {}
        # (type, value) -> pseudonym; the type keeps 1 and "1" (and True) apart.
        self._ps: dict[tuple[type, Any], str] = {}

    def __repr__(self) -> str:
        n = sum(len(a) + len(b) + len(c) for a, b, c in self._paths.values())
        return f"AgreementPlan(agency={self.agency!r}, agreement={self.agreement!r}, fields={n})"

    def __reduce__(self) -> Any:
        raise TypeError("AgreementPlan holds key material and cannot be pickled")

    def pseudonym(self, value: Any) -> str:
        """The agency's stable pseudonym for a scalar value."""
        # A type tag keeps the number 1 and the string "1" apart, unambiguously.
        if type(value) is str:
            data = b"s" + value.encode("utf-8", "surrogatepass")
        else:
            data = b"j" + orjson.dumps(value)
        return "ps_" + hmac.digest(self._subkey, data, "sha256").hex()[:16]

    def apply(self, alert: Mapping[str, Any]) -> Shared:
        """Build this agency's view of ``alert`` (a new dict; ``alert`` is not changed)."""
        view: dict[str, Any] = {}
        for f in _COPIED_ENVELOPE:
            if f in alert:
                v = alert[f]
                if isinstance(v, _SCALARS):
                    view[f] = v
        view.setdefault("kind", "alert")
        view["agency"] = self.agency
        view["agreement"] = self.agreement
        present = []
        for top, node in self._tree.items():
            if top in alert:
                out = self._project(alert[top], node)
                if out is not _DROP:
                    view[top] = out
                    if out != [] and out != {}:  # an empty list discloses nothing
                        present.append(top)
        lists = self._cache.get(tuple(present))
        if lists is None:
            lists = self._lists(tuple(present))
        return Shared(view, *lists)

    def _lists(self, present: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
        full: list[str] = []
        ps: list[str] = []
        red: list[str] = []
        for top in present:
            a, b, c = self._paths[top]
            full += a
            ps += b
            red += c
        lists = (tuple(sorted(full)), tuple(sorted(ps)), tuple(sorted(red)))
        self._cache[present] = lists  # at most 2^(top-level fields) entries
        return lists

    def _project(self, value: Any, node: Any) -> Any:
        if type(node) is str:
            return self._leaf(value, node)
        if type(node) is _ByKind:  # qualified at the top level: nothing to qualify by
            return _DROP if node.default is None else self._leaf(value, node.default)
        if type(value) is dict:
            out = {}
            for k, child in node.items():
                if k in value:
                    if type(child) is _ByKind:
                        policy = child.policy(value)
                        if policy is None:
                            continue  # no policy for this kind of element: not shared
                        v = self._leaf(value[k], policy)
                    else:
                        v = self._project(value[k], child)
                    if v is not _DROP:
                        out[k] = v
            return out
        if type(value) is list:
            items = [self._project(v, node) for v in value]
            return [v for v in items if v is not _DROP]
        return _DROP  # a scalar where the agreement names sub-fields: nothing to share

    def _leaf(self, value: Any, policy: str) -> Any:
        if policy == "redact":
            return REDACTED
        if isinstance(value, list):
            # Lists of scalars only (``domains``); nested structure was not named.
            items = [v for v in value if isinstance(v, _SCALARS)]
            if policy == "full":
                return items
            return [self._pseudo_cached(v) for v in items]
        if not isinstance(value, _SCALARS):
            return _DROP
        if policy == "full":
            return value
        return self._pseudo_cached(value)

    def _pseudo_cached(self, value: Any) -> str:
        cache_key = (type(value), value)
        cache = self._ps
        ps = cache.get(cache_key)
        if ps is None:
            if len(cache) >= _PSEUDONYM_CACHE:
                cache.clear()
            ps = cache[cache_key] = self.pseudonym(value)
        return ps



def apply_agreement(alert: Mapping[str, Any], agency: AgencySpec, key: bytes) -> Shared:
    """One-off form of :meth:`AgreementPlan.apply` (compiles the plan on every call).

    The stage uses precompiled plans through :class:`~watchfloor.alerts.routing.Router`.
    """
    return AgreementPlan(agency, key).apply(alert)


__all__ = ["REDACTED", "AgreementPlan", "Shared", "agency_subkey", "apply_agreement", "check_key"]
