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
    f = figures(recs, {"cert": 60.0, "ctpu": 300.0}, t0, t0 + 3600, bucket_seconds=600)
    assert f["alerts"]["incidents"] == 1 and f["alerts"]["total_deliveries"] == 3
    over = f["alerts"]["over_time"]
    assert over["by_agency"] == {"cert": [2, 0, 0, 0, 0, 0, 0], "ctpu": [1, 0, 0, 0, 0, 0, 0]}
    assert over["incidents_by_agency"]["cert"] == [1, 0, 0, 0, 0, 0, 0]  # two versions, one
    assert over["by_severity"] == {"high": [3, 0, 0, 0, 0, 0, 0]}
    assert f["accuracy"]["proved_false_detail"] == [
        {"alert_id": "a1", "agency": "cert", "detectors": ["port_scan"]}]
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
    began = time.time()
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
        # The CERT and the CTPU both act on the scan (so on the deconfliction notice that
        # told each about the other); the FIU closes the structuring as a false alarm.
        acts = (("cert", cert_id, "escalate", "true_positive"), ("ctpu", cert_id, "ack", None),
                ("fiu", fiu_id, "close", "false_positive"))
        for agency, aid, action, verdict in acts:
            rec = {"alert_id": aid, "agency": agency, "action": action,
                   "ts": int(time.time() * 1000), **({"verdict": verdict} if verdict else {})}
            run(produce(broker, config.feedback_topics[agency].name,
                        [(aid.encode(), orjson.dumps(rec))]))
        time.sleep(4)  # the alert stage settles (later versions, notices, audit)
        seen: dict[str, list[dict[str, Any]]] = {}
        notices: dict[str, list[dict[str, Any]]] = {}
        for agency in config.agencies:
            got = run(collect(broker, agency.topic, lambda r: False, timeout=3))
            seen[agency.name] = [a for a in got if a.get("kind", "alert") == "alert"]
            notices[agency.name] = [a for a in got if a.get("kind") == "deconfliction"]
    finally:
        stop_worker(worker)

    out = tmp_path / "report"
    env = worker_env(broker, WATCHFLOOR_TOPICS_FILE=str(topics_file))
    done = subprocess.run(
        [sys.executable, "-m", "watchfloor.ops.cli", "report", "--since", "1h", "--out",
         str(out)], env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    # A progress bar while reading: one line per topic in a log, ending at 100 %.
    bars = [line for line in done.stderr.splitlines() if line.startswith("reading [")]
    topics = len(config.agencies) + len(config.feedback_topics) + 2
    assert len(bars) >= topics and bars[-1].startswith("reading [" + "#" * 20 + "] 100%")
    assert f"from {topics} topics" in done.stderr
    f = orjson.loads((out / "report.json").read_bytes())
    ids = {a["alert_id"] for recs in seen.values() for a in recs}
    assert f["alerts"]["incidents"] == len(ids) >= 2
    assert f["alerts"]["total_deliveries"] == sum(len(v) for v in seen.values())
    # Every headline number, from what the run delivered and what the agencies did.
    delivered = {(a["alert_id"], agency) for agency, recs in seen.items() for a in recs}
    acked = {(aid, agency) for agency, aid, _, _ in acts}
    several = {aid for aid in ids if sum((aid, ag) in delivered for ag in seen) > 1}
    n_notices = sum(len(v) for v in notices.values())
    both = sum(all(k in acked for k in [(n["alert_id"], ag)]
                   + [(o["alert_id"], o["agency"]) for o in n["others"]])
               for ag, ns in notices.items() for n in ns)  # fmt: skip
    c = f["collaboration"]
    assert c["incidents_shared_with_several"] == len(several) >= 1
    assert c["deconfliction_notices"] == n_notices >= 2  # the CERT's and the CTPU's
    assert c["notices_both_acted"] == both >= 2 and c["both_acted_within_s"]["n"] == both
    unacked = sum(len(v) for v in f["never_acknowledged"].values())
    assert unacked == len(delivered - acked)
    headline = {"h-incidents": len(ids), "h-deliveries": f["alerts"]["total_deliveries"],
                "h-shared": len(several), "h-notices": n_notices, "h-unacked": unacked}
    over = f["alerts"]["over_time"]
    assert sum(map(sum, over["by_agency"].values())) == f["alerts"]["total_deliveries"]
    assert sum(map(sum, over["by_severity"].values())) == f["alerts"]["total_deliveries"]
    assert sum(map(sum, over["incidents_by_agency"].values())) == len(delivered)
    for agency, recs in seen.items():
        assert f["alerts"]["by_agency"][agency]["deliveries"] == len(recs), agency
    assert f["time_to_respond_s"]["cert"]["n"] == 1 and f["time_to_respond_s"]["fiu"]["n"] == 1
    assert f["time_to_respond_s"]["ctpu"]["n"] == 1
    assert f["time_to_respond_s"]["cert"]["p50"] >= 1.0
    assert f["time_to_respond_s"]["cert"]["target"] == 900.0
    assert f["accuracy"]["by_agency"]["cert"] == {"true_positive": 1, "false_positive": 0,
                                                  "precision": 1.0}
    assert f["accuracy"]["by_agency"]["fiu"]["false_positive"] == 1
    assert fiu_id in f["accuracy"]["proved_false"]
    assert f["time_to_share_s"]["cert"]["n"] >= 1
    assert f["accuracy"]["proved_false_detail"][0]["agency"] == "fiu"
    assert "structuring" in f["accuracy"]["proved_false_detail"][0]["detectors"]
    assert cert_id not in f["never_acknowledged"]["ctpu"]  # the CTPU acted on the scan
    assert f["collaboration"]["shared_with"][cert_id] == sorted(
        ag for ag in seen if (cert_id, ag) in delivered)
    assert "entities.id" in f["collaboration"]["agreements"]["ctpu"]["pseudonymised"]
    assert any(e["id"] == "10.55.0.9" for e in f["top_entities"])
    longest = f["longest_incidents"][0]
    assert longest["alert_id"] in ids
    assert len(longest["timeline"]) == sum(a["alert_id"] == longest["alert_id"]
                                           for recs in seen.values() for a in recs)
    assert longest["versions"] == max(a["version"] for recs in seen.values() for a in recs
                                      if a["alert_id"] == longest["alert_id"])

    # --from/--to: a period holding the run gives the same figures, one before it none.
    def rfc3339(t: float) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))

    for name, start, end, incidents in (("around", began - 60, time.time() + 60, len(ids)),
                                        ("before", began - 3600, began - 60, 0)):
        done = subprocess.run(
            [sys.executable, "-m", "watchfloor.ops.cli", "report", "--from", rfc3339(start),
             "--to", rfc3339(end), "--out", str(tmp_path / name), "--quiet"],
            env=env, capture_output=True, text=True, timeout=120,
        )
        assert done.returncode == 0 and done.stderr == "", done.stderr
        g = orjson.loads((tmp_path / name / "report.json").read_bytes())
        assert g["alerts"]["incidents"] == incidents, name
        assert g["period"] == {"from": rfc3339(start), "to": rfc3339(end)}
    done = subprocess.run(
        [sys.executable, "-m", "watchfloor.ops.cli", "report", "--from", "yesterday",
         "--out", str(tmp_path / "bad")], env=env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2 and "--from 'yesterday': expected RFC 3339" in done.stderr

    html = (out / "report.html").read_text()
    assert "<script" not in html
    browse(out / "report.html", headline)


def browse(path: Path, headline: dict[str, int]) -> None:
    from selenium.webdriver.common.by import By

    with chromium("1200,4200") as driver:
        driver.get(path.as_uri())
        for element, number in headline.items():
            text = driver.find_element(By.ID, element).text
            assert text.split()[0] == str(number), (element, text, number)
        charts = driver.find_elements(By.CSS_SELECTOR, "svg.chart")
        assert len(charts) == 6  # severity bars, 3 over time, share and respond strips
        assert driver.find_elements(By.CSS_SELECTOR, "svg.chart polyline")  # lines drawn
        assert all(c.size["width"] > 100 and c.size["height"] > 20 for c in charts)
        assert driver.find_elements(By.CSS_SELECTOR, "svg.chart rect")  # bars were drawn
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "report.png"))
