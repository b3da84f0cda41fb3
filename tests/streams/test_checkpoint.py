"""Checkpoints: signed as a whole with their own key, and data-only on the way back in
(issue 9.5). Each attack is reproduced first: a re-published manifest with a huge
``next`` offset, a manifest signed with the pseudonym key or the old (version 1) scheme,
and pickles that run code through ``__reduce__`` — all validly signed."""

from __future__ import annotations

import hashlib
import hmac
import os
import pickle
import secrets
import subprocess
import time
from pathlib import Path

import numpy as np
import orjson
import pytest
from prometheus_client import CollectorRegistry

from tests.conftest import ROOT
from watchfloor.config import load_config
from watchfloor.core.keys import derive_keys
from watchfloor.detectors.engine import REKEYED
from watchfloor.settings import Settings
from watchfloor.simulation import Simulator, encode
from watchfloor.streams.checkpoint import (
    Checkpointer,
    CheckpointRefused,
    restricted_loads,
)
from watchfloor.streams.runtime import Runtime

MASTER = secrets.token_hex(32)
KEYS = derive_keys(MASTER.encode())


def records(msgs: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes | None]]:
    return list(msgs)


def manifest_of(msgs: list[tuple[bytes, bytes]]) -> tuple[bytes, dict]:
    key, value = msgs[-1]
    assert key.startswith(b"m|")
    return key, orjson.loads(value)


# -- the manifest is signed as a whole ------------------------------------------------
def test_a_checkpoint_round_trips_with_its_offsets() -> None:
    cp = Checkpointer(KEYS.checkpoint)
    msgs = cp.encode("score.network.0", {"seen": [1, 2, 3]}, {"next": 42})
    got = Checkpointer(KEYS.checkpoint).decode(records(msgs))
    assert got["score.network.0"].state == {"seen": [1, 2, 3]}
    assert got["score.network.0"].offsets == {"next": 42}


def test_a_republished_manifest_with_a_huge_next_offset_is_refused() -> None:
    cp = Checkpointer(KEYS.checkpoint)
    older = cp.encode("score.network.0", {"gen": 1}, {"next": 100})
    newer = cp.encode("score.network.0", {"gen": 2}, {"next": 200})
    # The attack: the newest manifest re-published with its signature, ``next`` raised so
    # that a restarted worker would skip every later event of the partition.
    key, m = manifest_of(newer)
    m["offsets"]["next"] = 10**15
    forged = (key, orjson.dumps(m))
    got = Checkpointer(KEYS.checkpoint).decode(records([*older, *newer, forged]))
    # Refused: the worker falls back to the intact older slot, with its true offsets.
    assert got["score.network.0"].state == {"gen": 1}
    assert got["score.network.0"].offsets == {"next": 100}
    # Every signed field counts, not only the offsets.
    for field, value in (("gen", 99), ("time", 1.0), ("chunks", 2), ("name", "alerts.0")):
        key, m = manifest_of(older)
        m[field] = value
        assert Checkpointer(KEYS.checkpoint).decode([*older[:-1], (key, orjson.dumps(m))]) == {}


def test_a_manifest_under_another_record_key_is_refused() -> None:
    cp = Checkpointer(KEYS.checkpoint)
    msgs = cp.encode("alerts.0", {"x": 1})
    _, value = msgs[-1]
    moved = [*msgs[:-1], (b"m|alerts.1|a", value)]
    assert Checkpointer(KEYS.checkpoint).decode(moved, {"alerts.1"}) == {}


def _v1_sign(secret: bytes, name: str, slot: str, gen: int, blob: bytes) -> str:
    """How version 1 signed a checkpoint: the pseudonym key's HMAC-derived key, over
    name, slot, generation and blob only — the offsets were not covered."""
    key = hmac.digest(secret, b"watchfloor/checkpoint/v1", "sha256")
    data = f"{name}|{slot}|{gen}|".encode() + hashlib.sha256(blob).digest()
    return hmac.new(key, data, "sha256").hexdigest()


