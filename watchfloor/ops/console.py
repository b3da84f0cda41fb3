"""``watchfloor console``: the operations-centre screen of one agency.

A small web application (Starlette on uvicorn) that shows the agency's alerts as they
arrive (server-sent events, newest first) with severity, entities, detections and
reasons exactly as its agreement allows (it reads only the agency's own alert topic),
an incident's versions as a timeline, deconfliction notices, buttons to acknowledge,
escalate and give a verdict, filters by severity and domain, and today's response-time
figures.

Trust: analysts sign in with the agency's bearer token (``watchfloor taxii token``; the
same tokens as TAXII), kept in an HttpOnly, SameSite=Strict cookie; a token of another
agency is refused. Every state-changing request also carries a CSRF token bound to the
session. Feedback goes through the same checks as ``watchfloor ack``
(:func:`watchfloor.ops.ack.feedback_record`: complete action, known verdict) and only
for alerts this agency received, to the agency's own feedback topic — so the console
runs with the agency's Kafka credentials and the broker vouches for the writer.

Everything that comes from events (identifiers, reasons) is attacker-controlled: the
page renders it with ``textContent`` only, and a strict Content-Security-Policy allows
no inline script, no third-party origin and no framing. The page's assets ship in the
package (``console_static/``); nothing is fetched from elsewhere at run time.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import secrets
import statistics
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from watchfloor.ops.tokens import TokenStore, bearer

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("console_static")
COOKIE = "wf_console"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
MAX_ALERTS = 2_000  # alerts kept for the screen (newest); older ones stay in Kafka
MAX_BODY = 4_096

Sender = Callable[[dict[str, Any]], Awaitable[Any]]


def _headers(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**SECURITY_HEADERS, **(extra or {})}


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status, headers=_headers(), media_type="application/json")


class Console:
    """State and endpoints of one agency's console."""

    def __init__(
        self,
        agency: str,
        tokens: TokenStore,
        send_feedback: Sender,
        secure_cookie: bool = False,
        feeders: Callable[[Console], list[Any]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.agency = agency
        self.tokens = tokens
        self.send_feedback = send_feedback
        self.secure_cookie = secure_cookie
        self.clock = clock
        self._feeders = feeders
        self._csrf_key = secrets.token_bytes(32)
        # alert_id -> list of versions (each the agency's view + its append time)
        self.alerts: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
        self.notices: deque[dict[str, Any]] = deque(maxlen=500)
        self.acks: dict[str, float] = {}  # alert_id -> first ack time (this console)
        self._subscribers: set[asyncio.Queue[bytes]] = set()
        self.app = Starlette(
            routes=[
                Route("/", self.index),
                Route("/login", self.login, methods=["GET", "POST"]),
                Route("/logout", self.logout, methods=["POST"]),
                Route("/static/{name}", self.static),
                Route("/api/alerts", self.api_alerts),
                Route("/api/stream", self.api_stream),
                Route("/api/stats", self.api_stats),
                Route("/api/feedback", self.api_feedback, methods=["POST"]),
            ],
            lifespan=self._lifespan,
        )

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        tasks = [asyncio.ensure_future(t) for t in (self._feeders(self) if self._feeders else [])]
        try:
            yield
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- feeding --------------------------------------------------------------------
    def add_record(self, value: bytes | None, appended_ms: int) -> dict[str, Any] | None:
        """One record of the agency's alert topic; returns what was shown (or None)."""
        if not value or len(value) > 1 << 20:
            return None
        try:
            view = orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(view, dict) or not isinstance(view.get("alert_id"), str):
            return None
        item = {"kind": view.get("kind", "alert"), "received": appended_ms / 1000, "view": view}
        if item["kind"] == "alert":
            versions = self.alerts.setdefault(view["alert_id"], [])
            if any(v["view"].get("version") == view.get("version") for v in versions):
                return None  # a replayed delivery
            versions.append(item)
            self.alerts.move_to_end(view["alert_id"])
            while len(self.alerts) > MAX_ALERTS:
                self.alerts.popitem(last=False)
        else:
            self.notices.append(item)
        data = b"data: " + orjson.dumps(item) + b"\n\n"
        for q in list(self._subscribers):
            if q.qsize() < 1000:  # a stalled browser must not grow memory
                q.put_nowait(data)
        return item

    # -- sessions -------------------------------------------------------------------
    def _token(self, request: Request) -> str | None:
        return bearer(request.headers.get("authorization")) or request.cookies.get(COOKIE)

    def _authorised(self, request: Request) -> str | None:
        token = self._token(request)
        return token if token and self.tokens.agency(token) == self.agency else None

    def csrf(self, token: str) -> str:
        return hmac.new(self._csrf_key, token.encode(), hashlib.sha256).hexdigest()

    # -- pages ----------------------------------------------------------------------
    async def index(self, request: Request) -> Response:
        token = self._authorised(request)
        if token is None:
            return RedirectResponse("/login", 303, headers=_headers())
        page = (STATIC / "index.html").read_text()
        # Only server-made values are put into the page; everything from events arrives
        # later as JSON and is rendered with textContent.
        page = page.replace("{{agency}}", self.agency).replace("{{csrf}}", self.csrf(token))
        return Response(page, headers=_headers(), media_type="text/html")

    async def login(self, request: Request) -> Response:
        if request.method == "GET":
            return Response((STATIC / "login.html").read_text().replace("{{agency}}",
                            self.agency).replace("{{error}}", ""), headers=_headers(),
                            media_type="text/html")
        body = (await request.body())[:MAX_BODY].decode("utf-8", "replace")
        from urllib.parse import parse_qs

        token = (parse_qs(body).get("token") or [""])[0].strip()
        owner = self.tokens.agency(token)
        if owner != self.agency:
            page = (STATIC / "login.html").read_text().replace("{{agency}}", self.agency)
            page = page.replace("{{error}}", "That token does not open this console.")
            return Response(page, 401, headers=_headers(), media_type="text/html")
        resp = RedirectResponse("/", 303, headers=_headers())
        resp.set_cookie(COOKIE, token, httponly=True, samesite="strict",
                        secure=self.secure_cookie, path="/")
        return resp

    async def logout(self, request: Request) -> Response:
        resp = RedirectResponse("/login", 303, headers=_headers())
        resp.delete_cookie(COOKIE, path="/")
        return resp

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        types = {"console.js": "text/javascript", "console.css": "text/css"}
        if name not in types:  # a fixed list: no path from the request reaches the disk
            return Response("not found", 404, headers=_headers())
        return Response((STATIC / name).read_bytes(), headers=_headers(), media_type=types[name])

    # -- API ------------------------------------------------------------------------
    async def api_alerts(self, request: Request) -> Response:
        if self._authorised(request) is None:
            return _json({"error": "sign in"}, 401)
        newest = [versions[-1] for versions in reversed(self.alerts.values())]
        timelines = {aid: [v["view"].get("version") for v in vs] for aid, vs in
                     self.alerts.items()}
        return _json({"alerts": newest[:500], "versions": timelines,
                      "notices": list(self.notices)[::-1][:100],
                      "acked": sorted(self.acks)})

    async def api_stream(self, request: Request) -> Response:
        if self._authorised(request) is None:
            return _json({"error": "sign in"}, 401)
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._subscribers.add(queue)

        async def events() -> AsyncIterator[bytes]:
            try:
                yield b": connected\n\n"
                while True:
                    try:
                        yield await asyncio.wait_for(queue.get(), 15)
                    except TimeoutError:
                        yield b": keep-alive\n\n"
            finally:
                self._subscribers.discard(queue)

        return StreamingResponse(events(), media_type="text/event-stream", headers=_headers())

    async def api_stats(self, request: Request) -> Response:
        if self._authorised(request) is None:
            return _json({"error": "sign in"}, 401)
        return _json(self.stats())

    def stats(self) -> dict[str, Any]:
        """Today's figures (UTC day): alerts received, acknowledged, response times."""
        now = self.clock()
        day = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        start = day.timestamp()
        received = {aid: vs[0]["received"] for aid, vs in self.alerts.items()
                    if vs[0]["received"] >= start}
        waits = [self.acks[aid] - t for aid, t in received.items() if aid in self.acks]
        return {
            "day": day.date().isoformat(),
            "alerts": len(received),
            "acknowledged": len(waits),
            "unacknowledged": len(received) - len(waits),
            "median_response_s": round(statistics.median(waits), 1) if waits else None,
            "max_response_s": round(max(waits), 1) if waits else None,
        }

    async def api_feedback(self, request: Request) -> Response:
        from watchfloor.ops.ack import AckError, feedback_record

        token = self._authorised(request)
        if token is None:
            return _json({"error": "sign in"}, 401)
        if not hmac.compare_digest(request.headers.get("x-csrf-token", ""), self.csrf(token)):
            return _json({"error": "missing or wrong CSRF token; reload the page"}, 403)
        raw = await request.body()
        try:
            body = orjson.loads(raw[:MAX_BODY]) if len(raw) <= MAX_BODY else None
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("alert_id"), str):
            return _json({"error": "expected {alert_id, action, verdict?}"}, 400)
        alert_id = body["alert_id"]
        if alert_id not in self.alerts:
            return _json({"error": f"{self.agency} never received that alert"}, 404)
        verdict = body.get("verdict") if isinstance(body.get("verdict"), str) else None
        action = body.get("action") if isinstance(body.get("action"), str) else "ack"
        try:
            record = feedback_record(alert_id, self.agency, action, verdict, None, self.clock())
        except AckError as exc:
            return _json({"error": str(exc)}, 400)
        try:
            meta = await self.send_feedback(record)
        except Exception as exc:  # the broker refused or is away: say so, record nothing
            return _json({"error": f"not recorded: {type(exc).__name__}"}, 503)
        self.acks.setdefault(alert_id, self.clock())
        return _json({"recorded": {"alert_id": alert_id, "action": action,
                                   "verdict": verdict, "offset": getattr(meta, "offset", None)}})


async def follow_topic(console: Console, target: Any, topic: str) -> None:
    """Feed the console from the agency's alert topic (from the beginning, then live)."""
    from watchfloor.kafka.clients import assigned_consumer

    while True:
        consumer = None
        try:
            consumer = await assigned_consumer(target, topic, from_beginning=True)
            if consumer is None:
                await asyncio.sleep(5)
                continue
            while True:
                batch = await consumer.getmany(timeout_ms=500, max_records=2000)
                for records in batch.values():
                    for rec in records:
                        console.add_record(rec.value, rec.timestamp)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("console: reading %s failed (%s); retrying", topic, type(exc).__name__)
            await asyncio.sleep(2)
        finally:
            if consumer is not None:
                await consumer.stop()


def kafka_sender(target: Any, topic: str, timeout: float = 15.0) -> Sender:
    """Send feedback records to ``topic`` with ``acks=all`` (one producer, started lazily)."""
    from watchfloor.kafka.clients import producer as make_producer

    state: dict[str, Any] = {}

    async def send(record: dict[str, Any]) -> Any:
        if "p" not in state:
            p = make_producer(target, acks="all", request_timeout_ms=int(timeout * 1000))
            await p.start()
            state["p"] = p
        return await asyncio.wait_for(
            state["p"].send_and_wait(topic, orjson.dumps(record), key=record["alert_id"].encode()),
            timeout,
        )

    return send


__all__ = ["CSP", "Console", "follow_topic", "kafka_sender"]
