"""Why a server stopped, for the ledger's end reason: ``culled`` when the idle culler asked.

The culler (jupyterhub-idle-culler, a hub service with its own token) stops a server with
``DELETE /hub/api/users/<name>/server`` like anyone else, and the spawner's post-stop hook, where
the session is closed, does not see the request. So the hub's server API is served by
`ServerStopReasonHandler`: the size-limited spawn handler (`hub_request_limits`, itself
JupyterHub's handler) with one addition: before a DELETE it notes, in a context variable, whether
the requester is a culler service. JupyterHub stops the server in a task made during that request,
which inherits the variable; `stop_reason()` reads it there.

The routes are registered ahead of the size-limited ones and of JupyterHub's own (an
authenticator's handlers come first, in its order); everything but DELETE's note is unchanged.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from ..hub_request_limits import BoundedUserServerAPIHandler

CULLED = "culled"
STOPPED = "stop"
# The culler's hub service: the embedded platform's (`local.hub_config.CULLER_SERVICE`) and the
# chart's, named as zero-to-jupyterhub names it (`helm/qhub/files/hub/qhub.py`).
CULLER_SERVICES = frozenset({"idle-culler", "jupyterhub-idle-culler"})
SERVER_PATHS = (r"/api/users/([^/]+)/server", r"/api/users/([^/]+)/servers/([^/]*)")

_requested_by_culler: ContextVar[bool] = ContextVar("qhub_stop_requested_by_culler", default=False)


def is_culler(requester: Any) -> bool:
    return getattr(requester, "kind", None) == "service" and getattr(requester, "name", None) in CULLER_SERVICES


class ServerStopReasonHandler(BoundedUserServerAPIHandler):
    """JupyterHub's ``/users/<name>/server(s/<name>)`` API (size-limited), noting who asked for a stop."""

    async def delete(self, user_name: str, server_name: str = "") -> Any:
        _requested_by_culler.set(is_culler(self.current_user))
        return await super().delete(user_name, server_name)


def stop_reason() -> str:
    """The end reason of a stop happening now: `CULLED` when the culler asked for it, else `STOPPED`."""
    return CULLED if _requested_by_culler.get() else STOPPED


def stop_reason_handlers() -> list[tuple[str, type]]:
    return [(path, ServerStopReasonHandler) for path in SERVER_PATHS]
