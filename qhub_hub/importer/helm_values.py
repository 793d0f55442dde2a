"""Helm values for `helm/qhub` from what both generations say about the chart's concerns:
the domain and its certificate, storage sizes, a team's own lab image, JupyterLab's kernel and
terminal culling and default settings. The qhub config itself goes under `qhub:`, so the file
is ready for `helm install qhub helm/qhub -f values.yaml`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .images import split_image
from .report import Report

# Where the lab image (miniforge, prefix /opt/conda) reads JupyterLab's admin defaults and one
# more jupyter_server config file; /etc/jupyter/jupyter_server_config.py is the image's own.
LAB_OVERRIDES = "/opt/conda/share/jupyter/lab/settings/overrides.json"
SERVER_CONFIG = "/usr/local/etc/jupyter/jupyter_server_config.json"


def put(values: dict[str, Any], dotted: str, value: Any) -> None:
    node = values
    *parents, last = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value


def domain(report: Report, values: dict[str, Any], data: Mapping[str, Any]) -> str | None:
    """`domain` and `certificate` -> publicUrl and z2jh's proxy.https; returns the domain."""
    name = data.get("domain")
    if "domain" in data:
        if isinstance(name, str) and name:
            put(values, "publicUrl", f"https://{name}")
            report.mapped(("domain",), f"helm values publicUrl https://{name}; the OAuth callback URLs "
                          "use it")
        else:
            report.needs_decision(("domain",), "empty: set publicUrl in the Helm values")
            name = None
    cert = data.get("certificate")
    if "certificate" not in data:
        return name
    if not isinstance(cert, Mapping):
        report.needs_decision(("certificate",), "not a mapping; not carried over")
        return name
    kind = str(cert.get("type", "self-signed"))
    path = ("certificate",)
    if kind == "lets-encrypt" and name:
        put(values, "jupyterhub.proxy.https", {"enabled": True, "type": "letsencrypt", "hosts": [name],
                                                "letsencrypt": {}})
        if cert.get("acme_email"):
            put(values, "jupyterhub.proxy.https.letsencrypt.contactEmail", cert["acme_email"])
        if cert.get("acme_server"):
            put(values, "jupyterhub.proxy.https.letsencrypt.acmeServer", cert["acme_server"])
        report.mapped(path, "helm values jupyterhub.proxy.https (type letsencrypt, zero-to-jupyterhub's "
                      "own certificate manager)")
        for key in cert:
            if key == "acme_challenge_type":
                report.dropped((*path, key), "zero-to-jupyterhub's Let's Encrypt client answers "
                               "HTTP-01 challenges on the proxy; no DNS challenge")
            elif key in ("type", "acme_email", "acme_server"):
                report.mapped((*path, key), "jupyterhub.proxy.https.letsencrypt")
    elif kind == "existing" and name and cert.get("secret_name"):
        put(values, "jupyterhub.proxy.https", {"enabled": True, "type": "secret", "hosts": [name],
                                                "secret": {"name": cert["secret_name"]}})
        report.mapped(path, f"helm values jupyterhub.proxy.https (type secret, {cert['secret_name']}): "
                      "copy that TLS Secret into the release's namespace")
    else:
        report.needs_decision(path, f"certificate type {kind!r}" + ("" if name else " without a domain")
                              + ": give the chart's proxy a certificate (jupyterhub.proxy.https with "
                              "Let's Encrypt or a TLS secret) or terminate TLS in front of it "
                              "(proxy.https.type offload); zero-to-jupyterhub has no self-signed mode")
    return name


def storage_sizes(report: Report, values: dict[str, Any], storage: Any) -> None:
    if not isinstance(storage, Mapping):
        report.needs_decision(("storage",), "not a mapping; not carried over")
        return
    report.mapped(("storage",), "helm values storage, one by one below")
    put(values, "storage.type", "nfs-server")  # the chart's default, said explicitly: see STORAGE_NOTE
    for key, value in storage.items():
        path = ("storage", key)
        if key == "shared_filesystem":
            put(values, "storage.size", str(value))
            report.mapped(path, f"helm values storage.size {value} (homes, /shared and group folders)")
        elif key == "conda_store":
            put(values, "storage.condaStoreSize", str(value))
            report.mapped(path, f"helm values storage.condaStoreSize {value} (built environments)")
        elif key == "type":
            if value == "nfs":
                report.mapped(path, "helm values storage.type nfs-server (the chart's default; set "
                              "storage.nfsServer.clusterIP)")
            else:
                report.needs_decision(path, f"{value}: give the chart a ReadWriteMany StorageClass "
                                      "(storage.type storage-class, storage.storageClass) or an "
                                      "existing claim (storage.type existing-claim)")
        else:
            report.needs_decision(path, f"{key!r} is not a storage setting of the chart; not carried over")


