"""The capture formats ``watchfloor replay`` and ``watchfloor evaluate --dataset`` know,
and the dataset kinds ``evaluate --dataset KIND:PATH`` dispatches to.

A *format* reads a capture into labelled events (:class:`Format`). A *dataset kind* is
anything ``evaluate --dataset`` can score: every format is one (scored by
:func:`watchfloor.evaluation.captures.evaluate_capture`), and other modules register
their own (``register_dataset_kind("nab", run)`` for labelled series).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from watchfloor.evaluation.formats import amlsim, argus, cicflowmeter, paysim, zeek
from watchfloor.evaluation.formats.base import FormatError, Label, Labelled, ReadStats


@dataclass(frozen=True)
class Format:
    """One capture format: its reader, the domain its events belong to, and optionally
    labels of entities that its companion files give (AMLSim's alert accounts)."""

    name: str
    domain: str
    description: str
    read: Callable[[Path, ReadStats], Iterator[Labelled]]
    sniff: Callable[[str], bool]
    entity_labels: Callable[[Path], dict[str, Label]] | None = None


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("argus", "network", "Argus binetflow CSV (CTU-13)", argus.read, argus.sniff),
        Format("zeek", "network", "Zeek conn.log, TSV or JSON (IoT-23 labels)", zeek.read,
               zeek.sniff),
        Format("cicflowmeter", "network", "CICFlowMeter CSV (CIC-IDS2017/2018)",
               cicflowmeter.read, cicflowmeter.sniff),
        Format("paysim", "financial", "PaySim mobile-money CSV", paysim.read, paysim.sniff),
        Format("amlsim", "financial", "AMLSim transaction export (+ alert companions)",
               amlsim.read, amlsim.sniff, amlsim.entity_labels),
    )
}
#: Other names users type for the same formats.
ALIASES = {"binetflow": "argus", "ctu13": "argus", "conn": "zeek", "iot23": "zeek",
           "cic": "cicflowmeter", "cicids": "cicflowmeter"}


def get_format(name: str) -> Format:
    """The format called ``name`` (or an alias); FormatError naming the known ones."""
    key = ALIASES.get(name.lower(), name.lower())
    fmt = FORMATS.get(key)
    if fmt is None:
        raise FormatError(f"unknown format {name!r}; known: {', '.join(FORMATS)}")
    return fmt


def check_path(path: Path) -> Path:
    if not path.exists():
        raise FormatError(f"{path}: no such file or directory")
    return path


# -- dataset kinds for `evaluate --dataset KIND:PATH` ----------------------------------------
class DatasetResult(Protocol):
    """What a dataset kind's run returns: text, JSON, and whether targets are met."""

    def table(self) -> str: ...

    def to_json(self) -> bytes: ...

    @property
    def meets_targets(self) -> bool: ...


#: kind -> run(path, topics_file, options) -> DatasetResult
DatasetRun = Callable[[Path, Path, dict[str, Any]], DatasetResult]
DATASET_KINDS: dict[str, DatasetRun] = {}


def register_dataset_kind(kind: str, run: DatasetRun) -> None:
    """Make ``evaluate --dataset KIND:PATH`` call ``run(path, topics_file, options)``."""
    DATASET_KINDS[kind.lower()] = run


def _capture_kind(fmt: str) -> DatasetRun:
    def run(path: Path, topics_file: Path, options: dict[str, Any]) -> DatasetResult:
        from watchfloor.evaluation.captures import evaluate_capture

        return evaluate_capture(fmt, path, topics_file, **options)

    return run


for _name in FORMATS:
    register_dataset_kind(_name, _capture_kind(_name))


#: Kinds provided by other modules, imported on first use: kind -> (module, function).
#: The module may call :func:`register_dataset_kind` itself at import; otherwise
#: ``function(path)`` is called and its result used as is.
LAZY_KINDS: dict[str, tuple[str, str]] = {"nab": ("watchfloor.evaluation.nab", "evaluate_nab")}


def _lazy(kind: str) -> DatasetRun | None:
    if kind not in LAZY_KINDS:
        return None
    import importlib

    module_name, func = LAZY_KINDS[kind]
    module = importlib.import_module(module_name)
    if kind in DATASET_KINDS:
        return DATASET_KINDS[kind]
    fn = getattr(module, func)

    def run(path: Path, topics_file: Path, options: dict[str, Any]) -> DatasetResult:
        return fn(path)  # type: ignore[no-any-return]

    register_dataset_kind(kind, run)
    return run


def dataset_kinds() -> list[str]:
    """Every kind ``evaluate --dataset`` accepts."""
    return sorted({*DATASET_KINDS, *LAZY_KINDS})


def parse_dataset(spec: str) -> tuple[str, Path]:
    """``KIND:PATH`` -> (kind, path); FormatError on a malformed spec.

    >>> parse_dataset("argus:captures/campus.binetflow")
    ('argus', PosixPath('captures/campus.binetflow'))
    """
    kind, sep, path = spec.partition(":")
    if not sep or not kind or not path:
        raise FormatError(f"--dataset wants KIND:PATH, got {spec!r}; kinds: "
                          f"{', '.join(dataset_kinds())}")
    return kind.lower(), Path(path)


def run_dataset(spec: str, topics_file: Path, **options: Any) -> DatasetResult:
    """Run ``evaluate --dataset spec`` and return its result."""
    kind, path = parse_dataset(spec)
    kind = ALIASES.get(kind, kind)
    run = DATASET_KINDS.get(kind) or _lazy(kind)
    if run is None:
        raise FormatError(f"unknown dataset kind {kind!r}; kinds: {', '.join(dataset_kinds())}")
    check_path(path)
    return run(path, topics_file, options)


__all__ = [
    "ALIASES",
    "DATASET_KINDS",
    "FORMATS",
    "LAZY_KINDS",
    "Format",
    "check_path",
    "dataset_kinds",
    "get_format",
    "parse_dataset",
    "register_dataset_kind",
    "run_dataset",
]
