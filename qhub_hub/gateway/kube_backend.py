"""dask-gateway's Kubernetes backend with the per-user cluster limit of the qhub config.

In the gateway API server's config (the dask-gateway chart's controller is unchanged)::

    c.DaskGateway.backend_class = "qhub_hub.gateway.kube_backend.QHubKubeBackend"

Everything else (pods, CRDs, the controller) is upstream's; what each cluster gets comes from
`qhub_hub.gateway_options.QHubClusterOptions(rendering="kubernetes", ...)`.
"""

from __future__ import annotations

from dask_gateway_server.backends.kubernetes.backend import KubeBackend

from .limits import ClusterLimitMixin


class QHubKubeBackend(ClusterLimitMixin, KubeBackend):
    """`KubeBackend` refusing a user's cluster over `dask_gateway.max_clusters_per_user`."""
