"""The hub's plan endpoint: ``GET /hub/api/qhub/plans/<name>`` answers a user's `UserPlan`.

Every qhub authenticator registers it (`QHubAuthenticatorMixin.get_handlers`), so any hub that
runs the qhub config serves it. The plan is computed by the hub, the one authority: the user's
identity-provider groups from their last login, the dynamic uid the hub handed them, and the
config in force (`hub_identity.plan_for_hub_user`). The answer is `plan_wire.plan_to_wire`.

Who may read a plan: services holding the custom scope ``custom:qhub:plans:read`` (the Dask
Gateway, the SSH check, conda-store), and a user their own plan (``...!user`` in their role). The
scope is defined by `hub_settings.configure_plan_access`.
"""

from __future__ import annotations

import json
from typing import Any

from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.scopes import has_scope
from tornado import web

from .hub_identity import get_config, plan_for_hub_user
from .plan_wire import plan_to_wire

PLAN_SCOPE = "custom:qhub:plans:read"
PLAN_SCOPE_DESCRIPTION = "Read the qhub plan (ids, groups, folders, profiles) of users."
PLAN_PATH = r"/api/qhub/plans/([^/]+)"  # under the hub's prefix: /hub/api/qhub/plans/<name>


class PlanHandler(APIHandler):
    """``GET``: the plan of one user, as the hub decides it now."""

    def initialize(self, config_path: str = "") -> None:
        self.qhub_config_path = config_path

    async def get(self, user_name: str) -> None:
        if not self.current_user:
            raise web.HTTPError(403, "Missing or invalid credentials.")
        if not has_scope(f"{PLAN_SCOPE}!user={user_name}", self.parsed_scopes, db=self.db):
            raise web.HTTPError(403, f"This token may not read the plan of {user_name!r}: it needs "
                                     f"the scope {PLAN_SCOPE}")
        user = self.find_user(user_name)
        if user is None:
            raise web.HTTPError(404, f"No hub user {user_name!r}")
        config = get_config(self.qhub_config_path or None, log=self.log)
        plan = await plan_for_hub_user(config, user)
        self.set_header("Content-Type", "application/json")
        self.write(json.dumps(plan_to_wire(config, plan)))


def plan_handlers(config_path: str) -> list[tuple[str, type, dict[str, Any]]]:
    """The handlers to add to the hub (JupyterHub puts them under its prefix)."""
    return [(PLAN_PATH, PlanHandler, {"config_path": config_path})]
