"""The real `QHubKubeSpawner`, run here (outside the cluster) against the dev cluster's API, spawns
user pods for the example team's carol and for an identity-provider user; the test then looks
inside the running pods: ids by name, the folders the init container made, and what carol may do.

The pods run the lab image's real `jupyterhub-singleuser`; no hub runs here, so the test stops
at the pod (the hub-facing part is tests/hub's and the chart install's).
"""

from __future__ import annotations

import asyncio
import json
import os
import stat

import pytest
import pytest_asyncio

from qhub_hub.spawner import QHubKubeSpawner
from tests.hub.conftest import example_data, write_config
from tests.support.fake_hub import FakeHub as Hub
from tests.support.fake_hub import FakeHubUser as HubUser

from .spawning import namespace_with_storage, spawner_config, use_kubeconfig

pytestmark = [pytest.mark.cluster, pytest.mark.asyncio(loop_scope="module"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]

NS = "kc-spawn"
IDP_USER = "kcgina"


@pytest.fixture(scope="module")
def setting(dev_cluster, tmp_path_factory):
    folder = namespace_with_storage(dev_cluster.apply, NS)
    # another group's folder, as the init container of an analysts member would have made it
    (folder / "shared" / "analysts").mkdir(parents=True)
    os.chmod(folder / "shared", 0o1777)
    os.chown(folder / "shared" / "analysts", 0, 2001)
    os.chmod(folder / "shared" / "analysts", 0o2770)
    data = example_data()
    data["security"]["identity_provider_groups"] = {"ml-team": "ml"}
    config_path = write_config(tmp_path_factory.mktemp("qhub") / "qhub-config.yaml", data)
    saved = {k: os.environ.get(k) for k in ("QHUB_CONFIG", "KUBECONFIG")}
    os.environ["QHUB_CONFIG"] = str(config_path)
    use_kubeconfig(dev_cluster.kubeconfig)
    yield folder
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


async def spawn(user: HubUser, profile: str = "small") -> QHubKubeSpawner:
    spawner = QHubKubeSpawner(config=spawner_config(NS), user=user, hub=Hub())
    spawner.api_token = "kc-token"
    spawner.user_options = {"profile": profile}
    url = await asyncio.wait_for(spawner.start(), 200)
    assert url.startswith("http://")
    return spawner


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def carol(setting):
    spawner = await spawn(HubUser("carol"))
    yield spawner
    await spawner.stop(now=True)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gina(setting):
    # no uid recorded yet: the spawner assigns one from security.dynamic_ids (as at a first login)
    spawner = await spawn(HubUser(IDP_USER, auth_state={"qhub": {"idp_groups": ["ml-team"]}}))
    yield spawner
    await spawner.stop(now=True)


def sh(dev_cluster, spawner: QHubKubeSpawner, script: str, check: bool = True):
    return dev_cluster.exec(NS, spawner.pod_name, "sh", "-c", script, check=check)


async def test_carol_runs_as_her_plan_with_names(dev_cluster, carol):
    assert sh(dev_cluster, carol, "id").stdout.strip() == (
        "uid=3003(carol) gid=2005(users) groups=2005(users),2002(data-eng),2003(ml)")
    assert sh(dev_cluster, carol, "whoami; echo $HOME; pwd").stdout.split() == ["carol", "/home/carol", "/home/carol"]


async def test_the_init_container_made_the_folders_with_the_plan_owners(dev_cluster, carol, setting):
    out = sh(dev_cluster, carol, "stat -c '%n %a %U:%G' /home/carol /shared /shared/ml /shared/data-eng "
                                 "/shared/users").stdout.splitlines()
    assert out == ["/home/carol 700 carol:users", "/shared 1777 root:root", "/shared/ml 2770 root:ml",
                   "/shared/data-eng 2770 root:data-eng", "/shared/users 2770 root:users"]
    home = (setting / "home" / "carol").stat()  # the same, seen on the storage itself
    assert (home.st_uid, home.st_gid, stat.S_IMODE(home.st_mode)) == (3003, 2005, 0o700)


async def test_carol_writes_in_her_group_folder_and_cannot_list_another(dev_cluster, carol, setting):
    sh(dev_cluster, carol, "echo model > /shared/ml/carol-model.txt")
    written = (setting / "shared" / "ml" / "carol-model.txt").stat()
    assert (written.st_uid, written.st_gid) == (3003, 2003)  # setgid folder: the group's files
    denied = sh(dev_cluster, carol, "ls /shared/analysts", check=False)
    assert denied.returncode != 0 and "Permission denied" in denied.stderr
    denied = sh(dev_cluster, carol, "touch /shared/analysts/x", check=False)
    assert denied.returncode != 0


async def test_identity_provider_user_gets_a_private_group_and_the_mapped_one(dev_cluster, gina, carol, setting):
    uid = gina.qhub_user_plan.uid
    assert uid not in {3001, 3002, 3003, 3004, 3005, 3006} and gina.qhub_user_plan.gid == uid
    assert sh(dev_cluster, gina, "id").stdout.strip() == (
        f"uid={uid}({IDP_USER}) gid={uid}({IDP_USER}) groups={uid}({IDP_USER}),2003(ml)")
    out = sh(dev_cluster, gina, f"stat -c '%a %U:%G' /home/{IDP_USER}; cat /shared/ml/carol-model.txt").stdout
    assert out.splitlines() == [f"700 {IDP_USER}:{IDP_USER}", "model"]  # the team's folder is shared
    assert not sh(dev_cluster, gina, "ls /shared/data-eng", check=False).returncode == 0  # not hers


async def test_the_pods_have_the_plan_security_settings(dev_cluster, carol):
    pod = dev_cluster.kubectl("-n", NS, "get", "pod", carol.pod_name, "-o", "json").stdout
    spec = json.loads(pod)["spec"]
    assert spec["securityContext"]["runAsUser"] == 3003
    assert spec["securityContext"]["supplementalGroups"] == [2002, 2003]
    assert spec["initContainers"][0]["name"] == "qhub-init"
    assert spec["automountServiceAccountToken"] is False
    status = json.loads(pod)["status"]
    assert status["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
