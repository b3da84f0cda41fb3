"""Issue 9 item 6 on the secured broker: the audit trail no longer trusts its writer.

The probe, holding the worker principal's credentials, appended a record to a chain of
``audit.sharing`` and wrote a whole new chain, and ``watchfloor audit verify`` passed:
a hash chain needs no key. Now the worker publishes signed chain heads to
``audit.anchors``, which it may only append to and only oversight reads, and the real
``watchfloor audit verify`` (run as oversight) fails on both forgeries with a line that
says what is wrong; with ``--no-anchors`` it passes and says what it did not check.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

import orjson
import pytest

from tests.integration import test_security as sec
from tests.integration.conftest import Worker, worker_env
from tests.integration.test_security import Secured, _produce, _read, _refused_read
from tests.kafka_helpers import run
from watchfloor.alerts.audit import AuditChain, record_hash
from watchfloor.alerts.correlation import rfc3339

pytestmark = pytest.mark.broker

secured = sec.secured
secure_worker = sec.secure_worker


def _verify(secured: Secured, *extra: str) -> subprocess.CompletedProcess[str]:
    # The worker's secret as the worker has it: the audit key is derived from it.
    env = worker_env(
        secured.bootstrap,
        WATCHFLOOR_SASL_USERNAME="oversight",
        WATCHFLOOR_SASL_PASSWORD=secured.passwords["oversight"],
    )
    return subprocess.run(
        [sys.executable, "-m", "watchfloor.ops.cli", "audit", "verify", *extra],
        env=env, capture_output=True, text=True, timeout=120,
    )


def test_forged_append_and_forged_chain_fail_verification(
    secured: Secured, secure_worker: Worker
) -> None:
    event_id = f"brd-anchor-{uuid.uuid4().hex[:8]}"
    event = {"event_id": event_id, "ts": int(time.time() * 1000), "document_id": "P0004418",
             "nationality": "FRA", "crossing_point": "CDG-T2", "direction": "entry"}
    run(_produce(secured.bootstrap, "events.border", orjson.dumps(event),
                 secured.login("sensor-border")))
    oversight = secured.login("oversight")
    anchors = run(_read(secured.bootstrap, "audit.anchors", oversight, bool, timeout=60))
    assert anchors, f"no anchor published:\n{secure_worker.log_tail()}"
    records = run(_read(secured.bootstrap, "audit.sharing", oversight,
                        lambda f: any(r["seq"] >= anchors[-1]["seq"] and
                                      r["chain"] == anchors[-1]["chain"] for r in f)))
    head = max((r for r in records if r["chain"] == anchors[-1]["chain"]),
               key=lambda r: r["seq"])
    assert head["hash"] == anchors[-1]["hash"]

    # Only oversight reads the anchors; the worker can append but not read them.
    worker = secured.login("watchfloor-worker")
    run(_refused_read(secured.bootstrap, "audit.anchors", worker))

    clean = _verify(secured)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert clean.stdout.splitlines()[-1].endswith(", no problems")

    # 1. The worker principal appends the chain's next record: a delivery that never was.
    forged = {**head, "seq": head["seq"] + 1, "prev_hash": head["hash"], "agency": "liaison",
              "alert_id": "wf-never-delivered", "time": rfc3339(time.time() - 600)}
    forged["hash"] = record_hash(forged)
    run(_produce(secured.bootstrap, "audit.sharing", orjson.dumps(forged), worker))
    appended = _verify(secured)
    assert appended.returncode == 1, appended.stdout + appended.stderr
    wanted = (f"unanchored: seq {forged['seq']}..{forged['seq']} of chain {head['chain']!r} "
              f"written after its newest anchor (seq {head['seq']}); 1 record(s) recording "
              "deliveries found in no anchored chain (appended by someone other than the "
              "worker)")
    assert any(line.strip().endswith(wanted) for line in appended.stdout.splitlines()), (
        appended.stdout)
    skipped = _verify(secured, "--no-anchors")
    assert skipped.returncode == 0, skipped.stdout  # the hash chain alone cannot tell
    assert "anchors not checked: truncated tails and appended records go unseen" in (
        skipped.stdout.splitlines())

    # 2. A whole new chain, hashes and all.
    chain = AuditChain("alerts-0-deadbeef")
    fake = [chain.append(alert_id=f"wf-fake-{i}", version=1, agency="ctpu",
                         agreement="CT-JOINT-2026", shared=("severity",), pseudonymised=(),
                         redacted=(), time=time.time() - 600) for i in range(3)]
    for rec in fake:
        run(_produce(secured.bootstrap, "audit.sharing", orjson.dumps(rec), worker))
    both = _verify(secured)
    assert both.returncode == 1
    lines = both.stdout.splitlines()
    assert "chain alerts-0-deadbeef: 3 records, seq 0..2: 1 problem" in lines, both.stdout
    assert any("foreign: chain 'alerts-0-deadbeef': no anchor vouches for it; 3 record(s)"
               in line for line in lines), both.stdout
    assert lines[-1] == "FAILED: 2 problems in 2 of 2 chains" or lines[-1].startswith(
        "FAILED: 2 problems in 2 of "), lines[-1]
