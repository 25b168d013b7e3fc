"""Headless Chromium driven through the Chrome DevTools Protocol (CDP), for tests that look at a page as a person would.

The browser is Debian's ``chromium`` package (``/usr/bin/chromium``); tests install nothing. Without it a test
skips with the reason, except under ``CI=true``, where it fails: CI must install it (``apt-get install
chromium``). The protocol is spoken over one WebSocket with the ``websockets`` library (its synchronous
client): no WebDriver binary to keep in step with the browser, no browser download, and CDP's network events
show every request the page made, so a test can prove that a page loaded nothing from another host.

Chromium runs with a fresh profile, no proxy, no background or component networking, and exits with the
:class:`Chromium` context.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

CHROMIUM = Path(os.environ.get("MLOPS_CHROMIUM", "/usr/bin/chromium"))
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-default-browser-check",
    "--no-proxy-server",  # the pages under test are on this machine
    "--remote-debugging-port=0",  # a free port, written to <user-data-dir>/DevToolsActivePort
)


def require_chromium() -> Path:
    """The browser's path; skips the test if it is not installed (fails under ``CI=true``)."""
    if CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    reason = f"headless Chromium is not installed ({CHROMIUM} is missing): apt-get install chromium"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI must install it)")
    pytest.skip(reason)


class CdpError(RuntimeError):
    """A CDP command answered with an error, or a page script threw."""


class Cdp:
    """One WebSocket connection to the browser; commands return their result, events are kept in order."""

    def __init__(self, ws_url: str) -> None:
        from websockets.sync.client import connect

        self._ws = connect(ws_url, max_size=None, open_timeout=30, proxy=None)
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None, timeout: float = 60
    ) -> dict[str, Any]:
        """Send a command and wait for its answer (events that arrive meanwhile are kept)."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        self._ws.send(json.dumps(message))
        deadline = time.monotonic() + timeout
        while True:
            data = self._receive(deadline - time.monotonic(), method)
            if data.get("id") == self._next_id:
                if "error" in data:
                    raise CdpError(f"{method}: {data['error']}")
                result: dict[str, Any] = data.get("result", {})
                return result

    def _receive(self, timeout: float, waiting_for: str) -> dict[str, Any]:
        if timeout <= 0:
            raise TimeoutError(f"no answer to {waiting_for}")
        data: dict[str, Any] = json.loads(self._ws.recv(timeout=timeout))
        if "method" in data:
            self.events.append(data)
        return data

    def pump(self, seconds: float) -> None:
        """Collect the events that arrive within ``seconds``."""
        deadline = time.monotonic() + seconds
        with contextlib.suppress(TimeoutError):
            while time.monotonic() < deadline:
                self._receive(deadline - time.monotonic(), "events")

    def close(self) -> None:
        """Close the connection."""
        self._ws.close()


@dataclass
class Page:
    """One tab, attached with a flat CDP session."""

    cdp: Cdp
    session: str
    opened: list[str] = field(default_factory=list)

    def call(self, method: str, params: dict[str, Any] | None = None, timeout: float = 60) -> dict[str, Any]:
        """A command to this tab."""
        result: dict[str, Any] = self.cdp.call(method, params, self.session, timeout)
        return result

    def _events(self, method: str) -> list[dict[str, Any]]:
        return [e["params"] for e in self.cdp.events if e.get("sessionId") == self.session and e["method"] == method]

    def goto(self, url: str, timeout: float = 60) -> None:
        """Navigate and wait for the load event's document (scripts may still be running)."""
        self.opened.append(url)
        result = self.call("Page.navigate", {"url": url}, timeout)
        if result.get("errorText"):
            raise CdpError(f"cannot open {url}: {result['errorText']}")
        self.wait_for("document.readyState === 'complete'", timeout, f"{url} to load")

    def evaluate(self, expression: str, timeout: float = 60) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        params = {"expression": expression, "returnByValue": True, "awaitPromise": True}
        result = self.call("Runtime.evaluate", params, timeout)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise CdpError(f"{expression!r} threw: {details.get('exception', {}).get('description') or details}")
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float, what: str) -> Any:
        """Poll ``expression`` until it is truthy; fail with what the page did meanwhile."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{self.diagnostics()}")
            self.cdp.pump(0.25)

    def screenshot(self, path: Path, max_height: int = 8000) -> Path:
        """A PNG of the whole page (up to ``max_height`` CSS pixels)."""
        size = self.call("Page.getLayoutMetrics")["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], max_height), "scale": 1}
        shot = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip})
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def requests(self) -> list[str]:
        """Every URL this tab requested (navigations, scripts, styles, fetches), in order."""
        return [p["request"]["url"] for p in self._events("Network.requestWillBeSent")]

    def responses(self) -> dict[str, int]:
        """Status of the last response per URL."""
        return {p["response"]["url"]: p["response"]["status"] for p in self._events("Network.responseReceived")}

    def blocked_by_policy(self) -> list[str]:
        """URLs the page's Content-Security-Policy kept the browser from requesting (never sent)."""
        urls = {p["requestId"]: p["request"]["url"] for p in self._events("Network.requestWillBeSent")}
        return [
            urls.get(p["requestId"], p["requestId"])
            for p in self._events("Network.loadingFailed")
            if p.get("blockedReason") == "csp"
        ]

    def failures(self) -> list[str]:
        """Requests that failed at the network level (refused, name not resolved...), except those of
        :meth:`blocked_by_policy`."""
        urls = {p["requestId"]: p["request"]["url"] for p in self._events("Network.requestWillBeSent")}
        return [
            f"{urls.get(p['requestId'], p['requestId'])}: {p['errorText']}"
            for p in self._events("Network.loadingFailed")
            if p.get("blockedReason") != "csp"
        ]

    def errors(self) -> list[str]:
        """Uncaught exceptions and console errors of the page."""
        thrown = [
            p["exceptionDetails"].get("exception", {}).get("description") or p["exceptionDetails"].get("text", "")
            for p in self._events("Runtime.exceptionThrown")
        ]
        console = [
            " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
            for p in self._events("Runtime.consoleAPICalled")
            if p.get("type") == "error"
        ]
        return thrown + console

    def foreign_requests(self, *allowed_origins: str) -> list[str]:
        """Requested URLs (http, https, ws) whose origin is none of ``allowed_origins`` (sent, not blocked)."""
        allowed = {_origin(o) for o in allowed_origins}
        blocked = set(self.blocked_by_policy())
        return [
            u
            for u in self.requests()
            if urlsplit(u).scheme in ("http", "https", "ws", "wss") and _origin(u) not in allowed and u not in blocked
        ]

    def diagnostics(self) -> str:
        """What to print when a wait fails: requests and their status, failures, errors, the page's text."""
        responses = self.responses()
        lines = [f"  {responses.get(u, '-')} {u}" for u in self.requests()]
        with contextlib.suppress(Exception):
            text = str(self.evaluate("document.body ? document.body.innerText.slice(0, 1500) : ''", timeout=10))
            lines.append(f"page text: {text!r}")
        return "\n".join(["requests:", *lines, f"failures: {self.failures()}", f"errors: {self.errors()}"])


