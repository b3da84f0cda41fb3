"""The ``watchfloor`` command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from watchfloor.settings import Settings


def _settings(args: argparse.Namespace) -> Settings:
    """Settings from the environment; ``--topics-file`` wins over WATCHFLOOR_TOPICS_FILE,
    which wins over ./topics.yaml, which wins over the packaged default."""
    s = Settings.from_env()
    if getattr(args, "topics_file", None):
        s = Settings(**{**s.__dict__, "topics_file": Path(args.topics_file)})
    return s


def positive(text: str) -> float:
    """argparse type: a number > 0 (``--rate 0`` would divide by zero later)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _security(args: argparse.Namespace) -> dict:
    """aiokafka authentication kwargs from the settings (docs/security.md)."""
    from watchfloor.kafka.security import client_kwargs

    return client_kwargs(_settings(args))


def _config(args: argparse.Namespace):
    from watchfloor.config import load_config

    return load_config(_settings(args).topics_file)


# -- kafka ---------------------------------------------------------------------
def cmd_kafka(args: argparse.Namespace) -> int:
    from watchfloor.ops.kafka_local import KafkaLauncherError, LocalKafka

    broker = LocalKafka(
        port=args.port,
        data_dir=args.data_dir,
        secure=args.secure,
        tls=args.secure and not args.no_tls,
    )
    try:
        if args.action == "start":
            print(broker.start())
            if broker.is_secure:
                print(
                    f"admin credentials: WATCHFLOOR_SASL_USERNAME={broker.admin_user} "
                    f"WATCHFLOOR_SASL_PASSWORD_FILE={broker.admin_password_file}"
                    + (
                        f" WATCHFLOOR_SSL_CAFILE={broker.tls_files.ca_cert}"
                        if broker.is_tls
                        else ""
                    )
                )
        elif args.action == "stop":
            print(broker.stop())
        elif args.json:
            state = broker.state()
            print(orjson.dumps(state).decode())
            return 0 if state["running"] else 3
        else:
            ok, line = broker.status()
            print(line)
            return 0 if ok else 3
    except KafkaLauncherError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


# -- topics --------------------------------------------------------------------
def cmd_topics(args: argparse.Namespace) -> int:
    from watchfloor.streams.topics import apply_topics

    settings = _settings(args)
    if not args.json:  # (the JSON report names it)
        print(f"topology from {settings.topics_file}", file=sys.stderr, flush=True)
    report = asyncio.run(
        apply_topics(
            _config(args), settings.bootstrap_servers, security=_security(args), check=args.check
        )
    )
    if args.json:
        print(orjson.dumps({"topics_file": str(settings.topics_file), **report.to_dict()}).decode())
    else:
        for line in report.lines():
            print(line)
    # 1: the broker differs from topics.yaml (drift, or --check found topics missing).
    return 0 if report.in_sync else 1


# -- acl -----------------------------------------------------------------------
def cmd_acl(args: argparse.Namespace) -> int:
    import os

    import kafka.errors as kafka_python_errors

    from watchfloor.ops.acls import apply_acls, derive_grants, read_credentials

    settings, cfg = _settings(args), _config(args)
    creds = args.credentials or os.environ.get("WATCHFLOOR_ACL_CREDENTIALS_FILE")
    principals = set(derive_grants(cfg, settings.app_id))
    passwords = read_credentials(Path(creds) if creds else None, principals)
    try:
        report = apply_acls(
            cfg,
            settings.bootstrap_servers,
            settings.app_id,
            _security(args),
            passwords,
            dry_run=args.dry_run,
        )
    except kafka_python_errors.SecurityDisabledError:
        # (The ACL admin API is kafka-python's: its errors are not aiokafka's.)
        print(
            f"error: Kafka: the broker at {settings.bootstrap_servers} has no authorizer, so "
            "it enforces no ACLs; nothing changed. Start it with `watchfloor kafka start "
            "--secure` or set authorizer.class.name (docs/security.md)",
            file=sys.stderr,
        )
        return 3
    except kafka_python_errors.KafkaTimeoutError:
        print(f"error: Kafka: cannot reach the broker at {settings.bootstrap_servers}; is it "
              "running? (`watchfloor kafka status`)", file=sys.stderr)  # fmt: skip
        return 3
    except kafka_python_errors.KafkaError as exc:  # refused: authentication, authorization
        from watchfloor.core.sanitize import escape_line

        print(f"error: Kafka: {type(exc).__name__}: {escape_line(exc)}", file=sys.stderr)
        return 3
    for line in report.lines():
        print(("(dry run) " if args.dry_run else "") + line)
    return 0


