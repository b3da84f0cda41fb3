"""A local single-node Apache Kafka (KRaft, combined broker+controller), no Docker.

The jars come from Maven Central through Maven (``org.apache.kafka:kafka_2.13`` and its
runtime dependencies) and are cached outside the repository. ``start`` formats the
storage once, launches the JVM detached, and returns only when the broker answers;
``stop`` and ``status`` act only on the broker started with the same port and data dir
(the pid file lives in the data dir and the process's command line is checked).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watchfloor.ops.local_tls import BROKER_PRINCIPAL, TlsFiles, ensure_tls

KAFKA_VERSION = "3.9.2"
SCALA_VERSION = "2.13"
SLF4J_BINDING = ("org.slf4j", "slf4j-reload4j", "1.7.36")

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>watchfloor</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>{kafka}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_{scala}</artifactId>
      <version>{kafka}</version>
    </dependency>
    <dependency>
      <groupId>{sg}</groupId><artifactId>{sa}</artifactId><version>{sv}</version>
    </dependency>
  </dependencies>
</project>
"""

_LOG4J = """log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File={log}
log4j.appender.file.MaxFileSize=20MB
log4j.appender.file.MaxBackupIndex=2
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.org.apache.kafka.controller=WARN
"""


class KafkaLauncherError(RuntimeError):
    """The local broker could not be prepared, started or stopped."""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "watchfloor" / f"kafka-{SCALA_VERSION}-{KAFKA_VERSION}"


def ensure_jars(out=sys.stderr) -> Path:
    """Resolve the broker's jars from Maven Central once; return the libs directory."""
    root = cache_dir()
    libs = root / "libs"
    marker = root / "complete"
    if marker.exists():
        return libs
    java = shutil.which("java")
    mvn = shutil.which("mvn")
    if java is None:
        raise KafkaLauncherError(
            "Java >= 17 is needed to run the local Kafka broker ('java' not found)"
        )
    if mvn is None:
        raise KafkaLauncherError("Maven is needed once to fetch the Kafka jars ('mvn' not found)")
    root.mkdir(parents=True, exist_ok=True)
    sg, sa, sv = SLF4J_BINDING
    (root / "pom.xml").write_text(
        _POM.format(kafka=KAFKA_VERSION, scala=SCALA_VERSION, sg=sg, sa=sa, sv=sv)
    )
    print(f"fetching Kafka {KAFKA_VERSION} jars from Maven Central into {libs} ...", file=out)
    tmp = root / "libs.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    proc = subprocess.run(
        [
            mvn,
            "-q",
            "-B",
            "-f",
            str(root / "pom.xml"),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={tmp}",
        ],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise KafkaLauncherError(
            f"mvn failed to fetch Kafka jars (exit {proc.returncode}):\n"
            + (proc.stdout + proc.stderr)[-2000:]
        )
    shutil.rmtree(libs, ignore_errors=True)
    tmp.rename(libs)
    marker.write_text(KAFKA_VERSION + "\n")
    return libs


def default_data_dir(port: int) -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "watchfloor" / f"kafka-{port}"


def _where_file(port: int) -> Path:
    """Records the data dir of the broker last started on ``port``, so that `kafka
    status` and `kafka stop` without --data-dir find a broker started with one."""
    return default_data_dir(port).with_name(f"kafka-{port}.where")


