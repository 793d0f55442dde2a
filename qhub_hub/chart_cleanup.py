"""What `helm uninstall` must also remove: the pods the hub and the Dask Gateway started.

    python -m qhub_hub.chart_cleanup NAMESPACE      # the chart's pre-delete hook Job runs this

Helm deletes what it rendered; user servers (made by KubeSpawner) and Dask clusters (DaskCluster
objects, their scheduler and worker pods, made by the gateway's controller) are not among them
and would keep running, and using resources, after the release is gone. Before Helm deletes the
release, this stops every Dask cluster while the controller still runs (it owns their pods and
finalizers), then deletes the user servers' pods and any Dask pod left. It uses the Job's
ServiceAccount, limited by the chart's Role to these objects in this namespace.
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
DASK_CLUSTERS = "/apis/gateway.dask.org/v1alpha1/namespaces/{namespace}/daskclusters"
PODS = "/api/v1/namespaces/{namespace}/pods"
# z2jh's label on user servers; the gateway controller's on schedulers and workers
USER_SERVERS = "component=singleuser-server"
DASK_PODS = "app.kubernetes.io/name=dask-gateway,app.kubernetes.io/component in (dask-scheduler,dask-worker)"
CONTROLLER_GRACE = 60  # seconds for the gateway's controller to stop the clusters itself


class Api:
    def __init__(self) -> None:
        host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"]
        self.base = f"https://{host}:{port}"
        self.token = (ACCOUNT / "token").read_text().strip()
        self.tls = ssl.create_default_context(cafile=str(ACCOUNT / "ca.crt"))

    def call(self, method: str, path: str, body: dict | None = None, query: dict | None = None,
             content_type: str = "application/json") -> dict:
        url = self.base + path + ("?" + urllib.parse.urlencode(query) if query else "")
        request = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body else None,
                                         headers={"Authorization": f"Bearer {self.token}",
                                                  "Content-Type": content_type})
        try:
            with urllib.request.urlopen(request, context=self.tls, timeout=30) as response:
                return json.load(response)
        except urllib.error.HTTPError as e:
            if e.code == 404:  # gone already, or no DaskCluster kind (dask-gateway not installed)
                return {"items": []}
            raise


def names(listing: dict) -> list[str]:
    return [item["metadata"]["name"] for item in listing.get("items", [])]


def clean(api: Api, namespace: str, say=print) -> None:
    clusters_path = DASK_CLUSTERS.format(namespace=namespace)
    clusters = names(api.call("GET", clusters_path))
    for name in clusters:
        api.call("DELETE", f"{clusters_path}/{name}")
    deadline = time.monotonic() + CONTROLLER_GRACE
    while clusters and time.monotonic() < deadline:
        time.sleep(2)
        clusters = names(api.call("GET", clusters_path))
    for name in clusters:  # the controller did not finish: let them go without it
        api.call("PATCH", f"{clusters_path}/{name}", {"metadata": {"finalizers": None}},
                 content_type="application/merge-patch+json")
    pods_path = PODS.format(namespace=namespace)
    for selector in (USER_SERVERS, DASK_PODS):
        pods = names(api.call("GET", pods_path, query={"labelSelector": selector}))
        if pods:
            api.call("DELETE", pods_path, query={"labelSelector": selector})
        say(f"chart cleanup: {len(pods)} pods deleted ({selector})")
    say(f"chart cleanup: Dask clusters stopped; {len(clusters)} needed their finalizers removed")


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    clean(Api(), argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
