"""Benchmark: helm/qhub installed on the dev cluster, against a plain zero-to-jupyterhub install.

    sudo /opt/qhub-hub/bin/python benchmarks/chart_install.py

On the one-machine Kubernetes of `scripts/cluster` (brought up if it is not running, and then down
again), with the real sub-charts and the harness of tests/cluster/release.py:

1. qhub: `helm install --wait` of the example team's release, to every pod Ready; carol's login to
   her JupyterLab through the public proxy (form spawn, the `small` profile); from her pod,
   `GatewayCluster()` with 2 workers ready.
2. Anchor, same run, same cluster, same images: the jupyterhub sub-chart alone (z2jh 4.4.0 with
   its defaults: dummy login, no storage), `helm install --wait`, and one login to JupyterLab.

Ends with `result: ...` (seconds).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qhub_hub.devcluster import cluster  # noqa: E402
from qhub_hub.devcluster.paths import KUBECONFIG, kubectl_binary  # noqa: E402
from tests.cluster import release as releaselib  # noqa: E402 - the repository root is added above
from tests.cluster.team import (  # noqa: E402
    ENVIRONMENTS_CLAIM,
    STORAGE_CLAIM,
    Team,
    team_values,
)


class Kube:
    def kubectl(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 180):
        result = subprocess.run([kubectl_binary(), f"--kubeconfig={KUBECONFIG}", *args], input=input,
                                capture_output=True, text=True, timeout=timeout)
        if check and result.returncode:
            raise RuntimeError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
        return result


def qhub_figures(kube: Kube, work: Path, chart: Path) -> dict[str, float]:
    namespace = "bench-qhub"
    releaselib.make_storage(kube.kubectl, namespace, storage_claim=STORAGE_CLAIM,
                            environments_claim=ENVIRONMENTS_CLAIM)
    release = releaselib.Release("qhub", namespace, chart, work)
    try:
        seconds, _ = release.install(team_values(), timeout="6m")
        team = Team(kube, release, seconds, "")
        ip = team.kubectl("get", "service", "proxy-public", "-o", "jsonpath={.spec.clusterIP}").stdout.strip()
        team.proxy = f"http://{ip}"
        login = team.spawn("carol")
        code = textwrap.dedent("""
            import time
            from dask_gateway import GatewayCluster
            started = time.monotonic()
            cluster = GatewayCluster()
            cluster.scale(2)
            cluster.get_client().wait_for_workers(2, timeout=240)
            print(time.monotonic() - started)
            cluster.shutdown()
        """)
        out = team.kubectl("exec", "jupyter-carol", "--", "python", "-c", code, timeout=300).stdout
        return {"install": seconds, "login_to_lab": login, "gateway_2_workers": float(out.split()[-1])}
    finally:
        release.uninstall()
        releaselib.remove_storage(kube.kubectl, namespace)


def z2jh_figures(kube: Kube, work: Path, chart: Path) -> dict[str, float]:
    """The anchor: the same jupyterhub sub-chart, alone, with its own defaults."""
    namespace = "bench-z2jh"
    releaselib.make_storage(kube.kubectl, namespace, storage_claim="unused", environments_claim="unused-envs")
    values = releaselib.old_cluster_values()["jupyterhub"]
    values = releaselib.merge(values, {"proxy": {"service": {"type": "ClusterIP"}},
                                       # our lab image has no home for z2jh's uid 1000 (z2jh's
                                       # default image has /home/jovyan): Jupyter's runtime files
                                       # need a writable HOME
                                       "singleuser": {"storage": {"type": "none"}, "cmd": "jupyterhub-singleuser",
                                                      "extraEnv": {"HOME": "/tmp"}},
                                       "cull": {"enabled": False}})
    values_file = work / "z2jh-values.yaml"
    values_file.write_text(json.dumps(values))
    release = releaselib.Release("z2jh", namespace, chart / "charts" / "jupyterhub", work)
    try:
        started = time.monotonic()
        release.helm("install", "z2jh", str(release.chart), "--create-namespace", "--wait", "--timeout", "6m",
                     "--server-side=false", "-f", str(values_file))
        seconds = time.monotonic() - started
        team = Team(kube, release, seconds, "")
        ip = team.kubectl("get", "service", "proxy-public", "-o", "jsonpath={.spec.clusterIP}").stdout.strip()
        team.proxy = f"http://{ip}"
        login = spawn_default(team, "anchor")
        return {"install": seconds, "login_to_lab": login}
    finally:
        release.uninstall()
        releaselib.remove_storage(kube.kubectl, namespace)


def spawn_default(team: Team, user: str) -> float:
    """z2jh's dummy login (any password), then its spawn (no options form: GET /hub/spawn starts
    the server), until JupyterLab answers."""
    started = time.monotonic()
    deadline = time.monotonic() + 60
    while True:  # the proxy answers 503 until the hub has registered its routes
        try:
            session = team.login(user)
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
    session.get(f"{team.proxy}/hub/spawn", timeout=120)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        lab = session.get(f"{team.proxy}/user/{user}/lab", timeout=60)
        if lab.status_code == 200 and lab.url.endswith(f"/user/{user}/lab") and "JupyterLab" in lab.text:
            return time.monotonic() - started
        time.sleep(1)
    raise RuntimeError("the anchor's JupyterLab did not answer in 300 s")


def main() -> int:
    was_running = all(cluster.status().values())
    if not was_running:
        cluster.up()
    kube = Kube()
    try:
        with tempfile.TemporaryDirectory(prefix="qhub-bench-chart-") as tmp:
            work = Path(tmp)
            chart = releaselib.scratch_chart(work)
            if chart is None:
                print("no sub-charts: no chart repository answers and ../shared/upstream-charts is missing")
                return 1
            ours = qhub_figures(kube, work, chart)
            try:
                anchor = z2jh_figures(kube, work, chart)
            except RuntimeError as e:  # said, not hidden: the figures above stay worth printing
                print(f"anchor failed: {e}")
                anchor = {"install": float("nan"), "login_to_lab": float("nan")}
    finally:
        if not was_running:
            cluster.down()
    print(f"{'figure':34} {'qhub':>8} {'z2jh (anchor)':>14}")
    print(f"{'helm install --wait to all Ready':34} {ours['install']:8.1f} {anchor['install']:14.1f}")
    print(f"{'login to JupyterLab (one user)':34} {ours['login_to_lab']:8.1f} {anchor['login_to_lab']:14.1f}")
    print(f"{'GatewayCluster, 2 workers ready':34} {ours['gateway_2_workers']:8.1f} {'-':>14}")
    print(f"result: install_s={ours['install']:.1f} z2jh_install_s={anchor['install']:.1f} "
          f"login_to_lab_s={ours['login_to_lab']:.1f} z2jh_login_to_lab_s={anchor['login_to_lab']:.1f} "
          f"gateway_2_workers_s={ours['gateway_2_workers']:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
