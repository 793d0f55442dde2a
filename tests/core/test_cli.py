"""The qhub-hub command, run as a user would run it: a subprocess, exit codes and messages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

QHUB = [str(Path(sys.executable).parent / "qhub-hub")]


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*QHUB, *args], capture_output=True, text=True, input=stdin, timeout=60)


def test_validate_ok(example_config_path):
    result = run("validate", str(example_config_path))
    assert result.returncode == 0, result.stderr
    assert "valid (6 users, 6 groups, 4 jupyterlab profiles, 2 dask worker profiles, 2 environments)" in result.stdout


def test_validate_lists_every_problem_and_exits_1(tmp_path, example_config_path):
    data = yaml.safe_load(example_config_path.read_text())
    data["profiles"]["jupyterlab"][2]["groups"] = ["analysts", "quants"]
    data["security"]["users"]["bob"]["uid"] = 3001
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    result = run("validate", str(bad))
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert ("error: profiles.jupyterlab[2].groups[1]: unknown group 'quants': "
            "add it to security.groups or fix the name") in lines
    assert any(line.startswith("error: security.users.bob.uid: uid 3001 is also the uid of 'alice'") for line in lines)
    assert lines[-1].startswith(f"{bad}: 2 problem(s); fix them")
    assert "Traceback" not in result.stderr


def test_validate_unreadable_file(tmp_path):
    result = run("validate", str(tmp_path / "missing.yaml"))
    assert result.returncode == 1
    assert "cannot read" in result.stderr and "Traceback" not in result.stderr


def test_explain_prints_the_plan_as_yaml(example_config_path):
    result = run("explain", str(example_config_path), "erin")
    assert result.returncode == 0, result.stderr
    plan = yaml.safe_load(result.stdout)
    assert (plan["uid"], plan["gid"], plan["supplemental_gids"], plan["readonly_gids"]) == (3005, 2005, [2004], [2001])
    assert plan["jupyterlab_profiles"] == ["small", "medium", "highmem"]
    assert {"path": "/shared/analysts", "subpath": "shared/analysts", "owner_uid": 0, "owner_gid": 2001,
            "mode": "2770", "readonly": True, "group": "analysts"} in plan["mounts"]


def test_explain_identity_provider_user_with_groups(example_config_path):
    result = run("explain", str(example_config_path), "octocat", "--groups", "ml,unknown")
    assert result.returncode == 0, result.stderr
    plan = yaml.safe_load(result.stdout)
    assert plan["may_log_in"] is True and plan["in_config"] is False
    assert "gpu" in plan["jupyterlab_profiles"]
    assert plan["uid"] >= 200000


def test_explain_warns_about_users_who_cannot_log_in(example_config_path):
    result = run("explain", str(example_config_path), "mallory")
    assert result.returncode == 0
    assert "'mallory' may not log in" in result.stderr


def test_schema_is_json_and_strict():
    result = run("schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert schema["additionalProperties"] is False
    assert "security" in schema["properties"]


def test_hash_password_makes_a_hash_the_config_accepts(tmp_path):
    import bcrypt

    result = run("hash-password", stdin="s3cret\n")
    assert result.returncode == 0, result.stderr
    hashed = result.stdout.strip()
    assert bcrypt.checkpw(b"s3cret", hashed.encode())
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"security": {"groups": {"g": {"gid": 500}}, "users": {
        "u": {"uid": 1500, "primary_group": "g", "password": hashed}}}}))
    assert run("validate", str(config)).returncode == 0


def test_usage_error_exit_code():
    result = run("frobnicate")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr
