from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from watchfloor.config import ConfigError, load_config, parse_config
from watchfloor.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def raw() -> dict:
    return yaml.safe_load((ROOT / "topics.yaml").read_text())


def test_shipped_topics_yaml_is_valid() -> None:
    cfg = load_config(ROOT / "topics.yaml")
    assert set(cfg.input_topics) == {"network", "financial", "border"}
    assert len(cfg.agencies) >= 5
    for agency in cfg.agencies:
        assert agency.topic == f"alerts.{agency.name}"
    names = {t.name for t in cfg.topics}
    assert {"events.deadletter", "alerts.feedback", "audit.sharing"} <= names


def test_config_is_frozen(raw: dict) -> None:
    cfg = parse_config(raw)
    with pytest.raises(AttributeError):
        cfg.agencies[0].min_severity = "low"  # type: ignore[misc]
    with pytest.raises(TypeError):
        cfg.agencies[0].agreement.fields["entities.id"] = "full"  # type: ignore[index]


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda r: r["agencies"]["cert"].update(topic="alerts.nowhere"), "agencies.cert.topic"),
        (lambda r: r["agencies"]["cert"].update(domains=["maritime"]), "agencies.cert.domains"),
        (
            lambda r: r["agencies"]["fiu"]["agreement"]["fields"].update({"entities.idd": "full"}),
            "agencies.fiu.agreement.fields.entities.idd",
        ),
        (
            lambda r: r["agencies"]["fiu"]["agreement"]["fields"].update({"score": "share"}),
            "agencies.fiu.agreement.fields.score",
        ),
        (
            lambda r: r["agencies"]["ctpu"].update(min_severity="urgent"),
            "agencies.ctpu.min_severity",
        ),
        (
            lambda r: r["topics"]["events.network"].update(partitions=0),
            "topics.events.network.partitions",
        ),
        (lambda r: r["topics"]["events.border"].update(cleanup_policy="shred"), "cleanup_policy"),
        (
            lambda r: r["detectors"]["network"][0].update(threshold=1.5),
            "detectors.network[0].threshold",
        ),
        (lambda r: r["detectors"].update(maritime=[]), "detectors.maritime"),
        (lambda r: r["topics"].pop("events.deadletter"), "deadletter"),
    ],
)
def test_errors_say_where_and_what(raw: dict, mutate, where: str) -> None:
    bad = copy.deepcopy(raw)
    mutate(bad)
    with pytest.raises(ConfigError) as err:
        parse_config(bad, "topics.yaml")
    assert where in str(err.value)
    assert str(err.value).startswith("topics.yaml: ")


def test_unreadable_and_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("topics: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_settings_from_environment() -> None:
    s = Settings.from_env(
        {
            "WATCHFLOOR_BROKER": "kafka://k1:9092;kafka://k2:9092",
            "WATCHFLOOR_BATCH_SIZE": "50",
            "WATCHFLOOR_PSEUDONYM_KEY": "topsecret",
        }
    )
    assert s.bootstrap_servers == "k1:9092,k2:9092"
    assert s.batch_size == 50
    assert "topsecret" not in repr(s)
    with pytest.raises(ValueError, match="WATCHFLOOR_BATCH_SIZE"):
        Settings.from_env({"WATCHFLOOR_BATCH_SIZE": "many"})


def test_qualified_agreement_fields(raw: dict) -> None:
    ok = copy.deepcopy(raw)
    ok["agencies"]["fiu"]["agreement"]["fields"]["entities.id[account]"] = "full"
    fields = parse_config(ok).agencies[1].agreement.fields
    assert fields["entities.id[account]"] == "full"
    for path, message in [
        ("entities.id[spaceship]", "qualifier [spaceship] is not valid here; valid: ip,"),
        ("severity[account]", "none (this field cannot be qualified)"),
        ("detections.reason[account]", "valid: network, financial, border"),
    ]:
        bad = copy.deepcopy(raw)
        bad["agencies"]["fiu"]["agreement"]["fields"][path] = "full"
        with pytest.raises(ConfigError) as err:
            parse_config(bad, "topics.yaml")
        assert f"agencies.fiu.agreement.fields.{path}" in str(err.value)
        assert message in str(err.value)
