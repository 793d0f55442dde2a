"""The hub's REST spawn endpoints with a size limit: a big body gets 413 before it is stored.

JupyterHub saves a ``POST /hub/api/users/<name>/server[s/<server>]`` body as the server's
``user_options`` in its database before any spawner hook runs, and Tornado accepts bodies up to
100 MB: a 20 MB body grew the hub database by 40 MB. These handlers (registered ahead of
JupyterHub's own through the authenticator's `get_handlers`) answer 413 with a JSON message for
bodies over `MAX_SPAWN_BODY`; smaller ones go to JupyterHub's handler unchanged, and the spawner
then accepts only known options (`qhub_hub.user_options`).
"""

from __future__ import annotations

from typing import Any

from jupyterhub.apihandlers.users import UserServerAPIHandler
from tornado import web

MAX_SPAWN_BODY = 64 * 1024  # bytes; a spawn request names a profile


class BoundedUserServerAPIHandler(UserServerAPIHandler):
    async def prepare(self) -> Any:
        size = len(self.request.body or b"")
        if self.request.method in ("POST", "PUT", "PATCH") and size > MAX_SPAWN_BODY:
            raise web.HTTPError(413, f"The request body is {size} bytes; a spawn request may be at most "
                                     f"{MAX_SPAWN_BODY} bytes. Send only the server options, e.g. "
                                     '{"profile": "<slug>"}.')
        return await super().prepare()


def bounded_spawn_handlers() -> list[tuple[str, type]]:
    """Routes (relative to the hub's prefix) that replace JupyterHub's spawn endpoints."""
    return [(r"/api/users/([^/]+)/server", BoundedUserServerAPIHandler),
            (r"/api/users/([^/]+)/servers/([^/]*)", BoundedUserServerAPIHandler)]
