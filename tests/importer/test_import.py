"""`qhub-hub import` of QHub 0.3 and Nebari deployment files (tests/importer/data, written for these
tests from the public schemas). For each file: the real CLI imports it, `qhub-hub validate` accepts
the result, `qhub-hub explain` gives every user what the original gave them (expected values written
by hand from what the original platform did), the report names every key of the input, the Helm
values pass the chart's schema, and a second import is byte-identical."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from qhub_hub.cli import main as cli_main
from qhub_hub.config import load_config
from qhub_hub.config_errors import format_path
from qhub_hub.naming import unix_name

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parents[2]
CHART_SCHEMA = REPO / "helm" / "qhub" / "values.schema.json"
STATUSES = ("mapped", "dropped", "needs decision")
KEYCLOAK_ARGS = ["--keycloak-profile", "Medium Instance=developer,ml-team"]


def qhub_hub(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qhub_hub.cli", *args], capture_output=True, text=True,
                          check=check, timeout=120)


def explain(capsys, config_path: Path, user: str, groups: tuple[str, ...] = ()) -> dict:
    """`qhub-hub explain` (the real command, in this process) as data."""
    capsys.readouterr()
    args = ["explain", str(config_path), user] + (["--groups", ",".join(groups)] if groups else [])
    assert cli_main(args) == 0
    return yaml.safe_load(capsys.readouterr().out)


class Imported:
    def __init__(self, name: str, out: Path, extra: list[str]):
        self.source = DATA / name
        self.config_path = out / "qhub-config.yaml"
        self.values_path = out / "values.yaml"
        self.report_path = out / "report.txt"
        self.run = qhub_hub("import", str(self.source), "-o", str(self.config_path), "--values",
                            str(self.values_path), "--report", str(self.report_path), *extra)
        self.input = yaml.safe_load(self.source.read_text())
        self.config = load_config(self.config_path)
        self.values = yaml.safe_load(self.values_path.read_text())
        self.report = self.report_path.read_text()

    def explain(self, capsys, user: str, groups: tuple[str, ...] = ()) -> dict:
        return explain(capsys, self.config_path, user, groups)

    def report_lines(self) -> dict[str, tuple[str, str]]:
        """path -> (status, detail), from the report's `## Every key` section."""
        section = self.report.split("## Every key\n", 1)[1]
        out = {}
        for line in section.splitlines():
            status = next(s for s in STATUSES if line.startswith(s))
            path, _, detail = line[len(status):].strip().partition("  ")
            out[path] = (status, detail.strip())
        return out


ARGS = {"nebari-keycloak.yaml": KEYCLOAK_ARGS}
FILES = ["qhub03-password.yaml", "qhub03-github.yaml", "qhub03-auth0.yaml", "nebari-keycloak.yaml",
         "nebari-yaml.yaml", "unknown-keys.yaml"]


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> dict[str, Imported]:
    return {name: Imported(name, tmp_path_factory.mktemp(name.removesuffix(".yaml")), ARGS.get(name, []))
            for name in FILES}


# --- every file: valid, complete report, schema-valid values, deterministic --------------------------

@pytest.mark.parametrize("name", FILES)
def test_the_import_validates(imported, name):
    result = qhub_hub("validate", str(imported[name].config_path), check=False)
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout


def input_keys(data, path=(), depth=5):
    """Every key of the input to `depth`: mapping keys, and the items of lists of mappings."""
    if len(path) >= depth:
        return
    items = (data.items() if isinstance(data, dict)
             else enumerate(data) if isinstance(data, list) and data and all(isinstance(v, dict) for v in data)
             else ())
    for key, value in items:
        yield (*path, key)
        yield from input_keys(value, (*path, key), depth)


@pytest.mark.parametrize("name", FILES)
def test_the_report_lists_every_input_key(imported, name):
    result = imported[name]
    lines = result.report_lines()
    keys = [format_path(p) for p in input_keys(result.input)]
    assert len(keys) > 20
    missing = [k for k in keys if k not in lines]
    assert not missing, f"keys missing from the report: {missing}"
    # every top-level key carries its own decision, never only an inherited one
    for key in result.input:
        status, detail = lines[format_path([key])]
        assert not detail.startswith("part of"), (key, detail)
    # the summary line counts what the lines say
    counts = {s: sum(1 for st, _ in lines.values() if st == s) for s in STATUSES}
    assert (f"{len(lines)} keys: {counts['mapped']} mapped, {counts['dropped']} dropped, "
            f"{counts['needs decision']} need a decision") in result.report


