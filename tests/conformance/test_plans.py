"""One table of who gets what, and every component that acts on a user checked against it.

A real JupyterHub (the qhub GitHub authenticator, a fake GitHub on loopback) is the one authority:
people log in through it for real, and then each consumer gets the plan the way it does in
production and must agree with the row:

- the hub's plan endpoint (``GET /hub/api/qhub/plans/<name>``, with a service token);
- the hub's spawners: the Kubernetes pod manifest (`QHubKubeSpawner`, from the auth_state the hub
  keeps) and the local process's account (`local.accounts.account_spec`);
- the Dask Gateway options, local and Kubernetes renderings (`QHubClusterOptions` asking the hub);
- the SSH/SFTP account check (`local.ssh_check.check_account`, asking the hub, on a real account);
- conda-store's role bindings and the video-chat group rooms.

Ids: users cf* and 44001-44999 (Unix accounts made here are removed at the end).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from dask_gateway_server.models import User as GatewayUser

from qhub_hub.conda_store.roles import user_role_bindings
from qhub_hub.config import load_config
from qhub_hub.gateway.environments import WorkerEnvironment
from qhub_hub.gateway_options import KubernetesSettings, OptionRefused, QHubClusterOptions
from qhub_hub.hub_plans import HubPlanSource, PlanUnavailable
from qhub_hub.local import accounts
from qhub_hub.local.conda_store import SHIM
from qhub_hub.local.ssh_check import check_account
from qhub_hub.plan_api import PLAN_SCOPE
from qhub_hub.server_env import group_video_rooms
from tests.hub.conftest import hub_env, oauth_login, write_config
from tests.hub.fake_providers import FakeGitHub
from tests.hub.test_kube_manifest import make_spawner, manifest
from tests.support.fake_hub import FakeHubUser
from tests.support.hub import HubProcess

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

READER = "conformance-reader"  # a service holding the plan scope, as the gateway, SSH and conda-store do
GROUPS = {"cfusers": 44100, "cfanalysts": 44101, "cfml": 44102, "cfadmin": 44103}


def config_data(github: FakeGitHub, hub_url: str, *, without: tuple[str, ...] = ()) -> dict[str, Any]:
    users = {
        "cfcarol": {"uid": 44001, "primary_group": "cfusers", "secondary_groups": ["cfml", "cfadmin"]},
        "cfbob": {"uid": 44002, "primary_group": "cfusers", "secondary_groups": ["cfanalysts"]},
    }
    return {
        "security": {
            "authentication": {"type": "GitHub", "config": {
                "client_id": github.client_id, "client_secret": github.client_secret,
                "oauth_callback_url": f"{hub_url}/hub/oauth_callback", "github_url": github.url,
                "allowed_organizations": ["cf-guests"]}},
            "groups": {name: {"gid": gid} for name, gid in GROUPS.items()},
            "users": {name: u for name, u in users.items() if name not in without},
            "admin_groups": ["cfadmin"],
            "identity_provider_groups": {"acme:ml-team": "cfml",
                                         "acme:readers": {"group": "cfanalysts", "readonly": True}},
            "dynamic_ids": {"uid_start": 44500, "uid_count": 50},
        },
        "profiles": {
            "jupyterlab": [
                {"display_name": "Small", "slug": "small", "default": True},
                {"display_name": "ML", "slug": "ml", "groups": ["cfml"]},
                {"display_name": "Reports", "slug": "reports", "groups": ["cfanalysts"]},
            ],
            "dask_worker": {
                "Small Worker": {"worker_cores": 1, "worker_cores_limit": 1, "worker_memory": "1G",
                                 "worker_memory_limit": "1G", "max_workers": 4},
                "ML Worker": {"worker_cores": 2, "worker_cores_limit": 2, "worker_memory": "2G",
                              "worker_memory_limit": "2G", "max_workers": 8, "groups": ["cfml"]},
            },
        },
    }


@dataclass(frozen=True)
class Row:
    user: str
    teams: tuple[str, ...] = ()
    orgs: tuple[str, ...] = ()
    may_log_in: bool = True
    uid: int = 0
    gid: int = 0
    supplemental: tuple[int, ...] = ()
    readonly: tuple[int, ...] = ()
    profiles: tuple[str, ...] = ()
    workers: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    admin: bool = False


# Logged in in this order (dynamic uids depend on who came first). Dynamic users: uid from
# 44500 + sha256(name) mod 50, the next free one after a collision; their group is private (gid = uid).
TABLE = [
    Row("cfcarol", uid=44001, gid=44100, supplemental=(44102, 44103), profiles=("small", "ml"),
        workers=("Small Worker", "ML Worker"), namespaces=("cfcarol", "cfadmin", "cfml", "cfusers", "global"),
        groups=("cfadmin", "cfml", "cfusers"), admin=True),
    Row("cfbob", uid=44002, gid=44100, supplemental=(44101,), profiles=("small", "reports"),
        workers=("Small Worker",), namespaces=("cfbob", "cfanalysts", "cfusers", "global"),
        groups=("cfanalysts", "cfusers")),
    Row("gina", teams=("acme:ml-team",), uid=44534, gid=44534, supplemental=(44102,), profiles=("small", "ml"),
        workers=("Small Worker", "ML Worker"), namespaces=("gina", "cfml", "global"), groups=("cfml",)),
    # the same hash slot as gina: the hub's registry hands out the next free uid
    Row("huaw", teams=("acme:ml-team",), uid=44535, gid=44535, supplemental=(44102,), profiles=("small", "ml"),
        workers=("Small Worker", "ML Worker"), namespaces=("huaw", "cfml", "global"), groups=("cfml",)),
    # a read-only identity-provider mapping: the group's folder and profiles, never its writes
    Row("rita", teams=("acme:readers",), uid=44516, gid=44516, readonly=(44101,), profiles=("small", "reports"),
        workers=("Small Worker",), namespaces=("rita", "cfanalysts", "global"), groups=("cfanalysts",)),
    # admitted by GitHub allowed_organizations alone: open profiles only
    Row("guest", orgs=("cf-guests",), uid=44521, gid=44521, profiles=("small",), workers=("Small Worker",),
        namespaces=("guest", "global")),
    Row("mallory", orgs=("elsewhere",), may_log_in=False),
]


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, require_root_module):
    workdir = tmp_path_factory.mktemp("conformance")
    github = FakeGitHub().start()
    for row in TABLE:
        github.add_user(row.user, teams=list(row.teams), orgs=list(row.orgs))
    config_path = workdir / "qhub-config.yaml"
    token = secrets.token_hex(16)
    hub = HubProcess(workdir, env=hub_env(config_path), extra_config=f"""
        from qhub_hub import hub_settings
        c.JupyterHub.authenticator_class = "qhub-github"
        hub_settings.configure_plan_scope(c)
        c.JupyterHub.services.append({{"name": {READER!r}, "api_token": {token!r}}})
        c.JupyterHub.load_roles += [
            hub_settings.plan_readers_role([{READER!r}]),
            {{"name": "auth-state-reader", "services": [{READER!r}],
              "scopes": ["admin:auth_state", "read:users"]}},
            {{"name": "user", "scopes": hub_settings.user_role_scopes()}},
        ]
    """)
    write_config(config_path, config_data(github, hub.url))
    hub.start()
    made: list[str] = []
    try:
        for row in TABLE:
            github.next_login = row.user
            status = oauth_login(hub.url, github.url)[1].status_code
            assert status == (302 if row.may_log_in else 403), row.user
        yield hub, github, config_path, token, made
    finally:
        hub.stop()
        github.stop()
        for name in made:
            accounts.remove_account(name)
        for name in GROUPS:
            subprocess.run(["groupdel", name], capture_output=True)


@pytest.fixture(scope="module")
def require_root_module():
    import os

    if os.geteuid() != 0:
        pytest.skip("real Unix accounts need root (CI runs as root)")


def source(platform) -> HubPlanSource:
    hub, _, _, token, _ = platform
    return HubPlanSource(f"{hub.url}/hub/api", token)


def expected_plan(row: Row) -> dict[str, Any]:
    return {"may_log_in": row.may_log_in, "uid": row.uid, "gid": row.gid,
            "supplemental_gids": row.supplemental, "readonly_gids": row.readonly,
            "profiles": row.profiles, "workers": row.workers, "namespaces": row.namespaces,
            "groups": row.groups, "admin": row.admin}


def seen(plan) -> dict[str, Any]:
    return {"may_log_in": plan.may_log_in, "uid": plan.uid, "gid": plan.gid,
            "supplemental_gids": plan.supplemental_gids, "readonly_gids": plan.readonly_gids,
            "profiles": plan.profile_slugs, "workers": plan.dask_worker_profiles,
            "namespaces": plan.environment_namespaces, "groups": plan.group_names, "admin": plan.admin}


ADMITTED = [r for r in TABLE if r.may_log_in]


@pytest.mark.parametrize("row", ADMITTED, ids=lambda r: r.user)
def test_the_hub_plan(platform, row: Row) -> None:
    assert seen(source(platform).fetch_sync(row.user).plan) == expected_plan(row)


def test_refused_logins_have_no_plan(platform) -> None:
    with pytest.raises(PlanUnavailable, match="the hub has no user 'mallory': log in to the hub first"):
        source(platform).fetch_sync("mallory")


def test_a_user_reads_their_own_plan_and_no_one_elses(platform) -> None:
    hub = platform[0]
    status, body = hub.api("POST", "/users/gina/tokens", {"note": "own plan", "scopes": [f"{PLAN_SCOPE}!user=gina"]})
    assert status == 201, body
    own = HubPlanSource(f"{hub.url}/hub/api", body["token"])
    assert own.fetch_sync("gina").plan.uid == 44534
    with pytest.raises(PlanUnavailable, match="may not read plans"):
        own.fetch_sync("cfcarol")


def auth_state(platform, name: str) -> dict[str, Any]:
    hub, _, _, token, _ = platform
    status, body = hub.api("GET", f"/users/{name}", token=token)
    assert status == 200, body
    return body["auth_state"]


@pytest.mark.parametrize("row", ADMITTED, ids=lambda r: r.user)
async def test_kubernetes_pod(platform, row: Row, dummy_kubeconfig, monkeypatch) -> None:
    monkeypatch.setenv("QHUB_CONFIG", str(platform[2]))
    spawner = make_spawner(FakeHubUser(row.user, auth_state=auth_state(platform, row.user)))
    pod = await manifest(spawner, {"profile": "small"})
    context = pod["spec"]["securityContext"]
    assert (context["runAsUser"], context["runAsGroup"]) == (row.uid, row.gid)
    assert context["supplementalGroups"] == sorted({*row.supplemental, *row.readonly})
    mounts = {m["mountPath"]: m.get("readOnly", False) for m in pod["spec"]["containers"][0]["volumeMounts"]
              if m["name"] == "qhub-storage"}
    assert mounts == {f"/home/{row.user}": False, "/shared": False,
                      **{f"/shared/{g}": GROUPS[g] in row.readonly for g in row.groups}}
    assert [p.profile_slug for p in spawner.qhub_user_plan.jupyterlab_profiles] == list(row.profiles)


@pytest.mark.parametrize("row", ADMITTED, ids=lambda r: r.user)
def test_local_process_account(platform, row: Row) -> None:
    spec = accounts.account_spec(source(platform).fetch_sync(row.user).plan)
    assert (spec.uid, spec.gid) == (row.uid, row.gid)
    assert tuple(sorted(gid for _, gid in spec.groups)) == row.supplemental  # read-only: ACLs, not groups


def gateway(platform, rendering: str) -> QHubClusterOptions:
    server_env = [WorkerEnvironment("global", "server", Path(sys.prefix))]  # has dask, distributed, gateway
    kube = KubernetesSettings(default_image="lab:1", conda_store_claim="envs", storage_claim="storage")
    return QHubClusterOptions(rendering=rendering, config_path=platform[2], plan_source=source(platform),
                              kubernetes=kube if rendering == "kubernetes" else None,
                              environment_lister=lambda config, plan: server_env)


@pytest.mark.parametrize("rendering", ["local", "kubernetes"])
@pytest.mark.parametrize("row", TABLE, ids=lambda r: r.user)
def test_gateway_options(platform, row: Row, rendering: str) -> None:
    form = asyncio.run(gateway(platform, rendering)(GatewayUser(row.user, groups=["cfml", "cfadmin"])))
    spec = {f["field"]: f for f in form.get_specification()}
    if not row.may_log_in:
        assert spec == {}
        with pytest.raises(OptionRefused, match="Your plan is not available"):
            form.handler({}, None)
        return
    assert tuple(spec["profile"]["spec"]["options"]) == row.workers  # the hub's, not the gateway groups'
    for worker in ("Small Worker", "ML Worker"):
        if worker not in row.workers:
            with pytest.raises(OptionRefused, match=f"may not use the worker profile '{worker}'"):
                form.handler({"profile": worker}, None)
            continue
        config = form.handler({"profile": worker}, None)
        if rendering == "local":
            # as the local server's account: read-only groups are ACL entries for the uid, not gids
            assert (config["uid"], config["gid"], tuple(config["supplemental_gids"])) == \
                (row.uid, row.gid, row.supplemental)
        else:  # as the notebook's pod: read-only groups are gids with read-only mounts
            context = config["worker_extra_pod_config"]["securityContext"]
            assert (context["runAsUser"], context["runAsGroup"], context["supplementalGroups"]) == \
                (row.uid, row.gid, sorted({*row.supplemental, *row.readonly}))


@pytest.mark.parametrize("row", TABLE, ids=lambda r: r.user)
def test_ssh_account_check(platform, row: Row, tmp_path: Path) -> None:
    hub, _, _, token, made = platform
    token_file = tmp_path / "token"
    token_file.write_text(token)
    settings = {"hub_api_url": f"{hub.url}/hub/api", "api_token_file": str(token_file)}
    if not row.may_log_in:
        assert check_account(settings, row.user) == (False, f"{row.user!r} is not the account of a hub user")
        return
    plan = source(platform).fetch_sync(row.user).plan
    accounts.ensure_groups({g: GROUPS[g] for g in GROUPS})
    accounts.ensure_account(accounts.account_spec(plan), GROUPS)
    made.append(plan.unix_name)
    assert check_account(settings, row.user) == (True, f"hub user {row.user!r} admitted")


@pytest.mark.parametrize("row", ADMITTED, ids=lambda r: r.user)
def test_conda_store_roles_and_video_rooms(platform, row: Row) -> None:
    config = load_config(platform[2])
    plan = source(platform).fetch_sync(row.user).plan
    bindings = user_role_bindings(config, plan)
    assert {k.removesuffix("/*") for k in bindings} == set(row.namespaces)
    for group in row.groups:
        assert bindings[f"{group}/*"] == (["viewer"] if GROUPS[group] in row.readonly else ["developer"])
    assert set(group_video_rooms(config, plan, b"k" * 32)) == set(row.groups)


CONDA_STORE_PYTHON = Path(sys.prefix) / "conda-store" / "bin" / "python"  # conda-store's own environment
CONDA_STANDIN = SHIM  # conda-store imports `conda`, which no registry here provides (as the embedded mode)
CONDA_STORE_LOGIN = """
import asyncio, json, logging, sys
logging.basicConfig(level=logging.WARNING)
from qhub_hub.conda_store.conda_store_auth import QHubJupyterHubAuthentication
from qhub_hub.conda_store.roles import user_role_bindings
from qhub_hub.config import load_config
auth = QHubJupyterHubAuthentication(hub_api_url=sys.argv[1], client_secret=sys.argv[2])
out = {}
for name in sys.argv[4:]:
    plan = asyncio.run(auth.hub_plan(name))
    out[name] = None if plan is None else sorted(user_role_bindings(load_config(sys.argv[3]), plan))
