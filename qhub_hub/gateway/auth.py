"""dask-gateway's JupyterHub authenticator, answering 401 (not 500) for a token the hub rejects.

JupyterHub answers ``403`` on ``/hub/api/user`` for an unknown or expired token; upstream's
`JupyterHubAuthenticator` turns that into ``500 Permission failure verifying user's JupyterHub API
token``, which reads like a broken server. Here the user gets ``401`` saying what to do.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from dask_gateway_server.auth import JupyterHubAuthenticator

from .landing import add_landing_page

REJECTED = ("The hub did not accept this JupyterHub API token (unknown, expired or revoked). In a "
            "notebook, restart your server to get a fresh JUPYTERHUB_API_TOKEN; elsewhere, make a "
            "new token on the hub's token page.")


class QHubJupyterHubAuthenticator(JupyterHubAuthenticator):
    """`c.DaskGateway.authenticator_class` for qhub-hub gateways."""

    async def setup(self, app: Any) -> None:
        await super().setup(app)
        # every qhub gateway (embedded and chart) has this authenticator: the one hook both share
        add_landing_page(app)

    async def authenticate(self, request: Any) -> Any:
        try:
            return await super().authenticate(request)
        except web.HTTPInternalServerError as e:
            if (e.reason or "").startswith("Permission failure"):
                raise web.HTTPUnauthorized(headers={"WWW-Authenticate": "jupyterhub"},
                                           reason=REJECTED) from None
            raise
