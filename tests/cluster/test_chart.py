"""helm/qhub on a real Kubernetes: `helm install --wait` with the real sub-charts, then a team's day
through the public proxy Service, as the people of examples/qhub-config.yaml meet it.

release.py says what this machine lacks (1.20, registries, DNS) and how the harness makes it up;
the chart is installed as rendered for real clusters. The team's config is the example's, with CPU
requests cut to fit 2 cores and SSH off (its images are on quay.io only). Tests run in file order
on one release: install, the five first-install failures, spawns, Dask, conda-store, upgrade, a
second release beside it, uninstall.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import time

import pytest
import requests

from qhub_hub.devcluster.paths import STATE

from . import release as releaselib
from .conftest import Cluster
from .team import ENVIRONMENTS_CLAIM, IDS, STORAGE_CLAIM, Team, describe, team_config, team_values, xsrf_of

pytestmark = pytest.mark.cluster

NAMESPACE, RELEASE = "team", "qhub"
SHARED: dict[str, str] = {}  # what one test leaves for the next (tests run in file order)


@pytest.fixture(scope="module")
def team(dev_cluster: Cluster, tmp_path_factory) -> Team:
    """The release, installed afresh and uninstalled at the end. While working on these tests,
    QHUB_CHART_REUSE=1 (with QHUB_CLUSTER_REUSE=1) keeps it, and uses one left by an earlier run."""
    reuse = os.environ.get("QHUB_CHART_REUSE") == "1"
    work = tmp_path_factory.mktemp("chart")
    chart = releaselib.scratch_chart(work)
    if chart is None:
        pytest.skip("no sub-charts: no chart repository answers and ../shared/upstream-charts is missing")
    release = releaselib.Release(RELEASE, NAMESPACE, chart, work)
    team = Team(dev_cluster, release, 0.0, "")
    if reuse and release.helm("status", RELEASE, check=False).returncode == 0:
        team.notes = "NOTES: (reused release) qhub"
    else:
        releaselib.make_storage(dev_cluster.kubectl, NAMESPACE, storage_claim=STORAGE_CLAIM,
                                environments_claim=ENVIRONMENTS_CLAIM)
        try:
            seconds, result = release.install(team_values(), timeout="6m")
        except (AssertionError, subprocess.TimeoutExpired) as e:
            details = describe(team)
            if not reuse:
                release.uninstall()
                releaselib.remove_storage(dev_cluster.kubectl, NAMESPACE)
            pytest.fail(f"helm install failed: {e}\n{details}", pytrace=False)
        team.install_seconds, team.notes = seconds, result.stdout
        team.figures["install_to_all_ready_s"] = round(seconds, 1)
    ip = team.kubectl("get", "service", "proxy-public", "-o", "jsonpath={.spec.clusterIP}").stdout.strip()
    team.proxy = f"http://{ip}"
    try:
        yield team
    finally:
        print(f"\nchart figures: {json.dumps(team.figures)}")
        if not reuse:
            if not team.uninstalled:
                release.uninstall()
            releaselib.remove_storage(dev_cluster.kubectl, NAMESPACE)


# --- 1. install ---------------------------------------------------------------------------------


def test_install_waits_until_every_pod_is_ready_and_prints_the_notes(team):
    pods = team.pods()
    components = sorted(p["metadata"]["labels"].get("app.kubernetes.io/component", "?") for p in pods)
    assert components == ["conda-store", "controller", "gateway", "hub", "proxy", "traefik"], components
    for pod in pods:
        ready = {c["type"]: c["status"] for c in pod["status"]["conditions"]}.get("Ready")
        assert ready == "True", f"{pod['metadata']['name']} is not Ready\n{describe(team)}"
    assert "NOTES:" in team.notes and "qhub" in team.notes.split("NOTES:", 1)[1]


def test_conda_store_takes_its_settings_not_the_service_link_variables(team):
    # failure 1: CONDA_STORE_PORT=tcp://... from the Service made conda-store fall back to defaults
    # (no URL prefix, no hub login): it must answer behind the hub, at its prefix
    response = requests.get(f"{team.proxy}/services/conda-store/api/v1/", timeout=60)
    assert response.status_code == 200 and response.json()["status"] == "ok", response.text[:500]
    env = team.sh("deploy/conda-store", "env", container="server").stdout
    assert "CONDA_STORE_PORT=" not in env  # enableServiceLinks: false


def test_conda_store_database_is_whole_and_survives_a_restart(team):
    # failure 3: server and worker raced on an empty SQLite file and broke it for good
    query = ("python -c \"import sqlite3; db = sqlite3.connect('/var/lib/conda-store/conda-store.sqlite'); "
             "print(sorted(r[0] for r in db.execute(\\\"select name from sqlite_master where type='table'\\\")))\"")
    tables = team.sh("deploy/conda-store", query, container="server").stdout
    assert "'environment'" in tables and "'alembic_version'" in tables, tables
    [old] = team.pods("app.kubernetes.io/component=conda-store")
    team.kubectl("delete", "pod", old["metadata"]["name"], "--wait=true", timeout=180)
    team.kubectl("rollout", "status", "deploy/conda-store", "--timeout=180s", timeout=200)
    [new] = team.pods("app.kubernetes.io/component=conda-store")
    server = next(s for s in new["status"]["containerStatuses"] if s["name"] == "server")
    assert server["ready"] and server["restartCount"] == 0, describe(team)


# --- 2. logins, profiles, folders -----------------------------------------------------------------


def test_the_spawn_form_offers_exactly_each_users_profiles(team):
    assert team.offered_profiles("carol") == ["small", "medium", "highmem", "gpu"]
    assert team.offered_profiles("bob") == ["small", "medium", "highmem"]


def test_bob_is_refused_the_gpu_profile_by_form_and_by_rest(team):
    session = team.login("bob")
    page = session.get(f"{team.proxy}/hub/spawn", timeout=60)
    form = session.post(f"{team.proxy}/hub/spawn", data={"profile": "gpu", "_xsrf": xsrf_of(session, page.text)},
                        allow_redirects=False, timeout=60)
    # z2jh answers every spawn POST at once (slow_spawn_timeout 0): the refusal is on the pending page
    assert form.status_code == 302 and form.headers["Location"].endswith("/hub/spawn-pending/bob")
    deadline = time.monotonic() + 60
    while (pending := session.get(f"{team.proxy}/hub/spawn-pending/bob", timeout=60)).status_code == 200:
        assert time.monotonic() < deadline, "the refused spawn never ended"
        time.sleep(1)
    assert pending.status_code == 403, pending.text[-1000:]
    assert "may not use the profile &#39;gpu&#39;. Profiles you may use: small, medium, highmem." in pending.text
    rest = team.api("POST", "/users/bob/server", "bob", {"profile": "gpu"})
    if rest.status_code == 202:  # accepted at once, as the form is: the refusal ends the progress stream
        assert "'bob' may not use the profile 'gpu'" in spawn_failure(team, "bob")
    else:
        assert rest.status_code == 403 and "'bob' may not use the profile 'gpu'" in rest.json()["message"]
    assert team.pods("hub.jupyter.org/username=bob") == []


def test_refused_spawns_never_take_the_hub_down(team):
    # attacker's seat: JupyterHub 5.5 counts refusals as spawn failures, and z2jh stopped the hub
    # after 5 in a row (consecutiveFailureLimit): bob asking for gpu six times restarted it for all
    [hub] = team.pods("component=hub")
    for _ in range(6):
        assert team.api("POST", "/users/bob/server", "bob", {"profile": "gpu"}).status_code in (202, 403)
        spawn_failure(team, "bob")
    time.sleep(3)  # the hub stopped 2 s after the fifth
    [after] = team.pods("component=hub")
    assert after["metadata"]["uid"] == hub["metadata"]["uid"]
    restarts = [p["status"]["containerStatuses"][0]["restartCount"] for p in (hub, after)]
    assert restarts[0] == restarts[1]
    assert requests.get(f"{team.proxy}/hub/api", timeout=30).status_code == 200


def spawn_failure(team: Team, user: str) -> str:
    """The message that ends a failed spawn's progress stream (GET .../server/progress)."""
    with requests.get(f"{team.proxy}/hub/api/users/{user}/server/progress", stream=True, timeout=120,
                      headers={"Authorization": f"token {team.token(user)}"}) as stream:
        for line in stream.iter_lines(decode_unicode=True):
            if line.startswith("data:"):
                event = json.loads(line[5:])
                if event.get("failed"):
                    return event.get("message", "")
    return ""


