"""Sections of both generations that belong to their Terraform and cloud layer, or to services
qhub-hub does not run: each with the reason the report gives."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .report import Report

_CLOUD = ("their Terraform/cloud layer: qhub-hub installs into a Kubernetes cluster you already "
          "have (helm install), or onto one machine (qhub-hub local up)")

INFRASTRUCTURE = {
    "provider": _CLOUD,
    "local": _CLOUD,
    "existing": _CLOUD,
    "digital_ocean": _CLOUD,
    "google_cloud_platform": _CLOUD,
    "amazon_web_services": _CLOUD,
    "azure": _CLOUD,
    "terraform_state": "their Terraform state; qhub-hub has none (Helm keeps a release's state)",
    "terraform_modules": "their Terraform modules; unused since QHub 0.3",
    "tf_extensions": "their Terraform extensions",
    "ci_cd": "their GitOps pipeline running `qhub deploy`/`nebari deploy`; run `qhub-hub validate` "
             "and `helm upgrade` from yours",
    "namespace": "the Kubernetes namespace: `helm install --namespace <it>`",
    "external_container_reg": "their ECR credentials: give the cluster image pull secrets instead",
    "dns": "their DNS automation (Cloudflare); point your DNS name at the chart's proxy Service",
    "ingress": "their Traefik ingress settings; the chart's proxy (or your ingress) serves the hub",
    "ceph": "their Rook-Ceph storage; give the chart a ReadWriteMany claim (storage.type)",
    "prevent_deploy": "a guard of `nebari deploy`",
    "nebari_version": "the Nebari release that wrote the file",
    "qhub_version": "the QHub release that wrote the file",
}

NOT_OURS = {
    "theme": "qhub-hub has no hub theme; the JupyterHub pages are stock (z2jh `hub.extraFiles` "
             "can replace templates)",
    "monitoring": "Prometheus/Grafana/Loki: install their charts next to qhub-hub",
    "prefect": "Prefect is not part of qhub-hub; install its chart separately",
    "clearml": "ClearML is not part of qhub-hub; install its chart separately",
    "kbatch": "kbatch is not part of qhub-hub",
    "cdsdashboards": "cdsdashboards (JupyterHub 1 only) has no successor in qhub-hub",
    "argo_workflows": "Argo Workflows is not part of qhub-hub; install its chart separately",
    "jhub_apps": "jhub-apps (the app launcher) is not part of qhub-hub",
    "telemetry": "JupyterLab Pioneer telemetry is not part of qhub-hub",
    "helm_extensions": "extra Helm releases: install them with helm next to qhub-hub",
}


def drop_known_sections(report: Report, data: Mapping[str, Any]) -> None:
    for key in data:
        if key in INFRASTRUCTURE:
            report.dropped((key,), INFRASTRUCTURE[key])
        elif key in NOT_OURS:
            report.dropped((key,), NOT_OURS[key])
