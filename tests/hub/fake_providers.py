"""Fake GitHub and OpenID Connect providers on loopback, speaking the real endpoints and payloads.

They auto-approve the authorization request as `provider.next_login` (the real provider would show
its own login page), then serve the token and user endpoints the way GitHub and an OIDC provider
(Keycloak-like, with a ``groups`` claim) do. Tests change `provider.users[...]` between logins.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse


class _Handler(BaseHTTPRequestHandler):
    provider: FakeProvider  # set per server class

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if body is not None and not isinstance(body, bytes):
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _form(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode()
        if "json" in (self.headers.get("Content-Type") or ""):
            return {k: str(v) for k, v in json.loads(raw or "{}").items()}
        return {k: v[0] for k, v in parse_qs(raw).items()}

    def _bearer(self) -> str | None:
        auth = self.headers.get("Authorization") or ""
        parts = auth.split(None, 1)
        return parts[1] if len(parts) == 2 and parts[0].lower() in ("token", "bearer") else None

    def do_GET(self) -> None:  # noqa: N802
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        self.provider.requests.append(("GET", url.path, query, dict(self.headers)))
        self.provider.get(self, url.path, query)

    def do_POST(self) -> None:  # noqa: N802
        url = urlparse(self.path)
        form = self._form()
        self.provider.requests.append(("POST", url.path, form, dict(self.headers)))
        self.provider.post(self, url.path, form)


@dataclass
class FakeProvider:
    client_id: str = "qhub-test-client"
    client_secret: str = field(default_factory=lambda: secrets.token_hex(8))
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    next_login: str = ""
    requests: list[tuple] = field(default_factory=list)
    _codes: dict[str, tuple[str, str]] = field(default_factory=dict)  # code -> (login, redirect_uri)
    _tokens: dict[str, str] = field(default_factory=dict)  # token -> login
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeProvider:
        handler = type("Handler", (_Handler,), {"provider": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    # shared OAuth 2 steps -----------------------------------------------------------------------

    def authorize(self, h: _Handler, query: dict[str, str]) -> None:
        if query.get("client_id") != self.client_id or query.get("response_type", "code") != "code":
            h._send(400, {"error": "invalid_request"})
            return
        code = secrets.token_urlsafe(12)
        self._codes[code] = (self.next_login, query["redirect_uri"])
        sep = "&" if "?" in query["redirect_uri"] else "?"
        location = query["redirect_uri"] + sep + urlencode({"code": code, "state": query.get("state", "")})
        h._send(302, b"", {"Location": location})

    def redeem(self, h: _Handler, form: dict[str, str]) -> str | None:
        """Check the token request (client credentials in the body or HTTP Basic); the login."""
        client_id, secret = form.get("client_id"), form.get("client_secret")
        basic = h.headers.get("Authorization") or ""
        if basic.lower().startswith("basic "):
            client_id, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
        grant = self._codes.pop(form.get("code", ""), None)
        if client_id != self.client_id or secret != self.client_secret or grant is None:
            return None
        login, redirect_uri = grant
        if form.get("redirect_uri") not in (None, redirect_uri):
            return None
        token = secrets.token_urlsafe(16)
        self._tokens[token] = login
        return token

    def login_for(self, h: _Handler) -> str | None:
        return self._tokens.get(h._bearer() or "")


class FakeGitHub(FakeProvider):
    """github.com-like: /login/oauth/*, and the REST API under /api/v3 (GitHub Enterprise layout,
    which oauthenticator uses for any github_url other than github.com). Lists are paginated two
    items a page with Link headers, as GitHub does for large lists."""

    page_size = 2

    def add_user(self, login: str, *, teams: list[str] = (), orgs: list[str] = (),
                 email: str | None = None) -> None:
        self.users[login] = {"login": login, "id": 1000 + len(self.users), "name": login.title(),
                             "email": email or f"{login}@example.com", "teams": list(teams),
                             "orgs": list(orgs)}

    def get(self, h: _Handler, path: str, query: dict[str, str]) -> None:
        if path == "/login/oauth/authorize":
            return self.authorize(h, query)
        login = self.login_for(h)
        if login is None or login not in self.users:
            return h._send(401, {"message": "Bad credentials"})
        user = self.users[login]
        if path == "/api/v3/user":
            return h._send(200, {k: user[k] for k in ("login", "id", "name", "email")} | {"type": "User"})
        if path == "/api/v3/user/teams":
            items = [{"id": i, "slug": t.split(":")[1], "name": t.split(":")[1].title(),
                      "organization": {"login": t.split(":")[0], "id": 1}}
                     for i, t in enumerate(user["teams"])]
            return self._page(h, path, query, items)
        if path == "/api/v3/user/orgs":
            orgs = sorted(set(user["orgs"]) | {t.split(":")[0] for t in user["teams"]})
            return self._page(h, path, query, [{"login": o, "id": i} for i, o in enumerate(orgs)])
        h._send(404, {"message": "Not Found"})

    def _page(self, h: _Handler, path: str, query: dict[str, str], items: list) -> None:
        page = int(query.get("page", 1))
        chunk = items[(page - 1) * self.page_size: page * self.page_size]
        headers = {}
        if page * self.page_size < len(items):
            headers["Link"] = f'<{self.url}{path}?per_page={self.page_size}&page={page + 1}>; rel="next"'
        h._send(200, chunk, headers)

    def post(self, h: _Handler, path: str, form: dict[str, str]) -> None:
        if path != "/login/oauth/access_token":
            return h._send(404, {"message": "Not Found"})
        token = self.redeem(h, form)
        if token is None:  # GitHub answers 200 with an error body
            return h._send(200, {"error": "bad_verification_code",
                                 "error_description": "The code passed is incorrect or expired."})
        h._send(200, {"access_token": token, "token_type": "bearer", "scope": "read:org,read:user"})


class FakeOIDC(FakeProvider):
    """An OpenID Connect provider (Keycloak-like): discovery, authorize, token, userinfo; the
    userinfo carries `groups_claim` (Keycloak: full group paths such as '/analysts')."""

    groups_claim: str = "groups"

    def add_user(self, username: str, *, groups: list[str] = (), email_verified: bool = True) -> None:
        self.users[username] = {"sub": secrets.token_hex(8), "preferred_username": username,
                                "email": f"{username}@example.org", "email_verified": email_verified,
                                "groups": list(groups)}

    def discovery(self) -> dict[str, Any]:
        return {"issuer": self.url, "authorization_endpoint": f"{self.url}/authorize",
                "token_endpoint": f"{self.url}/token", "userinfo_endpoint": f"{self.url}/userinfo",
                "response_types_supported": ["code"], "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "claims_supported": ["sub", "preferred_username", "email", self.groups_claim]}

    def get(self, h: _Handler, path: str, query: dict[str, str]) -> None:
        if path == "/.well-known/openid-configuration":
            return h._send(200, self.discovery())
        if path == "/authorize":
            return self.authorize(h, query)
        if path == "/userinfo":
            login = self.login_for(h)
            if login is None or login not in self.users:
                return h._send(401, {"error": "invalid_token"}, {"WWW-Authenticate": "Bearer"})
            user = dict(self.users[login])
            user[self.groups_claim] = user.pop("groups")
            return h._send(200, user)
        h._send(404, {"error": "not_found"})

    def post(self, h: _Handler, path: str, form: dict[str, str]) -> None:
        if path != "/token":
            return h._send(404, {"error": "not_found"})
        if form.get("grant_type") != "authorization_code":
            return h._send(400, {"error": "unsupported_grant_type"})
        token = self.redeem(h, form)
        if token is None:
            return h._send(400, {"error": "invalid_grant", "error_description": "bad code"})
        h._send(200, {"access_token": token, "token_type": "Bearer", "expires_in": 300,
                      "refresh_token": secrets.token_urlsafe(8), "scope": "openid profile email"})
