"""The config model: QHub files load unchanged; every mistake is named by its path with a fix."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from qhub_hub.config import ConfigError, GitHubAuth, config_schema, load_config

DATA = Path(__file__).parent / "data"


@pytest.fixture
def example_data(example_config_path) -> dict:
    return yaml.safe_load(example_config_path.read_text())


def problems_of(data) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(data)
    return [str(p) for p in info.value.problems]


def test_example_is_valid(example_config):
    assert len(example_config.security.users) == 6
    assert [p.profile_slug for p in example_config.profiles.jupyterlab] == ["small", "medium", "highmem", "gpu"]
    assert example_config.profiles.jupyterlab[3].kubespawner_override.gpus == 1
    assert sorted(example_config.declared_environments) == ["analytics", "dask"]


@pytest.mark.parametrize("name", ["qhub-0.3-github.yaml", "qhub-0.3-password.yaml", "qhub-0.3-auth0.yaml"])
def test_qhub_03_files_load_unchanged(name):
    config = load_config(DATA / name)
    assert config.security.users


def test_qhub_03_github_details():
    config = load_config(DATA / "qhub-0.3-github.yaml")
    assert isinstance(config.security.authentication, GitHubAuth)
    assert config.security.authentication.config.client_id == "CLIENT_ID"
    # QHub made the 'admin' group's members admins; so do we when admin_groups is unset
    assert config.security.admin_group_names == ["admin"]
    assert [p.profile_slug for p in config.profiles.jupyterlab] == ["small-instance", "medium-instance"]
    assert config.environments["environment-dashboards.yaml"].package_names() >= {
        "python", "ipykernel", "dash-bootstrap-components", "panel"}


def test_auth_type_spelling_is_forgiven():
    config = load_config({"security": {"authentication": {"type": "github"}}})
    assert isinstance(config.security.authentication, GitHubAuth)


def mutate(data: dict, path: str, value) -> dict:
    """Set a dotted path (list indexes as numbers) in a deep copy."""
    data = copy.deepcopy(data)
    *parents, last = [int(p) if p.isdigit() else p for p in path.split("/")]
    node = data
    for part in parents:
        node = node.setdefault(part, {}) if isinstance(node, dict) else node[part]
    node[last] = value
    return data


CASES = [
    # (path to set, value, expected problem text)
    ("profiles/jupyterlab/2/groups/0", "analytics",
     "profiles.jupyterlab[2].groups[0]: unknown group 'analytics': add it to security.groups or fix the name"),
    ("security/users/bob/uid", 3001,
     "security.users.bob.uid: uid 3001 is also the uid of 'alice'; give every user their own uid"),
    ("security/groups/ml/gid", 2000,
     "security.groups.ml.gid: gid 2000 is also the gid of 'admin'; give every group its own gid"),
    ("security/users/frank/primary_group", "staff",
     "security.users.frank.primary_group: unknown group 'staff'"),
    ("security/users/frank/secondary_groups", ["users", "ghosts"],
     "security.users.frank.secondary_groups[1]: unknown group 'ghosts'"),
    ("security/users/erin/readonly_groups", ["finance"],
     "security.users.erin.readonly_groups[0]: 'erin' is already a read-write member of 'finance'"),
    ("profiles/jupyterlab/1/slug", "small",
     "profiles.jupyterlab[1].slug: slug 'small' is also the slug of profiles.jupyterlab[0]"),
    ("profiles/jupyterlab/3/default", True,
     "profiles.jupyterlab[3].default: the default profile must be open to every user"),
    ("profiles/jupyterlab/1/default", True,
     "profiles.jupyterlab[1].default: only one profile can be the default"),
    ("profiles/jupyterlab/0/users", ["mallory"],
     "profiles.jupyterlab[0].users[0]: unknown user 'mallory': add them to security.users"),
    ("profiles/dask_worker/Large Worker/groups", ["ml", "quants"],
     "profiles.dask_worker['Large Worker'].groups[1]: unknown group 'quants'"),
    ("profiles/dask_worker/Large Worker/worker_memory_limit", "1G",
     "profiles.dask_worker['Large Worker']: worker_memory_limit must be at least worker_memory"),
    ("security/users/bob/password", "hunter2",
     "security.users.bob.password: must be a bcrypt hash ($2b$...), never a plain password"),
    ("security/users/bob/uid", 0, "security.users.bob.uid: Input should be greater than or equal to 1000"),
    ("security/users/bob/uid", 250000, "security.users.bob.uid: uid 250000 lies in security.dynamic_ids"),
    ("profiles/jupyterlab/0/kubespawner_override/uid", 0,
     "profiles.jupyterlab[0].kubespawner_override: uid cannot be set by a profile"),
    ("profiles/jupyterlab/0/kubespawner_override/extra_pod_config", {"securityContext": {}},
     "profiles.jupyterlab[0].kubespawner_override: extra_pod_config cannot be set by a profile"),
    ("profiles/jupyterlab/0/kubespawner_override/mem_limit", "lots",
     "profiles.jupyterlab[0].kubespawner_override.mem_limit: 'lots' is not a memory size"),
    ("profiles/jupyterlab/0/profile", "x",
     "profiles.jupyterlab[0].profile: unknown key 'profile': remove it or fix its spelling (allowed: "
     "display_name, slug, description, default, users, groups, kubespawner_override, cost_per_hour)"),
    ("security/users/alice/uuid", 1,
     "security.users.alice.uuid: unknown key 'uuid': remove it or fix its spelling; did you mean 'uid'?"),
    ("security/groups/Data Science", {"gid": 2100},
     "security.groups: group name 'Data Science' must be a Linux group name"),
    ("security/admin_groups", ["admins"], "security.admin_groups[0]: unknown group 'admins'"),
    ("security/identity_provider_groups", {"acme:ml-team": "mlops"},
     "security.identity_provider_groups['acme:ml-team']: unknown group 'mlops'"),
    ("security/authentication", {"type": "ldap"},
     "security.authentication.type: 'ldap' is not one of 'password', 'GitHub', 'Auth0', 'oidc'; pick one"),
    ("security/authentication", {"type": "oidc", "config": {"authorize_url": "https://x/auth"}},
     "security.authentication.config.token_url: required: add this key"),
    ("dask_gateway/worker_environments", ["analytics"],
     "environments['environment-analytics.yaml'].dependencies: environment 'analytics' runs Dask workers "
     "but lacks dask, distributed, dask-gateway; add them to its dependencies"),
    ("dask_gateway/worker_environments", ["spark"], "dask_gateway.worker_environments[0]: unknown environment 'spark'"),
    ("storage/group_mode", "rwx", "storage.group_mode: must be an octal mode written as a quoted string"),
    ("storage/home_root", "home", "storage.home_root: must be an absolute path without '..'"),
    ("cull/server_idle_timeout", "an hour", "cull.server_idle_timeout: Input should be a valid integer"),
]


@pytest.mark.parametrize(("path", "value", "expected"), CASES, ids=[c[0] for c in CASES])
def test_each_mistake_is_named_by_its_path(example_data, path, value, expected):
    problems = problems_of(mutate(example_data, path, value))
    assert any(p.startswith(expected) for p in problems), problems


def test_unknown_top_level_key_suggests_the_right_one(example_data):
    example_data["profile"] = example_data.pop("profiles")
    (problem,) = problems_of(example_data)
    assert problem.startswith("profile: unknown key 'profile': remove it or fix its spelling; did you mean 'profiles'?")


def test_missing_uid_is_required(example_data):
    del example_data["security"]["users"]["bob"]["uid"]
    assert problems_of(example_data) == ["security.users.bob.uid: required: add this key"]


def test_all_problems_are_reported_at_once(example_data):
    data = mutate(example_data, "security/users/bob/uid", 3001)
    data = mutate(data, "profiles/jupyterlab/2/groups/0", "nobody-group")
    assert len(problems_of(data)) == 2


def test_yaml_syntax_error_names_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("security:\n  users: [\n")
    (problem,) = problems_of(bad)
    assert "is not valid YAML: YAML parse error at line" in problem


def test_duplicate_keys_are_refused(tmp_path):
    f = tmp_path / "dup.yaml"
    f.write_text("security:\n  users:\n    alice: {uid: 1001, primary_group: g}\n"
                 "    alice: {uid: 1002, primary_group: g}\n  groups: {g: {gid: 500}}\n")
    (problem,) = problems_of(f)
    assert "duplicate mapping key: 'alice'" in problem


@pytest.mark.parametrize("mode", [448, 700, "rwx", "0800"])
def test_modes_must_be_quoted_octal_strings(example_data, mode):
    (problem,) = problems_of(mutate(example_data, "storage/home_mode", mode))
    assert problem.startswith("storage.home_mode: must be an octal mode written as a quoted string")


@pytest.mark.parametrize("doc", ["- a\n- b\n", "just text\n", "42\n"])
def test_top_level_must_be_a_mapping(tmp_path, doc):
    f = tmp_path / "c.yaml"
    f.write_text(doc)
    (problem,) = problems_of(f)
    assert problem.startswith("(config): the config must be a mapping of sections")


def test_missing_file(tmp_path):
    (problem,) = problems_of(tmp_path / "nope.yaml")
    assert "cannot read" in problem and "nope.yaml" in problem


def test_empty_file_is_the_defaults(tmp_path):
    f = tmp_path / "empty.yaml"
    f.write_text("")
    config = load_config(f)
    assert config.security.users == {} and config.cull.server_idle_timeout == 3600


def test_environments_folder(tmp_path, example_data):
    folder = tmp_path / "envs"
    folder.mkdir()
    (folder / "ml.yaml").write_text("name: ml\nchannels: [conda-forge]\ndependencies: [python, pytorch]\n")
    (folder / "broken.yml").write_text("name: broken\ndependencies: 7\n")
    (folder / "dup.yaml").write_text("name: dask\n")
    example_data["conda_store"] = {"environments_folder": "envs"}
    config_file = tmp_path / "qhub.yaml"
    config_file.write_text(yaml.safe_dump(example_data))
    problems = problems_of(config_file)
    assert any(p.startswith("conda_store.environments_folder['broken.yml'].dependencies:") for p in problems), problems
    assert any(p.startswith("conda_store.environments_folder['dup.yaml']: environment name 'dask' is also "
                            "declared at environments['environment-dask.yaml']") for p in problems), problems
    (folder / "broken.yml").unlink()
    (folder / "dup.yaml").unlink()
    config = load_config(config_file)
    assert sorted(config.declared_environments) == ["analytics", "dask", "ml"]


def test_pinned_specs_pass_through(example_config):
    deps = example_config.declared_environments["dask"].dependencies
    assert "python=3.11" in deps


def test_schema_is_strict_everywhere():
    schema = config_schema()
    assert schema["additionalProperties"] is False
    for name, definition in schema["$defs"].items():
        if definition.get("type") == "object" and "properties" in definition:
            assert definition.get("additionalProperties") is False, name
    assert set(schema["properties"]) >= {"security", "profiles", "environments", "storage", "dask_gateway",
                                         "conda_store", "ssh", "videochat", "cull"}


@pytest.mark.parametrize("value", ["4G", "512M", "1.5G", "2T", "100K", 1073741824, "4Gi", "4g", "4 G", "G",
                                   "-1G", "4GB", "", "1e3M"])
def test_memory_sizes_are_what_the_spawner_accepts(value) -> None:
    """A profile's mem_limit passes validation only when JupyterHub's ByteSpecification (the
    spawner's trait) accepts it, so a valid config never fails at spawn time. (We are stricter:
    '-1G', '4 G' and '1e3M' pass ByteSpecification but are refused here.)"""
    from jupyterhub.traitlets import ByteSpecification
    from traitlets import TraitError

    from qhub_hub.config import KubespawnerOverride
    try:
        ByteSpecification().validate(None, value)
        spawner_ok = True
    except (TraitError, TypeError, ValueError):
        spawner_ok = False
    try:
        KubespawnerOverride(mem_limit=value)
        ours_ok = True
    except ValueError:
        ours_ok = False
    assert ours_ok <= spawner_ok
    assert ours_ok == (value in ("4G", "512M", "1.5G", "2T", "100K", 1073741824))
