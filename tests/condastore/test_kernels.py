"""conda-store environments as kernels: the layout on disk, the kernel specs, and a real Jupyter
server whose /api/kernelspecs lists exactly the environments of its user's namespaces.

No build can run here (no conda channels), so the environments are made at the paths conda-store
builds to, ``<root>/<namespace>/envs/<name>``: small venvs that reach the project's ipykernel
through a .pth file (`support.make_environment`), with ipykernel's kernel.json or its package.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from jupyter_client import BlockingKernelClient
from jupyter_client.kernelspec import KernelSpecManager

from qhub_hub.conda_store.kernels import (
    CondaStoreKernelSpecManager,
    environment_kernels,
    jupyter_server_args,
    kernel_name,
)
from qhub_hub.conda_store.layout import (
    EnvironmentRef,
    dask_environments_for,
    environments_for,
    environments_in,
)
from qhub_hub.config import load_config
from qhub_hub.policy import plan_for
from qhub_hub.server_env import server_environment
from tests.support.net import free_port, wait_for_http

from .conftest import write_config
from .support import make_environment

# namespace -> {environment: how ipykernel is there}; None: a Python without ipykernel
ENVIRONMENTS: dict[str, dict[str, str | None]] = {
    "global": {"dask": "kernelspec", "analytics": "package", "plain": None},
    "analysts": {"reports": "kernelspec"},
    "ml": {"torch": "kernelspec"},
    "finance": {"ledger": "package"},
    "users": {"common": "kernelspec"},
    "alice": {"scratch": "kernelspec", "Caps.Env": "package"},
    "bob": {"scratch": "kernelspec"},
    "erin": {"notes": "kernelspec"},
}
WITH_KERNELS = {(ns, name) for ns, envs in ENVIRONMENTS.items()
                for name, ipk in envs.items() if ipk}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    """A config whose environments_root holds the environments above, plus things that are not
    environments: a folder without bin/python, a namespace nobody has, a stray file."""
    directory = tmp_path_factory.mktemp("condastore-kernels")
    config = load_config(write_config(directory))
    root = Path(config.conda_store.environments_root)
    for namespace, envs in ENVIRONMENTS.items():
        for name, ipykernel in envs.items():
            make_environment(root / namespace / "envs" / name, ipykernel=ipykernel)
    (root / "global" / "envs" / "half-built" / "bin").mkdir(parents=True)  # no python
    make_environment(root / "ml" / "envs" / "gpu", ipykernel="kernelspec")
    (root / "ml" / "envs" / "gpu" / "share/jupyter/kernels/ir").mkdir(parents=True)
    (root / "ml" / "envs" / "gpu" / "share/jupyter/kernels/ir/kernel.json").write_text(json.dumps(
        {"argv": ["R", "--slave", "-e", "IRkernel::main()", "--args", "{connection_file}"],
         "display_name": "R", "language": "R"}))
    (root / "ml" / "envs" / "gpu" / "share/jupyter/kernels/broken").mkdir(parents=True)
    (root / "ml" / "envs" / "gpu" / "share/jupyter/kernels/broken/kernel.json").write_text("{")
    (root / "global" / "envs" / "README").write_text("not an environment")
    return config, root


def expected_kernels(namespaces: list[str]) -> set[str]:
    names = {kernel_name(ns, env) for ns, env in WITH_KERNELS if ns in namespaces}
    if "ml" in namespaces:
        names |= {kernel_name("ml", "gpu"), kernel_name("ml", "gpu", "ir")}
    return names


def test_environments_are_found_per_namespace_in_order(site):
    config, root = site
    refs = environments_in(root, ["alice", "analysts", "../alice", "", "nobody", "global", "alice"])
    assert [r.label for r in refs] == [
        "alice/Caps.Env", "alice/scratch", "analysts/reports",
        "global/analytics", "global/dask", "global/plain"]  # no half-built, no README
    assert refs[0] == EnvironmentRef("alice", "Caps.Env", root / "alice/envs/Caps.Env")
    assert refs[0].python.is_file()


@pytest.mark.parametrize(("user", "visible"), [
    ("alice", ["alice/Caps.Env", "alice/scratch", "analysts/reports", "users/common",
               "global/analytics", "global/dask", "global/plain"]),
    ("bob", ["bob/scratch", "analysts/reports", "ml/gpu", "ml/torch", "users/common",
             "global/analytics", "global/dask", "global/plain"]),
    ("frank", ["users/common", "global/analytics", "global/dask", "global/plain"]),
])
def test_environments_for_a_plan(site, user, visible):
    config, _ = site
    plan = plan_for(config, user)
    assert [r.label for r in environments_for(config, plan)] == visible
    # Dask gets the declared worker environments only (dask_gateway.worker_environments)
    assert [r.label for r in dask_environments_for(config, plan)] == ["global/dask"]


def test_kernel_names_are_valid_stable_and_distinct():
    assert kernel_name("global", "dask") == "conda-global.dask"
    assert kernel_name("ml", "gpu", "ir") == "conda-ml.gpu-ir"
    folded = kernel_name("alice", "Caps.Env")
    assert re.fullmatch(r"conda-alice\.caps\.env-[0-9a-f]{8}", folded)
    assert folded == kernel_name("alice", "Caps.Env")
    assert folded != kernel_name("alice", "caps.env") != kernel_name("alice", "CAPS.env")
    # the namespace ends at the first '.', so these cannot collide
    assert kernel_name("a-b", "c") != kernel_name("a", "b-c")


def test_kernel_specs_run_the_environments_own_python(site):
    _, root = site
    dask = EnvironmentRef("global", "dask", root / "global/envs/dask")
    [kernel] = environment_kernels(dask, path="/usr/bin")
    assert kernel.name == "conda-global.dask"
    assert kernel.resource_dir == str(dask.prefix / "share/jupyter/kernels/python3")
    assert kernel.spec == {
        "argv": [str(dask.python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "dask (global)", "language": "python",
        "env": {"CONDA_PREFIX": str(dask.prefix), "PATH": f"{dask.prefix}/bin:/usr/bin",
                "QHUB_DASK_ENVIRONMENT": str(dask.prefix)},  # clusters from this kernel use this env
        "metadata": {"debugger": True, "conda_store": {
            "namespace": "global", "environment": "dask", "prefix": str(dask.prefix)}},
    }
    # ipykernel installed but no kernel.json: a Python kernel all the same
    [made] = environment_kernels(EnvironmentRef("global", "analytics",
                                                root / "global/envs/analytics"), path="")
    assert made.spec["argv"][0] == str(root / "global/envs/analytics/bin/python")
    assert made.spec["display_name"] == "analytics (global)"
    # no ipykernel: not a kernel; a broken kernel.json is skipped, other kernels are offered
    assert environment_kernels(EnvironmentRef("global", "plain", root / "global/envs/plain")) == []
    gpu = environment_kernels(EnvironmentRef("ml", "gpu", root / "ml/envs/gpu"))
    assert {k.name: k.spec["display_name"] for k in gpu} == {
        "conda-ml.gpu": "gpu (ml)", "conda-ml.gpu-ir": "gpu (ml) R"}
    assert {k.name: k.spec["argv"][0] for k in gpu}["conda-ml.gpu-ir"] == "R"  # no R there


def test_the_manager_reads_the_spawner_variables(site, monkeypatch):
    config, root = site
    for key, value in server_environment(config, plan_for(config, "erin")).items():
        monkeypatch.setenv(key, value)
    manager = CondaStoreKernelSpecManager(include_server_kernels=False)
    assert manager.namespaces == ["erin", "analysts", "finance", "users", "global"]
    assert manager.environments_root == str(root)
    assert set(manager.find_kernel_specs()) == expected_kernels(manager.namespaces)
    assert manager.get_kernel_spec("conda-finance.ledger").argv[0] == str(
        root / "finance/envs/ledger/bin/python")
    with pytest.raises(Exception, match="conda-bob.scratch"):
        manager.get_kernel_spec("conda-bob.scratch")
    monkeypatch.delenv("QHUB_ENVIRONMENT_NAMESPACES")
    assert CondaStoreKernelSpecManager(include_server_kernels=False).find_kernel_specs() == {}


@pytest.fixture
def jupyter_server(site, tmp_path) -> Iterator:
    """Start real Jupyter servers configured like a user's: our kernel spec manager and the
    variables the spawner sets from the user's plan."""
    config, _ = site
    procs: list[subprocess.Popen] = []

    def start(user: str, include_server_kernels: bool) -> tuple[str, str, dict[str, str]]:
        home = tmp_path / user
        jupyter_env = {"HOME": str(home), "JUPYTER_CONFIG_DIR": str(home / "config"),
                       "JUPYTER_DATA_DIR": str(home / "data"),
                       "JUPYTER_RUNTIME_DIR": str(home / "runtime")}
        for path in jupyter_env.values():
            Path(path).mkdir(parents=True, exist_ok=True)
        port, token = free_port(), secrets.token_hex(16)
        env = {**os.environ, **jupyter_env,
               **server_environment(config, plan_for(config, user))}
        env.pop("JUPYTER_PATH", None)
        log = (home / "server.log").open("ab")
        procs.append(subprocess.Popen([
            sys.executable, "-m", "jupyter_server", "--ip=127.0.0.1", f"--port={port}",
            "--no-browser", "--allow-root", f"--ServerApp.root_dir={home}",
            f"--IdentityProvider.token={token}", *jupyter_server_args(include_server_kernels),
        ], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{url}/api/status?token={token}", timeout=60, ok_statuses=(200,))
        return url, token, jupyter_env

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def api(url: str, token: str, path: str, method: str = "GET", body: object = None) -> dict:
    request = urllib.request.Request(f"{url}{path}", method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=60) as response:
        raw = response.read()
    return json.loads(raw) if raw else {}


def test_a_users_kernel_list_is_exactly_their_environments(site, jupyter_server):
    config, root = site
    url, token, _ = jupyter_server("alice", include_server_kernels=False)
    specs = api(url, token, "/api/kernelspecs")["kernelspecs"]
    expected = expected_kernels(list(plan_for(config, "alice").environment_namespaces))
    assert set(specs) == expected
    assert {specs[name]["spec"]["display_name"] for name in specs} == {
        "scratch (alice)", "Caps.Env (alice)", "reports (analysts)", "common (users)",
        "dask (global)", "analytics (global)"}
    assert not any("bob" in name or "ml." in name or "finance" in name for name in specs)


def test_server_kernels_are_kept_next_to_the_environments(site, jupyter_server):
    config, _ = site
    url, token, jupyter_env = jupyter_server("bob", include_server_kernels=True)
    specs = api(url, token, "/api/kernelspecs")["kernelspecs"]
    old = {k: os.environ.get(k) for k in jupyter_env}
    os.environ.update(jupyter_env)  # what a stock server in the same place would list
    try:
        server_own = set(KernelSpecManager().find_kernel_specs())
    finally:
        for key, value in old.items():
            os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)
    assert "python3" in server_own
    assert set(specs) == expected_kernels(
        list(plan_for(config, "bob").environment_namespaces)) | server_own


def test_a_kernel_runs_in_its_environment(site, jupyter_server):
    config, root = site
    url, token, jupyter_env = jupyter_server("alice", include_server_kernels=False)
    kernel = api(url, token, "/api/kernels", "POST", {"name": "conda-alice.scratch"})
    client = BlockingKernelClient(connection_file=str(
        Path(jupyter_env["JUPYTER_RUNTIME_DIR"]) / f"kernel-{kernel['id']}.json"))
    try:
        client.load_connection_file()
        client.start_channels()
        client.wait_for_ready(timeout=60)
        out: list[str] = []
        client.execute_interactive(
            "import os, sys; print(sys.prefix, os.environ['CONDA_PREFIX'], os.environ['QHUB_DASK_ENVIRONMENT'])",
            timeout=60,
            output_hook=lambda msg: out.append(msg["content"].get("text", ""))
            if msg["msg_type"] == "stream" else None)
        prefix = str(root / "alice/envs/scratch")
        assert "".join(out).split() == [prefix, prefix, prefix]
    finally:
        client.stop_channels()
        api(url, token, f"/api/kernels/{kernel['id']}", "DELETE")