def test_a_squatted_group_folder_is_set_aside_before_its_members_start(team):
    # failure 5: alice (not in ml) makes /shared/ml before any ml member has started
    team.spawn("alice")
    team.sh("jupyter-alice", "mkdir -p /shared/ml && echo mine > /shared/ml/planted")
    seconds = team.spawn("carol")
    if seconds:
        team.figures["login_to_jupyterlab_s"] = round(seconds, 1)
    listing = team.sh("jupyter-carol", "stat -c '%n %u %g %a' /shared/ml /shared/ml.squatted-by-3001").stdout
    assert listing.split("\n")[:2] == ["/shared/ml 0 2003 2770", "/shared/ml.squatted-by-3001 3001 2005 755"]
    assert team.sh("jupyter-carol", "ls -A /shared/ml").stdout == ""  # nothing of alice's handed over


def test_carols_server_runs_as_her_with_the_plans_folders(team):
    # failure 2: every spawn timed out (the pod's runAsNonRoot refused z2jh's root init container)
    out = team.sh("jupyter-carol", "id; whoami").stdout.splitlines()
    assert out == ["uid=3003(carol) gid=2005(users) groups=2005(users),2002(data-eng),2003(ml)", "carol"]
    modes = team.sh("jupyter-carol", "stat -c '%n %u %g %a' /home/carol /shared /shared/data-eng").stdout
    assert modes.splitlines() == ["/home/carol 3003 2005 700", "/shared 0 0 1777", "/shared/data-eng 0 2002 2770"]
    team.sh("jupyter-carol", "cd /shared/ml && echo model > weights.txt && mkdir -p runs")
    made = team.sh("jupyter-carol", "stat -c '%n %U %G %A' /shared/ml/weights.txt /shared/ml/runs").stdout
    # group-writable whatever her umask (022 here): the folder's default ACL
    assert made.splitlines() == ["/shared/ml/weights.txt carol ml -rw-rw----",
                                 "/shared/ml/runs carol ml drwxrws---"], made


