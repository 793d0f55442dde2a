"""Rendering and checking helm/qhub with the real Helm engine (helm-python-sdk, Helm v4).

`render(values)` loads the chart afresh from disk (`Chart.load`) and renders it offline (Helm's
`lookup` finds nothing); `objects(rendered)` parses the manifests. Validation uses the Kubernetes
OpenAPI schemas shipped in kubernetes-validate (strict: unknown fields are errors) and, for kinds
no Kubernetes version has, the openAPIV3Schema of a CustomResourceDefinition.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import helm_python
import jsonschema
import kubernetes_validate
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "qhub"
CI = CHART / "ci"
EXAMPLE_CONFIG = REPO / "examples" / "qhub-config.yaml"
NAMESPACE = "qhub-test"
RELEASE = "qhub"
# Kubernetes versions the manifests must be valid for: the oldest the chart allows (Chart.yaml
# kubeVersion) and the newest kubernetes-validate knows.
KUBE_VERSIONS = ("1.32.0", kubernetes_validate.utils.latest_version())

# Pinned generated secrets, so that renders are byte-identical.
PINNED_SECRETS = {
    "condaStoreToken": "c" * 64,
    "condaStoreJwtSecret": "j" * 64,
    "sshHostKey": "-----BEGIN RSA PRIVATE KEY-----\nssh-test-key\n-----END RSA PRIVATE KEY-----\n",
    "sftpHostKey": "-----BEGIN RSA PRIVATE KEY-----\nsftp-test-key\n-----END RSA PRIVATE KEY-----\n",
    "prometheusToken": "p" * 64,
}
MISSING_SUBCHARTS = "chart directory is missing these dependencies"


def scenarios() -> list[str]:
    return sorted(p.name.removesuffix("-values.yaml") for p in CI.glob("*-values.yaml"))


def scenario_values(name: str, *, pinned: bool = True) -> dict[str, Any]:
    values = yaml.safe_load((CI / f"{name}-values.yaml").read_text()) or {}
    if pinned:
        values = merge(values, {"secrets": PINNED_SECRETS})
    return values


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Helm-style deep merge of two values trees (override wins), without touching either."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def render(values: Mapping[str, Any], *, chart_dir: Path = CHART, release: str = RELEASE,
           namespace: str = NAMESPACE) -> dict[str, str]:
    """Template path -> rendered text, from a chart loaded afresh."""
    with helm_python.Chart.load(str(chart_dir)) as chart:
        return chart.render(dict(values), name=release, namespace=namespace, is_install=True)


def lint_problems(values: Mapping[str, Any], *, chart_dir: Path = CHART,
                  allow_missing_subcharts: bool = True) -> list[dict[str, Any]]:
    """`helm lint --strict` findings (warnings and errors), but for the absent sub-charts."""
    report = helm_python.lint(str(chart_dir), dict(values), strict=True, namespace=NAMESPACE,
                              kube_version=f"v{KUBE_VERSIONS[0]}")
    return [m for m in report["messages"]
            if m["severity"] >= 2 and not (allow_missing_subcharts and MISSING_SUBCHARTS in m["error"])]


def objects(rendered: Mapping[str, str]) -> list[dict[str, Any]]:
    """Every Kubernetes object of a render (NOTES.txt and empty documents left out)."""
    out = []
    for path in sorted(rendered):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(rendered[path]):
            if doc:
                doc["_template"] = path
                out.append(doc)
    return out


def strip(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The object as Kubernetes gets it (without the `_template` note added by `objects`)."""
    return {k: v for k, v in obj.items() if k != "_template"}


def find(objs: Iterable[Mapping[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def by_kind(objs: Iterable[Mapping[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind]


# --- validation ------------------------------------------------------------------------------------


def validate_builtin(obj: Mapping[str, Any], version: str) -> None:
    """kubernetes-validate, strict; raises its ValidationError / SchemaNotFoundError."""
    kubernetes_validate.validate(strip(obj), version, strict=True)


def crd_schemas(crds: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> openAPIV3Schema of every served version of the given CRDs."""
    out = {}
    for crd in crds:
        spec = crd["spec"]
        for version in spec["versions"]:
            if version.get("served", True):
                out[(f"{spec['group']}/{version['name']}", spec["names"]["kind"])] = \
                    version["schema"]["openAPIV3Schema"]
    return out


def validate_custom(obj: Mapping[str, Any], schemas: Mapping[tuple[str, str], Mapping[str, Any]]) -> None:
    """Validate an object of a custom kind against its CRD's openAPIV3Schema.

    The apiserver prunes fields a structural schema does not declare; strictly, such a field is a
    mistake, so objects must not carry fields outside `properties` unless the schema says
    `x-kubernetes-preserve-unknown-fields` or has `additionalProperties`.
    """
    key = (obj["apiVersion"], obj["kind"])
    if key not in schemas:
        raise LookupError(f"no CustomResourceDefinition serves {key[0]} {key[1]}")
    schema = _strict(copy.deepcopy(schemas[key]))
    schema.setdefault("properties", {}).update({
        "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}})
    jsonschema.validate(strip(obj), schema, cls=jsonschema.Draft4Validator)


def _strict(schema: dict[str, Any]) -> dict[str, Any]:
    if schema.get("type") == "object" and "properties" in schema \
            and not schema.get("x-kubernetes-preserve-unknown-fields") and "additionalProperties" not in schema:
        schema["additionalProperties"] = False
    for key, value in list(schema.items()):
        if key == "properties":
            for sub in value.values():
                _strict(sub)
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            _strict(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            for sub in value:
                _strict(sub)
    return schema


def validate_all(objs: Iterable[Mapping[str, Any]], crds: Iterable[Mapping[str, Any]] = ()) -> int:
    """Validate every object for every KUBE_VERSIONS; return how many validations passed."""
    schemas = crd_schemas(crds)
    count = 0
    for obj in objs:
        for version in KUBE_VERSIONS:
            try:
                validate_builtin(obj, version)
            except kubernetes_validate.utils.SchemaNotFoundError:
                validate_custom(obj, schemas)  # not a built-in kind: its CRD must say
            count += 1
    return count


# --- pods ------------------------------------------------------------------------------------------


def pod_templates(objs: Iterable[Mapping[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(workload, pod template) of every Deployment, StatefulSet, DaemonSet and Job."""
    for obj in objs:
        if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            yield obj, obj["spec"]["template"]


def containers(pod: Mapping[str, Any]) -> list[dict[str, Any]]:
    spec = pod["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Does a Kubernetes LabelSelector (matchLabels + matchExpressions) select these labels?"""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True
