"""The Dask Gateway API server's config in the qhub chart.

First the dask-gateway chart's own generated config (authentication through JupyterHub, the
Kubernetes backend, images, addresses), then qhub's cluster options: what each user may ask for,
from their plan in the qhub config ($QHUB_CONFIG, re-read when it changes), with environments
read from conda-store's volume mounted at `conda_store.environments_root`.
"""

import os
from pathlib import Path

from qhub_hub.gateway_options import KubernetesSettings, QHubClusterOptions
from qhub_hub.hub_plans import HubPlanSource

# dask-gateway-server (traitlets) runs this file with `c`, the gateway's config, defined.
c = globals()["c"]

CHART_CONFIG = Path(os.environ.get("QHUB_DASK_GATEWAY_CHART_CONFIG",
                                   "/etc/dask-gateway/dask_gateway_config.py"))
exec(compile(CHART_CONFIG.read_text(), str(CHART_CONFIG), "exec"),
     {"c": c, "__file__": str(CHART_CONFIG), "__name__": "dask_gateway_chart_config"})

# qhub's subclasses of what the chart configured: the backend enforces
# dask_gateway.max_clusters_per_user; the authenticator answers a token the hub rejects with 401.
if c.DaskGateway.backend_class == "dask_gateway_server.backends.kubernetes.KubeBackend":
    c.DaskGateway.backend_class = "qhub_hub.gateway.kube_backend.QHubKubeBackend"
if c.DaskGateway.authenticator_class == "dask_gateway_server.auth.JupyterHubAuthenticator":
    c.DaskGateway.authenticator_class = "qhub_hub.gateway.auth.QHubJupyterHubAuthenticator"

c.Backend.cluster_options = QHubClusterOptions(
    rendering="kubernetes",
    kubernetes=KubernetesSettings(
        default_image=os.environ["QHUB_LAB_IMAGE"],
        conda_store_claim=os.environ["QHUB_CONDA_STORE_CLAIM"],
        storage_claim=os.environ.get("QHUB_STORAGE_CLAIM") or None,
        mount_user_storage=os.environ.get("QHUB_MOUNT_USER_STORAGE", "true") == "true",
    ),
    # users' plans come from the hub, asked with the gateway's own hub token
    plan_source=HubPlanSource(
        api_url=c.JupyterHubAuthenticator.get("jupyterhub_api_url") or os.environ.get("JUPYTERHUB_API_URL", ""),
        token=c.JupyterHubAuthenticator.get("jupyterhub_api_token") or os.environ.get("JUPYTERHUB_API_TOKEN", ""),
    ),
)
# distributed 2026 has no dask-scheduler/dask-worker scripts (the backend's defaults); the
# cluster options replace these with the chosen environment's own `python -m dask ...`.
c.KubeClusterConfig.scheduler_cmd = ["dask", "scheduler"]
c.KubeClusterConfig.worker_cmd = ["dask", "worker"]