@pytest.mark.parametrize("name", FILES)
def test_values_pass_the_chart_schema_and_carry_the_config(imported, name):
    schema = yaml.safe_load(CHART_SCHEMA.read_text())
    values = imported[name].values
    jsonschema.validators.validator_for(schema)(schema).validate(values)
    assert load_config(values["qhub"]).model_dump() == imported[name].config.model_dump()


@pytest.mark.parametrize("name", FILES)
def test_a_second_import_is_byte_identical(imported, name, tmp_path):
    again = Imported(name, tmp_path, ARGS.get(name, []))
    first = imported[name]
    assert again.config_path.read_bytes() == first.config_path.read_bytes()
    assert again.values_path.read_bytes() == first.values_path.read_bytes()
    assert again.report_path.read_bytes() == first.report_path.read_bytes()


def test_the_environments_are_carried_over_with_their_pins(imported):
    for name in FILES:
        result = imported[name]
        original = result.input.get("environments", {})
        declared = result.config.declared_environments
        assert sorted(declared) == sorted(spec["name"] for spec in original.values()), name
        for file_name, spec in original.items():
            carried = result.config.environments[file_name]
            assert carried.model_dump(include={"name", "channels", "dependencies"}, exclude_none=True) == \
                {k: v for k, v in spec.items() if k in ("name", "channels", "dependencies")}, name
    deps = imported["nebari-keycloak.yaml"].config.environments["environment-dask.yaml"].dependencies
    assert "nebari-dask==2024.9.1" in deps and "numpy=1.26.0" in deps


# --- explain: what each user gets, by hand from what the original platform gave them ------------------

def gets(plan: dict) -> dict:
    return {
        "uid": plan["uid"], "gid": plan["gid"], "admin": plan["admin"], "may_log_in": plan["may_log_in"],
        "home": plan["home"]["path"],
        "folders": sorted(m["path"] for m in plan["mounts"] if m["group"]),
        "profiles": plan["jupyterlab_profiles"],
        "dask": plan["dask_worker_profiles"],
    }


QHUB03_PASSWORD = {
    # alice: primary group admin -> the only QHub admin. QHub's admins now share a `hub-admins`
    # group (gid 1001, first free above 1000), hence its folder.
    "alice": dict(uid=1000, gid=101, admin=True, may_log_in=True, home="/home/alice",
                  folders=["/home/shared/admin", "/home/shared/hub-admins", "/home/shared/users"],
                  profiles=["small-instance", "lead-instance"], dask=["Small Worker", "Medium Worker"]),
    # bob: admin only as a secondary group -> not a QHub admin; Lead Instance lists users, so
    # QHub ignored its groups and bob (an analyst) never got it.
    "bob": dict(uid=1001, gid=100, admin=False, may_log_in=True, home="/home/bob",
                folders=["/home/shared/admin", "/home/shared/analysts", "/home/shared/users"],
                profiles=["small-instance", "analyst-instance"], dask=["Small Worker", "Medium Worker"]),
    "carol": dict(uid=1002, gid=102, admin=False, may_log_in=True, home="/home/carol",
                  folders=["/home/shared/analysts"], profiles=["small-instance", "analyst-instance"],
                  dask=["Small Worker", "Medium Worker"]),
    "data-sci": dict(uid=1003, gid=100, admin=False, may_log_in=True, home="/home/data-sci",
                     folders=["/home/shared/users"], profiles=["small-instance"],
                     dask=["Small Worker", "Medium Worker"]),
}

