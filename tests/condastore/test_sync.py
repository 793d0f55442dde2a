"""Declared environments into a real conda-store: created once, left alone, updated when changed,
failures reported without stopping the others.

Builds cannot succeed here (no conda channels: conda-store's worker fails them with 'mamba' not
found), which is exactly a failing solve. Each test suffixes the declared names with its own tag, so the
tests do not depend on each other's order.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from qhub_hub.conda_store.client import AsyncCondaStoreClient, CondaStoreClient
from qhub_hub.conda_store.hub_service import start_background_sync, sync_when_ready
from qhub_hub.conda_store.sync import (
    SyncReport,
    same_specification,
    specification_document,
    sync_declared_environments,
)
from qhub_hub.config import QHubConfig, load_config
from qhub_hub.config_errors import ConfigError
from tests.support.net import free_port

from .conftest import FOLDER_ENVIRONMENTS, INLINE_ENVIRONMENTS, write_config
from .support import CondaStoreProcess

BASE_NAMES = sorted([*(e["name"] for e in INLINE_ENVIRONMENTS.values()),
                     *(e["name"] for e in FOLDER_ENVIRONMENTS.values())])


def declared(tag: str) -> list[str]:
    return [name + tag for name in BASE_NAMES]


@pytest.fixture(scope="module")
def conda_store(tmp_path_factory: pytest.TempPathFactory, cs_config_file: Path
                ) -> Iterator[CondaStoreProcess]:
    cs = CondaStoreProcess(tmp_path_factory.mktemp("condastore-sync"), cs_config_file, worker=True)
    cs.start()
    yield cs
    cs.stop()


def config_with(tmp_path: Path, tag: str, **changes) -> QHubConfig:
    return load_config(write_config(tmp_path, suffix=tag, **changes))


def actions(report: SyncReport) -> dict[str, str]:
    return {r.name: r.action for r in report.results}


def sync(cs: CondaStoreProcess, config: QHubConfig, **kwargs) -> SyncReport:
    async def run() -> SyncReport:
        async with AsyncCondaStoreClient(cs.url, cs.hub_token) as client:
            return await sync_declared_environments(client, config, **kwargs)

    return asyncio.run(run())


def build_count(cs: CondaStoreProcess, names: list[str]) -> int:
    total = 0
    for name in names:
        status, body = cs.api("GET", f"/api/v1/build/?namespace=global&name={name}", cs.admin_token)
        assert status == 200
        total += body["count"]
    return total


def test_first_sync_creates_everything_the_second_nothing(conda_store, tmp_path):
    config, names = config_with(tmp_path, "-idem"), declared("-idem")
    first = sync(conda_store, config)
    assert first.problems == []
    assert actions(first) == {name: "created" for name in names}
    with CondaStoreClient(conda_store.url, conda_store.hub_token) as client:
        assert {"global", "users", "analysts", "ml", "finance"} <= set(client.namespaces())
        assert set(names) <= {e.name for e in client.environments("global")}
    assert build_count(conda_store, names) == len(names)

    second = sync(conda_store, config)
    assert actions(second) == {name: "unchanged" for name in names}
    assert {r.name: r.build_id for r in second.results} == {r.name: r.build_id for r in first.results}
    assert build_count(conda_store, names) == len(names)  # nothing was rebuilt


def test_specs_reach_conda_store_as_written(conda_store, tmp_path):
    config = config_with(tmp_path, "-pins")
    report = sync(conda_store, config).by_name()
    with CondaStoreClient(conda_store.url, conda_store.hub_token) as client:
        pinned = client.build(report["pinned-pins"].build_id).specification
        assert pinned["dependencies"] == FOLDER_ENVIRONMENTS["pinned.yaml"]["dependencies"]
        analytics = client.build(report["analytics-pins"].build_id).specification
        assert analytics["dependencies"] == INLINE_ENVIRONMENTS["environment-analytics.yaml"][
            "dependencies"]
        # conda-store filled in its default channel; that is no change on the next sync
        filled = client.build(report["no-channels-pins"].build_id).specification
        assert filled["channels"] == ["conda-forge"]
    assert sync(conda_store, config).by_name()["no-channels-pins"].action == "unchanged"


def test_a_changed_spec_is_resubmitted_alone(conda_store, tmp_path):
    sync(conda_store, config_with(tmp_path / "before", "-change"))
    changed = copy.deepcopy(FOLDER_ENVIRONMENTS["no-channels.yaml"])
    changed["dependencies"].append("numpy=2.1")
    inline = copy.deepcopy(INLINE_ENVIRONMENTS)
    inline["environment-dask.yaml"]["dependencies"].remove("dask-gateway")
    inline["environment-dask.yaml"]["dependencies"].append("dask-gateway=2024.1.0")
    after = config_with(tmp_path / "after", "-change", inline=inline,
                        extra_folder_files={"no-channels.yaml": changed})
    assert actions(sync(conda_store, after)) == {
        "analytics-change": "unchanged", "dask-change": "updated",
        "no-channels-change": "updated", "pinned-change": "unchanged"}
    assert set(actions(sync(conda_store, after)).values()) == {"unchanged"}


def test_a_failing_solve_is_reported_and_blocks_nothing(conda_store, tmp_path):
    broken = {"name": "broken", "channels": ["conda-forge"], "dependencies": ["!!not-a-package"]}
    config, names = config_with(tmp_path, "-fail", extra_folder_files={"broken.yaml": broken}), \
        declared("-fail")
    report = sync(conda_store, config, wait=60, poll_interval=0.5)
    results = report.by_name()
    # conda-store refuses the malformed spec outright ...
    assert results["broken-fail"].action == "failed"
    assert "Invalid conda package dependency" in results["broken-fail"].message
    # ... and the solves of the others fail in its worker; each says why, none stopped the rest
    for name in names:
        assert results[name].action == "created"
        assert results[name].build_status == "FAILED", results[name]
        assert "mamba" in results[name].message, results[name].message
    assert sorted(r.name for r in report.failures) == sorted([*names, "broken-fail"])
    assert any("global/broken-fail: failed: " in line for line in report.lines())

    again = sync(conda_store, config).by_name()  # not rebuilt on every restart, still reported
    assert again["dask-fail"].action == "unchanged"
    assert again["dask-fail"].failed
    assert "latest build of this spec failed" in again["dask-fail"].message
    assert again["broken-fail"].action == "failed"


def test_an_unreachable_conda_store_is_reported_not_raised(tmp_path):
    config = config_with(tmp_path, "-down")

    async def run() -> SyncReport:
        return await sync_when_ready(config, url=f"http://127.0.0.1:{free_port()}", token="t",
                                     retries=1, retry_interval=0.01)

    report = asyncio.run(run())
    assert report.retry_advised
    assert actions(report) == {name: "failed" for name in declared("-down")}
    assert all("cannot reach conda-store" in r.message for r in report.results)


@pytest.mark.parametrize(("declared", "stored", "settings", "same"), [
    ({"name": "a", "channels": ["c"], "dependencies": ["x"]},
     {"name": "a", "channels": ["c"], "dependencies": ["x"], "description": "", "variables": None,
      "prefix": None}, {}, True),
    ({"name": "a", "channels": [], "dependencies": ["x"]},
     {"name": "a", "channels": ["conda-forge"], "dependencies": ["x"]},
     {"conda_default_channels": ["conda-forge"]}, True),
    ({"name": "a", "channels": [], "dependencies": ["x"]},
     {"name": "a", "channels": ["bioconda"], "dependencies": ["x"]},
     {"conda_default_channels": ["conda-forge"]}, False),
    ({"name": "a", "dependencies": ["x", {"pip": ["p==1"]}]},
     {"name": "a", "dependencies": ["x", "ipykernel", {"pip": ["p==1", "extra"]}]},
     {"conda_included_packages": ["ipykernel"], "pypi_included_packages": ["extra"]}, True),
    # a dependency we removed is a change, even when the server would add it
    ({"name": "a", "dependencies": ["x"]}, {"name": "a", "dependencies": ["x", "ipykernel"]},
     {}, False),
    ({"name": "a", "dependencies": ["x=1"]}, {"name": "a", "dependencies": ["x=2"]}, {}, False),
    ({"name": "a", "dependencies": ["x", "y"]}, {"name": "a", "dependencies": ["y", "x"]}, {}, False),
    ({"name": "a", "variables": {"K": "1"}}, {"name": "a", "variables": {"K": 1}}, {}, True),
    ({"name": "a", "description": "new"}, {"name": "a", "description": "old"}, {}, False),
])
def test_same_specification(declared, stored, settings, same):
    assert same_specification(declared, stored, settings) is same


def test_specification_document_is_the_declared_yaml(cs_config):
    doc = specification_document(cs_config.declared_environments["analytics"])
    assert doc == INLINE_ENVIRONMENTS["environment-analytics.yaml"]
    assert yaml.safe_load(yaml.safe_dump(doc)) == doc


def test_a_dask_environment_must_hold_what_dask_needs(tmp_path):
    path = write_config(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["dask_gateway"]["worker_environments"] = ["dask", "analytics"]
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value).count("lacks") == 1
    assert ("environment 'analytics' runs Dask workers but lacks dask, distributed, dask-gateway"
            in str(error.value))


def test_the_hub_starts_the_sync_in_the_background(conda_store, tmp_path, caplog):
    config, names = config_with(tmp_path, "-bg"), declared("-bg")

    async def run() -> SyncReport:
        task = start_background_sync(config, url=conda_store.url, token=conda_store.hub_token)
        assert not task.done()  # the caller goes on; the sync runs on the loop
        return await task

    with caplog.at_level(logging.INFO, logger="qhub_hub.conda_store"):
        report = asyncio.run(run())
    assert actions(report) == {name: "created" for name in names}
    assert {f"conda-store global/{name}: created" for name in names} <= {
        r.getMessage().split(" (build")[0] for r in caplog.records}
