"""Facts about the two sub-charts the qhub chart relies on (zero-to-jupyterhub 4.4.0, dask-gateway
2026.3.0), written down because the charts themselves cannot be fetched in CI (and are never
committed). test_upstream.py checks our values against these facts always, and the facts against
the real charts when a copy is at hand ($QHUB_UPSTREAM_CHARTS, see that module).
"""

from __future__ import annotations

from collections.abc import Callable

Labels = Callable[[str], dict[str, str]]

JUPYTERHUB_VERSION = "4.4.0"
DASK_GATEWAY_VERSION = "2026.3.0"


def _z2jh_pod(component: str, **extra: str) -> Labels:
    """zero-to-jupyterhub 4 pods carry the legacy and the app.kubernetes.io labels."""
    def labels(release: str) -> dict[str, str]:
        return {"component": component, "app": "jupyterhub", "release": release,
                "app.kubernetes.io/component": component, "app.kubernetes.io/name": "jupyterhub",
                "app.kubernetes.io/instance": release, **extra}
    return labels


def _gateway_pod(component: str, **extra: str) -> Labels:
    """dask-gateway chart pods (its fullname: <release>-dask-gateway)."""
    def labels(release: str) -> dict[str, str]:
        return {"app.kubernetes.io/name": "dask-gateway", "app.kubernetes.io/instance": release,
                "app.kubernetes.io/managed-by": "Helm", "gateway.dask.org/instance": f"{release}-dask-gateway",
                "app.kubernetes.io/component": component, **extra}
    return labels


def _cluster_pod(component: str) -> Labels:
    """Scheduler and worker pods made by dask-gateway's Kubernetes controller."""
    def labels(release: str) -> dict[str, str]:
        return {"app.kubernetes.io/name": "dask-gateway", "gateway.dask.org/instance": f"{release}-dask-gateway",
                "gateway.dask.org/cluster": "qhub-test.0123456789abcdef",
                "app.kubernetes.io/component": component}
    return labels


# Pods of the sub-charts (and the ones their software starts), by a short name.
UPSTREAM_POD_LABELS: dict[str, Labels] = {
    "hub": _z2jh_pod("hub", **{"hub.jupyter.org/network-access-proxy-api": "true",
                               "hub.jupyter.org/network-access-proxy-http": "true",
                               "hub.jupyter.org/network-access-singleuser": "true"}),
    "proxy": _z2jh_pod("proxy", **{"hub.jupyter.org/network-access-hub": "true",
                                   "hub.jupyter.org/network-access-singleuser": "true"}),
    # kubespawner's labels (z2jh sets common_labels; managed-by kubespawner)
    "singleuser-server": _z2jh_pod("singleuser-server", **{
        "app.kubernetes.io/managed-by": "kubespawner", "hub.jupyter.org/username": "alice",
        "hub.jupyter.org/network-access-hub": "true"}),
    "traefik": _gateway_pod("traefik"),
    "dask-gateway-controller": _gateway_pod("controller"),
    "dask-scheduler": _cluster_pod("dask-scheduler"),
    "dask-worker": _cluster_pod("dask-worker"),
}


def _api_selector(release: str) -> dict:
    return {"matchLabels": {"app.kubernetes.io/name": "dask-gateway", "app.kubernetes.io/instance": release,
                            "app.kubernetes.io/component": "gateway"}}


# Objects of the sub-charts our templates name (kind/name -> facts).
UPSTREAM_OBJECTS: dict[str, dict] = {
    "Secret/hub": {"keys": "hub.services.<name>.apiToken for each jupyterhub.hub.services entry"},
    "Service/hub": {"port": 8081},
    "Service/proxy-public": {"port": 80},
    # the dask-gateway chart's, for the release `qhub` (tests/helm/chart.RELEASE)
    "ConfigMap/api-qhub-dask-gateway": {"keys": ["dask_gateway_config.py"]},
    "Service/api-qhub-dask-gateway": {"selector": _api_selector, "port": 8000},
    "ServiceAccount/api-qhub-dask-gateway": {},
    "Service/traefik-qhub-dask-gateway": {"port": 80},
}

FREE = "free-form"  # a subtree the chart passes through (traitlets config, env, lists of objects)

# Every key path we may set under `jupyterhub:` and what it holds; a path under a FREE one is fine.
JUPYTERHUB_KEYS: dict[str, str] = {
    "enabled": "boolean",
    "fullnameOverride": "string",
    "hub.image.name": "string",
    "hub.image.tag": "string",
    "hub.config": FREE,
    "hub.consecutiveFailureLimit": "integer",
    "hub.extraEnv": FREE,
    "hub.extraVolumes": FREE,
    "hub.extraVolumeMounts": FREE,
    "hub.services": FREE,
    "singleuser.image.name": "string",
    "singleuser.image.tag": "string",
    "singleuser.storage.type": "string",
    "singleuser.defaultUrl": "string",
    "singleuser.networkPolicy.egress": FREE,
    "singleuser.networkPolicy.egressAllowRules.privateIPs": "boolean",
    "cull.enabled": "boolean",
    "proxy.https.enabled": "boolean",
    "proxy.https.hosts": FREE,
    "proxy.https.letsencrypt.contactEmail": "string",
    "scheduling.userScheduler.enabled": "boolean",
}

DASK_GATEWAY_KEYS: dict[str, str] = {
    "enabled": "boolean",
    "fullnameOverride": "string",
    "gateway.replicas": "integer",
    "gateway.prefix": "string",
    "gateway.auth.type": "string",
    "gateway.auth.jupyterhub.apiTokenFromSecretName": "string",
    "gateway.auth.jupyterhub.apiTokenFromSecretKey": "string",
    "gateway.auth.jupyterhub.apiUrl": "string",
    "gateway.auth.jupyterhub.jupyterhubServiceName": "string",
    "gateway.backend.image.name": "string",
    "gateway.backend.image.tag": "string",
    "traefik.service.type": "string",
}

SUBCHART_KEYS = {"jupyterhub": JUPYTERHUB_KEYS, "dask-gateway": DASK_GATEWAY_KEYS}
