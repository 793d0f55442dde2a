"""The real one-machine cluster (qhub_hub.devcluster), up once for tests/cluster and always torn down.

The first run on a machine builds Kubernetes from Debian's source package (~10 min on 2 cores) and
the images (~6 min); both are cached in /var/cache/qhub-hub, so later runs only start the cluster.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from qhub_hub.devcluster import cluster
from qhub_hub.devcluster.images import container_env, stable_ref
from qhub_hub.devcluster.paths import KUBECONFIG, STATE, kubectl_binary
from qhub_hub.devcluster.steps import ClusterError


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "the cluster tests need root (a kubelet, containerd, iptables, mounts)"
    try:
        cluster.preflight()
    except ClusterError as e:
        return f"no dev cluster on this machine: {e}"
    return None


@dataclass
class Cluster:
    kubeconfig: Path
    timings: dict[str, float]
    baseline: dict[str, list[str]]  # what leftovers() saw before the first `up`

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 120) -> subprocess.CompletedProcess:
        result = subprocess.run([kubectl_binary(), f"--kubeconfig={self.kubeconfig}", *args],
                                input=input, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode:
            raise AssertionError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
        return result

    def apply(self, manifest: dict) -> None:
        self.kubectl("apply", "-f", "-", input=json.dumps(manifest))

    def wait_running(self, namespace: str, pod: str, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        last = {}
        while time.monotonic() < deadline:
            result = self.kubectl("-n", namespace, "get", "pod", pod, "-o", "json", check=False)
            if result.returncode == 0:
                last = json.loads(result.stdout)
                if last["status"].get("phase") == "Running":
                    return last
            time.sleep(0.5)
        events = self.kubectl("-n", namespace, "get", "events", "-o", "wide", check=False).stdout
        raise AssertionError(f"pod {namespace}/{pod} not Running after {timeout} s: "
                             f"{json.dumps(last.get('status', {}))[:1500]}\nevents:\n{events[-3000:]}")

    def exec(self, namespace: str, pod: str, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.kubectl("-n", namespace, "exec", pod, "--", *command, check=check)


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["podman", *args], capture_output=True, text=True, env=container_env(), timeout=300)
    if check and result.returncode:
        raise AssertionError(f"podman {' '.join(args)}: {result.stderr.strip()[-2000:]}")
    return result


def built_image(name: str) -> str:
    """The image `up` built or found (podman's name, tagged with the hash of its inputs)."""
    return json.loads((STATE / "images.json").read_text())[name]["built"]


def cluster_image(name: str) -> str:
    """The name the cluster's containerd knows the image by (never pulled)."""
    return stable_ref(name)


@pytest.fixture(scope="package")  # down as soon as tests/cluster is done, not at the suite's end
def dev_cluster() -> Iterator[Cluster]:
    reason = _why_not()
    if reason:
        pytest.skip(reason)
    if os.environ.get("QHUB_CLUSTER_REUSE") == "1" and all(cluster.status().values()):
        # while working on the tests: the cluster of `scripts/cluster up`, left running
        yield Cluster(KUBECONFIG, {}, cluster.leftovers())
        return
    cluster.down()  # an earlier cluster (scripts/cluster up) would spoil the baseline
    baseline = cluster.leftovers()
    try:
        timings = cluster.up()
    except ClusterError as e:
        cluster.down()
        pytest.fail(f"the dev cluster did not come up: {e}", pytrace=False)
    try:
        yield Cluster(KUBECONFIG, timings.phases, baseline)
    finally:
        cluster.down()
    left = {k: v for k, v in cluster.leftovers().items() if v != baseline[k]}
    assert not left, f"`down` left these behind: {left}"
