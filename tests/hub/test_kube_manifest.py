"""Whole-manifest tests of `QHubKubeSpawner.get_pod_manifest()` (no cluster: a dummy kubeconfig).

Each case spells out what differs for its user/profile (ids, mounts, resources, environment) and
the test compares the *entire* pod dict, so no field can change unnoticed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from traitlets.config import Config

from qhub_hub.pod import INIT_SCRIPT, k8s_literal
from qhub_hub.spawner import QHubKubeSpawner
from qhub_hub.spawner_options import SpawnRefused
from tests.hub.conftest import example_data, write_config
from tests.support.fake_hub import FakeHub, FakeHubUser

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

GATEWAY = "http://proxy-public/services/dask-gateway"
IMAGE = "quay.io/jupyterhub/singleuser:latest"


@pytest.fixture
def config_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dummy_kubeconfig: Path) -> Path:
    data = example_data()
    data["security"]["identity_provider_groups"] = {"ml-team": "ml"}
    for profile in data["profiles"]["jupyterlab"]:
        if profile["slug"] == "gpu":
            profile["kubespawner_override"]["image"] = "ghcr.io/acme/lab-gpu:2024.6"
            profile["kubespawner_override"]["environment"] = {
                "CUDA_VISIBLE_DEVICES": "all", "QHUB_USER": "evil", "HOME": "/root", "LD_PRELOAD": "x.so"}
    path = write_config(tmp_path / "qhub-config.yaml", data)
    monkeypatch.setenv("QHUB_CONFIG", str(path))
    return path


def make_spawner(user: FakeHubUser, **traits: Any) -> QHubKubeSpawner:
    config = Config()
    config.QHubKubeSpawner.conda_store_claim_name = "conda-store-envs"
    config.QHubKubeSpawner.dask_gateway_address = GATEWAY
    config.QHubKubeSpawner.dask_gateway_proxy_address = "gateway://traefik-qhub-dask-gateway:80"
    config.QHubKubeSpawner.dask_gateway_public_address = "https://qhub.example.org/services/dask-gateway/"
    for key, value in traits.items():
        setattr(config.QHubKubeSpawner, key, value)
    spawner = QHubKubeSpawner(config=config, user=user, hub=FakeHub())
    spawner.api_token = "TOKEN"
    return spawner


async def manifest(spawner: QHubKubeSpawner, user_options: dict) -> dict[str, Any]:
    await spawner.qhub_apply_user_options(user_options)
    pod = await spawner.get_pod_manifest()
    return spawner.api.api_client.sanitize_for_serialization(pod)


def hub_env(name: str, image: str, profile: str) -> dict[str, str]:
    scopes = f'["access:servers!server={name}/", "access:servers!user={name}"]'
    return {
        "JPY_API_TOKEN": "TOKEN", "JUPYTERHUB_ACTIVITY_URL": f"http://hub:8081/hub/api/users/{name}/activity",
        "JUPYTERHUB_API_TOKEN": "TOKEN", "JUPYTERHUB_API_URL": "http://hub:8081/hub/api",
        "JUPYTERHUB_BASE_URL": "/", "JUPYTERHUB_CLIENT_ID": "", "JUPYTERHUB_COOKIE_HOST_PREFIX_ENABLED": "0",
        "JUPYTERHUB_HOST": "", "JUPYTERHUB_OAUTH_ACCESS_SCOPES": scopes,
        "JUPYTERHUB_OAUTH_CALLBACK_URL": f"/user/{name}/oauth_callback",
        "JUPYTERHUB_OAUTH_CLIENT_ALLOWED_SCOPES": "[]", "JUPYTERHUB_OAUTH_SCOPES": scopes,
        "JUPYTERHUB_PUBLIC_HUB_URL": "", "JUPYTERHUB_PUBLIC_URL": "", "JUPYTERHUB_SERVER_NAME": "",
        "JUPYTERHUB_SERVICE_URL": "http://0.0.0.0:8888/", "JUPYTERHUB_USER": name,
        "JUPYTER_IMAGE": image, "JUPYTER_IMAGE_SPEC": image,
        "DASK_GATEWAY__ADDRESS": GATEWAY, "DASK_GATEWAY__AUTH__TYPE": "jupyterhub",
        "DASK_GATEWAY__PROXY_ADDRESS": "gateway://traefik-qhub-dask-gateway:80",
        "DASK_GATEWAY__PUBLIC_ADDRESS": "https://qhub.example.org/services/dask-gateway/",
        # clusters default to the notebook's environment (a kernel sets it) and this profile's image
        "DASK_GATEWAY__CLUSTER__OPTIONS__ENVIRONMENT": "{QHUB_DASK_ENVIRONMENT}", "QHUB_DASK_ENVIRONMENT": "",
        "DASK_GATEWAY__CLUSTER__OPTIONS__SERVER_PROFILE": profile,
        "QHUB_ENVIRONMENTS_ROOT": "/home/conda", "QHUB_VIDEOCHAT_ROOM_PREFIX": "qhub",
        "QHUB_VIDEOCHAT_URL": "https://meet.jit.si", "LD_PRELOAD": "libnss_wrapper.so",
        "NSS_WRAPPER_GROUP": "/etc/qhub-nss/group", "NSS_WRAPPER_PASSWD": "/etc/qhub-nss/passwd",
    }


def storage(mount: str, subpath: str, readonly: bool = False) -> dict[str, Any]:
    out = {"mountPath": mount, "name": "qhub-storage", "subPath": subpath}
    return {**out, "readOnly": True} if readonly else out


def conda(namespace: str) -> dict[str, Any]:
    return {"mountPath": f"/home/conda/{namespace}", "name": "qhub-conda-store", "readOnly": True,
            "subPath": namespace}


NSS_MOUNT = {"mountPath": "/etc/qhub-nss", "name": "qhub-nss", "readOnly": True}


def expected_pod(*, name: str, uid: int, gid: int, supplemental: list[int], image: str, env: dict[str, str],
                 profile: str, resources: dict, mounts: list[dict], init_args: list[str], passwd: str, group: str,
                 node_selector: dict | None = None, tolerations: list | None = None) -> dict[str, Any]:
    env = {**hub_env(name, image, profile), **env}
    # the init container makes each mounted conda-store namespace folder, owned by conda-store
    namespaces = [m["subPath"] for m in mounts if m["name"] == "qhub-conda-store"]
    init_args = [*init_args, *[a for ns in namespaces
                               for a in ("platform", f"/qhub-environments/{ns}", "1000", "1000", "0755")]]
    init_mounts = [{"name": "qhub-storage", "mountPath": "/qhub-storage"},
                   {"name": "qhub-nss", "mountPath": "/qhub-nss"}]
    if namespaces:
        init_mounts.append({"name": "qhub-conda-store", "mountPath": "/qhub-environments"})
    spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "containers": [{
            "env": [{"name": k, "value": env[k]} for k in sorted(env)],
            "image": image,
            "lifecycle": {},
            "name": "notebook",
            "ports": [{"containerPort": 8888, "name": "notebook-port"}],
            "resources": resources,
            "securityContext": {"runAsUser": uid, "runAsGroup": gid, "runAsNonRoot": True,
                                "allowPrivilegeEscalation": False, "privileged": False,
                                "capabilities": {"drop": ["ALL"]}},
            "volumeMounts": mounts,
            "workingDir": f"/home/{name}",
        }],
        "imagePullSecrets": [],
        "initContainers": [{
            "args": ["qhub-init", "/qhub-nss", *init_args],
            "command": ["/bin/sh", "-c", k8s_literal(INIT_SCRIPT)],
            "env": [{"name": "QHUB_PASSWD", "value": passwd}, {"name": "QHUB_GROUP", "value": group}],
            "image": "busybox:1.36.1",
            "name": "qhub-init",
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"},
                          "limits": {"cpu": "200m", "memory": "64Mi"}},
            "securityContext": {"runAsUser": 0, "runAsGroup": 0, "runAsNonRoot": False,
                                "allowPrivilegeEscalation": False, "privileged": False,
                                "capabilities": {"drop": ["ALL"],
                                                 "add": ["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID"]}},
            "volumeMounts": init_mounts,
        }],
        "restartPolicy": "OnFailure",
        # no runAsNonRoot for the pod: its init containers run as root (the notebook has it)
        "securityContext": {"runAsUser": uid, "runAsGroup": gid,
                            "supplementalGroups": supplemental, "fsGroup": gid,
                            "fsGroupChangePolicy": "OnRootMismatch",
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "volumes": [
            {"name": "qhub-storage", "persistentVolumeClaim": {"claimName": "qhub-storage"}},
            {"emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}, "name": "qhub-nss"},
            {"name": "qhub-conda-store", "persistentVolumeClaim": {"claimName": "conda-store-envs"}},
        ],
    }
    if node_selector:
        spec["nodeSelector"] = node_selector
    if tolerations:
        spec["tolerations"] = tolerations
    labels = {"hub.jupyter.org/username": name, "app.kubernetes.io/name": "jupyterhub",
              "app.kubernetes.io/managed-by": "kubespawner", "app": "jupyterhub", "heritage": "jupyterhub",
              "app.kubernetes.io/component": "singleuser-server", "component": "singleuser-server",
              "hub.jupyter.org/servername": ""}
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"annotations": {"hub.jupyter.org/username": name,
                                     "hub.jupyter.org/kubespawner-version": "7.1.0",
                                     "hub.jupyter.org/jupyterhub-version": "6.1.1"},
                     "labels": labels, "name": f"jupyter-{name}"},
        "spec": spec,
    }


def identity(name: str, uid: int, groups: str, namespaces: str) -> dict[str, str]:
    return {"HOME": f"/home/{name}", "USER": name, "LOGNAME": name, "QHUB_USER": name, "QHUB_UNIX_NAME": name,
            "QHUB_GROUPS": groups, "QHUB_ENVIRONMENT_NAMESPACES": namespaces}


async def test_gpu_profile_for_an_ml_member(config_path):
    pod = await manifest(make_spawner(FakeHubUser("dave")), {"profile": "gpu"})
    image = "ghcr.io/acme/lab-gpu:2024.6"
    assert pod == expected_pod(
        name="dave", uid=3004, gid=2005, supplemental=[2003], image=image, profile="gpu",
        env={**identity("dave", 3004, "ml,users", "dave,ml,users,global"), "CUDA_VISIBLE_DEVICES": "all",
             "CPU_GUARANTEE": "3.0", "CPU_LIMIT": "4.0", "MEM_GUARANTEE": "10737418240",
             "MEM_LIMIT": "17179869184"},
        resources={"limits": {"cpu": 4.0, "memory": 17179869184, "nvidia.com/gpu": "1"},
                   "requests": {"cpu": 3.0, "memory": 10737418240}},
        mounts=[storage("/home/dave", "home/dave"), storage("/shared", "shared"),
                storage("/shared/ml", "shared/ml"), storage("/shared/users", "shared/users"), NSS_MOUNT,
                conda("dave"), conda("ml"), conda("users"), conda("global")],
        init_args=["platform", "/qhub-storage/home", "0", "0", "0755",
                   "home", "/qhub-storage/home/dave", "3004", "2005", "0700",
                   "platform", "/qhub-storage/shared", "0", "0", "1777",
                   "group", "/qhub-storage/shared/ml", "0", "2003", "2770",
                   "group", "/qhub-storage/shared/users", "0", "2005", "2770"],
        passwd="root:x:0:0:root:/root:/bin/sh\ndave:x:3004:2005:dave:/home/dave:/bin/bash",
        group="root:x:0:\nml:x:2003:dave\nusers:x:2005:",
        node_selector={"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"},
        tolerations=[{"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Exists"}],
    )


async def test_read_only_member_gets_the_group_folder_read_only(config_path):
    pod = await manifest(make_spawner(FakeHubUser("erin")), {"profile": "small"})
    assert pod == expected_pod(
        name="erin", uid=3005, gid=2005, supplemental=[2001, 2004], image=IMAGE, profile="small",
        env={**identity("erin", 3005, "analysts,finance,users", "erin,analysts,finance,users,global"),
             "CPU_GUARANTEE": "0.5", "CPU_LIMIT": "1.0", "MEM_GUARANTEE": "1073741824",
             "MEM_LIMIT": "2147483648"},
        resources={"limits": {"cpu": 1.0, "memory": 2147483648}, "requests": {"cpu": 0.5, "memory": 1073741824}},
        mounts=[storage("/home/erin", "home/erin"), storage("/shared", "shared"),
                storage("/shared/analysts", "shared/analysts", readonly=True),
                storage("/shared/finance", "shared/finance"), storage("/shared/users", "shared/users"),
                NSS_MOUNT, conda("erin"), conda("analysts"), conda("finance"), conda("users"), conda("global")],
        init_args=["platform", "/qhub-storage/home", "0", "0", "0755",
                   "home", "/qhub-storage/home/erin", "3005", "2005", "0700",
                   "platform", "/qhub-storage/shared", "0", "0", "1777",
                   "group", "/qhub-storage/shared/analysts", "0", "2001", "2770",
                   "group", "/qhub-storage/shared/finance", "0", "2004", "2770",
                   "group", "/qhub-storage/shared/users", "0", "2005", "2770"],
        passwd="root:x:0:0:root:/root:/bin/sh\nerin:x:3005:2005:erin:/home/erin:/bin/bash",
        group="root:x:0:\nanalysts:x:2001:erin\nfinance:x:2004:erin\nusers:x:2005:",
    )


async def test_identity_provider_user_with_a_recorded_dynamic_uid(config_path):
    user = FakeHubUser("gina", auth_state={"qhub": {"idp_groups": ["ml-team"], "uid": 200123}})
    pod = await manifest(make_spawner(user, image="ghcr.io/acme/lab:2024.6"), {"profile": "medium"})
    assert pod == expected_pod(
        name="gina", uid=200123, gid=200123, supplemental=[2003], image="ghcr.io/acme/lab:2024.6", profile="medium",
        env={**identity("gina", 200123, "ml", "gina,ml,global"), "CPU_GUARANTEE": "1.0", "CPU_LIMIT": "2.0",
             "MEM_GUARANTEE": "2147483648", "MEM_LIMIT": "4294967296"},
        resources={"limits": {"cpu": 2.0, "memory": 4294967296}, "requests": {"cpu": 1.0, "memory": 2147483648}},
        mounts=[storage("/home/gina", "home/gina"), storage("/shared", "shared"),
                storage("/shared/ml", "shared/ml"), NSS_MOUNT, conda("gina"), conda("ml"), conda("global")],
        init_args=["platform", "/qhub-storage/home", "0", "0", "0755",
                   "home", "/qhub-storage/home/gina", "200123", "200123", "0700",
                   "platform", "/qhub-storage/shared", "0", "0", "1777",
                   "group", "/qhub-storage/shared/ml", "0", "2003", "2770"],
        passwd="root:x:0:0:root:/root:/bin/sh\ngina:x:200123:200123:gina:/home/gina:/bin/bash",
        group="root:x:0:\ngina:x:200123:\nml:x:2003:gina",
    )


async def test_profile_cannot_change_ids_mounts_or_security_and_admin_settings_survive(config_path):
    spawner = make_spawner(
        FakeHubUser("dave"),
        node_selector={"pool": "users"},
        container_security_context={"runAsUser": 0, "privileged": True},
        pod_security_context={"runAsUser": 0, "supplementalGroups": [0]},
        service_account="dask-clusters",
        volumes=[{"name": "datasets", "nfs": {"server": "nfs", "path": "/datasets"}}],
        volume_mounts=[{"name": "datasets", "mountPath": "/datasets", "readOnly": True},
                       {"name": "datasets", "mountPath": "/home/dave"}],
    )
    pod = await manifest(spawner, {"profile": "gpu"})
    spec, notebook = pod["spec"], pod["spec"]["containers"][0]
    assert spec["securityContext"]["runAsUser"] == 3004 and spec["securityContext"]["supplementalGroups"] == [2003]
    assert notebook["securityContext"] == {"runAsUser": 3004, "runAsGroup": 2005, "runAsNonRoot": True,
                                           "allowPrivilegeEscalation": False, "privileged": False,
                                           "capabilities": {"drop": ["ALL"]}}
    assert spec["automountServiceAccountToken"] is False and spec["serviceAccountName"] == "dask-clusters"
    assert spec["nodeSelector"] == {"pool": "users", "cloud.google.com/gke-accelerator": "nvidia-tesla-t4"}
    assert [m["mountPath"] for m in notebook["volumeMounts"]].count("/home/dave") == 1
    assert {"name": "datasets", "mountPath": "/datasets", "readOnly": True} in notebook["volumeMounts"]
    assert spec["volumes"][-1] == {"name": "datasets", "nfs": {"server": "nfs", "path": "/datasets"}}
    env = {e["name"]: e["value"] for e in notebook["env"]}
    assert (env["QHUB_USER"], env["HOME"], env["LD_PRELOAD"]) == ("dave", "/home/dave", "libnss_wrapper.so")


async def test_next_spawn_starts_again_from_the_admin_settings(config_path):
    spawner = make_spawner(FakeHubUser("dave"), extra_resource_limits={"example.com/fpga": "0"})
    gpu = await manifest(spawner, {"profile": "gpu"})
    assert gpu["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    small = await manifest(spawner, {"profile": "small"})
    assert small["spec"]["containers"][0]["resources"] == {
        "limits": {"cpu": 1.0, "memory": 2147483648, "example.com/fpga": "0"},
        "requests": {"cpu": 0.5, "memory": 1073741824}}
    assert "nodeSelector" not in small["spec"] and "tolerations" not in small["spec"]
    assert small["spec"]["containers"][0]["image"] == IMAGE


async def test_user_data_is_taken_literally_by_kubernetes(config_path):
    data = example_data()
    data["security"]["allow_unlisted_users"] = True
    write_config(config_path, data)
    pod = await manifest(make_spawner(FakeHubUser("x$(HOME):y")), {})
    env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
    assert env["QHUB_USER"] == "x$$(HOME):y"  # Kubernetes turns $$ into $: no expansion
    passwd = pod["spec"]["initContainers"][0]["env"][0]["value"]
    unix = env["USER"]
    assert unix.startswith("x-home-y--") and f"\n{unix}:x:" in passwd
    assert ":x$$(HOME)_y:" in passwd  # GECOS: ':' replaced, '$' escaped


async def test_kube_path_refuses_with_403_and_400_not_500(config_path):
    spawner = make_spawner(FakeHubUser("frank"))
    spawner.user_options = {"profile": "gpu"}
    with pytest.raises(SpawnRefused) as refused:
        await spawner.load_user_options()  # what kubespawner's _start calls
    assert refused.value.status_code == 403
    assert refused.value.jupyterhub_message == ("'frank' may not use the profile 'gpu'. "
                                                "Profiles you may use: small, medium.")
    spawner.user_options = {"profile": "xl"}
    with pytest.raises(SpawnRefused) as refused:
        await spawner.load_user_options()
    assert refused.value.status_code == 400


async def test_profile_list_is_the_plan(config_path):
    spawner = make_spawner(FakeHubUser("erin"))
    profiles = await spawner.profile_list(spawner)
    assert [p["slug"] for p in profiles] == ["small", "medium", "highmem"]
    form = await spawner.get_options_form()  # ours, not kubespawner's template
    assert re.findall(r'name="profile" id="profile-[a-z]+" value="([a-z]+)"', form) == ["small", "medium", "highmem"]
    assert profiles[0] == {"display_name": "Small Instance", "slug": "small", "default": True,
                           "description": "1 CPU / 2 GB RAM, for notebooks and light analysis",
                           "kubespawner_override": {"cpu_limit": 1.0, "cpu_guarantee": 0.5,
                                                    "mem_limit": "2G", "mem_guarantee": "1G"}}


async def test_manifest_needs_the_plan_first(config_path):
    with pytest.raises(RuntimeError, match="needs the user's plan"):
        await make_spawner(FakeHubUser("dave")).get_pod_manifest()


async def test_service_account_token_only_when_the_admin_opts_in(config_path):
    spawner = make_spawner(FakeHubUser("dave"), service_account="dask-clusters",
                           automount_service_account_token=True)
    pod = await manifest(spawner, {"profile": "small"})
    assert pod["spec"]["automountServiceAccountToken"] is True
