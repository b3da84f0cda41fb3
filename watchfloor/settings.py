"""One typed, frozen settings object, overridable from ``WATCHFLOOR_*`` variables."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


def _state_home() -> Path:
    return Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "watchfloor"


#: The topology shipped with the package: used when neither --topics-file,
#: WATCHFLOOR_TOPICS_FILE nor a ./topics.yaml names one.
PACKAGED_TOPICS = Path(__file__).resolve().parent / "data" / "topics.yaml"


class SettingsError(ValueError):
    """A ``WATCHFLOOR_*`` variable is invalid; the message names it and the fix."""


def default_topics_file(cwd: Path | None = None) -> Path:
    """``./topics.yaml`` if there is one, else the packaged default."""
    local = (cwd or Path()) / "topics.yaml"
    return local if local.exists() else PACKAGED_TOPICS


#: Fields that may also be given as a file name in ``WATCHFLOOR_<FIELD>_FILE`` (secrets).
_FILE_FIELDS = frozenset({"sasl_username", "sasl_password", "master_key", "pseudonym_key"})


@dataclass(frozen=True)
class Settings:
    """Runtime settings. Every field can be set with ``WATCHFLOOR_<FIELD>``.

    >>> s = Settings.from_env({"WATCHFLOOR_METRICS_PORT": "9999"})
    >>> s.metrics_port
    9999
    >>> "s3cret" in repr(Settings(pseudonym_key="s3cret"))
    False
    """

    broker: str = "kafka://127.0.0.1:9092"
    topics_file: Path = Path("topics.yaml")
    app_id: str = "watchfloor"
    metrics_port: int = 9464
    state_dir: Path = field(default_factory=_state_home)
    # Records an agent takes at most per batch (a lane hands over what was fetched, up
    # to this, without waiting for more).
    batch_size: int = 500
    # Seconds between checkpoints of detector and correlation state to Kafka.
    checkpoint_interval: float = 10.0
    # How long the group waits for a silent worker before giving its partitions to
    # another: the floor of takeover time after a crash.
    session_timeout: float = 10.0
    # Where a consumer group with no committed offsets (a new app id) starts reading the
    # input: "earliest" (every retained event, alerts included) or "latest" (new ones).
    start_from: str = "earliest"
    # Secret: the master secret every per-purpose key (pseudonyms, checkpoint signing,
    # audit anchors) is derived from (watchfloor.keys). repr=False keeps it out of logs.
    master_key: str = field(default="", repr=False)
    # The former name of master_key, still accepted when master_key is unset.
    pseudonym_key: str = field(default="", repr=False)
    # Kafka authentication (docs/security.md). A username upgrades PLAINTEXT to
    # SASL_PLAINTEXT. The secret ones also read from WATCHFLOOR_<FIELD>_FILE.
    sasl_username: str = ""
    sasl_password: str = field(default="", repr=False)
    sasl_mechanism: str = "SCRAM-SHA-512"
    security_protocol: str = "PLAINTEXT"
    # PEM file of the CA that signed the brokers' certificates (SSL/SASL_SSL); empty:
    # the system trust store.
    ssl_cafile: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        values: dict[str, object] = {"topics_file": default_topics_file()}
        for f in dataclasses.fields(cls):
            raw = env.get(f"WATCHFLOOR_{f.name.upper()}")
            path = env.get(f"WATCHFLOOR_{f.name.upper()}_FILE")
            if raw is None and path and f.name in _FILE_FIELDS:
                try:
                    raw = Path(path).read_text(encoding="utf-8").strip()
                except OSError as exc:
                    raise SettingsError(
                        f"WATCHFLOOR_{f.name.upper()}_FILE={path}: {exc.strerror}"
                    ) from None
            if raw is None:
                continue
            kind = f.type if isinstance(f.type, str) else f.type.__name__
            try:
                if kind == "int":
                    values[f.name] = int(raw)
                elif kind == "float":
                    values[f.name] = float(raw)
                elif kind == "Path":
                    values[f.name] = Path(raw)
                else:
                    values[f.name] = raw
            except ValueError:
                default = "" if f.default is dataclasses.MISSING else f" (default {f.default})"
                raise SettingsError(
                    f"WATCHFLOOR_{f.name.upper()}={raw!r} is not a valid {kind}{default}"
                ) from None
        if values.get("start_from", "earliest") not in ("earliest", "latest"):
            raise SettingsError(
                f"WATCHFLOOR_START_FROM={values['start_from']!r}: use earliest or latest"
            )
        port = values.get("metrics_port")
        if isinstance(port, int) and not 0 <= port <= 65535:
            raise SettingsError(
                f"WATCHFLOOR_METRICS_PORT={port} is not a TCP port: use 1-65535 (0: any free one)"
            )
        return cls(**values)

    @property
    def bootstrap_servers(self) -> str:
        """The broker URL without Faust's ``kafka://`` scheme, for plain clients."""
        return ";".join(
            part.split("://", 1)[-1] for part in self.broker.replace(",", ";").split(";")
        ).replace(";", ",")
