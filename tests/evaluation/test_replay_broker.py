"""``watchfloor replay`` into a real Kafka input topic: every event arrives, decodes, is
keyed by its source and in time order per partition although the file is not sorted."""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from pathlib import Path

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.kafka_helpers import collect
from watchfloor.core.decoding import decode
from watchfloor.evaluation.evaluate import namespaced_topics
from watchfloor.evaluation.formats import ReadStats, get_format
from watchfloor.evaluation.formats.constructed import write_capture
from watchfloor.ops.cli import main

pytestmark = pytest.mark.broker
ROOT = Path(__file__).resolve().parents[2]


async def _create(bootstrap: str, name: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()


def test_replay_publishes_in_time_order_keyed_by_source(
    broker: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    spec = write_capture("iot", tmp_path, scale=0.05, hours=0.25)
    fmt, path = spec.split(":", 1)
    stats = ReadStats()
    in_file = [r.event for r in get_format(fmt).read(Path(path), stats)]
    assert any(b["ts"] < a["ts"] for a, b in itertools.pairwise(in_file)), \
        "the constructed conn.log should be out of order, as Zeek writes it"
    # The domain's input topic of topics.yaml, in a namespace of this test's own.
    prefix = f"replay-{secrets.token_hex(4)}."
    tfile = namespaced_topics(ROOT / "topics.yaml", prefix, tmp_path / "topics.yaml")
    topic = f"{prefix}events.network"
    asyncio.run(_create(broker, topic, 3))
    monkeypatch.setenv("WATCHFLOOR_BROKER", f"kafka://{broker}")
    rc = main(["--topics-file", str(tfile), "replay", fmt, path])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert f"{len(in_file)} events to {topic}" in captured.err

    records: list[tuple[int, bytes, bytes]] = []

    async def read_all() -> None:
        from watchfloor.kafka.clients import assigned_consumer

        consumer = await assigned_consumer(broker, topic, from_beginning=True)
        assert consumer is not None
        try:
            deadline = time.monotonic() + 60
            while len(records) < len(in_file) and time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=500)
                for tp, recs in batch.items():
                    records.extend((tp.partition, r.key, r.value) for r in recs)
        finally:
            await consumer.stop()

    asyncio.run(read_all())
    assert len(records) == len(in_file)
    last: dict[int, int] = {}
    ids = set()
    for part, key, value in records:
        ev = decode("network", value, 65536)
        assert key == ev["src_ip"].encode()
        assert ev["ts"] >= last.get(part, 0), "out of time order within a partition"
        last[part] = ev["ts"]
        ids.add(ev["event_id"])
    assert ids == {e["event_id"] for e in in_file}


def test_replay_speed_keeps_the_spacing(
    broker: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    p = tmp_path / "three.binetflow"
    p.write_text(
        "StartTime,Dur,Proto,SrcAddr,Sport,Dir,DstAddr,Dport,State,sTos,dTos,TotPkts,"
        "TotBytes,SrcBytes,Label\n"
        "2011/08/10 09:00:00.0,0.1,tcp,10.0.0.1,1,->,10.0.0.2,80,S_,0,0,1,60,60,flow=x\n"
        "2011/08/10 09:00:04.0,0.1,tcp,10.0.0.1,1,->,10.0.0.2,80,S_,0,0,1,60,60,flow=x\n"
        "2011/08/10 09:00:02.0,0.1,tcp,10.0.0.1,1,->,10.0.0.2,80,S_,0,0,1,60,60,flow=x\n"
    )
    topic = f"replay-{secrets.token_hex(4)}"
    asyncio.run(_create(broker, topic, 1))
    monkeypatch.setenv("WATCHFLOOR_BROKER", f"kafka://{broker}")
    started = time.monotonic()
    assert main(["replay", "argus", str(p), "--topic", topic, "--speed", "4"]) == 0
    elapsed = time.monotonic() - started
    assert elapsed >= 1.0  # 4 s of capture at 4x
    got = asyncio.run(collect(broker, topic, until=lambda r: len(r) >= 3, timeout=30))
    assert [e["event_id"] for e in got] == ["argus-2", "argus-4", "argus-3"]
    capsys.readouterr()


def test_replay_paysim_keys_by_account_and_skips_bad_rows(
    broker: str, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    data = Path(__file__).parent / "data" / "paysim_sample.csv"
    topic = f"replay-{secrets.token_hex(4)}"
    asyncio.run(_create(broker, topic, 2))
    monkeypatch.setenv("WATCHFLOOR_BROKER", f"kafka://{broker}")
    assert main(["replay", "paysim", str(data), "--topic", topic]) == 0
    out = capsys.readouterr()
    summary = orjson.loads(out.out)
    assert summary["sent"] == 4 and summary["read"]["skipped"] == 3
    assert "3 skipped (line 6: amount" in out.err
    got = asyncio.run(collect(broker, topic, until=lambda r: len(r) >= 4, timeout=30))
    for ev in got:
        decoded = decode("financial", orjson.dumps(ev), 65536)
        assert decoded["balance_after"] >= 0 and "isFraud" not in ev and "label" not in ev
    assert {e["account_id"] for e in got} == {"C1231006815", "C1305486145", "C840083671",
                                              "C712410124"}
