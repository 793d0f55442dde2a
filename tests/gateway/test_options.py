"""The cluster options and their handler, without a running gateway: the plan decides.

Environments here are folders laid out as conda-store lays them out, with the package metadata
files (``*.dist-info`` or ``conda-meta/*.json``) the gateway reads; nothing in them runs.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest
import yaml
from dask_gateway_server.models import User

from qhub_hub.gateway.environments import WorkerEnvironment, environments_on_disk, package_versions
from qhub_hub.gateway_options import (
    MIN_IDLE_TIMEOUT,
    KubernetesSettings,
    OptionRefused,
    QHubClusterOptions,
    check_environment_variables,
)
from qhub_hub.hub_identity import forget_configs

from .plans import ConfigPlans

REPO = Path(__file__).resolve().parents[2]
DASK = {"dask": "2026.8.0", "distributed": "2026.8.0", "dask-gateway": "2026.3.0"}


def fake_environment(root: Path, namespace: str, name: str, packages: dict[str, str],
                     style: str = "dist-info") -> Path:
    prefix = root / namespace / "envs" / name
    (prefix / "bin").mkdir(parents=True)
    (prefix / "bin" / "python").write_text("")
    (prefix / "bin" / "python").chmod(0o755)
    site = prefix / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    for package, version in packages.items():
        if style == "dist-info":
            info = site / f"{package.replace('-', '_')}-{version}.dist-info"
            info.mkdir()
            (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n")
        else:
            (prefix / "conda-meta").mkdir(exist_ok=True)
            (prefix / "conda-meta" / f"{package}-{version}-pyhd8ed1ab_0.json").write_text("{}")
    return prefix


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "conda"
    fake_environment(root, "global", "dask", DASK)
    fake_environment(root, "global", "analytics", {"pandas": "2.2.0"})
    fake_environment(root, "carol", "mine", DASK, style="conda-meta")
    fake_environment(root, "ml", "ml-env", DASK)
    fake_environment(root, "analysts", "reports", DASK)
    return root


def write_config(tmp_path: Path, root: Path, **changes) -> Path:
    data = yaml.safe_load((REPO / "examples" / "qhub-config.yaml").read_text())
    data["conda_store"] = {"environments_root": str(root)}
    data["profiles"]["jupyterlab"][3]["kubespawner_override"]["image"] = "ghcr.io/acme/gpu-lab:1"
    data["profiles"]["dask_worker"]["GPU Worker"] = {
        "worker_cores": 4, "worker_cores_limit": 4, "worker_memory": "16G",
        "worker_memory_limit": "16G", "max_workers": 4, "groups": ["ml"],
        "image": "ghcr.io/acme/gpu-worker:1"}
    for section, value in changes.items():
        data[section] = {**data.get(section, {}), **value}
    path = tmp_path / f"qhub-config-{len(list(tmp_path.glob('qhub-config-*')))}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    forget_configs()
    return path


def options(*, rendering: str, config_path: Path, plans: ConfigPlans | None = None, **kwargs) -> QHubClusterOptions:
    """The factory under test, with plans answered as the hub answers them."""
    return QHubClusterOptions(rendering=rendering, config_path=config_path,
                              plan_source=plans or ConfigPlans(config_path), **kwargs)


def form_of(factory: QHubClusterOptions, user: User):
    """What dask-gateway does for every request: await the user's `Options`."""
    return asyncio.run(factory(user))


KUBE = KubernetesSettings(default_image="ghcr.io/acme/lab:1", conda_store_claim="qhub-conda-store",
                          storage_claim="qhub-storage")


@pytest.fixture
def local(tmp_path: Path, root: Path) -> QHubClusterOptions:
    return options(rendering="local", config_path=write_config(tmp_path, root))


@pytest.fixture
def kube(tmp_path: Path, root: Path) -> QHubClusterOptions:
    return options(rendering="kubernetes", kubernetes=KUBE,
                              config_path=write_config(tmp_path, root))


def request(factory: QHubClusterOptions, user: User, **options):
    """What dask-gateway does with a create request: parse against the user's form, then handle."""
    form = form_of(factory, user)
    parsed = form.parse_options(options)
    return form.get_configuration(parsed, user)


# --- who may use which worker profile (one row a case) ----------------------------------------

