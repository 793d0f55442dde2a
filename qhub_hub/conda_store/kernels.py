"""conda-store environments as Jupyter kernels, without installing anything into the server's env.

In a user's server (``jupyter_server_config.py`` or ``--ServerApp.kernel_spec_manager_class``)::

    c.ServerApp.kernel_spec_manager_class = "qhub_hub.conda_store.kernels.CondaStoreKernelSpecManager"

The spawner gives every user server ``QHUB_ENVIRONMENTS_ROOT`` and ``QHUB_ENVIRONMENT_NAMESPACES``
(see `qhub_hub.server_env`); the kernel list is the environments of exactly those namespaces found
at ``<root>/<namespace>/envs/<name>``, read from the disk each time it is asked for, so a finished
build shows up without a restart. An environment becomes a kernel when it has kernel specs of its
own (``share/jupyter/kernels/*/kernel.json``, e.g. ipykernel's or IRkernel's) or when ipykernel is
installed in it. The kernel runs the environment's own interpreter; the server's environment stays
untouched and read-only to the user.

The server's own kernels (those of its environment, e.g. ``python3``) say so too: their
``QHUB_DASK_ENVIRONMENT`` is the server's prefix, so `GatewayCluster()` from them runs its workers
in the server's environment (offered by the embedded gateway, `qhub_hub.gateway.environments`),
and from a conda-store kernel in that environment: always the environment of the kernel that asks.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyter_client.kernelspec import KernelSpec, KernelSpecManager, NoSuchKernel
from traitlets import Bool, List, Unicode, default

from ..gateway.hub_service import ENVIRONMENT_VARIABLE, kernel_environment
from .layout import EnvironmentRef, environments_in

KERNEL_SPEC_MANAGER_CLASS = "qhub_hub.conda_store.kernels.CondaStoreKernelSpecManager"
ROOT_VARIABLE = "QHUB_ENVIRONMENTS_ROOT"
NAMESPACES_VARIABLE = "QHUB_ENVIRONMENT_NAMESPACES"
_CLEAN_NAMESPACE = re.compile(r"^[a-z0-9_-]+$")
_CLEAN_NAME = re.compile(r"^[a-z0-9._-]+$")
_PYTHON_KERNEL_DIRS = ("python3", "python")


@dataclass(frozen=True)
class EnvironmentKernel:
    name: str  # the kernel name notebooks store in their metadata
    resource_dir: str  # logos and the like
    spec: dict[str, Any]  # kernel.json contents

    def kernel_spec(self) -> KernelSpec:
        return KernelSpec(resource_dir=self.resource_dir, **self.spec)


def kernel_name(namespace: str, environment: str, variant: str = "") -> str:
    """A stable kernel name for an environment: ``conda-<namespace>.<environment>[-<variant>]``.

    Names outside ``[a-z0-9._-]`` (which kernel names allow) are folded and get a short hash of
    the original, so two environments never share a kernel name.
    """
    base = f"conda-{namespace}.{environment}"
    if not (_CLEAN_NAMESPACE.match(namespace) and _CLEAN_NAME.match(environment)):
        folded = re.sub(r"[^a-z0-9_-]+", "_", namespace.lower()) + "." + re.sub(
            r"[^a-z0-9._-]+", "_", environment.lower())
        digest = hashlib.sha256(f"{namespace}/{environment}".encode()).hexdigest()[:8]
        base = f"conda-{folded}-{digest}"
    if variant:
        base += "-" + re.sub(r"[^a-z0-9._-]+", "_", variant.lower())
    return base


def has_ipykernel(prefix: Path) -> bool:
    return any(prefix.glob("lib/python3*/site-packages/ipykernel/__init__.py"))


def _interpreter(prefix: Path, program: str) -> str:
    """argv[0] of a kernel.json, resolved inside the environment (kernel.json may say 'python')."""
    if os.path.isabs(program):
        return program
    if program in ("python", "python3") or (prefix / "bin" / program).exists():
        return str(prefix / "bin" / ("python" if program in ("python", "python3") else program))
    return program


def environment_kernels(env: EnvironmentRef, display_name: str = "{environment} ({namespace})",
                        path: str | None = None) -> list[EnvironmentKernel]:
    """The kernels one environment offers (none when it has neither kernel specs nor ipykernel)."""
    title = display_name.format(environment=env.name, namespace=env.namespace)
    path = os.environ.get("PATH", "") if path is None else path
    # QHUB_DASK_ENVIRONMENT: a GatewayCluster() made from this kernel runs its workers in this env
    run_env = {"CONDA_PREFIX": str(env.prefix), "PATH": f"{env.prefix / 'bin'}:{path}".rstrip(":"),
               **kernel_environment(str(env.prefix))}
    metadata = {"conda_store": {"namespace": env.namespace, "environment": env.name,
                                "prefix": str(env.prefix)}}
    kernels: list[EnvironmentKernel] = []
    kernels_dir = env.prefix / "share" / "jupyter" / "kernels"
    for spec_file in sorted(kernels_dir.glob("*/kernel.json")):
        try:
            spec = json.loads(spec_file.read_text())
            argv = [str(a) for a in spec["argv"]]
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a broken kernel.json is the environment's problem, not the server's
        if not argv:
            continue
        variant = spec_file.parent.name
        is_python = variant in _PYTHON_KERNEL_DIRS
        kernels.append(EnvironmentKernel(
            name=kernel_name(env.namespace, env.name, "" if is_python else variant),
            resource_dir=str(spec_file.parent),
            spec={**spec,
                  "argv": [_interpreter(env.prefix, argv[0]), *argv[1:]],
                  "display_name": title if is_python else f"{title} {spec.get('display_name', variant)}",
                  "env": {**(spec.get("env") or {}), **run_env},
                  "metadata": {**(spec.get("metadata") or {}), **metadata}},
        ))
    if not any(k.name == kernel_name(env.namespace, env.name) for k in kernels) and has_ipykernel(
            env.prefix):
        kernels.append(EnvironmentKernel(
            name=kernel_name(env.namespace, env.name),
            resource_dir=str(kernels_dir / "python3"),
            spec={"argv": [str(env.python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                  "display_name": title, "language": "python", "env": run_env,
                  "metadata": metadata},
        ))
    return kernels


def jupyter_server_args(include_server_kernels: bool = True) -> list[str]:
    """Command-line options that make a user server (jupyterhub-singleuser, jupyter-lab) offer
    the conda-store kernels; the spawners add them to the server's command."""
    return [f"--ServerApp.kernel_spec_manager_class={KERNEL_SPEC_MANAGER_CLASS}",
            f"--CondaStoreKernelSpecManager.include_server_kernels={include_server_kernels}"]