def lab_image(report: Report, values: dict[str, Any], path: tuple, image: str) -> None:
    name, tag = split_image(image)
    # Dask workers run the notebook's image: the chart insists both are the same
    put(values, "jupyterhub.singleuser.image", {"name": name, "tag": tag})
    put(values, "dask-gateway.gateway.backend.image", {"name": name, "tag": tag})
    report.mapped(path, f"helm values jupyterhub.singleuser.image and dask-gateway.gateway.backend.image "
                  f"{image}: rebuild it FROM qhub-hub's lab image (images/lab), which user servers and "
                  "Dask workers need")


# Nebari's jupyterlab.idle_culler, in minutes -> jupyter_server traits, in seconds.
_CULLER = {
    "kernel_cull_idle_timeout": ("MappingKernelManager", "cull_idle_timeout", 60),
    "kernel_cull_interval": ("MappingKernelManager", "cull_interval", 60),
    "kernel_cull_connected": ("MappingKernelManager", "cull_connected", None),
    "kernel_cull_busy": ("MappingKernelManager", "cull_busy", None),
    "terminal_cull_inactive_timeout": ("TerminalManager", "cull_inactive_timeout", 60),
    "terminal_cull_interval": ("TerminalManager", "cull_interval", 60),
}


def server_culling(report: Report, values: dict[str, Any], path: tuple, culler: Mapping[str, Any]) -> None:
    server_config: dict[str, dict[str, Any]] = {}
    for key, value in culler.items():
        if key not in _CULLER:
            continue
        section, trait, factor = _CULLER[key]
        server_config.setdefault(section, {})[trait] = value * factor if factor else value
        report.mapped((*path, key), f"helm values jupyterhub.singleuser.extraFiles (jupyter_server "
                      f"{section}.{trait}{', minutes -> seconds' if factor else ''})")
    if server_config:
        put(values, "jupyterhub.singleuser.extraFiles.qhub-import-server-config",
            {"mountPath": SERVER_CONFIG, "data": server_config})


def lab_settings(report: Report, values: dict[str, Any], path: tuple, settings: Any) -> None:
    if not isinstance(settings, Mapping):
        report.needs_decision(path, "not a mapping of JupyterLab settings; not carried over")
        return
    if settings:
        put(values, "jupyterhub.singleuser.extraFiles.qhub-import-lab-overrides",
            {"mountPath": LAB_OVERRIDES, "data": dict(settings)})
    report.mapped(path, "helm values jupyterhub.singleuser.extraFiles (JupyterLab overrides.json)")


CONDA_STORE_ID = 1000  # the chart's condaStore.uid and gid (values.yaml)


def conda_store_ids(report: Report, values: dict[str, Any], config: Mapping[str, Any]) -> None:
    """QHub's first user often had uid 1000, the id the chart runs conda-store as: the user keeps
    their uid (their files have it), conda-store gets another."""
    security = config.get("security", {})
    uids = {u["uid"]: name for name, u in security.get("users", {}).items()}
    gids = {g["gid"] for g in security.get("groups", {}).values()}
    if CONDA_STORE_ID not in uids and CONDA_STORE_ID not in gids:
        return
    free = next(i for i in range(999, 99, -1) if i not in uids and i not in gids)
    put(values, "condaStore.uid", free)
    put(values, "condaStore.gid", free)
    holder = uids.get(CONDA_STORE_ID) or "a group"
    report.note(f"{holder} has id {CONDA_STORE_ID}, which the chart gives conda-store: the Helm values run "
                f"conda-store as {free}:{free} instead (condaStore.uid/gid), so the files keep their owner.")


_ORDER = ("publicUrl", "storage", "condaStore", "jupyterhub", "dask-gateway")  # as in helm/qhub/values.yaml


STORAGE_NOTE = ("Helm values: one decision the old file cannot answer is where the volume lives. To keep "
                "the users' files, bind a claim to the old volume and set storage.type existing-claim "
                "and storage.existingClaim; for a fresh NFS server set storage.nfsServer.clusterIP.")


def with_config(values: dict[str, Any], config: Mapping[str, Any]) -> dict[str, Any]:
    ordered = {key: values[key] for key in _ORDER if key in values}
    return {"qhub": dict(config), **ordered, **values}
