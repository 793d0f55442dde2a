"""A real dask-gateway-server (our embedded-mode config, QHubLocalBackend) authenticating through a
real JupyterHub, driven by real `dask_gateway` clients; schedulers and workers are real processes
of real Unix users (see conftest.py for the users and environments)."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import time
import urllib.request
import warnings

import pytest
from dask_gateway import Gateway, GatewayWarning
from dask_gateway.auth import JupyterHubAuth
from distributed.versions import VersionMismatchWarning

from qhub_hub.gateway.hub_service import kernel_environment
from tests.support.net import wait_until

from .harness import OLD_DASK, OLD_DASK_VERSION, GatewayStack, gateway_request

pytestmark = pytest.mark.usefixtures("require_root")


def gateway_for(stack: GatewayStack, user: str) -> Gateway:
    assert stack.gateway is not None
    return Gateway(address=stack.gateway.address, proxy_address=stack.gateway.proxy_address,
                   auth=JupyterHubAuth(api_token=stack.token(user)))


def status_of(stack: GatewayStack, token: str, name: str) -> str:
    status, body = gateway_request(stack, "GET", f"/clusters/{name}", token)
    assert status == 200, body
    return body["status"]


def test_cluster_runs_as_the_user_in_the_chosen_environment(stack: GatewayStack) -> None:
    def identity():
        import os
        import sys

        return os.getuid(), os.getgid(), tuple(sorted(os.getgroups())), sys.executable

    alice_python = str(stack.environments["gwalice/alice-env"] / "bin" / "python")
    with gateway_for(stack, "gwalice") as gw:
        with gw.new_cluster(profile="Small Worker", environment="gwalice/alice-env") as cluster:
            cluster.scale(2)
            with cluster.get_client() as client:
                client.wait_for_workers(2, timeout=120)
                import dask.bag as db

                total = db.from_sequence(range(100), npartitions=10).map(lambda x: x * x).sum()
                assert total.compute() == sum(x * x for x in range(100))
                on_workers = client.run(identity)
                assert len(on_workers) == 2
                assert set(on_workers.values()) == {(42001, 42000, (42010,), alice_python)}
                assert client.run_on_scheduler(identity) == (42001, 42000, (42010,), alice_python)
                workers = client.scheduler_info()["workers"].values()
                assert {(w["nthreads"], w["memory_limit"]) for w in workers} == {(1, 2**30)}


def worker_start_probe():
    """For `client.run`: a worker's ids, whether it was spawned (a fresh interpreter) and whether it
    serves Bokeh pages (its own ``/status``; Bokeh may be imported all the same, where a
    pre-imported starter forked the nanny). A local function, so cloudpickle sends it by value
    (workers cannot import tests); a coroutine, because it runs on the worker's own event loop,
    which serves that page."""
    async def worker_start(dask_worker):
        import os
        import sys

        from tornado.httpclient import AsyncHTTPClient, HTTPClientError

        # a forked worker is a copy of its nanny, which ran the `dask worker` command's module; a
        # spawned one is a new interpreter that imports only the worker (its command line and argv
        # do not tell: distributed retitles workers where setproctitle is installed, and spawn
        # copies the nanny's sys.argv)
        spawned = "distributed.cli.dask_worker" not in sys.modules
        try:
            await AsyncHTTPClient().fetch(f"http://127.0.0.1:{dask_worker.http_server.port}/status",
                                          request_timeout=30)
            dashboard = True
        except HTTPClientError as e:
            dashboard = e.code != 404
        return os.getuid(), os.getgid(), spawned, dashboard, os.getpid()

    return worker_start


def test_workers_are_copies_of_their_nanny_without_a_dashboard(stack: GatewayStack) -> None:
    """The cheaper worker start (README, "How fast a Dask cluster starts"): the nanny forks the
    worker (no second interpreter importing everything again) and the worker serves no Bokeh
    pages; the nanny still restarts workers."""
    with gateway_for(stack, "gwbob") as gw:
        with gw.new_cluster() as cluster:
            cluster.scale(2)
            with cluster.get_client() as client:
                client.wait_for_workers(2, timeout=120)
                before = client.run(worker_start_probe())
                assert {v[:4] for v in before.values()} == {(42002, 42000, False, False)}
                client.restart(timeout=120)  # needs the nannies: each forks a fresh worker
                client.wait_for_workers(2, timeout=120)
                after = client.run(worker_start_probe())
                assert {v[:4] for v in after.values()} == {(42002, 42000, False, False)}
                assert not {v[4] for v in before.values()} & {v[4] for v in after.values()}
                assert client.submit(lambda x: x + 1, 1).result() == 2


def test_a_cluster_may_choose_spawned_workers(stack: GatewayStack) -> None:
    spawn = {"DASK_DISTRIBUTED__WORKER__MULTIPROCESSING_METHOD": "spawn"}
    with gateway_for(stack, "gwbob") as gw:
        with gw.new_cluster(environment_variables=spawn) as cluster:
            cluster.scale(1)
            with cluster.get_client() as client:
                client.wait_for_workers(1, timeout=120)
                assert {v[:3] for v in client.run(worker_start_probe()).values()} == {(42002, 42000, True)}


def test_group_profile_and_group_environment(stack: GatewayStack) -> None:
    def identity():
        import os
        import sys

        return os.getuid(), sorted(os.getgroups()), sys.executable

    ml_python = str(stack.environments["gwml/ml-env"] / "bin" / "python")
    with gateway_for(stack, "gwcarol") as gw:
        with gw.new_cluster(profile="Large Worker", environment="ml-env") as cluster:
            cluster.scale(1)
            with cluster.get_client() as client:
                client.wait_for_workers(1, timeout=120)
                assert list(client.run(identity).values()) == [(42003, [42011], ml_python)]
                (worker,) = client.scheduler_info()["workers"].values()
                assert (worker["nthreads"], worker["memory_limit"]) == (2, 2 * 2**30)


def test_zero_argument_gateway_cluster_from_the_users_environment(stack: GatewayStack) -> None:
    """What a notebook does: `GatewayCluster()` with only the server's and the kernel's variables,
    run as the user by the environment's own Python."""
    assert stack.gateway is not None
    prefix = stack.environments["gwalice/alice-env"]
    script = textwrap.dedent("""
        import json, os, sys
        from dask_gateway import GatewayCluster
        with GatewayCluster() as cluster:
            cluster.scale(1)
            with cluster.get_client() as client:
                client.wait_for_workers(1, timeout=120)
                info = client.run(lambda: (os.getuid(), sys.executable))
                print(json.dumps({"workers": list(info.values()), "options": dict(cluster.options)
                                  if hasattr(cluster, "options") else None}))
    """)
    env = {
        "PATH": f"{prefix}/bin:/usr/bin:/bin",
        "HOME": str(stack.base / "home" / "gwalice"),
        "JUPYTERHUB_API_TOKEN": stack.token("gwalice"),
        **stack.gateway.user_server_environment(),  # what the spawner gives the server
        **kernel_environment(str(prefix)),  # what the environment's kernel spec adds
    }

    def as_alice() -> None:
        os.setgroups([42010])
        os.setgid(42000)
        os.setuid(42001)

    done = subprocess.run([str(prefix / "bin" / "python"), "-c", script], env=env, preexec_fn=as_alice,
                          capture_output=True, text=True, timeout=180, cwd="/")
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["workers"] == [[42001, str(prefix / "bin" / "python")]]


