"""A headless Chromium driven over the Chrome DevTools Protocol on a pipe
(--remote-debugging-pipe: commands on fd 3, answers and events on fd 4,
NUL-separated JSON), so the tests need no websocket library and no network
beyond loopback."""

import json
import os
import shutil
import subprocess
import tempfile


def chromium_binary():
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    def __init__(self, timeout=60):
        self.profile = tempfile.mkdtemp(prefix="pyexec-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # Out of the way of 3 and 4, which the child's ends must become.
        hi_r = os.dup2(to_browser_r, 100)
        hi_w = os.dup2(from_browser_w, 101)
        os.close(to_browser_r)
        os.close(from_browser_w)

        def wire():
            os.dup2(hi_r, 3)
            os.dup2(hi_w, 4)

        self.proc = subprocess.Popen(
            [chromium_binary(), "--headless", "--remote-debugging-pipe", "--no-sandbox",
             "--disable-gpu", "--no-first-run", "--no-default-browser-check",
             "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--disable-extensions", f"--user-data-dir={self.profile}",
             "about:blank"],
            # 3 and 4 are kept too: the child's fds are closed after wire() runs.
            pass_fds=(3, 4, hi_r, hi_w), preexec_fn=wire, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(hi_r)
        os.close(hi_w)
        self._buf = b""
        self._next_id = 0
        self.timeout = timeout
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target,
                                 flatten=True)["sessionId"]

    def _read_message(self):
        while b"\0" not in self._buf:
            chunk = os.read(self._from_browser, 65536)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method, session=None, **params):
        """Sends one command and returns its result (events are skipped)."""
        self._next_id += 1
        msg = {"id": self._next_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        os.write(self._to_browser, json.dumps(msg).encode() + b"\0")
        while True:
            m = self._read_message()
            if m.get("id") == self._next_id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m["result"]

    def page(self, method, **params):
        return self.call(method, session=self.session, **params)

    def wait_event(self, name):
        """Reads until the page's event `name` arrives."""
        while True:
            m = self._read_message()
            if m.get("method") == name and m.get("sessionId") == self.session:
                return m.get("params", {})

    def navigate(self, url):
        self.page("Page.enable")
        self.page("Page.navigate", url=url)
        self.wait_event("Page.loadEventFired")

    def evaluate(self, expression):
        """Runs `expression` in the page, awaiting a promise; returns its
        value, or raises with the page's exception."""
        r = self.page("Runtime.evaluate", expression=expression, awaitPromise=True,
                      returnByValue=True, timeout=self.timeout * 1000)
        if "exceptionDetails" in r:
            raise RuntimeError(r["exceptionDetails"].get("exception", {}).get(
                "description", r["exceptionDetails"]))
        return r["result"].get("value")

    def close(self):
        try:
            self.call("Browser.close")
        except (RuntimeError, OSError):
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)
        shutil.rmtree(self.profile, ignore_errors=True)
