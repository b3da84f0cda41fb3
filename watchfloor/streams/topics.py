"""``watchfloor topics apply``: make the broker's topics match ``topics.yaml``.

Missing topics are created. Existing topics whose partition count or configs differ are
reported as drift and left alone: fixing drift can lose data (fewer partitions is not
possible, shorter retention deletes records, a new partition count re-keys entities), so
it is an operator's decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from watchfloor.config import Config, TopicSpec
from watchfloor.kafka import clients
from watchfloor.settings import Settings


@dataclass
class ApplyReport:
    created: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    drift: dict[str, list[str]] = field(default_factory=dict)
    # With check=True: topics that would be created (none is).
    missing: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created)

    @property
    def in_sync(self) -> bool:
        """Every topic exists as topics.yaml describes it."""
        return not (self.missing or self.drift)

    def to_dict(self) -> dict[str, Any]:
        return {"created": self.created, "missing": self.missing, "drift": self.drift,
                "unchanged": self.unchanged, "in_sync": self.in_sync}  # fmt: skip

    def lines(self) -> list[str]:
        out = [f"created  {name}" for name in self.created]
        out += [f"missing  {name} (--check: not created)" for name in self.missing]
        for name, diffs in self.drift.items():
            out += [f"drift    {name}: {d} (left unchanged)" for d in diffs]
        if not self.created and not self.missing:
            out.append(
                f"nothing to create: all {len(self.unchanged) + len(self.drift)} topics "
                f"from topics.yaml exist"
                + (f", {len(self.drift)} with drift" if self.drift else "")
            )
        return out


async def describe(admin: AIOKafkaAdminClient, specs: list[TopicSpec]) -> dict[str, dict]:
    """Partition count and relevant configs of the specs' topics that exist."""
    existing = set(await admin.list_topics())
    present = [s for s in specs if s.name in existing]
    if not present:
        return {}
    meta = {t["topic"]: t for t in await admin.describe_topics([s.name for s in present])}
    resources = [
        ConfigResource(ConfigResourceType.TOPIC, s.name, dict.fromkeys(s.configs)) for s in present
    ]
    configs: dict[str, dict[str, str]] = {}
    for response in await admin.describe_configs(resources):
        for res in response.to_object()["resources"]:
            configs[res["resource_name"]] = {
                e["config_names"]: e["config_value"] for e in res["config_entries"]
            }
    return {
        s.name: {"partitions": len(meta[s.name]["partitions"]), "configs": configs.get(s.name, {})}
        for s in present
    }


async def apply_topics(
    config: Config,
    bootstrap: str | Settings | clients.Connection,
    replication: int = 1,
    security: Mapping[str, Any] | None = None,
    check: bool = False,
) -> ApplyReport:
    """Create the missing topics of ``config`` and report drift (``check``: create
    nothing, report what is missing too)."""
    report = ApplyReport()
    specs = list(config.topics)
    admin = clients.admin(clients.resolve(bootstrap, security), request_timeout_ms=30000)
    await admin.start()
    try:
        current = await describe(admin, specs)
        missing = [s for s in specs if s.name not in current]
        if missing and check:
            report.missing = [s.name for s in missing]
        elif missing:
            response = await admin.create_topics(
                [
                    NewTopic(s.name, s.partitions, replication, topic_configs=s.configs)
                    for s in missing
                ]
            )
            errors = [
                f"{e['topic']}: {e['error_message'] or e['error_code']}"
                for e in response.to_object()["topic_errors"]
                if e["error_code"] not in (0, 36)  # 36: already exists (a concurrent apply)
            ]
            if errors:
                raise RuntimeError("could not create topics: " + "; ".join(errors))
            report.created = [s.name for s in missing]
        for s in specs:
            if s.name not in current:
                continue
            diffs = []
            have = current[s.name]
            if have["partitions"] != s.partitions:
                diffs.append(
                    f"{have['partitions']} partitions on the broker, {s.partitions} in topics.yaml"
                )
            for key, want in s.configs.items():
                got = have["configs"].get(key)
                if got != want:
                    diffs.append(f"{key}={got} on the broker, {want} in topics.yaml")
            if diffs:
                report.drift[s.name] = diffs
            else:
                report.unchanged.append(s.name)
    finally:
        await admin.close()
    return report
