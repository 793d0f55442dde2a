"""The small rules behind issue 11's small fixes, without a running platform (the platform tests,
tests/local/test_robustness.py, show each one through the real hub)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from jupyter_client.kernelspec import KernelSpec

from qhub_hub.conda_store.kernels import with_dask_environment
from qhub_hub.config_errors import ConfigError
from qhub_hub.last_good import Loaded, load_with_fallback, save_last_good
from qhub_hub.passwords import password_problem
from qhub_hub.spawner_options import RefusalLogFilter, SpawnRefused
from qhub_hub.user_options import MAX_BYTES, known_options, user_options_problem

REPO = Path(__file__).resolve().parents[2]


# --- passwords (bcrypt reads at most 72 bytes) ---------------------------------------------------


@pytest.mark.parametrize(("password", "problem"), [
    ("a" * 72, None),
    ("a" * 73, "this one is 73 bytes"),
    ("é" * 36, None),  # 72 bytes
    ("é" * 37, "this one is 74 bytes"),
])
def test_password_length_in_bytes(password: str, problem: str | None) -> None:
    found = password_problem(password)
    assert (found is None) if problem is None else (problem in found and "at most 72 bytes" in found)


def hash_password(password: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qhub_hub.cli", "hash-password"], input=password + "\n",
                          capture_output=True, text=True, timeout=60)


def test_hash_password_refuses_a_long_password_with_a_message() -> None:
    proc = hash_password("x" * 73)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr == ("error: Passwords may be at most 72 bytes long (bcrypt's limit); this one is 73 "
                           "bytes in UTF-8. Use a shorter password.\n")
    proc = hash_password("x" * 72)
    assert proc.returncode == 0 and proc.stdout.startswith("$2b$"), proc.stderr


# --- user_options: the profile, nothing else -------------------------------------------------------


def test_user_options_rules() -> None:
    assert user_options_problem(None) is None
    assert user_options_problem({"profile": "small"}) is None
    assert user_options_problem({"profile": "small", "b": 1, "a": 2}) == (
        400, "Unknown server option(s): 'a', 'b'. This platform takes only 'profile'; remove the others.")
    status, message = user_options_problem({"profile": "x" * MAX_BYTES})
    assert status == 413 and f"at most {MAX_BYTES} are accepted" in message
    assert known_options({"profile": "small", "evil": 1}) == {"profile": "small"}
    assert known_options({"profile": "x" * MAX_BYTES}) == {}
    assert known_options({"profile": "small", "x": "a" * MAX_BYTES}) == {"profile": "small"}


# --- a refused spawn: one warning, no tracebacks ---------------------------------------------------


def record(level: int, msg: str, error: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(error), error, None) if error else None
    return logging.LogRecord("JupyterHub", level, __file__, 1, msg, None, exc_info)


def test_refusal_log_filter_drops_only_refusals() -> None:
    keep = RefusalLogFilter().filter
    refused = SpawnRefused(403, "'x' may not use the profile 'gpu'")
    broken = SpawnRefused(500, "could not set up the cgroup")
    assert not keep(record(logging.ERROR, "Exception applying user_options for x", refused))
    assert not keep(record(logging.ERROR, f"Error starting x's server: {refused}"))
    assert keep(record(logging.ERROR, "Exception applying user_options for x", broken))
    assert keep(record(logging.ERROR, f"Error starting x's server: {broken}"))
    assert keep(record(logging.ERROR, "Error starting x's server: HTTP 403: Forbidden (something else)"))
    assert keep(record(logging.ERROR, "Unhandled error", RuntimeError("boom")))


# --- the kernel that asks chooses the Dask environment -------------------------------------------


def test_server_kernels_ask_for_their_own_environment(tmp_path: Path) -> None:
    prefix = tmp_path / "server-env"
    (prefix / "share/jupyter/kernels/python3").mkdir(parents=True)
    own = KernelSpec(resource_dir=str(prefix / "share/jupyter/kernels/python3"), argv=["python"], env={})
    assert with_dask_environment(own, str(prefix)).env == {"QHUB_DASK_ENVIRONMENT": str(prefix)}
    elsewhere = KernelSpec(resource_dir=str(tmp_path / "home/.local/share/jupyter/kernels/venv"), argv=["x"])
    assert with_dask_environment(elsewhere, str(prefix)).env == {}
    chosen = KernelSpec(resource_dir=own.resource_dir, argv=["python"], env={"QHUB_DASK_ENVIRONMENT": "/x"})
    assert with_dask_environment(chosen, str(prefix)).env == {"QHUB_DASK_ENVIRONMENT": "/x"}


# --- the last good config ---------------------------------------------------------------------------


def write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


GOOD = {"security": {"authentication": {"type": "password"}, "groups": {"g": {"gid": 5000}},
                     "users": {"u": {"uid": 5001, "primary_group": "g"}}}}
BAD = {"security": {**GOOD["security"], "users": {"u": {"uid": 5001, "primary_group": "nope"}}}}


def test_only_a_valid_file_becomes_the_copy(tmp_path: Path) -> None:
    config, copy = write(tmp_path / "qhub.yaml", GOOD), tmp_path / "state" / "last-good.yaml"
    assert save_last_good(config, copy)
    assert copy.read_text() == config.read_text() and copy.stat().st_mode & 0o777 == 0o600
    assert not save_last_good(config, copy)  # unchanged: not rewritten
    write(config, BAD)
    assert not save_last_good(config, copy)
    assert yaml.safe_load(copy.read_text()) == GOOD
    assert [p.name for p in copy.parent.iterdir()] == ["last-good.yaml"]  # no temporary left


def test_load_with_fallback(tmp_path: Path) -> None:
    config, copy = write(tmp_path / "qhub.yaml", GOOD), tmp_path / "last-good.yaml"
    loaded = load_with_fallback(config, copy)
    assert isinstance(loaded, Loaded) and not loaded.from_copy and copy.exists()
    write(config, BAD)
    loaded = load_with_fallback(config, copy)
    assert loaded.from_copy and loaded.copy == copy
    assert loaded.config.security.users["u"].primary_group == "g"
    assert "security.users.u.primary_group" in loaded.note(config)
    assert "Running with the last good copy" in loaded.note(config)
    copy.unlink()
    with pytest.raises(ConfigError):
        load_with_fallback(config, copy)


def test_a_fresh_process_falls_back_to_the_copy(tmp_path: Path) -> None:
    """`hub_identity.get_config` in a process started while the file is invalid (the gateway's
    options, the SSH check, the conda-store login)."""
    config, copy = write(tmp_path / "qhub.yaml", GOOD), tmp_path / "last-good.yaml"
    save_last_good(config, copy)
    write(config, BAD)
    code = ("import logging, sys; logging.basicConfig(); from qhub_hub.hub_identity import get_config; "
            "print(get_config(sys.argv[1]).security.users['u'].primary_group)")
    env = {**os.environ, "QHUB_LAST_GOOD_CONFIG": str(copy)}
    proc = subprocess.run([sys.executable, "-c", code, str(config)], capture_output=True, text=True, env=env)
    assert proc.returncode == 0 and proc.stdout == "g\n", proc.stderr
    assert f"the last good copy {copy} is used until it is fixed" in proc.stderr
    env.pop("QHUB_LAST_GOOD_CONFIG")  # no copy kept: the file's problems, as before
    proc = subprocess.run([sys.executable, "-c", code, str(config)], capture_output=True, text=True, env=env)
    assert proc.returncode == 1 and "ConfigError" in proc.stderr


# --- setup: `run.sh up` after `run.sh test` (and the reverse) installs nothing again -------------


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="setup.sh writes the root-owned environment")
def test_setup_does_not_reinstall_between_up_and_test() -> None:
    prefix = Path(sys.prefix)
    stamp = prefix / ".qhub-hub-installed"
    saved = stamp.read_text()
    env = {**os.environ, "QHUB_PREFIX": str(prefix), "CI": "true"}

    def setup(*args: str) -> str:
        proc = subprocess.run(["bash", "scripts/setup.sh", *args], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=1200, stdin=subprocess.DEVNULL)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout + proc.stderr

    try:
        setup("--test")  # as `run.sh test` leaves it (installs only if this checkout changed)
        assert stamp.read_text().endswith("[test]\n")
        quiet = f"setup: ready ({prefix})\n"  # nothing installed, nothing to say
        assert setup() == quiet  # `run.sh up` afterwards
        assert setup("--test") == quiet
        stamp.write_text(stamp.read_text().replace("[test]", ""))  # as `run.sh up` alone leaves it
        out = setup("--test")
        assert "setup: pip install the test extras" in out and "pip install -e" not in out
        assert stamp.read_text().endswith("[test]\n")
    finally:
        if not stamp.read_text().endswith("[test]\n"):
            stamp.write_text(saved)


def test_gateway_options_without_any_good_config_refuse_with_a_message(tmp_path: Path) -> None:
    """No valid file and no copy (a gateway started on a broken config): 422, never a 500."""
    import asyncio

    from dask_gateway_server.models import User

    from qhub_hub.gateway_options import OptionRefused, QHubClusterOptions
    from qhub_hub.hub_identity import forget_configs

    forget_configs()
    factory = QHubClusterOptions(rendering="local", config_path=write(tmp_path / "qhub.yaml", BAD),
                                 plan_source=object())  # type: ignore[arg-type]  # never asked
    form = asyncio.run(factory(User("u")))
    with pytest.raises(OptionRefused, match=r"config is invalid, so no Dask cluster can be started"):
        form.get_configuration(form.parse_options({}), User("u"))
    forget_configs()


def test_conda_store_starts_on_the_last_good_copy_and_says_so(tmp_path: Path) -> None:
    """The embedded conda-store's config file, run as conda-store runs it, while the file is bad."""
    from qhub_hub.local.conda_store import CONFIG_TEXT

    config, copy = write(tmp_path / "qhub.yaml", GOOD), tmp_path / "last-good.yaml"
    save_last_good(config, copy)
    write(config, BAD)
    (tmp_path / "conda_store_config.py").write_text(CONFIG_TEXT)
    code = ("import sys; from traitlets.config import Config; c = Config(); "
            "exec(open(sys.argv[1]).read(), {'c': c}); print(c.CondaStore.default_namespace)")
    env = {**os.environ, "QHUB_CONFIG": str(config), "QHUB_LAST_GOOD_CONFIG": str(copy),
           "CONDA_STORE_DATABASE_URL": "sqlite:///x.sqlite", "CONDA_STORE_JWT_SECRET": "s",
           "QHUB_CONDA_STORE_HUB_TOKEN": "t"}
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "conda_store_config.py")],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0 and proc.stdout == "global\n", proc.stderr
    assert f"qhub-hub: {config} is not a valid qhub config" in proc.stderr
    assert f"Running with the last good copy {copy}" in proc.stderr
