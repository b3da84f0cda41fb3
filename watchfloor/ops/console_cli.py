"""``watchfloor console --agency A``: the operations-centre screen of one agency."""

from __future__ import annotations

import argparse
import sys
from typing import Any

DEFAULT_PORT = 9471


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "console",
        help="web console for one agency: live alerts, acknowledge, escalate, verdicts",
        description="Run it with the agency's Kafka credentials (WATCHFLOOR_SASL_*): it reads "
        "only the agency's alert topic and writes only its feedback topic. Analysts sign in "
        "with a token from `watchfloor taxii token AGENCY`.",
    )
    p.add_argument("--agency", required=True, help="the agency whose console this is")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to listen on")
    p.add_argument("--certfile", default=None,
                   help="TLS certificate (PEM); serve HTTPS (default: plain HTTP)")
    p.add_argument("--keyfile", default=None,
                   help="TLS private key (PEM; default: in --certfile)")
    p.set_defaults(func=cmd_console)
    return p


def build_console(config: Any, settings: Any, agency_name: str, secure: bool = False) -> Any:
    from watchfloor.ops.console import Console, follow_topic, kafka_sender
    from watchfloor.ops.taxii_cli import token_store_path
    from watchfloor.ops.tokens import TokenStore

    agencies = {a.name: a for a in config.agencies}
    agency = agencies[agency_name]
    feedback_topic = config.feedback_topics[agency.name].name
    return Console(
        agency.name,
        TokenStore(token_store_path(settings.state_dir)),
        kafka_sender(settings, feedback_topic),
        secure_cookie=secure,
        feeders=lambda c: [follow_topic(c, settings, agency.topic)],
    )


def cmd_console(args: argparse.Namespace) -> int:
    import uvicorn

    from watchfloor.config import load_config
    from watchfloor.settings import Settings

    settings = Settings.from_env()
    config = load_config(getattr(args, "topics_file", None) or settings.topics_file)
    names = sorted(a.name for a in config.agencies)
    if args.agency not in names:
        print(f"error: unknown agency {args.agency!r}; valid: {', '.join(names)}", file=sys.stderr)
        return 2
    if not (1 <= args.port <= 65535):
        print(f"error: --port {args.port} is not a TCP port (1-65535)", file=sys.stderr)
        return 2
    console = build_console(config, settings, args.agency, secure=bool(args.certfile))
    scheme = "https" if args.certfile else "http"
    print(f"console for {args.agency} at {scheme}://{args.host}:{args.port}/", file=sys.stderr,
          flush=True)
    uvicorn.run(console.app, host=args.host, port=args.port, log_level="warning",
                ssl_certfile=args.certfile, ssl_keyfile=args.keyfile)
    return 0
