"""Capture readers: field mapping, labels, tolerance of malformed lines, hostile input, the
sort window, and that every event they produce passes the worker's decoding."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from watchfloor.core.decoding import decode
from watchfloor.evaluation.formats import (
    FormatError,
    Label,
    Labelled,
    ReadStats,
    get_format,
    time_ordered,
)
from watchfloor.evaluation.formats.amlsim import entity_labels
from watchfloor.evaluation.formats.constructed import CAPTURES, write_capture

DATA = Path(__file__).parent / "data"


def read(fmt: str, path: Path) -> tuple[list[Labelled], ReadStats]:
    stats = ReadStats()
    return list(get_format(fmt).read(path, stats)), stats


def utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def test_argus_fields_labels_and_bad_lines() -> None:
    recs, stats = read("argus", DATA / "ctu13_sample.binetflow")
    by_id = {r.event["event_id"]: r for r in recs}
    bg = by_id["argus-2"]
    assert bg.label.kind == "unlabelled"
    assert bg.event["bytes_out"] == 156 and bg.event["bytes_in"] == 276 - 156
    assert bg.event["duration_ms"] == pytest.approx(1026.539)
    assert bg.event["conn_state"] == "REJ" and bg.event["argus_state"] == "S_RA"
    assert utc(bg.event["ts"]) == "2011-08-10 09:46:59"
    icmp = by_id["argus-3"]  # hex "ports" of ICMP
    assert icmp.event["dst_port"] == 0x0303 and icmp.event["conn_state"] == "REJ"
    assert (by_id["argus-4"].label.kind, by_id["argus-4"].label.threat) == ("malicious", "c2")
    assert by_id["argus-5"].label.threat == "scan" and by_id["argus-5"].event["conn_state"] == "S0"
    assert by_id["argus-6"].label.kind == "benign"
    to_bot = by_id["argus-7"]
    assert to_bot.label.kind == "malicious" and not to_bot.label.source
    assert to_bot.event["conn_state"] == "OTH"  # a SYN-ACK first: not a connection attempt
    assert by_id["argus-12"].label.threat == "spam"
    # Four bad lines, each counted with its line number; the read went on past them.
    assert stats.skipped == 4 and len(recs) == 7
    lines = dict(stats.examples)
    assert set(lines) == {8, 9, 10, 11}
    assert "Dur" in lines[9] and "SrcAddr" in lines[10] and "Dport" in lines[11]


def test_zeek_iot23_labels_in_space_separated_last_field() -> None:
    recs, stats = read("zeek", DATA / "iot23_conn.log.labeled")
    assert [r.label.threat for r in recs] == ["scan", "scan", "c2", None]
    scan = recs[0].event
    assert scan == {
        "event_id": scan["event_id"], "ts": 1525879831016, "src_ip": "192.168.100.103",
        "dst_ip": "65.127.233.163", "dst_port": 23, "protocol": "tcp", "bytes_out": 0,
        "bytes_in": 0, "duration_ms": pytest.approx(2999.051), "src_port": 51524,
        "packets_out": 3, "packets_in": 0, "conn_state": "S0", "history": "S",
        "uid": "CUmrqr4svHuSXJy5z7",
    }
    assert recs[1].event["duration_ms"] == 0.0 and recs[1].event["bytes_out"] == 0  # "-"
    assert recs[2].event["service"] == "irc" and recs[2].event["bytes_in"] == 3400
    assert recs[3].label.kind == "benign" and recs[3].event["dst_ip"] == "224.0.0.251"
    assert stats.skipped == 2
    reasons = [r for _, r in stats.examples]
    assert reasons[0].startswith("field_count") and reasons[1].startswith("orig_bytes")


def test_zeek_json_log_maps_like_the_tsv() -> None:
    recs, stats = read("zeek", DATA / "zeek_conn.json")
    tsv, _ = read("zeek", DATA / "iot23_conn.log.labeled")
    first = {k: v for k, v in recs[0].event.items() if k != "event_id"}
    assert first == {k: v for k, v in tsv[0].event.items() if k != "event_id"}
    assert recs[1].event["ts"] == 1525879832500  # ISO 8601 timestamps too
    assert recs[0].label.kind == "unlabelled"  # no label columns
    assert stats.skipped == 3
    assert sorted(r.split(":")[0] for _, r in stats.examples) == [
        "missing_field", "not_json", "not_object"]


def test_cicflowmeter_2017_quirks() -> None:
    recs, stats = read("cicflowmeter", DATA / "cic2017_sample.csv")
    ddos, ssh, dns, web = recs
    assert utc(ddos.event["ts"]) == "2017-07-07 15:30:00"  # 12-hour clock, no PM
    assert utc(ssh.event["ts"]) == "2017-07-07 09:03:00"
    assert utc(web.event["ts"]) == "2017-07-07 13:05:00"
    assert ddos.label.threat == "dos" and ssh.label.threat == "brute_force"
    assert web.label.threat == "brute_force"  # "Web Attack \ufffd Brute Force" (cp1252 dash)
    assert ssh.event["duration_ms"] == pytest.approx(1266.342)  # microseconds in the file
    assert (ssh.event["packets_out"], ssh.event["packets_in"]) == (41, 44)
    assert (ssh.event["bytes_out"], ssh.event["bytes_in"]) == (2664, 6954)
    assert ssh.event["tcp_flags"] == "SA" and ssh.event["protocol"] == "tcp"
    assert dns.event["duration_ms"] == 0.0 and dns.event["protocol"] == "udp"  # -1 us
    assert dns.label.kind == "benign"
    reasons = sorted(r.split(":")[0] for _, r in stats.examples)
    assert reasons == ["Flow Duration", "Timestamp", "empty_row", "empty_row"]


def test_cicflowmeter_2018_names_and_files_without_addresses() -> None:
    recs, _ = read("cicflowmeter", DATA / "cic2018_sample.csv")
    assert [r.label.threat for r in recs] == ["dos", None]
    assert recs[0].event["src_ip"] == "18.219.211.138" and recs[0].event["dst_port"] == 80
    assert utc(recs[1].event["ts"]) == "2018-02-20 10:12:55"
    with pytest.raises(FormatError, match="without flow addresses"):
        read("cicflowmeter", DATA / "cic2018_noaddr.csv")


def test_paysim_balances_labels_and_step_clock() -> None:
    recs, stats = read("paysim", DATA / "paysim_sample.csv")
    pay, transfer, cash_out, debit = recs
    assert transfer.label == Label("malicious", "fraud", "isFraud=1")
    assert pay.label.kind == "benign"
    assert transfer.event["balance_before"] == 181.0 and transfer.event["balance_after"] == 0.0
    assert transfer.event["tx_type"] == "TRANSFER" and transfer.event["account_id"] == "C1305486145"
    assert transfer.event["counterparty_id"] == "C553264065"
    # One hour per step, file order kept inside the step.
    assert pay.event["ts"] < transfer.event["ts"] < cash_out.event["ts"] < debit.event["ts"]
    assert debit.event["ts"] - pay.event["ts"] >= 3_600_000
    reasons = sorted(r.split(":")[0] for _, r in stats.examples)
    assert reasons == ["amount", "isFraud", "nameOrig"]  # negative, "maybe", an ESC


def test_amlsim_convert_logs_layout_and_companions() -> None:
    recs, stats = read("amlsim", DATA / "amlsim_convert")
    assert [r.label.threat for r in recs] == [
        "laundering_fan_in", "laundering_fan_in", None, "laundering_fan_in"]
    assert recs[0].label.group == "7" and recs[0].event["counterparty_id"] == "200"
    assert utc(recs[0].event["ts"]) == "2017-01-05 00:00:00"
    assert stats.skipped == 1
    labels = entity_labels(DATA / "amlsim_convert")
    assert set(labels) == {"101", "102", "105", "200"}
    assert labels["200"].threat == "laundering_fan_in"


def test_unknown_format_and_not_a_capture(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="known: argus, zeek"):
        get_format("pcap")
    p = tmp_path / "x.csv"
    p.write_text("a,b,c\n1,2,3\n")
    for fmt in ("argus", "cicflowmeter", "paysim", "amlsim"):
        with pytest.raises(FormatError, match=r"not an? "):
            read(fmt, p)
    with pytest.raises(FormatError, match="no #fields"):
        read("zeek", p)


def test_hostile_bytes_are_skipped_not_fatal(tmp_path: Path) -> None:
    # Binary garbage, NULs, a huge line and an ANSI escape in a free-text field.
    p = tmp_path / "hostile.binetflow"
    good = ("2011/08/10 09:47:01.250000,3.5,tcp,147.32.84.165,1040,   ->,173.194.39.1,80,"
            "FSPA\x1b[2J,0,0,14,3500,1200,flow=From-Botnet-V42-TCP-CC6\x1b]0;pwned\x07\n")
    p.write_bytes(
        b"StartTime,Dur,Proto,SrcAddr,Sport,Dir,DstAddr,Dport,State,sTos,dTos,TotPkts,"
        b"TotBytes,SrcBytes,Label\n" + b"\x00\xff\xfe" * 1000 + b"\n" + b"9" * 1_000_000
        + b"\n" + good.encode()
    )
    recs, stats = read("argus", p)
    assert len(recs) == 1 and stats.skipped == 2
    ev = recs[0].event
    assert ev["argus_state"].isprintable() and recs[0].label.detail.isprintable()
    assert recs[0].label.kind == "malicious"


def test_time_ordered_repairs_disorder_within_the_window() -> None:
    def rec(ts: int) -> Labelled:
        return Labelled("network", {"ts": ts, "event_id": str(ts)}, Label("benign"))

    shuffled = [rec(t) for t in (5, 1, 3, 2, 4, 9, 8, 7, 6)]
    stats = ReadStats()
    assert [r.event["ts"] for r in time_ordered(shuffled, 4, stats)] == list(range(1, 10))
    assert stats.late == 0
    # Disorder longer than the window: the late record goes out at once, counted.
    stats = ReadStats()
    out = [r.event["ts"] for r in time_ordered([rec(t) for t in (5, 6, 7, 8, 1)], 2, stats)]
    assert sorted(out) == [1, 5, 6, 7, 8] and stats.late == 1
    assert [r.event["ts"] for r in time_ordered(shuffled, 0)] == list(range(1, 10))


@pytest.mark.parametrize("name", sorted(CAPTURES))
def test_constructed_captures_decode_as_the_worker_decodes(name: str, tmp_path: Path) -> None:
    small = {"campus": {"hours": 0.3}, "iot": {"hours": 0.3}, "workstation": {"hours": 0.3},
             "paysim": {"steps": 48}, "amlsim": {"days": 90}}
    spec = write_capture(name, tmp_path, scale=0.1, **small[name])
    fmt, path = spec.split(":", 1)
    recs, stats = read(fmt, Path(path))
    assert stats.skipped <= 1 and len(recs) > 100  # CIC files end with an empty row
    kinds = {r.label.kind for r in recs}
    assert "malicious" in kinds and "benign" in kinds
    domain = get_format(fmt).domain
    for r in recs:
        ev = decode(domain, orjson.dumps(r.event), 65536)
        assert ev["event_id"] == r.event["event_id"]


def test_argus_payload_columns_with_commas_keep_the_label(tmp_path: Path) -> None:
    p = tmp_path / "udata.binetflow"
    p.write_text(
        "StartTime,Dur,Proto,SrcAddr,Sport,Dir,DstAddr,Dport,State,sTos,dTos,TotPkts,"
        "TotBytes,SrcBytes,srcUdata,dstUdata,Label\n"
        "2011/08/10 09:47:01.25,3.5,tcp,147.32.84.165,1040,->,173.194.39.1,80,FSPA_FSPA,0,0,"
        "14,3500,1200,s[GET /a,b,c],d[HTTP/1.1 200],flow=From-Botnet-V42-TCP-CC6-HTTP\n"
    )
    (rec,), _ = read("argus", p)
    assert rec.label.threat == "c2" and rec.event["bytes_in"] == 2300


def test_zeek_concatenated_logs_follow_each_header(tmp_path: Path) -> None:
    one = (DATA / "iot23_conn.log.labeled").read_text()
    p = tmp_path / "two.log"
    p.write_text(one + one)
    recs, stats = read("zeek", p)
    assert len(recs) == 8 and stats.skipped == 4


def test_zeek_hostile_header_and_over_long_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad_sep.log"
    bad.write_text("#separator \\x\n#fields\tts\n")
    with pytest.raises(FormatError, match="unreadable #separator"):
        read("zeek", bad)
    good = (DATA / "iot23_conn.log.labeled").read_text().splitlines(keepends=True)
    p = tmp_path / "long.log"
    p.write_text("".join(good[:9]) + "1\t" + "x" * 200_000 + "\n" + "".join(good[9:]))
    recs, stats = read("zeek", p)
    assert len(recs) == 4
    assert any(r.startswith("too_long") for _, r in stats.examples)
