"""Dask dashboards through the gateway, for their owner only (embedded mode).

dask-gateway's proxy routes ``<prefix>/clusters/<name>/...`` straight to the scheduler's dashboard,
which has no authentication: anyone who knows (or lists) a cluster name reads its dashboard, logs
and metrics. `QHubLocalBackend` routes those paths to this guard instead; the guard runs in the
gateway's own process and passes a request on to the dashboard only when the hub says it comes
from the cluster's owner:

- a browser logs in with the hub's OAuth (the gateway is a hub service, so it is an OAuth client
  ``service-<name>`` whose secret is its API token); the guard then keeps a random session id in
  a cookie limited to ``<prefix>/`` and remembers the hub user for it;
- scripts send a hub API token (``Authorization: token|jupyterhub|Bearer <token>``).

Anyone else gets 401 (no credentials; a browser is sent to log in) or 403 (another user, or no
such cluster: the answer does not tell which). HTTP and WebSocket requests (Bokeh) are both proxied.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

COOKIE = "qhub-dask-dashboard"
STATE_COOKIE = "qhub-dask-dashboard-state"
SESSION_SECONDS = 8 * 3600
TOKEN_CHECK_SECONDS = 60
MAX_PENDING_LOGINS = 10000
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
              "trailers", "transfer-encoding", "upgrade", "host", "content-length"}
# never handed to a user's dashboard: the hub's and our own credentials
PRIVATE_HEADERS = {"cookie", "authorization"}


@dataclass(frozen=True)
class HubLink:
    """How the guard reaches the hub and where the browser does."""

    api_url: str  # the hub API as the gateway reaches it, e.g. http://127.0.0.1:8081/hub/api
    api_token: str  # the gateway service's token = its OAuth client secret
    service_prefix: str  # the public path of the gateway service, e.g. /services/dask-gateway
    hub_prefix: str = "/hub/"  # the hub's public path (the browser is sent there to log in)
    client_id: str = ""  # default service-<last part of service_prefix>

    @property
    def oauth_client_id(self) -> str:
        return self.client_id or f"service-{self.service_prefix.rstrip('/').rsplit('/', 1)[-1]}"

    @property
    def redirect_uri(self) -> str:
        return f"{self.service_prefix.rstrip('/')}/oauth_callback"


@dataclass
class Session:
    user: str
    token: str
    expires: float
    checked: float


class DashboardGuard:
    """`owner_of(cluster name)` -> hub username, or None; `target_of(name)` -> dashboard URL or ''."""

    def __init__(self, hub: HubLink, owner_of: Callable[[str], str | None],
                 target_of: Callable[[str], str], log: logging.Logger | None = None):
        self.hub = hub
        self.owner_of = owner_of
        self.target_of = target_of
        self.log = log or logging.getLogger(__name__)
        self.sessions: dict[str, Session] = {}
        self.states: dict[str, tuple[str, float]] = {}  # OAuth state -> (where to return, expiry)
        self.token_cache: dict[str, tuple[str | None, float]] = {}
        self.client: aiohttp.ClientSession | None = None
        self.runner: web.AppRunner | None = None
        self.url = ""

    # --- lifecycle --------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/oauth_callback", self.oauth_callback)
        app.router.add_get("/oauth_callback/", self.oauth_callback)
        app.router.add_route("*", "/clusters/{name}/{rest:.*}", self.dashboard)
        app.router.add_route("*", "/clusters/{name}", self.dashboard)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self.client = aiohttp.ClientSession(auto_decompress=False,
                                            timeout=aiohttp.ClientTimeout(total=None, connect=10))
        self.runner = web.AppRunner(self.app(), access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, port)
        await site.start()
        bound = self.runner.addresses[0]
        self.url = f"http://{host}:{bound[1]}"
        return self.url

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
        if self.client is not None:
            await self.client.close()

    # --- who is asking ----------------------------------------------------------------------------

    async def _hub_user_of(self, token: str) -> str | None:
        now = time.monotonic()
        cached = self.token_cache.get(token)
        if cached and cached[1] > now:
            return cached[0]
        assert self.client is not None
        user = None
        try:
            async with self.client.get(f"{self.hub.api_url.rstrip('/')}/user",
                                       headers={"Authorization": f"token {token}"}) as r:
                if r.status == 200:
                    model = await r.json()
                    if model.get("kind", "user") == "user" and isinstance(model.get("name"), str):
                        user = model["name"]
        except (TimeoutError, aiohttp.ClientError, ValueError) as e:
            self.log.warning("Dashboard guard: cannot ask the hub who owns a token: %s", e)
            return None  # not cached: the hub may be back soon
        if len(self.token_cache) > 10000:
            self.token_cache.clear()
        self.token_cache[token] = (user, now + TOKEN_CHECK_SECONDS)
        return user

    async def user_of(self, request: web.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        kind, _, token = header.partition(" ")
        if kind.lower() in ("token", "jupyterhub", "bearer") and token.strip():
            return await self._hub_user_of(token.strip())
        session_id = request.cookies.get(COOKIE)
        session = self.sessions.get(session_id or "")
        if session is None:
            return None
        now = time.time()
        if session.expires < now:
            self.sessions.pop(session_id or "", None)
            return None
        if now - session.checked > TOKEN_CHECK_SECONDS:  # logged out or revoked since?
            if await self._hub_user_of(session.token) != session.user:
                self.sessions.pop(session_id or "", None)
                return None
            session.checked = now
        return session.user

    # --- handlers ---------------------------------------------------------------------------------

    async def dashboard(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        user = await self.user_of(request)
        if user is None:
            if request.method == "GET" and "text/html" in request.headers.get("Accept", ""):
                return self._login_redirect(request, name)  # a browser: log in, then come back
            raise web.HTTPUnauthorized(text="Log in to the hub as the cluster's owner to see its "
                                            "dashboard.\n", headers={"WWW-Authenticate": "token"})
        if self.owner_of(name) != user:
            self.log.info("Dashboard guard: %s may not see the dashboard of cluster %s", user, name)
            raise web.HTTPForbidden(text="Not your Dask cluster (or no such cluster): a dashboard is "
                                         "only shown to the user who started the cluster.\n")
        target = self.target_of(name)
        if not target:
            raise web.HTTPServiceUnavailable(text="The cluster has no dashboard (yet).\n")
        url = f"{target.rstrip('/')}/{request.match_info.get('rest', '')}"
        if request.query_string:
            url += f"?{request.query_string}"
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._proxy_websocket(request, url)
        return await self._proxy_http(request, url)

    def _login_redirect(self, request: web.Request, name: str) -> web.StreamResponse:
        state = secrets.token_urlsafe(24)
        rest = request.match_info.get("rest", "")
        back = f"{self.hub.service_prefix.rstrip('/')}/clusters/{urllib.parse.quote(name)}/{rest}"
        if request.query_string:
            back += f"?{request.query_string}"
        now = time.time()
        self.states = {k: v for k, v in self.states.items() if v[1] > now}
        if len(self.states) >= MAX_PENDING_LOGINS:  # anyone may start logins: memory stays bounded
            for key in sorted(self.states, key=lambda k: self.states[k][1])[:MAX_PENDING_LOGINS // 2]:
                del self.states[key]
        self.states[state] = (back, now + 600)
        query = urllib.parse.urlencode({
            "client_id": self.hub.oauth_client_id, "redirect_uri": self.hub.redirect_uri,
            "response_type": "code", "state": state})
        response = web.HTTPFound(f"{self.hub.hub_prefix.rstrip('/')}/api/oauth2/authorize?{query}")
        response.set_cookie(STATE_COOKIE, state, path=self.hub.service_prefix.rstrip("/") + "/",
                            httponly=True, samesite="Lax", max_age=600)
        return response

    async def oauth_callback(self, request: web.Request) -> web.StreamResponse:
        state, code = request.query.get("state", ""), request.query.get("code", "")
        entry = self.states.pop(state, None)
        if not code or entry is None or request.cookies.get(STATE_COOKIE) != state or entry[1] < time.time():
            raise web.HTTPForbidden(text="This login link is stale or was not started in this "
                                         "browser; open the dashboard link again.\n")
        assert self.client is not None
        form = {"client_id": self.hub.oauth_client_id, "client_secret": self.hub.api_token,
                "grant_type": "authorization_code", "code": code, "redirect_uri": self.hub.redirect_uri}
        try:
            async with self.client.post(f"{self.hub.api_url.rstrip('/')}/oauth2/token", data=form) as r:
                body = await r.json(content_type=None) if r.status == 200 else {}
        except (TimeoutError, aiohttp.ClientError, ValueError) as e:
            raise web.HTTPBadGateway(text=f"The hub did not answer the login ({e}); try again.\n") from None
        token = body.get("access_token") if isinstance(body, dict) else None
        user = await self._hub_user_of(token) if token else None
        if user is None:
            raise web.HTTPForbidden(text="The hub did not confirm the login; open the dashboard link "
                                         "again.\n")
        session_id = secrets.token_urlsafe(32)
        now = time.time()
        self.sessions = {k: s for k, s in self.sessions.items() if s.expires > now}
        self.sessions[session_id] = Session(user, token, now + SESSION_SECONDS, now)
        response = web.HTTPFound(entry[0])
        path = self.hub.service_prefix.rstrip("/") + "/"
        response.set_cookie(COOKIE, session_id, path=path, httponly=True, samesite="Lax",
                            max_age=SESSION_SECONDS)
        response.del_cookie(STATE_COOKIE, path=path)
        return response

    # --- proxying ---------------------------------------------------------------------------------

    @staticmethod
    def _forward_headers(request: web.Request) -> dict[str, str]:
        return {k: v for k, v in request.headers.items()
                if k.lower() not in HOP_BY_HOP | PRIVATE_HEADERS and not k.lower().startswith("sec-websocket")}

    async def _proxy_http(self, request: web.Request, url: str) -> web.StreamResponse:
        assert self.client is not None
        body = await request.read() if request.can_read_body else None
        try:
            async with self.client.request(request.method, url, headers=self._forward_headers(request),
                                           data=body, allow_redirects=False) as upstream:
                response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
                for key, value in upstream.headers.items():
                    if key.lower() not in HOP_BY_HOP and key.lower() != "set-cookie":
                        response.headers.add(key, value)
                await response.prepare(request)
                async for chunk in upstream.content.iter_chunked(65536):
                    await response.write(chunk)
                await response.write_eof()
                return response
        except (TimeoutError, aiohttp.ClientError) as e:
            raise web.HTTPBadGateway(text=f"The cluster's dashboard did not answer ({e}).\n") from None

    async def _proxy_websocket(self, request: web.Request, url: str) -> web.StreamResponse:
        assert self.client is not None
        protocols = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
        try:
            upstream = await self.client.ws_connect(url.replace("http", "ws", 1), protocols=protocols,
                                                    headers=self._forward_headers(request))
        except (TimeoutError, aiohttp.ClientError) as e:
            raise web.HTTPBadGateway(text=f"The cluster's dashboard did not answer ({e}).\n") from None
        downstream = web.WebSocketResponse(protocols=protocols)
        await downstream.prepare(request)

        async def pump(source: Any, sink: Any) -> None:
            async for message in source:
                if message.type == aiohttp.WSMsgType.TEXT:
                    await sink.send_str(message.data)
                elif message.type == aiohttp.WSMsgType.BINARY:
                    await sink.send_bytes(message.data)
                else:
                    break
            await sink.close()

        async with upstream:
            await asyncio.gather(pump(downstream, upstream), pump(upstream, downstream),
                                 return_exceptions=True)
        return downstream
