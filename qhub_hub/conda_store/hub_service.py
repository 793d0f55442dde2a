"""The hub's side of conda-store: its service entry (for the login) and the background sync.

In ``jupyterhub_config.py``::

    c.JupyterHub.services.append(conda_store_service(
        api_token=SECRET, oauth_redirect_uri="https://hub.example/conda-store/oauth_callback/"))
    # and in the hub's "user" role: user_access_scopes()
    start_background_sync(config, url=..., token=HUB_TOKEN, log=app.log)  # once the loop runs

`api_token` is also conda-store's OAuth client secret (`server_config` passes it as
``oauth_client_secret``); `HUB_TOKEN` is the conda-store token of `roles.hub_role_bindings`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..config import QHubConfig
from .client import AsyncCondaStoreClient
from .server_config import HUB_CLIENT_ID
from .sync import SyncReport, sync_declared_environments

SERVICE_NAME = "conda-store"


def user_access_scopes(name: str = SERVICE_NAME) -> list[str]:
    """Scopes every hub user needs to log in to conda-store: add them to the hub's ``user`` role
    (``c.JupyterHub.load_roles``), e.g. ``{"name": "user", "scopes": ["self", *these]}``.
    Without them the hub answers 403 "You do not have permission to access JupyterHub service"."""
    return [f"access:services!service={name}"]


def conda_store_service(*, api_token: str, oauth_redirect_uri: str, url: str | None = None,
                        name: str = SERVICE_NAME) -> dict[str, Any]:
    """The ``c.JupyterHub.services`` entry that lets people log in to conda-store with the hub.

    `url`: where the hub's proxy should route ``/services/<name>/`` (None: conda-store is reached
    another way, e.g. its own ingress). The OAuth token conda-store gets only identifies the user
    (name and groups); the service itself holds no hub role.
    """
    service: dict[str, Any] = {
        "name": name,
        "api_token": api_token,
        "oauth_client_id": HUB_CLIENT_ID if name == SERVICE_NAME else f"service-{name}",
        "oauth_redirect_uri": oauth_redirect_uri,
        "oauth_no_confirm": True,
        "display": url is not None,
    }
    if url is not None:
        service["url"] = url
    return service


async def sync_when_ready(config: QHubConfig, *, url: str, token: str,
                          log: logging.Logger | None = None, retries: int = 30,
                          retry_interval: float = 10.0, wait: float = 0) -> SyncReport:
    """Run the sync, retrying while conda-store is unreachable or failing (5xx): it may start
    after the hub, and refuses specs until its worker has run once. Each retry only resubmits
    what has not reached conda-store (the sync leaves unchanged environments alone).

    Logs one line per environment; failures are warnings, never exceptions.
    """
    log = log or logging.getLogger("qhub_hub.conda_store")
    report = SyncReport(config.conda_store.global_namespace)
    async with AsyncCondaStoreClient(url, token) as client:
        for attempt in range(retries + 1):
            report = await sync_declared_environments(client, config, wait=wait)
            if not report.retry_advised or attempt == retries:
                break
            log.info("conda-store at %s not ready yet; retrying in %ss", url, retry_interval)
            await asyncio.sleep(retry_interval)
    failed = {r.name for r in report.failures}
    for line, result in zip(report.lines()[len(report.problems):], report.results, strict=True):
        (log.warning if result.name in failed else log.info)(line)
    for problem in report.problems:
        log.warning("conda-store: %s", problem)
    return report


def start_background_sync(config: QHubConfig, *, url: str, token: str,
                          log: logging.Logger | None = None, **kwargs: Any) -> asyncio.Task:
    """Start `sync_when_ready` on the running event loop; the hub does not wait for it."""
    return asyncio.ensure_future(sync_when_ready(config, url=url, token=token, log=log, **kwargs))
