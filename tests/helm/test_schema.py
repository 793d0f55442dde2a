"""values.schema.json: its `qhub` part is the config model's schema (one source of truth), and
the chart refuses typos, in the qhub config and in our own sections, before rendering anything."""

from __future__ import annotations

import importlib.util
import json

import helm_python
import jsonschema
import pytest
import yaml

from qhub_hub.config import ConfigError, load_config

from . import chart

SCHEMA_FILE = chart.CHART / "values.schema.json"


def _generator():
    spec = importlib.util.spec_from_file_location("gen_chart_schema", chart.REPO / "scripts" / "gen_chart_schema.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_schema_file_is_what_the_config_model_says():
    """Fails when qhub_hub.config changes and the chart's schema was not regenerated."""
    gen = _generator()
    current = SCHEMA_FILE.read_text()
    assert gen.render(gen.updated_schema(json.loads(current))) == current, \
        "run: python scripts/gen_chart_schema.py"


def test_generator_check_mode_detects_drift(tmp_path):
    gen = _generator()
    stale = json.loads(SCHEMA_FILE.read_text())
    stale["$defs"]["Cull"]["properties"].pop("every")
    path = tmp_path / "values.schema.json"
    path.write_text(gen.render(stale))
    assert gen.main(["--check", "--file", str(path)]) == 1
    assert gen.main(["--file", str(path)]) == 0
    assert path.read_text() == SCHEMA_FILE.read_text()


# --- the qhub part accepts what load_config accepts, and refuses what it refuses ---------------------

EXAMPLE = yaml.safe_load(chart.EXAMPLE_CONFIG.read_text())


def _with(path: str, value):
    """The example config with `value` set at dotted `path` (list indexes as numbers)."""
    config = chart.merge(EXAMPLE, {})
    *parents, last = path.split(".")
    node = config
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return config


ACCEPTED = [
    ("the example", EXAMPLE),
    ("empty", {}),
    ("QHub's GitHub spelling", {"security": {"authentication": {"type": "GitHub"}}}),
    ("lower-case github", {"security": {"authentication": {"type": "github"}}}),
    ("keycloak means OIDC", {"security": {"authentication": {"type": "Keycloak", "config": {
        "authorize_url": "https://k/a", "token_url": "https://k/t", "userdata_url": "https://k/u"}}}}),
    ("auth0", {"security": {"authentication": {"type": "auth0", "config": {"auth0_subdomain": "acme"}}}}),
    ("octal modes as strings", _with("storage", {"home_mode": "0700", "group_mode": "2770"})),
    ("idp group as a mapping", _with("security.identity_provider_groups", {"acme:ml": {"group": "ml",
                                                                                         "readonly": True}})),
]

REFUSED = [
    ("unknown top-level section", _with("securty", {})),
    ("typo in security", _with("security.user", {})),
    ("typo in a user", _with("security.users.alice.uidd", 3001)),
    ("typo in a profile override", _with("profiles.jupyterlab.0.kubespawner_overide", {})),
    ("typo in a dask worker profile", _with("profiles.dask_worker.Small Worker.worker_core", 1)),
    ("typo in storage", _with("storage.home_mod", "0700")),
    ("typo in cull", _with("cull.server_idle_timout", 60)),
    ("typo in an environment", _with("environments.environment-dask.yaml.channel", ["conda-forge"])),
    ("unknown auth type", {"security": {"authentication": {"type": "ldap"}}}),
    ("wrong type", _with("security.users.alice.uid", "three thousand")),
    ("missing required", _with("security.users.zed", {"uid": 4000})),
]


def _qhub_validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SCHEMA_FILE.read_text())
    return jsonschema.Draft7Validator({**schema["properties"]["qhub"], "$defs": schema["$defs"]})


@pytest.mark.parametrize("case,config", ACCEPTED, ids=[c for c, _ in ACCEPTED])
def test_schema_accepts_what_the_model_accepts(case, config):
    load_config(config)
    assert not list(_qhub_validator().iter_errors(config)), case
    with helm_python.Chart.load(str(chart.CHART)) as c:  # the real Helm engine's validator
        c.validate_schema(chart.merge(chart.scenario_values("minimal"), {"qhub": config}))