# -- worker --------------------------------------------------------------------
def cmd_worker(args: argparse.Namespace) -> int:
    from faust.worker import Worker
    from prometheus_client import start_http_server

    from watchfloor.kafka.clients import wait_for_broker
    from watchfloor.streams.app import create_app
    from watchfloor.streams.runtime import Runtime

    settings = _settings(args)
    if args.start_from:
        settings = Settings(**{**settings.__dict__, "start_from": args.start_from})
    print(f"topology from {settings.topics_file}", flush=True)
    rt = Runtime.build(settings)

    port = rt.settings.metrics_port
    try:
        server, _thread = start_http_server(port, registry=rt.metrics.registry)
    except OSError as exc:
        print(
            f"error: metrics port {port}: {exc.strerror}; set WATCHFLOOR_METRICS_PORT to a "
            "free port",
            file=sys.stderr,
        )
        return 2
    url = f"http://127.0.0.1:{server.server_port}/metrics"
    print(f"metrics at {url}", flush=True)

    next_line = [0.0]

    def waiting(seconds: float) -> None:
        # One line now, then one every 30 s: enough to see it is alive and why it waits.
        if seconds >= next_line[0]:
            next_line[0] = seconds + 30.0
            print(
                f"waiting for Kafka at {settings.bootstrap_servers} ({seconds:.0f} s so far; "
                "retrying every 2 s; WATCHFLOOR_BROKER names it)",
                file=sys.stderr,
                flush=True,
            )

    # On a loop of its own, never made current: asyncio.run would leave the thread with
    # no current loop, and Faust's worker asks for it.
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(wait_for_broker(settings, waiting))  # aiokafka muted
        history = loop.run_until_complete(_history(rt))
    finally:
        loop.close()
    if history is not None:
        print(history, flush=True)
    # From here the worker's Kafka clients log at the worker's --loglevel (their errors
    # matter in a long-running process). Left unset, the logger was enabled at DEBUG under
    # Faust's set-up, and the producer's per-message debug line cost ~5 % of the worker's
    # CPU (py-spy, issue 12).
    level = logging.getLevelName(args.loglevel.upper())
    logging.getLogger("aiokafka").setLevel(level if isinstance(level, int) else logging.WARNING)

    def ready(partitions: int) -> None:
        print(f"ready: {partitions} partitions assigned, metrics at {url}", flush=True)

    app = create_app(rt, on_ready=ready)
    worker = Worker(app, loglevel=args.loglevel, quiet=True, redirect_stdouts=False)
    # Faust's start-up spinner draws with cursor escape codes, into a log file too, and
    # at the default level puts the root logger at DEBUG to spin on every record. The
    # ready line above says what it would.
    worker.spinner = None
    try:
        worker.execute_from_commandline()
    finally:
        server.shutdown()
    return 0


async def _history(rt: Any) -> str | None:
    """For a consumer group that never committed (a new app id): how much retained input
    it is about to replay, or skip. A new app id re-delivers the alerts of every retained
    event, which an operator should hear about before it happens."""
    from aiokafka.errors import CoordinatorNotAvailableError, KafkaError

    from watchfloor.kafka.clients import committed_offsets, retained_records

    s = rt.settings
    inputs = [t.name for t in rt.config.input_topics.values()]
    try:
        committed = await committed_offsets(s, s.app_id)
    except CoordinatorNotAvailableError:
        committed = {}  # a broker with no group yet (__consumer_offsets not created)
    except KafkaError:
        return None  # informational only: never a reason not to start
    if any(topic in inputs for topic, _ in committed):
        return None
    try:
        n = await retained_records(s, inputs)
    except KafkaError:
        return None
    if s.start_from == "latest":
        return (f"consumer group {s.app_id!r} is new: skipping the {n:,} retained input "
                "events (--from latest); it scores events from now on")  # fmt: skip
    return (f"consumer group {s.app_id!r} is new: it will score all {n:,} retained input "
            "events and deliver their alerts (--from latest to skip them)")  # fmt: skip