QHUB03_GITHUB = {
    "octocat": dict(uid=2001, gid=3000, admin=True, may_log_in=True, home="/home/octocat",
                    folders=["/home/shared/admin"], profiles=["cpu-instance", "huge-instance"],
                    dask=["Small Worker"]),
    "hubot": dict(uid=2002, gid=3001, admin=False, may_log_in=True, home="/home/hubot",
                  folders=["/home/shared/developers", "/home/shared/gpu"],
                  profiles=["cpu-instance", "gpu-instance"], dask=["Small Worker"]),
    "monalisa": dict(uid=2003, gid=3001, admin=False, may_log_in=True, home="/home/monalisa",
                     folders=["/home/shared/developers"], profiles=["cpu-instance", "huge-instance"],
                     dask=["Small Worker"]),
}

QHUB03_AUTH0 = {
    "jane@mail.example": dict(uid=1100, gid=1200, admin=True, may_log_in=True,
                              home=f"/home/{unix_name('jane@mail.example')}", folders=["/home/shared/admin"],
                              profiles=["standard", "jane-s-big-box"], dask=["Worker"]),
    "joe@mail.example": dict(uid=1101, gid=1201, admin=False, may_log_in=True,
                             home=f"/home/{unix_name('joe@mail.example')}", folders=["/home/shared/staff"],
                             profiles=["standard"], dask=["Worker"]),
}

UNKNOWN_KEYS = {
    "olive": dict(uid=4001, gid=4000, admin=False, may_log_in=True, home="/home/olive",
                  folders=["/home/shared/staff"], profiles=["only-instance"], dask=[]),
}


@pytest.mark.parametrize("name, expected", [
    ("qhub03-password.yaml", QHUB03_PASSWORD),
    ("qhub03-github.yaml", QHUB03_GITHUB),
    ("qhub03-auth0.yaml", QHUB03_AUTH0),
    ("unknown-keys.yaml", UNKNOWN_KEYS),
])
def test_qhub03_users_get_what_qhub_gave_them(imported, capsys, name, expected):
    result = imported[name]
    for user, want in expected.items():
        plan = result.explain(capsys, user)
        assert gets(plan) == want, user
        assert plan["environment_namespaces"][-1] == "global"  # QHub showed every environment to all
    assert sorted(result.config.security.users) == sorted(expected)


# Nebari: ids come from the dynamic range (uid = private gid); Keycloak groups from --groups.
NEBARI_KEYCLOAK = {
    # analysts (and everyone, through `users`) got the open profile and their group folder
    ("alice", ("analyst", "users")): dict(admin=False, may_log_in=True, folders=["/shared/analyst"],
                                          profiles=["small-instance"]),
    # Medium Instance's jupyterlab_profiles attribute sat on developer and ml-team (--keycloak-profile)
    ("bob", ("developer", "ml-team", "users")): dict(admin=False, may_log_in=True,
                                                     folders=["/shared/developer", "/shared/ml-team"],
                                                     profiles=["small-instance", "medium-instance"]),
    # GPU Instance's groups were not named: admin only (the report asks)
    ("carol", ("admin", "analyst", "users")): dict(admin=True, may_log_in=True,
                                                   folders=["/shared/admin", "/shared/analyst"],
                                                   profiles=["small-instance", "gpu-instance"]),
    # only in `users`: Nebari's JupyterHub refused them (allowed_groups analyst/developer/admin)
    ("dave", ("users",)): dict(admin=False, may_log_in=False, folders=[], profiles=["small-instance"]),
}

NEBARI_YAML = {
    # access: yaml is users OR groups, as in Nebari
    ("ana", ("analyst",)): dict(admin=False, may_log_in=True, folders=["/shared/analyst"],
                                profiles=["small-instance", "analyst-instance", "research-instance"]),
    ("ben", ("research", "developer")): dict(admin=False, may_log_in=True,
                                             folders=["/shared/developer", "/shared/research"],
                                             profiles=["small-instance", "research-instance"]),
    ("cy", ("analyst",)): dict(admin=False, may_log_in=True, folders=["/shared/analyst"],
                               profiles=["small-instance", "analyst-instance"]),
}


