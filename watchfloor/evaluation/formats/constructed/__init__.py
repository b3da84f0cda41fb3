"""Constructed labelled captures in the real formats (see the two modules), written to
files so that tests and ``benchmarks/captures_table.py`` replay them through the readers
exactly as a downloaded capture would be.

>>> import tempfile, pathlib
>>> with tempfile.TemporaryDirectory() as d:
...     spec = write_capture("campus", pathlib.Path(d), scale=0.05, hours=0.2)
...     spec.split(":")[0], pathlib.Path(spec.split(":", 1)[1]).stat().st_size > 10_000
('argus', True)
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from watchfloor.evaluation.formats.constructed.financial import write_amlsim, write_paysim
from watchfloor.evaluation.formats.constructed.flows import (
    exported_order,
    write_argus,
    write_cic,
    write_zeek,
)
from watchfloor.evaluation.formats.constructed.network import NETWORK_CAPTURES

#: Capture name -> format; ``write_capture`` writes each.
CAPTURES: dict[str, str] = {
    **{name: fmt for name, (fmt, _) in NETWORK_CAPTURES.items()},
    "paysim": "paysim",
    "amlsim": "amlsim",
}
_FILES = {"campus": "campus.binetflow", "iot": "conn.log.labeled",
          "workstation": "workstation.pcap_ISCX.csv", "paysim": "paysim.csv",
          "amlsim": "amlsim"}


def write_capture(name: str, directory: Path, seed: int | None = None, scale: float = 1.0,
                  **kwargs: Any) -> str:
    """Write the constructed capture ``name`` under ``directory``; return its
    ``FORMAT:PATH`` (what ``evaluate --dataset`` takes)."""
    if name not in CAPTURES:
        raise ValueError(f"unknown capture {name!r}; known: {', '.join(CAPTURES)}")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / _FILES[name]
    if name in NETWORK_CAPTURES:
        fmt, gen = NETWORK_CAPTURES[name]
        args = {"scale": scale, **kwargs}
        if seed is not None:
            args["seed"] = seed
        flows = gen(**args)
        rng = random.Random(seed or 0)
        if fmt == "argus":
            write_argus(path, sorted(flows, key=lambda f: f.ts))  # ra sorts by start time
        elif fmt == "zeek":
            write_zeek(path, exported_order(flows, rng, 60.0), rng)
        else:
            write_cic(path, exported_order(flows, rng, 120.0))
        return f"{fmt}:{path}"
    if name == "paysim":
        write_paysim(path, **({"seed": seed} if seed is not None else {}), scale=scale,
                     **kwargs)
    else:
        write_amlsim(path, **({"seed": seed} if seed is not None else {}), scale=scale,
                     **kwargs)
    return f"{CAPTURES[name]}:{path}"


__all__ = ["CAPTURES", "write_capture"]
