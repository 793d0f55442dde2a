"""Asking the hub for a user's plan: how the Dask Gateway, the SSH check and conda-store learn
who a user is, instead of deciding it themselves (see `plan_api`).

A service calls `fetch_plan` (async) or `fetch_plan_sync` with its own hub API token, which needs
the scope ``custom:qhub:plans:read``. When the hub cannot answer, `PlanUnavailable` says why and
the caller refuses: nothing is guessed.
"""

from __future__ import annotations

import functools
import os
import urllib.parse
from dataclasses import dataclass

import httpx

from .plan_wire import HubPlan, plan_from_wire

TIMEOUT = 10.0


@functools.cache
def _ssl_context() -> object:
    return httpx.create_ssl_context()  # reads the CA bundle: 40-100 ms, so once per process


def hub_client(timeout: float = TIMEOUT) -> httpx.AsyncClient:
    """A client for one call to the hub's API. The TLS context is made once and shared: a new one
    per call cost each Dask cluster start about 0.1 s (one plan and one or two usage calls)."""
    return httpx.AsyncClient(timeout=timeout, verify=_ssl_context())


class PlanUnavailable(RuntimeError):
    """The hub did not give the plan; the message says why and what to do."""


@dataclass(frozen=True)
class HubPlanSource:
    """Where a service asks for plans: the hub's API URL (``.../hub/api``) and its own token.

    Defaults come from ``JUPYTERHUB_API_URL`` and ``JUPYTERHUB_API_TOKEN``, which JupyterHub sets
    for the services it runs.
    """

    api_url: str = ""
    token: str = ""

    def resolved(self) -> HubPlanSource:
        return HubPlanSource(self.api_url or os.environ.get("JUPYTERHUB_API_URL", ""),
                             self.token or os.environ.get("JUPYTERHUB_API_TOKEN", ""))

    def url(self, username: str) -> str:
        if not self.api_url:
            raise PlanUnavailable("no hub API URL is configured (JUPYTERHUB_API_URL), so the plan "
                                  "cannot be asked for")
        return f"{self.api_url.rstrip('/')}/qhub/plans/{urllib.parse.quote(username, safe='')}"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    async def fetch(self, username: str) -> HubPlan:
        source = self.resolved()
        url = source.url(username)
        try:
            async with hub_client() as client:
                response = await client.get(url, headers=source.headers())
        except httpx.HTTPError as e:
            raise _unreachable(source, e) from None
        return _answer(username, response)

    def fetch_sync(self, username: str) -> HubPlan:
        source = self.resolved()
        url = source.url(username)
        try:
            response = httpx.get(url, headers=source.headers(), timeout=TIMEOUT)
        except httpx.HTTPError as e:
            raise _unreachable(source, e) from None
        return _answer(username, response)


def _unreachable(source: HubPlanSource, error: Exception) -> PlanUnavailable:
    return PlanUnavailable(f"the hub at {source.api_url} cannot be reached ({type(error).__name__}); "
                           "try again once the hub is running")


def _answer(username: str, response: httpx.Response) -> HubPlan:
    if response.status_code == 404:
        raise PlanUnavailable(f"the hub has no user {username!r}: log in to the hub first")
    if response.status_code == 403:
        raise PlanUnavailable("this service's hub token may not read plans: give it the scope "
                              "custom:qhub:plans:read")
    if response.status_code != 200:
        raise PlanUnavailable(f"the hub answered HTTP {response.status_code} for {username!r}'s plan; "
                              "see the hub's log")
    try:
        return plan_from_wire(response.json())
    except ValueError as e:
        raise PlanUnavailable(f"the hub's answer is not a plan: {e}") from None
