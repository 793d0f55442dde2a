"""Small helpers for tests that run real servers on loopback."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (tests never use fixed ports: suites run side by side)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, timeout: float = 60, ok_statuses=(200, 302, 401, 403, 404)) -> None:
    """Poll `url` until it answers with one of `ok_statuses`; raise TimeoutError naming the url."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status in ok_statuses:
                    return
                last = r.status
        except urllib.error.HTTPError as e:
            if e.code in ok_statuses:
                return
            last = e.code
        except OSError as e:
            last = e
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer in {timeout}s (last: {last})")


def wait_until(predicate, timeout: float = 60, what: str = "a condition", interval: float = 0.3):
    """Poll `predicate` until it returns something truthy (returned); fail naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