@pytest.mark.parametrize(("options", "message"), [
    ({"profile": "Large Worker"},
     "'gwbob' may not use the worker profile 'Large Worker'. Choose one of: Small Worker."),
    ({"environment": "gwalice/alice-env"},
     "'gwbob' may not run Dask workers in the environment 'gwalice/alice-env', or it is not built. "
     "Choose one of: global/dask"),
    ({"environment": "global/nodask"},
     "The environment global/nodask cannot run Dask workers: it lacks dask, distributed, dask-gateway"),
    ({"environment_variables": {"PATH": "/tmp"}}, "PATH is set by the platform"),
    ({"max_workers": 3}, "max_workers must be <= 2"),
    ({"worker_cores": 64}, "Unknown fields ['worker_cores']"),
])
def test_disallowed_requests_are_refused_with_422(stack: GatewayStack, options: dict, message: str) -> None:
    token = stack.token("gwbob")
    status, body = gateway_request(stack, "POST", "/clusters/", token, {"cluster_options": options})
    assert status == 422
    assert message in body["error"]
    status, clusters = gateway_request(stack, "GET", "/clusters/", token)
    assert (status, clusters) == (200, {})  # nothing was started
    with gateway_for(stack, "gwbob") as gw, pytest.raises(ValueError, match="may not|lacks|platform|<=|Unknown"):
        gw.submit(**options)


