"""``watchfloor acl apply``: principals, ACLs and SCRAM users derived from ``topics.yaml``.

Principals (``User:<name>``; docs/security.md has the table and the reasons):

* ``agency-<agency>`` reads only its own ``alerts.<agency>`` topic (and consumer groups
  named ``agency-<agency>…``) and writes only its own ``feedback.<agency>`` topic, so the
  broker vouches for who wrote a verdict;
* ``sensor-<domain>`` writes only ``events.<domain>``;
* ``watchfloor-worker`` (the Faust app ``<app_id>``) reads its input topics, writes its
  output topics, owns the ``<app_id>-`` topic prefix (internal and changelog topics) and
  the ``<app_id>`` consumer group;
* ``oversight`` reads ``audit.sharing`` and ``audit.anchors`` (and consumer groups named
  ``oversight…``); the worker may only append to ``audit.anchors`` (WRITE, no READ, no
  DELETE), so it can neither read nor remove the signed chain heads it published.

The broker denies everything else (``allow.everyone.if.no.acl.found=false``).
``apply`` is idempotent: it adds missing ACLs, removes ACLs of watchfloor-managed
principals that the topology no longer grants, creates or updates SCRAM users whose
password is given, and reports each change. Passwords are never printed.

Credentials file (``--credentials FILE`` or ``$WATCHFLOOR_ACL_CREDENTIALS_FILE``): one
``principal:password`` per line, ``#`` comments and blank lines ignored; the password is
everything after the first colon. A password can also come from the environment as
``WATCHFLOOR_SCRAM_PASSWORD_<PRINCIPAL>`` with the principal upper-cased and ``-`` as ``_``
(``WATCHFLOOR_SCRAM_PASSWORD_AGENCY_BORDER``); the environment wins over the file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from watchfloor.config import Config

WORKER = "watchfloor-worker"
OVERSIGHT = "oversight"
AGENCY_PREFIX = "agency-"
SENSOR_PREFIX = "sensor-"
MECHANISM = "SCRAM-SHA-512"

# Resource type, pattern type and operation names as kafka-python's enums spell them.
TOPIC, GROUP, CLUSTER = "TOPIC", "GROUP", "CLUSTER"
LITERAL, PREFIXED = "LITERAL", "PREFIXED"


@dataclass(frozen=True, order=True)
class Grant:
    """One ALLOW ACL: ``principal`` may ``operation`` on a resource, from any host."""

    principal: str  # bare name, without "User:"
    resource_type: str
    resource_name: str
    pattern: str
    operation: str

    def __str__(self) -> str:
        pat = "*" if self.pattern == PREFIXED else ""
        return (
            f"User:{self.principal} {self.operation} "
            f"{self.resource_type.lower()}:{self.resource_name}{pat}"
        )


def managed(principal: str) -> bool:
    """Whether ``apply`` owns this principal's ACLs (and may remove stale ones)."""
    return principal in (WORKER, OVERSIGHT) or principal.startswith((AGENCY_PREFIX, SENSOR_PREFIX))


