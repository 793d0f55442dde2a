"""Dask workers through a real dask-gateway-server (QHubLocalBackend, real Unix users, a real hub),
with the gateway writing the ledger and with the gateway asking the hub:
each worker's life is recorded in the usage ledger; `cluster.scale()` beyond the group's worker-core
limit is refused with the figures (409, the client's GatewayClusterError); adaptive scaling stays
within the limit; stopping a cluster closes its workers' intervals.

Test users: gwuann, gwuben (group gwuml), ids 42900-42999 (inside the gateway harness's gw* range,
apart from tests/gateway's 42000-42099)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest
from dask_gateway import Gateway, GatewayClusterError
from dask_gateway.auth import JupyterHubAuth

from qhub_hub.usage.ledger import DASK_WORKER, Ledger
from tests.gateway.harness import (
    SITE_PACKAGES,
    GatewayStack,
    UnixAccounts,
    base_folder,
    gateway_request,
    make_environment,
    remove_tree,
)
from tests.support.net import wait_for_http, wait_until

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings(
        "ignore:Exception ignored in. <function Gateway.__del__:pytest.PytestUnraisableExceptionWarning"),
]

GROUPS = {"gwuusers": 42900, "gwuml": 42910}
USERS = {"gwuann": (42901, "gwuusers", ["gwuml"]), "gwuben": (42902, "gwuusers", ["gwuml"])}


@pytest.fixture(scope="module", params=["gateway-writes", "through-the-hub"])
def stack(request) -> Iterator[GatewayStack]:
    """`gateway-writes`: the gateway has the ledger's URL (the embedded mode); `through-the-hub`:
    it has none and asks the hub's usage endpoint (the Kubernetes chart's way)."""
    if os.geteuid() != 0:
        pytest.skip("needs root: the gateway starts Dask processes as real Unix users")
    base = base_folder("qhub-usage-gw-")
    accounts = UnixAccounts(GROUPS, USERS, homes=base / "home")
    config = {
        "security": {
            "groups": {name: {"gid": gid} for name, gid in GROUPS.items()},
            "users": {name: {"uid": uid, "primary_group": primary, "secondary_groups": others}
                      for name, (uid, primary, others) in USERS.items()},
        },
        "profiles": {"dask_worker": {"Small Worker": {
            "worker_cores": 1, "worker_cores_limit": 1, "worker_memory": "1G", "worker_memory_limit": "1G",
            "max_workers": 4, "cost_per_hour": 0.04}}},
        "storage": {"home_root": str(base / "home")},
        "conda_store": {"environments_root": str(base / "conda")},
        "cull": {"cluster_idle_timeout": 300},
        "limits": {"groups": {"gwuml": {"dask_worker_cores": 2}}},
    }
    saved = os.environ.pop("QHUB_USAGE_DB", None)
    if request.param == "gateway-writes":
        ledger_url = f"sqlite:///{base / 'qhub-usage.sqlite'}"
        os.environ["QHUB_USAGE_DB"] = ledger_url  # the hub and the gateway share the ledger
    else:
        ledger_url = f"sqlite:///{base / 'hub' / 'qhub-usage.sqlite'}"  # beside the hub's database
    stack = GatewayStack(base, config)
    try:
        accounts.create()
        make_environment(base / "conda" / "global" / "envs" / "dask", [SITE_PACKAGES])
        for path in [base / "conda", *(base / "conda").rglob("envs")]:
            path.chmod(0o755)
        stack.start()
        stack.add_hub_users(list(USERS), {"gwuml": list(USERS)})
        stack.ledger_url = ledger_url  # type: ignore[attr-defined]
        stack.usage_mode = request.param  # type: ignore[attr-defined]
        yield stack
    finally:
        stack.stop()
        accounts.remove()
        remove_tree(base)
        if saved is None:
            os.environ.pop("QHUB_USAGE_DB", None)
        else:
            os.environ["QHUB_USAGE_DB"] = saved


def gateway_for(stack: GatewayStack, user: str) -> Gateway:
    assert stack.gateway is not None
    return Gateway(address=stack.gateway.address, proxy_address=stack.gateway.proxy_address,
                   auth=JupyterHubAuth(api_token=stack.token(user)))


def open_workers(stack: GatewayStack, cluster: str | None = None) -> list:
    rows = Ledger(stack.ledger_url).open_intervals(DASK_WORKER)
    return [r for r in rows if cluster is None or r.cluster == cluster]


def test_workers_are_recorded_and_scale_beyond_the_group_limit_is_refused(stack: GatewayStack) -> None:
    with gateway_for(stack, "gwuann") as gw, gateway_for(stack, "gwuben") as gw_ben:
        with gw.new_cluster() as cluster:
            cluster.scale(2)
            with cluster.get_client() as client:
                client.wait_for_workers(2, timeout=120)
            wait_until(lambda: len(open_workers(stack, cluster.name)) == 2, timeout=60,
                       what="the workers in the ledger")
            rows = open_workers(stack, cluster.name)
            assert {(r.username, r.charged_group, r.profile, r.cores, r.cost_per_hour) for r in rows} == {
                ("gwuann", "gwuml", "Small Worker", 1.0, 0.04)}

            with pytest.raises(GatewayClusterError) as refused:  # what the user sees: the figures
                cluster.scale(3)
            assert str(refused.value) == (
                f"Cannot scale {cluster.name} to 3 workers: at most 2 fit. Not enough of your limits left for "
                "3 more Dask worker(s): group gwuml uses 0 of 2 Dask worker cores and each worker asks for 1. "
                "Stop something you run, or ask an admin to raise the limit (limits in the platform's config)."
            ), str(refused.value)
            ann = stack.token("gwuann")
            status, body = gateway_request(stack, "POST", f"/clusters/{cluster.name}/scale", ann, {"count": 3})
            assert status == 409  # dask-gateway-server's status for a PublicException
            assert body["error"].startswith(f"Cannot scale {cluster.name} to 3 workers: at most 2 fit. ")
            assert "group gwuml uses 0 of 2 Dask worker cores and each worker asks for 1" in body["error"]

            with gw_ben.new_cluster() as other:  # the same group: nothing left
                ben = stack.token("gwuben")
                status, body = gateway_request(stack, "POST", f"/clusters/{other.name}/scale", ben, {"count": 1})
                assert status == 409
                assert "group gwuml uses 2 of 2 Dask worker cores and each worker asks for 1" in body["error"]
                status, body = gateway_request(stack, "POST", f"/clusters/{other.name}/scale", ben, {"count": 0})
                assert status == 200  # within: allowed

            cluster.scale(1)
            wait_until(lambda: len(open_workers(stack, cluster.name)) == 1, timeout=90, what="a scale-down")
            name = cluster.name
        wait_until(lambda: open_workers(stack, name) == [], timeout=90, what="the cluster's workers closed")
    ended = [r for r in Ledger(stack.ledger_url).intervals() if r.cluster == name]
    assert len(ended) == 2
    assert sorted(r.end_reason for r in ended) in (["cluster-stopped", "scale-down"], ["scale-down", "scale-down"])
    assert all(r.end > r.start for r in ended)


def test_adaptive_scaling_stays_within_the_limit(stack: GatewayStack) -> None:
    def slow(x):
        import time

        time.sleep(0.5)
        return x

    with gateway_for(stack, "gwuann") as gw:
        with gw.new_cluster() as cluster:  # the profile allows 4 workers, the group's cores 2
            cluster.adapt(minimum=0, maximum=4)
            with cluster.get_client() as client:
                futures = client.map(slow, range(40))
                client.wait_for_workers(1, timeout=120)
                seen = set()
                while not all(f.done() for f in futures):
                    seen.add(len(client.scheduler_info()["workers"]))
                    time.sleep(0.2)
                assert sorted(client.gather(futures)) == list(range(40))
                assert max(seen) <= 2, seen
            assert len(open_workers(stack, cluster.name)) <= 2


def processes_of(uid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    pids.append(int(entry))
            except OSError:
                pass
    return pids


def test_a_gateway_crash_closes_its_workers_at_their_last_seen_time(stack: GatewayStack) -> None:
    import signal
    import subprocess

    gw = gateway_for(stack, "gwuann")
    cluster = gw.new_cluster(shutdown_on_close=False)
    cluster.scale(2)
    wait_until(lambda: len(open_workers(stack, cluster.name)) == 2, timeout=120, what="2 workers recorded")
    time.sleep(6)  # a heartbeat or two marks them seen
    seen = max(r.seen for r in open_workers(stack, cluster.name))
    stack.proc.kill()  # the gateway dies; its cluster's processes are orphaned
    stack.proc.wait()
    crashed_at = time.time()
    for pid in processes_of(USERS["gwuann"][0]):  # the test user's scheduler and workers, by pid
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    time.sleep(2)
    log = (stack.base / "gateway" / "gateway.log").open("ab")
    stack.proc = subprocess.Popen(stack.gateway.command, cwd=stack.gateway.workdir, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    wait_until(lambda: open_workers(stack, cluster.name) == [], timeout=60, what="recovery at start")
    wait_for_http(stack.gateway.health_url, timeout=60, ok_statuses=(200,))  # serving again, for what follows
    ended = [r for r in Ledger(stack.ledger_url).intervals() if r.cluster == cluster.name]
    assert len(ended) == 2 and {r.end_reason for r in ended} == {"recovered"}
    assert all(seen - 6 <= r.end <= crashed_at for r in ended), [(r.end, seen, crashed_at) for r in ended]
    cluster.close()  # the client side only (shutdown_on_close=False): the recovery stopped the cluster
    gw.close()


def test_users_cannot_write_dask_usage_through_the_hub(stack: GatewayStack) -> None:
    from tests.support.process import request_json

    token = stack.token("gwuann", scopes=["custom:qhub:plans:read!user=gwuann", "read:users:name!user=gwuann"])
    status, body = request_json("POST", f"{stack.hub.url}/hub/api/qhub/usage/dask/fake",
                                {"user": "gwuann", "profile": "Small Worker", "wanted": 99, "workers": ["w"]},
                                {"Authorization": f"token {token}"})
    assert status == 403 and "needs the scope custom:qhub:usage:write" in body["message"]
    assert open_workers(stack, "fake") == []


def test_when_the_hub_cannot_answer_scale_is_refused_saying_why(stack: GatewayStack) -> None:
    """Last in this file: it stops the hub. The gateway checks limits with the hub (through the
    hub: at each scale; writing the ledger: the user's plan, kept for 30 s)."""
    from qhub_hub.usage.gateway import PLAN_CACHE_SECONDS

    with gateway_for(stack, "gwuann") as gw:
        cluster = gw.new_cluster()
        try:
            cluster.scale(1)  # the hub answers: allowed (and the plan cached)
            stack.hub.stop()
            if stack.usage_mode == "gateway-writes":
                time.sleep(PLAN_CACHE_SECONDS + 1)  # until the gateway asks the hub for the plan again
            with pytest.raises(GatewayClusterError) as refused:
                cluster.scale(2)
            message = str(refused.value)
            assert message.startswith(f"Cannot check your limits now, so {cluster.name} is not scaled: "), message
            assert f"the hub at http://127.0.0.1:{stack.hub.hub_port}/hub/api cannot be reached" in message, message
        finally:
            cluster.shutdown()
