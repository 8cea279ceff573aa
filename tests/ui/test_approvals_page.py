"""The approvals page (/ui) in headless Chromium, against a real API server (uvicorn on a
loopback port), the Temporal dev server and a worker with the in-memory provider and store:
log in with a token, see the open gate of a running rotation, get refused as its requester,
approve it as another approver, and the rotation completes.

The worker and the test's Temporal client live on an event loop in a background thread, so
Selenium's blocking calls never starve them; uvicorn serves the app from its own thread.
Plus the page's guards over plain HTTP: login, cookie flags, CSRF, cross-site POSTs,
escaping, security headers.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from selenium import webdriver
from selenium.common.exceptions import (
    NoSuchElementException,
    StaleElementReferenceException,
    TimeoutException,
)
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait
from temporalio.client import Client

from keyturn.api import ApiSettings, create_app
from keyturn.api.auth import add_token
from keyturn.audit import open_log
from keyturn.codec import new_key
from keyturn.config import Settings
from keyturn.devstack.servers import TemporalDevServer
from keyturn.operations import runs
from keyturn.operations.connect import connect
from keyturn.providers import registry
from keyturn.runbook import loads, plan, validate
from keyturn.runbook.plan_model import ExecutionPlan
from keyturn.worker import build_workers, running

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflows"))
from memory_provider import MemoryProvider, MemoryStore

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
HOST = "127.0.0.1"
CRED = "ci-deployer"
RUNBOOK = f"""
apiVersion: keyturn/v1
kind: Runbook
metadata: {{name: ui-approvals, incident: INC-UI-1}}
spec:
  approvers:
    security: [alice, dave]
  stores:
    vault: {{type: vault_kv, address: "http://127.0.0.1:1", mount: secret}}
  tiers:
    - id: tier1
      name: Immediate
      credentials:
        - id: {CRED}
          provider: memory.key
          target: {{account: {CRED}}}
          deliver: [{{store: vault, path: ci/aws/deployer}}]
          gate: {{before: promote, approvals: 1, from: security, distinct: true}}
"""


class Background:
    """An asyncio event loop running in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="ui-test-loop",
                                       daemon=True)
        self.thread.start()

    def run(self, coro, timeout: float = 60.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@dataclass
class Stack:
    base_url: str
    bg: Background
    client: Client
    task_queue: str
    provider: MemoryProvider
    store: MemoryStore
    tokens: dict[str, str]

    def start_run(self, requested_by: str = "dave") -> ExecutionPlan:
        """Seed the account's old key, start the run as `requested_by`; wait for its gate."""
        key_id, secret = self.provider.seed(CRED)
        self.store.write("ci/aws/deployer", secret, {"credential_id": key_id})
        runbook = validate(loads(RUNBOOK, "ui.yaml"), known_providers=[MemoryProvider.name])
        the_plan = plan(runbook, run_id=f"ui-approvals-{uuid.uuid4().hex[:8]}",
                        requested_by=requested_by,
                        source_sha256=hashlib.sha256(RUNBOOK.encode()).hexdigest())
        self.bg.run(runs.start(self.client, the_plan, self.task_queue))
        self.bg.run(self._gate_open(the_plan.run_id))
        return the_plan

    async def _gate_open(self, run_id: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            detail = await runs.describe(self.client, run_id)
            status = detail.credentials.get(CRED)
            if status and any(g.status == "open" for g in status.gates):
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"the gate of {CRED} never opened in {run_id}")


def _serve(app, sock: socket.socket) -> tuple[uvicorn.Server, threading.Thread]:
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="ui-uvicorn",
                              daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise AssertionError("uvicorn did not start")
        time.sleep(0.02)
    return server, thread


@pytest.fixture(scope="module")
def stack(temporal_dev_server: TemporalDevServer,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("ui")
    tokens_file = tmp / "api-tokens.yaml"
    tokens = {
        "dave": add_token(tokens_file, "dave", ["operator", "approver"]),
        "alice": add_token(tokens_file, "alice", ["approver", "auditor"]),
    }
    settings = Settings(
        temporal_address=temporal_dev_server.address, namespace="default",
        task_queue=f"ui-{uuid.uuid4().hex[:8]}", audit_log=tmp / "audit.jsonl",
        codec_key=new_key(), principal="ui-test",
    )
    provider, store = MemoryProvider(), MemoryStore()
    registered = MemoryProvider.name in registry.provider_names()  # e.g. by tests/api
    registry.register(MemoryProvider)  # plans put the steps on the memory family's queue
    bg = Background()
    client = bg.run(connect(settings))

    async def serve_workers(stop: asyncio.Event) -> None:
        workers = build_workers(
            client, task_queue=settings.task_queue, audit_log=open_log(settings.audit_log),
            families=[MemoryProvider.family], rate_limits={MemoryProvider.family: 10_000},
            provider_for={provider.name: provider}.__getitem__, store_for=lambda _: store,
        )
        async with running(workers):
            await stop.wait()

    async def make_event() -> asyncio.Event:
        return asyncio.Event()

    stop = bg.run(make_event())
    workers = asyncio.run_coroutine_threadsafe(serve_workers(stop), bg.loop)
    app = create_app(ApiSettings(keyturn=settings, tokens=tokens_file, runbook_dir=tmp,
                                 known_providers=[MemoryProvider.name]))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((HOST, 0))
    server, thread = _serve(app, sock)
    try:
        yield Stack(f"http://{HOST}:{sock.getsockname()[1]}", bg, client, settings.task_queue,
                    provider, store, tokens)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
        bg.loop.call_soon_threadsafe(stop.set)
        workers.result(30)
        bg.close()
        if not registered:
            registry.unregister(MemoryProvider.name)


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.fail("install Debian packages chromium and chromium-driver (make venv does it)",
                    pytrace=False)
    options = Options()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


# ---- browser helpers ---------------------------------------------------------------------


def wait_for(driver: WebDriver, css: str, timeout: float = 10.0):
    return WebDriverWait(driver, timeout).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, css)))