print(json.dumps(out))
"""


def test_conda_store_login_asks_the_hub(platform) -> None:
    """conda-store's JupyterHub login, in conda-store's own environment, gets the hub's plan."""
    hub, _, config_path, token, _ = platform
    names = [r.user for r in TABLE]
    result = subprocess.run([str(CONDA_STORE_PYTHON), "-c", CONDA_STORE_LOGIN, f"{hub.url}/hub/api", token,
                             str(config_path), *names], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(CONDA_STANDIN)})
    assert result.returncode == 0, result.stderr
    namespaces = json.loads(result.stdout)
    for row in TABLE:
        expected = sorted(f"{n}/*" for n in row.namespaces) if row.may_log_in else None
        assert namespaces[row.user] == expected, row.user
    assert "conda-store login refused for 'mallory': the hub has no user 'mallory'" in result.stderr


def test_zz_a_user_removed_from_the_config_while_logged_in(platform, tmp_path: Path) -> None:
    """cfbob is logged in (and has an account); the config drops him: every consumer refuses."""
    hub, github, config_path, token, _ = platform
    write_config(config_path, config_data(github, hub.url, without=("cfbob",)))
    plan = source(platform).fetch_sync("cfbob").plan
    assert plan.may_log_in is False
    form = asyncio.run(gateway(platform, "local")(GatewayUser("cfbob")))
    assert form.get_specification() == []
    with pytest.raises(OptionRefused, match="'cfbob' may not use this platform"):
        form.handler({}, None)
    token_file = tmp_path / "token"
    token_file.write_text(token)
    settings = {"hub_api_url": f"{hub.url}/hub/api", "api_token_file": str(token_file)}
    assert check_account(settings, "cfbob") == (False, "the config does not admit 'cfbob' any more")
    # and his next login is refused
    github.next_login = "cfbob"
    assert oauth_login(hub.url, github.url)[1].status_code == 403
    assert json.loads(json.dumps(yaml.safe_load(config_path.read_text())))["security"]["users"].keys() == {"cfcarol"}