@pytest.mark.parametrize("name, expected, dask, namespace", [
    ("nebari-keycloak.yaml", NEBARI_KEYCLOAK, ["Small Worker", "Medium Worker"], "nebari-git"),
    ("nebari-yaml.yaml", NEBARI_YAML, ["Worker"], "global"),
])
def test_nebari_users_get_what_nebari_gave_them(imported, capsys, name, expected, dask, namespace):
    result = imported[name]
    uids = set()
    for (user, groups), want in expected.items():
        plan = result.explain(capsys, user, groups)
        got = gets(plan)
        assert {k: got[k] for k in want} == want, user
        assert got["home"] == f"/home/{user}" and got["dask"] == dask
        assert got["uid"] >= 200_000 and got["gid"] == got["uid"]  # their own ids, never 1000
        assert plan["environment_namespaces"][0] == user and plan["environment_namespaces"][-1] == namespace
        uids.add(got["uid"])
    assert len(uids) == len(expected)


def test_nebari_keycloak_login_groups_and_gids(imported):
    config = imported["nebari-keycloak.yaml"].config
    sec = config.security
    assert sec.authentication.type == "oidc"
    realm = "https://hub.nebula.dev/auth/realms/nebari/protocol/openid-connect"
    assert (sec.authentication.config.authorize_url, sec.authentication.config.token_url,
            sec.authentication.config.userdata_url) == (f"{realm}/auth", f"{realm}/token", f"{realm}/userinfo")
    assert sec.authentication.config.groups_claim == "groups"
    assert sec.authentication.config.oauth_callback_url == "https://hub.nebula.dev/hub/oauth_callback"
    assert {n: g.gid for n, g in sec.groups.items()} == {
        "admin": 2000, "developer": 2001, "analyst": 2002, "superadmin": 2003, "ml-team": 2004}
    assert sec.identity_provider_groups == {n: n for n in sec.groups}
    assert sec.admin_groups == ["admin"] and not sec.allow_unlisted_users
    assert "users" not in sec.groups  # shared_users_group -> /shared
    assert config.storage.shared_root == "/shared" and config.cull.server_idle_timeout == 3600
    lines = imported["nebari-keycloak.yaml"].report_lines()
    assert lines["security.shared_users_group"][0] == "mapped"
    assert lines["profiles.jupyterlab[2].access"][0] == "needs decision"
    assert lines["profiles.jupyterlab[1].access"][0] == "mapped"
    assert "uid 1000" in imported["nebari-keycloak.yaml"].report


def test_nebari_access_keycloak_without_groups_falls_back_to_admin(tmp_path, capsys):
    result = Imported("nebari-keycloak.yaml", tmp_path, [])
    assert result.config.profiles.jupyterlab[1].groups == ["admin"]
    assert result.report_lines()["profiles.jupyterlab[1].access"][0] == "needs decision"
    assert "ml-team" not in result.config.security.groups
    assert gets(result.explain(capsys, "bob", ("developer",)))["profiles"] == ["small-instance"]


def test_nebari_yaml_details(imported):
    result = imported["nebari-yaml.yaml"]
    assert [p.profile_slug for p in result.config.profiles.jupyterlab] == [
        "small-instance", "analyst-instance", "research-instance"]  # Retired: offered to nobody
    lines = result.report_lines()
    assert lines["profiles.jupyterlab[3]"][0] == "needs decision"
    assert lines["security.shared_users_group"][0] == "needs decision"
    assert lines["jupyterhub"][0] == "needs decision"
    assert result.config.cull.server_idle_timeout == 1800
    assert result.values["storage"] == {"type": "nfs-server", "size": "100Gi", "condaStoreSize": "50Gi"}


