"""conda-store's login through JupyterHub, so that people act in conda-store as themselves.

Runs inside the conda-store server (it imports conda_store_server; `server_config.configure` names
these classes). conda-store's own JupyterHub login makes every user an admin of every namespace;
ours asks the hub who the user is (name and groups, with the OAuth token of the login) and grants
the role bindings of `roles.user_role_bindings` for the user's plan: admin of their own namespace,
developer or viewer in their groups' namespaces as the config says, viewer of the global one.

Groups: for users listed in `security.users` the config alone decides (hub groups are ignored, so
a read-only membership stays read-only); for identity-provider users the hub's groups are taken as
their identity-provider groups, mapped as `security.identity_provider_groups` says.
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
from ..policy import UserPlan, plan_for
from .roles import user_role_bindings


class QHubJupyterHubAuthentication(JupyterHubOAuthAuthentication):
    qhub_config_file = Unicode(
        config=True,
        help="Path of the qhub config file; groups and namespaces come from it (re-read when it "
        "changes).",
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

    def plan_for_hub_user(self, hub_user: dict[str, Any]) -> UserPlan:
        config = self.qhub_config
        name = hub_user["name"]
        groups = () if name in config.security.users else tuple(hub_user.get("groups") or ())
        return plan_for(config, name, groups)

    async def authenticate(self, request: Request) -> auth_schema.AuthenticationToken | None:
        oauth_token = self._get_oauth_token(request)
        if oauth_token is None:
            return None
        plan = self.plan_for_hub_user(self._hub_user(oauth_token))
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
