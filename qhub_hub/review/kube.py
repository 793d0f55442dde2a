"""A thin Kubernetes adapter for `audit --kubernetes`: the running user pods, as plain API dicts.

Uses kubernetes_asyncio (KubeSpawner's client): in a pod, the in-cluster service account; else the
kubeconfig ($KUBECONFIG or ~/.kube/config) and its current context. User servers are the pods
labelled ``component=singleuser-server`` (zero-to-jupyterhub's label).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

USER_POD_SELECTOR = "component=singleuser-server"
IN_CLUSTER_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


class KubeError(RuntimeError):
    """The cluster cannot be reached or read; the message says what to do."""


def list_user_pods(namespace: str | None = None) -> list[dict[str, Any]]:
    try:
        return asyncio.run(_list(namespace))
    except KubeError:
        raise
    except Exception as e:  # config, connection and API errors alike
        raise KubeError(f"cannot list the user pods: {e}; check KUBECONFIG / the current context, "
                        "and that you may list pods in the namespace (--namespace)") from None


async def _list(namespace: str | None) -> list[dict[str, Any]]:
    from kubernetes_asyncio import client, config

    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config()
        default_namespace = _read(IN_CLUSTER_NAMESPACE) or "default"
    else:
        try:
            await config.load_kube_config()
        except Exception as e:
            raise KubeError(f"no Kubernetes cluster configured ({e}); set KUBECONFIG or run where "
                            "kubectl works") from None
        _, active = config.list_kube_config_contexts()
        default_namespace = (active or {}).get("context", {}).get("namespace") or "default"
    async with client.ApiClient() as api:
        pods = await client.CoreV1Api(api).list_namespaced_pod(
            namespace or default_namespace, label_selector=USER_POD_SELECTOR)
        return pods_as_dicts(api, pods.items)


def pods_as_dicts(api: Any, pods: list[Any]) -> list[dict[str, Any]]:
    """API model objects -> the JSON the API sent (camelCase keys), which the audit reads."""
    return [api.sanitize_for_serialization(pod) for pod in pods]


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None