def test_qhub03_details(imported):
    password = imported["qhub03-password.yaml"]
    lines = password.report_lines()
    assert lines["security.users.alice.uid"] == ("mapped", "uid '1000' (a string in QHub 0.3) -> 1000")
    assert lines["profiles.jupyterlab[2].groups"][0] == "dropped"  # QHub ignored it next to users
    assert "mv VOLUME/home/data-2dsci VOLUME/home/data-sci" in password.report
    assert password.values["jupyterhub"]["proxy"]["https"] == {
        "enabled": True, "type": "letsencrypt", "hosts": ["jupyter.acme.org"],
        "letsencrypt": {"contactEmail": "ops@acme.org",
                        "acmeServer": "https://acme-v02.api.letsencrypt.org/directory"}}
    assert password.values["storage"] == {"type": "nfs-server", "condaStoreSize": "20Gi", "size": "50Gi"}
    # alice keeps uid 1000 (her files have it); the chart's conda-store, 1000 by default, moves aside
    assert password.values["condaStore"] == {"uid": 999, "gid": 999}
    assert "condaStore" not in imported["qhub03-github.yaml"].values
    # QHub's stock images are replaced by the chart's; a team's own image is kept
    assert all(p.kubespawner_override.image is None for p in password.config.profiles.jupyterlab)
    github = imported["qhub03-github.yaml"]
    assert github.config.profiles.jupyterlab[1].kubespawner_override.image == "ghcr.io/octolab/gpu-lab:2021.10"
    assert github.config.profiles.jupyterlab[1].kubespawner_override.gpus == 1
    lab = {"name": "ghcr.io/octolab/lab", "tag": "2021.10"}
    assert github.values["jupyterhub"]["singleuser"]["image"] == lab
    assert github.values["dask-gateway"]["gateway"]["backend"]["image"] == lab
    assert github.values["jupyterhub"]["proxy"]["https"]["secret"] == {"name": "octolab-tls"}
    auth0 = imported["qhub03-auth0.yaml"].config.security.authentication
    assert (auth0.type, auth0.config.auth0_subdomain, auth0.config.scope) == (
        "Auth0", "mailhub", ["openid", "email", "profile"])
    assert imported["qhub03-github.yaml"].config.security.authentication.config.client_id == "0123456789abcdef0123"


def test_unknown_keys_need_a_decision(imported):
    lines = imported["unknown-keys.yaml"].report_lines()
    for path in ["team_wiki", "security.ldap", "security.users.olive.email", "security.groups.staff.description",
                 "profiles.jupyterlab[0].cost_center", "profiles.jupyterlab[0].kubespawner_override.extra_labels",
                 "profiles.notebook_servers", "environments['environment-odd.yaml'].author"]:
        assert lines[path][0] == "needs decision", path
    assert lines["profiles.jupyterlab[0].kubespawner_override.lifecycle_hooks"][0] == "dropped"
    assert "## Needs a decision\n- team_wiki:" in imported["unknown-keys.yaml"].report


# --- bad input: a message, never a traceback --------------------------------------------------------

@pytest.mark.parametrize("text, message", [
    ("- a\n- b\n", "not a mapping of sections"),
    ("foo: 1\n", "cannot tell whether this is a QHub 0.3 or a Nebari file"),
    ("provider: do\nfoo: [\n", "is not valid YAML"),
    ("qhub_version: 0.3.14\nsecurity:\n  users:\n    x: {uid: '7', primary_group: g}\n  groups:\n    g: {gid: 500}\n",
     "security.users.x.uid"),
])
def test_bad_input_is_a_clear_error(tmp_path, text, message):
    source = tmp_path / "in.yaml"
    source.write_text(text)
    result = qhub_hub("import", str(source), "-o", str(tmp_path / "out.yaml"), check=False)
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out.yaml").exists()


def test_groups_made_in_keycloak_keep_their_folders(tmp_path, capsys):
    result = Imported("nebari-yaml.yaml", tmp_path, ["--keycloak-group", "data-eng"])
    gids = {n: g.gid for n, g in result.config.security.groups.items()}
    assert gids == {"admin": 2000, "developer": 2001, "analyst": 2002, "superadmin": 2003, "data-eng": 2004,
                    "research": 2005}
    plan = gets(result.explain(capsys, "dee", ("data-eng",)))
    assert plan["folders"] == ["/shared/data-eng"] and plan["may_log_in"]


# --- the same answers from the originals' own rules, for every user of every QHub 0.3 file ------------

def qhub03_gave(data: dict, user: str) -> dict:
    """What QHub 0.3's jupyterhub_config.py gave a user: profiles by its filter (users, else groups,
    else everyone), admin when the primary group is admin, a folder per group of the user."""
    entry = data["security"]["users"][user]
    groups = {entry["primary_group"], *entry.get("secondary_groups", [])}
    profiles = []
    for p in data["profiles"]["jupyterlab"]:
        if "users" in p:
            allowed = user in p["users"]
        elif "groups" in p:
            allowed = bool(groups & set(p["groups"]))
        else:
            allowed = True
        if allowed:
            profiles.append(p["display_name"])
    return {"uid": int(entry["uid"]), "gid": data["security"]["groups"][entry["primary_group"]]["gid"],
            "admin": entry["primary_group"] == "admin", "profiles": profiles,
            "folders": {f"/home/shared/{g}" for g in groups}}


