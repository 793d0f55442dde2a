"""Driving the real kubespawner classes against the dev cluster from this process (no hub):
what tests/cluster/test_spawner.py and benchmarks/cluster.py share."""

from __future__ import annotations

import os
from pathlib import Path

from traitlets.config import Config

from qhub_hub.devcluster.images import stable_ref
from qhub_hub.devcluster.paths import STATE


def spawner_config(namespace: str) -> Config:
    """KubeSpawner/QHubKubeSpawner settings for the dev cluster: our images, loaded (never pulled)."""
    config = Config()
    config.KubeSpawner.namespace = namespace
    config.KubeSpawner.image = stable_ref("lab")
    config.KubeSpawner.image_pull_policy = "Never"
    config.KubeSpawner.start_timeout = 180
    config.KubeSpawner.http_timeout = 60
    config.QHubKubeSpawner.init_image = stable_ref("init")
    config.QHubKubeSpawner.init_image_pull_policy = "Never"
    config.QHubKubeSpawner.storage_claim_name = "qhub-storage"
    return config


def use_kubeconfig(path: Path) -> None:
    """Point kubespawner's (cached) client configuration at the dev cluster."""
    import kubernetes_asyncio.config.kube_config as kube_config
    from kubespawner import clients

    os.environ["KUBECONFIG"] = str(path)
    os.environ.pop("KUBERNETES_SERVICE_HOST", None)
    kube_config.KUBE_CONFIG_DEFAULT_LOCATION = str(path)
    clients.load_config.cache_clear()


def hostpath_claim(name: str, namespace: str, path: str, size: str = "1Gi") -> list[dict]:
    """A PersistentVolume on a host folder, and the claim bound to it."""
    return [
        {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": f"{namespace}-{name}"},
         "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteMany"],
                  "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "",
                  "claimRef": {"namespace": namespace, "name": name},
                  "hostPath": {"path": path, "type": "Directory"}}},
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": namespace},
         "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "", "volumeName": f"{namespace}-{name}",
                  "resources": {"requests": {"storage": size}}}},
    ]


def storage_dir(name: str) -> Path:
    """A folder for hostPath volumes, inside the cluster's state (removed by `down`)."""
    import shutil

    path = STATE / "volumes" / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def namespace_with_storage(apply, namespace: str) -> Path:
    """The namespace, and the qhub storage claim on a host folder (what an admin's RWX claim is)."""
    folder = storage_dir(namespace)
    apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    for item in hostpath_claim("qhub-storage", namespace, str(folder)):
        apply(item)
    return folder
