from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from qhub_hub.config import QHubConfig, load_config

# Four people: alice and bob analysts (bob also ml), erin in finance reading analysts' work,
# frank in no team. Everyone's primary group is `users`.
GROUPS = {"users": {"gid": 3100}, "analysts": {"gid": 3101}, "ml": {"gid": 3102},
          "finance": {"gid": 3103}}
USERS = {
    "alice": {"uid": 4001, "primary_group": "users", "secondary_groups": ["analysts"]},
    "bob": {"uid": 4002, "primary_group": "users", "secondary_groups": ["analysts", "ml"]},
    "erin": {"uid": 4003, "primary_group": "users", "secondary_groups": ["finance"],
             "readonly_groups": ["analysts"]},
    "frank": {"uid": 4004, "primary_group": "users"},
}
INLINE_ENVIRONMENTS = {
    "environment-dask.yaml": {
        "name": "dask", "channels": ["conda-forge"],
        "dependencies": ["python=3.11", "ipykernel", "dask", "distributed", "dask-gateway"]},
    "environment-analytics.yaml": {
        "name": "analytics", "channels": ["conda-forge"],
        "dependencies": ["python=3.11", "ipykernel", "pandas", {"pip": ["great-tables==0.14.0"]}]},
}
FOLDER_ENVIRONMENTS = {
    # fully pinned, build strings included: must reach conda-store exactly as written
    "pinned.yaml": {"name": "pinned", "channels": ["conda-forge"],
                    "dependencies": ["python=3.11.9=hb806964_0_cpython", "ipykernel=6.29.5=pyh3099207_0"]},
    "no-channels.yaml": {"name": "no-channels", "dependencies": ["python", "ipykernel"]},
}


def write_config(directory: Path, *, extra_folder_files: dict | None = None,
                 inline: dict | None = None, suffix: str = "") -> Path:
    """The test config in `directory`; `suffix` is appended to every declared environment's name
    (tests sharing one conda-store keep their environments apart that way)."""

    def renamed(doc: dict) -> dict:
        return {**doc, "name": doc["name"] + suffix}

    directory.mkdir(parents=True, exist_ok=True)
    folder = directory / "environments"
    folder.mkdir(exist_ok=True)
    for name, doc in {**FOLDER_ENVIRONMENTS, **(extra_folder_files or {})}.items():
        (folder / name).write_text(yaml.safe_dump(renamed(doc), sort_keys=False))
    inline = INLINE_ENVIRONMENTS if inline is None else inline
    data = {
        "security": {"authentication": {"type": "password"}, "groups": GROUPS, "users": USERS},
        "environments": {key: renamed(doc) for key, doc in inline.items()},
        "dask_gateway": {"worker_environments": ["dask" + suffix]},
        "conda_store": {"environments_root": str(directory / "store"),
                        "environments_folder": str(folder), "global_namespace": "global"},
    }
    path = directory / "qhub-config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def cs_config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_config(tmp_path_factory.mktemp("condastore-config"))


@pytest.fixture(scope="session")
def cs_config(cs_config_file: Path) -> QHubConfig:
    return load_config(cs_config_file)
