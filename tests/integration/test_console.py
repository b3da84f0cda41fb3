"""The operations-centre console in a real browser (Debian's headless Chromium via
Selenium) against the real worker: an alert the test causes appears without a reload,
the analyst acknowledges it, and the acknowledgement reaches the agency's feedback topic
and the worker's response-latency metric. Another agency's token does not open it."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from tests.browser import chromium
from tests.conftest import ROOT, free_port
from tests.integration.conftest import Worker, metric_value
from tests.integration.test_pipeline import port_scan
from tests.kafka_helpers import collect, end_offsets, produce, run
from watchfloor.config import Config
from watchfloor.kafka.clients import resolve
from watchfloor.ops.console import CSP, Console, follow_topic, kafka_sender
from watchfloor.ops.tokens import TokenStore

pytestmark = pytest.mark.broker
ARTIFACTS = ROOT / "artifacts"


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium() as driver:
        yield driver


class Served:
    def __init__(self, console: Console, port: int) -> None:
        self.console = console
        self.url = f"http://127.0.0.1:{port}"
        self._uv = uvicorn.Server(uvicorn.Config(console.app, host="127.0.0.1", port=port,
                                                 log_level="warning"))
        self._t = threading.Thread(target=self._uv.run, daemon=True)

    def __enter__(self) -> Served:
        self._t.start()
        deadline = time.monotonic() + 20
        while not self._uv.started:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._uv.should_exit = True
        self._t.join(10)


def wait_for(cond: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def test_console_shows_live_alert_and_ack_reaches_worker(
    worker: Worker, config: Config, browser: Any, tmp_path: Path
) -> None:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By

    b = worker.bootstrap
    cert = next(a for a in config.agencies if a.name == "cert")
    feedback_topic = config.feedback_topics["cert"].name
    tokens = TokenStore(tmp_path / "tokens.json")
    cert_token, ctpu_token = tokens.issue("cert"), tokens.issue("ctpu")
    target = resolve(b, {})
    console = Console("cert", tokens, kafka_sender(target, feedback_topic),
                      feeders=lambda c: [follow_topic(c, target, cert.topic)])
    with Served(console, free_port()) as served:
        # Another agency's token does not open the CERT's console.
        browser.get(served.url + "/login")
        browser.find_element(By.ID, "token").send_keys(ctpu_token)
        browser.find_element(By.ID, "sign-in").click()
        # The refusal is a new page: wait for it rather than racing the navigation.
        wait_for(lambda: "does not open this console" in " ".join(
            e.text for e in browser.find_elements(By.ID, "login-error")), 20, "the refusal")
        browser.get(served.url + "/")
        assert "/login" in browser.current_url

        wait_for(lambda: browser.find_elements(By.ID, "token"), 20, "the sign-in form")
        browser.find_element(By.ID, "token").send_keys(cert_token)
        browser.find_element(By.ID, "sign-in").click()
        wait_for(lambda: any(e.text == "live" for e in browser.find_elements(By.ID, "status")),
                 30, "live stream")

        # Cause a CERT alert now, while the page is open: it must appear without a reload.
        ip = f"10.77.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250 + 1}"
        start = run(end_offsets(b, feedback_topic))
        run(produce(b, "events.network", port_scan(ip, int(time.time() * 1000))))

        def our_card() -> tuple[str, str] | None:
            # The list re-renders as alerts arrive: elements can go stale between calls.
            try:
                for card in browser.find_elements(By.CSS_SELECTOR, "li.alert"):
                    text = card.text
                    if ip in text:
                        return card.get_attribute("data-alert-id"), text
            except StaleElementReferenceException:
                pass
            return None

        alert_id, text = wait_for(our_card, 90, f"an alert about {ip} on the page")
        assert "port_scan" in text

        def card_text() -> str:
            try:
                return browser.find_element(By.ID, f"alert-{alert_id}").text
            except (StaleElementReferenceException, NoSuchElementException):
                return ""
        # Nothing outside the CERT's agreement on this screen: every incident shown is a
        # network one (other domains' incidents go to other agencies' topics).
        for domains in browser.find_elements(By.CSS_SELECTOR, "li.alert .domains"):
            assert "network" in domains.text, domains.text
        before = metric_value(worker.metrics(), "watchfloor_response_latency_seconds_count",
                              agency="cert")
        def click_ack() -> bool:
            try:
                browser.find_element(By.CSS_SELECTOR, f"#alert-{alert_id} button.ack").click()
                return True
            except (StaleElementReferenceException, NoSuchElementException):
                return False

        wait_for(click_ack, 20, "the Acknowledge button")
        wait_for(lambda: "recorded: ack" in card_text(), 20,
                 "the page to say the ack was recorded")
        ARTIFACTS.mkdir(exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "console-cert.png"))

    acks = run(collect(b, feedback_topic, lambda r: any(x.get("alert_id") == alert_id for x in r),
                       timeout=30, start=start))
    ours = [r for r in acks if r.get("alert_id") == alert_id]
    assert ours and ours[0]["action"] == "ack" and ours[0]["agency"] == "cert"
    wait_for(lambda: metric_value(worker.metrics(), "watchfloor_response_latency_seconds_count",
                                  agency="cert") > before, 30,
             "the worker's response-latency metric to count the ack")


def test_console_headers_and_csrf(config: Config, tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    tokens = TokenStore(tmp_path / "tokens.json")
    token = tokens.issue("cert")
    sent: list[dict[str, Any]] = []

    async def send(record: dict[str, Any]) -> Any:
        sent.append(record)

    console = Console("cert", tokens, send)
    console.add_record(b'{"alert_id": "wf-1", "version": 1, "kind": "alert", '
                       b'"severity": "high", "entities": [{"type": "ip", "id": "<img src=x>"}]}',
                       1_790_000_000_000)
    with TestClient(console.app) as client:
        page = client.get("/", follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"] == "/login"
        client.post("/login", data={"token": token}, follow_redirects=False)
        page = client.get("/")
        assert page.headers["content-security-policy"] == CSP
        assert "'unsafe-inline'" not in CSP and "http" not in CSP
        assert "<img src=x>" not in page.text  # event data is never templated into HTML
        # No CSRF token: refused; with it: recorded through the ack checks.
        r = client.post("/api/feedback", json={"alert_id": "wf-1", "action": "ack"})
        assert r.status_code == 403 and not sent
        csrf = console.csrf(token)
        r = client.post("/api/feedback", json={"alert_id": "wf-1", "action": "escalate"},
                        headers={"X-CSRF-Token": csrf})
        assert r.status_code == 400 and "needs --verdict" in r.json()["error"]
        r = client.post("/api/feedback", json={"alert_id": "wf-2", "action": "ack"},
                        headers={"X-CSRF-Token": csrf})
        assert r.status_code == 404 and not sent  # never delivered to this agency
        r = client.post("/api/feedback", json={"alert_id": "wf-1", "action": "ack"},
                        headers={"X-CSRF-Token": csrf})
        assert r.status_code == 200 and sent[0]["agency"] == "cert"
        assert client.get("/static/../console.py").status_code == 404
