"""Readers of real capture formats: Argus (CTU-13), Zeek conn.log (IoT-23), CICFlowMeter
(CIC-IDS), PaySim and AMLSim. Each turns a file into labelled watchfloor events,
streaming and tolerant of malformed lines; the field mappings are in ``docs/formats.md``.
"""

from watchfloor.evaluation.formats.base import (
    BENIGN,
    MALICIOUS,
    UNLABELLED,
    FormatError,
    Label,
    Labelled,
    ReadStats,
    time_ordered,
)
from watchfloor.evaluation.formats.registry import (
    DATASET_KINDS,
    FORMATS,
    Format,
    get_format,
    parse_dataset,
    register_dataset_kind,
    run_dataset,
)

__all__ = [
    "BENIGN",
    "DATASET_KINDS",
    "FORMATS",
    "MALICIOUS",
    "UNLABELLED",
    "Format",
    "FormatError",
    "Label",
    "Labelled",
    "ReadStats",
    "get_format",
    "parse_dataset",
    "register_dataset_kind",
    "run_dataset",
    "time_ordered",
]
