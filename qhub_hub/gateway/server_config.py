"""The dask-gateway-server config of the embedded mode (`qhub-hub local up`).

    gateway = write_embedded_gateway_config(
        "/etc/qhub/qhub-config.yaml", workdir=Path("/var/lib/qhub-hub/gateway"),
        hub_api_url="http://127.0.0.1:8081/hub/api", api_token=token,
        http_port=8786, tcp_port=8787, api_port=8788)
    subprocess.Popen(gateway.command)                       # as root: it starts users' processes
    c.JupyterHub.services.append(gateway.hub_service())     # in the hub's config
    env.update(gateway.user_server_environment())            # in every user server

The gateway runs as root with `QHubLocalBackend`: schedulers and workers are processes of the user,
in the environment they chose. It listens on loopback by default:

- ``http_port``: its proxy for the REST API and dashboards, under the prefix
  ``/services/<service_name>`` so the hub's proxy can also route ``<hub>/services/<name>/`` to it;
- ``tcp_port``: scheduler traffic (TLS, routed by SNI), the client's ``proxy_address``;
- ``api_port``: the private API server behind that proxy.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from .hub_service import GATEWAY_SERVICE, gateway_hub_service, user_server_environment

CONFIG_NAME = "dask_gateway_config.py"


@dataclass(frozen=True)
class EmbeddedGateway:
    """A written gateway config and how to reach the gateway it describes."""

    config_file: Path
    workdir: Path
    command: list[str]  # run as root, e.g. subprocess.Popen(command, start_new_session=True)
    address: str  # DASK_GATEWAY__ADDRESS: http://<host>:<http_port>/services/<name>
    proxy_address: str  # DASK_GATEWAY__PROXY_ADDRESS: gateway://<host>:<tcp_port>
    public_address: str  # DASK_GATEWAY__PUBLIC_ADDRESS: dashboards, as a browser reaches them
    health_url: str  # answers 200 once the gateway is up
    service_name: str
    service_url: str  # the hub service's url (the gateway's proxy, without the prefix)
    api_token: str

    def hub_service(self) -> dict[str, str]:
        """The entry for ``c.JupyterHub.services``."""
        return gateway_hub_service(self.api_token, self.service_url, self.service_name)

    def user_server_environment(self) -> dict[str, str]:
        """The ``DASK_GATEWAY__*`` variables of every user server (makes `Gateway()` zero-arg)."""
        return user_server_environment(self.address, self.proxy_address, self.public_address)


def embedded_gateway_config_text(
    qhub_config_path: str | os.PathLike,
    *,
    workdir: Path,
    hub_api_url: str,
    api_token: str,
    http_port: int,
    tcp_port: int,
    api_port: int,
    host: str = "127.0.0.1",
    service_name: str = GATEWAY_SERVICE,
    log_level: str = "INFO",
    cgroup_name: str = "",
    usage_db_url: str = "",
) -> str:
    """The text of the dask-gateway-server config (see `write_embedded_gateway_config`)."""
    qhub_config = os.path.abspath(qhub_config_path)
    lines = [
        "# dask-gateway-server config for qhub-hub's embedded mode; written by",
        "# qhub_hub.gateway.server_config. Regenerated at every start: do not edit.",
        "from qhub_hub.gateway_options import QHubClusterOptions",
        "from qhub_hub.hub_plans import HubPlanSource",
        "",
        "c = get_config()  # noqa: F821",
        f"c.DaskGateway.address = {f'{host}:{api_port}'!r}",
        f"c.DaskGateway.log_level = {log_level!r}",
        'c.DaskGateway.backend_class = "qhub_hub.gateway.local_backend.QHubLocalBackend"',
        'c.DaskGateway.authenticator_class = "qhub_hub.gateway.auth.QHubJupyterHubAuthenticator"',
        f"c.JupyterHubAuthenticator.jupyterhub_api_url = {hub_api_url!r}",
        f"c.JupyterHubAuthenticator.jupyterhub_api_token = {api_token!r}",
        f"c.JupyterHubAuthenticator.jupyterhub_service_name = {service_name!r}",
        f"c.Proxy.address = {f'{host}:{http_port}'!r}",
        f"c.Proxy.tcp_address = {f'{host}:{tcp_port}'!r}",
        f"c.Proxy.prefix = {f'/services/{service_name}'!r}",
        f"c.QHubLocalBackend.clusters_directory = {str(workdir / 'clusters')!r}",
        f"c.QHubLocalBackend.hub_api_url = {hub_api_url!r}",
        f"c.QHubLocalBackend.hub_api_token = {api_token!r}",
        f"c.QHubLocalBackend.cgroup_name = {cgroup_name!r}",
        # the usage ledger the hub records servers in (qhub_hub.usage); empty: $QHUB_USAGE_DB
        *([f"c.QHubLocalBackend.usage_db_url = {usage_db_url!r}"] if usage_db_url else []),
        "c.QHubLocalBackend.cluster_status_period = 5.0",
        "c.QHubLocalBackend.worker_status_period = 5.0",
        "c.QHubLocalBackend.cluster_heartbeat_period = 5",
        "# users' plans come from the hub, asked with the gateway's own token",
        f"c.QHubLocalBackend.cluster_options = QHubClusterOptions(rendering='local', "
        f"config_path={qhub_config!r}, plan_source=HubPlanSource({hub_api_url!r}, {api_token!r}))",
        "",
    ]
    return "\n".join(lines)


def write_embedded_gateway_config(
    qhub_config_path: str | os.PathLike,
    *,
    workdir: Path,
    hub_api_url: str,
    api_token: str,
    http_port: int,
    tcp_port: int,
    api_port: int,
    host: str = "127.0.0.1",
    service_name: str = GATEWAY_SERVICE,
    public_address: str | None = None,
    log_level: str = "INFO",
    cgroup_name: str = "",
    usage_db_url: str = "",
) -> EmbeddedGateway:
    """Write ``<workdir>/dask_gateway_config.py`` (0600, it holds the hub token) and describe it.

    Arguments:
        qhub_config_path: the qhub config; the gateway re-reads it when it changes.
        workdir: root-owned folder for the config and ``clusters/`` (made 0755 if missing; every
            folder above must be traversable by users, so not under /root or a 0700 tmp folder).
        hub_api_url: the hub's API as the gateway reaches it, e.g. ``http://127.0.0.1:8081/hub/api``.
        api_token: the token of the hub service `service_name` (register it with `hub_service()`).
        http_port, tcp_port, api_port: see the module docstring.
        public_address: where a browser reaches the gateway (dashboard links), e.g.
            ``https://hub.example.org/services/dask-gateway``; default: `address`.
        cgroup_name: the platform's cgroup, in which each scheduler and worker gets its own with
            the cluster's limits (`QHubLocalBackend.cgroup_name`); empty: no cgroups.
        usage_db_url: the hub's usage ledger (`qhub_hub.usage`), where Dask workers are recorded
            and limited; empty: ``$QHUB_USAGE_DB``.
    """
    workdir = Path(workdir)
    workdir.mkdir(mode=0o755, parents=True, exist_ok=True)
    # users enter their own cluster's folder but cannot list the others (names are private)
    (workdir / "clusters").mkdir(mode=0o711, exist_ok=True)
    os.chmod(workdir / "clusters", 0o711)
    text = embedded_gateway_config_text(
        qhub_config_path, workdir=workdir, hub_api_url=hub_api_url, api_token=api_token,
        http_port=http_port, tcp_port=tcp_port, api_port=api_port, host=host,
        service_name=service_name, log_level=log_level, cgroup_name=cgroup_name,
        usage_db_url=usage_db_url)
    config_file = workdir / CONFIG_NAME
    fd = os.open(config_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(config_file, 0o600)
    base = f"http://{host}:{http_port}"
    address = f"{base}/services/{service_name}"
    return EmbeddedGateway(
        config_file=config_file,
        workdir=workdir,
        command=[sys.executable, "-m", "dask_gateway_server", "-f", str(config_file)],
        address=address,
        proxy_address=f"gateway://{host}:{tcp_port}",
        public_address=public_address or address,
        health_url=f"{address}/api/health",
        service_name=service_name,
        service_url=base,
        api_token=api_token,
    )
