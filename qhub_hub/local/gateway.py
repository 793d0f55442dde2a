"""The embedded platform's Dask Gateway: written and described by `qhub_hub.gateway.server_config`.

`local up` calls `prepare_gateway` when `dask_gateway.enabled`; the result is saved as
``<state>/gateway/embedded.json`` so the hub's config (`hub_config.py`) registers the gateway as a
hub service and gives user servers its ``DASK_GATEWAY__*`` variables. When the gateway package is
not installed or cannot be imported, the platform runs without a gateway and says so.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from ..config import QHubConfig
from .settings import PlatformSettings

STATE_NAME = "embedded.json"


def gateway_unavailable_reason() -> str | None:
    try:
        import qhub_hub.gateway.server_config  # noqa: F401
    except ImportError as e:
        return f"the Dask Gateway part of qhub-hub cannot be imported ({e})"
    return None


def prepare_gateway(settings: PlatformSettings, config: QHubConfig, token: str) -> Any:
    """Write the gateway's config; returns its `EmbeddedGateway` (None when disabled)."""
    path = settings.gateway_dir / STATE_NAME
    if not config.dask_gateway.enabled or settings.demo:
        forget_gateway(settings)
        return None
    from ..gateway.server_config import write_embedded_gateway_config

    gateway = write_embedded_gateway_config(
        settings.config_path,
        workdir=settings.gateway_dir,
        hub_api_url=settings.hub_api_url,
        api_token=token,
        http_port=settings.gateway_http_port,
        tcp_port=settings.gateway_tcp_port,
        api_port=settings.gateway_api_port,
        public_address=f"{settings.public_url}/services/dask-gateway",
        cgroup_name=settings.cgroup_name,
        usage_db_url=usage_ledger_url(settings),
    )
    data = {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(gateway).items()}
    path.write_text(json.dumps(data, indent=1) + "\n")
    path.chmod(0o600)
    return gateway


def usage_ledger_url(settings: PlatformSettings) -> str:
    """The ledger the embedded hub records servers in, so the gateway records workers beside them."""
    from ..usage.hub import LEDGER_FILE, USAGE_DB_ENV

    return os.environ.get(USAGE_DB_ENV) or f"sqlite:///{settings.hub_dir / LEDGER_FILE}"


def forget_gateway(settings: PlatformSettings) -> None:
    """No gateway this time: the hub must not register a stale one."""
    (settings.gateway_dir / STATE_NAME).unlink(missing_ok=True)


def load_embedded_gateway(settings: PlatformSettings) -> Any:
    path = settings.gateway_dir / STATE_NAME
    if not path.exists():
        return None
    from ..gateway.server_config import EmbeddedGateway

    data = json.loads(path.read_text())
    for key in ("config_file", "workdir"):
        data[key] = Path(data[key])
    return EmbeddedGateway(**data)