@pytest.mark.parametrize("name", ["qhub03-password.yaml", "qhub03-github.yaml", "qhub03-auth0.yaml"])
def test_qhub03_rules_and_explain_agree_for_every_user(imported, capsys, name):
    result = imported[name]
    names = {p.profile_slug: p.display_name for p in result.config.profiles.jupyterlab}
    for user in result.input["security"]["users"]:
        want = qhub03_gave(result.input, user)
        plan = result.explain(capsys, user)
        got_folders = {m["path"] for m in plan["mounts"] if m["group"]}
        assert (plan["uid"], plan["gid"], plan["admin"]) == (want["uid"], want["gid"], want["admin"]), user
        assert [names[s] for s in plan["jupyterlab_profiles"]] == want["profiles"], user
        # every folder QHub gave; the only extra is the hub-admins group holding QHub's admins
        assert got_folders - want["folders"] <= {"/home/shared/hub-admins"} and want["folders"] <= got_folders


def test_qhub03_passwords_still_log_in_with_qhubs_admins(imported):
    """The real password authenticator on the imported config: QHub's bcrypt hashes work unchanged,
    and admin comes out as QHub decided it (primary group admin)."""
    import asyncio

    from qhub_hub.authenticator import QHubPasswordAuthenticator

    auth = QHubPasswordAuthenticator(qhub_config_path=str(imported["qhub03-password.yaml"].config_path))

    def login(user: str, password: str):
        return asyncio.run(auth.authenticate(None, {"username": user, "password": password}))

    alice, bob = login("alice", "alice-password"), login("bob", "bob-password")
    assert (alice["name"], alice["admin"]) == ("alice", True)
    assert (bob["name"], bob["admin"]) == ("bob", False)
    assert sorted(bob["groups"]) == ["admin", "analysts", "users"]
    assert login("carol", "bob-password") is None


def test_a_keycloak_profile_name_that_matches_nothing_is_refused(tmp_path):
    result = qhub_hub("import", str(DATA / "nebari-keycloak.yaml"), "-o", str(tmp_path / "out.yaml"),
                      "--keycloak-profile", "Medium instance=developer", check=False)
    assert result.returncode == 1
    assert "'Medium instance': no profile with `access: keycloak`" in result.stderr
    assert "'Medium Instance', 'GPU Instance'" in result.stderr and "Traceback" not in result.stderr


def test_a_nebari_file_without_profiles_gets_nebaris_defaults(capsys, tmp_path):
    source = tmp_path / "nebari-config.yaml"
    source.write_text("project_name: tiny\nprovider: local\ndomain: tiny.example.org\nnebari_version: 2024.9.1\n")
    out = qhub_hub("import", str(source), "-o", str(tmp_path / "qhub-config.yaml"), "--report",
                   str(tmp_path / "report.txt"))
    assert out.returncode == 0
    config = load_config(tmp_path / "qhub-config.yaml")
    assert [p.profile_slug for p in config.profiles.jupyterlab] == ["small-instance", "medium-instance"]
    assert list(config.profiles.dask_worker) == ["Small Worker", "Medium Worker"]
    report = (tmp_path / "report.txt").read_text()
    assert "Nebari served its defaults" in report and "set it to 900" in report
    plan = explain(capsys, tmp_path / "qhub-config.yaml", "zoe", ("analyst",))
    assert gets(plan)["profiles"] == ["small-instance", "medium-instance"]


def test_the_input_is_never_overwritten(tmp_path):
    source = tmp_path / "qhub-config.yaml"
    source.write_bytes((DATA / "qhub03-auth0.yaml").read_bytes())
    result = qhub_hub("import", str(source), "-o", str(source), check=False)
    assert result.returncode == 1 and "is the file being imported" in result.stderr
    assert source.read_bytes() == (DATA / "qhub03-auth0.yaml").read_bytes()
