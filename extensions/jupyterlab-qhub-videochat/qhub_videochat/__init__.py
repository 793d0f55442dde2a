"""Video chat (Jitsi Meet) in JupyterLab 4: the prebuilt labextension and its server endpoint."""

from __future__ import annotations

from typing import Any

from jupyter_server.utils import url_path_join

from .handlers import ConfigHandler, RoomsHandler
from .settings import QHubVideoChat

__version__ = "0.1.0"
NPM_NAME = "jupyterlab-qhub-videochat"


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": NPM_NAME}]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "qhub_videochat"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    videochat = QHubVideoChat(parent=serverapp)
    base_url = serverapp.web_app.settings["base_url"]
    handlers = [
        (url_path_join(base_url, "qhub-videochat", "config"), ConfigHandler),
        (url_path_join(base_url, "qhub-videochat", "rooms"), RoomsHandler),
    ]
    serverapp.web_app.add_handlers(".*$", [(p, h, {"videochat": videochat}) for p, h in handlers])
    reason = videochat.disabled_reason()
    if reason:
        serverapp.log.info("qhub_videochat: %s", reason)
    else:
        serverapp.log.info(
            "qhub_videochat: Jitsi server %s, %d group room(s)", videochat.jitsi_url,
            len(videochat.rooms()),
        )
