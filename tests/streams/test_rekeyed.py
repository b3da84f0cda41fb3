"""The second, re-keyed scoring stage: detectors keyed by another field than the input key
see every event of their key, whatever input partition it arrived on."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import orjson
import pytest
import yaml
from prometheus_client import CollectorRegistry

from watchfloor.config import ConfigError, load_config
from watchfloor.core.events import EXAMPLES
from watchfloor.detectors.base import NORMAL, Detector, Score
from watchfloor.detectors.engine import REKEYED, DomainEngine, RekeyedEngine, Slot
from watchfloor.evaluation.runner import partition_of
from watchfloor.settings import Settings
from watchfloor.streams.metrics import Metrics
from watchfloor.streams.pipeline import EventProcessor
from watchfloor.streams.runtime import Runtime

ROOT = Path(__file__).resolve().parents[2]
MASTER = secrets.token_hex(32)
PARTITIONS = 3
STAGE = "network/dst_ip"


class ManySources(Detector):
    """Flags a destination once ``alarm`` distinct sources have sent it a flow."""

    domains: ClassVar[tuple[str, ...]] = ("network",)
    entity: ClassVar[tuple[str, str]] = ("ip", "dst_ip")

    def __init__(self, alarm: int = 30) -> None:
        self.alarm = alarm
        self.sources: dict[str, set[str]] = {}

    def learn_one(self, event: Mapping[str, Any]) -> None:
        self.sources.setdefault(event["dst_ip"], set()).add(event["src_ip"])

    def score_one(self, event: Mapping[str, Any]) -> Score:
        seen = self.sources.get(event["dst_ip"], set()) | {event["src_ip"]}
        if len(seen) < self.alarm:
            return NORMAL
        return Score(1.0, f"{len(seen)} sources", float(len(seen)))


def flood_records(sources: int = 36) -> list[tuple[bytes, bytes, str, int, int, float]]:
    """One flow from each of ``sources`` sources to one destination, keyed and
    partitioned by source as the sensors' producers do."""
    records = []
    offsets = [0] * PARTITIONS
    for i in range(sources):
        src = f"198.51.100.{i + 1}"
        ev = dict(EXAMPLES["network"], event_id=f"f{i}", src_ip=src, dst_ip="10.0.0.80",
                  ts=1_700_000_000_000 + i * 100)  # fmt: skip
        key = src.encode()
        p = partition_of(key, PARTITIONS)
        records.append((orjson.dumps(ev), key, "events.network", p, offsets[p], 1.7e9 + i))
        offsets[p] += 1
    records.sort(key=lambda r: r[3])
    return records


def processor() -> tuple[EventProcessor, Metrics]:
    metrics = Metrics(CollectorRegistry(), domains=["network"], detectors=["many_sources"])

    def factory(domain: str) -> Any:
        # The same detector in both stages: what the first stage's copy sees shows what a
        # detector keyed by destination sees without the re-keyed stage.
        engine = DomainEngine(
            "network", [Slot("many_sources", ManySources(), 0.5, "ip", "dst_ip", "flood")]
        )
        return RekeyedEngine({STAGE: engine}) if domain == REKEYED else engine

    return EventProcessor(factory, metrics, rekey={"network": [(STAGE, "dst_ip")]}), metrics


def rekeyed_records(out: list[tuple[bytes, bytes]]) -> list[tuple[Any, ...]]:
    recs = [(v, k, "watchfloor.rekeyed", partition_of(k, PARTITIONS), i, 0.0)
            for i, (k, v) in enumerate(out)]  # fmt: skip
    return sorted(recs, key=lambda r: r[3])


def test_a_destination_keyed_detector_sees_every_source_only_in_the_second_stage() -> None:
    proc, _ = processor()
    out: list[tuple[bytes, bytes]] = []
    first, letters = proc.process("network", flood_records(), out)
    assert letters == [] and first == []  # each partition saw a third of the sources
    seen = [len(e.slots[0].detector.sources["10.0.0.80"]) for e in proc.engines.values()]
    assert sorted(seen) != [36] and max(seen) < 30 and sum(seen) == 36
    # Every valid event went on, keyed by its destination: one key, one partition.
    assert len(out) == 36 and {k for k, _ in out} == {b"network/dst_ip|10.0.0.80"}
    second, letters = proc.process(REKEYED, rekeyed_records(out))
    assert letters == []
    assert [d["entity"] for d in second] == [{"type": "ip", "id": "10.0.0.80"}] * 7
    assert second[0]["reason"] == "30 sources" and second[0]["domain"] == "network"
    # The original broker arrival, not the re-keyed record's, is what latency starts from.
    assert second[0]["arrival"] == pytest.approx(1.7e9 + 29)


