"""The services' calls to the hub's API share one TLS context: making one reads the CA bundle
(40-100 ms), which each Dask cluster start used to pay two or three times."""

from __future__ import annotations

import http.server
import threading

import httpx
import pytest

from qhub_hub import hub_plans
from qhub_hub.hub_plans import HubPlanSource, PlanUnavailable


class RefusingHub(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(403)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"message": "no scope"}')

    def log_message(self, *args: object) -> None:
        pass


async def test_plan_calls_share_one_tls_context(monkeypatch) -> None:
    made = []
    real = httpx.create_ssl_context
    monkeypatch.setattr(httpx, "create_ssl_context", lambda *a, **k: made.append(1) or real(*a, **k))
    hub_plans._ssl_context.cache_clear()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RefusingHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        source = HubPlanSource(f"http://127.0.0.1:{server.server_address[1]}/hub/api", "token")
        for _ in range(3):
            with pytest.raises(PlanUnavailable, match="may not read plans"):
                await source.fetch("alice")
    finally:
        server.shutdown()
        server.server_close()
        hub_plans._ssl_context.cache_clear()
    assert made == [1]
