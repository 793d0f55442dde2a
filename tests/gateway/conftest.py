"""Fixtures for the gateway tests: one hub + gateway + Unix users + environments per module.

Test users (real Unix accounts, removed at teardown): gwalice (analysts), gwbob (no extra group),
gwcarol (ml). Environments ("built" = venvs at conda-store's layout, see harness.py):

- global/dask       imports the project's dask, distributed, dask-gateway
- gwalice/alice-env alice's own environment (same packages)
- gwml/ml-env       the ml group's environment
- global/nodask     a bare Python: no dask at all
- global/olddask    dask and distributed 2026.7.1 in front of the project's packages
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import (
    OLD_DASK,
    SITE_PACKAGES,
    GatewayStack,
    UnixAccounts,
    base_folder,
    make_environment,
    remove_tree,
)

GROUPS = {"gwusers": 42000, "gwanalysts": 42010, "gwml": 42011}
USERS = {
    "gwalice": (42001, "gwusers", ["gwanalysts"]),
    "gwbob": (42002, "gwusers", []),
    "gwcarol": (42003, "gwusers", ["gwml"]),
}


def qhub_config(base: Path) -> dict:
    return {
        "security": {
            "groups": {name: {"gid": gid} for name, gid in GROUPS.items()},
            "users": {
                name: {"uid": uid, "primary_group": primary, "secondary_groups": others}
                for name, (uid, primary, others) in USERS.items()
            },
        },
        "profiles": {
            "dask_worker": {
                "Small Worker": {"worker_cores": 1, "worker_cores_limit": 1, "worker_memory": "1G",
                                 "worker_memory_limit": "1G", "max_workers": 2},
                "Large Worker": {"worker_cores": 1, "worker_cores_limit": 2, "worker_memory": "1G",
                                 "worker_memory_limit": "2G", "max_workers": 3, "groups": ["gwml"]},
            },
        },
        "storage": {"home_root": str(base / "home")},
        "conda_store": {"environments_root": str(base / "conda")},
        "dask_gateway": {"max_clusters_per_user": 2},
        "cull": {"cluster_idle_timeout": 60},
    }


def build_environments(base: Path) -> dict[str, Path]:
    root = base / "conda"
    envs = {
        "global/dask": [SITE_PACKAGES],
        "gwalice/alice-env": [SITE_PACKAGES],
        "gwml/ml-env": [SITE_PACKAGES],
        "global/nodask": [],
    }
    if OLD_DASK.is_dir():
        envs["global/olddask"] = [OLD_DASK, SITE_PACKAGES]
    made = {}
    for key, import_from in envs.items():
        namespace, name = key.split("/")
        made[key] = make_environment(root / namespace / "envs" / name, import_from)
    for path in [root, *root.rglob("envs")]:
        path.chmod(0o755)
    return made


# dask_gateway 2026.3.0's Gateway.__del__ calls close() again after the loop it ran on has stopped,
# which distributed 2026.8 refuses: a message at garbage collection (in whichever test runs then),
# not a failure.
_GATEWAY_DEL = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <function Gateway.__del__:pytest.PytestUnraisableExceptionWarning")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(_GATEWAY_DEL)


@pytest.fixture(autouse=True)
def collect_closed_gateways() -> Iterator[None]:
    """After each test, finalise its closed `Gateway` objects here, in the main thread. Left to the
    garbage collector they may be finalised on the event loop thread of a later test's client,
    where `Gateway.__del__` waits for that very loop: the test hangs."""
    yield
    gc.collect()


@pytest.fixture(scope="session")
def require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: the gateway starts Dask processes as real Unix users")


@pytest.fixture(scope="module")
def stack(require_root) -> Iterator[GatewayStack]:
    base = base_folder("qhub-gw-")
    accounts = UnixAccounts(GROUPS, USERS, homes=base / "home")
    stack = GatewayStack(base, qhub_config(base))
    try:
        accounts.create()
        stack.environments = build_environments(base)  # type: ignore[attr-defined]
        stack.start()
        stack.add_hub_users(list(USERS), {"gwanalysts": ["gwalice"], "gwml": ["gwcarol"]})
        yield stack
    finally:
        stack.stop()
        accounts.remove()
        remove_tree(base)
