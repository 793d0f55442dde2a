"""The hub's side of the server starter (server_starter.py): start it, ask it, restart it.

`StarterClient.start_server` is blocking (run it in a thread). The starter is started on first use,
in a new 0700 root folder under /run, with a minimal environment (nothing that the pre-imported
modules would read at import), and ends with the hub (its stdin is a pipe from the hub). A starter
that has died is started again on the next request, and the hub's log says so.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

from .server_starter import StartRequest

READY_TIMEOUT = 120  # seconds for the starter's imports (a few CPU seconds on a busy machine)
ANSWER_TIMEOUT = 120  # seconds for one start (a fork and the steps before server code)
KEPT_VARIABLES = ("PATH", "LANG", "LC_ALL")  # the starter's whole environment (of the hub's)


class StarterError(RuntimeError):
    """The starter could not be started or reached, or it refused a start; the message says why."""


class FreshInterpreterNeeded(StarterError):
    """The starter's child found it needs a fresh interpreter; nothing of it ran (start it so)."""


class StarterClient:
    """One starter per hub process; thread-safe (spawns run `start_server` in threads)."""

    def __init__(self, log_path: str | None = None, log: logging.Logger | None = None,
                 preimport: str | None = None):
        self.log_path = log_path
        self.preimport = preimport  # the starter's `--preimport` module (None: the servers' code)
        self.log = log or logging.getLogger(__name__)
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._folder = ""

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    @property
    def socket_path(self) -> str:
        return os.path.join(self._folder, "starter.sock")

    def start_server(self, request: StartRequest) -> int:
        """The pid of the server started for `request`; StarterError if it was not started."""
        self._ensure_running()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.settimeout(ANSWER_TIMEOUT)
                conn.connect(self.socket_path)
                conn.sendall(request.to_json())
                raw = b""
                while not raw.endswith(b"\n"):
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    raw += chunk
        except OSError as e:
            raise StarterError(f"the server starter could not be reached ({e}); it is started "
                               f"again on the next spawn") from None
        if not raw:
            raise StarterError("the server starter ended during the start; it is started again "
                               "on the next spawn")
        answer = json.loads(raw)
        if "error" in answer:
            raise (FreshInterpreterNeeded if answer.get("fresh") else StarterError)(answer["error"])
        return int(answer["pid"])

    def stop(self) -> None:
        with self._lock:
            self._stop_locked()

    def _stop_locked(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.terminate()
                try:
                    self._proc.wait(10)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
            if self._proc.stdin is not None:
                self._proc.stdin.close()
            self._proc = None
        if self._folder:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = ""

    def _ensure_running(self) -> None:
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                return
            if self._proc is not None:
                self.log.warning("The server starter (pid %s) ended with status %s; starting a "
                                 "new one", self._proc.pid, self._proc.returncode)
                self._stop_locked()
            self._start_locked()

    def _start_locked(self) -> None:
        self._folder = tempfile.mkdtemp(prefix="qhub-starter-", dir="/run")  # 0700, root's
        env = {name: os.environ[name] for name in KEPT_VARIABLES if name in os.environ}
        env.setdefault("LANG", "C.UTF-8")
        log = open(self.log_path, "ab") if self.log_path else None  # noqa: SIM115 - the child's
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-s", "-P", "-m", "qhub_hub.local.server_starter", self.socket_path,
                 *(["--preimport", self.preimport] if self.preimport else [])],
                env=env, cwd="/", stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=log if log is not None else None, start_new_session=True)
        finally:
            if log is not None:
                log.close()
        assert self._proc.stdout is not None
        deadline = time.monotonic() + READY_TIMEOUT
        line = b""
        # the starter prints "ready" once it listens (after its imports)
        while time.monotonic() < deadline and self._proc.poll() is None:
            ready, _, _ = _select([self._proc.stdout], deadline - time.monotonic())
            if ready:
                line = self._proc.stdout.readline()
                break
        if line.strip() != b"ready":
            status = self._proc.poll()
            self._stop_locked()
            raise StarterError(f"the server starter did not start (status {status}; its errors are "
                               f"in {self.log_path or 'the hub output'})")
        self.log.info("Server starter running (pid %s, socket %s)", self._proc.pid, self.socket_path)


def _select(files: list, timeout: float) -> tuple[list, list, list]:
    import select

    return select.select(files, [], [], max(timeout, 0))
