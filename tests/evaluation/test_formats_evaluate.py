"""``watchfloor evaluate --dataset FORMAT:PATH``: what counts as a hit, a false alert and
a delay, and the command over constructed captures through the offline pipeline."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from watchfloor.evaluation.captures import Named, Truth, _row, evaluate_capture
from watchfloor.evaluation.formats import Label, Labelled
from watchfloor.evaluation.formats.constructed import write_capture
from watchfloor.ops.cli import main

ROOT = Path(__file__).resolve().parents[2]


def flow(eid: str, ts_s: float, src: str, dst: str, label: Label) -> Labelled:
    ev = {"event_id": eid, "ts": int(ts_s * 1000), "src_ip": src, "dst_ip": dst}
    return Labelled("network", ev, label)


def test_background_is_neither_hit_nor_false_alert_and_victims_are_found() -> None:
    truth = Truth("network")
    for rec in (
        flow("e1", 100, "10.0.0.1", "10.0.1.1", Label("malicious", "scan")),
        flow("e2", 110, "10.0.0.1", "10.0.1.2", Label("malicious", "scan")),
        flow("e3", 105, "10.0.0.2", "8.8.8.8", Label("benign")),
        flow("e4", 106, "10.0.0.3", "8.8.8.8", Label("unlabelled")),
        flow("e5", 107, "10.0.0.5", "10.0.0.9", Label("malicious", "dos")),
    ):
        truth.add(rec)
    named = [
        Named("port_scan", "a1", ("10.0.0.1",), 130.0),
        Named("port_scan", "a1", ("10.0.0.1",), 700.0),  # a later version of one incident
        Named("port_scan", "a2", ("10.0.0.2",), 140.0),  # benign host: a false alert
        Named("port_scan", "a3", ("10.0.0.3",), 150.0),  # background: not counted
        Named("flood", "a4", ("10.0.0.9",), 160.0),  # the flood's victim: not false
    ]
    dets = [{"detector": "port_scan", "event_id": e} for e in ("e1", "e1", "e3", "e4")]
    first = {s: n.t for n in reversed(named) for s in n.names}
    row = _row("scan", ["port_scan"], {"scan"}, truth, named, dets, first, 2)
    assert (row.sources, row.detected, row.tp, row.fp) == (1, 1, 1, 1)
    assert row.precision == 0.5 and row.recall == 1.0
    assert row.false_alerts == 1 and row.false_per_10k == 5000.0
    assert row.median_delay_s == 30.0  # from the source's first malicious flow
    assert (row.flow_tp, row.flow_fp, row.flows) == (1, 1, 2)  # duplicate counted once
    overall = _row("(all)", ["port_scan", "flood"], None, truth, named, dets, first, 2)
    assert overall.false_alerts == 1 and overall.sources == 3 and overall.detected == 2
    assert overall.missed == ["10.0.0.5"]
    # A flood found by naming its victim: the victim counts with the flood's sources.
    dos = _row("dos", ["flood"], {"dos"}, truth, named, dets, first, 2)
    assert (dos.sources, dos.detected, dos.tp, dos.fp, dos.false_alerts) == (2, 1, 1, 0, 0)
    assert dos.median_delay_s == 53.0


def test_financial_sources_are_both_accounts_and_fan_in_beneficiaries() -> None:
    truth = Truth("financial")
    for i, sender in enumerate(("A", "B", "C")):
        ev = {"event_id": f"t{i}", "ts": 1_000_000 + i, "account_id": sender,
              "counterparty_id": "BENE"}
        truth.add(Labelled("financial", ev, Label("malicious", "laundering_fan_in", group="7")))
    assert truth.beneficiaries() == ["BENE"]
    assert {k for k, s in truth.sources.items() if s.threats} == {"A", "B", "C", "BENE"}


@pytest.fixture(scope="module")
def iot_capture(tmp_path_factory: pytest.TempPathFactory) -> str:
    return write_capture("iot", tmp_path_factory.mktemp("iot"), scale=0.1, hours=0.6)


def test_evaluate_capture_counts_every_labelled_event(iot_capture: str) -> None:
    fmt, path = iot_capture.split(":", 1)
    result = evaluate_capture(fmt, path, ROOT / "topics.yaml")
    assert result.events == result.benign_events + result.malicious_events + \
        result.unlabelled_events
    assert result.unlabelled_events == 0 and result.malicious_events > 0
    # Two infected devices, both scanning and both talking to C2.
    assert result.by_threat["scan"].sources == 2 and result.by_threat["c2"].sources == 2
    assert result.incidents <= result.detections
    text = result.table()
    assert "threat" in text and "scan" in text and "false alerts:" in text


def test_evaluate_dataset_command_json_and_errors(iot_capture: str, capsys) -> None:
    rc = main(["--topics-file", str(ROOT / "topics.yaml"), "evaluate", "--dataset",
               iot_capture, "--json"])
    out = capsys.readouterr().out
    data = orjson.loads(out)
    assert rc in (0, 1) and rc == (0 if data["targets"]["met"] else 1)
    assert data["format"] == "zeek" and set(data["by_threat"]) == {"scan", "c2"}
    assert data["read"]["skipped"] == 0
    rc = main(["evaluate", "--dataset", "zeek:/no/such/conn.log"])
    err = capsys.readouterr().err
    assert rc == 2 and err.strip().count("\n") == 0 and "no such file" in err