PROFILE_TABLE = [
    ("alice", "Small Worker", True),
    ("alice", "Large Worker", False),
    ("bob", "Large Worker", False),
    ("carol", "Large Worker", True),  # data-eng and ml
    ("dave", "Large Worker", True),  # ml
    ("dave", "GPU Worker", True),
    ("carol", "GPU Worker", True),
    ("erin", "Small Worker", True),
    ("erin", "GPU Worker", False),
    ("frank", "Large Worker", False),
]


@pytest.mark.parametrize(("user", "profile", "allowed"), PROFILE_TABLE)
def test_worker_profile_gate(local: QHubClusterOptions, user: str, profile: str, allowed: bool) -> None:
    gateway_user = User(user)
    offered = factory_profiles(local, gateway_user)
    assert (profile in offered) is allowed
    if allowed:
        config = request(local, gateway_user, profile=profile)
        assert config["environment"]["QHUB_DASK_PROFILE"] == profile
    else:
        with pytest.raises(OptionRefused, match=f"'{user}' may not use the worker profile '{profile}'"):
            request(local, gateway_user, profile=profile)
        # the handler alone (a request that skipped the form) refuses the same way
        with pytest.raises(OptionRefused, match="may not use the worker profile"):
            form_of(local, gateway_user).handler({"profile": profile}, gateway_user)


def factory_profiles(factory: QHubClusterOptions, user: User) -> list[str]:
    spec = {f["field"]: f for f in form_of(factory, user).get_specification()}
    return spec["profile"]["spec"]["options"] if "profile" in spec else []


def test_the_hub_decides_not_the_gateway_user(tmp_path: Path, root: Path) -> None:
    # what dask-gateway's authenticator reports (hub groups) does not change the plan: the hub's
    # plan endpoint does. frank is in no ml group; saying so in his gateway groups gives nothing.
    path = write_config(tmp_path, root)
    assert factory_profiles(options(rendering="local", config_path=path), User("frank", groups=["ml"])) \
        == ["Small Worker"]
    # an identity-provider group the hub recorded at login (frank's IdP says ml) does
    plans = ConfigPlans(path, idp_groups={"frank": ["ml"]})
    assert factory_profiles(options(rendering="local", config_path=path, plans=plans), User("frank")) \
        == ["Small Worker", "Large Worker", "GPU Worker"]


def test_no_hub_no_cluster(tmp_path: Path, root: Path) -> None:
    factory = options(rendering="local", config_path=write_config(tmp_path, root),
                      plans=ConfigPlans(tmp_path, down=True))
    assert form_of(factory, User("carol")).get_specification() == []  # GET options: no 500
    with pytest.raises(OptionRefused, match=r"Your plan is not available, so no cluster can be started: "
                                            r"the hub at .* cannot be reached .*try again once the hub is running"):
        request(factory, User("carol"))


def test_users_the_config_does_not_admit_get_nothing(local: QHubClusterOptions) -> None:
    assert form_of(local, User("mallory")).get_specification() == []
    with pytest.raises(OptionRefused, match="'mallory' may not use this platform"):
        request(local, User("mallory"))
    with pytest.raises(OptionRefused, match="not a hub user"):
        form_of(local, User("service:cron")).handler({}, User("service:cron"))


# --- environments -----------------------------------------------------------------------------


def test_declared_worker_environments_narrow_the_choice(local: QHubClusterOptions, root: Path) -> None:
    # the example config: dask_gateway.worker_environments = [dask]
    spec = {f["field"]: f for f in form_of(local, User("carol")).get_specification()}
    assert spec["environment"]["label"].endswith("Yours: global/dask, server")  # + the server's
    config = request(local, User("carol"))
    assert config["scheduler_cmd"] == [str(root / "global/envs/dask/bin/python"), "-m", "dask", "scheduler"]
    with pytest.raises(OptionRefused, match=r"'carol' may not run Dask workers in the environment "
                                            r"'carol/mine', or it is not built\. Choose one of: global/dask, server\."):
        request(local, User("carol"), environment="carol/mine")


