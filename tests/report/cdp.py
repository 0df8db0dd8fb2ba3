"""A headless Chromium driven over the DevTools protocol through a pipe (``--remote-debugging-pipe``:
JSON messages separated by NUL on the browser's fds 3 and 4), with the standard library only: no
websocket package, no node.

:func:`load_page` opens a file, waits until the page has loaded and the network has been quiet
for a while (with a viewport as tall as the page, so that lazy images load too), and returns the
failed resource loads (``Network.loadingFailed``, HTTP errors, console errors, images that did not
decode), the bytes received and a full-page screenshot.
"""
from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--mute-audio", "--hide-scrollbars")


def find_chromium() -> str | None:
    """The Chromium (or Chrome) executable on PATH, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        exe = shutil.which(name)
        if exe:
            return exe
    return None


@dataclass
class PageLoad:
    url: str
    failed: list[str] = field(default_factory=list)      #: what did not load, one line each
    requests: int = 0
    bytes: int = 0                                       #: encoded bytes of every response
    screenshot: bytes = b""
    width: int = 0
    height: int = 0


class Chromium:
    """One headless browser process and its DevTools pipe."""

    def __init__(self, exe: str, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="hetred-chromium-")
        to_r, self.to_w = os.pipe()          # we write, the browser reads on its fd 3
        self.from_r, from_w = os.pipe()      # the browser writes on its fd 4, we read
        args = [exe, *FLAGS, f"--user-data-dir={self.profile}", "--remote-debugging-pipe", "about:blank"]

        def fds() -> None:                   # in the child: the pipe ends at 3 and 4, inheritable
            r, w = os.dup(to_r), os.dup(from_w)          # (Python's other fds are close-on-exec)
            os.dup2(r, 3)
            os.dup2(w, 4)
            os.set_inheritable(3, True)
            os.set_inheritable(4, True)

        self.proc = subprocess.Popen(
            args, preexec_fn=fds, close_fds=False,  # noqa: PLW1509 (no threads in the tests)
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        os.close(to_r)
        os.close(from_w)
        self.buf = b""
        self.next_id = 0
        self.events: list[dict] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        """Send a command and wait for its answer (events meanwhile are queued)."""
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.to_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            m = self._read(deadline - time.monotonic())
            if m is None:
                raise TimeoutError(f"chromium: no answer to {method} in {self.timeout:.0f} s")
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise RuntimeError(f"chromium: {method}: {m['error']}")
                return m.get("result", {})
            self.events.append(m)

    def _read(self, timeout: float) -> dict | None:
        while b"\0" not in self.buf:
            r, _, _ = select.select([self.from_r], [], [], max(0.0, timeout))
            if not r:
                return None
            chunk = os.read(self.from_r, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed its DevTools pipe: " + self._stderr())
            self.buf += chunk
        raw, self.buf = self.buf.split(b"\0", 1)
        return json.loads(raw)

    def pump(self, seconds: float) -> None:
        """Queue the events that arrive within ``seconds``."""
        end = time.monotonic() + seconds
        while True:
            m = self._read(end - time.monotonic())
            if m is None:
                return
            self.events.append(m)

    def _stderr(self) -> str:
        try:
            self.proc.kill()
            return (self.proc.communicate(timeout=5)[1] or b"").decode(errors="replace")[-500:]
        except (OSError, subprocess.TimeoutExpired):
            return ""

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self.to_w, self.from_r):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Chromium:  # noqa: PYI034
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_BROKEN_IMAGES = ("JSON.stringify(Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))"
                  ".map(i => i.getAttribute('src')))")


def load_page(exe: str, page: Path, width: int = 1280, quiet: float = 1.0, timeout: float = 60.0) -> PageLoad:
    """Load ``page`` (a file) in a headless Chromium and report what failed to load (module docstring)."""
    url = Path(page).resolve().as_uri()
    out = PageLoad(url)
    with Chromium(exe, timeout=timeout) as b:
        target = b.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        sid = b.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for dom in ("Page", "Network", "Runtime", "Log"):
            b.send(f"{dom}.enable", session=sid)
        b.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": 900, "deviceScaleFactor": 1,
                                                      "mobile": False}, session=sid)
        b.send("Page.navigate", {"url": url}, session=sid)
        _wait(b, "Page.loadEventFired", timeout)
        size = b.send("Page.getLayoutMetrics", session=sid)["cssContentSize"]
        out.width, out.height = int(size["width"]), int(size["height"])
        # a viewport as tall as the page: every lazy image is in view and loads
        b.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": min(out.height, 16000),
                                                      "deviceScaleFactor": 1, "mobile": False}, session=sid)
        _wait_quiet(b, quiet, timeout)
        broken = json.loads(b.send("Runtime.evaluate", {"expression": _BROKEN_IMAGES, "returnByValue": True},
                                   session=sid)["result"]["value"])
        shot = b.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session=sid)
        out.screenshot = base64.b64decode(shot["data"])
        _collect(b.events, out)
        out.failed += [f"image did not load: {s}" for s in broken]
    return out


def _wait(b: Chromium, method: str, timeout: float) -> None:
    end = time.monotonic() + timeout
    while not any(e.get("method") == method for e in b.events):
        if time.monotonic() > end:
            raise TimeoutError(f"chromium: no {method} in {timeout:.0f} s")
        b.pump(0.2)


def _wait_quiet(b: Chromium, quiet: float, timeout: float) -> None:
    """Until no network event for ``quiet`` seconds and none pending."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        n = len(b.events)
        b.pump(quiet)
        if len(b.events) == n and _pending(b.events) == 0:
            return


def _pending(events: list[dict]) -> int:
    started = {e["params"]["requestId"] for e in events if e.get("method") == "Network.requestWillBeSent"}
    ended = {e["params"]["requestId"] for e in events
             if e.get("method") in ("Network.loadingFinished", "Network.loadingFailed")}
    return len(started - ended)


def _collect(events: list[dict], out: PageLoad) -> None:
    urls = {}
    for e in events:
        m, p = e.get("method"), e.get("params", {})
        if m == "Network.requestWillBeSent":
            urls[p["requestId"]] = p["request"]["url"]
            out.requests += 1
        elif m == "Network.loadingFinished":
            out.bytes += int(p.get("encodedDataLength", 0))
        elif m == "Network.loadingFailed":
            out.failed.append(f"{p.get('errorText')}: {urls.get(p['requestId'], p['requestId'])}")
        elif m == "Network.responseReceived" and int(p["response"].get("status", 0) or 0) >= 400:
            out.failed.append(f"HTTP {p['response']['status']}: {p['response']['url']}")
        elif m == "Log.entryAdded" and p["entry"].get("level") == "error":
            out.failed.append(f"console: {p['entry'].get('text')} {p['entry'].get('url', '')}".strip())
        elif m == "Runtime.exceptionThrown":
            out.failed.append(f"exception: {p['exceptionDetails'].get('text')}")
