"""Detector discovery through the ``watchfloor.detectors`` entry-point group.

Built-ins and third-party plugins register the same way, in their package metadata::

    [project.entry-points."watchfloor.detectors"]
    my_detector = "my_package.module:MyDetector"

A plugin that fails to import, or configuration naming an unknown detector or invalid
parameters, raises :class:`DetectorConfigError` naming the plugin and the problem: the
worker stops at start rather than running silently without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import entry_points

from watchfloor.detectors.base import Detector

GROUP = "watchfloor.detectors"


class DetectorConfigError(RuntimeError):
    """A detector cannot be loaded or configured."""


@dataclass(frozen=True)
class Registered:
    name: str
    cls: type[Detector]
    package: str
    target: str


def discover(group: str = GROUP) -> dict[str, Registered]:
    """Load every registered detector class; raise on the first one that cannot load."""
    found: dict[str, Registered] = {}
    for ep in entry_points(group=group):
        package = ep.dist.name if ep.dist is not None else "?"
        try:
            cls = ep.load()
        except Exception as exc:
            raise DetectorConfigError(
                f"detector plugin {ep.name!r} ({ep.value}, package {package}) failed to import: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if not (isinstance(cls, type) and issubclass(cls, Detector)):
            raise DetectorConfigError(
                f"detector plugin {ep.name!r} ({ep.value}, package {package}) is not a "
                f"subclass of watchfloor.detectors.Detector"
            )
        if ep.name in found and found[ep.name].target != ep.value:
            raise DetectorConfigError(
                f"detector name {ep.name!r} is registered twice: by {found[ep.name].package} "
                f"({found[ep.name].target}) and by {package} ({ep.value})"
            )
        found[ep.name] = Registered(ep.name, cls, package, ep.value)
    return found


def build(
    name: str,
    domain: str,
    params: dict[str, object],
    registry: dict[str, Registered] | None = None,
) -> Detector:
    """Instantiate detector ``name`` for ``domain`` with ``params``, or explain why not."""
    registry = discover() if registry is None else registry
    entry = registry.get(name)
    if entry is None:
        raise DetectorConfigError(
            f"unknown detector {name!r} configured for domain {domain!r}; "
            f"installed detectors: {', '.join(sorted(registry)) or '(none)'}"
        )
    if domain not in entry.cls.domains:
        raise DetectorConfigError(
            f"detector {name!r} ({entry.package}) handles {list(entry.cls.domains)}, not {domain!r}"
        )
    _check_param_names(name, domain, entry, params)
    try:
        return entry.cls(**params)
    except (TypeError, ValueError) as exc:
        raise DetectorConfigError(
            f"detector {name!r} ({entry.package}) rejected its parameters {params}: {exc}"
        ) from exc


def _check_param_names(
    name: str, domain: str, entry: Registered, params: dict[str, object]
) -> None:
    """A misspelt parameter is an error naming its place and the nearest valid name (a
    typo silently left at its default changes what a detector alerts on; issue 9.7)."""
    import difflib
    import inspect

    try:
        sig = inspect.signature(entry.cls)
    except (TypeError, ValueError):  # no introspectable signature: the class checks itself
        return
    kinds = {p.kind for p in sig.parameters.values()}
    if inspect.Parameter.VAR_KEYWORD in kinds:
        return
    valid = sorted(
        n for n, p in sig.parameters.items()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    )
    for key in params:
        if key not in valid:
            near = difflib.get_close_matches(str(key), valid, n=1, cutoff=0.6)
            listed = ", ".join(valid) or "(none)"
            hint = f"did you mean {near[0]!r}?" if near else f"valid: {listed}"
            raise DetectorConfigError(
                f"detectors.{domain}.{name}.params.{key}: unknown parameter of detector {name!r} "
                f"({entry.package}); {hint}"
            )