@dataclass(frozen=True)
class LocalKafka:
    """One local broker, identified by its client port and data directory."""

    port: int = 9092
    data_dir: Path | None = None
    controller_port: int | None = None
    heap: str = "512m"
    #: SASL/SCRAM-SHA-512 + ACLs (deny by default) on the client listener; see
    #: docs/security.md. A data dir formatted secure always starts secure.
    secure: bool = False
    admin_user: str = "admin"
    #: With ``secure``: TLS on the client listener too (SASL_SSL; clients trust the local
    #: CA, ``tls_files.ca_cert``). The controller listener of a secure broker always
    #: requires mutual TLS. A data dir started with TLS always starts with TLS.
    tls: bool = False

    @property
    def dir(self) -> Path:
        if self.data_dir:
            return Path(self.data_dir)
        try:
            where = Path(_where_file(self.port).read_text(encoding="utf-8").strip())
        except OSError:
            return default_data_dir(self.port)
        return where if where.is_dir() else default_data_dir(self.port)

    @property
    def cport(self) -> int:
        return self.controller_port or self.port + 1

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.dir / "kafka.pid"

    @property
    def log_file(self) -> Path:
        return self.dir / "logs" / "server.log"

    # -- security ----------------------------------------------------------------
    @property
    def admin_password_file(self) -> Path:
        return self.dir / "admin.password"

    @property
    def is_secure(self) -> bool:
        return self.secure or self.admin_password_file.exists() or self.is_tls

    @property
    def tls_files(self) -> TlsFiles:
        return TlsFiles(self.dir / "tls")

    @property
    def is_tls(self) -> bool:
        return self.tls or (self.dir / "tls-client").exists()

    def admin_password(self) -> str:
        """The super user's password: kept in ``admin.password`` (mode 0600) in the data
        dir; taken from ``WATCHFLOOR_KAFKA_ADMIN_PASSWORD[_FILE]`` when the dir is first
        formatted, generated otherwise."""
        f = self.admin_password_file
        if f.exists():
            return f.read_text().strip()
        pw = os.environ.get("WATCHFLOOR_KAFKA_ADMIN_PASSWORD", "")
        if not pw and os.environ.get("WATCHFLOOR_KAFKA_ADMIN_PASSWORD_FILE"):
            pw = Path(os.environ["WATCHFLOOR_KAFKA_ADMIN_PASSWORD_FILE"]).read_text().strip()
        if not pw:
            pw = secrets.token_urlsafe(24)
        if len(pw) < 12 or any(c in pw for c in '"\\,[]=\n '):
            raise KafkaLauncherError(
                "the broker admin password must be at least 12 characters without "
                'quotes, backslashes, commas, brackets, "=" or spaces'
            )
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(f, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(pw + "\n")
        return pw

    def client_kwargs(self) -> dict[str, Any]:
        """aiokafka kwargs for the super user (PLAINTEXT when not secure)."""
        if not self.is_secure:
            return {}
        kwargs: dict[str, Any] = {
            "security_protocol": "SASL_SSL" if self.is_tls else "SASL_PLAINTEXT",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": self.admin_user,
            "sasl_plain_password": self.admin_password(),
        }
        if self.is_tls:
            kwargs["ssl_context"] = ssl.create_default_context(cafile=self.tls_files.ca_cert)
        return kwargs

    # -- files -------------------------------------------------------------------
    def _write_config(self) -> Path:
        d = self.dir
        (d / "logs").mkdir(parents=True, exist_ok=True)
        (d / "data").mkdir(parents=True, exist_ok=True)
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.cport}",
            "controller.listener.names": "CONTROLLER",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.cport}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(d / "data"),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # Topics come from topics.yaml (`watchfloor topics apply`); Faust creates its
            # own internal topics explicitly. Auto-create would let a metadata probe or
            # a typo create a topic with the wrong partitions and retention.
            "auto.create.topics.enable": "false",
            "log.retention.check.interval.ms": "60000",
            "log.segment.bytes": str(64 * 1024 * 1024),
        }
        if self.is_secure:
            d.chmod(0o700)
            pw = self.admin_password()
            tls = ensure_tls(d / "tls", f"port {self.port}")
            if self.is_tls:
                (d / "tls-client").write_text("SASL_SSL on the client listener\n")
            client = "SASL_SSL" if self.is_tls else "SASL_PLAINTEXT"
            props.update(
                {
                    "listeners": f"CLIENT://127.0.0.1:{self.port},"
                    f"CONTROLLER://127.0.0.1:{self.cport}",
                    "advertised.listeners": f"CLIENT://127.0.0.1:{self.port}",
                    # SCRAM is not supported on the KRaft controller listener: it requires
                    # mutual TLS instead. Its principal is the broker certificate's DN, a
                    # super user so the controller authorizes the broker's registration;
                    # nobody else gets in (it used to be PLAINTEXT, User:ANONYMOUS a super
                    # user: any local process could create ACLs there).
                    "listener.security.protocol.map": f"CLIENT:{client},CONTROLLER:SSL",
                    "listener.name.controller.ssl.client.auth": "required",
                    "ssl.keystore.type": "PEM",
                    "ssl.keystore.location": str(tls.keystore),
                    "ssl.truststore.type": "PEM",
                    "ssl.truststore.location": str(tls.ca_cert),
                    "inter.broker.listener.name": "CLIENT",
                    "sasl.enabled.mechanisms": "SCRAM-SHA-512",
                    "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
                    "listener.name.client.scram-sha-512.sasl.jaas.config": (
                        "org.apache.kafka.common.security.scram.ScramLoginModule required "
                        f'username="{self.admin_user}" password="{pw}";'
                    ),
                    "authorizer.class.name": (
                        "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
                    ),
                    "allow.everyone.if.no.acl.found": "false",
                    "super.users": f"User:{self.admin_user};{BROKER_PRINCIPAL}",
                }
            )
        conf = d / "server.properties"
        # The JAAS line holds the admin password: owner-only before anything is written.
        conf.touch(mode=0o600, exist_ok=True)
        conf.chmod(0o600)
        conf.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        (d / "log4j.properties").write_text(_LOG4J.format(log=self.log_file))
        return conf

    def _java_cmd(self, libs: Path, main: str, *args: str) -> list[str]:
        return [
            shutil.which("java") or "java",
            f"-Xmx{self.heap}",
            "-Xms128m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{self.dir / 'log4j.properties'}",
            f"-Dkafka.logs.dir={self.dir / 'logs'}",
            "-cp",
            f"{libs}/*",
            main,
            *args,
        ]

    def _format(self, libs: Path, conf: Path) -> None:
        if (self.dir / "data" / "meta.properties").exists():
            if self.secure and not (self.dir / "scram-formatted").exists():
                raise KafkaLauncherError(
                    f"{self.dir} was formatted without --secure (no admin user); "
                    "use a new --data-dir for a secured broker"
                )
            return
        uuid = subprocess.run(
            self._java_cmd(libs, "kafka.tools.StorageTool", "random-uuid"),
            capture_output=True,
            text=True,
            check=False,
        )
        cluster_id = uuid.stdout.strip().splitlines()[-1] if uuid.returncode == 0 else ""
        if not cluster_id:
            raise KafkaLauncherError(f"StorageTool random-uuid failed: {uuid.stderr[-1000:]}")
        scram: list[str] = []
        if self.is_secure:
            # The super user exists from the start (no one could create it later). The
            # password is on this short-lived command line: see docs/security.md.
            pw = self.admin_password()
            scram = ["--add-scram", f"SCRAM-SHA-512=[name={self.admin_user},password={pw}]"]
        fmt = subprocess.run(
            self._java_cmd(
                libs,
                "kafka.tools.StorageTool",
                "format",
                "-t",
                cluster_id,
                "-c",
                str(conf),
                "-g",
                *scram,
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        if fmt.returncode != 0:
            out = fmt.stdout + fmt.stderr
            if scram:
                out = out.replace(self.admin_password(), "***")
            raise KafkaLauncherError(f"StorageTool format failed: {out[-1000:]}")
        if scram:
            (self.dir / "scram-formatted").write_text(self.admin_user + "\n")

    # -- process -----------------------------------------------------------------
    def pid(self) -> int | None:
        """The pid of the broker started for this data dir, if it is still that process."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            return None
        # A recycled pid must not be mistaken for our broker.
        if "kafka.Kafka" not in cmdline or str(self.dir) not in cmdline:
            return None
        return pid

    def answering(self, timeout: float = 5.0) -> bool:
        return broker_answers(self.bootstrap, timeout, **self.client_kwargs())

    def start(self, timeout: float = 90.0, out=sys.stderr) -> str:
        """Start (idempotent); return a one-line status. Raises KafkaLauncherError."""
        if self.pid() is not None:
            if self.answering(timeout=timeout):
                return (
                    f"Kafka {KAFKA_VERSION} already running on {self.bootstrap} (pid {self.pid()})"
                )
            raise KafkaLauncherError(
                f"a broker process exists (pid {self.pid()}) but does not answer"
            )
        if _port_in_use(self.port):
            raise KafkaLauncherError(
                f"port {self.port} is in use by another process; choose --port or stop it"
            )
        libs = ensure_jars(out)
        conf = self._write_config()
        self._format(libs, conf)
        console = open(self.dir / "logs" / "console.log", "ab")
        proc = subprocess.Popen(
            self._java_cmd(libs, "kafka.Kafka", str(conf)),
            stdout=console,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # survives the CLI; Ctrl-C in a terminal does not reach it
        )
        console.close()
        self.pid_file.write_text(f"{proc.pid}\n")
        try:
            _where_file(self.port).parent.mkdir(parents=True, exist_ok=True)
            _where_file(self.port).write_text(f"{self.dir.resolve()}\n", encoding="utf-8")
        except OSError:
            pass  # only a convenience for `kafka status` without --data-dir
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise KafkaLauncherError(
                    f"broker exited with code {proc.returncode}; last log lines:\n{self._tail()}"
                )
            if self.answering(timeout=2.0):
                return (
                    f"Kafka {KAFKA_VERSION} started on {self.bootstrap} "
                    f"(pid {proc.pid}, data {self.dir}"
                    + (
                        f", SASL/SCRAM-SHA-512{' over TLS' if self.is_tls else ''}, ACLs, "
                        f"admin {self.admin_user!r})"
                        if self.is_secure
                        else ")"
                    )
                )
            time.sleep(0.5)
        self.stop()
        raise KafkaLauncherError(f"broker did not answer within {timeout:.0f}s:\n{self._tail()}")

    def stop(self, timeout: float = 30.0) -> str:
        pid = self.pid()
        if pid is None:
            return f"no broker started from {self.dir} is running"
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.2)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return f"stopped Kafka on {self.bootstrap} (pid {pid})"

    def kill(self) -> None:
        """SIGKILL the broker (fault tests)."""
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.05)

    def state(self) -> dict[str, object]:
        """What `kafka status --json` prints."""
        pid = self.pid()
        ok = pid is not None and self.answering(timeout=3.0)
        return {"running": ok, "pid": pid, "bootstrap": self.bootstrap,
                "data_dir": str(self.dir), "kafka": KAFKA_VERSION}  # fmt: skip

    def status(self) -> tuple[bool, str]:
        pid = self.pid()
        if pid is None:
            return False, f"not running (data dir {self.dir})"
        ok = self.answering(timeout=3.0)
        state = "running" if ok else "process alive but not answering"
        return (
            ok,
            f"{state}: Kafka {KAFKA_VERSION} on {self.bootstrap} (pid {pid}, data {self.dir})",
        )

    def _tail(self, n: int = 20) -> str:
        lines: list[str] = []
        for f in (self.dir / "logs" / "console.log", self.log_file):
            try:
                lines += f.read_text(errors="replace").splitlines()[-n:]
            except OSError:
                pass
        return "\n".join(lines[-n:])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child still "exists"; read its state.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (OSError, IndexError):
        return False


def _port_in_use(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def broker_answers(bootstrap: str, timeout: float = 5.0, **security: Any) -> bool:
    """True when a Kafka broker at ``bootstrap`` answers a metadata request (``security``:
    aiokafka authentication kwargs, e.g. from ``watchfloor.kafka.security``)."""

    async def probe() -> bool:
        from watchfloor.kafka import clients

        admin = clients.admin(
            clients.Connection(bootstrap, security), request_timeout_ms=int(timeout * 1000)
        )
        try:
            await asyncio.wait_for(admin.start(), timeout)
            await asyncio.wait_for(admin.list_topics(), timeout)
            return True
        except Exception:
            return False
        finally:
            try:
                await admin.close()
            except Exception:
                pass

    host, _, port = bootstrap.split(",")[0].rpartition(":")
    with socket.socket() as s:
        s.settimeout(min(timeout, 1.0))
        if s.connect_ex((host or "127.0.0.1", int(port))) != 0:
            return False
    return asyncio.run(probe())
