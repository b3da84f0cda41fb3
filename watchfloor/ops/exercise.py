"""``watchfloor exercise run``: inject a joint exercise into a running deployment and
score it; ``watchfloor report --exercise ID`` scores it again later from Kafka.

The events (:mod:`watchfloor.simulation.exercise`) carry ``exercise: ID``: the worker
keeps their incidents apart from real ones, labels their alerts with the id (agencies
see EXERCISE) and leaves them out of every metric and of the report's real figures.
Event ids name their inject (``ID:2-brute_force:00042``), so :func:`score` needs only
what Kafka recorded: which injects were detected and by which detectors, which agencies
received them (against the scenario's ``expect``), how fast, who acknowledged and how
fast, and whether each verdict was right (every inject is a true threat).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections import defaultdict
from typing import Any

import orjson

from watchfloor.core.decoding import EXERCISE_ID
from watchfloor.ops.report import Records, read_all
from watchfloor.simulation.exercise import (
    DETECTS,
    Scenario,
    ScenarioError,
    exercise_events,
    load_scenario,
)


def _inject_of(event_id: Any, exercise_id: str) -> str | None:
    if not isinstance(event_id, str) or not event_id.startswith(exercise_id + ":"):
        return None
    parts = event_id.split(":")
    return parts[1] if len(parts) == 3 else None


def score(records: Records, exercise_id: str, scenario: Scenario | None = None) -> dict[str, Any]:
    """The exercise's scorecard from the alerts and feedback Kafka recorded."""
    injects: dict[str, dict[str, Any]] = {}
    if scenario is not None:
        for i in scenario.injects:
            injects[i.name] = {"pattern": i.pattern, "expected_detector": DETECTS[i.pattern],
                               "expect": list(i.expect)}
    detectors: dict[str, set[str]] = defaultdict(set)
    delivered: dict[str, dict[str, float]] = defaultdict(dict)  # inject -> agency -> t
    shared: dict[str, list[float]] = defaultdict(list)
    alert_injects: dict[str, set[str]] = defaultdict(set)  # alert id -> injects it cites
    ours = [(agency, t, rec) for agency, recs in records.alerts.items() for t, rec in recs
            if rec.get("exercise") == exercise_id and rec.get("kind", "alert") == "alert"]
    # An agreement may withhold event ids from an agency (the CTPU sees no border event
    # ids): what an incident is about comes from the copies that show them, and every
    # agency's copy of that incident (one alert id for all) counts as a delivery of it.
    for _, t, rec in ours:
        for det in rec.get("detections") or ():
            name = _inject_of(det.get("event_id"), exercise_id)
            if name is None:
                continue
            injects.setdefault(name, {"pattern": name.partition("-")[2], "expect": []})
            if det.get("detector"):
                detectors[name].add(str(det["detector"]))
            alert_injects[str(rec.get("alert_id"))].add(name)
            ts = det.get("ts")
            if isinstance(ts, int | float):
                shared[name].append(max(0.0, t - ts / 1000.0))
    for agency, t, rec in sorted(ours, key=lambda x: x[1]):
        for name in alert_injects.get(str(rec.get("alert_id")), ()):
            delivered[name].setdefault(agency, t)
    acks: dict[str, dict[str, float]] = defaultdict(dict)
    verdicts: dict[str, dict[str, str]] = defaultdict(dict)
    for agency, recs in records.feedback.items():
        for t, fb in sorted(recs, key=lambda x: x[0]):
            for name in alert_injects.get(str(fb.get("alert_id")), ()):
                if agency in delivered[name] and agency not in acks[name]:
                    acks[name][agency] = max(0.0, t - delivered[name][agency])
                if fb.get("verdict") in ("true_positive", "false_positive"):
                    verdicts[name][agency] = fb["verdict"]
    rows = {}
    for name, info in injects.items():
        got = sorted(delivered.get(name, {}))
        expect = info.get("expect", [])
        rows[name] = {
            **info,
            "detected": bool(detectors.get(name)),
            "detectors": sorted(detectors.get(name, ())),
            "delivered_to": got,
            "missing_recipients": sorted(set(expect) - set(got)),
            "seconds_to_alert": round(min(shared[name]), 1) if shared.get(name) else None,
            "acknowledged_by": {a: round(s, 1) for a, s in sorted(acks.get(name, {}).items())},
            "verdicts": dict(sorted(verdicts.get(name, {}).items())),
        }
    ack_times = [s for r in rows.values() for s in r["acknowledged_by"].values()]
    n_verdicts = sum(len(r["verdicts"]) for r in rows.values())
    right = sum(v == "true_positive" for r in rows.values() for v in r["verdicts"].values())
    expected = sum(len(r.get("expect", [])) for r in rows.values())
    reached = sum(len(set(r.get("expect", [])) & set(r["delivered_to"])) for r in rows.values())
    deliveries = sum(len(r["delivered_to"]) for r in rows.values())
    return {
        "exercise": exercise_id,
        "scenario": scenario.name if scenario is not None else None,
        "injects": rows,
        "summary": {
            "injects": len(rows),
            "detected": sum(r["detected"] for r in rows.values()),
            "expected_deliveries": expected,
            "expected_delivered": reached,
            "deliveries": deliveries,
            "acknowledged": len(ack_times),
            "median_seconds_to_acknowledge": (round(statistics.median(ack_times), 1)
                                              if ack_times else None),
            "verdicts": n_verdicts,
            "verdicts_right": right,
        },
    }


