"""The per-user cluster limit on both backends' class hierarchy (the local one also runs for real
in test_gateway.py::test_cluster_limit_per_user)."""

from __future__ import annotations

import pytest
from dask_gateway_server.backends.base import PublicException
from dask_gateway_server.models import ClusterStatus, User

from qhub_hub.gateway.kube_backend import QHubKubeBackend
from qhub_hub.gateway.limits import ClusterLimitMixin
from qhub_hub.gateway.local_backend import QHubLocalBackend


class Recording:
    """Stands in for a backend's own start_cluster/list_clusters (no Kubernetes here)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.started: list[str] = []

    async def list_clusters(self, username=None, statuses=None):
        assert set(statuses) == {ClusterStatus.PENDING, ClusterStatus.RUNNING}
        return [type("C", (), {"name": n})() for n in self.started]

    async def start_cluster(self, user, cluster_options):
        self.started.append(f"c{len(self.started)}")
        return self.started[-1]


class Limited(ClusterLimitMixin, Recording):
    pass


class Options:
    def __init__(self, limit: int):
        self.limit = limit

    def max_clusters_per_user(self) -> int:
        return self.limit


async def test_limit_from_the_cluster_options() -> None:
    backend = Limited()
    backend.cluster_options = Options(2)
    assert await backend.start_cluster(User("bob"), {}) == "c0"
    assert await backend.start_cluster(User("bob"), {}) == "c1"
    with pytest.raises(PublicException, match=r"'bob' already has 2 Dask cluster\(s\) running, the most "
                                              r"allowed \(dask_gateway.max_clusters_per_user = 2\): c0, c1"):
        await backend.start_cluster(User("bob"), {})


async def test_limit_set_on_the_backend_wins_and_zero_means_none() -> None:
    backend = Limited(max_clusters_per_user=0)
    backend.cluster_options = Options(1)
    for _ in range(3):
        await backend.start_cluster(User("bob"), {})
    assert backend.started == ["c0", "c1", "c2"]


def test_both_backends_carry_the_limit() -> None:
    assert issubclass(QHubKubeBackend, ClusterLimitMixin)
    assert issubclass(QHubLocalBackend, ClusterLimitMixin)
    assert QHubKubeBackend.start_cluster is ClusterLimitMixin.start_cluster