# -- simulate ------------------------------------------------------------------
def cmd_simulate(args: argparse.Namespace) -> int:
    from aiokafka.errors import UnknownTopicOrPartitionError

    from watchfloor.ops.progress import Progress
    from watchfloor.simulation import publish

    settings = _settings(args)
    # The input topics of the topology in use (a renamed events.network is published to).
    topics = {domain: t.name for domain, t in _config(args).input_topics.items()}
    # Checked first: a producer sending to a missing topic waits 40 s for it, then fails.
    missing = asyncio.run(_missing_topics(settings, sorted(topics.values())))
    if missing:
        print(_no_input_topic(settings, missing), file=sys.stderr)
        return 2
    progress = Progress("sent", "events", quiet=args.quiet)
    try:
        counts = asyncio.run(
            publish(
                settings.bootstrap_servers,
                rate=args.rate,
                duration=args.duration,
                seed=args.seed,
                days=args.days,
                campaigns=args.campaigns,
                topics=topics,
                security=_security(args),
                progress=progress,
            )
        )
    except UnknownTopicOrPartitionError:  # deleted meanwhile
        progress.close()
        print(_no_input_topic(settings, sorted(topics.values())), file=sys.stderr)
        return 2
    finally:
        progress.close()
    print(orjson.dumps(counts, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode())
    return 0


async def _missing_topics(settings: Settings, names: list[str]) -> list[str]:
    from watchfloor.kafka.clients import topic_partitions

    return [name for name in names if not await topic_partitions(settings, name)]


def _no_input_topic(settings: Settings, names: list[str]) -> str:
    return (
        f"error: the broker at {settings.bootstrap_servers} has no topic {', '.join(names)} "
        f"(input of {settings.topics_file}); run `watchfloor topics apply`"
    )


# -- replay --------------------------------------------------------------------
def cmd_replay(args: argparse.Namespace) -> int:
    from watchfloor.evaluation.formats import FormatError, get_format
    from watchfloor.evaluation.replay import replay

    try:
        domain = get_format(args.format).domain
        topic = args.topic or _config(args).input_topics[domain].name
        result = asyncio.run(
            replay(args.format, Path(args.path), _settings(args), topic, speed=args.speed,
                   limit=args.limit, window=args.window)
        )
    except (FormatError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    return 0


# -- completion ----------------------------------------------------------------
def cmd_completion(args: argparse.Namespace) -> int:
    import argcomplete

    print(argcomplete.shellcode(["watchfloor"], shell=args.shell))
    return 0


# -- tail ----------------------------------------------------------------------
def format_alert(alert: dict) -> str:
    """One readable line (or two) for an alert as an operations centre receives it.

    Every value is escaped (:func:`watchfloor.core.sanitize.escape`): ids and reasons come
    from sensors, and an escape sequence in one must not redraw the operator's screen.
    """
    from watchfloor.core.sanitize import escape as e

    drill = f"[EXERCISE {e(alert['exercise'])}] " if alert.get("exercise") else ""
    if alert.get("kind") == "deconfliction":
        return drill + _deconfliction_line(alert)
    sev = e(str(alert.get("severity", "?")).upper())
    ents = ", ".join(f"{e(x.get('type'))}:{e(x.get('id'))}" for x in alert.get("entities", []))
    dets = "; ".join(
        e(d.get("detector")) + (f": {e(d['reason'])}" if d.get("reason") else "")
        for d in alert.get("detections", [])[-3:]
    )
    score = alert.get("score")
    score_txt = f" score {score:.2f}" if isinstance(score, int | float) else ""
    return (
        f"{drill}[{sev:8}] {e(alert.get('updated_at', alert.get('created_at', '')))} "
        f"{e(alert.get('alert_id'))} v{e(alert.get('version'))}{score_txt} "
        f"domains={e(','.join(map(str, alert.get('domains', []))))} entities={ents}\n"
        f"           {dets}"
    )


def _deconfliction_line(notice: dict) -> str:
    """Who else works the entity: other agencies' own incidents by their ids, and the
    agencies that received this very alert (an incident shared with several agencies
    names them too) without repeating its id as if it were theirs.

    >>> _deconfliction_line({"alert_id": "wf-a", "others": [{"agency": "fiu",
    ...     "alert_id": "wf-b"}, {"agency": "ctpu", "alert_id": "wf-a"}]})
    '[DECONFLICT] wf-a: fiu holds wf-b on the same entity; ctpu also received this alert'
    """
    from watchfloor.core.sanitize import escape as e

    own = notice.get("alert_id")
    others = [o for o in notice.get("others") or [] if isinstance(o, dict)]
    theirs = [f"{e(o.get('agency'))} holds {e(o.get('alert_id'))}"
              for o in others if o.get("alert_id") != own]  # fmt: skip
    same = [e(o.get("agency")) for o in others if o.get("alert_id") == own]
    parts = []
    if theirs:
        parts.append(", ".join(theirs) + " on the same entity")
    if same:
        names = same[0] if len(same) == 1 else f"{', '.join(same[:-1])} and {same[-1]}"
        parts.append(f"{names} also received this alert")
    return f"[DECONFLICT] {e(own)}: " + ("; ".join(parts) or "no other agency named")


async def _tail(
    bootstrap: str,
    topic: str,
    as_json: bool,
    from_beginning: bool,
    max_messages: int | None,
    timeout: float | None,
    security: dict | None = None,
) -> int:
    from watchfloor.core.sanitize import escape_json
    from watchfloor.kafka.clients import assigned_consumer

    consumer = await assigned_consumer(bootstrap, topic, from_beginning, security=security)
    if consumer is None:
        print(
            f"error: topic {topic!r} does not exist (run `watchfloor topics apply`)",
            file=sys.stderr,
        )
        return 2
    try:
        seen = 0
        deadline = None if timeout is None else time.monotonic() + timeout
        while max_messages is None or seen < max_messages:
            if deadline is not None and time.monotonic() > deadline:
                break
            batch = await consumer.getmany(timeout_ms=500, max_records=100)
            for records in batch.values():
                for rec in records:
                    if as_json:
                        text = rec.value.decode("utf-8", "replace")
                        sys.stdout.write(escape_json(text) + "\n")
                    else:
                        try:
                            print(format_alert(orjson.loads(rec.value)))
                        except (orjson.JSONDecodeError, AttributeError):
                            print(f"(unreadable message at offset {rec.offset})")
                    seen += 1
                    if max_messages is not None and seen >= max_messages:
                        break
            sys.stdout.flush()
    finally:
        await consumer.stop()
    return 0


def cmd_tail(args: argparse.Namespace) -> int:
    cfg = _config(args)
    agency = next((a for a in cfg.agencies if a.name == args.agency), None)
    if agency is None:
        print(
            f"error: unknown agency {args.agency!r}; agencies: "
            f"{', '.join(a.name for a in cfg.agencies)}",
            file=sys.stderr,
        )
        return 2
    try:
        return asyncio.run(
            _tail(
                _settings(args).bootstrap_servers,
                agency.topic,
                args.json,
                args.from_beginning,
                args.max,
                args.timeout,
                _security(args),
            )
        )
    except KeyboardInterrupt:
        return 0


# -- ack -----------------------------------------------------------------------
def cmd_ack(args: argparse.Namespace) -> int:
    from watchfloor.ops.ack import run

    return run(args, _settings(args), _config(args))


# -- detectors -----------------------------------------------------------------
def cmd_detectors(args: argparse.Namespace) -> int:
    from watchfloor.detectors.registry import DetectorConfigError, discover

    try:
        registry = discover()
    except DetectorConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    from watchfloor.detectors.engine import check_detectors

    cfg = _config(args)
    try:
        check_detectors(cfg, registry)  # `detectors list` checks the file it reads
    except DetectorConfigError as exc:
        print(f"error: {cfg.source}: {exc}", file=sys.stderr)
        return 2
    enabled: dict[str, list[str]] = {}
    for spec in cfg.detectors:
        enabled.setdefault(spec.name, []).append(f"{spec.domain}@{spec.threshold:g}")
    rows = [("NAME", "DOMAINS", "ENTITY", "PACKAGE", "ENABLED (domain@threshold)")]
    for name, reg in sorted(registry.items()):
        rows.append(
            (
                name,
                ",".join(reg.cls.domains),
                ":".join(reg.cls.entity),
                reg.package,
                ", ".join(enabled.get(name, [])) or "-",
            )
        )
    if args.json:
        keys = ("name", "domains", "entity", "package", "enabled")
        print(orjson.dumps([dict(zip(keys, r, strict=True)) for r in rows[1:]]).decode())
        return 0
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return 0


def build_parser() -> argparse.ArgumentParser:
    from importlib.metadata import PackageNotFoundError, version

    try:
        release = version("watchfloor")
    except PackageNotFoundError:  # run from a source tree that was never installed
        release = "unknown"
    p = argparse.ArgumentParser(
        prog="watchfloor",
        description=__doc__,
        epilog="exit codes: 0 ok, 1 the check failed (drift, targets missed), "
        "2 usage or configuration error, 3 Kafka refused or unreachable, 130 interrupted",
    )
    p.add_argument("--version", action="version", version=f"watchfloor {release}")
    p.add_argument("--topics-file", help=TOPICS_FILE_HELP)
    sub = p.add_subparsers(dest="command", required=True)

    k = sub.add_parser("kafka", help="run a local single-node Kafka (KRaft) broker")
    k.add_argument("action", choices=["start", "stop", "status"],
                   help="start or stop the broker, or say whether it runs (exit 3 if not)")
    k.add_argument("--json", action="store_true", help="status as JSON")
    k.add_argument("--port", type=int, default=9092, help="the broker's client port")
    k.add_argument(
        "--data-dir", type=Path, default=None,
        help="its log and data directory (default: the one the broker on --port was started "
        "with, else $XDG_STATE_HOME/watchfloor/kafka-PORT)",
    )
    k.add_argument(
        "--secure",
        action="store_true",
        help="SASL/SCRAM-SHA-512 over TLS (a local CA in the data dir), mutual TLS on the "
        "controller listener, deny-by-default ACLs (docs/security.md)",
    )
    k.add_argument(
        "--no-tls",
        action="store_true",
        help="with --secure: SASL over plaintext on the client listener (not recommended)",
    )
    k.set_defaults(func=cmd_kafka)

    t = sub.add_parser("topics", help="create the topics of topics.yaml, report drift")
    t.add_argument("action", choices=["apply"],
                   help="create the missing topics; exit 1 if a topic differs (drift)")
    t.add_argument(
        "--check", action="store_true", help="create nothing; exit 1 if a topic is missing"
    )
    t.add_argument("--json", action="store_true", help="print the report as JSON")
    t.set_defaults(func=cmd_topics)

    acl = sub.add_parser(
        "acl", help="apply principals, ACLs and SCRAM users derived from topics.yaml"
    )
    acl.add_argument("action", choices=["apply"],
                     help="create the principals' SCRAM users and ACLs on the broker")
    acl.add_argument(
        "--credentials",
        help="file of 'principal:password' lines (default $WATCHFLOOR_ACL_CREDENTIALS_FILE)",
    )
    acl.add_argument("--dry-run", action="store_true", help="print the changes, make none")
    acl.set_defaults(func=cmd_acl)

    w = sub.add_parser("worker", help="run the stream-processing worker")
    w.add_argument("--loglevel", default="warning",
                   help="log level: debug, info, warning or error")
    w.add_argument(
        "--from",
        dest="start_from",
        choices=["earliest", "latest"],
        default=None,
        help="where a new consumer group (app id) starts reading the input: every retained "
        "event, or only new ones (default $WATCHFLOOR_START_FROM, else earliest)",
    )
    w.set_defaults(func=cmd_worker)

    s = sub.add_parser("simulate", help="publish synthetic sensor traffic with labelled threats")
    s.add_argument("--rate", type=positive, default=500.0, help="events per second (default 500)")
    s.add_argument("--duration", type=float, default=60.0, help="seconds of wall-clock time")
    s.add_argument("--seed", type=int, default=1,
                   help="simulator seed: the same seed gives the same stream")
    s.add_argument("--days", type=float, default=3.0,
                   help="simulated days to span (the first is warm-up, without threats)")
    s.add_argument("--campaigns", type=int, default=3,
                   help="campaigns of each threat type over the run (default 3)")
    s.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    s.set_defaults(func=cmd_simulate)

    rp = sub.add_parser(
        "replay", help="publish a capture (docs/formats.md) to its input topic in time order"
    )
    rp.add_argument("format", help="argus, zeek, cicflowmeter, paysim or amlsim")
    rp.add_argument("path", help="the capture file (amlsim: its file or directory)")
    rp.add_argument(
        "--speed", type=float, default=0.0,
        help="keep the capture's spacing scaled by X (1 = real time); 0 = as fast as possible",
    )
    rp.add_argument("--limit", type=int, default=None,
                    help="publish at most N events (default: the whole capture)")
    rp.add_argument(
        "--window", type=int, default=50_000,
        help="sort window in records (0 = sort the whole file in memory)",
    )
    rp.add_argument("--topic", default=None, help="topic (default: the domain's input topic)")
    rp.set_defaults(func=cmd_replay)

    tl = sub.add_parser("tail", help="print an agency's alerts as they arrive")
    tl.add_argument("agency", help="the agency whose alerts to show (topics.yaml agencies)")
    tl.add_argument("--json", action="store_true", help="one JSON alert per line")
    tl.add_argument("--from-beginning", action="store_true",
                    help="start from the oldest retained alert, not from now")
    tl.add_argument("--max", type=int, default=None,
                    help="stop after N messages (default: no limit)")
    tl.add_argument("--timeout", type=float, default=None,
                    help="stop after S seconds (default: run until Ctrl-C)")
    tl.set_defaults(func=cmd_tail)

    from watchfloor.ops.ack import add_arguments as add_ack_arguments

    a = sub.add_parser("ack", help="acknowledge an alert for an agency (checks it was received)")
    add_ack_arguments(a)
    a.set_defaults(func=cmd_ack)

    from watchfloor.ops.audit_cli import add_parser as add_audit_parser

    add_audit_parser(sub)

    d = sub.add_parser("detectors", help="installed detectors")
    d.add_argument("action", choices=["list"],
                   help="the installed detectors and where topics.yaml enables them")
    d.add_argument("--json", action="store_true", help="one JSON array")
    d.set_defaults(func=cmd_detectors)

    dm = sub.add_parser("demo", help="broker + topics + worker + simulator, alerts on screen")
    dm.add_argument("--rate", type=positive, default=300.0, help="events per second (default 300)")
    dm.add_argument("--agency", default="cert", help="the agency whose alerts are shown")
    dm.set_defaults(func=lambda a: __import__("watchfloor.ops.demo", fromlist=["run"]).run(a))
    cp = sub.add_parser(
        "completion",
        help="print the shell completion script: eval \"$(watchfloor completion bash)\"",
    )
    cp.add_argument("shell", choices=["bash", "zsh", "fish"], help="the shell to complete in")
    cp.set_defaults(func=cmd_completion)
    from watchfloor.ops import console_cli, evaluate_cli, exercise, report, taxii_cli

    evaluate_cli.add_parser(sub)
    taxii_cli.add_parser(sub)
    console_cli.add_parser(sub)
    report.add_parser(sub)
    exercise.add_parser(sub)
    _show_defaults(p)
    # --topics-file also after the sub-command (`watchfloor worker --topics-file x.yaml`);
    # SUPPRESS keeps a sub-command without it from resetting the one given before.
    for sp in sub.choices.values():
        if not any("--topics-file" in a.option_strings for a in sp._actions):
            sp.add_argument("--topics-file", default=argparse.SUPPRESS, help=TOPICS_FILE_HELP)
    return p


class HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default, unless the text already gives it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            "default" in text.lower()
            or action.default in (None, False, argparse.SUPPRESS)
            or not (action.option_strings or action.nargs in ("?", "*"))
        ):
            return text
        return text + " (default: %(default)s)"


def _show_defaults(parser: argparse.ArgumentParser) -> None:
    """``HelpFormatter`` on ``parser`` and all its sub-commands' parsers."""
    parser.formatter_class = HelpFormatter
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _show_defaults(sub)


TOPICS_FILE_HELP = (
    "topics.yaml to use (default: $WATCHFLOOR_TOPICS_FILE, else ./topics.yaml, else the "
    "packaged default)"
)


def main(argv: list[str] | None = None) -> int:
    from aiokafka.errors import KafkaConnectionError, KafkaError

    from watchfloor.config import ConfigError
    from watchfloor.core.keys import WeakKeyError
    from watchfloor.core.sanitize import escape_line
    from watchfloor.detectors.registry import DetectorConfigError
    from watchfloor.kafka.security import SecurityConfigError
    from watchfloor.settings import SettingsError

    parser = build_parser()
    # Answers the shell's completion request (and exits) when the shell asks; a no-op
    # otherwise. Activated with `eval "$(watchfloor completion bash)"`.
    import argcomplete

    argcomplete.autocomplete(parser)
    args = parser.parse_args(argv)
    # aiokafka logs each failed connection attempt at ERROR before raising; the one line
    # below says it once, with the fix.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        return int(args.func(args) or 0)
    except (
        ConfigError,
        DetectorConfigError,
        SecurityConfigError,
        SettingsError,
        WeakKeyError,
    ) as exc:
        # Messages quote the configuration (and plugins' own text): escaped for the terminal.
        print(f"error: {escape_line(exc)}", file=sys.stderr)
        return 2
    except KafkaConnectionError:
        settings = Settings.from_env()
        print(
            f"error: Kafka: cannot reach the broker at {settings.bootstrap_servers}; is it "
            "running? (`watchfloor kafka status`; WATCHFLOOR_BROKER names it)",
            file=sys.stderr,
        )
        return 3
    except KafkaError as exc:
        # Refused (authorization, authentication) or unreachable: say so, no traceback.
        print(f"error: Kafka: {type(exc).__name__}: {escape_line(exc)}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