def test_erin_reads_but_cannot_write_the_analysts_folder(team):
    team.spawn("erin")
    team.sh("jupyter-alice", "echo q3 > /shared/analysts/report.txt")
    assert team.sh("jupyter-erin", "cat /shared/analysts/report.txt").stdout == "q3\n"
    refused = team.sh("jupyter-erin", "touch /shared/analysts/erin-was-here", check=False)
    assert refused.returncode != 0 and "Read-only file system" in refused.stderr


# --- 3. Dask Gateway from a user's pod -------------------------------------------------------------


def run_python(team: Team, pod: str, code: str, timeout: float = 300) -> str:
    result = team.kubectl("exec", pod, "--", "python", "-c", textwrap.dedent(code), check=False,
                          timeout=timeout)
    assert result.returncode == 0, f"{pod}: {result.stderr[-3000:]}\n{describe(team)}"
    return result.stdout


def test_gateway_cluster_with_no_arguments_runs_workers_as_carol(team):
    out = run_python(team, "jupyter-carol", """
        import json, os, time
        from dask_gateway import GatewayCluster
        started = time.monotonic()
        cluster = GatewayCluster()
        cluster.scale(2)
        client = cluster.get_client()
        client.wait_for_workers(2, timeout=240)
        ready = time.monotonic() - started
        ids = client.run(lambda: (os.getuid(), os.getgid(), sorted(os.getgroups()),
                                  os.access("/shared/ml", os.W_OK), os.path.isdir("/home/carol")))
        print(json.dumps({"name": cluster.name, "ready": ready, "uid": client.submit(os.getuid).result(),
                          "workers": list(ids.values())}))
        cluster.shutdown_on_close = False  # kept for the next test (bob's attempts)
    """)
    result = json.loads(out.strip().splitlines()[-1])
    team.figures["gateway_cluster_2_workers_ready_s"] = round(result["ready"], 1)
    assert result["uid"] == IDS["carol"]
    assert result["workers"] == [[3003, 2005, [2002, 2003, 2005], True, True]] * 2, result
    cluster_id = result["name"].rsplit(".", 1)[-1]  # names are <namespace>.<id>; labels carry the id
    workers = team.pods(f"gateway.dask.org/cluster={cluster_id},app.kubernetes.io/component=dask-worker")
    assert len(workers) == 2
    for pod in workers:
        assert pod["spec"]["securityContext"]["runAsUser"] == IDS["carol"]
    SHARED["carols_cluster"] = result["name"]