ENVIRONMENT_TABLE = [
    # (user, asked, resolved namespace/name or None when refused)
    ("carol", "", "carol/mine"),  # own namespace first
    ("carol", "carol/mine", "carol/mine"),
    ("carol", "ml-env", "ml/ml-env"),
    ("carol", "ml/ml-env", "ml/ml-env"),
    ("carol", "{root}/ml/envs/ml-env", "ml/ml-env"),  # the prefix a kernel reports
    ("carol", "{root}/ml/envs/ml-env/", "ml/ml-env"),
    ("carol", "global/dask", "global/dask"),
    ("carol", "analysts/reports", None),  # not her group
    ("carol", "{root}/analysts/envs/reports", None),
    ("carol", "../analysts/envs/reports", None),
    ("alice", "analysts/reports", "analysts/reports"),
    ("erin", "analysts/reports", "analysts/reports"),  # read-only members may use it too
    ("bob", "", "analysts/reports"),
    ("bob", "carol/mine", None),
    ("bob", "nope", None),
]


@pytest.mark.parametrize(("user", "asked", "resolved"), ENVIRONMENT_TABLE)
def test_environment_choice(tmp_path: Path, root: Path, user: str, asked: str, resolved: str | None) -> None:
    factory = options(rendering="local", config_path=write_config(
        tmp_path, root, dask_gateway={"worker_environments": []}))
    asked = asked.format(root=root)
    if resolved is None:
        with pytest.raises(OptionRefused, match=f"'{user}' may not run Dask workers in the environment"):
            request(factory, User(user), environment=asked)
    else:
        config = request(factory, User(user), environment=asked)
        assert config["environment"]["QHUB_DASK_ENVIRONMENT"] == resolved
        assert config["environment"]["CONDA_PREFIX"] == str(root / resolved.replace("/", "/envs/", 1))


def test_environment_without_dask_is_refused_naming_what_is_missing(tmp_path: Path, root: Path) -> None:
    factory = options(rendering="local", config_path=write_config(
        tmp_path, root, dask_gateway={"worker_environments": []}))
    with pytest.raises(OptionRefused) as refused:
        request(factory, User("bob"), environment="global/analytics")
    assert str(refused.value) == (
        "The environment global/analytics cannot run Dask workers: it lacks dask, distributed, "
        "dask-gateway (found: none of them). Add dask, distributed and dask-gateway to it, at the "
        "versions your notebook uses, or choose another environment.")
    # and it is not offered, nor taken as the default
    spec = {f["field"]: f for f in form_of(factory, User("bob")).get_specification()}
    assert "analytics" not in spec["environment"]["label"]


def test_no_environment_at_all(tmp_path: Path) -> None:
    # as on Kubernetes: only conda-store environments
    factory = options(rendering="local", config_path=write_config(tmp_path, tmp_path / "none"),
                      environment_lister=environments_on_disk)
    with pytest.raises(OptionRefused, match="No built environment with dask, distributed and "
                                            "dask-gateway is available to 'bob'"):
        request(factory, User("bob"))


def test_the_server_environment_when_nothing_is_built(tmp_path: Path) -> None:
    # embedded mode, fresh platform: no conda-store build yet, GatewayCluster() still works
    factory = options(rendering="local", config_path=write_config(tmp_path, tmp_path / "none"))
    for asked in ("", "server", sys.prefix):  # the default; by name; the prefix a kernel reports
        config = request(factory, User("bob"), environment=asked)
        assert config["scheduler_cmd"] == [f"{sys.prefix}/bin/python", "-m", "dask", "scheduler"]
        assert config["environment"]["CONDA_PREFIX"] == sys.prefix
        assert config["environment"]["QHUB_DASK_ENVIRONMENT"] == "server"


def test_the_server_environment_comes_after_built_ones(local: QHubClusterOptions, root: Path) -> None:
    assert request(local, User("carol"))["environment"]["CONDA_PREFIX"] == str(root / "global/envs/dask")
    assert request(local, User("carol"), environment=sys.prefix)["environment"]["CONDA_PREFIX"] == sys.prefix


def test_package_versions_read_from_files(root: Path, tmp_path: Path) -> None:
    assert package_versions(root / "global/envs/dask") == DASK
    assert package_versions(root / "carol/envs/mine") == DASK  # conda-meta/*.json
    assert package_versions(root / "global/envs/analytics") == dict.fromkeys(DASK)
    # a .pth naming another folder (how the integration tests' venvs see the project's packages);
    # lines that would run code are not followed
    prefix = fake_environment(root, "global", "layered", {"dask": "2026.7.1"})
    other = tmp_path / "other"
    for name, version in (("distributed", "2026.7.1"), ("dask-gateway", "2026.3.0"), ("dask", "2026.8.0")):
        info = other / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    site = next(prefix.glob("lib/python3*/site-packages"))
    (site / "x.pth").write_text(f"import os; os.system('false')\n{other}\n")
    assert package_versions(prefix) == {"dask": "2026.7.1", "distributed": "2026.7.1",
                                        "dask-gateway": "2026.3.0"}


