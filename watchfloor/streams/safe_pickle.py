"""Reading checkpoints back safely: a restricted unpickler.

State is read back with an allow-list: only classes of watchfloor's detector, alert, core
and config modules, of river, of the installed detector plugins, and an explicit list of
builtins and standard containers can be named; functions cannot (except two
reconstructors of standard types). So even a record signed with the checkpoint key
cannot make the worker call ``os.system``, ``eval`` or ``subprocess.Popen``.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Iterable
from typing import Any

#: Modules whose classes (never functions) a checkpoint may name.
ALLOWED_PREFIXES = (
    "watchfloor.detectors",
    "watchfloor.alerts",
    "watchfloor.core",
    "watchfloor.config",
    "river",
)
#: Everything else a checkpoint may name, one by one.
ALLOWED_GLOBALS = frozenset(
    {("builtins", n) for n in (
        "bool", "bytearray", "bytes", "complex", "dict", "float", "frozenset", "int",
        "list", "object", "range", "set", "slice", "str", "tuple",
    )}
    | {("collections", n) for n in ("Counter", "OrderedDict", "defaultdict", "deque")}
    | {
        ("array", "array"),
        ("array", "_array_reconstructor"),  # rebuilds an array from bytes, nothing else
        ("copyreg", "_reconstructor"),  # object.__new__ + base.__init__ of allowed types
        ("datetime", "date"),
        ("datetime", "datetime"),
        ("datetime", "timedelta"),
        ("datetime", "timezone"),
        ("decimal", "Decimal"),
        ("fractions", "Fraction"),
        ("functools", "partial"),  # its callable must itself be allowed
        ("random", "Random"),
    }
    # numpy arrays (value_anomaly's windows): dtypes and arrays rebuilt from raw bytes.
    # An object array's elements are unpickled through this same allow-list.
    | {("numpy", n) for n in ("dtype", "ndarray")}
    | {
        (f"numpy.{core}.{module}", n)
        for core in ("core", "_core")
        for module, n in (
            ("numeric", "_frombuffer"),
            ("multiarray", "_reconstruct"),
            ("multiarray", "scalar"),
        )
    }
)


class CheckpointRefused(pickle.UnpicklingError):
    """A verified checkpoint names something it may not (never unpickled further)."""


class RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, prefixes: tuple[str, ...]) -> None:
        super().__init__(io.BytesIO(data))
        self._prefixes = prefixes

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED_GLOBALS:
            return super().find_class(module, name)
        # Dotted names reach attributes of attributes (``Cls.method.__globals__``).
        if "." not in name and not name.startswith("__") and _under(module, self._prefixes):
            obj = super().find_class(module, name)
            # A class defined there: not a function, nor a name imported from elsewhere
            # (``from subprocess import Popen`` in an allowed module stays refused).
            if isinstance(obj, type) and obj.__module__ == module:
                return obj
        raise CheckpointRefused(f"checkpoint names {module}.{name}: not an allowed class")

    def persistent_load(self, pid: Any) -> Any:
        raise CheckpointRefused("checkpoint uses persistent ids")


def _under(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def restricted_loads(data: bytes, extra_prefixes: Iterable[str] = ()) -> Any:
    """Unpickle ``data`` allowing only the classes described in the module doc (plus
    classes of the modules under ``extra_prefixes``); raise CheckpointRefused otherwise.

    >>> import os, pickle
    >>> class Evil:
    ...     def __reduce__(self):
    ...         return (os.system, ("echo pwned",))
    >>> restricted_loads(pickle.dumps(Evil()))
    Traceback (most recent call last):
    ...
    watchfloor.streams.safe_pickle.CheckpointRefused: checkpoint names posix.system: not an \
allowed class
    >>> from collections import deque
    >>> restricted_loads(pickle.dumps({"q": deque([1, 2], maxlen=3)}))
    {'q': deque([1, 2], maxlen=3)}
    """
    return RestrictedUnpickler(data, ALLOWED_PREFIXES + tuple(extra_prefixes)).load()
