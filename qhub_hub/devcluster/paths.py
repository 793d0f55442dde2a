"""Where the dev cluster keeps things: a cache that survives `down` and a state folder that does not."""

from __future__ import annotations

import os
from pathlib import Path

# Built Kubernetes binaries, the Debian base rootfs and built images: kept across runs (outside the repo).
CACHE = Path(os.environ.get("QHUB_CLUSTER_CACHE", "/var/cache/qhub-hub"))
# Everything of one running cluster (etcd data, certificates, logs, containerd root): removed by `down`.
STATE = Path(os.environ.get("QHUB_CLUSTER_STATE", "/var/lib/qhub-hub-cluster"))
# containerd's runtime sockets and the per-cluster run folder.
RUN = Path("/run/qhub-hub-cluster")

KUBERNETES_BIN = CACHE / "kubernetes"
IMAGES = CACHE / "images"
KUBECONFIG = STATE / "admin.kubeconfig"


def kubectl_binary() -> str:
    """kubectl 1.20 from Debian (scripts/setup.d/cluster.sh unpacks it into the environment);
    else whatever `kubectl` is on PATH."""
    import shutil
    import sys

    ours = Path(sys.prefix) / "share" / "qhub-hub" / "kubectl-1.20" / "kubectl"
    return str(ours) if ours.exists() else (shutil.which("kubectl") or "kubectl")
