"""A `vsh web` process for the web tests: started on loopback, its URL read from stdout, stopped
with SIGTERM (and waited for) when the test is done."""

from __future__ import annotations

import http.client
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
URL = re.compile(r"^http://127\.0\.0\.1:(\d+)/\?token=([A-Za-z0-9_-]{43})$")


class Server:
    def __init__(self, env: dict | None = None, args: tuple = (), print_url: bool = True):
        env = dict(env or os.environ)
        env["PYTHONPATH"] = str(ROOT)
        self.proc = subprocess.Popen([sys.executable, "-m", "vsh", "web", *(["--print-url"] if print_url else []), *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        if not ready:
            self.stop()
            raise AssertionError("vsh web printed no URL within 30 s")
        self.first_line = self.proc.stdout.readline().rstrip("\n")
        m = URL.match(self.first_line)
        if not m:
            self.stop()
            raise AssertionError(f"unexpected first line: {self.first_line!r}: {self.proc.stderr.read()}")
        self.url = self.first_line
        self.port = int(m.group(1))
        self.token = m.group(2)
        self.origin = f"http://127.0.0.1:{self.port}"
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, headers: dict | None = None, body: bytes | None = None,
                cookies: bool = True):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        hdrs = {"Host": f"127.0.0.1:{self.port}"}
        if cookies and self.cookies:
            hdrs["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        hdrs.update(headers or {})
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        return resp, data

    def login(self):
        resp, _ = self.request("GET", f"/?token={self.token}", cookies=False)
        for value in resp.headers.get_all("Set-Cookie") or ():
            name, _, rest = value.partition("=")
            self.cookies[name] = rest.split(";")[0]
        return resp

    @property
    def csrf(self) -> str:
        return self.cookies[f"vsh_csrf_{self.port}"]

    def changing_headers(self) -> dict:
        return {"Origin": self.origin, "X-VSH-CSRF": self.csrf, "Content-Type": "application/json"}

    def stop(self, signum: int = signal.SIGTERM) -> int:
        if self.proc.stdout.closed:
            return self.proc.returncode
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.rest_stdout = self.proc.stdout.read()
        self.stderr = self.proc.stderr.read()
        self.proc.stdout.close()
        self.proc.stderr.close()
        return self.proc.returncode

    def wait_gone(self) -> None:
        deadline = time.monotonic() + 20
        while self.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