def _origin(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443, "ws": 80, "wss": 443}.get(parts.scheme)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


class Chromium:
    """``with Chromium() as browser: page = browser.new_page()``: a headless browser with a fresh profile."""

    def __init__(self, window: tuple[int, int] = (1366, 900)) -> None:
        self.binary = require_chromium()
        self.window = window
        self._profile: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._cdp: Cdp | None = None

    def __enter__(self) -> Chromium:
        self._profile = Path(tempfile.mkdtemp(prefix="mlops-chromium-"))
        log = self._profile / "chromium.log"
        cmd = [str(self.binary), *FLAGS, f"--user-data-dir={self._profile}", "--window-size={},{}".format(*self.window)]
        with log.open("wb") as out:
            self._proc = subprocess.Popen([*cmd, "about:blank"], stdout=out, stderr=subprocess.STDOUT)
        try:
            self._cdp = Cdp(self._browser_ws(log))
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _browser_ws(self, log: Path, timeout: float = 60) -> str:
        assert self._profile is not None and self._proc is not None
        active = self._profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {self._proc.returncode}:\n{log.read_text()[-3000:]}")
            lines = active.read_text().split() if active.is_file() else []
            if len(lines) >= 2:
                return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
            time.sleep(0.1)
        raise TimeoutError(
            f"chromium did not open its DevTools port within {timeout:.0f} s:\n{log.read_text()[-3000:]}"
        )

    def new_page(self) -> Page:
        """A new tab with network, page and runtime events on."""
        assert self._cdp is not None
        target = self._cdp.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self._cdp.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self._cdp, session)
        for domain in ("Page", "Network", "Runtime"):
            page.call(f"{domain}.enable")
        width, height = self.window
        page.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        return page

    def __exit__(self, *exc: object) -> None:
        if self._cdp is not None:
            with contextlib.suppress(Exception):
                self._cdp.call("Browser.close", timeout=10)
            with contextlib.suppress(Exception):
                self._cdp.close()
            self._cdp = None
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(10)
            if self._proc.poll() is None:
                self._proc.kill()
                self._proc.wait(10)
            self._proc = None
        if self._profile is not None:
            shutil.rmtree(self._profile, ignore_errors=True)
            self._profile = None


@contextlib.contextmanager
def chromium_page() -> Iterator[Page]:
    """A tab of a browser of its own, closed afterwards."""
    with Chromium() as browser:
        yield browser.new_page()
