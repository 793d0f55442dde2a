"""Every image of images/ builds here (from the mmdebstrap Debian base, with buildah) and runs."""

from __future__ import annotations

import re

import pytest

from qhub_hub.devcluster.images import NAMES
from qhub_hub.spawner import QHubKubeSpawner

from .conftest import built_image, podman

pytestmark = pytest.mark.cluster


def run_in(name: str, *command: str, user: str | None = None, extra: tuple[str, ...] = ()) -> str:
    args = ["run", "--rm", "--network", "none", *extra]
    if user:
        args += ["--user", user]
    return podman(*args, built_image(name), *command).stdout


def test_every_image_was_built(dev_cluster):
    for name in NAMES:
        podman("image", "exists", built_image(name))


def test_hub_runs_jupyterhub_and_our_plugins(dev_cluster):
    assert run_in("hub", "jupyterhub", "--version").strip().startswith("5.5.")
    # pycurl: z2jh's jupyterhub_config.py configures tornado's curl client
    out = run_in("hub", "python", "-c", "import qhub_hub.spawner, qhub_hub.authenticator, kubespawner, "
                 "oauthenticator, jupyterhub_idle_culler, pycurl; "
                 "from tornado.httpclient import AsyncHTTPClient; "
                 "AsyncHTTPClient.configure('tornado.curl_httpclient.CurlAsyncHTTPClient'); "
                 "import os; print(os.getuid(), os.getcwd())")
    assert out.split() == ["1000", "/srv/jupyterhub"]  # z2jh's user and working folder


def test_lab_names_an_arbitrary_uid_through_nss_wrapper(dev_cluster, tmp_path):
    (tmp_path / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nkczed:x:48123:48100:zed:/tmp:/bin/bash\n")
    (tmp_path / "group").write_text("root:x:0:\nkcusers:x:48100:\nkcteam:x:48200:kczed\n")
    for path in (tmp_path, tmp_path / "passwd", tmp_path / "group"):
        path.chmod(0o755 if path.is_dir() else 0o644)  # as the init container writes them
    library = QHubKubeSpawner.nss_wrapper_library.default_value  # what the spawner preloads
    nss = ("-v", f"{tmp_path}:/etc/qhub-nss:ro", "-e", f"LD_PRELOAD={library}",
           "-e", "NSS_WRAPPER_PASSWD=/etc/qhub-nss/passwd", "-e", "NSS_WRAPPER_GROUP=/etc/qhub-nss/group",
           "--group-add", "48200")
    out = run_in("lab", "sh", "-c", "id; whoami", user="48123:48100", extra=nss)
    assert out.splitlines() == ["uid=48123(kczed) gid=48100(kcusers) groups=48100(kcusers),48200(kcteam)",
                                "kczed"]
    # without the files the image does not know these names: they came from nss_wrapper
    bare = podman("run", "--rm", "--network", "none", "--user", "48123:48100", "--group-add", "48200",
                  built_image("lab"), "id", check=False)
    assert "kczed" not in bare.stdout and "kcteam" not in bare.stdout


def test_lab_has_dask_gateway_jupyterlab_and_the_videochat_extension(dev_cluster):
    out = run_in("lab", "python", "-c",
                 "import dask_gateway, distributed, jupyterlab, dask, qhub_hub.conda_store.kernels; "
                 "print(dask_gateway.__version__, distributed.__version__, dask.__version__, "
                 "jupyterlab.__version__)")
    gateway, dist, dask, lab = out.split()
    assert gateway == dist == dask == "2026.3.0"  # the gateway server's version (gateway image)
    assert lab.startswith("4.6.")
    assert run_in("lab", "jupyterhub-singleuser", "--version").strip().startswith("5.5.")
    # enabled and compatible with this JupyterLab ("OK", not "X")
    listing = re.sub(r"\x1b\[[0-9;]*m", "", run_in("lab", "sh", "-c", "jupyter labextension list 2>&1"))
    lines = {line.split()[0]: line for line in listing.splitlines() if line.startswith("        ")}
    for extension in ("jupyterlab-qhub-videochat", "dask-labextension"):
        assert extension in lines, listing
        assert "enabled" in lines[extension] and " OK" in lines[extension], lines[extension]
    assert "not compatible" not in listing
    assert run_in("lab", "id", "-u").strip() == "65534"  # never root by default


def test_gateway_runs_dask_gateway_server_with_our_options(dev_cluster):
    out = run_in("gateway", "python", "-c",
                 "import dask_gateway_server, qhub_hub.gateway_options, qhub_hub.gateway.kubernetes; "
                 "print(dask_gateway_server.__version__)")
    assert out.strip() == "2026.3.0"
    assert "dask-gateway-server" in run_in("gateway", "dask-gateway-server", "--help")
    assert run_in("gateway", "id", "-u").strip() == "1000"


def test_conda_store_runs_with_our_login(dev_cluster):
    out = run_in("conda-store", "python", "-c",
                 "import conda_store_server, qhub_hub.conda_store.conda_store_auth; "
                 "print(conda_store_server.__version__)")
    assert out.strip() == "2025.2.2"
    assert run_in("conda-store", "id", "-u").strip() == "1000"
    # no conda on PyPI: the stand-in answers, and says a build cannot run
    out = run_in("conda-store", "python", "-c", "import conda; print(conda.__version__)")
    assert out.strip().endswith("qhub.standin")


def test_proxy_runs_configurable_http_proxy(dev_cluster):
    assert run_in("proxy", "configurable-http-proxy", "--version").strip() == "4.6.3"


def test_init_image_has_what_the_init_scripts_use(dev_cluster):
    out = run_in("init", "sh", "-c", "for c in stat chown chmod mkdir; do command -v $c; done; iptables --version",
                 user="0")
    assert out.splitlines() == ["/usr/bin/stat", "/usr/bin/chown", "/usr/bin/chmod", "/usr/bin/mkdir",
                                "iptables v1.8.9 (nf_tables)"]


def test_traefik_runs_the_version_the_dev_cluster_uses(dev_cluster):
    assert run_in("traefik", "version").splitlines()[0].split()[-1] == "3.7.15"
    assert run_in("traefik", "sh", "-c", "id -u", extra=("--entrypoint", "")).strip() == "1000"
