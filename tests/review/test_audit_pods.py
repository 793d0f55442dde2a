"""`audit --kubernetes` on pod objects: pods built by the spawner's own builders (`qhub_hub.pod`)
from one config's plans, then a config change or a hand edit of the pod, and the findings.

No cluster runs here; the thin client adapter is checked on kubernetes_asyncio's own model objects
and for its error message when no cluster is configured.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from qhub_hub import pod as podlib
from qhub_hub.config import load_config
from qhub_hub.policy import plan_for
from qhub_hub.review.pod_audit import audit_pods
from qhub_hub.server_env import server_environment

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = yaml.safe_load((REPO / "examples" / "qhub-config.yaml").read_text())
EXAMPLE["security"]["authentication"] = {"type": "GitHub"}  # identity-provider users exist
EXAMPLE["security"]["identity_provider_groups"] = {"acme:ml": "ml"}
QHUB = str(Path(sys.executable).parent / "qhub-hub")


def user_pod(config, username, idp_groups=(), dynamic_uid=None):
    """The plan-owned parts of a user pod, as the spawner builds them, in API (camelCase) form."""
    plan = plan_for(config, username, idp_groups, dynamic_uid=dynamic_uid)
    env = {**server_environment(config, plan), **podlib.identity_environment(plan, "libnss_wrapper.so")}
    return {
        "metadata": {"name": f"jupyter-{plan.unix_name}", "labels": {"component": "singleuser-server"},
                     "annotations": {"hub.jupyter.org/username": username}},
        "spec": {
            "securityContext": podlib.pod_security_context(plan),
            "initContainers": [podlib.init_container(plan, "busybox:1.36.1")],
            "containers": [{
                "name": "notebook", "image": "lab",
                "securityContext": podlib.container_security_context(plan),
                "env": [{"name": k, "value": v} for k, v in env.items()],
                "volumeMounts": [*podlib.volume_mounts(plan, config, conda_store=True),
                                 {"name": "admin-data", "mountPath": "/data", "readOnly": True}],
            }],
            "volumes": podlib.volumes("qhub-storage", "qhub-conda-store"),
        },
    }


def config_with(fn):
    data = copy.deepcopy(EXAMPLE)
    fn(data)
    return load_config(data)


BASE = load_config(copy.deepcopy(EXAMPLE))
PODS = [user_pod(BASE, name) for name in BASE.security.users] + [
    user_pod(BASE, "octocat", ["acme:ml"], dynamic_uid=200_123)]


def users(d):
    return d["security"]["users"]


def findings(report):
    return sorted((f.kind, f.subject, f.message) for f in report.findings)


def test_pods_matching_their_plans_have_no_findings():
    report = audit_pods(BASE, PODS)
    assert report.checked == {"pods": 7} and report.findings == []


CONFIG_CHANGES = [
    ("bob leaves analysts",
     lambda d: users(d)["bob"].update(secondary_groups=[]),
     [("pod_security_context", "pod jupyter-bob (bob)",
       "supplementalGroups is [2001], the plan gives []"),
      ("pod_mounts", "pod jupyter-bob (bob)",
       "mounts /home/conda/analysts, which the plan no longer gives; mounts /shared/analysts, which the "
       "plan no longer gives")]),
    ("erin's analysts membership becomes read-write",
     lambda d: users(d)["erin"].update(secondary_groups=["finance", "analysts"], readonly_groups=[]),
     [("pod_mounts", "pod jupyter-erin (erin)",
       "mounts /shared/analysts read-only, the plan says read-write")]),
    ("dave's uid renumbered",
     lambda d: users(d)["dave"].update(uid=3014),
     [("pod_security_context", "pod jupyter-dave (dave)",
       "runAsUser is 3004, the plan gives 3014; container runAsUser is 3004, the plan gives 3014")]),
    ("frank removed from the config",
     lambda d: users(d).pop("frank"),
     [("pod_unexplained", "pod jupyter-frank (frank)",
       "'frank' may not log in under the current config, but the server still runs")]),
    ("the identity-provider mapping removed",
     lambda d: d["security"].pop("identity_provider_groups"),
     [("pod_unexplained", "pod jupyter-octocat (octocat)",
       "'octocat' may not log in under the current config, but the server still runs")]),
    ("the identity-provider mapping becomes read-only",
     lambda d: d["security"].update(identity_provider_groups={"acme:ml": {"group": "ml", "readonly": True}}),
     [("pod_mounts", "pod jupyter-octocat (octocat)", "mounts /shared/ml read-write, the plan says read-only")]),
    ("a change that touches no running pod", lambda d: d["cull"].update(server_idle_timeout=60), []),
]


@pytest.mark.parametrize(("case", "change", "expected"), CONFIG_CHANGES, ids=[c[0] for c in CONFIG_CHANGES])
def test_config_change_while_pods_run(case, change, expected):
    assert findings(audit_pods(config_with(change), PODS)) == sorted(expected)


def _edit_pod(name, fn):
    pods = copy.deepcopy(PODS)
    pod = next(p for p in pods if p["metadata"]["name"] == name)
    fn(pod)
    return pods


def _container(pod):
    return pod["spec"]["containers"][0]


POD_EDITS = [
    ("runAsUser changed", "jupyter-alice", lambda p: p["spec"]["securityContext"].update(runAsUser=0),
     [("pod_security_context", "runAsUser is 0, the plan gives 3001")]),
    ("privilege escalation allowed", "jupyter-bob",
     lambda p: _container(p)["securityContext"].update(allowPrivilegeEscalation=True),
     [("pod_security_context", "container allowPrivilegeEscalation is True, the plan gives False")]),
    ("another group's folder mounted", "jupyter-frank",
     lambda p: _container(p)["volumeMounts"].append(
         {"name": "qhub-storage", "mountPath": "/shared/finance", "subPath": "shared/finance"}),
     [("pod_mounts", "mounts /shared/finance, which the plan no longer gives")]),
    ("a read-only mount made writable", "jupyter-erin",
     lambda p: next(m for m in _container(p)["volumeMounts"] if m["mountPath"] == "/shared/analysts").pop("readOnly"),
     [("pod_mounts", "mounts /shared/analysts read-write, the plan says read-only")]),
    ("home mount removed", "jupyter-carol",
     lambda p: _container(p)["volumeMounts"].pop(0),
     [("pod_mounts", "lacks /home/carol, which the plan gives")]),
    ("supplemental groups reordered (same set)", "jupyter-carol",
     lambda p: p["spec"]["securityContext"]["supplementalGroups"].reverse(), []),
    ("an admin's extra mount changed", "jupyter-dave",
     lambda p: _container(p)["volumeMounts"][-1].update(mountPath="/data2"), []),
    ("no username", "jupyter-dave",
     lambda p: (p["metadata"].pop("annotations"), _container(p).pop("env")),
     [("pod_unexplained", "has no hub.jupyter.org/username annotation and no QHUB_USER: not a server "
                          "qhub-hub started")]),
]


@pytest.mark.parametrize(("case", "name", "edit", "expected"), POD_EDITS, ids=[e[0] for e in POD_EDITS])
def test_pod_edited_by_hand(case, name, edit, expected):
    report = audit_pods(BASE, _edit_pod(name, edit))
    assert sorted((f.kind, f.message) for f in report.findings) == sorted(expected)
    assert all(f.subject.startswith(f"pod {name}") for f in report.findings)
    assert all("restart" in f.action or "check" in f.action or "stop" in f.action for f in report.findings)


async def test_client_adapter_returns_api_json():
    """Pod dicts through kubernetes_asyncio's own models and back: the audit reads what the API sends."""
    from kubernetes_asyncio import client

    from qhub_hub.review.kube import pods_as_dicts

    api = client.ApiClient()  # never connects: only its (de)serialisation is used

    class Response:  # what ApiClient.deserialize reads
        def __init__(self, data):
            import json
            self.data = json.dumps(data)

    models = [api.deserialize(Response(pod), "V1Pod") for pod in PODS]
    assert [m.spec.security_context.run_as_user for m in models][:2] == [3001, 3002]
    back = pods_as_dicts(api, models)
    assert audit_pods(BASE, back).findings == []
    changed = config_with(lambda d: users(d)["bob"].update(secondary_groups=[]))
    assert {f.subject for f in audit_pods(changed, back).findings} == {"pod jupyter-bob (bob)"}
    await api.close()


