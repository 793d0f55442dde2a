"""The images' Containerfiles, parsed, linted and checked (tests/cluster builds and runs them).

- every Containerfile parses with BuildKit's own parser and is hadolint-clean;
- base image versions are the chart's dependency versions (hub = z2jh 4.4.0, gateway server =
  dask-gateway 2026.3.0 = the client in the lab image);
- what the Containerfiles COPY exists, and their Containerfile.dockerignore lets it through;
- the base is a build argument (BASE) whose default is the upstream image; what a plain Debian base
  lacks comes from requirements files pinned like the upstream image (lab: like environment.yml);
- each image's third-party imports are there: qhub_hub is installed with --no-deps, so every module
  the code that image runs imports at load time must come from the base image (facts below) or from
  the Containerfile's own pip line -- and that line adds nothing else;
- values.yaml names these images, tagged with the chart's appVersion.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import dockerfile
import pytest
import yaml

from . import chart
from .upstream import DASK_GATEWAY_VERSION, JUPYTERHUB_VERSION

IMAGES = chart.REPO / "images"
NAMES = ("hub", "lab", "gateway", "conda-store")  # our code on an upstream base
ALL_NAMES = (*NAMES, "proxy", "init", "pause")  # plus what the chart's pods cannot pull everywhere
CHART_META = yaml.safe_load((chart.CHART / "Chart.yaml").read_text())
VALUES = yaml.safe_load((chart.CHART / "values.yaml").read_text())

# Code each image runs (modules, or chart files executed in it).
ENTRY_POINTS = {
    "hub": ["qhub_hub.authenticator", "qhub_hub.spawner", "helm/qhub/files/hub/qhub.py"],
    # kube_backend: the backend class dask_gateway_config.py names as a string (a traitlets import)
    "gateway": ["helm/qhub/files/gateway/dask_gateway_config.py", "qhub_hub.gateway.kubernetes",
                "qhub_hub.gateway.kube_backend"],
    "conda-store": ["helm/qhub/files/conda-store/conda_store_config.py", "qhub_hub.conda_store.conda_store_auth"],
    "lab": ["qhub_hub.conda_store.kernels"],
}
# Importable top-level modules the base images already have (their pinned requirements).
BASE_MODULES = {
    # quay.io/jupyterhub/k8s-hub:4.4.0 (images/hub/requirements.txt of z2jh 4.4.0)
    "hub": {"jupyterhub", "kubespawner", "oauthenticator", "kubernetes_asyncio", "tornado", "traitlets",
            "pydantic", "yaml", "bcrypt", "jinja2", "sqlalchemy", "requests", "aiohttp", "jsonschema",
            "jupyterhub_idle_culler", "escapism", "cryptography", "prometheus_client"},
    # ghcr.io/dask/dask-gateway-server:2026.3.0 (Dockerfile.requirements.txt)
    "gateway": {"dask_gateway_server", "aiohttp", "traitlets", "colorlog", "cryptography", "kubernetes_asyncio"},
    # quay.io/quansight/conda-store-server:2025.2.2 (conda-store-server's dependencies)
    "conda-store": {"conda_store_server", "fastapi", "requests", "pydantic", "yaml", "traitlets", "sqlalchemy",
                    "celery", "uvicorn", "jinja2"},
    # images/lab/environment.yml (conda packages and what they bring)
    "lab": {"jupyterlab", "jupyterhub", "jupyter_server", "jupyter_client", "ipykernel", "ipywidgets", "dask",
            "distributed", "dask_gateway", "dask_labextension", "dask_kubernetes", "pydantic", "yaml",
            "traitlets", "tornado"},
}
DISTRIBUTION_MODULES = {"yaml-rs": "yaml_rs", "pyyaml": "yaml"}


def instructions(name: str) -> list[dockerfile.Command]:
    return list(dockerfile.parse_file(str(IMAGES / name / "Containerfile")))


def arg_defaults(commands) -> dict[str, str]:
    return dict(c.value[0].split("=", 1) for c in commands if c.cmd == "ARG" and "=" in c.value[0])


def base_image(name: str) -> str:
    commands = instructions(name)
    args = arg_defaults(commands)
    [from_] = [c for c in commands if c.cmd == "FROM"]
    image = from_.value[0]
    while "${" in image:  # BASE's default names other ARGs
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)
    return image


@pytest.mark.parametrize("name", ALL_NAMES)
def test_containerfile_parses_and_is_small(name):
    commands = instructions(name)
    assert [c.cmd for c in commands if c.cmd == "FROM"] == ["FROM"]  # one stage
    users = [c.value[0] for c in commands if c.cmd == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")  # never runs as root by default


@pytest.mark.parametrize("name", ALL_NAMES)
def test_hadolint_is_clean(name):
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    result = subprocess.run([hadolint, "--no-color", "-f", "json", str(IMAGES / name / "Containerfile")],
                            capture_output=True, text=True, timeout=60)
    assert json.loads(result.stdout or "[]") == [], result.stdout


def test_base_images_match_the_chart():
    deps = {d["name"]: d["version"] for d in CHART_META["dependencies"]}
    assert deps["jupyterhub"] == JUPYTERHUB_VERSION and deps["dask-gateway"] == DASK_GATEWAY_VERSION
    assert base_image("hub") == f"quay.io/jupyterhub/k8s-hub:{deps['jupyterhub']}"
    assert base_image("gateway") == f"ghcr.io/dask/dask-gateway-server:{deps['dask-gateway']}"
    assert base_image("conda-store") == "quay.io/quansight/conda-store-server:2025.2.2"
    environment = yaml.safe_load((IMAGES / "lab" / "environment.yml").read_text())
    pins = dict(d.split("=", 1) for d in environment["dependencies"] if isinstance(d, str) and "=" in d)
    assert pins["dask-gateway"] == deps["dask-gateway"]  # the client speaks the server's version
    assert pins["dask"] == pins["distributed"]
    assert pins["jupyterhub-singleuser"] == "5.5"  # z2jh 4.4.0 runs JupyterHub 5.5
    assert {"jupyterlab", "ipywidgets", "dask-labextension", "ipykernel"} <= {
        d.split("=")[0] for d in environment["dependencies"] if isinstance(d, str)}


@pytest.mark.parametrize("name", NAMES)
def test_the_base_is_a_build_argument(name):
    commands = instructions(name)
    [from_] = [c for c in commands if c.cmd == "FROM"]
    assert from_.value[0] == "${BASE}" and "BASE" in arg_defaults(commands)


def test_lab_requirements_pin_what_environment_yml_pins():
    """Without conda, the lab image's packages come from PyPI with the same pins."""
    environment = yaml.safe_load((IMAGES / "lab" / "environment.yml").read_text())
    conda = dict(d.split("=", 1) for d in environment["dependencies"] if isinstance(d, str) and "=" in d)
    pip = dict(line.split("==", 1) for line in (IMAGES / "lab" / "requirements.txt").read_text().splitlines()
               if "==" in line and not line.startswith("#"))
    pip = {k: v.rstrip(".*") for k, v in pip.items()}
    for package in ("dask", "distributed", "dask-gateway", "jupyterlab", "ipywidgets", "dask-labextension"):
        assert pip[package] == conda[package].rstrip(".*"), package
    assert pip["jupyterhub"] == conda["jupyterhub-singleuser"]


