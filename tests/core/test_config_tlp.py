"""Every agreement carries a TLP 2.0 marking: missing or unknown is a configuration error
that names its place (sharing without a handling marking must not start)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from watchfloor.config import ConfigError, parse_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def raw() -> dict:
    return yaml.safe_load((ROOT / "topics.yaml").read_text())


def test_shipped_agreements_are_marked(raw: dict) -> None:
    tlp = {a.name: a.agreement.tlp for a in parse_config(raw).agencies}
    assert tlp["liaison"] == "amber" and tlp["ctpu"] == "amber+strict"
    assert all(tlp.values())


def test_an_agreement_without_a_marking_is_refused(raw: dict) -> None:
    del raw["agencies"]["liaison"]["agreement"]["tlp"]
    with pytest.raises(ConfigError) as err:
        parse_config(raw)
    assert "agencies.liaison.agreement.tlp" in str(err.value)
    assert "missing a TLP 2.0 level" in str(err.value)


def test_a_tlp_1_level_is_refused_with_the_valid_ones(raw: dict) -> None:
    raw["agencies"]["cert"]["agreement"]["tlp"] = "white"  # TLP 1.0; 2.0 says CLEAR
    with pytest.raises(ConfigError) as err:
        parse_config(raw)
    assert "'white' is not a TLP 2.0 level" in str(err.value)
    assert "clear, green, amber, amber+strict, red" in str(err.value)
