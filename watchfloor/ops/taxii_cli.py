"""``watchfloor taxii serve|token``: the TAXII 2.1 server and its agency tokens."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

DEFAULT_PORT = 9470


def token_store_path(state_dir: Path) -> Path:
    return Path(state_dir) / "agency-tokens.json"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "taxii", help="TAXII 2.1 server over the agencies' alert topics (STIX 2.1 + TLP)"
    )
    sub = p.add_subparsers(dest="taxii_command", required=True)
    s = sub.add_parser("serve", help="serve each agency its own collection")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on")
    s.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to listen on")
    s.add_argument("--producer", default="watchfloor", help="name of the producing centre")
    s.add_argument("--certfile", default=None,
                   help="TLS certificate (PEM); serve HTTPS (default: plain HTTP)")
    s.add_argument("--keyfile", default=None,
                   help="TLS private key (PEM; default: in --certfile)")
    s.set_defaults(func=cmd_serve)
    t = sub.add_parser("token", help="issue a bearer token for an agency (printed once)")
    t.add_argument("agency", help="agency name from topics.yaml")
    t.add_argument("--revoke", action="store_true", help="revoke all of the agency's tokens")
    t.set_defaults(func=cmd_token)
    return p


def _config_and_settings(args: argparse.Namespace) -> tuple[Any, Any]:
    from watchfloor.config import load_config
    from watchfloor.settings import Settings

    settings = Settings.from_env()
    topics_file = getattr(args, "topics_file", None) or settings.topics_file
    return load_config(topics_file), settings


def cmd_token(args: argparse.Namespace) -> int:
    from watchfloor.ops.tokens import TokenStore

    config, settings = _config_and_settings(args)
    names = sorted(a.name for a in config.agencies)
    if args.agency not in names:
        print(f"error: unknown agency {args.agency!r}; valid: {', '.join(names)}", file=sys.stderr)
        return 2
    store = TokenStore(token_store_path(settings.state_dir))
    if args.revoke:
        print(f"revoked {store.revoke(args.agency)} token(s) of {args.agency}")
        return 0
    print(store.issue(args.agency))
    print(
        f"token for {args.agency} (shown once; only its hash is kept in {store.path})",
        file=sys.stderr,
    )
    return 0


def build_server(config: Any, settings: Any, producer: str, feed: bool = True) -> Any:
    from watchfloor.ops.taxii import TaxiiServer, feed_from_kafka
    from watchfloor.ops.taxii_store import Collection
    from watchfloor.ops.tokens import TokenStore

    agencies = list(config.agencies)
    collections = {a.name: Collection(a.name) for a in agencies}
    tlp = {a.name: a.agreement.tlp for a in agencies}
    topics = {a.name: a.topic for a in agencies}
    return TaxiiServer(
        collections,
        tlp,
        TokenStore(token_store_path(settings.state_dir)),
        producer=producer,
        feeders=(lambda server: [feed_from_kafka(server, settings, topics)]) if feed else None,
    )


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    config, settings = _config_and_settings(args)
    server = build_server(config, settings, args.producer)
    if not (1 <= args.port <= 65535):
        print(f"error: --port {args.port} is not a TCP port (1-65535)", file=sys.stderr)
        return 2
    scheme = "https" if args.certfile else "http"
    print(f"TAXII 2.1 at {scheme}://{args.host}:{args.port}/taxii2/ "
          f"({len(server.collections)} collections)", file=sys.stderr, flush=True)
    uvicorn.run(
        server.app,
        host=args.host,
        port=args.port,
        log_level="warning",
        ssl_certfile=args.certfile,
        ssl_keyfile=args.keyfile,
    )
    return 0
