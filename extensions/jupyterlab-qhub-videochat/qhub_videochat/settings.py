"""What this user's video chat is: the Jitsi server, the prefix, the user's groups, the name shown.

Every default comes from the environment the qhub-hub spawner gives the server (QHUB_VIDEOCHAT_URL,
QHUB_VIDEOCHAT_ROOM_PREFIX, QHUB_GROUPS, JUPYTERHUB_USER), so the config file decides; an admin
may still override any of them as ``c.QHubVideoChat.<name>`` in a jupyter_server config file.
"""

from __future__ import annotations

import getpass
import json
import os
from typing import Any
from urllib.parse import urlsplit

from traitlets import Bool, Dict, List, Unicode, default
from traitlets.config import LoggingConfigurable

from .rooms import Room, adhoc_room, check_prefix, group_rooms

URL_ENV = "QHUB_VIDEOCHAT_URL"


def jitsi_domain(url: str) -> str:
    """The ``domain`` argument of ``JitsiMeetExternalAPI`` (host, port and path) for a server URL.

    ValueError naming the setting when the URL cannot be a Jitsi Meet server: the IFrame API always
    loads ``https://<domain>/<room>``, so the server must be https.
    """
    parts = urlsplit(url.strip())
    if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment:
        raise ValueError(
            f"{URL_ENV}={url!r} is not a Jitsi Meet server URL: use https://host[:port][/path] "
            "(qhub config: videochat.jitsi_url), or turn video chat off (videochat.enabled: false)"
        )
    return parts.netloc + parts.path.rstrip("/")


class QHubVideoChat(LoggingConfigurable):
    jitsi_url = Unicode(
        None,
        allow_none=True,
        config=True,
        help=f"""Jitsi Meet server the video chat panel joins, e.g. https://meet.jit.si.
        An empty string turns video chat off. Default: ${URL_ENV}, set by the qhub-hub spawner from
        videochat.jitsi_url (empty when videochat.enabled is false); unset means this server was
        not started by qhub-hub, and video chat is off.""",
    )
    room_prefix = Unicode(
        config=True,
        help="""Prefix of every room name, so rooms of this deployment never meet rooms of another
        on a shared Jitsi server. Default: $QHUB_VIDEOCHAT_ROOM_PREFIX (qhub config:
        videochat.room_prefix), else 'qhub'.""",
    )
    groups = List(
        Unicode(),
        config=True,
        help="""Groups the user belongs to; each gets a room, and no other group does.
        Default: $QHUB_GROUPS (comma-separated, set by the qhub-hub spawner from the user's
        plan).""",
    )
    group_room_names = Dict(
        value_trait=Unicode(),
        config=True,
        help="""Room name of each group, chosen by the hub (names keyed by a hub secret, so rooms
        cannot be guessed on a shared Jitsi server). Groups not listed here get
        '<prefix>-group-<group>'. Default: $QHUB_VIDEOCHAT_ROOMS (a JSON object, set by the
        qhub-hub spawner).""",
    )
    display_name = Unicode(
        config=True,
        help="""Name other participants see. Default: $JUPYTERHUB_USER, else $QHUB_USER, else the
        Unix user running the server.""",
    )
    allow_adhoc_rooms = Bool(
        True,
        config=True,
        help="""Whether users may open ad-hoc rooms (named or private) besides their group rooms.
        Default: True.""",
    )

    @default("jitsi_url")
    def _jitsi_url_default(self) -> str | None:
        return os.environ.get(URL_ENV)

    @default("room_prefix")
    def _room_prefix_default(self) -> str:
        return os.environ.get("QHUB_VIDEOCHAT_ROOM_PREFIX") or "qhub"

    @default("groups")
    def _groups_default(self) -> list[str]:
        return [g for g in os.environ.get("QHUB_GROUPS", "").split(",") if g.strip()]

    @default("group_room_names")
    def _group_room_names_default(self) -> dict[str, str]:
        try:
            names = json.loads(os.environ.get("QHUB_VIDEOCHAT_ROOMS") or "{}")
        except ValueError:
            return {}
        return {k: v for k, v in names.items() if isinstance(k, str) and isinstance(v, str)} \
            if isinstance(names, dict) else {}

    @default("display_name")
    def _display_name_default(self) -> str:
        return os.environ.get("JUPYTERHUB_USER") or os.environ.get("QHUB_USER") or getpass.getuser()

    def disabled_reason(self) -> str:
        """Why video chat is off, for the user and the admin; '' when it is on."""
        if self.jitsi_url is None:
            return (
                f"Video chat is off: ${URL_ENV} is not set (this server was not started by "
                "qhub-hub). Admins: set c.QHubVideoChat.jitsi_url to use it anyway."
            )
        if not self.jitsi_url.strip():
            return "Video chat is turned off in the qhub config (videochat.enabled: false)."
        try:
            jitsi_domain(self.jitsi_url)
            check_prefix(self.room_prefix)
        except ValueError as e:
            return f"Video chat is off: {e}."
        return ""

    def rooms(self) -> list[Room]:
        return group_rooms(self.room_prefix, self.groups, self.group_room_names)

    def new_adhoc_room(self, name: str | None) -> Room:
        return adhoc_room(self.room_prefix, name)

    def frontend_config(self) -> dict[str, Any]:
        """What GET /qhub-videochat/config answers."""
        reason = self.disabled_reason()
        if reason:
            return {"enabled": False, "reason": reason, "rooms": [], "allow_adhoc_rooms": False}
        url = self.jitsi_url.strip().rstrip("/")  # type: ignore[union-attr]  # checked above
        return {
            "enabled": True,
            "reason": "",
            "jitsi_url": url,
            "jitsi_domain": jitsi_domain(url),
            "external_api_url": f"{url}/external_api.js",
            "display_name": self.display_name,
            "room_prefix": check_prefix(self.room_prefix),
            "rooms": [room.to_json() for room in self.rooms()],
            "allow_adhoc_rooms": self.allow_adhoc_rooms,
        }