def test_bob_may_not_use_large_workers_nor_touch_carols_cluster(team):
    team.spawn("bob")
    name = SHARED.get("carols_cluster")
    assert name, "needs the cluster of the test before"
    out = run_python(team, "jupyter-bob", f"""
        import json
        from dask_gateway import Gateway
        gateway = Gateway()
        seen = {{}}
        try:
            gateway.new_cluster(profile="Large Worker")
            seen["large"] = "started"
        except Exception as e:
            seen["large"] = str(e)
        seen["listed"] = [c.name for c in gateway.list_clusters()]
        for what, call in (("connect", lambda: gateway.connect({name!r})),
                           ("scale", lambda: gateway.scale_cluster({name!r}, 5)),
                           ("stop", lambda: gateway.stop_cluster({name!r}))):
            try:
                call()
                seen[what] = "done"
            except Exception as e:
                seen[what] = type(e).__name__ + ": " + str(e)
        print(json.dumps(seen))
    """)
    seen = json.loads(out.strip().splitlines()[-1])
    assert "'bob' may not use the worker profile 'Large Worker'" in seen["large"], seen
    assert seen["listed"] == []
    for what in ("connect", "scale", "stop"):
        assert seen[what] != "done" and ("404" in seen[what] or "403" in seen[what] or "not found" in
                                         seen[what].lower()), seen
    still = team.pods(f"gateway.dask.org/cluster={name.rsplit('.', 1)[-1]},app.kubernetes.io/component=dask-worker")
    assert len(still) == 2  # carol's cluster untouched


# --- 4. conda-store's environments as kernels ------------------------------------------------------