def table(card: dict[str, Any]) -> str:
    """The scorecard as text, one line per inject."""
    s = card["summary"]
    lines = [f"exercise {card['exercise']}"
             + (f" ({card['scenario']})" if card.get("scenario") else "")]
    for name, r in card["injects"].items():
        found = ", ".join(r["detectors"]) or "NOT DETECTED"
        to = ", ".join(r["delivered_to"]) or "-"
        miss = f"; missing: {', '.join(r['missing_recipients'])}" if r["missing_recipients"] else ""
        t = f" in {r['seconds_to_alert']:.0f} s" if r["seconds_to_alert"] is not None else ""
        acked = ", ".join(f"{a} {sec:.0f} s" for a, sec in r["acknowledged_by"].items()) or "-"
        verdict = ", ".join(f"{a}: {v}" for a, v in r["verdicts"].items()) or "-"
        lines.append(f"  {name:24} {found}{t} → {to}{miss}; acknowledged: {acked}; "
                     f"verdicts: {verdict}")
    lines.append(
        f"detected {s['detected']}/{s['injects']} injects; expected recipients reached "
        f"{s['expected_delivered']}/{s['expected_deliveries']}; acknowledged "
        f"{s['acknowledged']}/{s['deliveries']} deliveries"
        + (f" (median {s['median_seconds_to_acknowledge']:.0f} s)"
           if s["median_seconds_to_acknowledge"] is not None else "")
        + f"; verdicts right {s['verdicts_right']}/{s['verdicts']}"
    )
    return "\n".join(lines)


# -------------------------------------------------------------------------- the command
async def inject(
    config: Any, target: Any, scenario: Scenario, exercise_id: str, speed: float, say: Any
) -> int:
    """Publish the scenario's events at their times (compressed by ``speed``); return
    how many. Keyed by each domain's entity, as sensors publish."""
    from watchfloor.core.events import ENTITY_FIELDS
    from watchfloor.kafka import clients

    events = list(exercise_events(scenario, exercise_id, 0.0))
    producer = clients.producer(clients.resolve(target), acks="all", enable_idempotence=True)
    await producer.start()
    started = time.time()
    current = None
    try:
        for t, domain, event in events:
            wait = started + t / speed - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
            name = event["sim"]["campaign"]
            if name != current:
                current = name
                say(f"inject {name} at +{time.time() - started:.0f} s")
            event["ts"] = round(time.time() * 1000)  # event time is now: it happens now
            key = str(event[ENTITY_FIELDS[domain][1]]).encode()
            await producer.send(config.input_topics[domain].name, orjson.dumps(event), key=key)
        await producer.flush()
    finally:
        await producer.stop()
    return len(events)


async def follow(config: Any, target: Any, start: float, seconds: float) -> Records:
    """What the deployment recorded since ``start``, after waiting ``seconds``."""
    await asyncio.sleep(seconds)
    return await read_all(config, target, start - 1.0, time.time() + 1.0, None)


def cmd_run(args: argparse.Namespace) -> int:
    from watchfloor.config import load_config
    from watchfloor.settings import Settings

    settings = Settings.from_env()
    config = load_config(getattr(args, "topics_file", None) or settings.topics_file)
    try:
        scenario = load_scenario(args.scenario, {a.name for a in config.agencies})
    except ScenarioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    exercise_id = args.id or f"{scenario.name}-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}"
    if not EXERCISE_ID.fullmatch(exercise_id):
        print(f"error: --id {exercise_id!r}: 1..64 letters, digits, '.', '_' or '-'",
              file=sys.stderr)
        return 2

    def say(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr, flush=True)

    say(f"exercise {exercise_id}: {len(scenario.injects)} injects over "
        f"{scenario.duration / args.speed:.0f} s; its alerts are labelled EXERCISE")
    start = time.time()
    n = asyncio.run(inject(config, settings, scenario, exercise_id, args.speed, say))
    say(f"injected {n} events; following the agencies for {args.follow:.0f} s …")
    records = asyncio.run(follow(config, settings, start, args.follow))
    card = score(records, exercise_id, scenario)
    print(orjson.dumps(card, option=orjson.OPT_INDENT_2).decode() if args.json else table(card))
    if not args.json:
        print(f"\nscore it again later: watchfloor report --exercise {exercise_id} "
              f"--scenario {args.scenario} --out DIR")
    return 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("exercise", help="run a joint exercise and score it")
    sub = p.add_subparsers(dest="action", required=True)
    r = sub.add_parser("run", help="inject a scenario's events into the running deployment")
    r.add_argument("scenario", help="a scenario file, or a shipped one: cyber-intrusion, "
                                    "cross-border-financing")
    r.add_argument("--id", default=None, help="exercise id (default: scenario-name-time)")
    r.add_argument("--speed", type=float, default=1.0,
                   help="compress the timeline by X (default 1: real time)")
    r.add_argument("--follow", type=float, default=60.0,
                   help="seconds to follow the agencies after the last inject (default 60)")
    r.add_argument("--json", action="store_true", help="print the scorecard as JSON")
    r.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    r.set_defaults(func=cmd_run)
    return p
