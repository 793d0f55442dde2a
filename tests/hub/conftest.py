from __future__ import annotations

import copy
import os
import re
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
import requests
import yaml

from tests.conftest import EXAMPLE_CONFIG

REPO = Path(__file__).resolve().parents[2]


def example_data() -> dict[str, Any]:
    return yaml.safe_load(EXAMPLE_CONFIG.read_text())


def write_config(path: Path, data: dict[str, Any]) -> Path:
    """Write atomically (rename), like a ConfigMap update or an editor's save."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False))
    os.replace(tmp, path)
    return path


def edited(data: dict[str, Any], **sections: Any) -> dict[str, Any]:
    out = copy.deepcopy(data)
    out.update(sections)
    return out


def hub_env(config_path: Path) -> dict[str, str]:
    return {"QHUB_CONFIG": str(config_path), "JUPYTERHUB_CRYPT_KEY": secrets.token_hex(32),
            "PYTHONPATH": str(REPO)}


def follow_until(session: requests.Session, url: str, stop_prefix: str, max_hops: int = 10
                 ) -> requests.Response:
    """GET `url` following redirects by hand; return the first response for a URL starting with
    `stop_prefix` (so a login ends at the hub's OAuth callback and not at a spawn)."""
    for _ in range(max_hops):
        response = session.get(url, allow_redirects=False, timeout=30)
        if url.startswith(stop_prefix) or response.status_code not in (301, 302, 303, 307):
            return response
        url = urljoin(url, response.headers["Location"])
    raise AssertionError(f"too many redirects from {url}")


def oauth_login(hub_url: str, provider_url: str, session: requests.Session | None = None
                ) -> tuple[requests.Session, requests.Response]:
    """A browser-like login: hub /oauth_login -> provider authorize -> hub /oauth_callback."""
    session = session or requests.Session()
    response = follow_until(session, f"{hub_url}/hub/oauth_login?next=/hub/home",
                            f"{hub_url}/hub/oauth_callback")
    return session, response


def xsrf_of(session: requests.Session, html: str) -> str:
    """The hub's XSRF token: from the page's form, else the hub's own `_xsrf` cookie (its path ends
    in /hub/; once a user has visited their server, another `_xsrf` cookie exists for /user/<name>/)."""
    match = re.search(r'name="_xsrf"\s+value="([^"]+)"', html)
    if match:
        return match.group(1)
    return next((c.value for c in session.cookies if c.name == "_xsrf" and c.path.endswith("/hub/")), "")


def password_login(hub_url: str, username: str, password: str) -> tuple[requests.Session, requests.Response]:
    session = requests.Session()
    page = session.get(f"{hub_url}/hub/login", timeout=30)
    response = session.post(f"{hub_url}/hub/login?next=/hub/home", allow_redirects=False, timeout=60,
                            data={"username": username, "password": password,
                                  "_xsrf": xsrf_of(session, page.text)})
    return session, response


@pytest.fixture
def dummy_kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A kubeconfig pointing nowhere: kubespawner loads it, nothing ever connects."""
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "dummy",
        "clusters": [{"name": "dummy", "cluster": {"server": "https://127.0.0.1:9"}}],
        "users": [{"name": "dummy", "user": {"token": "dummy"}}],
        "contexts": [{"name": "dummy", "context": {"cluster": "dummy", "user": "dummy",
                                                    "namespace": "qhub"}}],
    }))
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    # kubernetes_asyncio reads $KUBECONFIG once, at import
    monkeypatch.setattr("kubernetes_asyncio.config.kube_config.KUBE_CONFIG_DEFAULT_LOCATION", str(path))
    return path
