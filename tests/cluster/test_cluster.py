"""The cluster itself: a non-root Pod with a hostPath-backed claim runs and `kubectl exec` works;
`down` leaves nothing behind and a second `up` starts afresh from the caches."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from qhub_hub.devcluster import cluster
from qhub_hub.devcluster.paths import kubectl_binary

from .conftest import cluster_image
from .spawning import hostpath_claim, storage_dir

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
NS = "kc-basic"
UID = 48001


def test_the_node_and_the_api_are_there(dev_cluster):
    nodes = dev_cluster.kubectl("get", "nodes", "-o", "jsonpath={.items[*].status.nodeInfo.kubeletVersion}")
    assert nodes.stdout == "v1.20.2"
    version = dev_cluster.kubectl("version", "-o", "json").stdout
    assert '"gitVersion": "v1.20.2"' in version


def test_non_root_pod_with_a_hostpath_claim_runs_and_exec_works(dev_cluster):
    folder = storage_dir("basic")
    os.chown(folder, UID, UID)
    dev_cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    for item in hostpath_claim("data", NS, str(folder)):
        dev_cluster.apply(item)
    dev_cluster.apply({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "writer", "namespace": NS},
        "spec": {
            "securityContext": {"runAsUser": UID, "runAsGroup": UID, "runAsNonRoot": True},
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "main", "image": cluster_image("init"), "imagePullPolicy": "Never",
                            "command": ["sleep", "3600"],
                            "securityContext": {"allowPrivilegeEscalation": False,
                                                "capabilities": {"drop": ["ALL"]}},
                            "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
        }})
    dev_cluster.wait_running(NS, "writer")
    assert dev_cluster.kubectl("-n", NS, "get", "pvc", "data", "-o", "jsonpath={.status.phase}").stdout == "Bound"
    assert dev_cluster.exec(NS, "writer", "id", "-u").stdout.strip() == str(UID)
    dev_cluster.exec(NS, "writer", "sh", "-c", "echo hello > /data/note")
    note = folder / "note"
    assert note.read_text() == "hello\n" and note.stat().st_uid == UID  # really on the host folder
    # and the pod cannot write where its uid may not
    denied = dev_cluster.exec(NS, "writer", "touch", "/etc/x", check=False)
    assert denied.returncode != 0 and "Permission denied" in denied.stderr


def test_a_pod_reaches_the_api_through_the_kubernetes_service(dev_cluster):
    """kube-proxy's iptables rules: the `kubernetes` ClusterIP answers from inside a pod."""
    dev_cluster.apply({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "caller", "namespace": NS},
        "spec": {"terminationGracePeriodSeconds": 1, "automountServiceAccountToken": False,
                 "securityContext": {"runAsUser": UID, "runAsNonRoot": True},
                 "containers": [{"name": "main", "image": cluster_image("lab"), "imagePullPolicy": "Never",
                                 "command": ["sleep", "3600"]}]}})
    dev_cluster.wait_running(NS, "caller")
    probe = ("import os, socket; s = socket.create_connection((os.environ['KUBERNETES_SERVICE_HOST'], "
             "int(os.environ['KUBERNETES_SERVICE_PORT'])), timeout=5); print('connected')")
    assert dev_cluster.exec(NS, "caller", "python", "-c", probe).stdout.strip() == "connected"


def test_down_leaves_nothing_behind_and_up_again_starts_afresh(dev_cluster):
    assert cluster.leftovers()["netns"], "pods are running: their network namespaces should be there"
    cluster.down()
    left = {k: v for k, v in cluster.leftovers().items() if v != dev_cluster.baseline[k]}
    assert not left, f"`down` left these behind: {left}"
    assert not any(cluster.status().values())
    gone = subprocess.run([kubectl_binary(), f"--kubeconfig={dev_cluster.kubeconfig}", "get", "nodes"],
                          capture_output=True, text=True)
    assert gone.returncode != 0  # the kubeconfig went with the cluster

    timings = cluster.up()  # warm: everything comes from the caches
    # (images holding qhub_hub are rebuilt only if someone edited qhub_hub meanwhile)
    assert not {"kubernetes", "proxy", "init", "pause"} & set(timings.built), timings.built
    dev_cluster.timings.update({f"warm_{k}": v for k, v in timings.phases.items()})
    namespaces = dev_cluster.kubectl("get", "namespaces", "-o", "name").stdout
    assert f"namespace/{NS}" not in namespaces  # a fresh etcd


def test_refuses_clearly_when_not_root():
    """As another user: one line saying why, exit 1, nothing started (no cluster needed)."""
    result = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                             sys.executable, "-m", "qhub_hub.devcluster", "up"],
                            capture_output=True, text=True, cwd=REPO, timeout=60)
    assert result.returncode == 1
    assert "cluster: error: must run as root" in result.stderr and "Traceback" not in result.stderr


def test_refuses_clearly_when_not_debian(tmp_path, monkeypatch):
    if os.geteuid() != 0:
        pytest.skip("the Debian check comes after the root check")
    (tmp_path / "os-release").write_text('NAME="Ubuntu"\nID=ubuntu\nID_LIKE=debian\n')
    monkeypatch.setattr(cluster, "OS_RELEASE", tmp_path / "os-release")
    with pytest.raises(cluster.ClusterError, match="needs Debian"):
        cluster.preflight()


def test_helm_from_the_pypi_wheel_talks_to_the_cluster(dev_cluster):
    """scripts/setup.d/cluster.sh installs helm 4.1.4 next to the Python environment."""
    helm = Path(sys.prefix) / "bin" / "helm"
    version = subprocess.run([helm, "version", "--short"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("v4.1.4")
    releases = subprocess.run([helm, "list", "--all-namespaces", "--output", "json",
                               f"--kubeconfig={dev_cluster.kubeconfig}"], capture_output=True, text=True)
    assert releases.returncode == 0 and releases.stdout.strip() == "[]", releases.stderr