def test_carols_kernels_are_exactly_her_namespaces_environments(team):
    # built environments made on disk where conda-store builds them (no conda channel reaches here),
    # as in tests/condastore; conda-store itself is up behind the hub (test above)
    root = STATE / "volumes" / NAMESPACE / "environments"
    # failure 4: carol's namespace folder was made by the init container, owned by conda-store,
    # so conda-store can build there (a folder the kubelet made for the subPath was root's)
    assert (root / "carol").stat().st_uid == 1000
    team.sh("deploy/conda-store", "mkdir -p /home/conda/carol/envs/built-by-conda-store && "
            "rmdir /home/conda/carol/envs/built-by-conda-store", container="server")
    made = {"global": "dask", "ml": "torch", "carol": "scratch", "analysts": "reports", "bob": "bobs"}
    for namespace, env in made.items():
        spec = root / namespace / "envs" / env / "share" / "jupyter" / "kernels" / "python3"
        spec.mkdir(parents=True, exist_ok=True)
        (spec / "kernel.json").write_text(json.dumps({
            "argv": ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3", "language": "python"}))
        python = root / namespace / "envs" / env / "bin" / "python"  # what marks an environment built
        python.parent.mkdir(exist_ok=True)
        python.write_text("")
        python.chmod(0o755)
        for path in [root / namespace, *(root / namespace).rglob("*")]:
            os.chown(path, 1000, 1000)  # as conda-store leaves what it builds
    response = requests.get(f"{team.proxy}/user/carol/api/kernelspecs", timeout=60,
                            headers={"Authorization": f"token {team.token('carol')}"})
    assert response.status_code == 200, response.text[:500]
    conda = sorted(k for k in response.json()["kernelspecs"] if k.startswith("conda-"))
    assert conda == ["conda-carol.scratch", "conda-global.dask", "conda-ml.torch"]
    # her server sees them read-only (only the init container writes there, to make the folders)
    refused = team.sh("jupyter-carol", "touch /home/conda/carol/envs/mine", check=False)
    assert refused.returncode != 0 and "Read-only file system" in refused.stderr


# --- 5. helm upgrade ---------------------------------------------------------------------------------


def secret_data(team: Team, name: str) -> dict:
    return json.loads(team.kubectl("get", "secret", name, "-o", "json").stdout)["data"]


def test_upgrade_applies_a_changed_config_without_restarting_user_pods(team):
    before = {p["metadata"]["name"]: p["metadata"]["uid"] for p in team.pods("component=singleuser-server")}
    secrets = {name: secret_data(team, name) for name in ("hub", "qhub-secrets")}
    config = team_config()
    config["profiles"]["jupyterlab"].append({
        "display_name": "Reporting", "slug": "reporting", "description": "for the analysts",
        "groups": ["analysts"], "kubespawner_override": {"cpu_guarantee": 0.05, "mem_guarantee": "128M"}})
    config["security"]["users"]["dave"]["secondary_groups"] = []  # dave leaves ml
    seconds, _ = team.release.upgrade(team_values(config), timeout="6m")
    team.figures["upgrade_s"] = round(seconds, 1)
    team.figures["hub_back_after_upgrade_s"] = round(team.wait_for_hub(), 1)
    after = {p["metadata"]["name"]: p["metadata"]["uid"] for p in team.pods("component=singleuser-server")}
    assert after == before  # running servers keep running: the same pods
    assert {name: secret_data(team, name) for name in secrets} == secrets
    # the next spawn follows the new config: bob stops his server and gets the analysts' new profile
    stopped = team.api("DELETE", "/users/bob/server", "bob")
    assert stopped.status_code in (202, 204), stopped.text
    deadline = time.monotonic() + 150
    while (offered := team.offered_profiles("bob")) != ["small", "medium", "highmem", "reporting"]:
        assert time.monotonic() < deadline, offered
        time.sleep(5)
    team.spawn("bob", "reporting")
    team.spawn("dave")
    assert team.sh("jupyter-dave", "id").stdout.strip() == "uid=3004(dave) gid=2005(users) groups=2005(users)"
    plan = team.api("GET", "/qhub/plans/dave", "dave").json()["plan"]
    assert [m["name"] for m in plan["memberships"]] == ["users"]
    assert "gpu" not in [p["slug"] for p in plan["jupyterlab_profiles"]]


# --- 7. a second release beside the first ------------------------------------------------------------


def test_a_second_release_in_another_namespace_installs_beside_the_first(team, dev_cluster, tmp_path_factory):
    namespace = "lab2"
    chart = team.release.chart
    releaselib.make_storage(dev_cluster.kubectl, namespace, storage_claim=STORAGE_CLAIM,
                            environments_claim=ENVIRONMENTS_CLAIM, release="qhub2")
    second = releaselib.Release("qhub2", namespace, chart, tmp_path_factory.mktemp("chart2"))
    config = team_config()
    config["security"]["users"] = {"alice": config["security"]["users"]["alice"]}
    config["environments"] = {}
    config["dask_gateway"]["worker_environments"] = []
    try:
        second.install(team_values(config), timeout="6m")
        pods = json.loads(dev_cluster.kubectl("-n", namespace, "get", "pods", "-o", "json").stdout)["items"]
        assert pods and all(c["ready"] for p in pods for c in p["status"]["containerStatuses"])
        roles = dev_cluster.kubectl("get", "clusterroles", "-o", "name").stdout.split()
        assert "clusterrole.rbac.authorization.k8s.io/controller-qhub-dask-gateway" in roles
        assert "clusterrole.rbac.authorization.k8s.io/controller-qhub2-dask-gateway" in roles
        # the first release still answers
        assert requests.get(f"{team.proxy}/hub/api", timeout=30).status_code == 200
    finally:
        second.uninstall()
        releaselib.remove_storage(dev_cluster.kubectl, namespace)


# --- 6. helm uninstall -------------------------------------------------------------------------------


def left_in(team: Team) -> list[str]:
    """What of the release is still in its namespace (the namespace's own defaults aside)."""
    kinds = ("pods,deployments,statefulsets,daemonsets,services,configmaps,secrets,serviceaccounts,"
             "roles,rolebindings,jobs")
    left = team.kubectl("get", kinds, "-o", "name").stdout.split()
    return [n for n in left if not n.startswith(("serviceaccount/default", "secret/default-token-",
                                                 "configmap/kube-root-ca.crt"))]


def test_uninstall_leaves_only_the_claims_that_hold_user_data(team):
    uninstalled = team.release.uninstall()
    team.uninstalled = True
    assert uninstalled.returncode == 0, uninstalled.stderr
    # what Dask clusters own (their Services and Secrets) is removed by the garbage collector a
    # moment after the clusters themselves: wait for it, as an admin would, then nothing is left
    deadline = time.monotonic() + 180
    while (left := left_in(team)) and time.monotonic() < deadline:
        time.sleep(3)
    assert left == [], f"the release left {left}"
    claims = sorted(team.kubectl("get", "pvc", "-o", "name").stdout.split())
    # the admin's two claims (homes, environments), and conda-store's state (helm.sh/resource-policy: keep)
    assert claims == ["persistentvolumeclaim/conda-store-state", f"persistentvolumeclaim/{ENVIRONMENTS_CLAIM}",
                      f"persistentvolumeclaim/{STORAGE_CLAIM}"]
    daskclusters = team.kubectl("get", "daskclusters.gateway.dask.org", "-o", "name", check=False).stdout.split()
    assert daskclusters == []
    cluster_wide = team.cluster.kubectl("get", "clusterroles,clusterrolebindings", "-o", "name").stdout
    assert "qhub-dask-gateway" not in cluster_wide
