"""Where conda-store puts environments, and which of them a user may use, read from the disk.

conda-store builds an environment into ``<root>/<namespace>/<build>`` and points
``<root>/<namespace>/envs/<name>`` at the current build. A directory there counts as an environment
when it has ``bin/python``. The Kubernetes spawner mounts only the user's namespaces; the kernel
spec manager and the Dask options read only the namespaces of the user's plan, so what a user is
offered never depends on what else happens to be on the disk.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: every user server imports this module (through the kernel
    # spec manager), and the config model costs it about 0.4 s of CPU at each start (issue 15)
    from ..config import QHubConfig
    from ..policy import UserPlan

# A namespace or environment name used as one path component: never '', '.', '..' or with '/'.
_COMPONENT = re.compile(r"^(?!\.{1,2}$)[^/\x00]{1,255}$")


@dataclass(frozen=True, order=True)
class EnvironmentRef:
    """One conda-store environment: ``prefix`` is ``<root>/<namespace>/envs/<name>``."""

    namespace: str
    name: str
    prefix: Path

    @property
    def python(self) -> Path:
        return self.prefix / "bin" / "python"

    @property
    def label(self) -> str:
        """``namespace/name``, as conda-store and its UI show it."""
        return f"{self.namespace}/{self.name}"


def is_path_component(name: str) -> bool:
    return bool(_COMPONENT.match(name))


def environment_prefix(root: str | Path, namespace: str, name: str) -> Path:
    """The path conda-store links an environment at; ValueError for names that are not one path
    component (they could point outside the namespace)."""
    for value in (namespace, name):
        if not is_path_component(value):
            raise ValueError(f"{value!r} cannot be a conda-store namespace or environment name")
    return Path(root) / namespace / "envs" / name


def is_environment(prefix: Path) -> bool:
    return (prefix / "bin" / "python").is_file()


def environments_in(root: str | Path, namespaces: Iterable[str]) -> list[EnvironmentRef]:
    """Environments found under `root` in `namespaces` (in that order, names sorted)."""
    found: list[EnvironmentRef] = []
    seen: set[str] = set()
    for namespace in namespaces:
        if namespace in seen or not is_path_component(namespace):
            continue
        seen.add(namespace)
        envs = Path(root) / namespace / "envs"
        try:
            names = sorted(entry.name for entry in envs.iterdir())
        except OSError:  # no such namespace yet, or not readable by this user
            continue
        for name in names:
            prefix = envs / name
            if is_environment(prefix):
                found.append(EnvironmentRef(namespace, name, prefix))
    return found


def environments_for(config: QHubConfig, plan: UserPlan) -> list[EnvironmentRef]:
    """The built environments `plan`'s user may use: own, groups', then global namespace."""
    return environments_in(config.conda_store.environments_root, plan.environment_namespaces)


def dask_environments_for(config: QHubConfig, plan: UserPlan) -> list[EnvironmentRef]:
    """The environments offered to the user's Dask clusters, in the order of the config.

    `dask_gateway.worker_environments` names declared environments (global namespace) or
    ``namespace/name``; only those the user may use are offered. Empty: every environment the
    user may use.
    """
    visible = environments_for(config, plan)
    wanted = config.dask_gateway.worker_environments
    if not wanted:
        return visible
    glob = config.conda_store.global_namespace
    by_label = {env.label: env for env in visible}
    chosen = [by_label.get(item if "/" in item else f"{glob}/{item}") for item in wanted]
    return list(dict.fromkeys(env for env in chosen if env is not None))
