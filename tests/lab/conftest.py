"""The lab page in headless Chromium, driven over the DevTools protocol.

``page`` writes the page from the repository's results/ folder once per session, opens it from
file:// in a fresh headless Chromium and yields a :class:`Page`. Without a ``chromium`` binary
(or the websocket-client package) every browser test skips with a one-line reason.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--remote-debugging-port=0", "--window-size=1400,2200"]


def chromium_binary() -> str | None:
    for name in (os.environ.get("STINGY_CHROMIUM"), "chromium", "chromium-browser"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


class Page:
    """One browser tab: send DevTools commands, evaluate JavaScript, collect console errors."""

    def __init__(self, socket):
        self.socket = socket
        self.next_id = 0
        self.errors: list[str] = []

    def _record(self, event: dict) -> None:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.errors.append(details.get("exception", {}).get("description", details["text"]))
        elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            self.errors.append(" ".join(str(a.get("value", a.get("description")))
                                        for a in params["args"]))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            self.errors.append(params["entry"]["text"])

    def send(self, method: str, params: dict | None = None, wait_event: str | None = None,
             timeout: float = 60) -> dict:
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method,
                                     "params": params or {}}))
        reply, seen_event, deadline = None, wait_event is None, time.time() + timeout
        while reply is None or not seen_event:
            if time.time() > deadline:
                raise TimeoutError(f"no answer to {method} in {timeout} s")
            message = json.loads(self.socket.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                reply = message["result"]
            else:
                self._record(message)
                seen_event = seen_event or message.get("method") == wait_event
        return reply

    def evaluate(self, expression: str):
        """The value of a JavaScript expression; numbers that JSON cannot hold come back as
        float('inf'), float('-inf') or float('nan')."""
        wrapped = (f"JSON.stringify(({expression}), (key, v) => typeof v === 'number' && "
                   f"!isFinite(v) ? String(v) : v)")
        result = self.send("Runtime.evaluate", {"expression": wrapped, "returnByValue": True})
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"]["exception"]["description"])
        value = result["result"].get("value")
        return None if value is None else json.loads(value, object_hook=_floats)

    def load(self, url: str) -> None:
        """Open ``url`` afresh (the page's default state) with its toy paused."""
        self.send("Page.navigate", {"url": url}, wait_event="Page.loadEventFired")
        self.evaluate("lab.toy.setPlaying(false)")

    def set_control(self, control: str, value) -> None:
        """Set a page control by its id, as a user moving it would."""
        self.evaluate(f"(() => {{ const el = document.getElementById('{control}'); el.value = "
                      f"'{value}'; el.dispatchEvent(new Event('input')); }})()")

    def screenshot(self, path: Path) -> Path:
        data = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        path.write_bytes(base64.b64decode(data["data"]))
        return path


SPECIAL = {"Infinity": float("inf"), "-Infinity": float("-inf"), "NaN": float("nan")}


def _floats(obj: dict) -> dict:
    return {key: SPECIAL.get(v, v) if isinstance(v, str) else
            [SPECIAL.get(x, x) if isinstance(x, str) else x for x in v] if isinstance(v, list)
            else v for key, v in obj.items()}


@pytest.fixture(scope="session")
def lab_file(tmp_path_factory) -> Path:
    from stingy.figures.lab import write_lab

    return write_lab(tmp_path_factory.mktemp("lab") / "lab.html", REPO / "results")


@pytest.fixture(scope="session")
def page(lab_file, tmp_path_factory):
    binary = chromium_binary()
    if binary is None:
        pytest.skip("chromium not found (apt-get install chromium, or set STINGY_CHROMIUM)")
    websocket = pytest.importorskip("websocket", reason="websocket-client not installed")
    profile = tmp_path_factory.mktemp("chromium-profile")
    process = subprocess.Popen([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                                "about:blank"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        port_file, deadline = profile / "DevToolsActivePort", time.time() + 60
        while not port_file.is_file() or not port_file.read_text().strip():
            if time.time() > deadline or process.poll() is not None:
                raise RuntimeError("chromium did not start its DevTools server")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list") as reply:
            target = next(t for t in json.load(reply) if t["type"] == "page")
        socket = websocket.create_connection(target["webSocketDebuggerUrl"], timeout=120,
                                             suppress_origin=True)
        page = Page(socket)
        for domain in ("Page", "Runtime", "Log"):
            page.send(f"{domain}.enable")
        page.load(lab_file.as_uri())
        yield page
        socket.close()
    finally:
        process.terminate()
        process.wait(timeout=30)