def text_of(driver: WebDriver, css: str, timeout: float = 10.0) -> str:
    """The text of the element at `css`, read again if a page load replaced it meanwhile
    (a live run page reloads itself every few seconds)."""
    def read(d: WebDriver) -> str | bool:
        try:
            return d.find_element(By.CSS_SELECTOR, css).text or False
        except (NoSuchElementException, StaleElementReferenceException):
            return False
    return WebDriverWait(driver, timeout).until(read)


@contextmanager
def next_page(driver: WebDriver, timeout: float = 10.0) -> Iterator[None]:
    """Wait, after the block, until the page it started on has been replaced, so what is
    read next comes from the new page and not from the one being left."""
    old = driver.find_element(By.TAG_NAME, "html")
    yield
    WebDriverWait(driver, timeout).until(ec.staleness_of(old))


def log_in(driver: WebDriver, token: str) -> None:
    wait_for(driver, "#token").send_keys(token)
    with next_page(driver):
        driver.find_element(By.ID, "login").click()
    try:
        wait_for(driver, "#principal")
    except TimeoutException:
        raise AssertionError(driver.current_url + driver.page_source[:3000]) from None


def decide(driver: WebDriver, action: str, reason: str) -> str:
    """Fill the reason, click approve or reject, accept the confirm dialog; the flash text.
    A filled reason field holds the page's live reload back, so the form stays put."""
    form = driver.find_element(By.CSS_SELECTOR, f"#gate-{CRED} form[action$='/{action}']")
    form.find_element(By.NAME, "reason").send_keys(reason)
    with next_page(driver):
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        alert = WebDriverWait(driver, 5).until(ec.alert_is_present())
        assert f"credential gate of {CRED} (before promote)" in alert.text
        alert.accept()
    return text_of(driver, "#flash")


def run_state(driver: WebDriver) -> str:
    return text_of(driver, "#run-state")


# ---- tests ---------------------------------------------------------------------------------


