"""End to end on the real broker: events in, alerts and dead letters out, metrics up."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import orjson
import pytest
import yaml

from tests.conftest import ROOT
from tests.integration.conftest import Worker, metric_value, worker_env
from tests.kafka_helpers import collect, end_offsets, produce, run
from watchfloor.core.alert_schema import SEVERITIES

pytestmark = pytest.mark.broker


def _uid() -> str:
    return uuid.uuid4().hex[:10]


def port_scan(src_ip: str, start_ms: int) -> list[tuple[bytes, bytes]]:
    return [
        (
            src_ip.encode(),
            orjson.dumps(
                {
                    "event_id": f"scan-{_uid()}",
                    "ts": start_ms + i * 200,
                    "src_ip": src_ip,
                    "dst_ip": "10.0.0.5",
                    "dst_port": 1 + i * 7,
                    "protocol": "tcp",
                    "bytes_out": 60,
                    "bytes_in": 0,
                    "duration_ms": 2,
                }
            ),
        )
        for i in range(80)
    ]


def structuring(account: str, start_ms: int) -> list[tuple[bytes, bytes]]:
    return [
        (
            account.encode(),
            orjson.dumps(
                {
                    "event_id": f"fin-{_uid()}",
                    # Hourly, ending at start_ms: a later time would be in the future of the
                    # broker's clock (future_timestamp, issue 9 item 4).
                    "ts": start_ms - (3 - i) * 3_600_000,
                    "account_id": account,
                    "counterparty_id": f"CP-{i}",
                    "amount": 9_400.0 + 100 * i,
                    "currency": "EUR",
                    "country": "NL",
                }
            ),
        )
        for i in range(4)
    ]


def stolen_crossing(document: str, ts_ms: int) -> tuple[bytes, bytes]:
    return document.encode(), orjson.dumps(
        {
            "event_id": f"brd-{_uid()}",
            "ts": ts_ms,
            "document_id": document,
            "nationality": "FRA",
            "crossing_point": "CDG-T2",
            "direction": "entry",
            "person_name": "TEST TRAVELLER",
            "person_id": f"person-{_uid()}",
        }
    )


def _about(entity_id: str):
    return lambda alert: any(e.get("id") == entity_id for e in alert.get("entities", []))


def assert_alert_contract(alert: dict) -> None:
    for key in (
        "alert_id",
        "version",
        "created_at",
        "severity",
        "score",
        "domains",
        "entities",
        "detections",
        "agency",
        "agreement",
    ):
        assert key in alert, key
    assert alert["severity"] in SEVERITIES
    assert 0.0 <= alert["score"] <= 1.0
    assert alert["version"] >= 1
    for d in alert["detections"]:
        assert {"detector", "domain", "ts"} <= set(d)


def test_topics_apply_is_idempotent_and_reports_drift(broker: str, tmp_path: Path) -> None:
    spec = yaml.safe_load((ROOT / "topics.yaml").read_text())
    prefix = f"t{_uid()}"
    spec["topics"] = {f"{prefix}.{k}": v for k, v in spec["topics"].items()}
    for name, agency in spec["agencies"].items():
        agency["topic"] = f"{prefix}.alerts.{name}"
    path = tmp_path / "topics.yaml"
    path.write_text(yaml.safe_dump(spec))
    cmd = [
        sys.executable,
        "-m",
        "watchfloor.ops.cli",
        "--topics-file",
        str(path),
        "topics",
        "apply",
    ]
    env = worker_env(broker)

    # --check (for CI): creates nothing, says what is missing, exits 1.
    check = subprocess.run([*cmd, "--check", "--json"], env=env, capture_output=True,
                           text=True, timeout=120)  # fmt: skip
    assert check.returncode == 1, check.stderr
    report = json.loads(check.stdout)
    assert report["in_sync"] is False and report["created"] == []
    assert len(report["missing"]) == len(spec["topics"])

    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("created") == len(spec["topics"])

    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert "created" not in second.stdout
    assert f"nothing to create: all {len(spec['topics'])} topics" in second.stdout
    check = subprocess.run([*cmd, "--check"], env=env, capture_output=True, text=True,
                           timeout=120)  # fmt: skip
    assert check.returncode == 0, check.stdout

    spec["topics"][f"{prefix}.events.border"]["partitions"] = 6
    spec["topics"][f"{prefix}.alerts.fiu"]["retention_ms"] = 1000
    path.write_text(yaml.safe_dump(spec))
    third = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    # Drift is left alone but is a failure: a script (or CI) must see it.
    assert third.returncode == 1, third.stderr
    assert (
        f"drift    {prefix}.events.border: 3 partitions on the broker, 6 in topics.yaml"
        in third.stdout
    )
    assert (
        f"drift    {prefix}.alerts.fiu: retention.ms=2592000000 on the broker, 1000" in third.stdout
    )
    assert "created" not in third.stdout


def test_each_domain_alerts_the_agencies_routed_to_it(worker: Worker) -> None:
    b = worker.bootstrap
    now = int(time.time() * 1000)
    ip = f"10.77.{int(_uid()[:4], 16) % 250}.{int(_uid()[:4], 16) % 250}"
    account = f"ACC-T-{_uid()}"
    document = "P0001847"  # on the lost/stolen list shipped in watchfloor/data
    starts = {t: run(end_offsets(b, t)) for t in ("alerts.cert", "alerts.fiu", "alerts.border")}

    run(produce(b, "events.network", port_scan(ip, now)))
    run(produce(b, "events.financial", structuring(account, now)))
    run(produce(b, "events.border", [stolen_crossing(document, now)]))

    cert = run(collect(b, "alerts.cert", lambda r: bool(r), 60, starts["alerts.cert"], _about(ip)))
    fiu = run(
        collect(b, "alerts.fiu", lambda r: bool(r), 60, starts["alerts.fiu"], _about(account))
    )
    border = run(
        collect(
            b, "alerts.border", lambda r: bool(r), 60, starts["alerts.border"], _about(document)
        )
    )
    assert cert, f"no CERT alert for the port scan from {ip}\n{worker.log_tail()}"
    assert fiu, f"no FIU alert for structuring on {account}\n{worker.log_tail()}"
    assert border, f"no border alert for stolen document {document}\n{worker.log_tail()}"
    for alert, agency, domain in (
        (cert[0], "cert", "network"),
        (fiu[0], "fiu", "financial"),
        (border[0], "border", "border"),
    ):
        assert_alert_contract(alert)
        assert alert["agency"] == agency
        assert domain in alert["domains"]
    assert any(d["detector"] == "port_scan" for d in cert[-1]["detections"])
    assert any(d["detector"] == "structuring" for d in fiu[-1]["detections"])
    assert any(d["detector"] == "lost_stolen_document" for d in border[-1]["detections"])

    # Routing: the network-only CERT never receives the financial incident.
    leaked = run(
        collect(b, "alerts.cert", lambda r: False, 3, starts["alerts.cert"], _about(account))
    )
    assert leaked == []


HOSTILE = [
    (b"\xff\xfe\xfa MARK", "not_utf8"),
    (b"{MARK not json", "not_json"),
    (b'["MARK", 1]', "not_object"),
    (b'{"event_id": "MARK"}', "missing_field"),
    (
        b'{"event_id": "MARK", "ts": 1795640645123, "document_id": 42, "nationality": "FRA",'
        b' "crossing_point": "CDG-T2", "direction": "entry"}',
        "wrong_type",
    ),
    (
        b'{"event_id": "MARK", "ts": "next tuesday", "document_id": "P1", "nationality": "FRA",'
        b' "crossing_point": "CDG-T2", "direction": "entry"}',
        "bad_timestamp",
    ),
    (None, "not_json"),
]


def test_invalid_input_is_deadlettered_with_reason_and_valid_events_keep_flowing(
    worker: Worker,
) -> None:
    b = worker.bootstrap
    marker = f"M{_uid()}".encode()
    bad = [(marker, None if v is None else v.replace(b"MARK", marker)) for v, _ in HOSTILE]
    dl_start = run(end_offsets(b, "events.deadletter"))
    alerts_start = run(end_offsets(b, "alerts.border"))
    document = "P0002299"
    run(produce(b, "events.border", [*bad, stolen_crossing(document, int(time.time() * 1000))]))

    def ours(rec: dict) -> bool:
        original = base64.b64decode(rec["original"])
        key = base64.b64decode(rec["key"]) if rec["key"] else b""
        return rec["topic"] == "events.border" and (marker in original or key == marker)

    letters = run(
        collect(b, "events.deadletter", lambda r: len(r) >= len(HOSTILE), 60, dl_start, ours)
    )
    assert sorted(r["reason"] for r in letters) == sorted(code for _, code in HOSTILE)
    for rec in letters:
        assert base64.b64decode(rec["key"]) == marker
        assert (
            rec["detail"] and isinstance(rec["offset"], int) and isinstance(rec["partition"], int)
        )
    originals = {base64.b64decode(r["original"]) for r in letters if not r["null_value"]}
    assert originals == {v for _, v in bad if v is not None}

    alerts = run(collect(b, "alerts.border", bool, 60, alerts_start, _about(document)))
    assert alerts, f"the valid event after the bad ones produced no alert\n{worker.log_tail()}"
    assert worker.proc.poll() is None, "the worker died on hostile input"


def test_metrics_count_what_happened(worker: Worker) -> None:
    b = worker.bootstrap
    run(
        produce(
            b,
            "events.border",
            [stolen_crossing("P0003370", int(time.time() * 1000)), (None, b"{broken")],
        )
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = worker.metrics()
        if (
            metric_value(text, "watchfloor_alerts_total", agency="border") > 0
            and metric_value(text, "watchfloor_events_invalid_total", reason="not_json") > 0
        ):
            break
        time.sleep(0.5)
    assert metric_value(text, "watchfloor_events_total", domain="border") >= 2
    assert (
        metric_value(text, "watchfloor_events_invalid_total", domain="border", reason="not_json")
        >= 1
    )
    assert metric_value(text, "watchfloor_alerts_total", agency="border") >= 1
    assert metric_value(text, "watchfloor_alert_latency_seconds_count", agency="border") >= 1
    assert metric_value(text, "watchfloor_detections_total", detector="lost_stolen_document") >= 1
    # Secrets stay out of metrics.
    assert "integration-test-key-not-secret" not in text
