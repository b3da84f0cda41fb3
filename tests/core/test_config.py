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
    assert {"events.deadletter", "audit.sharing"} <= names
    assert any(t.role == "feedback" for t in cfg.topics)


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


# -- strictness (issue 9 item 7): a typo is an error, never silently ignored -------------


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        # The probe's two: min_severity ignored (CT unit got low alerts), domains ignored
        # (an agency received nothing).
        (
            lambda r: r["agencies"]["ctpu"].update(min_severty="high"),
            "agencies.ctpu.min_severty: unknown key; did you mean 'min_severity'?",
        ),
        (
            lambda r: r["agencies"]["cert"].update(domain=["network"]),
            "agencies.cert.domain: unknown key; did you mean 'domains'?",
        ),
        (
            lambda r: r["agencies"]["fiu"]["agreement"].update(feilds={}),
            "agencies.fiu.agreement.feilds: unknown key; did you mean 'fields'?",
        ),
        (
            lambda r: r["topics"]["events.network"].update(partitons=6),
            "topics.events.network.partitons: unknown key; did you mean 'partitions'?",
        ),
        (
            lambda r: r["detectors"]["network"][1].update(treshold=0.5),
            "detectors.network[1].treshold: unknown key; did you mean 'threshold'?",
        ),
        (
            lambda r: r["correlation"].update(window_second=60),
            "correlation.window_second: unknown key; did you mean 'window_seconds'?",
        ),
        (
            lambda r: r.update(correlaton={"window_seconds": 60}),
            "correlaton: unknown key; did you mean 'correlation'?",
        ),
        (
            lambda r: r.update(time={"max_future_second": 10}),
            "time.max_future_second: unknown key; did you mean 'max_future_seconds'?",
        ),
        # Nothing near: the error lists what is valid instead.
        (lambda r: r["agencies"]["cert"].update(colour="red"), "agencies.cert.colour: unknown"),
    ],
)
def test_unknown_keys_name_the_place_and_the_nearest_valid_key(
    raw: dict, mutate, message: str
) -> None:
    bad = copy.deepcopy(raw)
    mutate(bad)
    with pytest.raises(ConfigError) as err:
        parse_config(bad, "topics.yaml")
    assert str(err.value).startswith(f"topics.yaml: {message}")


def test_unknown_key_without_a_near_match_lists_the_valid_ones(raw: dict) -> None:
    bad = copy.deepcopy(raw)
    bad["agencies"]["cert"]["colour"] = "red"
    with pytest.raises(ConfigError) as err:
        parse_config(bad)
    assert "valid: " in str(err.value) and "min_severity" in str(err.value)


def test_every_key_of_the_shipped_file_is_known_and_time_bounds_parse(raw: dict) -> None:
    cfg = parse_config(raw)
    assert cfg.time.max_future_seconds == 300.0
    bad = copy.deepcopy(raw)
    bad["time"] = {"max_future_seconds": 5, "max_lateness_seconds": 60}
    cfg = parse_config(bad)
    assert (cfg.time.max_future_seconds, cfg.time.max_lateness_seconds) == (5.0, 60.0)
    bad["time"]["max_future_seconds"] = -1
    with pytest.raises(ConfigError, match=r"time\.max_future_seconds"):
        parse_config(bad)


def test_allow_lists_follow_the_dataclasses() -> None:
    # Adding a setting is adding a dataclass field: the allow-list is derived from it, so
    # a key another part of the project adds cannot be rejected by a stale list here.
    import dataclasses

    from watchfloor.config import AgencySpec, _keys

    assert _keys(AgencySpec, without=("name",)) == {
        f.name for f in dataclasses.fields(AgencySpec)
    } - {"name"}


def test_misspelt_detector_parameter_names_the_nearest_valid_one(raw: dict) -> None:
    # Parameters belong to each detector class (plugins too): checked when the engine is
    # built at start, against the class's signature.
    from watchfloor.detectors.engine import build_engines
    from watchfloor.detectors.registry import DetectorConfigError

    bad = copy.deepcopy(raw)
    flow = next(d for d in bad["detectors"]["network"] if d["name"] == "flow_halfspace")
    flow["params"]["alarm_tial"] = flow["params"].pop("alarm_tail", 1e-9)
    with pytest.raises(DetectorConfigError) as err:
        build_engines(parse_config(bad))
    assert str(err.value).startswith(
        "detectors.network.flow_halfspace.params.alarm_tial: unknown parameter of detector "
        "'flow_halfspace'"
    )
    assert str(err.value).endswith("did you mean 'alarm_tail'?")
