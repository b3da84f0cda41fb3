"""``watchfloor taxii serve``: a TAXII 2.1 server over the agencies' alert topics.

One API root (``/taxii2/api/``) with one read-only collection per agency. An agency
authenticates with a bearer token (``watchfloor taxii token AGENCY``) and sees only its
own collection — the same need-to-know boundary the broker enforces: another agency's
collection answers 404 (its existence is not confirmed), a request without a valid
token 401. What a collection holds is exactly what the agency's alert topic holds (its
agreement already applied), as STIX 2.1 objects marked with the agreement's TLP level.

Endpoints (TAXII 2.1 sections 4 and 5): discovery, API root, collections, a collection, its objects
(``added_after``, ``limit``, ``next``, ``match[id]``, ``match[type]``,
``match[version]=last|all``), one object, and its manifest. Responses use the TAXII
media type and carry ``X-TAXII-Date-Added-First``/``-Last``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from watchfloor.alerts.stix import alert_bundle
from watchfloor.ops.taxii_store import Collection, Entry, parse_taxii_time, taxii_time
from watchfloor.ops.tokens import TokenStore, bearer

log = logging.getLogger(__name__)

TAXII_MEDIA = "application/taxii+json;version=2.1"
STIX_MEDIA = "application/stix+json;version=2.1"
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
ROOT_PATH = "/taxii2/api/"


def _json(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers=dict(headers or {}), media_type=TAXII_MEDIA)


def _error(status: int, title: str, description: str = "") -> Response:
    body = {"title": title, "http_status": str(status)}
    if description:
        body["description"] = description
    headers = {"WWW-Authenticate": 'Bearer realm="watchfloor"'} if status == 401 else None
    return _json(body, status, headers)


def _accepts(request: Request, media: str) -> bool:
    accept = request.headers.get("accept", "")
    if not accept:
        return True
    wanted = media.split(";")[0]
    return any(
        part.split(";")[0].strip() in (wanted, "*/*", "application/*")
        for part in accept.split(",")
    )


class TaxiiServer:
    """The TAXII application and the collections it serves (fed by :meth:`add_record`)."""

    def __init__(
        self,
        collections: Mapping[str, Collection],
        tlp: Mapping[str, str],
        tokens: TokenStore,
        producer: str = "watchfloor",
        title: str = "watchfloor TAXII 2.1",
        feeders: Callable[[TaxiiServer], list[Any]] | None = None,
    ) -> None:
        self.collections = dict(collections)
        self.by_id = {c.id: c for c in self.collections.values()}
        self.tlp = dict(tlp)
        self.tokens = tokens
        self.producer = producer
        self.title = title
        self._feeders = feeders
        self.app = Starlette(
            routes=[
                Route("/taxii2/", self.discovery),
                Route(ROOT_PATH, self.api_root),
                Route(ROOT_PATH + "collections/", self.list_collections),
                Route(ROOT_PATH + "collections/{cid}/", self.get_collection),
                Route(ROOT_PATH + "collections/{cid}/objects/", self.objects,
                      methods=["GET", "POST"]),
                Route(ROOT_PATH + "collections/{cid}/objects/{oid}/", self.one_object),
                Route(ROOT_PATH + "collections/{cid}/manifest/", self.manifest),
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
    def add_record(self, agency: str, value: bytes | None, appended_ms: int) -> int:
        """Add one record of an agency's alert topic; return the objects added. Records
        that are not alerts (deconfliction notices) or not JSON objects are skipped."""
        collection = self.collections.get(agency)
        if collection is None or not value:
            return 0
        try:
            view = orjson.loads(value)
        except orjson.JSONDecodeError:
            return 0
        if not isinstance(view, dict) or view.get("kind", "alert") != "alert":
            return 0
        bundle = alert_bundle(view, self.tlp[agency], self.producer)
        return sum(collection.add(obj, appended_ms) is not None for obj in bundle["objects"])

    # -- authentication -------------------------------------------------------------
    def _agency(self, request: Request) -> str | None:
        return self.tokens.agency(bearer(request.headers.get("authorization")))

    def _guard(self, request: Request, media: str = TAXII_MEDIA) -> Response | str:
        agency = self._agency(request)
        if agency is None:
            return _error(401, "authentication required", "send Authorization: Bearer <token>")
        if not _accepts(request, media):
            return _error(406, "not acceptable", f"this endpoint serves {media}")
        return agency

    def _collection(self, request: Request, agency: str) -> Collection | Response:
        c = self.by_id.get(request.path_params["cid"])
        if c is None or c.agency != agency:
            # Another agency's collection is indistinguishable from a missing one.
            return _error(404, "no such collection")
        return c

    def _describe(self, c: Collection) -> dict[str, Any]:
        return {
            "id": c.id,
            "title": f"alerts for {c.agency}",
            "description": f"Alerts shared with {c.agency} under its agreement "
            f"(TLP:{self.tlp[c.agency].upper()})",
            "can_read": True,
            "can_write": False,
            "media_types": [STIX_MEDIA],
        }

    # -- endpoints ------------------------------------------------------------------
    async def discovery(self, request: Request) -> Response:
        guard = self._guard(request)
        if isinstance(guard, Response):
            return guard
        root = str(request.base_url).rstrip("/") + ROOT_PATH
        return _json({"title": self.title, "default": root, "api_roots": [root]})

    async def api_root(self, request: Request) -> Response:
        guard = self._guard(request)
        if isinstance(guard, Response):
            return guard
        return _json(
            {"title": self.title, "versions": [TAXII_MEDIA], "max_content_length": 0}
        )

    async def list_collections(self, request: Request) -> Response:
        guard = self._guard(request)
        if isinstance(guard, Response):
            return guard
        return _json({"collections": [self._describe(self.collections[guard])]})

    async def get_collection(self, request: Request) -> Response:
        guard = self._guard(request)
        if isinstance(guard, Response):
            return guard
        c = self._collection(request, guard)
        return c if isinstance(c, Response) else _json(self._describe(c))

    def _query(self, request: Request, c: Collection) -> tuple[list[Entry], bool] | Response:
        q = request.query_params
        try:
            limit = min(MAX_LIMIT, max(1, int(q.get("limit", DEFAULT_LIMIT))))
            after_seq = int(q.get("next") or "0")
            added_after = parse_taxii_time(q["added_after"]) if "added_after" in q else None
        except (ValueError, OverflowError):
            return _error(400, "bad query", "limit and next are integers, added_after a "
                          "timestamp like 2026-11-24T21:04:05.000Z")
        ids = frozenset(q["match[id]"].split(",")) if "match[id]" in q else None
        types = frozenset(q["match[type]"].split(",")) if "match[type]" in q else None
        all_versions = q.get("match[version]", "last") == "all"
        return c.page(added_after, limit, after_seq, ids, types, all_versions)

    @staticmethod
    def _range_headers(entries: list[Entry]) -> dict[str, str]:
        if not entries:
            return {}
        return {
            "X-TAXII-Date-Added-First": taxii_time(entries[0].added_us),
            "X-TAXII-Date-Added-Last": taxii_time(entries[-1].added_us),
        }

    async def objects(self, request: Request) -> Response:
        guard = self._guard(request)
        if isinstance(guard, Response):
            return guard
        c = self._collection(request, guard)
        if isinstance(c, Response):
            return c
        if request.method == "POST":
            return _error(403, "read-only collection", "alerts are published by the worker")
        found = self._query(request, c)
        if isinstance(found, Response):
            return found
        entries, more = found
        body: dict[str, Any] = {"more": more, "objects": [e.obj for e in entries]}
        if more:
            body["next"] = str(entries[-1].seq)
        return _json(body, headers=self._range_headers(entries))

    async def one_object(self, request: Request) -> Response:
        guard = self._guard(request)
        if isinstance(guard, Response):
            return guard
        c = self._collection(request, guard)
        if isinstance(c, Response):
            return c
        versions = c.object_versions(request.path_params["oid"])
        if not versions:
            return _error(404, "no such object")
        if request.query_params.get("match[version]", "last") != "all":
            versions = versions[-1:]
        return _json({"more": False, "objects": [e.obj for e in versions]},
                     headers=self._range_headers(versions))

    async def manifest(self, request: Request) -> Response:
        guard = self._guard(request)
        if isinstance(guard, Response):
            return guard
        c = self._collection(request, guard)
        if isinstance(c, Response):
            return c
        found = self._query(request, c)
        if isinstance(found, Response):
            return found
        entries, more = found
        body: dict[str, Any] = {
            "more": more,
            "objects": [
                {"id": e.obj["id"], "date_added": taxii_time(e.added_us), "version": e.version,
                 "media_type": STIX_MEDIA}
                for e in entries
            ],
        }
        if more:
            body["next"] = str(entries[-1].seq)
        return _json(body, headers=self._range_headers(entries))


async def feed_from_kafka(server: TaxiiServer, target: Any, topics: Mapping[str, str]) -> None:
    """Follow each agency's alert topic from the beginning and add what arrives."""
    from watchfloor.kafka.clients import assigned_consumer

    async def follow(agency: str, topic: str) -> None:
        while True:
            consumer = None
            try:
                consumer = await assigned_consumer(target, topic, from_beginning=True)
                if consumer is None:
                    await asyncio.sleep(5)  # topic not created yet
                    continue
                while True:
                    batch = await consumer.getmany(timeout_ms=1000, max_records=2000)
                    for records in batch.values():
                        for rec in records:
                            server.add_record(agency, rec.value, rec.timestamp)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # broker outage: keep serving what we have, retry
                log.warning("taxii: reading %s failed (%s); retrying", topic, type(exc).__name__)
                await asyncio.sleep(2)
            finally:
                if consumer is not None:
                    await consumer.stop()

    await asyncio.gather(*(follow(a, t) for a, t in topics.items()))


__all__ = ["STIX_MEDIA", "TAXII_MEDIA", "TaxiiServer", "feed_from_kafka"]