def test_cli_without_a_cluster(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(EXAMPLE))
    env = {"PATH": "/usr/bin:/bin", "KUBECONFIG": str(tmp_path / "none"), "HOME": str(tmp_path)}
    result = subprocess.run([QHUB, "audit", "--kubernetes", "--config", str(config)], capture_output=True,
                            text=True, env=env, timeout=120)
    assert result.returncode == 2
    assert "no Kubernetes cluster configured" in result.stderr and "Traceback" not in result.stderr
    result = subprocess.run([QHUB, "audit", "--kubernetes", "--fix", "--config", str(config)],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 2 and "--fix is for the embedded mode" in result.stderr


def test_plans_from_the_hub_know_identity_provider_groups():
    """carol's identity provider adds her to analysts. From the config alone the audit cannot know
    it and reports her pod (too much, never too little); with the hub's plans it is exact."""
    idp_groups = {"carol": ["analysts"]}
    pods = [user_pod(BASE, "carol", idp_groups["carol"]), user_pod(BASE, "dave")]
    alone = audit_pods(BASE, pods)
    assert [(f.kind, f.subject) for f in alone.findings] == [
        ("pod_security_context", "pod jupyter-carol (carol)"), ("pod_mounts", "pod jupyter-carol (carol)")]
    assert alone.notes and "identity-provider groups are not known" in alone.notes[0]

    def hub(username):  # what GET /hub/api/qhub/plans/<name> answers: the hub's plan_for
        return plan_for(BASE, username, idp_groups.get(username, ()))

    assert audit_pods(BASE, pods, plan_lookup=hub).findings == []
    assert audit_pods(BASE, pods, plan_lookup=hub).notes == []
    # the hub has no such user, or says they may not log in: the pod is unexplained
    gone = audit_pods(BASE, pods, plan_lookup=lambda u: None if u == "dave" else hub(u))
    assert [(f.kind, f.subject) for f in gone.findings] == [("pod_unexplained", "pod jupyter-dave (dave)")]


def test_hub_api_url_needs_a_token(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(EXAMPLE))
    result = subprocess.run([QHUB, "audit", "--kubernetes", "--config", str(config), "--hub-api-url",
                             "http://127.0.0.1:9/hub/api"], capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert result.returncode == 2 and "needs a hub API token in $JUPYTERHUB_API_TOKEN" in result.stderr


def test_cli_with_an_unreachable_cluster(tmp_path):
    """A kubeconfig naming a cluster that does not answer: the adapter reaches the API call and
    fails with a message, never a traceback."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "k", "cluster": {"server": "http://127.0.0.1:9"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u", "namespace": "hub"}}]}))
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(EXAMPLE))
    result = subprocess.run([QHUB, "audit", "--kubernetes", "--config", str(config)], capture_output=True,
                            text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "KUBECONFIG": str(kubeconfig), "HOME": str(tmp_path)})
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("error: cannot list the user pods:") and "Traceback" not in result.stderr