def test_approve_open_gate_in_browser(stack: Stack, browser: WebDriver) -> None:
    the_plan = stack.start_run(requested_by="dave")
    run_id = the_plan.run_id
    run_url = f"{stack.base_url}/ui/runs/{run_id}"

    # Not logged in: the run page sends to the login form, which comes back to it.
    browser.get(run_url)
    assert "/ui/login" in browser.current_url
    log_in(browser, stack.tokens["dave"])
    assert browser.current_url == run_url
    assert run_state(browser) in ("running", "waiting")
    assert browser.find_element(By.TAG_NAME, "body").get_attribute("data-refresh")  # live
    assert "vault:ci/aws/deployer" in text_of(browser, f"#gate-{CRED} .gate-effect")
    # the page says why dave's approval will be refused
    assert "started this run" in text_of(browser, f"#gate-{CRED}")
    assert browser.find_element(By.ID, "audit-needs-role").is_displayed()

    # The requester tries anyway: the workflow refuses, the page shows why.
    flash = decide(browser, "approve", "I started it")
    assert "Could not approve" in flash and "distinct approver" in flash
    assert browser.find_element(By.ID, f"gate-{CRED}")  # still open

    with next_page(browser):
        browser.find_element(By.ID, "logout").click()
    assert "Logged out" in text_of(browser, "#flash")

    # alice: the runs list, then the run with its open gate.
    log_in(browser, stack.tokens["alice"])
    deadline = time.monotonic() + 15
    while not browser.find_elements(By.LINK_TEXT, run_id):  # visibility is eventually consistent
        assert time.monotonic() < deadline, "the run never appeared in the runs list"
        time.sleep(0.3)
        browser.refresh()
    with next_page(browser):
        browser.find_element(By.LINK_TEXT, run_id).click()
    assert "0/1 approvals" in text_of(browser, f"#gate-{CRED}")
    assert browser.find_element(By.ID, "audit").is_displayed()  # alice is an auditor
    if shot := os.environ.get("KEYTURN_UI_SCREENSHOT"):
        Path(shot).parent.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(shot)

    flash = decide(browser, "approve", "new key verified in staging")
    assert f"Approved {CRED} as alice: gate passed, 1/1 approvals." == flash

    final = stack.bg.run(runs.wait(stack.client, run_id))
    assert final.state == "succeeded"
    deadline = time.monotonic() + 15
    while run_state(browser) != "succeeded":
        assert time.monotonic() < deadline, f"page still shows {run_state(browser)}"
        time.sleep(0.2)
        browser.refresh()
    assert browser.find_element(By.ID, "no-open-gates")
    assert not browser.find_element(By.TAG_NAME, "body").get_attribute("data-refresh")
    audit = text_of(browser, "#audit")
    assert re.search(r"gate\s+approved\s+alice", audit)
    assert "promote" in audit and "confirm_revoked" in audit
    (new_key_id,) = stack.provider.keys[CRED]
    assert stack.store.read("ci/aws/deployer").metadata["credential_id"] == new_key_id


def _csrf(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', page)
    assert match, "no CSRF field on the page"
    return match.group(1)


def test_page_guards_over_http(stack: Stack) -> None:
    with httpx.Client(base_url=stack.base_url, follow_redirects=False, timeout=30) as http:
        response = http.get("/ui")
        assert response.status_code == 303
        assert response.headers["location"].startswith("/ui/login?next=")

        bad = http.post("/ui/login", data={"token": "kt_not-a-token", "next": "/ui"})
        assert bad.status_code == 401 and "Unknown or revoked token" in bad.text
        assert "set-cookie" not in bad.headers

        # Only pages of the UI are valid destinations after login.
        good = http.post("/ui/login", data={"token": stack.tokens["alice"],
                                            "next": "https://evil.example/"})
        assert good.status_code == 303 and good.headers["location"] == "/ui"
        cookie = good.headers["set-cookie"].lower()
        assert "keyturn_session=" in cookie and "httponly" in cookie
        assert "samesite=strict" in cookie and "path=/ui" in cookie

        page = http.get("/ui")
        assert page.status_code == 200
        for header in ("content-security-policy", "x-frame-options"):
            assert header in page.headers
        csrf = _csrf(page.text)
        action = "/ui/runs/no-such-run/gates/x/approve"

        # No or a wrong CSRF token, or a POST from another site: refused before anything runs.
        for data, headers in (({}, {}), ({"csrf_token": "0" * 64}, {}),
                              ({"csrf_token": csrf}, {"Origin": "https://evil.example"})):
            refused = http.post(action, data=data, headers=headers)
            assert refused.status_code == 403 and "CSRF" in refused.text
        # A login form posted from another site (login CSRF) is refused too.
        assert http.post("/ui/login", data={"token": stack.tokens["dave"]},
                         headers={"Origin": "https://evil.example"}).status_code == 403

        # With the token: the refusal comes back as a flash message on the run page.
        tried = http.post(action, data={"csrf_token": csrf, "reason": "<b>x</b>"})
        assert tried.status_code == 303
        shown = http.get(tried.headers["location"])
        assert shown.status_code == 404 and "Could not approve x: no run" in shown.text
        assert "&lt;b&gt;" not in shown.text  # the reason is never echoed

        # Everything is escaped.
        hostile = http.get("/ui/runs/%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E")
        assert hostile.status_code == 404
        assert "<img" not in hostile.text and "&lt;img src=x onerror=alert(1)&gt;" in hostile.text

        script = http.get("/ui/assets/ui.js")
        assert script.status_code == 200 and "javascript" in script.headers["content-type"]
        assert http.get("/ui/assets/..%2Fui.py").status_code == 404

        out = http.post("/ui/logout", data={"csrf_token": csrf})
        assert out.status_code == 303
        assert http.get("/ui").status_code == 303  # the cookie is gone
        late = http.post(action, data={"csrf_token": csrf})  # a form posted after logout
        assert late.status_code == 303 and late.headers["location"] == "/ui/login?next=%2Fui"