def test_a_version_1_manifest_with_a_valid_old_signature_is_refused() -> None:
    import zlib

    blob = zlib.compress(pickle.dumps({"state": 1}), 1)
    m = {
        "name": "score.network.0", "slot": "a", "gen": 7, "chunks": 1, "size": len(blob),
        "offsets": {"next": 10**15}, "time": time.time(),
        "sig": _v1_sign(MASTER.encode(), "score.network.0", "a", 7, blob),
    }
    msgs = [(b"c|score.network.0|a|0", blob), (b"m|score.network.0|a", orjson.dumps(m))]
    assert Checkpointer(KEYS.checkpoint).decode(msgs) == {}


def test_the_pseudonym_key_cannot_sign_a_checkpoint() -> None:
    assert len({KEYS.pseudonym, KEYS.checkpoint, KEYS.audit, MASTER.encode()}) == 4
    for wrong in (KEYS.pseudonym, KEYS.audit, hashlib.sha256(MASTER.encode()).digest()):
        msgs = Checkpointer(wrong).encode("alerts.0", {"x": 1}, {"next": 5})
        assert Checkpointer(KEYS.checkpoint).decode(msgs) == {}


def test_a_runtime_signs_with_the_checkpoint_key_not_the_pseudonym_key() -> None:
    rt = Runtime.build(
        Settings(master_key=MASTER), load_config(ROOT / "topics.yaml"), CollectorRegistry()
    )
    assert rt.key == KEYS.pseudonym != KEYS.checkpoint
    msgs = rt.checkpointer.encode("alerts.0", {"x": 1})
    assert Checkpointer(KEYS.checkpoint).decode(msgs)["alerts.0"].state == {"x": 1}
    assert Checkpointer(KEYS.pseudonym).decode(msgs) == {}


# -- data only: a validly signed pickle cannot run code --------------------------------
class _Reduce:
    def __init__(self, func: object, args: tuple) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple:
        return self.func, self.args


def _attacks(marker: Path) -> dict[str, object]:
    cmd = f"touch {marker}"
    return {
        "os.system": _Reduce(os.system, (cmd,)),
        "builtins.eval": _Reduce(eval, (f"__import__('os').system({cmd!r})",)),
        "builtins.exec": _Reduce(exec, (f"import os; os.system({cmd!r})",)),
        "subprocess.Popen": _Reduce(subprocess.Popen, (["touch", str(marker)],)),
        "getattr chain": _Reduce(getattr, (_Reduce(__import__, ("os",)), "system")),
        # Hidden inside legitimate-looking state, as a detector's attribute.
        "nested": {"detectors": [{"port_scan": _Reduce(os.system, (cmd,))}]},
        # Inside a numpy object array (numpy's reconstructors are allowed).
        "numpy object array": np.array([_Reduce(os.system, (cmd,))], dtype=object),
    }


@pytest.mark.parametrize("attack", sorted(_attacks(Path("/nonexistent"))))
def test_a_validly_signed_pickle_that_runs_code_is_refused(attack: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = _attacks(marker)[attack]
    # The attack works on a plain pickle.loads: the check below would otherwise mean nothing.
    if attack != "getattr chain":
        pickle.loads(pickle.dumps(payload))
        deadline = time.monotonic() + 5
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), "the crafted pickle does not run code: the test is broken"
        marker.unlink()
    # Signed with the right key, as the holder of the checkpoint key could.
    writer = Checkpointer(KEYS.checkpoint)
    msgs = writer.encode("score.network.0", payload, {"next": 1})
    reader = Checkpointer(KEYS.checkpoint)
    assert reader.decode(msgs) == {}
    assert reader.refused and "not an allowed class" in reader.refused[0][1]
    time.sleep(0.2)
    assert not marker.exists(), "the worker ran the attacker's code"


def _global(module: str, name: str) -> bytes:
    """A protocol-4 pickle that names ``module.name`` (STACK_GLOBAL) and returns it."""
    def text(t: str) -> bytes:
        return b"\x8c" + bytes([len(t)]) + t.encode() + b"\x94"

    return b"\x80\x04" + text(module) + text(name) + b"\x93\x94."