def test_package_versions_are_read_again_when_the_environment_changes(root: Path, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Versions are remembered per environment until one of its folders changes (the lookup is in
    every cluster request, about 80 ms for a real environment)."""
    from qhub_hub.gateway import environments

    def change() -> None:  # the next change lands in a later clock tick than the last read's folders
        time.sleep(0.05)

    prefix = fake_environment(root, "global", "fresh", DASK)
    reads: list[Path] = []
    read = environments._read_versions
    monkeypatch.setattr(environments, "_read_versions", lambda prefix, *a: reads.append(prefix) or read(prefix, *a))
    assert package_versions(prefix) == package_versions(prefix) == DASK
    assert len(reads) == 2  # just built: its folders may still change within the clock tick
    monkeypatch.setattr(environments, "RECENT_SECONDS", 0.0)
    reads.clear()
    prefix = fake_environment(root, "global", "changing", {"dask": "2026.7.1", "distributed": "2026.7.1"})
    site = next(prefix.glob("lib/python3*/site-packages"))
    first = package_versions(prefix)
    assert first == {"dask": "2026.7.1", "distributed": "2026.7.1", "dask-gateway": None}
    first["dask"] = "changed by a caller"
    assert package_versions(prefix)["dask"] == "2026.7.1" and len(reads) == 1  # remembered, a copy

    change()
    # pip: the old dist-info goes, a new one comes
    (site / "dask-2026.7.1.dist-info" / "METADATA").unlink()
    (site / "dask-2026.7.1.dist-info").rmdir()
    info = site / "dask-2026.8.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: dask\nVersion: 2026.8.0\n")
    assert package_versions(prefix)["dask"] == "2026.8.0" and len(reads) == 2
    change()
    # conda: a conda-meta record
    (prefix / "conda-meta").mkdir()
    assert package_versions(prefix)["dask-gateway"] is None
    change()
    (prefix / "conda-meta" / "dask-gateway-2026.3.0-pyhd8ed1ab_0.json").write_text("{}")
    assert package_versions(prefix)["dask-gateway"] == "2026.3.0"
    change()
    # a .pth naming another folder, and a package installed into that folder later
    other = tmp_path / "layer"
    other.mkdir()
    (site / "layer.pth").write_text(f"{other}\n")
    assert package_versions(prefix)["distributed"] == "2026.7.1"
    change()
    (site / "distributed-2026.7.1.dist-info" / "METADATA").unlink()
    (site / "distributed-2026.7.1.dist-info").rmdir()
    (other / "distributed-2026.8.0.dist-info").mkdir()
    (other / "distributed-2026.8.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: distributed\nVersion: 2026.8.0\n")
    assert package_versions(prefix)["distributed"] == "2026.8.0"
    # conda-store's rebuild: the environment's name now points at another build
    builds = tmp_path / "builds"
    old_build = fake_environment(builds, "global", "b1", DASK)
    new_build = fake_environment(builds, "global", "b2", {"dask": "2026.9.0"})
    link = root / "global" / "envs" / "linked"
    link.symlink_to(old_build)
    assert package_versions(link) == DASK
    change()
    link.unlink()
    link.symlink_to(new_build)
    assert package_versions(link) == {"dask": "2026.9.0", "distributed": None, "dask-gateway": None}
    count = len(reads)
    assert package_versions(link) == {"dask": "2026.9.0", "distributed": None, "dask-gateway": None}
    assert len(reads) == count


# --- the small extras ----------------------------------------------------------------------------


def test_max_workers_within_the_profile(local: QHubClusterOptions) -> None:
    assert request(local, User("carol"), profile="Large Worker")["cluster_max_workers"] == 20
    assert request(local, User("carol"), profile="Large Worker", max_workers=5)["cluster_max_workers"] == 5
    with pytest.raises(OptionRefused, match="'Small Worker' allows at most 10 workers"):
        request(local, User("carol"), profile="Small Worker", max_workers=11)
    with pytest.raises(ValueError, match="max_workers must be <= 20"):
        request(local, User("carol"), max_workers=21)  # the form's own bound: the largest profile


def test_idle_timeout_within_the_cull_limit(local: QHubClusterOptions) -> None:
    assert request(local, User("bob"))["idle_timeout"] == 1800  # cull.cluster_idle_timeout
    assert request(local, User("bob"), idle_timeout=MIN_IDLE_TIMEOUT)["idle_timeout"] == MIN_IDLE_TIMEOUT
    with pytest.raises(ValueError, match="idle_timeout must be <= 1800"):
        request(local, User("bob"), idle_timeout=1801)
    with pytest.raises(ValueError, match="idle_timeout must be >= 5"):
        request(local, User("bob"), idle_timeout=0)  # 0 would mean: never


def test_idle_timeout_without_culling(tmp_path: Path, root: Path) -> None:
    factory = options(rendering="local", config_path=write_config(
        tmp_path, root, cull={"enabled": False}))
    assert request(factory, User("bob"))["idle_timeout"] == 0
    assert request(factory, User("bob"), idle_timeout=600)["idle_timeout"] == 600


@pytest.mark.parametrize(("variables", "refusal"), [
    ({"MY_SETTING": "1", "OMP_NUM_THREADS": "2"}, None),
    ({"PATH": "/tmp/bin"}, "PATH is set by the platform"),
    ({"PYTHONPATH": "/tmp"}, "PYTHONPATH is set by the platform"),
    ({"LD_PRELOAD": "/tmp/x.so"}, "LD_PRELOAD is set by the platform"),
    ({"DASK_GATEWAY_API_TOKEN": "x"}, "DASK_GATEWAY_API_TOKEN is set by the platform"),
    ({"DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION": "False"}, "REQUIRE_ENCRYPTION is set by the platform"),
    ({"QHUB_USER": "root"}, "QHUB_USER is set by the platform"),
    ({"1BAD": "x"}, "'1BAD' is not a valid environment variable name"),
    ({"A=B": "x"}, "is not a valid environment variable name"),
    ({"OK": 3}, "The value of OK must be a string"),
    ({f"V{i}": "x" for i in range(65)}, "At most 64 environment_variables"),
])
def test_environment_variables(variables: dict, refusal: str | None) -> None:
    if refusal is None:
        assert check_environment_variables(variables) == variables
    else:
        with pytest.raises(OptionRefused, match=refusal):
            check_environment_variables(variables)


def test_unknown_options_are_refused(local: QHubClusterOptions) -> None:
    with pytest.raises(ValueError, match=r"Unknown fields \['worker_image'\]"):
        request(local, User("bob"), worker_image="evil:latest")


# --- renderings: whole dicts ----------------------------------------------------------------------


def test_local_rendering(local: QHubClusterOptions, root: Path) -> None:
    python = str(root / "global/envs/dask/bin/python")
    prefix = str(root / "global/envs/dask")
    assert request(local, User("erin"), environment_variables={"MY_SETTING": "1"}) == {
        "scheduler_cmd": [python, "-m", "dask", "scheduler"],
        "worker_cmd": [python, "-m", "dask", "worker"],
        "environment": {
            "MY_SETTING": "1",
            "PATH": f"{prefix}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "CONDA_PREFIX": prefix,
            "CONDA_DEFAULT_ENV": prefix,
            "HOME": "/home/erin",
            "USER": "erin",
            "LOGNAME": "erin",
            "QHUB_USER": "erin",
            "QHUB_DASK_PROFILE": "Small Worker",
            "QHUB_DASK_ENVIRONMENT": "global/dask",
        },
        "worker_cores": 1,
        "worker_threads": 1,
        "worker_memory": 2 * 2**30,
        "scheduler_cores": 1,
        "scheduler_memory": 2 * 2**30,
        "worker_cpu_limit": 1.0,  # the cgroup quotas of each worker and of the scheduler
        "scheduler_cpu_limit": 1.0,
        "cluster_max_workers": 10,
        "idle_timeout": 1800.0,
        "uid": 3005,
        "gid": 2005,
        "supplemental_gids": [2004],  # finance; analysts is read-only: an ACL, not a membership
        "unix_name": "erin",
    }


def test_kubernetes_rendering(kube: QHubClusterOptions, root: Path) -> None:
    prefix = f"{root}/global/envs/dask"
    conda_volume = {"name": "qhub-conda-store",
                    "persistentVolumeClaim": {"claimName": "qhub-conda-store", "readOnly": True}}
    conda_mount = {"name": "qhub-conda-store", "mountPath": f"{root}/global", "subPath": "global",
                   "readOnly": True}
    pod_security = {"runAsUser": 3005, "runAsGroup": 2005,
                    "supplementalGroups": [2001, 2004], "fsGroup": 2005,
                    "fsGroupChangePolicy": "OnRootMismatch", "seccompProfile": {"type": "RuntimeDefault"}}
    container_security = {"runAsUser": 3005, "runAsGroup": 2005, "runAsNonRoot": True,
                          "allowPrivilegeEscalation": False, "privileged": False,
                          "capabilities": {"drop": ["ALL"]}}
    labels = {"qhub/user": "erin", "qhub/worker-profile": "small-worker"}
    annotations = {"qhub/username": "erin", "qhub/environment": "global/dask"}
    assert request(kube, User("erin"), server_profile="medium") == {
        "image": "ghcr.io/acme/lab:1",  # neither profile names one: the server default
        "scheduler_cmd": [f"{prefix}/bin/python", "-m", "dask", "scheduler"],
        "worker_cmd": [f"{prefix}/bin/python", "-m", "dask", "worker"],
        "environment": {
            "PATH": f"{prefix}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "CONDA_PREFIX": prefix,
            "CONDA_DEFAULT_ENV": prefix,
            "HOME": "/home/erin",
            "USER": "erin",
            "LOGNAME": "erin",
            "QHUB_USER": "erin",
            "QHUB_DASK_PROFILE": "Small Worker",
            "QHUB_DASK_ENVIRONMENT": "global/dask",
        },
        "worker_cores": 1.0,
        "worker_cores_limit": 1.0,
        "worker_memory": 2 * 2**30,
        "worker_memory_limit": 2 * 2**30,
        "worker_threads": 1,
        "scheduler_cores": 1.0,
        "scheduler_cores_limit": 1.0,
        "scheduler_memory": 2 * 2**30,
        "scheduler_memory_limit": 2 * 2**30,
        "cluster_max_workers": 10,
        "idle_timeout": 1800.0,
        "scheduler_extra_pod_config": {"securityContext": pod_security, "volumes": [conda_volume]},
        "scheduler_extra_container_config": {"securityContext": container_security,
                                             "volumeMounts": [conda_mount]},
        "worker_extra_pod_config": {
            "securityContext": pod_security,
            "volumes": [conda_volume,
                        {"name": "qhub-storage", "persistentVolumeClaim": {"claimName": "qhub-storage"}}],
        },
        "worker_extra_container_config": {
            "securityContext": container_security,
            "volumeMounts": [
                conda_mount,
                {"name": "qhub-storage", "mountPath": "/home/erin", "subPath": "home/erin"},
                {"name": "qhub-storage", "mountPath": "/shared", "subPath": "shared"},
                {"name": "qhub-storage", "mountPath": "/shared/analysts", "subPath": "shared/analysts",
                 "readOnly": True},
                {"name": "qhub-storage", "mountPath": "/shared/finance", "subPath": "shared/finance"},
                {"name": "qhub-storage", "mountPath": "/shared/users", "subPath": "shared/users"},
            ],
        },
        "scheduler_extra_pod_labels": labels,
        "worker_extra_pod_labels": labels,
        "scheduler_extra_pod_annotations": annotations,
        "worker_extra_pod_annotations": annotations,
    }


def test_kubernetes_rendering_without_user_storage(tmp_path: Path, root: Path) -> None:
    factory = options(
        rendering="kubernetes", config_path=write_config(tmp_path, root),
        kubernetes=KubernetesSettings(default_image="lab:1", conda_store_claim="envs",
                                      mount_user_storage=False, image_pull_policy="IfNotPresent"))
    config = request(factory, User("bob"))
    assert config["worker_extra_pod_config"]["volumes"] == [
        {"name": "qhub-conda-store", "persistentVolumeClaim": {"claimName": "envs", "readOnly": True}}]
    assert config["worker_extra_container_config"]["volumeMounts"] == [
        {"name": "qhub-conda-store", "mountPath": f"{root}/global", "subPath": "global", "readOnly": True}]
    assert config["environment"]["HOME"] == "/tmp"
    assert config["image_pull_policy"] == "IfNotPresent"


@pytest.mark.parametrize(("user", "options", "image"), [
    ("dave", {"profile": "GPU Worker"}, "ghcr.io/acme/gpu-worker:1"),  # the worker profile's own
    ("dave", {"profile": "Large Worker", "server_profile": "gpu"}, "ghcr.io/acme/gpu-lab:1"),
    ("dave", {"profile": "Large Worker", "server_profile": "small"}, "ghcr.io/acme/lab:1"),
    ("dave", {"profile": "Large Worker"}, "ghcr.io/acme/lab:1"),
    ("bob", {"server_profile": "gpu"}, None),  # bob may not use the gpu server profile
])
def test_worker_image_follows_the_notebook(kube: QHubClusterOptions, user: str, options: dict,
                                           image: str | None) -> None:
    if image is None:
        with pytest.raises(OptionRefused, match="'bob' may not use the server profile 'gpu'"):
            request(kube, User(user), **options)
    else:
        assert request(kube, User(user), **options)["image"] == image


def test_kubernetes_overrides_are_kube_cluster_config_traits(kube: QHubClusterOptions) -> None:
    from dask_gateway_server.backends.kubernetes.backend import KubeClusterConfig

    config = KubeClusterConfig(**request(kube, User("carol"), profile="Large Worker"))
    assert (config.worker_cores, config.worker_cores_limit, config.cluster_max_workers) == (2.0, 4.0, 20)


def test_local_overrides_are_local_cluster_config_traits(local: QHubClusterOptions) -> None:
    from qhub_hub.gateway.local_backend import QHubLocalClusterConfig

    config = QHubLocalClusterConfig(**request(local, User("carol"), profile="Large Worker"))
    assert (config.uid, config.gid, config.supplemental_gids) == (3003, 2005, [2002, 2003])
    assert (config.worker_threads, config.worker_memory) == (4, 8 * 2**30)


def test_factory_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="needs kubernetes=KubernetesSettings"):
        QHubClusterOptions(rendering="kubernetes")
    with pytest.raises(ValueError, match="rendering must be"):
        QHubClusterOptions(rendering="yarn")  # type: ignore[arg-type]


def test_environment_lister_can_be_replaced(tmp_path: Path, root: Path) -> None:
    seen = []

    def lister(config, plan):
        seen.append(plan.username)
        return [WorkerEnvironment("global", "dask", root / "global/envs/dask")]

    factory = options(rendering="local", config_path=write_config(tmp_path, root),
                                 environment_lister=lister)
    assert request(factory, User("bob"))["environment"]["QHUB_DASK_ENVIRONMENT"] == "global/dask"
    assert seen == ["bob", "bob"]  # the form, then the handler re-derives


def test_dynamic_user_runs_with_the_uid_the_hub_handed_out(tmp_path: Path, root: Path) -> None:
    """A user from the identity provider (no security.users entry): the uid is the one the hub's
    registry gave them (after a collision it is not the hash rule's), never re-derived here."""
    path = write_config(tmp_path, root, security={"allow_unlisted_users": True,
                                                  "dynamic_ids": {"uid_start": 42600, "uid_count": 100}})
    hashed = request(options(rendering="local", config_path=path), User("gwdyn"))["uid"]
    assert 42600 <= hashed < 42700
    handed_out = 42600 + (hashed - 42600 + 37) % 100  # e.g. after a collision
    factory = options(rendering="local", config_path=path, plans=ConfigPlans(path, uids={"gwdyn": handed_out}))
    assert request(factory, User("gwdyn"))["uid"] == handed_out


def test_kubernetes_offers_the_image_environment_when_nothing_is_built(tmp_path: Path) -> None:
    # a fresh install: no conda-store build yet, and GatewayCluster() must still work; the workers
    # run the user's server image and its own Python, with nothing of conda-store mounted
    empty = tmp_path / "no-environments"
    empty.mkdir()
    path = write_config(tmp_path, empty, dask_gateway={"worker_environments": []})
    config = request(options(rendering="kubernetes", kubernetes=KUBE, config_path=path), User("erin"))
    assert config["scheduler_cmd"] == ["python", "-m", "dask", "scheduler"]
    assert config["worker_cmd"] == ["python", "-m", "dask", "worker"]
    assert "PATH" not in config["environment"] and config["environment"]["QHUB_DASK_ENVIRONMENT"] == "server"
    assert config["scheduler_extra_pod_config"]["volumes"] == []
    assert all(v["name"] != "qhub-conda-store" for v in config["worker_extra_pod_config"]["volumes"])
    assert config["image"] == "ghcr.io/acme/lab:1"
