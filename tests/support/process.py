"""Plumbing shared by the test harnesses of real servers: a subprocess with its own log file, and
JSON over HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


class LoggedProcess:
    """A server subprocess in its own session, logging to `log_path`; `stop()` ends its group."""

    def __init__(self, log_path: Path):
        self.log_path = Path(log_path)
        self.proc: subprocess.Popen | None = None

    def launch(self, args: Sequence[str], *, cwd: Path, env: Mapping[str, str]) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(list(args), cwd=cwd, env=dict(env), stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM, then SIGKILL to the whole process group after `timeout` seconds."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def request_json(method: str, url: str, body: Any = None, headers: Mapping[str, str] | None = None,
                 timeout: float = 60) -> tuple[int, Any]:
    """One HTTP request with a JSON body; returns (status, parsed JSON, or text when not JSON)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")
