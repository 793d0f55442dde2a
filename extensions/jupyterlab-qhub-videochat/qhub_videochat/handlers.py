"""The REST endpoints the frontend calls, under the server's base_url.

    GET  qhub-videochat/config  -> {enabled, reason, jitsi_url, jitsi_domain, external_api_url,
                                    display_name, room_prefix, rooms: [...], allow_adhoc_rooms}
    POST qhub-videochat/rooms   {"name": "pairing with bob"} -> 201 {name, label, kind, group}
                                (no name: a private room with a random name)

Both are authenticated and authorized like every Jupyter server API (token, hub OAuth cookie).
"""

from __future__ import annotations

import json

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web

from .settings import QHubVideoChat

AUTH_RESOURCE = "qhub-videochat"


class _VideoChatHandler(APIHandler):
    auth_resource = AUTH_RESOURCE

    def initialize(self, videochat: QHubVideoChat) -> None:
        self.videochat = videochat


class ConfigHandler(_VideoChatHandler):
    @web.authenticated
    @authorized
    def get(self) -> None:
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(self.videochat.frontend_config()))


class RoomsHandler(_VideoChatHandler):
    @web.authenticated
    @authorized
    def post(self) -> None:
        reason = self.videochat.disabled_reason()
        if reason:
            raise web.HTTPError(409, reason)
        if not self.videochat.allow_adhoc_rooms:
            raise web.HTTPError(
                403, "Ad-hoc video chat rooms are turned off on this server; use a group room."
            )
        body = self.get_json_body() or {}
        name = body.get("name") if isinstance(body, dict) else None
        if name is not None and not isinstance(name, str):
            raise web.HTTPError(400, 'Send {"name": "<room name>"} with a string, or no name.')
        room = self.videochat.new_adhoc_room(name)
        self.set_status(201)
        self.finish(json.dumps(room.to_json()))
