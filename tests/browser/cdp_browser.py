"""Headless Chromium driven over the Chrome DevTools Protocol (a websocket), for the browser tests.

Imported by tests as ``from cdp_browser import ...`` (pytest puts this folder on sys.path).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect

CHROMIUM_CANDIDATES = ("/usr/lib/chromium/chromium", "/usr/bin/chromium", "chromium", "chromium-browser")


def find_chromium() -> str | None:
    """Path of an executable Chromium, or None."""
    for c in CHROMIUM_CANDIDATES:
        path = c if os.path.isabs(c) else shutil.which(c)
        if path and os.access(path, os.X_OK):
            return path
    return None


def require_chromium() -> str:
    """Chromium's path; skips the test when it is not installed."""
    path = find_chromium()
    if path is None:
        pytest.skip("Chromium is not installed (apt-get install chromium): browser tests skipped")
    return path


@functools.cache
def monitor_helpers() -> Any:
    """The monitor tests' helpers module (tiny level-dependent ONNX model, speech-like signals),
    imported by path: its folder's conftest.py would clash with other folders' as a module name."""
    path = Path(__file__).resolve().parents[1] / "monitor" / "monitor_helpers.py"
    spec = importlib.util.spec_from_file_location("samos_monitor_test_helpers", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Cdp:
    """A minimal Chrome DevTools Protocol client over one target's websocket."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._id = 0

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        await self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            msg = json.loads(await self.ws.recv())
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise RuntimeError(f"CDP {method}: {msg['error']}")
                return msg["result"]

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page error evaluating {expression!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(
        self, expression: str, timeout: float, what: str, debug: str = "document.title"
    ) -> Any:
        """Poll ``expression`` until it is truthy; fail after ``timeout`` s showing ``debug``'s value."""
        deadline = time.monotonic() + timeout
        error: RuntimeError | None = None
        while True:
            try:
                value = await self.evaluate(expression)
            except RuntimeError as e:  # still loading: e.g. document.body is null for a moment
                value, error = None, e
            if value:
                return value
            if time.monotonic() > deadline:
                said = await self.evaluate(debug)
                raise AssertionError(f"{what} within {timeout:g} s; page says {said!r}; last error: {error}")
            await asyncio.sleep(0.25)


class Browser:
    """Headless Chromium with a fake microphone playing a wav, driven over the DevTools Protocol."""

    def __init__(self, path: str, wav: Path) -> None:
        self.path = path
        self.wav = wav
        self.profile = Path(tempfile.mkdtemp(prefix="samos-chromium-"))
        self.proc: asyncio.subprocess.Process | None = None
        self.port: int | None = None
        self._sockets: list[ClientConnection] = []
        self._http: aiohttp.ClientSession | None = None

    def args(self) -> list[str]:
        return [
            self.path,
            "--headless=new",
            "--no-sandbox",  # required as root
            "--disable-gpu",
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={self.wav}",
            "--autoplay-policy=no-user-gesture-required",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--disable-extensions",
            "--disable-dev-shm-usage",
            "--disable-renderer-backgrounding",
            "--disable-background-timer-throttling",
            "--disable-backgrounding-occluded-windows",
            "--mute-audio",
            "--no-first-run",
            "--no-default-browser-check",
            f"--user-data-dir={self.profile}",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            "about:blank",
        ]

    async def start(self, timeout: float = 20.0) -> None:
        self.log = self.profile / "stderr.log"
        with self.log.open("wb") as log:  # a file, not a pipe: a full pipe would stall the browser
            self.proc = await asyncio.create_subprocess_exec(
                *self.args(), stdout=subprocess.DEVNULL, stderr=log, start_new_session=True
            )
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.proc.returncode is not None:
                raise RuntimeError(f"chromium exited with {self.proc.returncode}: {self.stderr_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError("chromium did not open its DevTools port")
            await asyncio.sleep(0.1)
        self.port = int(port_file.read_text().split()[0])
        self._http = aiohttp.ClientSession()

    def stderr_tail(self, chars: int = 2000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    async def open(self, url: str) -> Cdp:
        """Open ``url`` in a new tab; returns a CDP client attached to it."""
        assert self._http is not None
        new = f"http://127.0.0.1:{self.port}/json/new?{quote(url, safe='')}"
        async with self._http.put(new) as resp:
            target = await resp.json()
        ws = await ws_connect(target["webSocketDebuggerUrl"], max_size=None)
        self._sockets.append(ws)
        return Cdp(ws)

    async def stop(self) -> None:
        for ws in self._sockets:
            with contextlib.suppress(Exception):
                await ws.close()
        if self._http is not None:
            await self._http.close()
        if self.proc is not None and self.proc.returncode is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # the browser's own process group (start_new_session)
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                os.killpg(self.proc.pid, signal.SIGKILL)
                await self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)