@pytest.mark.parametrize("name", ["hub", "gateway", "conda-store"])
def test_base_requirements_pin_the_upstream_versions(name):
    pins = dict(line.split("==", 1) for line in (IMAGES / name / "base-requirements.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    upstream = base_image(name).rsplit(":", 1)[1]
    main = {"hub": "jupyterhub", "gateway": "dask-gateway-server[kubernetes]", "conda-store": "conda-store-server"}
    if name == "hub":
        assert pins["jupyterhub"].startswith("5.5.")  # z2jh 4.4.0 runs JupyterHub 5.5
    else:
        assert pins[main[name]] == upstream


@pytest.mark.parametrize("name", [n for n in ALL_NAMES if n != "pause"])  # pause: its own context
def test_copied_files_exist_and_reach_the_build(name):
    ignore = [line.strip() for line in (IMAGES / name / "Containerfile.dockerignore").read_text().splitlines()
              if line.strip() and not line.startswith("#")]

    def sent(path: str) -> bool:
        """.dockerignore semantics: the last matching pattern decides; `!` lets a path back in."""
        verdict = True
        for pattern in ignore:
            negate = pattern.startswith("!")
            pattern = pattern.lstrip("!").rstrip("/")
            parts = path.split("/")
            if any(fnmatch.fnmatch("/".join(parts[:i]), pattern) for i in range(1, len(parts) + 1)):
                verdict = negate
        return verdict

    for command in instructions(name):
        if command.cmd != "COPY":
            continue
        for source in command.value[:-1]:
            assert (chart.REPO / source).exists(), f"{name}: COPY {source}: no such path"
            assert sent(source), f"{name}: COPY {source} is excluded by Containerfile.dockerignore"
    if name == "lab":
        assert not sent("extensions/jupyterlab-qhub-videochat/node_modules/x")


# --- imports ----------------------------------------------------------------------------------------------


def _module_file(name: str) -> Path | None:
    for path in (chart.REPO / (name.replace(".", "/") + ".py"), chart.REPO / name.replace(".", "/") / "__init__.py"):
        if path.exists():
            return path
    return None


def _load_time_imports(path: Path, package: str) -> set[str]:
    """Modules imported when `path` is loaded (function bodies run later, if ever: left out)."""
    def walk(node):
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                yield child
                yield from walk(child)

    out = set()
    for node in walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join([*base, node.module] if node.module else base)
            out.add(module)
            out.update(f"{module}.{alias.name}" for alias in node.names)
    return out


def third_party_imports(entries: list[str]) -> set[str]:
    todo, seen, found = [], set(), set()
    for entry in entries:
        if entry.endswith(".py"):
            todo.append((chart.REPO / entry, ""))
        else:
            path = _module_file(entry)
            todo.append((path, entry if path.name == "__init__.py" else entry.rsplit(".", 1)[0]))
    while todo:
        path, package = todo.pop()
        for name in _load_time_imports(path, package):
            top = name.split(".")[0]
            if top == "qhub_hub":
                module = _module_file(name)
                if module and module not in seen:
                    seen.add(module)
                    todo.append((module, name if module.name == "__init__.py" else name.rsplit(".", 1)[0]))
            elif top and top not in sys.stdlib_module_names:
                found.add(top)
    return found


def pip_added(name: str) -> set[str]:
    modules = set()
    for command in instructions(name):
        if command.cmd == "RUN":
            for line in command.value[0].split("&&"):
                words = line.split()
                if words[:2] == ["pip", "install"] and "--no-deps" not in words:
                    for before, word in zip(words[1:], words[2:], strict=False):
                        # -r: the base's own packages, for a plain base (tested above)
                        if not word.startswith("-") and before not in ("-r", "--requirement"):
                            dist = re.split(r"[=<>]", word)[0].lower()
                            modules.add(DISTRIBUTION_MODULES.get(dist, dist.replace("-", "_")))
    return modules


@pytest.mark.parametrize("name", NAMES)
def test_every_import_is_in_the_image(name):
    needed = third_party_imports(ENTRY_POINTS[name])
    added = pip_added(name)
    missing = needed - BASE_MODULES[name] - added
    assert not missing, (f"{name} image: qhub_hub imports {sorted(missing)} that neither the base nor the "
                         "Containerfile has")
    unneeded = added - needed
    assert not unneeded, f"{name} image: the Containerfile installs {sorted(unneeded)} that nothing imports"


def test_the_import_check_sees_imports():
    assert {"pydantic", "yaml_rs"} <= third_party_imports(["qhub_hub.config"])
    assert "jupyterhub" not in third_party_imports(["qhub_hub.uid_registry"])  # imported inside a function only


# --- values ---------------------------------------------------------------------------------------------


def test_values_use_our_images_at_the_chart_version():
    version = CHART_META["appVersion"]
    images = {
        "hub": VALUES["jupyterhub"]["hub"]["image"],
        "lab": VALUES["jupyterhub"]["singleuser"]["image"],
        "gateway": VALUES["daskGatewayApi"]["image"],
        "conda-store": VALUES["condaStore"]["image"],
    }
    for name, image in images.items():
        assert image == {**image, "name": f"quay.io/qhub-hub/{name}", "tag": version}
    assert VALUES["dask-gateway"]["gateway"]["backend"]["image"] == images["lab"]  # workers = notebooks
