"""``watchfloor ack``: acknowledge an alert for an agency, and say what was recorded.

``watchfloor ack ALERT_ID --agency A [--action ack|escalate|close]
[--verdict true_positive|false_positive] [--note TEXT]``

Before sending, the command checks what the worker would check, so an operator learns
at once rather than from a dead letter later:

* the agency exists, and the action is complete (``escalate`` and ``close`` need a
  verdict);
* ``ALERT_ID`` was delivered to the agency: the newest ``--scan`` messages of the
  agency's alert topic are read (within ``--timeout`` seconds) looking for it;
* the feedback goes to the agency's own feedback topic (``feedback.<agency>``, which
  only the agency's principal may write), with ``acks=all``; the command waits for the
  broker's acknowledgement and prints where it was recorded, the action and verdict.

Exit codes: 0 recorded; 2 usage (unknown agency, incomplete action, an alert id the
agency never received); 3 Kafka (unreachable, refused, timed out).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass
from typing import Any

import orjson

# Newest messages per partition searched: alerts are ~1-2 KiB, so this reads at most a few
# tens of MiB; older ids need --scan.
DEFAULT_SCAN = 20_000
DEFAULT_TIMEOUT = 15.0


class AckError(Exception):
    """A one-line reason the ack was not sent, with its exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Delivered:
    """The newest delivery of the alert to the agency, as found in its topic."""

    severity: str
    version: int
    partition: int
    offset: int


def feedback_record(
    alert_id: str, agency: str, action: str, verdict: str | None, note: str | None, now: float
) -> dict[str, Any]:
    """The feedback message, checked as the worker checks it.

    >>> feedback_record("wf-1", "cert", "escalate", None, None, 0.0)
    Traceback (most recent call last):
    ...
    watchfloor.ops.ack.AckError: --action escalate needs --verdict true_positive or \
false_positive (the worker refuses an escalate without one)
    >>> feedback_record("wf-1", "cert", "ack", None, None, 1700000000.5)
    {'alert_id': 'wf-1', 'agency': 'cert', 'action': 'ack', 'ts': 1700000000500}
    """
    from watchfloor.alerts.feedback import ACTIONS, VERDICTS, parse_feedback
    from watchfloor.core.decoding import InvalidEvent

    if action not in ACTIONS:
        raise AckError(f"--action {action!r}: expected one of {', '.join(sorted(ACTIONS))}", 2)
    if verdict is not None and verdict not in VERDICTS:
        raise AckError(f"--verdict {verdict!r}: expected one of {', '.join(sorted(VERDICTS))}", 2)
    if action != "ack" and verdict is None:
        raise AckError(
            f"--action {action} needs --verdict true_positive or false_positive "
            f"(the worker refuses {'an' if action[0] in 'aeiou' else 'a'} {action} without one)",
            2,
        )
    record: dict[str, Any] = {
        "alert_id": alert_id,
        "agency": agency,
        "action": action,
        "ts": int(now * 1000),
    }
    if verdict is not None:
        record["verdict"] = verdict
    if note:
        record["note"] = note
    try:  # exactly the worker's parser: what passes here is what it accepts
        parse_feedback(orjson.dumps(record), agency)
    except InvalidEvent as exc:
        raise AckError(f"the feedback would be refused: {exc}", 2) from None
    return record


async def find_delivery(
    settings: Any, topic: str, alert_id: str, scan: int, timeout: float
) -> Delivered | None:
    """The newest message of ``alert_id`` (an alert, not a notice) among the last ``scan``
    messages of each partition of ``topic``; None if absent. Raises AckError(3) if the
    topic cannot be read to its end within ``timeout`` seconds."""
    from watchfloor.kafka import clients

    consumer = await clients.assigned_consumer(settings, topic, False)
    if consumer is None:
        raise AckError(f"topic {topic!r} does not exist (run `watchfloor topics apply`)", 3)
    key = alert_id.encode()
    found: Delivered | None = None
    try:
        tps = sorted(consumer.assignment(), key=lambda tp: tp.partition)
        starts = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            consumer.seek(tp, max(starts[tp], ends[tp] - scan))
        deadline = time.monotonic() + timeout
        while True:
            pending = [tp for tp in tps if await consumer.position(tp) < ends[tp]]
            if not pending:
                return found
            if time.monotonic() > deadline:
                raise AckError(
                    f"could not read {topic} within {timeout:g}s to check {alert_id!r} "
                    "(broker slow or unreachable; try --timeout)",
                    3,
                )
            batch = await consumer.getmany(*pending, timeout_ms=500, max_records=5000)
            for tp, records in batch.items():
                for r in records:
                    # Alerts are keyed by their id: decode only the candidates.
                    if r.key != key or r.offset >= ends[tp]:
                        continue
                    try:
                        alert = orjson.loads(r.value)
                    except orjson.JSONDecodeError:
                        continue
                    if (
                        type(alert) is dict
                        and alert.get("alert_id") == alert_id
                        and alert.get("kind", "alert") == "alert"
                    ):
                        found = Delivered(
                            str(alert.get("severity")),
                            int(alert.get("version") or 0),
                            tp.partition,
                            r.offset,
                        )
    finally:
        await consumer.stop()


