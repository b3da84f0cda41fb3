"""Issue 9 item 2 on the secured broker: the broker vouches for who wrote feedback.

The probe, holding the CERT's SCRAM credentials, forged acks and verdicts for the border
agency's alerts (moving its response latency and pre-empting its verdicts). Here the same
attacker tries again: writing to the border agency's feedback topic is refused by the
broker, and in its own topic a message claiming ``agency: border`` is dead-lettered
(``agency_mismatch``), as is feedback about an alert the CERT never received
(``unknown_alert``); the border agency's figures do not move until it answers itself,
with the real ``watchfloor ack`` command, which also refuses ids the agency never
received and incomplete actions with one line and exit code 2.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
import time
import uuid
from typing import Any

import orjson
import pytest
from aiokafka.errors import TopicAuthorizationFailedError

from tests.integration import test_security as sec
from tests.integration.conftest import Worker, metric_value
from tests.integration.test_security import Secured, _produce, _read
from tests.kafka_helpers import run

# The secured broker and worker of test_security, started afresh for this module.
secured = sec.secured
secure_worker = sec.secure_worker

pytestmark = pytest.mark.broker


def _ack(secured: Secured, principal: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(
        os.environ,
        WATCHFLOOR_BROKER=f"kafka://{secured.bootstrap}",
        WATCHFLOOR_SASL_USERNAME=principal,
        WATCHFLOOR_SASL_PASSWORD=secured.passwords[principal],
    )
    return subprocess.run(
        [sys.executable, "-m", "watchfloor.ops.cli", "ack", *args, "--timeout", "20"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _border_alert(secured: Secured, worker: Worker) -> str:
    event_id = f"brd-trust-{uuid.uuid4().hex[:8]}"
    event = {
        "event_id": event_id,
        "ts": int(time.time() * 1000),
        "document_id": "P0004418",  # on the lost/stolen list
        "nationality": "FRA",
        "crossing_point": "CDG-T2",
        "direction": "entry",
    }
    run(_produce(secured.bootstrap, "events.border", orjson.dumps(event),
                 secured.login("sensor-border")))

    def mine(found: list[dict]) -> list[dict]:
        return [
            a for a in found if any(d.get("event_id") == event_id for d in a.get("detections", []))
        ]

    alerts = run(_read(secured.bootstrap, "alerts.border", secured.login("agency-border"),
                       lambda found: bool(mine(found)), timeout=60))
    assert mine(alerts), f"no alert for {event_id}:\n{worker.log_tail()}"
    return mine(alerts)[0]["alert_id"]


def _deadletters(secured: Secured, marker: bytes, n: int) -> list[dict[str, Any]]:
    key = base64.b64encode(marker).decode()
    found = run(_read(secured.bootstrap, "events.deadletter", secured.admin,
                      lambda f: len([r for r in f if r.get("key") == key]) >= n, timeout=60))
    return [r for r in found if r.get("key") == key]


def test_forged_feedback_is_refused_or_dead_lettered(
    secured: Secured, secure_worker: Worker
) -> None:
    alert_id = _border_alert(secured, secure_worker)
    cert = secured.login("agency-cert")
    before = secure_worker.metrics()

    # 1. The CERT writes into the border agency's feedback topic: the broker refuses.
    forged = {"alert_id": alert_id, "action": "close", "verdict": "false_positive",
              "ts": int(time.time() * 1000)}
    with pytest.raises(TopicAuthorizationFailedError):
        run(_produce(secured.bootstrap, "feedback.border", orjson.dumps(forged), cert))

    # 2. In its own topic, claiming to be the border agency / about an alert it never got.
    marker = f"forge-{uuid.uuid4().hex[:6]}".encode()
    from aiokafka import AIOKafkaProducer  # the attacker's own client, not watchfloor's

    async def send_both() -> None:
        p = AIOKafkaProducer(bootstrap_servers=secured.bootstrap, acks="all", **cert)
        await p.start()
        try:
            await p.send_and_wait("feedback.cert", orjson.dumps({**forged, "agency": "border"}),
                                  key=marker)
            await p.send_and_wait("feedback.cert", orjson.dumps(forged), key=marker)
        finally:
            await p.stop()

    run(send_both())
    letters = _deadletters(secured, marker, 2)
    assert sorted(r["reason"] for r in letters) == ["agency_mismatch", "unknown_alert"]
    assert {r["topic"] for r in letters} == {"feedback.cert"}
    mismatch = next(r for r in letters if r["reason"] == "agency_mismatch")
    assert mismatch["detail"] == "cert's feedback names agency 'border'"

    # The border agency's response figures did not move.
    after = secure_worker.metrics()
    count = "watchfloor_response_latency_seconds_count"
    assert metric_value(after, count, agency="border") == metric_value(
        before, count, agency="border"
    )
    assert metric_value(after, "watchfloor_feedback_total", verdict="false_positive") == (
        metric_value(before, "watchfloor_feedback_total", verdict="false_positive")
    )
    for reason in ("agency_mismatch", "unknown_alert"):
        assert metric_value(
            after, "watchfloor_events_invalid_total", domain="feedback", reason=reason
        ) >= 1

    # 3. The CERT's `watchfloor ack` for the border agency: it cannot even read its topic.
    refused = _ack(secured, "agency-cert", alert_id, "--agency", "border")
    assert refused.returncode == 3, refused.stderr
    assert refused.stderr.startswith("error: Kafka: TopicAuthorizationFailedError")
    assert "Traceback" not in refused.stderr

    # 4. The border agency itself: ids it never received and incomplete actions refused...
    hello = _ack(secured, "agency-border", "hello", "--agency", "border")
    assert hello.returncode == 2, hello.stderr
    assert hello.stderr.strip().splitlines() == [
        "error: 'hello' was never delivered to border (not among the last 20000 messages "
        "of alerts.border; older: --scan N); nothing sent"
    ]
    incomplete = _ack(secured, "agency-border", alert_id, "--agency", "border",
                      "--action", "escalate")
    assert incomplete.returncode == 2
    assert incomplete.stderr.strip() == (
        "error: --action escalate needs --verdict true_positive or false_positive "
        "(the worker refuses an escalate without one)"
    )
    # ... and its genuine ack is recorded, said so, and is its first response.
    ok = _ack(secured, "agency-border", alert_id, "--agency", "border",
              "--verdict", "true_positive")
    assert ok.returncode == 0, ok.stderr
    line = ok.stdout.strip()
    assert re.fullmatch(
        rf"recorded: ack of {alert_id} \((high|critical), v\d+\) by border, verdict "
        r"true_positive, on feedback.border partition 0 offset \d+", line), line
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        now = secure_worker.metrics()
        if metric_value(now, count, agency="border") > metric_value(before, count,
                                                                    agency="border"):
            break
        time.sleep(0.5)
    assert metric_value(now, count, agency="border") == metric_value(
        before, count, agency="border") + 1, secure_worker.log_tail()
    assert metric_value(now, "watchfloor_feedback_total", verdict="true_positive") > (
        metric_value(before, "watchfloor_feedback_total", verdict="true_positive")
    )
