"""JupyterHub settings that every hub running the qhub config shares: the embedded hub
(`local.hub_config`) and the chart's hub (`helm/qhub/files/hub/qhub.py`) both call these.

One function per concern; each *sets* its keys of ``c`` (the hub's traitlets config) and never
appends to what another set (TLJH's rule), so each can be tested against an empty ``Config()``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .config_model import Cull, QHubConfig
from .plan_api import PLAN_SCOPE, PLAN_SCOPE_DESCRIPTION
from .usage.scopes import USAGE_WRITE_SCOPE, USAGE_WRITE_SCOPE_DESCRIPTION

# security.authentication.type -> the authenticator's entry point (pyproject.toml)
AUTHENTICATOR_CLASSES = {
    "password": "qhub-password",
    "GitHub": "qhub-github",
    "Auth0": "qhub-auth0",
    "oidc": "qhub-oidc",
}
# JupyterHub's default scopes of a server's own token (its `server` role)
DEFAULT_SERVER_TOKEN_SCOPES = ("users:activity!user", "access:servers!server")
PLAN_READERS_ROLE = "qhub-plan-readers"
USAGE_WRITERS_ROLE = "qhub-usage-writers"
USER_LISTERS_ROLE = "qhub-user-listers"
CULLER_SCOPES = ("list:users", "read:users:activity", "read:servers", "delete:servers")


def configure_authenticator(c: Any, config: QHubConfig, config_path: str = "") -> None:
    """The qhub authenticator of `security.authentication.type`, reading `config_path`
    (empty: $QHUB_CONFIG)."""
    c.JupyterHub.authenticator_class = AUTHENTICATOR_CLASSES[config.security.authentication.type]
    if config_path:
        c.Authenticator.qhub_config_path = config_path


def configure_plan_scope(c: Any) -> None:
    """Define the custom scopes of the hub's plan endpoint (`plan_api`) and usage endpoint (`usage.api`)."""
    c.JupyterHub.custom_scopes = {PLAN_SCOPE: {"description": PLAN_SCOPE_DESCRIPTION},
                                  USAGE_WRITE_SCOPE: {"description": USAGE_WRITE_SCOPE_DESCRIPTION}}


def plan_readers_role(services: Iterable[str]) -> dict[str, Any]:
    """The role of the services that act on users' plans (gateway, SSH check, conda-store)."""
    return {"name": PLAN_READERS_ROLE, "services": sorted(set(services)), "scopes": [PLAN_SCOPE]}


def user_listers_role(services: Iterable[str]) -> dict[str, Any]:
    """The role of the services that act on every user (the SFTP pod's accounts): the names of
    the hub's users, nothing else of them."""
    return {"name": USER_LISTERS_ROLE, "services": sorted(set(services)), "scopes": ["list:users"]}


def usage_writers_role(services: Iterable[str]) -> dict[str, Any]:
    """The role of the services that record Dask usage through the hub (the Dask Gateway)."""
    return {"name": USAGE_WRITERS_ROLE, "services": sorted(set(services)), "scopes": [USAGE_WRITE_SCOPE]}


def user_role_scopes(extra: Iterable[str] = ()) -> list[str]:
    """Scopes of the hub's `user` role: themselves, their own plan, and `extra` (services)."""
    return list(dict.fromkeys(["self", f"{PLAN_SCOPE}!user", *extra]))


def culler_arguments(cull: Cull) -> list[str]:
    """jupyterhub-idle-culler's flags for `cull` (the same in every hub)."""
    return [f"--timeout={cull.server_idle_timeout}", f"--cull-every={cull.every}",
            f"--max-age={cull.server_max_age}"]


def with_culler_arguments(command: list[str], cull: Cull) -> list[str]:
    """`command` (a culler command line) with `cull`'s flags in place of any it had."""
    ours = tuple(arg.split("=")[0] + "=" for arg in culler_arguments(cull))
    return [*(arg for arg in command if not arg.startswith(ours)), *culler_arguments(cull)]