async def send(settings: Any, topic: str, record: dict[str, Any], timeout: float) -> Any:
    """Send ``record`` keyed by its alert id with ``acks=all``; the broker's metadata."""
    from watchfloor.kafka import clients

    producer = clients.producer(settings, acks="all", request_timeout_ms=int(timeout * 1000))
    try:
        await producer.start()
        return await asyncio.wait_for(
            producer.send_and_wait(topic, orjson.dumps(record), key=record["alert_id"].encode()),
            timeout,
        )
    except TimeoutError:
        raise AckError(
            f"the broker did not acknowledge within {timeout:g}s; not recorded", 3
        ) from None
    finally:
        await producer.stop()


def run(args: argparse.Namespace, settings: Any, config: Any) -> int:
    """The ``ack`` command; prints one line (stdout when recorded, stderr otherwise)."""
    import logging

    from aiokafka.errors import KafkaConnectionError, KafkaError

    # The client's own connection warnings would print before our one line.
    quiet = logging.getLogger("aiokafka")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    agencies = {a.name: a for a in config.agencies}
    try:
        agency = agencies.get(args.agency)
        if agency is None:
            raise AckError(
                f"unknown agency {args.agency!r}; agencies: {', '.join(sorted(agencies))}", 2
            )
        record = feedback_record(
            args.alert_id, agency.name, args.action, args.verdict, args.note, time.time()
        )
        feedback_topic = config.feedback_topics[agency.name].name

        async def go() -> tuple[Delivered, Any]:
            found = await find_delivery(
                settings, agency.topic, args.alert_id, args.scan, args.timeout
            )
            if found is None:
                raise AckError(
                    f"{args.alert_id!r} was never delivered to {agency.name} (not among the "
                    f"last {args.scan} messages of {agency.topic}; older: --scan N); "
                    "nothing sent",
                    2,
                )
            return found, await send(settings, feedback_topic, record, args.timeout)

        found, meta = asyncio.run(go())
    except AckError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    except KafkaConnectionError:
        print(
            f"error: Kafka: cannot reach the broker at {settings.bootstrap_servers} "
            "(KafkaConnectionError); nothing recorded. Is it running? "
            "(`watchfloor kafka status`)",
            file=sys.stderr,
        )
        return 3
    except KafkaError as exc:
        name = type(exc).__name__
        text = str(exc).removeprefix(f"{name}: ").removeprefix(name).strip(": ")
        print(f"error: Kafka: {name}{': ' + text if text else ''}; nothing recorded",
              file=sys.stderr)
        return 3
    finally:
        quiet.setLevel(level)
    verdict = args.verdict or "none"
    print(
        f"recorded: {args.action} of {args.alert_id} ({found.severity}, v{found.version}) by "
        f"{agency.name}, verdict {verdict}, on {feedback_topic} partition {meta.partition} "
        f"offset {meta.offset}"
    )
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``ack`` sub-command's arguments."""
    p.add_argument("alert_id", help="the alert's alert_id as the agency received it")
    p.add_argument("--agency", required=True, help="the acknowledging agency")
    p.add_argument(
        "--action",
        choices=["ack", "escalate", "close"],
        default="ack",
        help="ack (default), escalate or close; escalate and close need --verdict",
    )
    p.add_argument(
        "--verdict",
        choices=["true_positive", "false_positive"],
        help="the agency's verdict, a later one replacing an earlier one (default: none)",
    )
    p.add_argument("--note", help="free text kept with the feedback (default: none)")
    p.add_argument(
        "--scan",
        type=int,
        default=DEFAULT_SCAN,
        help=f"newest messages per partition searched for the id (default {DEFAULT_SCAN})",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help=f"seconds to find the id and get the broker's ack (default {DEFAULT_TIMEOUT:g})",
    )


__all__ = ["AckError", "add_arguments", "feedback_record", "find_delivery", "run", "send"]