class CondaStoreKernelSpecManager(KernelSpecManager):
    """Kernels for the conda-store environments of the user's namespaces."""

    environments_root = Unicode(
        config=True,
        help="Where conda-store environments are mounted: <root>/<namespace>/envs/<name>. "
        f"Default: ${ROOT_VARIABLE}, which the qhub-hub spawners set from "
        "conda_store.environments_root.",
    )
    namespaces = List(
        Unicode(),
        config=True,
        help="conda-store namespaces whose environments are offered as kernels, in order. "
        f"Default: ${NAMESPACES_VARIABLE} (comma-separated), which the qhub-hub spawners set "
        "from the user's plan: their own namespace, their groups', the global one.",
    )
    include_server_kernels = Bool(
        True,
        config=True,
        help="Also offer the kernels of the server's own environment (e.g. 'python3'). False: "
        "only conda-store environments. Default: True.",
    )
    kernel_display_name = Unicode(
        "{environment} ({namespace})",
        config=True,
        help="Display name of an environment's kernel; {environment} and {namespace} are "
        "replaced. Non-Python kernels get their own display name appended. "
        "Default: '{environment} ({namespace})'.",
    )

    @default("environments_root")
    def _default_root(self) -> str:
        return os.environ.get(ROOT_VARIABLE, "")

    @default("namespaces")
    def _default_namespaces(self) -> list[str]:
        value = os.environ.get(NAMESPACES_VARIABLE, "")
        return [ns.strip() for ns in value.split(",") if ns.strip()]

    _warned = False

    def environments(self) -> list[EnvironmentRef]:
        if not self.environments_root or not self.namespaces:
            if not self._warned:
                self._warned = True
                self.log.warning(
                    "No conda-store kernels: set $%s and $%s (the qhub-hub spawners do) or "
                    "CondaStoreKernelSpecManager.environments_root and .namespaces",
                    ROOT_VARIABLE, NAMESPACES_VARIABLE)
            return []
        return environments_in(self.environments_root, self.namespaces)

    def environment_kernels(self) -> dict[str, EnvironmentKernel]:
        kernels: dict[str, EnvironmentKernel] = {}
        for env in self.environments():
            for kernel in environment_kernels(env, self.kernel_display_name):
                kernels.setdefault(kernel.name, kernel)
        return kernels

    def _server_kernel_names(self) -> dict[str, str]:
        return super().find_kernel_specs() if self.include_server_kernels else {}

    def find_kernel_specs(self) -> dict[str, str]:
        found = self._server_kernel_names()
        for name, kernel in self.environment_kernels().items():
            found.setdefault(name, kernel.resource_dir)
        return found

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        kernel = self.environment_kernels().get(kernel_name.lower())
        if kernel is not None and kernel_name.lower() not in self._server_kernel_names():
            return kernel.kernel_spec()
        if self.include_server_kernels:
            return self._server_kernel_spec(kernel_name)
        raise NoSuchKernel(kernel_name)

    def _server_kernel_spec(self, kernel_name: str) -> KernelSpec:
        """A kernel of the server's own environment, or of another Jupyter data folder."""
        spec = super().get_kernel_spec(kernel_name)
        return with_dask_environment(spec, sys.prefix)

    def get_all_specs(self) -> dict[str, Any]:
        specs: dict[str, Any] = {}
        for name, resource_dir in self._server_kernel_names().items():
            try:
                spec = self._server_kernel_spec(name)
            except NoSuchKernel:
                continue
            except Exception:  # noqa: BLE001 - one broken spec must not hide the others
                self.log.warning("Error loading kernelspec %r", name, exc_info=True)
                continue
            specs[name] = {"resource_dir": resource_dir, "spec": spec.to_dict()}
        for name, kernel in self.environment_kernels().items():
            specs.setdefault(name, {"resource_dir": kernel.resource_dir,
                                    "spec": kernel.kernel_spec().to_dict()})
        return specs


def with_dask_environment(spec: KernelSpec, prefix: str) -> KernelSpec:
    """`spec` with ``QHUB_DASK_ENVIRONMENT=prefix`` when the kernel belongs to the environment at
    `prefix` (its kernel.json lies there); kernels from other folders (a user's own venv kernel in
    ~/.local/share/jupyter) are left alone, and the gateway then picks the default environment."""
    resource = os.path.realpath(spec.resource_dir or "")
    root = os.path.realpath(prefix)
    if not resource.startswith(root + os.sep) or ENVIRONMENT_VARIABLE in (spec.env or {}):
        return spec
    spec.env = {**(spec.env or {}), ENVIRONMENT_VARIABLE: prefix}
    return spec