def derive_grants(config: Config, app_id: str) -> dict[str, set[Grant]]:
    """Principal -> the ACLs it needs, from the topology.

    >>> from watchfloor.config import load_config
    >>> g = derive_grants(load_config("topics.yaml"), "watchfloor")
    >>> for grant in sorted(g["agency-border"]): print(grant)
    User:agency-border READ group:agency-border*
    User:agency-border READ topic:alerts.border
    User:agency-border WRITE topic:feedback.border
    >>> [str(grant) for grant in g["sensor-network"]]
    ['User:sensor-network WRITE topic:events.network']
    """
    out: dict[str, set[Grant]] = {}

    def allow(who: str, rtype: str, name: str, op: str, pattern: str = LITERAL) -> None:
        out.setdefault(who, set()).add(Grant(who, rtype, name, pattern, op))

    feedback = config.feedback_topics
    for agency in config.agencies:
        who = f"{AGENCY_PREFIX}{agency.name}"
        allow(who, TOPIC, agency.topic, "READ")
        allow(who, GROUP, who, "READ", PREFIXED)
        allow(who, TOPIC, feedback[agency.name].name, "WRITE")
    for domain, spec in config.input_topics.items():
        allow(f"{SENSOR_PREFIX}{domain}", TOPIC, spec.name, "WRITE")
    allow(OVERSIGHT, TOPIC, config.topic("audit").name, "READ")
    for t in config.topics:
        if t.role == "anchors":
            allow(OVERSIGHT, TOPIC, t.name, "READ")
            allow(WORKER, TOPIC, t.name, "WRITE")  # append-only: no READ, no DELETE
    allow(OVERSIGHT, GROUP, OVERSIGHT, "READ", PREFIXED)

    # The Faust worker: what it consumes, what it produces, its own prefix and group.
    reads = {
        t.name
        for t in config.topics
        if t.role in ("input", "detections", "feedback", "checkpoints", "published", "rekeyed")
    }
    writes = {
        t.name
        for t in config.topics
        if t.role
        in ("deadletter", "detections", "alerts", "audit", "checkpoints", "published", "rekeyed")
    }
    for name in reads:
        allow(WORKER, TOPIC, name, "READ")
    for name in writes:
        allow(WORKER, TOPIC, name, "WRITE")
    # (READ and WRITE imply DESCRIBE.)
    for op in ("READ", "WRITE", "CREATE", "DESCRIBE"):
        allow(WORKER, TOPIC, f"{app_id}-", op, PREFIXED)
    allow(WORKER, GROUP, app_id, "READ")
    return out


# -- credentials -------------------------------------------------------------------
def env_var(principal: str) -> str:
    return "WATCHFLOOR_SCRAM_PASSWORD_" + principal.upper().replace("-", "_").replace(".", "_")


