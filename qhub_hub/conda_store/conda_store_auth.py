"""conda-store's login through JupyterHub, so that people act in conda-store as themselves.

Runs inside the conda-store server (it imports conda_store_server; `server_config.configure` names
these classes). conda-store's own JupyterHub login makes every user an admin of every namespace;
ours asks the hub who the user is (name and groups, with the OAuth token of the login) and grants
the role bindings of `roles.user_role_bindings` for the user's plan: admin of their own namespace,
developer or viewer in their groups' namespaces as the config says, viewer of the global one.

The plan comes from the hub (``GET /hub/api/qhub/plans/<name>``, asked with conda-store's own
service token, the OAuth client secret), as for every other component: conda-store never decides
who a user is. When the hub cannot answer, the login is refused and the log says why.
"""

from __future__ import annotations

from typing import Any

import requests
from conda_store_server.server import schema as auth_schema
from conda_store_server.server.auth import Authentication, JupyterHubOAuthAuthentication
from fastapi import Request
from traitlets import Unicode, default

from ..config import QHubConfig
from ..hub_identity import get_config
from ..hub_plans import HubPlanSource, PlanUnavailable
from ..policy import UserPlan
from .roles import user_role_bindings


class QHubJupyterHubAuthentication(JupyterHubOAuthAuthentication):
    qhub_config_file = Unicode(
        config=True,
        help="Path of the qhub config file; groups and namespaces come from it (re-read when it "
        "changes).",
    )

    hub_api_url = Unicode(
        config=True,
        help="The hub's API as conda-store reaches it (e.g. http://hub:8081/hub/api). Users' plans "
        "are asked for there with conda-store's service token (client_secret), which needs the "
        "scope custom:qhub:plans:read.",
    )

    @default("access_scope")
    def _default_access_scope(self) -> str:
        # The hub always grants a service's OAuth token the user's name and groups; ask for no more.
        return "read:users:groups!user"

    def get_oauth_callback_url(self, request: Request) -> str:
        # conda-store's default is a starlette URL object, which yarl (building the authorize
        # URL) refuses: always hand on a string.
        return str(super().get_oauth_callback_url(request))

    @property
    def qhub_config(self) -> QHubConfig:
        """The current config: re-read when the file changes (a `helm upgrade`), as in the hub."""
        if not self.qhub_config_file:
            raise RuntimeError("set c.QHubJupyterHubAuthentication.qhub_config_file")
        return get_config(self.qhub_config_file)

    def _hub_user(self, oauth_token: str) -> dict[str, Any]:
        response = requests.get(self.user_data_url, timeout=30, verify=self.tls_verify,
                                headers={"Authorization": f"Bearer {oauth_token}"})
        response.raise_for_status()
        return response.json()

    async def hub_plan(self, name: str) -> UserPlan | None:
        """The plan the hub decided for `name`; None (login refused, reason logged) without one."""
        try:
            return (await HubPlanSource(self.hub_api_url, self.client_secret).fetch(name)).plan
        except PlanUnavailable as e:
            self.log.warning("conda-store login refused for %r: %s", name, e)
            return None

    async def authenticate(self, request: Request) -> auth_schema.AuthenticationToken | None:
        oauth_token = self._get_oauth_token(request)
        if oauth_token is None:
            return None
        plan = await self.hub_plan(self._hub_user(oauth_token)["name"])
        if plan is None:
            return None
        if not plan.may_log_in:
            self.log.warning("conda-store login refused for %r: not allowed by the qhub config",
                             plan.username)
            return None
        return auth_schema.AuthenticationToken(
            primary_namespace=plan.unix_name,
            role_bindings=user_role_bindings(self.qhub_config, plan),
        )


class QHubTokenOnlyAuthentication(Authentication):
    """No browser login (no hub configured): only tokens work, never conda-store's demo login."""

    async def authenticate(self, request: Request) -> None:
        return None