@pytest.mark.parametrize("case,config", REFUSED, ids=[c for c, _ in REFUSED])
def test_schema_refuses_what_the_model_refuses(case, config):
    with pytest.raises(ConfigError):
        load_config(config)
    values = chart.scenario_values("minimal")
    values["qhub"] = config
    with pytest.raises(helm_python.HelmValuesError) as info:
        chart.render(values)
    assert "at '/qhub" in str(info.value)  # the message names where in the config


# --- our own sections ---------------------------------------------------------------------------------

OUR_TYPOS = [
    ("top-level", {"qhubb": {}}),
    ("storage", {"storage": {"typ": "nfs-server"}}),
    ("storage type", {"storage": {"type": "nfs"}}),
    ("nfs server", {"storage": {"nfsServer": {"clusterIp": "10.0.0.1"}}}),
    ("conda-store image", {"condaStore": {"image": {"name": "x", "tagg": "1"}}}),
    ("ssh service", {"shellAccess": {"ssh": {"service": {"typ": "LoadBalancer"}}}}),
    ("ssh service type", {"shellAccess": {"ssh": {"service": {"type": "Ingress"}}}}),
    ("secrets", {"secrets": {"sshHostKeys": "x"}}),
    ("dask-kubernetes", {"daskKubernetes": {"enable": True}}),
    ("gateway api", {"daskGatewayApi": {"mountUserStorag": False}}),
    ("public url with a slash", {"publicUrl": "https://hub.example.org/"}),
]


@pytest.mark.parametrize("case,override", OUR_TYPOS, ids=[c for c, _ in OUR_TYPOS])
def test_chart_sections_refuse_typos(case, override):
    with pytest.raises(helm_python.HelmValuesError):
        chart.render(chart.merge(chart.scenario_values("minimal"), override))


# --- values that would install something broken: refused with what to do -----------------------------

REFUSED_VALUES = [
    ("nfs-server without an address", {"storage": {"nfsServer": {"clusterIP": ""}}}, "storage.nfsServer.clusterIP"),
    ("existing-claim without a claim", {"storage": {"type": "existing-claim"}}, "storage.existingClaim"),
    ("existing-claim without conda-store's", {"storage": {"type": "existing-claim", "existingClaim": "homes"}},
     "storage.condaStoreExistingClaim"),
    ("both dask modes", {"daskKubernetes": {"enabled": True}}, "choose one way"),
    ("gateway API replicas", {"dask-gateway": {"gateway": {"replicas": 1}}}, "dask-gateway.gateway.replicas"),
    ("worker image differs", {"dask-gateway": {"gateway": {"backend": {"image": {"tag": "other"}}}}},
     "dask-gateway.gateway.backend.image"),
    ("renamed hub objects", {"jupyterhub": {"fullnameOverride": "jh"}}, "jupyterhub.fullnameOverride"),
    ("per-user claims", {"jupyterhub": {"singleuser": {"storage": {"type": "dynamic"}}}},
     "jupyterhub.singleuser.storage.type"),
    ("gateway off in the config only", {"qhub": {"dask_gateway": {"enabled": False}}}, "dask-gateway.enabled"),
    ("culling split", {"jupyterhub": {"cull": {"enabled": False}}}, "jupyterhub.cull.enabled"),
    ("hub volumes replaced", {"jupyterhub": {"hub": {"extraVolumes": [{"name": "mine", "emptyDir": {}}]}}},
     "jupyterhub.hub.extraVolumes"),
    ("hub mounts replaced",
     {"jupyterhub": {"hub": {"extraVolumeMounts": [{"name": "qhub-config", "mountPath": "/x"}]}}},
     "keep the qhub-config and qhub-hub-settings"),
    ("a user with conda-store's uid", {"qhub": {"security": {"users": {"admin": {"uid": 1000}}}}},
     "qhub.security.users.admin.uid"),
]


@pytest.mark.parametrize("case,override,message", REFUSED_VALUES, ids=[c for c, _, _ in REFUSED_VALUES])
def test_broken_values_are_refused_with_what_to_do(case, override, message):
    with pytest.raises(helm_python.HelmRenderError) as info:
        chart.render(chart.merge(chart.scenario_values("minimal"), override))
    assert message in str(info.value), str(info.value)