def read_credentials(
    path: Path | None, principals: set[str], env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Principal -> password, from the credentials file and the environment. Errors name
    the file and line, never the password."""
    env = os.environ if env is None else env
    found: dict[str, str] = {}
    if path is not None:
        for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, sep, password = line.partition(":")
            name = name.strip()
            if not sep or not name or not password:
                raise ValueError(f"{path}:{n}: expected 'principal:password'")
            if name not in principals:
                known = ", ".join(sorted(principals))
                raise ValueError(f"{path}:{n}: unknown principal {name!r}; known: {known}")
            found[name] = password
    for name in principals:
        if env.get(env_var(name)):
            found[name] = env[env_var(name)]
    return found


# -- apply -------------------------------------------------------------------------
@dataclass
class AclReport:
    added: list[Grant] = field(default_factory=list)
    removed: list[Grant] = field(default_factory=list)
    unchanged: int = 0
    users_created: list[str] = field(default_factory=list)
    users_updated: list[str] = field(default_factory=list)
    users_unchanged: list[str] = field(default_factory=list)
    users_without_password: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed or self.users_created or self.users_updated)

    def lines(self) -> list[str]:
        out = [f"added    {g}" for g in self.added]
        out += [f"removed  {g}" for g in self.removed]
        out += [f"user     {u}: created ({MECHANISM})" for u in self.users_created]
        out += [f"user     {u}: password updated" for u in self.users_updated]
        out += [
            f"user     {u}: no password given, SCRAM credentials not set"
            for u in self.users_without_password
        ]
        if not self.changed:
            out.append(
                f"nothing changed: {self.unchanged} ACLs and "
                f"{len(self.users_unchanged)} users already as topics.yaml says"
            )
        return out


def _kafka_types() -> Any:
    import kafka.admin as ka

    return ka


def _to_acl(g: Grant) -> Any:
    ka = _kafka_types()
    return ka.ACL(
        principal=f"User:{g.principal}",
        host="*",
        operation=ka.ACLOperation[g.operation],
        permission_type=ka.ACLPermissionType.ALLOW,
        resource_pattern=ka.ResourcePattern(
            ka.ResourceType[g.resource_type],
            g.resource_name,
            ka.ACLResourcePatternType[g.pattern],
        ),
    )


def _from_acl(acl: Any) -> Grant | None:
    ka = _kafka_types()
    if acl.permission_type != ka.ACLPermissionType.ALLOW or acl.host != "*":
        return None
    kind, _, name = acl.principal.partition(":")
    if kind != "User":
        return None
    rp = acl.resource_pattern
    return Grant(
        name, rp.resource_type.name, rp.resource_name, rp.pattern_type.name, acl.operation.name
    )


def current_grants(admin: Any) -> tuple[set[Grant], list[Any]]:
    """The broker's ALLOW ACLs of managed principals, and the raw ACL objects of managed
    principals that this module cannot express (DENY, host-restricted), left alone."""
    ka = _kafka_types()
    acls, _err = admin.describe_acls(
        ka.ACLFilter(
            principal=None,
            host=None,
            operation=ka.ACLOperation.ANY,
            permission_type=ka.ACLPermissionType.ANY,
            resource_pattern=ka.ResourcePatternFilter(
                ka.ResourceType.ANY, None, ka.ACLResourcePatternType.ANY
            ),
        )
    )
    have: set[Grant] = set()
    other: list[Any] = []
    for acl in acls:
        g = _from_acl(acl)
        if g is not None and managed(g.principal):
            have.add(g)
        elif managed(acl.principal.partition(":")[2]):
            other.append(acl)
    return have, other


def _password_works(bootstrap: str, user: str, password: str, base: dict[str, Any]) -> bool:
    from watchfloor.ops.kafka_local import broker_answers

    kwargs = {
        **{k: v for k, v in base.items() if k == "ssl_context"},
        "security_protocol": base["security_protocol"],
        "sasl_mechanism": MECHANISM,
        "sasl_plain_username": user,
        "sasl_plain_password": password,
    }
    quiet = logging.getLogger("aiokafka")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        return broker_answers(bootstrap, timeout=10.0, **kwargs)
    finally:
        quiet.setLevel(level)


def apply_acls(
    config: Config,
    bootstrap: str,
    app_id: str,
    security: dict[str, Any],
    passwords: Mapping[str, str],
    dry_run: bool = False,
) -> AclReport:
    """Make the broker's ACLs and SCRAM users match the topology (see module doc).

    ``security``: the admin's client kwargs (``watchfloor.kafka.security.client_kwargs``);
    the admin must be a super user (or hold ALTER on the cluster)."""
    from kafka.admin import UserScramCredentialUpsertion

    from watchfloor.kafka.clients import Connection, kafka_python_admin

    want_by_principal = derive_grants(config, app_id)
    want = set().union(*want_by_principal.values())
    report = AclReport()
    admin = kafka_python_admin(Connection(bootstrap, security), client_id="watchfloor-acl")
    try:
        have, _other = current_grants(admin)
        report.added = sorted(want - have)
        report.removed = sorted(have - want)
        report.unchanged = len(want & have)
        if report.added and not dry_run:
            result = admin.create_acls([_to_acl(g) for g in report.added])
            if result["failed"]:
                raise RuntimeError(
                    f"could not create {len(result['failed'])} ACLs: "
                    + "; ".join(sorted({repr(e) for e in result["failed"]}))
                )
        if report.removed and not dry_run:
            for _filter, _matched, err in admin.delete_acls([_to_acl(g) for g in report.removed]):
                if err.errno != 0:
                    raise RuntimeError(f"could not delete ACLs: {err.__name__}")

        principals = set(want_by_principal)
        described = admin.describe_user_scram_credentials()
        for user in sorted(principals):
            password = passwords.get(user)
            exists = any(
                ci["mechanism"].name.replace("_", "-") == MECHANISM
                for ci in described.get(user, {}).get("credential_infos", [])
            )
            if not password:
                (report.users_unchanged if exists else report.users_without_password).append(user)
                continue
            if exists and _password_works(bootstrap, user, password, security):
                report.users_unchanged.append(user)
                continue
            (report.users_updated if exists else report.users_created).append(user)
            if dry_run:
                continue
            errors = admin.alter_user_scram_credentials(
                [UserScramCredentialUpsertion(user, MECHANISM, password)]
            )
            if errors.get(user):
                raise RuntimeError(f"could not set SCRAM credentials of {user}: {errors[user]}")
    finally:
        admin.close()
    return report
