"""`qhub-hub diff` and `qhub-hub explain --profile/--folder/--group`, run as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

QHUB = str(Path(sys.executable).parent / "qhub-hub")
REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "qhub-config.yaml"


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([QHUB, *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def edited(tmp_path: Path, name: str, fn) -> Path:
    data = yaml.safe_load(EXAMPLE.read_text())
    fn(data)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def bob_joins_ml(d):
    d["security"]["users"]["bob"]["secondary_groups"] = ["analysts", "ml"]


def test_identical_configs_print_nothing_and_exit_0(tmp_path):
    copy = tmp_path / "copy.yaml"
    copy.write_text(EXAMPLE.read_text() + "\n# a comment changes nothing\n")
    for fmt in ("text", "markdown", "json"):
        result = run("diff", str(EXAMPLE), str(copy), "--format", fmt, "--exit-code")
        assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_text_output_and_exit_code(tmp_path):
    new = edited(tmp_path, "new.yaml", bob_joins_ml)
    result = run("diff", str(EXAMPLE), str(new))
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"""--- {EXAMPLE}
+++ {new}

bob:
  supplemental gids: 2001 -> 2001, 2003
  group added: ml (read-write)
  folder gained: /shared/ml (read-write)
  JupyterLab profile gained: gpu
  Dask worker profile gained: Large Worker
  environment namespace gained: ml
"""
    assert run("diff", str(EXAMPLE), str(new), "--exit-code").returncode == 1


def test_json_output(tmp_path):
    new = edited(tmp_path, "new.yaml", lambda d: d["security"]["groups"]["ml"].update(gid=2013))
    result = run("diff", str(EXAMPLE), str(new), "--format", "json")
    data = json.loads(result.stdout)
    assert [w["code"] for w in data["warnings"]] == ["gid_renumbered"]
    assert [(s["name"], s["status"], [c["kind"] for c in s["changes"]]) for s in data["subjects"]] == [
        ("carol", "changed", ["supplemental_gids"]), ("dave", "changed", ["supplemental_gids"])]
    assert data["subjects"][1]["changes"][0] == {
        "kind": "supplemental_gids", "item": None, "before": [2003], "after": [2013],
        "text": "supplemental gids: 2003 -> 2013"}


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=cwd,
                   check=True, capture_output=True)


def test_against_a_git_revision(tmp_path):
    repo = tmp_path / "repo"
    (repo / "deploy").mkdir(parents=True)
    config = repo / "deploy" / "qhub-config.yaml"
    config.write_text(EXAMPLE.read_text())
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "config")
    config.write_text(edited(tmp_path, "x.yaml", bob_joins_ml).read_text())
    result = run("diff", "--against", "main", "qhub-config.yaml", "--exit-code", cwd=repo / "deploy")
    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith("--- qhub-config.yaml at main\n+++ qhub-config.yaml\n\nbob:\n")
    assert "JupyterLab profile gained: gpu" in result.stdout
    # the committed file itself: no change
    git(repo, "commit", "-q", "-am", "bob joins ml")
    result = run("diff", "--against", "HEAD", str(config), "--exit-code")
    assert (result.returncode, result.stdout) == (0, "")
    # a file that did not exist at the revision is compared with an empty config
    new_file = repo / "deploy" / "other.yaml"
    new_file.write_text(EXAMPLE.read_text())
    result = run("diff", "--against", "HEAD", str(new_file))
    assert result.returncode == 0, result.stderr
    assert "does not exist at HEAD" in result.stderr and "alice (new access):" in result.stdout
    # an unknown revision: a message and exit 2
    result = run("diff", "--against", "no-such-branch", str(config))
    assert result.returncode == 2
    assert "unknown git revision 'no-such-branch'" in result.stderr and "Traceback" not in result.stderr


def test_not_in_a_git_repository(tmp_path):
    config = tmp_path / "qhub-config.yaml"
    config.write_text(EXAMPLE.read_text())
    result = run("diff", "--against", "main", str(config))
    assert result.returncode == 2
    assert "is not inside a git repository" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("args", [["only-one.yaml"], ["a.yaml", "b.yaml", "c.yaml"]])
def test_wrong_number_of_files(args):
    result = run("diff", *args)
    assert result.returncode == 2 and "give two files" in result.stderr


def test_an_invalid_config_exits_2_naming_the_problem(tmp_path):
    bad = edited(tmp_path, "bad.yaml", lambda d: d["security"]["users"]["bob"].update(uid=3001))
    result = run("diff", str(EXAMPLE), str(bad), "--exit-code")
    assert result.returncode == 2
    assert f"error: {bad} is not a valid qhub config (1 problem(s)):" in result.stderr
    assert "security.users.bob.uid: uid 3001 is also the uid of 'alice'" in result.stderr
    missing = run("diff", str(EXAMPLE), str(tmp_path / "missing.yaml"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr and "Traceback" not in missing.stderr


# --- reverse queries --------------------------------------------------------------------------------


def explain(*args: str) -> dict:
    result = run("explain", str(EXAMPLE), *args)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_who_may_start_a_profile():
    assert explain("--profile", "gpu") == {
        "profile": "gpu", "display_name": "GPU Instance", "open_to_everyone": False, "default": False,
        "may_start": {"users": ["carol", "dave"]}}
    assert explain("--profile", "small")["may_start"] == {
        "users": ["alice", "bob", "carol", "dave", "erin", "frank"]}


def test_who_reads_and_writes_a_folder():
    assert explain("--folder", "/shared/analysts/") == {
        "folder": "/shared/analysts", "writes": {"users": ["alice", "bob"]},
        "reads_only": {"users": ["erin"]}}
    assert explain("--folder", "/home/carol") == {
        "folder": "/home/carol", "writes": {"users": ["carol"]}, "reads_only": {}}


def test_group_members_and_grants(tmp_path):
    path = edited(tmp_path, "idp.yaml", lambda d: d["security"].update(identity_provider_groups={
        "acme:ml-team": "ml", "acme:ml-readers": {"group": "ml", "readonly": True}}))
    result = run("explain", str(path), "--group", "ml")
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout) == {
        "group": "ml", "gid": 2003,
        "read_write_members": {"users": ["carol", "dave"], "identity_provider_groups": ["acme:ml-team"]},
        "read_only_members": {"identity_provider_groups": ["acme:ml-readers"]},
        "grants": {"folders": ["/shared/ml"], "jupyterlab_profiles": ["gpu"],
                   "dask_worker_profiles": ["Large Worker"], "environment_namespaces": ["ml"],
                   "admin": False}}
    assert explain("--group", "admin")["grants"]["admin"] is True


@pytest.mark.parametrize(("args", "message"), [
    (["--profile", "nope"], "no JupyterLab profile with slug 'nope' in the config (profiles: small, medium, "
                            "highmem, gpu)"),
    (["--folder", "/etc"], "no one's server has the folder '/etc'; folders are /home/<user>, /shared and "
                           "/shared/<group>"),
    (["--group", "nope"], "no group 'nope' in security.groups"),
    (["alice", "--group", "ml"], "give one of USER, --profile, --folder or --group"),
    ([], "give a USER, or one of --profile SLUG, --folder PATH, --group NAME"),
])
def test_reverse_query_errors(args, message):
    result = run("explain", str(EXAMPLE), *args)
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr
