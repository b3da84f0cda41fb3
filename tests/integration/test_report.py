"""`watchfloor report` from a scripted run on the broker: every headline number matches
what the run did, and the HTML renders with its charts in headless Chromium."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from tests.browser import chromium
from tests.conftest import ROOT
from tests.integration.conftest import start_worker, stop_worker, worker_env
from tests.integration.test_pipeline import port_scan, structuring
from tests.kafka_helpers import collect, produce, run
from watchfloor.config import parse_config
from watchfloor.ops.report import Records, figures
from watchfloor.streams.topics import apply_topics

ARTIFACTS = ROOT / "artifacts"


def test_figures_from_records() -> None:
    t0 = 1_790_000_000.0
    alert = {"kind": "alert", "alert_id": "a1", "version": 1, "severity": "high",
             "entities": [{"type": "ip", "id": "10.0.0.1"}]}
    recs = Records(
        alerts={"cert": [(t0 + 1, alert), (t0 + 5, {**alert, "version": 2})],
                "ctpu": [(t0 + 1, {**alert, "entities": [{"type": "ip", "id": "ps_1"}]}),
                         (t0 + 2, {"kind": "deconfliction", "alert_id": "a1", "agency": "ctpu",
                                   "others": [{"agency": "cert", "alert_id": "a1"}]})]},
        published=[(t0 + 1, {"alert_id": "a1", "agency": "cert", "detectors": ["port_scan"],
                             "arrival": t0 + 0.5}),
                   (t0 + 1, {"alert_id": "a1", "agency": "ctpu", "detectors": ["port_scan"],
                             "arrival": t0 + 0.5})],
        feedback={"cert": [(t0 + 31, {"alert_id": "a1", "action": "ack"}),
                           (t0 + 60, {"alert_id": "a1", "action": "close",
                                      "verdict": "false_positive"})]},
        audit=[(t0 + 1, {"agency": "ctpu", "shared": ["severity"],
                         "pseudonymised": ["entities.id"], "redacted": []})],
    )
    f = figures(recs, {"cert": 60.0, "ctpu": 300.0}, t0, t0 + 3600)
    assert f["alerts"]["incidents"] == 1 and f["alerts"]["total_deliveries"] == 3
    assert f["time_to_share_s"]["cert"]["p50"] == 0.5
    assert f["time_to_respond_s"]["cert"] == {"n": 1, "p50": 30.0, "p90": 30.0, "max": 30.0,
                                              "target": 60.0, "within_target": 1}
    assert f["never_acknowledged"]["ctpu"] == ["a1"]
    assert f["accuracy"]["by_detector"]["port_scan"]["precision"] == 0.0
    assert f["collaboration"]["incidents_shared_with_several"] == 1
    assert f["collaboration"]["deconfliction_notices"] == 1
    assert f["collaboration"]["agreements"]["ctpu"]["pseudonymised"] == ["entities.id"]
    assert f["top_entities"] == [{"type": "ip", "id": "10.0.0.1", "incidents": 1}]
    assert f["longest_incidents"][0]["seconds"] == 4.0


@pytest.mark.broker
def test_report_of_a_scripted_run(broker: str, tmp_path: Path) -> None:
    prefix = f"rep{uuid.uuid4().hex[:6]}"
    spec = yaml.safe_load((ROOT / "topics.yaml").read_text())
    spec["topics"] = {f"{prefix}.{k}": v for k, v in spec["topics"].items()}
    for name, agency in spec["agencies"].items():
        agency["topic"] = f"{prefix}.alerts.{name}"
    topics_file = tmp_path / "topics.yaml"
    topics_file.write_text(yaml.safe_dump(spec))
    config = parse_config(spec, str(topics_file))
    run(apply_topics(config, broker))
    worker = start_worker(broker, config, tmp_path, WATCHFLOOR_TOPICS_FILE=str(topics_file))
    try:
        now = int(time.time() * 1000)
        run(produce(broker, f"{prefix}.events.network", port_scan("10.55.0.9", now)))
        # Structuring spans hours: it starts in the past (future event times are refused).
        earlier = now - 4 * 3_600_000
        run(produce(broker, f"{prefix}.events.financial", structuring("NL91REPT0001", earlier)))
        cert = run(collect(broker, f"{prefix}.alerts.cert",
                           lambda r: any(a.get("kind") == "alert" for a in r), timeout=90))
        fiu = run(collect(broker, f"{prefix}.alerts.fiu",
                          lambda r: any(a.get("kind") == "alert" for a in r), timeout=90))
        cert_id = next(a["alert_id"] for a in cert if a.get("kind") == "alert")
        fiu_id = next(a["alert_id"] for a in fiu if a.get("kind") == "alert")
        time.sleep(1.5)
        for agency, aid, action, verdict in (("cert", cert_id, "escalate", "true_positive"),
                                             ("fiu", fiu_id, "close", "false_positive")):
            rec = {"alert_id": aid, "agency": agency, "action": action, "verdict": verdict,
                   "ts": int(time.time() * 1000)}
            run(produce(broker, config.feedback_topics[agency].name,
                        [(aid.encode(), orjson.dumps(rec))]))
        time.sleep(4)  # the alert stage settles (later versions, notices, audit)
        seen: dict[str, list[dict[str, Any]]] = {}
        for agency in config.agencies:
            seen[agency.name] = [
                a for a in run(collect(broker, agency.topic, lambda r: False, timeout=3))
                if a.get("kind", "alert") == "alert"
            ]
    finally:
        stop_worker(worker)

    out = tmp_path / "report"
    env = worker_env(broker, WATCHFLOOR_TOPICS_FILE=str(topics_file))
    done = subprocess.run(
        [sys.executable, "-m", "watchfloor.ops.cli", "report", "--since", "1h", "--out",
         str(out)], env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "reading" in done.stderr  # progress while reading
    f = orjson.loads((out / "report.json").read_bytes())
    ids = {a["alert_id"] for recs in seen.values() for a in recs}
    assert f["alerts"]["incidents"] == len(ids) >= 2
    assert f["alerts"]["total_deliveries"] == sum(len(v) for v in seen.values())
    for agency, recs in seen.items():
        assert f["alerts"]["by_agency"][agency]["deliveries"] == len(recs), agency
    assert f["time_to_respond_s"]["cert"]["n"] == 1 and f["time_to_respond_s"]["fiu"]["n"] == 1
    assert f["time_to_respond_s"]["cert"]["p50"] >= 1.0
    assert f["time_to_respond_s"]["cert"]["target"] == 900.0
    assert f["accuracy"]["by_agency"]["cert"] == {"true_positive": 1, "false_positive": 0,
                                                  "precision": 1.0}
    assert f["accuracy"]["by_agency"]["fiu"]["false_positive"] == 1
    assert fiu_id in f["accuracy"]["proved_false"]
    assert f["time_to_share_s"]["cert"]["n"] >= 1
    # The counter-terrorism unit received the scan (high) and never acknowledged it.
    assert cert_id in f["never_acknowledged"]["ctpu"]
    assert f["collaboration"]["incidents_shared_with_several"] >= 1
    assert "entities.id" in f["collaboration"]["agreements"]["ctpu"]["pseudonymised"]
    assert any(e["id"] == "10.55.0.9" for e in f["top_entities"])

    html = (out / "report.html").read_text()
    assert "<script" not in html
    browse(out / "report.html", f)


def browse(path: Path, f: dict[str, Any]) -> None:
    from selenium.webdriver.common.by import By

    with chromium("1200,2400") as driver:
        driver.get(path.as_uri())
        assert driver.find_element(By.ID, "h-incidents").text.startswith(
            str(f["alerts"]["incidents"]))
        charts = driver.find_elements(By.CSS_SELECTOR, "svg.chart")
        assert len(charts) >= 4
        assert all(c.size["width"] > 100 and c.size["height"] > 20 for c in charts)
        assert driver.find_elements(By.CSS_SELECTOR, "svg.chart rect")  # bars were drawn
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "report.png"))
