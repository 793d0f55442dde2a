"""Generated secrets: made once, then read back from the cluster at every upgrade (Helm's
`lookup`, against an API server on loopback), and a pinned value always wins."""

from __future__ import annotations

import base64

import helm_python
import pytest
import yaml
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from . import chart
from .fake_kube import FakeKubeAPI

EXISTING = {
    ("qhub-secrets", "conda-store-token"): "token-from-the-first-install",
    ("qhub-secrets", "conda-store-jwt-secret"): "jwt-from-the-first-install",
    ("jupyterhub-ssh", "hostKey"): "ssh-key-from-the-first-install",
    ("jupyterhub-sftp", "hostKey"): "sftp-key-from-the-first-install",
    ("qhub-prometheus", "token"): "prometheus-token-from-the-first-install",
}


def secret_values(rendered) -> dict[tuple[str, str], str]:
    out = {}
    for obj in chart.objects(rendered):
        if obj["kind"] != "Secret":
            continue
        for key, value in (obj.get("data") or {}).items():
            out[(obj["metadata"]["name"], key)] = base64.b64decode(value).decode()
        for key, value in (obj.get("stringData") or {}).items():
            out[(obj["metadata"]["name"], key)] = value
    return out


def render_against(api: FakeKubeAPI, values) -> dict[str, str]:
    with helm_python.Chart.load(str(chart.CHART)) as c, \
            helm_python.Config(kubeconfig_content=api.kubeconfig, namespace=chart.NAMESPACE) as cluster:
        return cluster.render(c, values, name=chart.RELEASE, namespace=chart.NAMESPACE, is_upgrade=True)


@pytest.fixture
def unpinned():
    return chart.scenario_values("minimal", pinned=False)


def test_an_upgrade_keeps_the_secrets_of_the_first_install(unpinned):
    with FakeKubeAPI() as api:
        for name in {n for n, _ in EXISTING}:
            api.add_secret(chart.NAMESPACE, name, {k: v for (n, k), v in EXISTING.items() if n == name})
        first = render_against(api, unpinned)
        second = render_against(api, unpinned)
        asked = {path.split("?")[0] for path in api.requests}
    values = secret_values(first)
    for key, value in EXISTING.items():
        assert values[key] == value, key
    assert first == second  # nothing random left
    assert {f"/api/v1/namespaces/{chart.NAMESPACE}/secrets/{name}" for name, _ in EXISTING} <= asked


def test_a_first_install_generates_them(unpinned):
    with FakeKubeAPI() as api:
        one = secret_values(render_against(api, unpinned))
        two = secret_values(render_against(api, unpinned))
    for key in EXISTING:
        assert one[key] != two[key], f"{key} must be random on a first install"
    for name in ("jupyterhub-ssh", "jupyterhub-sftp"):
        key = load_pem_private_key(one[(name, "hostKey")].encode(), password=None)
        assert key.key_size >= 2048
    token = one[("qhub-secrets", "conda-store-token")]
    assert len(token) == 64 and token.isalnum()


def test_a_pinned_secret_wins_over_the_cluster(unpinned):
    values = chart.merge(unpinned, {"secrets": {"condaStoreToken": "pinned-token"}})
    with FakeKubeAPI() as api:
        api.add_secret(chart.NAMESPACE, "qhub-secrets", {"conda-store-token": "in-the-cluster"})
        rendered = secret_values(render_against(api, values))
    assert rendered[("qhub-secrets", "conda-store-token")] == "pinned-token"


def test_the_secrets_go_with_the_release():
    """Kept across upgrades (lookup), removed by `helm uninstall`: only data claims outlive a
    release (tests/cluster shows it); a reinstall generates new ones, consistent with each other."""
    objs = chart.objects(chart.render(chart.scenario_values("minimal")))
    secret = chart.find(objs, "Secret", "qhub-secrets")
    assert "helm.sh/resource-policy" not in secret["metadata"].get("annotations", {})
    values = yaml.safe_load((chart.CHART / "values.yaml").read_text())
    assert values["secrets"] == {"condaStoreToken": "", "condaStoreJwtSecret": "", "sshHostKey": "", "sftpHostKey": "",
                                 "prometheusToken": ""}
