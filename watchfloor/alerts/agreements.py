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

    ``shared`` lists the agreement's paths whose values were copied in full,
    ``pseudonymised`` and ``redacted`` the others: each names the rule that was applied to
    a value present in the alert, so a per-kind rule is listed as such
    (``entities.id[ip]``) only when an element of that kind was there, and the field's
    default rule (``entities.id``) only when an element of a kind without its own rule
    was. Values withheld (no rule for them) are in no list.
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


class _Leaf:
    """A leaf with one policy; ``rule`` is its agreement path (``policy``, path) for
    the audit lists."""

    __slots__ = ("policy", "rule")

    def __init__(self, path: str, policy: str) -> None:
        self.policy = policy
        self.rule = (policy, path)


class _ByKind:
    """A leaf whose policy depends on its element's kind (``type`` or ``domain``)."""

    __slots__ = ("by_kind", "default", "path")

    def __init__(self, path: str, default: str | None) -> None:
        self.path = path
        self.default = default
        # kind -> (policy, "path[kind]"): the rule applied, as the audit lists name it.
        self.by_kind: dict[str, tuple[str, str]] = {}

    def rule(self, element: Mapping[str, Any]) -> tuple[str, str] | None:
        """(policy, agreement path) for ``element``; None: no rule, not shared."""
        kind = element.get("type", element.get("domain"))
        if type(kind) is str:
            found = self.by_kind.get(kind)
            if found is not None:
                return found
        return None if self.default is None else (self.default, self.path)


def _tree(fields: Mapping[str, str]) -> dict[str, Any]:
    """Dotted paths -> nested dict whose leaves are :class:`_Leaf` or :class:`_ByKind`."""
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
                node[leaf] = _Leaf(base, policy)
        else:
            if not isinstance(current, _ByKind):
                default = current.policy if type(current) is _Leaf else None
                current = node[leaf] = _ByKind(base, default)
            current.by_kind[qualifier] = (policy, path)
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

    __slots__ = ("_n_fields", "_ps", "_subkey", "_tree", "agency", "agreement")

    def __init__(self, agency: AgencySpec, key: bytes) -> None:
        self.agency = agency.name
        self.agreement = agency.agreement.name
        self._subkey = agency_subkey(key, agency.name)
        fields = dict(agency.agreement.fields)
        self._tree = _tree(fields)
        self._n_fields = len(fields)
        # (type, value) -> pseudonym; the type keeps 1 and "1" (and True) apart.
        self._ps: dict[tuple[type, Any], str] = {}

    def __repr__(self) -> str:
        return (f"AgreementPlan(agency={self.agency!r}, agreement={self.agreement!r}, "
                f"fields={self._n_fields})")

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
        # (policy, agreement path) of every rule applied to a value of this alert.
        applied: set[tuple[str, str]] = set()
        for top, node in self._tree.items():
            if top in alert:
                out = self._project(alert[top], node, applied)
                if out is not _DROP:
                    view[top] = out
        full: list[str] = []
        ps: list[str] = []
        red: list[str] = []
        lists = {"full": full, "pseudonymize": ps, "redact": red}
        for policy, path in applied:
            lists[policy].append(path)
        return Shared(view, tuple(sorted(full)), tuple(sorted(ps)), tuple(sorted(red)))

    def _project(self, value: Any, node: Any, applied: set[tuple[str, str]]) -> Any:
        if type(node) is _Leaf:
            return self._leaf(value, node.rule, applied)
        if type(node) is _ByKind:  # qualified at the top level: nothing to qualify by
            if node.default is None:
                return _DROP
            return self._leaf(value, (node.default, node.path), applied)
        if type(value) is dict:
            out = {}
            for k, child in node.items():
                if k in value:
                    if type(child) is _ByKind:
                        rule = child.rule(value)
                        if rule is None:
                            continue  # no policy for this kind of element: not shared
                        v = self._leaf(value[k], rule, applied)
                    else:
                        v = self._project(value[k], child, applied)
                    if v is not _DROP:
                        out[k] = v
            return out
        if type(value) is list:
            items = [self._project(v, node, applied) for v in value]
            return [v for v in items if v is not _DROP]
        return _DROP  # a scalar where the agreement names sub-fields: nothing to share

    def _leaf(self, value: Any, rule: tuple[str, str], applied: set[tuple[str, str]]) -> Any:
        policy = rule[0]
        if policy == "redact":
            applied.add(rule)
            return REDACTED
        if isinstance(value, list):
            # Lists of scalars only (``domains``); nested structure was not named.
            items = [v for v in value if isinstance(v, _SCALARS)]
            if items:  # an empty list discloses nothing
                applied.add(rule)
            if policy == "full":
                return items
            return [self._pseudo_cached(v) for v in items]
        if not isinstance(value, _SCALARS):
            return _DROP
        applied.add(rule)
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