def test_a_bad_rekeyed_record_is_deadlettered_and_its_batch_goes_on() -> None:
    proc, metrics = processor()
    out: list[tuple[bytes, bytes]] = []
    proc.process("network", flood_records(), out)
    recs = rekeyed_records(out)
    p = recs[0][3]
    bad = [b"not json", b"[1]", b'{"s":"border/x","a":1.0,"e":{"_ts":1.0}}',
           b'{"s":"network/dst_ip","a":1.0,"e":{"ts":1}}']  # fmt: skip
    recs = [(v, b"k", "watchfloor.rekeyed", p, 1000 + i, 0.0) for i, v in enumerate(bad)] + recs
    found, letters = proc.process(REKEYED, recs)
    assert len(found) == 7  # the batch's good records all went through
    reasons = [orjson.loads(d)["reason"] for d in letters]
    assert reasons == ["not_json", "not_object", "bad_value", "bad_value"]
    # Re-keyed records are events counted once already, by their domain.
    assert metrics.registry.get_sample_value("watchfloor_events_total",
                                             {"domain": "network"}) == 36  # fmt: skip


def test_without_a_rekeyed_topic_the_worker_refuses_to_start(tmp_path: Path) -> None:
    data = yaml.safe_load((ROOT / "topics.yaml").read_text())
    data["topics"] = {n: t for n, t in data["topics"].items() if t["role"] != "rekeyed"}
    (tmp_path / "topics.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"network/dst_ip.*role 'rekeyed'"):
        Runtime.build(Settings(master_key=MASTER), load_config(tmp_path / "topics.yaml"),
                      CollectorRegistry())  # fmt: skip


def test_the_default_topology_rekeys_the_detectors_keyed_by_other_fields() -> None:
    rt = Runtime.build(Settings(master_key=MASTER), load_config(ROOT / "topics.yaml"),
                       CollectorRegistry())  # fmt: skip
    assert rt.processor.rekey == {
        "network": (("network/dst_ip", "dst_ip"),),
        "financial": (("financial/counterparty_id", "counterparty_id"),
                      ("financial/*", "*")),
        "border": (("border/crossing_point", "crossing_point"),),
    }  # fmt: skip
    first = {s.name for s in rt.processor.factory("financial").slots}
    second = rt.processor.factory(REKEYED).engines
    assert "fan_in" not in first and "cycle" not in first and "pass_through" not in first
    assert [s.name for s in second["financial/counterparty_id"].slots] == ["fan_in"]
    assert [s.name for s in second["financial/*"].slots] == ["pass_through", "cycle"]
    assert [s.name for s in second["network/dst_ip"].slots] == ["beaconing", "flood"]
    assert "beaconing" not in {s.name for s in rt.processor.factory("network").slots}
    assert [s.name for s in second["border/crossing_point"].slots] == ["value_anomaly"]


def packed_records(out: list[tuple[bytes, bytes]], pack_bytes: int | None = None) -> list[Any]:
    """The worker's Kafka records for ``out``: packs, one per partition (issue 12)."""
    from watchfloor.kafka.partitioner import CachedPartitioner
    from watchfloor.streams import agents

    if pack_bytes is not None:
        saved, agents.PACK_BYTES = agents.PACK_BYTES, pack_bytes
    try:
        msgs = agents.packed("watchfloor.rekeyed", out, PARTITIONS, CachedPartitioner())
    finally:
        if pack_bytes is not None:
            agents.PACK_BYTES = saved
    offsets = [0] * PARTITIONS
    recs = []
    for _topic, key, value, p in msgs:  # type: ignore[misc]
        assert p == partition_of(key, PARTITIONS)  # the pack goes where its keys go
        recs.append((value, key, "watchfloor.rekeyed", p, offsets[p], 0.0))
        offsets[p] += 1
    return sorted(recs, key=lambda r: r[3])


@pytest.mark.parametrize("pack_bytes", [None, 2_000])
def test_packed_rekeyed_records_give_what_one_record_per_event_gives(
    pack_bytes: int | None,
) -> None:
    single, _ = processor()
    out: list[tuple[bytes, bytes]] = []
    single.process("network", flood_records(), out)
    want, _ = single.process(REKEYED, rekeyed_records(out))
    packs, _ = processor()
    out2: list[tuple[bytes, bytes]] = []
    packs.process("network", flood_records(), out2)
    recs = packed_records(out2, pack_bytes)
    # 36 events to one destination: one record, or several when a pack is full.
    assert len(recs) == 1 if pack_bytes is None else len(recs) > 5
    got, letters = packs.process(REKEYED, recs)
    assert letters == [] and got == want and len(got) == 7


def test_a_bad_event_in_a_pack_is_deadlettered_alone() -> None:
    proc, _ = processor()
    out: list[tuple[bytes, bytes]] = []
    proc.process("network", flood_records(), out)
    (value, key, topic, p, _, _), = packed_records(out)
    items = orjson.loads(value)
    items.insert(3, {"s": "network/dst_ip", "a": 1.0, "e": {"ts": 1}})  # no decoded event
    found, letters = proc.process(REKEYED, [(orjson.dumps(items), key, topic, p, 0, 0.0)])
    assert len(found) == 7  # the pack's 36 good events all went through
    assert [orjson.loads(d)["reason"] for d in letters] == ["bad_value"]


def test_a_takeover_relearns_packed_records() -> None:
    proc, _ = processor()
    out: list[tuple[bytes, bytes]] = []
    proc.process("network", flood_records(), out)
    (value, *_), = packed_records(out)
    fresh, _ = processor()
    assert fresh.learn(REKEYED, 0, [value, b"not json"]) == 36
    seen = fresh.engine(REKEYED, 0).engines[STAGE].slots[0].detector.sources["10.0.0.80"]
    assert len(seen) == 36
