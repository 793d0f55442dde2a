"""What the rendered objects say, scenario by scenario: claims bind, references resolve, pods are
wired to the config, NetworkPolicies select the pods they are about."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from qhub_hub.config import QHubConfig, load_config

from . import chart
from .upstream import UPSTREAM_OBJECTS, UPSTREAM_POD_LABELS

SCENARIOS = chart.scenarios()


@pytest.fixture(scope="module", params=SCENARIOS)
def scenario(request):
    values = chart.scenario_values(request.param)
    objs = chart.objects(chart.render(values))
    return request.param, values, objs


def qhub_of(values: dict[str, Any]) -> QHubConfig:
    return load_config(values.get("qhub") or {})


def subchart_enabled(values: dict[str, Any], name: str) -> bool:
    return (values.get(name) or {}).get("enabled", True)


# --- the config -------------------------------------------------------------------------------------


def test_the_config_secret_holds_exactly_the_qhub_values(scenario):
    name, values, objs = scenario
    secret = chart.find(objs, "Secret", "qhub-config")
    text = secret["stringData"]["qhub-config.yaml"]
    assert yaml.safe_load(text) == (values.get("qhub") or {}), name
    assert load_config(yaml.safe_load(text) or {}) == qhub_of(values)


def test_hub_settings_say_where_things_are(scenario):
    name, values, objs = scenario
    settings = json.loads(chart.find(objs, "ConfigMap", "qhub-hub-settings")["data"]["settings.json"])
    storage = values.get("storage", {})
    config = qhub_of(values)
    expected_claim = storage["existingClaim"] if storage.get("type") == "existing-claim" else "qhub-storage"
    assert settings["storage_claim_name"] == expected_claim
    ours = config.conda_store.enabled and not config.conda_store.url
    assert settings["conda_store"]["deployed"] is ours
    if ours:
        assert settings["conda_store_claim_name"] == (
            storage["condaStoreExistingClaim"] if storage.get("type") == "existing-claim"
            else "conda-store-environments")
    else:
        assert settings["conda_store_claim_name"] == ""
    assert settings["dask_gateway"]["enabled"] is subchart_enabled(values, "dask-gateway")
    assert settings["init_image"] == "quay.io/qhub-hub/lab:0.1.0"
    qhub_py = chart.find(objs, "ConfigMap", "qhub-hub-settings")["data"]["qhub.py"]
    assert qhub_py == (chart.CHART / "files" / "hub" / "qhub.py").read_text()


# --- storage ----------------------------------------------------------------------------------------


def _claims_used_by_pods(objs) -> set[str]:
    used = set()
    for _, pod in chart.pod_templates(objs):
        for volume in pod["spec"].get("volumes", []):
            if "persistentVolumeClaim" in volume:
                used.add(volume["persistentVolumeClaim"]["claimName"])
    return used


def test_claims_bind_to_their_volumes(scenario):
    name, values, objs = scenario
    pvs = {pv["metadata"]["name"]: pv for pv in chart.by_kind(objs, "PersistentVolume")}
    for pvc in chart.by_kind(objs, "PersistentVolumeClaim"):
        spec = pvc["spec"]
        if "volumeName" not in spec:
            continue  # dynamically provisioned
        pv = pvs[spec["volumeName"]]
        assert pv["spec"]["claimRef"] == {"namespace": chart.NAMESPACE, "name": pvc["metadata"]["name"]}
        assert pv["spec"]["storageClassName"] == spec["storageClassName"] == ""
        assert set(spec["accessModes"]) <= set(pv["spec"]["accessModes"])
        assert pv["spec"]["capacity"]["storage"] == spec["resources"]["requests"]["storage"]
        assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    # every PersistentVolume is claimed by one of our claims
    claimed = {pvc["spec"].get("volumeName") for pvc in chart.by_kind(objs, "PersistentVolumeClaim")}
    assert set(pvs) <= claimed


def test_every_claim_a_pod_mounts_exists(scenario):
    name, values, objs = scenario
    storage = values.get("storage", {})
    ours = {pvc["metadata"]["name"] for pvc in chart.by_kind(objs, "PersistentVolumeClaim")}
    theirs = {storage.get("existingClaim"), storage.get("condaStoreExistingClaim")} - {None, ""}
    if storage.get("type") == "existing-claim":
        assert not ours & theirs
    missing = _claims_used_by_pods(objs) - ours - theirs
    assert not missing, f"{name}: pods mount claims nobody makes: {missing}"


def test_storage_matches_its_type(scenario):
    name, values, objs = scenario
    storage_type = values.get("storage", {}).get("type", "nfs-server")
    pvs = chart.by_kind(objs, "PersistentVolume")
    rwx = [c for c in chart.by_kind(objs, "PersistentVolumeClaim") if c["spec"]["accessModes"] == ["ReadWriteMany"]]
    has_nfs = any(o["kind"] == "StatefulSet" and o["metadata"]["name"] == "nfs-server" for o in objs)
    assert has_nfs is (storage_type == "nfs-server")
    if storage_type == "nfs-server":
        ip = values["storage"]["nfsServer"]["clusterIP"]
        assert pvs and all(pv["spec"]["nfs"]["server"] == ip for pv in pvs)
        assert chart.find(objs, "Service", "nfs-server")["spec"]["clusterIP"] == ip
        # the NFS server's init container creates every folder a PersistentVolume exports
        init = chart.find(objs, "StatefulSet", "nfs-server")["spec"]["template"]["spec"]["initContainers"][0]
        for pv in pvs:
            assert f"/exports{pv['spec']['nfs']['path']}" in init["command"][-1]
    elif storage_type == "storage-class":
        assert not pvs and rwx
        assert all(c["spec"]["storageClassName"] == values["storage"]["storageClass"] for c in rwx)
    else:
        assert not pvs and not rwx


def test_persistent_data_outlives_uninstall(scenario):
    _, _, objs = scenario
    for pvc in chart.by_kind(objs, "PersistentVolumeClaim"):
        assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


# --- conda-store ------------------------------------------------------------------------------------


def test_conda_store_pod(scenario):
    name, values, objs = scenario
    config = qhub_of(values)
    deployments = {d["metadata"]["name"]: d for d in chart.by_kind(objs, "Deployment")}
    if not (config.conda_store.enabled and not config.conda_store.url):
        assert "conda-store" not in deployments
        return
    pod = deployments["conda-store"]["spec"]["template"]
    spec = pod["spec"]
    root = config.conda_store.environments_root
    init = spec["initContainers"][0]
    assert init["securityContext"]["runAsUser"] == 0  # NFS ignores fsGroup: chown once, as root
    assert "/environments" in init["command"][-1]
    assert [c["name"] for c in spec["containers"]] == ["server", "worker"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    for container in spec["containers"]:
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert mounts["environments"] == root  # same path as in user servers: prefixes are baked in
        assert mounts["qhub-config"] == "/etc/qhub/config"
        env = {e["name"]: e for e in container["env"]}
        assert env["QHUB_CONFIG"]["value"] == "/etc/qhub/config/qhub-config.yaml"
        assert env["CONDA_STORE_URL_PREFIX"]["value"] == "/services/conda-store"
        assert env["CONDA_STORE_OAUTH_CLIENT_SECRET"]["valueFrom"]["secretKeyRef"] == {
            "name": "hub", "key": "hub.services.conda-store.apiToken"}
        callback = env["CONDA_STORE_OAUTH_CALLBACK_URL"]["value"]
        assert callback == values.get("publicUrl", "") + "/services/conda-store/oauth_callback"
    assert volumes["qhub-config"]["secret"]["secretName"] == "qhub-config"
    # the hub registers the same redirect URI, or JupyterHub refuses the login
    settings = json.loads(chart.find(objs, "ConfigMap", "qhub-hub-settings")["data"]["settings.json"])
    assert settings["conda_store"]["oauth_redirect_uri"] == callback
    assert spec["securityContext"]["runAsUser"] == values.get("condaStore", {}).get("uid", 1000)


def test_conda_store_extra_config_is_shipped_only_when_given(scenario):
    name, values, objs = scenario
    extra = values.get("condaStore", {}).get("extraConfig", "")
    try:
        config_map = chart.find(objs, "ConfigMap", "conda-store")
    except AssertionError:
        return
    assert config_map["data"].get("extra_config.py", "") == extra


# --- the Dask Gateway API ---------------------------------------------------------------------------


def test_gateway_api_stands_in_for_the_charts_own(scenario):
    name, values, objs = scenario
    deployments = {d["metadata"]["name"]: d for d in chart.by_kind(objs, "Deployment")}
    if not subchart_enabled(values, "dask-gateway"):
        assert "qhub-dask-gateway-api" not in deployments
        return
    pod = deployments["qhub-dask-gateway-api"]["spec"]["template"]
    labels = pod["metadata"]["labels"]
    # what the dask-gateway chart's api Service selects
    assert chart.selects(UPSTREAM_OBJECTS["Service/api-qhub-dask-gateway"]["selector"](chart.RELEASE), labels)
    spec = pod["spec"]
    assert spec["serviceAccountName"] == "api-qhub-dask-gateway"
    container = spec["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["JUPYTERHUB_API_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "hub", "key": "hub.services.dask-gateway.apiToken"}
    assert env["QHUB_LAB_IMAGE"]["value"] == "quay.io/qhub-hub/lab:0.1.0"
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    config = qhub_of(values)
    assert mounts["environments"]["mountPath"] == config.conda_store.environments_root
    assert mounts["environments"]["readOnly"] is True
    assert mounts["chart-config"]["mountPath"] == "/etc/dask-gateway"
    assert container["args"] == ["dask-gateway-server", "--config", "/etc/qhub/gateway/dask_gateway_config.py"]


def test_dask_kubernetes_mode(scenario):
    name, values, objs = scenario
    enabled = values.get("daskKubernetes", {}).get("enabled", False)
    names = {(o["kind"], o["metadata"]["name"]) for o in objs}
    assert (("ServiceAccount", "dask-kubernetes") in names) is enabled
    if not enabled:
        return
    namespace = values["daskKubernetes"].get("namespace") or chart.NAMESPACE
    role = chart.find(objs, "Role", "dask-kubernetes")
    binding = chart.find(objs, "RoleBinding", "dask-kubernetes")
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == namespace
    assert binding["roleRef"]["name"] == "dask-kubernetes"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "dask-kubernetes", "namespace": chart.NAMESPACE}]
    verbs = {v for rule in role["rules"] for v in rule["verbs"]}
    assert "create" in verbs
    # never a wildcard, never secrets or the claims of that namespace
    resources = {r for rule in role["rules"] for r in rule["resources"]}
    assert "*" not in resources | verbs and not {"secrets", "persistentvolumeclaims"} & resources
    settings = json.loads(chart.find(objs, "ConfigMap", "qhub-hub-settings")["data"]["settings.json"])
    assert settings["dask_kubernetes"] == {"enabled": True, "service_account": "dask-kubernetes",
                                           "namespace": namespace}


# --- SSH / SFTP -------------------------------------------------------------------------------------


def test_shell_access(scenario):
    name, values, objs = scenario
    config = qhub_of(values)
    deployments = {d["metadata"]["name"]: d for d in chart.by_kind(objs, "Deployment")}
    assert ("jupyterhub-ssh" in deployments) is config.ssh.enabled
    if not config.ssh.enabled:
        return
    assert chart.find(objs, "Service", "jupyterhub-ssh")["spec"]["ports"][0]["port"] == config.ssh.port
    sftp = deployments["jupyterhub-sftp"]["spec"]["template"]["spec"]
    # accounts come from the hub's plans at run time (files/sftp/accounts.py), not from the config
    assert "initContainers" not in sftp
    assert not any(v.get("secret", {}).get("secretName") == "qhub-config" for v in sftp["volumes"])
    token = next(v for v in sftp["volumes"] if v["name"] == "hub-token")["secret"]
    assert token == {"secretName": "hub", "items": [{"key": "hub.services.sftp.apiToken", "path": "token",
                                                     "mode": 0o400}]}
    mounts = {m["mountPath"]: m for m in sftp["containers"][0]["volumeMounts"]}
    assert mounts["/etc/qhub/sftp-hub"]["name"] == "hub-token"
    assert mounts["/usr/sbin/jupyterhub-token-verify.py"]["subPath"] == "jupyterhub-token-verify.py"
    assert mounts["/etc/nsswitch.conf"]["subPath"] == "nsswitch.conf"
    assert mounts["/mnt/home"]["subPath"] == "home"
    files = chart.find(objs, "ConfigMap", "jupyterhub-sftp")["data"]
    for key in ("accounts.py", "jupyterhub-token-verify.py", "start.sh", "nsswitch.conf"):
        assert files[key] == (chart.CHART / "files" / "sftp" / key).read_text()
    assert "ato" not in files["nsswitch.conf"]  # no catch-all account mapping
    assert chart.find(objs, "Secret", "jupyterhub-sftp")["stringData"]["hostKey"] == chart.PINNED_SECRETS["sftpHostKey"]
    ssh_values = yaml.safe_load(chart.find(objs, "Secret", "jupyterhub-ssh")["stringData"]["values.yaml"])
    assert ssh_values == {"hubUrl": "http://proxy-public"}


# --- references --------------------------------------------------------------------------------------


def _refs(pod: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    """(kind, name, key) of every Secret/ConfigMap a pod template refers to (key None: whole)."""
    out = []
    for volume in pod["spec"].get("volumes", []):
        for kind, source, name_key in (("Secret", "secret", "secretName"), ("ConfigMap", "configMap", "name")):
            if source in volume:  # the keys it picks (items), or the whole object
                keys = [item["key"] for item in volume[source].get("items", [])] or [None]
                out += [(kind, volume[source][name_key], key) for key in keys]
    for container in chart.containers(pod):
        for mount in container.get("volumeMounts", []):
            if "subPath" in mount:
                volume = next(v for v in pod["spec"]["volumes"] if v["name"] == mount["name"])
                if "configMap" in volume:
                    out.append(("ConfigMap", volume["configMap"]["name"], mount["subPath"]))
        for env in container.get("env", []):
            source = env.get("valueFrom", {})
            if "secretKeyRef" in source:
                out.append(("Secret", source["secretKeyRef"]["name"], source["secretKeyRef"]["key"]))
            if "configMapKeyRef" in source:
                out.append(("ConfigMap", source["configMapKeyRef"]["name"], source["configMapKeyRef"]["key"]))
    return out


def _keys(obj: dict[str, Any]) -> set[str]:
    return set(obj.get("data") or {}) | set(obj.get("stringData") or {})


def test_every_secret_and_configmap_reference_resolves(scenario):
    """A pod that names a Secret/ConfigMap key that is not there never starts."""
    name, values, objs = scenario
    ours = {(o["kind"], o["metadata"]["name"]): o for o in objs if o["kind"] in ("Secret", "ConfigMap")}
    hub_services = set(chart.merge(yaml.safe_load((chart.CHART / "values.yaml").read_text()), values)
                       ["jupyterhub"]["hub"]["services"])
    for _, pod in chart.pod_templates(objs):
        for kind, ref_name, key in _refs(pod):
            if (kind, ref_name) in ours:
                assert key is None or key in _keys(ours[(kind, ref_name)]), (name, kind, ref_name, key)
            elif (kind, ref_name) == ("Secret", "hub"):
                # zero-to-jupyterhub writes hub.services.<name>.apiToken for each hub.services entry
                service = key.removeprefix("hub.services.").removesuffix(".apiToken")
                assert key.startswith("hub.services.") and service in hub_services, (name, key)
            else:
                assert f"{kind}/{ref_name}" in UPSTREAM_OBJECTS, (name, kind, ref_name)


def test_the_hub_mounts_what_the_chart_renders():
    """values.yaml's jupyterhub.hub sub-tree names our objects: they must exist under those names."""
    values = chart.scenario_values("minimal")
    objs = chart.objects(chart.render(values))
    hub = yaml.safe_load((chart.CHART / "values.yaml").read_text())["jupyterhub"]["hub"]
    for volume in hub["extraVolumes"]:
        if "secret" in volume:
            chart.find(objs, "Secret", volume["secret"]["secretName"])
        if "configMap" in volume:
            chart.find(objs, "ConfigMap", volume["configMap"]["name"])
    ref = hub["extraEnv"]["QHUB_CONDA_STORE_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert ref["key"] in _keys(chart.find(objs, "Secret", ref["name"]))
    mounts = {m["name"]: m["mountPath"] for m in hub["extraVolumeMounts"]}
    assert hub["extraEnv"]["QHUB_CONFIG"] == mounts["qhub-config"] + "/qhub-config.yaml"
    assert hub["extraEnv"]["QHUB_CHART_SETTINGS"] == mounts["qhub-hub-settings"] + "/settings.json"
    assert all("subPath" not in m for m in hub["extraVolumeMounts"])  # updated in place on upgrade


def test_services_select_their_pods(scenario):
    name, _, objs = scenario
    pods = [pod["metadata"]["labels"] for _, pod in chart.pod_templates(objs)]
    for service in chart.by_kind(objs, "Service"):
        selector = {"matchLabels": service["spec"]["selector"]}
        assert sum(chart.selects(selector, labels) for labels in pods) == 1, (name, service["metadata"]["name"])


def test_workload_selectors_match_their_templates(scenario):
    _, _, objs = scenario
    for workload, pod in chart.pod_templates(objs):
        if workload["kind"] == "Job":
            continue  # Kubernetes makes a Job's selector itself
        assert chart.selects(workload["spec"]["selector"], pod["metadata"]["labels"])


def test_pods_run_unprivileged_unless_they_must(scenario):
    """Only the NFS server (kernel nfsd) and SFTP (chroot + bind mounts) are privileged."""
    name, _, objs = scenario
    for workload, pod in chart.pod_templates(objs):
        for container in chart.containers(pod):
            privileged = container.get("securityContext", {}).get("privileged", False)
            assert privileged == (container["name"] in ("nfs-server", "sftp")), (name, container["name"])
        # the API's callers: the gateway (schedulers, workers) and the uninstall hook (stops them)
        if workload["metadata"]["name"] not in ("qhub-dask-gateway-api", "qhub-uninstall-cleanup"):
            assert pod["spec"].get("automountServiceAccountToken") is False, workload["metadata"]["name"]


# --- NetworkPolicies ----------------------------------------------------------------------------------


def _pod_label_sets(objs) -> dict[str, dict[str, str]]:
    """Labels of every pod this release can run: ours (rendered) and the sub-charts' (facts)."""
    sets = {f"{w['kind']}/{w['metadata']['name']}": pod["metadata"]["labels"] for w, pod in chart.pod_templates(objs)}
    sets.update({k: v(chart.RELEASE) for k, v in UPSTREAM_POD_LABELS.items()})
    return sets


def test_network_policies_select_the_pods_they_are_about(scenario):
    name, values, objs = scenario
    policies = chart.by_kind(objs, "NetworkPolicy")
    # a policy per pod of ours that serves something (the uninstall hook's Job serves nothing)
    assert bool(policies) == any(w["kind"] != "Job" for w, _ in chart.pod_templates(objs)), name
    pods = _pod_label_sets(objs)
    intended = {
        "conda-store": {"Deployment/conda-store"},
        "nfs-server": {"StatefulSet/nfs-server"},
        "jupyterhub-ssh": {"Deployment/jupyterhub-ssh"},
        "jupyterhub-sftp": {"Deployment/jupyterhub-sftp"},
        "qhub-dask-gateway-api": {"Deployment/qhub-dask-gateway-api"},
        "dask-gateway-clusters": {"dask-scheduler", "dask-worker"},
    }
    our_pods = {f"{w['kind']}/{w['metadata']['name']}": pod for w, pod in chart.pod_templates(objs)}
    for policy in policies:
        selected = {k for k, labels in pods.items() if chart.selects(policy["spec"]["podSelector"], labels)}
        assert selected == intended[policy["metadata"]["name"]], (name, policy["metadata"]["name"], selected)
        for rule in policy["spec"].get("ingress", []):
            for peer in rule.get("from", []):
                assert any(chart.selects(peer["podSelector"], labels) for labels in pods.values()), \
                    (name, policy["metadata"]["name"], peer)
            # named ports exist on the selected pods
            for port in rule.get("ports", []):
                if isinstance(port["port"], str):
                    for key in selected & set(our_pods):
                        names = {p.get("name") for c in our_pods[key]["spec"]["containers"] for p in c.get("ports", [])}
                        assert port["port"] in names, (name, policy["metadata"]["name"], port)


def test_conda_store_admits_hub_proxy_and_user_servers_only(scenario):
    name, values, objs = scenario
    try:
        policy = chart.find(objs, "NetworkPolicy", "conda-store")
    except AssertionError:
        return
    pods = _pod_label_sets(objs)
    admitted = {k for k, labels in pods.items()
                if any(chart.selects(peer["podSelector"], labels)
                       for rule in policy["spec"]["ingress"] for peer in rule["from"])}
    assert admitted == {"hub", "proxy", "singleuser-server"}


def test_user_servers_may_reach_conda_store_and_the_gateway_proxy():
    """zero-to-jupyterhub blocks user servers from private IPs: values.yaml opens exactly these."""
    values = yaml.safe_load((chart.CHART / "values.yaml").read_text())
    egress = values["jupyterhub"]["singleuser"]["networkPolicy"]["egress"]
    objs = chart.objects(chart.render(chart.scenario_values("gpu-profile")))
    pods = _pod_label_sets(objs)
    reached = {k for rule in egress for peer in rule["to"] for k, labels in pods.items()
               if chart.selects(peer["podSelector"], labels)}
    assert reached == {"Deployment/conda-store", "traefik"}
