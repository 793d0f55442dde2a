"""The built environments a user may run Dask schedulers and workers in, read from disk.

conda-store lays a built environment out as ``<environments_root>/<namespace>/envs/<name>``; a
user may use the environments of the namespaces in their plan (their own, their groups', the
global one), listed by `qhub_hub.conda_store.layout`. `dask_gateway.worker_environments`, when
not empty, narrows the choice to those names.

The embedded mode also offers the **server environment**: the one user servers run in (the
platform's own, root-owned `sys.prefix`, e.g. /opt/qhub-hub, which has dask, distributed,
dask-gateway and bokeh). It is the environment of a notebook's default kernel, so
`GatewayCluster()` from that kernel runs its workers there, as on Kubernetes, where workers run
the notebook's image; it needs no conda-store build, so clusters work on a fresh platform. It is
always offered, after the conda-store environments (`dask_gateway.worker_environments` narrows
only those), named ``server`` or by its prefix.

On Kubernetes the same place is taken by the **image environment**: the Python of the user's server
image, which workers run too (the chart makes the gateway's worker image the server image, and a
profile's own image follows the server profile). The gateway cannot read that image's files, so
it is not version-checked here; tests/cluster shows the lab image has what workers need.

Package versions are read from the environment's files: `importlib.metadata` over its
site-packages and the folders its ``.pth`` files name (METADATA/PKG-INFO files, read, never
run), then ``conda-meta/*.json`` file names; names compare as `packaging` canonicalises them.
Nothing in the environment is executed: the gateway runs as root, and an environment is
user-controlled code.

The versions found are remembered per environment until a folder they were read from changes:
each lookup finds the folders afresh (every site-packages, the folders its ``.pth`` files name,
``conda-meta``), takes their status (`os.stat`: inode, modification and change times) and reads
the metadata again when the folders or any status differ. Installing, upgrading or removing a
package adds or removes a ``*.dist-info`` folder or a ``conda-meta`` file, and a conda-store
rebuild points the environment at new folders, so each is seen at the next request; a METADATA
file edited in place is not (no installer does that). Folder times advance in clock ticks of a
few milliseconds, so a change in the same tick as the read before it would not show: versions read
while a folder changed less than `RECENT_SECONDS` ago are not remembered.
Reading 165 packages' metadata takes about 80 ms, and each cluster request looks at every
environment offered (the form) and then the chosen one again.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib.metadata import distributions
from pathlib import Path

from packaging.utils import canonicalize_name

from ..config import DASK_PACKAGES, QHubConfig
from ..policy import UserPlan

# dask-gateway's scheduler preload and the two dask packages; ipykernel is not needed on workers.
WORKER_PACKAGES = tuple(p for p in DASK_PACKAGES if p != "ipykernel")


@dataclass(frozen=True)
class WorkerEnvironment:
    namespace: str
    name: str
    prefix: Path
    in_image: bool = False  # the worker image's own Python (Kubernetes): nothing to mount or check

    @property
    def key(self) -> str:
        """How users name it: ``<namespace>/<name>`` (the server environment: ``server``)."""
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    @property
    def is_server_environment(self) -> bool:
        return self.namespace == ""

    @property
    def python(self) -> Path:
        return Path("python") if self.in_image else self.prefix / "bin" / "python"


EnvironmentLister = Callable[[QHubConfig, UserPlan], Sequence[WorkerEnvironment]]
SERVER_ENVIRONMENT = "server"


def server_environment(prefix: str | os.PathLike | None = None) -> WorkerEnvironment:
    """The environment user servers run in (default: this process's own, `sys.prefix`). No
    namespace: conda-store namespaces are never empty, so it cannot be confused with one."""
    return WorkerEnvironment("", SERVER_ENVIRONMENT, Path(prefix or sys.prefix))


def environments_with_server(config: QHubConfig, plan: UserPlan) -> list[WorkerEnvironment]:
    """The embedded mode's lister: the conda-store environments, then the server environment."""
    return [*environments_on_disk(config, plan), server_environment()]


def image_environment() -> WorkerEnvironment:
    """Kubernetes: the worker image's own environment (`python` on the image's PATH)."""
    return WorkerEnvironment("", SERVER_ENVIRONMENT, Path("/"), in_image=True)


def environments_with_image(config: QHubConfig, plan: UserPlan) -> list[WorkerEnvironment]:
    """The Kubernetes lister: the conda-store environments, then the image environment."""
    return [*environments_on_disk(config, plan), image_environment()]


def environments_on_disk(config: QHubConfig, plan: UserPlan) -> list[WorkerEnvironment]:
    """Every built environment in the plan's namespaces, in namespace order, then by name.

    The same listing as the kernels and the conda-store code use (`qhub_hub.conda_store.layout`):
    an environment counts as built when its ``bin/python`` exists.
    """
    from ..conda_store.layout import environments_for

    return [WorkerEnvironment(e.namespace, e.name, e.prefix) for e in environments_for(config, plan)]


def worker_environments(config: QHubConfig, plan: UserPlan,
                        lister: EnvironmentLister = environments_on_disk) -> list[WorkerEnvironment]:
    """The environments `plan` may run Dask clusters in, the default first.

    With `dask_gateway.worker_environments` set, only environments listed there are offered, in
    the order of that list: a plain name is a declared environment (global namespace), a
    ``namespace/name`` any environment the user may see.
    """
    available = list(lister(config, plan))
    wanted = config.dask_gateway.worker_environments
    if not wanted:
        return available
    server = [env for env in available if env.is_server_environment]  # never narrowed away
    available = [env for env in available if not env.is_server_environment]
    glob = config.conda_store.global_namespace
    chosen: list[WorkerEnvironment] = []
    for item in wanted:
        for env in available:
            named = item == env.key or (env.namespace == glob and item == env.name)
            if named and env not in chosen:
                chosen.append(env)
    return chosen + server


def _site_packages(prefix: Path) -> list[Path]:
    """The environment's site-packages folders, then the folders named by their .pth files."""
    dirs = sorted(prefix.glob("lib/python3*/site-packages"))
    extra: list[Path] = []
    for site in dirs:
        for pth in sorted(site.glob("*.pth")):
            try:
                lines = pth.read_text(errors="replace").splitlines()
            except OSError:
                continue
            for line in lines:
                line = line.strip()
                # site.py runs lines starting with "import"; we only follow plain folder paths
                if line and not line.startswith(("#", "import ", "import\t")):
                    path = Path(line) if os.path.isabs(line) else site / line
                    if path.is_dir():
                        extra.append(path)
    return dirs + extra


# (prefix, packages) -> (what the folders looked like, the versions read from them)
_VERSIONS: dict[tuple[str, tuple[str, ...]], tuple[tuple, dict[str, str | None]]] = {}
_VERSIONS_KEPT = 256  # environments remembered; more: start over
RECENT_SECONDS = 2.0  # folders changed this recently: read again next time (module docstring)


def _status(path: Path) -> tuple:
    try:
        info = os.stat(path)
    except OSError:
        return (str(path), None)
    return (str(path), info.st_ino, info.st_mtime_ns, info.st_ctime_ns)


def _layout(prefix: Path, sites: list[Path]) -> tuple:
    """What changes when a package is installed, upgraded or removed in `prefix`: the status of
    each folder the metadata is read from (`sites` is found afresh, .pth files read, each time)."""
    return tuple(_status(p) for p in [*sites, prefix / "conda-meta"])


def environment_layout(prefix: Path) -> tuple:
    """What changes when `prefix`'s packages change (its folders' status): a pre-imported Dask
    starter of that environment is replaced when this differs (user_starters.py)."""
    return _layout(prefix, _site_packages(prefix))


def package_versions(prefix: Path, packages: Iterable[str] = WORKER_PACKAGES) -> dict[str, str | None]:
    """Installed version of each of `packages` in the environment at `prefix` (None: missing);
    remembered until the environment's folders change (see the module docstring)."""
    packages = tuple(packages)
    sites = _site_packages(prefix)
    layout = _layout(prefix, sites)
    key = (str(prefix), packages)
    hit = _VERSIONS.get(key)
    if hit is not None and hit[0] == layout:
        return dict(hit[1])
    versions = _read_versions(prefix, sites, packages)
    newest = max((max(s[2], s[3]) for s in layout if len(s) == 4), default=0)
    if newest < time.time_ns() - RECENT_SECONDS * 1e9:
        if len(_VERSIONS) >= _VERSIONS_KEPT:
            _VERSIONS.clear()
        _VERSIONS[key] = (layout, versions)
    return dict(versions)


def _read_versions(prefix: Path, sites: list[Path], packages: tuple[str, ...]) -> dict[str, str | None]:
    wanted = {canonicalize_name(p): p for p in packages}
    found: dict[str, str] = {}
    for dist in distributions(path=[str(site) for site in sites]):
        name = dist.metadata["Name"]
        key = canonicalize_name(name) if name else None
        if key in wanted and key not in found and dist.version:
            found[key] = dist.version
    try:
        meta = os.listdir(prefix / "conda-meta")
    except OSError:
        meta = []
    for entry in meta:
        if entry.endswith(".json") and entry.count("-") >= 2:
            name, version, _build = entry[:-5].rsplit("-", 2)
            key = canonicalize_name(name)
            if key in wanted and key not in found:
                found[key] = version
    return {original: found.get(key) for key, original in wanted.items()}


def missing_worker_packages(versions: dict[str, str | None]) -> list[str]:
    return [name for name, version in versions.items() if version is None]
