"""``watchfloor demo``: everything on one machine, alerts on screen, Ctrl-C stops it all.

Starts the local broker unless ``WATCHFLOOR_BROKER`` is set, applies topics, starts a
worker and the simulator as child processes, tails one agency's alerts and prints the
metrics URL. Everything it started, it stops.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from typing import Any

from watchfloor.config import load_config
from watchfloor.settings import Settings

#: The demo's traffic: ``Simulator(seed=SEED, **STREAM).events(round(rate * DURATION))``,
#: published over DURATION seconds. Sixty simulated days in an hour, so one simulated day
#: per minute (the first is the detectors' warm-up); one campaign of every threat type per
#: simulated day, so the shown agency gets an alert every 10-30 s; and every three days
#: (about three minutes) a linked multi-domain case with entities of its own, the first
#: attack 26 simulated hours in (under a minute, nights being quiet), so a multi-domain
#: incident reaches the agencies within the first two minutes and again every few.
SEED = 7
DURATION = 3600.0
STREAM: dict[str, Any] = {"days": 60.0, "campaigns": 60, "linked": 3.0}


def _wait_metrics(url: str, proc: subprocess.Popen, timeout: float = 90.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                body = resp.read().decode()
            for line in body.splitlines():
                if (
                    line.startswith("watchfloor_assigned_partitions ")
                    and float(line.split()[1]) > 0
                ):
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


def run(args: argparse.Namespace) -> int:
    from watchfloor.kafka.security import client_kwargs
    from watchfloor.ops.cli import _settings, _tail
    from watchfloor.ops.kafka_local import LocalKafka
    from watchfloor.streams.topics import apply_topics

    settings = _settings(args)  # --topics-file, before or after `demo`, counts
    config = load_config(settings.topics_file)
    names = [a.name for a in config.agencies]
    if args.agency not in names:
        import difflib

        close = difflib.get_close_matches(args.agency, names, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"agencies: {', '.join(names)}"
        print(f"error: --agency {args.agency!r} is not an agency of {settings.topics_file}; "
              f"{hint}", file=sys.stderr)
        return 2
    started_broker: LocalKafka | None = None
    if "WATCHFLOOR_BROKER" not in os.environ:
        local = LocalKafka()
        line = local.start()
        print(line, flush=True)
        # A broker that was already running before the demo is left running after it.
        started_broker = None if "already running" in line else local
        settings = Settings(**{**settings.__dict__, "broker": f"kafka://{local.bootstrap}"})
    config = load_config(settings.topics_file)
    # With the settings' security (a WATCHFLOOR_BROKER may be a secured one).
    for line in asyncio.run(apply_topics(config, settings)).lines():
        print(line)
    # The worker and the simulator read the same topology and broker as the demo.
    env = dict(os.environ, WATCHFLOOR_BROKER=settings.broker,
               WATCHFLOOR_TOPICS_FILE=str(settings.topics_file))
    children: list[subprocess.Popen] = []
    try:
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        worker_log = settings.state_dir / "demo-worker.log"
        with open(worker_log, "ab") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "watchfloor.ops.cli", "worker", "--loglevel", "info"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        children.append(worker)
        url = f"http://127.0.0.1:{settings.metrics_port}/metrics"
        if not _wait_metrics(url, worker):
            print(f"error: the worker did not start; see {worker_log}", file=sys.stderr)
            return 1
        # The demo's own stream (STREAM), published like `watchfloor simulate` does.
        sim = subprocess.Popen(
            [sys.executable, "-m", "watchfloor.ops.demo", "--rate", str(args.rate)],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        children.append(sim)
        agency = next(a for a in config.agencies if a.name == args.agency)
        print(
            f"\nwatchfloor is running. Metrics: {url}  (worker log: {worker_log})\n"
            f"Alerts for {agency.name} ({agency.description}) appear below once the simulated "
            f"threats start, within a minute (a multi-domain incident within two, then "
            f"every few minutes). Other agencies: "
            f"{', '.join(a.name for a in config.agencies if a is not agency)} "
            f"(`watchfloor tail AGENCY`). Ctrl-C stops everything.\n",
            flush=True,
        )
        asyncio.run(
            _tail(
                settings.bootstrap_servers,
                agency.topic,
                False,
                False,
                None,
                None,
                client_kwargs(settings),
            )
        )
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
    finally:
        for child in reversed(children):
            if child.poll() is None:
                child.send_signal(signal.SIGINT if child is children[0] else signal.SIGTERM)
        for child in children:
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()
        if started_broker is not None:
            print(started_broker.stop())
    return 0


def feed(rate: float) -> int:
    """Publish the demo's stream (STREAM) to the input topics of the environment's
    topology (``WATCHFLOOR_BROKER``, ``WATCHFLOOR_TOPICS_FILE``, security settings), paced
    at ``rate`` events per second for DURATION seconds."""
    from watchfloor.kafka.security import client_kwargs
    from watchfloor.simulation import publish

    settings = Settings.from_env()
    topics = {d: t.name for d, t in load_config(settings.topics_file).input_topics.items()}
    asyncio.run(
        publish(
            settings.bootstrap_servers,
            rate=rate,
            duration=DURATION,
            seed=SEED,
            topics=topics,
            security=client_kwargs(settings),
            **STREAM,
        )
    )
    return 0


if __name__ == "__main__":  # the demo's publisher: python -m watchfloor.ops.demo --rate R
    parser = argparse.ArgumentParser(prog="python -m watchfloor.ops.demo")
    parser.add_argument("--rate", type=float, default=300.0)
    try:
        sys.exit(feed(parser.parse_args().rate))
    except KeyboardInterrupt:
        sys.exit(130)
