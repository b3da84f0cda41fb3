"""The TAXII 2.1 server as a partner uses it: the OASIS ``taxii2-client`` over real HTTP
(uvicorn on a free port), each agency seeing only its own collection."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
import uvicorn
from taxii2client.v21 import Server, as_pages

from tests.alerts.conftest import KEY, T0, make_detection
from tests.conftest import free_port
from watchfloor.alerts.stage import AlertStage
from watchfloor.config import Config
from watchfloor.ops.taxii import TAXII_MEDIA, TaxiiServer
from watchfloor.ops.taxii_store import Collection
from watchfloor.ops.tokens import TokenStore


class Bearer(requests.auth.AuthBase):
    def __init__(self, token: str) -> None:
        self.token = token

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self.token}"
        return r


def agency_views(config: Config, n: int = 12) -> list[tuple[str, bytes]]:
    """(agency, alert bytes) as the alert stage publishes them, ``n`` incidents."""
    stage = AlertStage(config, KEY, clock=lambda: T0 + 60)
    out = []
    for i in range(n):
        for o in stage.process(
            make_detection(entity=f"ip:10.0.{i}.7", score=0.97, t=T0 + i, event_id=f"net-{i}")
        ):
            if o.kind in ("alert", "notice"):
                out.append((o.agency, o.value))
    return out


class Running:
    def __init__(self, server: TaxiiServer, port: int) -> None:
        self.server = server
        self.url = f"http://127.0.0.1:{port}/taxii2/"
        self._uv = uvicorn.Server(
            uvicorn.Config(server.app, host="127.0.0.1", port=port, log_level="warning")
        )
        self._thread = threading.Thread(target=self._uv.run, daemon=True)

    def __enter__(self) -> Running:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._uv.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._uv.should_exit = True
        self._thread.join(10)


@pytest.fixture
def taxii(config: Config, tmp_path: Path) -> Iterator[tuple[Running, dict[str, str]]]:
    tokens = TokenStore(tmp_path / "tokens.json")
    issued = {a: tokens.issue(a) for a in ("cert", "ctpu", "fiu")}
    agencies = list(config.agencies)
    server = TaxiiServer(
        {a.name: Collection(a.name) for a in agencies},
        {a.name: a.agreement.tlp for a in agencies},
        tokens,
        producer="National watch floor",
    )
    for i, (agency, value) in enumerate(agency_views(config)):
        server.add_record(agency, value, 1_790_000_000_000 + i)
    with Running(server, free_port()) as running:
        yield running, issued


def test_partner_discovers_its_collection_and_pages_through_it(taxii: Any) -> None:
    running, tokens = taxii
    server = Server(running.url, auth=Bearer(tokens["cert"]))
    assert server.title and len(server.api_roots) == 1
    (collection,) = server.api_roots[0].collections  # only its own collection is listed
    assert collection.can_read and not collection.can_write
    assert "cert" in collection.title
    pages = list(as_pages(collection.get_objects, per_request=5))
    assert len(pages) > 2 and all(len(p["objects"]) <= 5 for p in pages)
    objects = [o for p in pages for o in p["objects"]]
    ids = [o["id"] for o in objects]
    assert len(ids) == len(set(ids))  # latest versions only, no repeats across pages
    types = {o["type"] for o in objects}
    assert {"grouping", "ipv4-addr", "observed-data", "marking-definition"} <= types
    green = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"  # CERT: TLP:GREEN
    assert all(o.get("object_marking_refs") == [green] for o in objects
               if o["type"] != "marking-definition")


def test_added_after_polls_only_what_is_new(taxii: Any, config: Config) -> None:
    running, tokens = taxii
    (collection,) = Server(running.url, auth=Bearer(tokens["cert"])).api_roots[0].collections
    first = collection.get_objects()
    assert first["more"] is False
    manifest = collection.get_manifest()
    last_added = max(m["date_added"] for m in manifest["objects"])
    assert collection.get_objects(added_after=last_added)["objects"] == []
    # A new alert arrives: polling from the last date_added returns it and nothing older.
    stage = AlertStage(config, KEY, clock=lambda: T0 + 99)
    out = stage.process(make_detection(entity="ip:10.9.9.9", score=0.99, t=T0 + 50))
    for o in out:
        if o.kind == "alert" and o.agency == "cert":
            running.server.add_record("cert", o.value, 1_790_000_100_000)
    new = collection.get_objects(added_after=last_added)["objects"]
    assert new and any(o.get("value") == "10.9.9.9" for o in new)
    assert not any(o.get("value") == "10.0.0.7" for o in new)


def test_other_agencies_collections_do_not_exist_for_you(taxii: Any) -> None:
    running, tokens = taxii
    cert = Server(running.url, auth=Bearer(tokens["cert"])).api_roots[0].collections[0]
    # The counter-terrorism unit's token on the CERT's collection: 404, and no object leaks.
    r = requests.get(cert.url + "objects/", headers={
        "Authorization": f"Bearer {tokens['ctpu']}", "Accept": TAXII_MEDIA})
    assert r.status_code == 404 and b"10.0." not in r.content
    ctpu = Server(running.url, auth=Bearer(tokens["ctpu"])).api_roots[0].collections
    assert [c.id for c in ctpu] != [cert.id] and len(ctpu) == 1
    # The CTPU's own objects hold pseudonyms only: its agreement shows no address in clear.
    body = orjson.dumps(ctpu[0].get_objects()["objects"])
    assert b"10.0." not in body and b"ps_" in body


@pytest.mark.parametrize("header", [None, "Bearer wrong-token", "Basic Y2VydDpjZXJ0"])
def test_no_valid_token_is_401_everywhere(taxii: Any, header: str | None) -> None:
    running, _ = taxii
    base = running.url
    headers = {"Accept": TAXII_MEDIA} | ({"Authorization": header} if header else {})
    for path in ("", "api/", "api/collections/"):
        r = requests.get(base + path, headers=headers)
        assert r.status_code == 401 and "Bearer" in r.headers["WWW-Authenticate"]
        assert b'"id"' not in r.content and b"api_roots" not in r.content


def test_media_type_and_bad_queries(taxii: Any) -> None:
    running, tokens = taxii
    auth = {"Authorization": f"Bearer {tokens['fiu']}"}
    r = requests.get(running.url, headers=auth | {"Accept": "text/html"})
    assert r.status_code == 406
    r = requests.get(running.url, headers=auth | {"Accept": TAXII_MEDIA})
    assert r.headers["content-type"] == TAXII_MEDIA
    col = r.json()["default"] + "collections/"
    cid = requests.get(col, headers=auth).json()["collections"][0]["id"]
    bad = requests.get(f"{col}{cid}/objects/?added_after=yesterday", headers=auth)
    assert bad.status_code == 400 and "added_after" in bad.json()["description"]
    assert requests.post(f"{col}{cid}/objects/", headers=auth, data=b"{}").status_code == 403


def test_new_version_replaces_the_object_for_partners(config: Config, tmp_path: Path) -> None:
    c = Collection("ctpu")
    server = TaxiiServer({"ctpu": c}, {"ctpu": "amber+strict"}, TokenStore(tmp_path / "t"))
    stage = AlertStage(config, KEY, clock=lambda: T0 + 60)
    views = []
    for t, ent in ((T0, "ip:10.0.0.1"), (T0 + 5, "ip:10.0.0.1")):
        views += [o.value for o in stage.process(make_detection(entity=ent, score=0.97, t=t,
                                                               detector=f"d{t}"))
                  if o.kind == "alert" and o.agency == "ctpu"]
    assert len(views) == 2
    for i, v in enumerate(views):
        server.add_record("ctpu", v, 1_790_000_000_000 + i)
    latest, _ = c.page(None, 100)
    groupings = [e.obj for e in latest if e.obj["type"] == "grouping"]
    assert len(groupings) == 1 and groupings[0]["x_watchfloor_version"] == 2
    assert len(c.object_versions(groupings[0]["id"])) == 2
    # A replay of the same records adds nothing.
    before = len(c)
    for i, v in enumerate(views):
        server.add_record("ctpu", v, 1_790_000_000_500 + i)
    assert len(c) == before


@pytest.mark.broker
def test_collections_follow_the_alert_topics_on_the_broker(
    broker: str, config: Config, tmp_path: Path
) -> None:
    from watchfloor.kafka.clients import admin, producer, resolve
    from watchfloor.ops.taxii import feed_from_kafka

    prefix = f"taxii{time.time_ns() % 10**8}"
    topics = {"cert": f"{prefix}.alerts.cert"}

    async def publish() -> None:
        from aiokafka.admin import NewTopic

        a = admin(resolve(broker, {}))
        await a.start()
        try:
            await a.create_topics([NewTopic(topics["cert"], 1, 1)])
        finally:
            await a.close()
        p = producer(resolve(broker, {}))
        await p.start()
        try:
            for agency, value in agency_views(config, 3):
                if agency == "cert":
                    await p.send_and_wait(topics["cert"], value)
        finally:
            await p.stop()

    asyncio.run(publish())
    tokens = TokenStore(tmp_path / "tokens.json")
    token = tokens.issue("cert")
    server = TaxiiServer(
        {"cert": Collection("cert")}, {"cert": "green"}, tokens,
        feeders=lambda s: [feed_from_kafka(s, resolve(broker, {}), topics)],
    )
    with Running(server, free_port()) as running:
        (collection,) = Server(running.url, auth=Bearer(token)).api_roots[0].collections
        deadline = time.monotonic() + 30
        values: set[str] = set()
        while time.monotonic() < deadline and len(values) < 3:
            values = {o.get("value") for o in collection.get_objects()["objects"]} - {None}
            time.sleep(0.3)
        assert {"10.0.0.7", "10.0.1.7", "10.0.2.7"} <= values