def test_a_dotted_name_or_a_reexported_class_is_refused() -> None:
    import watchfloor.config as allowed_module
    from watchfloor.core.entity_table import EntityTable

    # The helper does build working pickles.
    assert pickle.loads(_global("watchfloor.core.entity_table", "EntityTable")) is EntityTable
    assert restricted_loads(_global("watchfloor.core.entity_table", "EntityTable")) is EntityTable
    # Protocol 4 resolves dotted names attribute by attribute: from an allowed class to
    # its methods' globals (and so to anything).
    dotted = _global("watchfloor.core.entity_table", "EntityTable.__init__.__globals__")
    assert isinstance(pickle.loads(dotted), dict)
    with pytest.raises(CheckpointRefused, match="not an allowed class"):
        restricted_loads(dotted)
    # ``Path`` is importable from watchfloor.config, but it is pathlib's.
    assert hasattr(allowed_module, "Path")
    with pytest.raises(CheckpointRefused, match=r"watchfloor\.config\.Path"):
        restricted_loads(_global("watchfloor.config", "Path"))
    # A function of an allowed module is not a class.
    with pytest.raises(CheckpointRefused, match=r"watchfloor\.core\.keys\.hkdf"):
        restricted_loads(_global("watchfloor.core.keys", "hkdf"))


# -- real state still round-trips --------------------------------------------------------
def test_the_workers_real_state_restores_through_the_restricted_unpickler() -> None:
    rt = Runtime.build(
        Settings(master_key=MASTER), load_config(ROOT / "topics.yaml"), CollectorRegistry()
    )
    now = time.time() * 1000
    by_domain: dict[str, list] = {}
    for i, (domain, ev) in enumerate(Simulator(seed=3, days=2).events(6000)):
        by_domain.setdefault(domain, []).append(
            (encode(ev), None, f"events.{domain}", 0, i, now)
        )
    detections = []
    second: list[tuple[bytes, bytes]] = []
    for domain, recs in by_domain.items():
        found, _ = rt.processor.process(domain, recs, second)
        detections += found
    # The re-keyed stage's state (fan_in, cycle, flood...) is checkpointed the same way.
    found, _ = rt.processor.process(
        REKEYED, [(v, k, "watchfloor.rekeyed", 0, i, now) for i, (k, v) in enumerate(second)]
    )
    detections += found
    assert (REKEYED, 0) in rt.processor.engines
    stage = rt.stage(0)
    for det in detections:
        stage.process(det)
    states = {f"score.{d}.{p}": e.snapshot() for (d, p), e in rt.processor.engines.items()}
    states["alerts.0"] = stage.state()
    states["feedback.0"] = rt.tracker
    msgs = [m for name, state in states.items() for m in rt.checkpointer.encode(name, state)]
    reader = Checkpointer(KEYS.checkpoint)
    got = reader.decode(msgs)
    assert reader.refused == []
    assert sorted(got) == sorted(states)
    # Restored detectors are adopted by a fresh engine and behave as the originals.
    for (domain, partition), engine in rt.processor.engines.items():
        fresh = rt.processor.factory(domain)
        restored = fresh.restore(got[f"score.{domain}.{partition}"].state)
        if domain == REKEYED:
            assert restored == [f"{st}:{s.name}" for st, e in engine.engines.items()
                                for s in e.slots]  # fmt: skip
            graph = [e.engines["financial/*"].slots[1].detector for e in (fresh, engine)]
            assert len(graph[0]._table) == len(graph[1]._table) > 0
        else:
            assert restored == [s.name for s in engine.slots]
    assert type(got["feedback.0"].state).__name__ == "ResponseTracker"
    assert len(got["feedback.0"].state) == len(rt.tracker)


class PluginState:
    """Stands for a detector plugin's own state class (a package not shipped with us)."""

    def __init__(self, seen: int) -> None:
        self.seen = seen


def test_a_plugins_classes_restore_only_when_its_package_is_allowed() -> None:
    from watchfloor.streams.runtime import plugin_packages

    msgs = Checkpointer(KEYS.checkpoint).encode("score.network.0", PluginState(3))
    assert Checkpointer(KEYS.checkpoint).decode(msgs) == {}
    allowed = plugin_packages({"p": type("R", (), {"cls": PluginState})()})
    assert allowed == {"tests"}
    got = Checkpointer(KEYS.checkpoint, allowed_modules=allowed).decode(msgs)
    assert got["score.network.0"].state.seen == 3
    # Built-in detectors add nothing: watchfloor's own modules are listed already.
    assert plugin_packages({"p": type("R", (), {"cls": Checkpointer})()}) == set()