def test_the_form_depends_on_the_user(stack: GatewayStack) -> None:
    def form(user: str) -> dict:
        status, body = gateway_request(stack, "GET", "/options", stack.token(user))
        assert status == 200
        return {f["field"]: f for f in body["cluster_options"]}

    carol, bob = form("gwcarol"), form("gwbob")
    assert carol["profile"]["spec"]["options"] == ["Small Worker", "Large Worker"]
    assert bob["profile"]["spec"]["options"] == ["Small Worker"]
    olddask = ", global/olddask" if OLD_DASK.is_dir() else ""
    # conda-store environments first, then the server's own (the embedded default, `server`)
    assert carol["environment"]["label"].endswith(f"Yours: gwml/ml-env, global/dask{olddask}, server")
    assert "gwml/ml-env" not in bob["environment"]["label"]


def test_other_users_cannot_see_scale_stop_or_read_the_credentials_of_a_cluster(stack: GatewayStack) -> None:
    alice, bob = stack.token("gwalice"), stack.token("gwbob")
    status, body = gateway_request(stack, "POST", "/clusters/", alice, {"cluster_options": {}})
    assert status == 201
    name = body["name"]
    try:
        wait_until(lambda: status_of(stack, alice, name) == "RUNNING", 60, "alice's cluster to run")
        status, mine = gateway_request(stack, "GET", f"/clusters/{name}", alice)
        assert status == 200 and mine["tls_key"].startswith("-----BEGIN")

        status, body = gateway_request(stack, "GET", f"/clusters/{name}", bob)
        assert status == 403 and "tls_key" not in body and "tls_cert" not in body
        assert gateway_request(stack, "POST", f"/clusters/{name}/scale", bob, {"count": 5})[0] == 403
        assert gateway_request(stack, "POST", f"/clusters/{name}/adapt", bob, {"maximum": 5})[0] == 403
        assert gateway_request(stack, "DELETE", f"/clusters/{name}", bob)[0] == 403
        assert gateway_request(stack, "GET", "/clusters/", bob) == (200, {})
        assert gateway_request(stack, "GET", "/clusters/no-such-cluster", bob)[0] == 404
        with gateway_for(stack, "gwbob") as gw, pytest.raises(Exception, match="403"):
            gw.connect(name)
        assert status_of(stack, alice, name) == "RUNNING"  # untouched
    finally:
        assert gateway_request(stack, "DELETE", f"/clusters/{name}", alice)[0] == 204


