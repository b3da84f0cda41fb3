"""Every Kafka client of watchfloor comes from ``watchfloor.kafka.clients`` (issue 9.1).

A worker on the secured broker crash-looped on restart because one admin client was built
by hand without the SASL settings. These tests keep it from happening again: no Kafka
client class is instantiated anywhere in ``watchfloor/`` outside ``watchfloor/kafka/``,
and the helpers that take a bare bootstrap string are never handed the worker's bootstrap
without its security kwargs.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from watchfloor.kafka import clients
from watchfloor.kafka.clients import Connection
from watchfloor.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "watchfloor"
CLIENT_CLASSES = {
    "AIOKafkaProducer",
    "AIOKafkaConsumer",
    "AIOKafkaAdminClient",
    "KafkaAdminClient",
    "KafkaProducer",
    "KafkaConsumer",
    "KafkaClient",
}
# Helpers that also take (bootstrap string, security=...): with a Settings' bootstrap
# they must be given its security too.
BOOTSTRAP_HELPERS = {"assigned_consumer", "topic_partitions", "apply_topics", "broker_answers"}


def _name(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def client_constructions(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, class) of every call of a Kafka client class, also through an alias
    (``from aiokafka import AIOKafkaProducer as P``)."""
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            for a in node.names:
                if a.name in CLIENT_CLASSES:
                    aliases[a.asname or a.name] = a.name
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = _name(node.func)
            if name in CLIENT_CLASSES or name in aliases:
                out.append((node.lineno, aliases.get(name, name)))
    return out


def unsecured_bootstrap_calls(tree: ast.AST) -> list[tuple[int, str]]:
    """Helper calls handed ``<x>.bootstrap_servers`` with no ``security`` argument."""
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or _name(node.func) not in BOOTSTRAP_HELPERS:
            continue
        passes_bootstrap = any(
            isinstance(a, ast.Attribute) and a.attr == "bootstrap_servers"
            for a in [*node.args, *(k.value for k in node.keywords)]
        )
        has_security = any(k.arg in ("security", None) for k in node.keywords) or (
            _name(node.func) == "apply_topics" and len(node.args) >= 4
        )
        if passes_bootstrap and not has_security:
            out.append((node.lineno, _name(node.func)))
    return out


def _modules() -> list[Path]:
    return [p for p in PACKAGE.rglob("*.py") if "kafka" not in p.relative_to(PACKAGE).parts[:1]]


def test_no_kafka_client_is_built_outside_watchfloor_kafka() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}: {cls}(...)"
        for path in _modules()
        for line, cls in client_constructions(ast.parse(path.read_text(), str(path)))
    ]
    assert not found, (
        "build Kafka clients with watchfloor.kafka.clients (producer/consumer/admin/"
        "kafka_python_admin), which apply the security settings:\n" + "\n".join(found)
    )


def test_no_bootstrap_is_passed_without_its_security() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}: {name}(...bootstrap_servers...) without security"
        for path in _modules()
        for line, name in unsecured_bootstrap_calls(ast.parse(path.read_text(), str(path)))
    ]
    assert not found, "pass the Settings (or security=client_kwargs(settings)):\n" + "\n".join(
        found
    )


def test_the_scan_finds_what_it_looks_for() -> None:
    # The bug of issue 9.1, as it was written in streams/agents.py.
    bad = ast.parse(
        "from aiokafka.admin import AIOKafkaAdminClient as Admin\n"
        "import kafka.admin\n"
        "a = Admin(bootstrap_servers=s.bootstrap_servers)\n"
        "b = kafka.admin.KafkaAdminClient(bootstrap_servers=x)\n"
        "c = assigned_consumer(self.rt.settings.bootstrap_servers, t, from_beginning=True)\n"
        "d = assigned_consumer(s.bootstrap_servers, t, True, security=kw)\n"
    )
    assert client_constructions(bad) == [(3, "AIOKafkaAdminClient"), (4, "KafkaAdminClient")]
    assert unsecured_bootstrap_calls(bad) == [(5, "assigned_consumer")]


SECURED = Settings(sasl_username="watchfloor-worker", sasl_password="pw-not-real")


async def test_every_constructor_applies_the_security_settings() -> None:
    for make in (clients.producer, clients.consumer, clients.admin):
        client = make(SECURED)
        # aiokafka keeps the security kwargs on its internal network client.
        inner = getattr(client, "_client", None) or client.client
        assert inner._security_protocol == "SASL_PLAINTEXT", make.__name__
        assert inner._sasl_plain_username == "watchfloor-worker", make.__name__
        await (client.close() if make is clients.admin else client.stop())


def test_security_cannot_be_overridden_nor_forgotten() -> None:
    for key in ("security_protocol", "sasl_plain_password", "ssl_context"):
        with pytest.raises(ValueError, match="cannot be overridden"):
            clients.producer(SECURED, **{key: None})
    with pytest.raises(TypeError, match="Settings or a Connection"):
        clients.admin("127.0.0.1:9092")  # a bare bootstrap: how does it authenticate?
    with pytest.raises(TypeError):
        Connection("127.0.0.1:9092")  # type: ignore[call-arg]  # security is required
    assert "pw-not-real" not in repr(Connection.of(SECURED))
