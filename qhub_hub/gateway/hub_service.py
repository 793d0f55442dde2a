"""What JupyterHub needs so that `GatewayCluster()` works with no arguments from a user's server.

- The gateway is a hub service (`gateway_hub_service`) whose API token it uses; it authenticates
  users by asking the hub who owns the token the client sends (``JUPYTERHUB_API_TOKEN``).
- Users need ``access:services!service=<gateway>`` (JupyterHub's default `user` role lacks it),
  and the server's token must carry it too: see `gateway_user_scopes` / `gateway_server_token_scopes`.
- The user's server gets `user_server_environment(...)`: the ``DASK_GATEWAY__*`` variables that
  make `Gateway()` zero-argument, and defaults that make `GatewayCluster()` pick the notebook's own
  environment (and, on Kubernetes, image).

How the notebook's environment reaches the options: the server sets ``QHUB_DASK_ENVIRONMENT=""``
and the dask config default ``gateway.cluster.options.environment = "{QHUB_DASK_ENVIRONMENT}"``
(dask-gateway fills ``{...}`` from the environment of the client process). A kernel of a
conda-store environment sets ``QHUB_DASK_ENVIRONMENT`` to its prefix in its kernel spec ("env"),
so a cluster created from that kernel runs in the same environment; from any other kernel the
value is empty and the gateway picks the user's default worker environment.
"""

from __future__ import annotations

from typing import Any

GATEWAY_SERVICE = "dask-gateway"
ENVIRONMENT_VARIABLE = "QHUB_DASK_ENVIRONMENT"


def gateway_hub_service(api_token: str, url: str | None = None,
                        name: str = GATEWAY_SERVICE) -> dict[str, Any]:
    """An entry for ``c.JupyterHub.services``; `url` (the gateway's HTTP address) lets the hub's
    proxy route ``/services/<name>/`` to it and makes the gateway an OAuth client of the hub
    (dashboard logins), which the user need not confirm."""
    service: dict[str, Any] = {"name": name, "api_token": api_token}
    if url:
        service["url"] = url
        service["oauth_no_confirm"] = True
    return service


def gateway_user_scopes(name: str = GATEWAY_SERVICE) -> list[str]:
    """Scopes to add to the hub's `user` role (``c.JupyterHub.load_roles``) besides ``self``."""
    return [f"access:services!service={name}"]


def gateway_server_token_scopes(name: str = GATEWAY_SERVICE) -> list[str]:
    """Scopes to add to ``c.Spawner.server_token_scopes`` (JupyterHub's default `server` role:
    ``users:activity!user``, ``access:servers!server``) so the server's JUPYTERHUB_API_TOKEN can
    use the gateway, which also reads the user's groups with it."""
    return [f"access:services!service={name}", "read:users:groups!user", "read:users:name!user"]


def user_server_environment(address: str, proxy_address: str, public_address: str | None = None,
                            *, server_profile: str | None = None) -> dict[str, str]:
    """Environment of a user's server for the gateway at `address` (see the module docstring).

    `server_profile` (Kubernetes): the slug of the jupyterlab profile the server runs, so that
    workers use its image when the worker profile names none.
    """
    env = {
        "DASK_GATEWAY__ADDRESS": address,
        "DASK_GATEWAY__PROXY_ADDRESS": proxy_address,
        "DASK_GATEWAY__PUBLIC_ADDRESS": public_address or address,
        "DASK_GATEWAY__AUTH__TYPE": "jupyterhub",
        "DASK_GATEWAY__CLUSTER__OPTIONS__ENVIRONMENT": "{" + ENVIRONMENT_VARIABLE + "}",
        ENVIRONMENT_VARIABLE: "",
    }
    if server_profile:
        env["DASK_GATEWAY__CLUSTER__OPTIONS__SERVER_PROFILE"] = server_profile
    return env


def kernel_environment(prefix: str) -> dict[str, str]:
    """The "env" of the kernel spec of the environment at `prefix`: clusters made from that
    kernel run in the same environment."""
    return {ENVIRONMENT_VARIABLE: prefix}
