"""Security settings and ACL derivation, without a broker (the broker side is
tests/integration/test_security.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from watchfloor.config import Config
from watchfloor.kafka.security import SecurityConfigError, broker_credentials, client_kwargs
from watchfloor.ops.acls import PREFIXED, derive_grants, env_var, read_credentials
from watchfloor.settings import Settings

SECRET = "s3cret-value-never-shown"


def test_password_from_file_and_never_in_repr(tmp_path: Path) -> None:
    f = tmp_path / "pw"
    f.write_text(SECRET + "\n")
    s = Settings.from_env(
        {"WATCHFLOOR_SASL_USERNAME": "agency-cert", "WATCHFLOOR_SASL_PASSWORD_FILE": str(f)}
    )
    assert s.sasl_password == SECRET
    assert SECRET not in repr(s)
    assert SECRET not in repr(broker_credentials(s))
    kw = client_kwargs(s)
    assert kw["security_protocol"] == "SASL_PLAINTEXT"
    assert kw["sasl_plain_password"] == SECRET
    # The direct variable wins over the file.
    s2 = Settings.from_env(
        {"WATCHFLOOR_SASL_PASSWORD": "direct", "WATCHFLOOR_SASL_PASSWORD_FILE": str(f)}
    )
    assert s2.sasl_password == "direct"


def test_missing_file_error_names_variable_only(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="WATCHFLOOR_SASL_PASSWORD_FILE"):
        Settings.from_env({"WATCHFLOOR_SASL_PASSWORD_FILE": str(tmp_path / "nope")})


def test_plaintext_by_default_and_bad_settings_refused() -> None:
    assert client_kwargs(Settings()) == {"security_protocol": "PLAINTEXT"}
    assert broker_credentials(Settings()) is None
    with pytest.raises(SecurityConfigError) as err:
        client_kwargs(Settings(security_protocol="SASL_PLAINTEXT", sasl_password=SECRET))
    assert SECRET not in str(err.value)
    with pytest.raises(SecurityConfigError):
        client_kwargs(Settings(security_protocol="TLS"))
    kw = client_kwargs(Settings(sasl_username="u", sasl_password="p", security_protocol="SSL"))
    assert kw["security_protocol"] == "SASL_SSL" and kw["ssl_context"] is not None


def test_each_agency_reads_only_its_own_topic(config: Config) -> None:
    grants = derive_grants(config, "watchfloor")
    alert_topics = {a.topic for a in config.agencies}
    for agency in config.agencies:
        reads = {
            g.resource_name
            for g in grants[f"agency-{agency.name}"]
            if g.operation == "READ" and g.resource_type == "TOPIC"
        }
        assert reads == {agency.topic}
    internal = {
        t.name for t in config.topics if t.role in ("detections", "checkpoints", "published")
    }
    for principal, gs in grants.items():
        topics = {g.resource_name for g in gs if g.resource_type == "TOPIC"}
        if principal != "watchfloor-worker":
            assert not topics & internal, principal
            assert not any(g.pattern == PREFIXED and g.resource_type == "TOPIC" for g in gs)
        if principal.startswith("sensor-"):
            assert {g.operation for g in gs} == {"WRITE"} and len(topics) == 1
        if principal != "watchfloor-worker" and not principal.startswith("agency-"):
            assert not topics & alert_topics, principal


def test_credentials_file(tmp_path: Path) -> None:
    f = tmp_path / "creds"
    f.write_text(f"# comment\n\nagency-cert:{SECRET}:with:colons\n")
    assert read_credentials(f, {"agency-cert", "oversight"}, env={}) == {
        "agency-cert": f"{SECRET}:with:colons"
    }
    env = {env_var("oversight"): "pw", env_var("agency-cert"): "env-wins"}
    assert env_var("agency-cert") == "WATCHFLOOR_SCRAM_PASSWORD_AGENCY_CERT"
    assert read_credentials(f, {"agency-cert", "oversight"}, env=env) == {
        "agency-cert": "env-wins",
        "oversight": "pw",
    }
    f.write_text(f"agency-xyz:{SECRET}\n")
    with pytest.raises(ValueError) as err:
        read_credentials(f, {"agency-cert"}, env={})
    assert SECRET not in str(err.value) and ":1:" in str(err.value)


def test_a_ca_file_means_tls_and_is_trusted(tmp_path: Path) -> None:
    from watchfloor.ops.local_tls import ensure_tls

    ca = ensure_tls(tmp_path / "tls").ca_cert
    kw = client_kwargs(Settings(ssl_cafile=str(ca)))
    assert kw["security_protocol"] == "SSL"  # credentials or not, never in the clear
    kw = client_kwargs(Settings(sasl_username="u", sasl_password="p", ssl_cafile=str(ca)))
    assert kw["security_protocol"] == "SASL_SSL"
    ctx = kw["ssl_context"]
    assert ctx.check_hostname and any(
        "watchfloor local CA" in str(c.get("subject")) for c in ctx.get_ca_certs()
    )
    creds = broker_credentials(Settings(sasl_username="u", sasl_password="p", ssl_cafile=str(ca)))
    assert creds.protocol.name == "SASL_SSL" and creds.ssl_context is not None
    with pytest.raises(SecurityConfigError, match="WATCHFLOOR_SSL_CAFILE"):
        client_kwargs(Settings(ssl_cafile=str(tmp_path / "missing.pem")))
    env = Settings.from_env({"WATCHFLOOR_SSL_CAFILE": str(ca)})
    assert env.ssl_cafile == str(ca)