def test_idle_cluster_is_shut_down(stack: GatewayStack) -> None:
    carol = stack.token("gwcarol")
    names = {}
    for idle in (5, 60):
        status, body = gateway_request(stack, "POST", "/clusters/", carol,
                                       {"cluster_options": {"idle_timeout": idle}})
        assert status == 201, body
        names[idle] = body["name"]
    try:
        wait_until(lambda: status_of(stack, carol, names[5]) == "STOPPED", 90,
                   "the cluster with a 5 s idle timeout to be shut down")
        assert status_of(stack, carol, names[60]) == "RUNNING"  # its own timeout has not passed
        assert f"Cluster {names[5]}" in stack.gateway_log() or "idle" in stack.gateway_log().lower()
    finally:
        for name in names.values():
            gateway_request(stack, "DELETE", f"/clusters/{name}", carol)


def test_adaptive_scaling_stays_within_the_profile(stack: GatewayStack) -> None:
    def slow(x):
        import time

        time.sleep(0.5)
        return x

    with gateway_for(stack, "gwbob") as gw:
        with gw.new_cluster() as cluster:  # Small Worker: at most 2 workers
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                cluster.adapt(minimum=0, maximum=10)
            assert any(issubclass(w.category, GatewayWarning) and "limit of 2 workers" in str(w.message)
                       for w in caught), [str(w.message) for w in caught]
            with cluster.get_client() as client:
                futures = client.map(slow, range(40))
                client.wait_for_workers(1, timeout=120)  # adaptive scaling started workers
                seen = set()
                while not all(f.done() for f in futures):
                    seen.add(len(client.scheduler_info()["workers"]))
                    time.sleep(0.2)
                assert sorted(client.gather(futures)) == list(range(40))
                assert max(seen) <= 2, seen


def test_cluster_limit_per_user(stack: GatewayStack) -> None:
    carol = stack.token("gwcarol")  # max_clusters_per_user: 2
    names = []
    try:
        for _ in range(2):
            status, body = gateway_request(stack, "POST", "/clusters/", carol, {"cluster_options": {}})
            assert status == 201, body
            names.append(body["name"])
        status, body = gateway_request(stack, "POST", "/clusters/", carol, {"cluster_options": {}})
        assert status == 422
        assert "'gwcarol' already has 2 Dask cluster(s) running" in body["error"]
        assert "Stop one" in body["error"]
        gateway_request(stack, "DELETE", f"/clusters/{names.pop()}", carol)
        status, body = gateway_request(stack, "POST", "/clusters/", carol, {"cluster_options": {}})
        assert status == 201, body
        names.append(body["name"])
    finally:
        for name in names:
            gateway_request(stack, "DELETE", f"/clusters/{name}", carol)


def test_token_without_the_gateway_scope_is_refused(stack: GatewayStack) -> None:
    token = stack.token("gwalice", scopes=["read:users:name!user=gwalice"])
    status, _ = gateway_request(stack, "GET", "/clusters/", token)
    assert status == 401
    status, body = gateway_request(stack, "GET", "/clusters/", "not-a-token")
    assert status == 401
    assert "did not accept this JupyterHub API token" in body["error"]


def test_the_hub_routes_to_the_gateway(stack: GatewayStack) -> None:
    assert stack.hub is not None
    with urllib.request.urlopen(f"{stack.hub.url}/services/dask-gateway/api/health", timeout=30) as r:
        assert (r.status, json.loads(r.read())) == (200, {"status": "pass"})


@pytest.mark.skipif(not OLD_DASK.is_dir(), reason=f"dask {OLD_DASK_VERSION} not unpacked: run "
                    "`bash scripts/setup.sh --test` (scripts/setup.d/gateway.sh)")
def test_version_mismatch_is_reported_naming_both_versions(stack: GatewayStack) -> None:
    import distributed

    with gateway_for(stack, "gwalice") as gw:
        with gw.new_cluster(environment="global/olddask") as cluster:
            with pytest.warns(VersionMismatchWarning) as caught:
                client = cluster.get_client()
            try:
                message = "\n".join(str(w.message) for w in caught)
                assert "Mismatched versions found" in message
                row = next(line for line in message.splitlines() if "| distributed" in line)
                assert distributed.__version__ in row and OLD_DASK_VERSION in row
            finally:
                client.close()
