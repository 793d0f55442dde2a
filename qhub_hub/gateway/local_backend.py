"""dask-gateway's multi-user LocalBackend, fixed for root and driven by the user's plan.

Upstream's `LocalBackend` (2026.3.0) has these problems when the gateway runs as root, which it
must to start processes as other users:

- `setup_working_directory` adds the TLS cert and key to the list of paths to chown with
  ``paths.extend(path)``, which adds each *character* of the path string: root then chowns ``/``
  (and any one-letter relative path that exists) to the user, or fails on a missing one;
- it looks the user up with ``getpwnam(<hub username>)``, but a hub username is not always a
  Unix name (``Alice@Example.com`` becomes ``alice-example-com--<hash>``), and takes supplemental
  groups from /etc/group rather than from the config.

`QHubLocalBackend` creates the working directory (0700) with its ``.certs`` and ``logs`` folders
and the cert and key (0600) owned by the user, and starts the scheduler and workers with the uid,
gid and supplemental gids the options handler (`qhub_hub.gateway_options`, local rendering) put in
the cluster config. A cluster config without a uid, or with uid 0, is refused: nothing is ever
started as root. A failing ``setgroups``/``setgid``/``setuid`` fails the start.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable
from typing import Any

from dask_gateway_server.backends.local import LocalBackend, LocalClusterConfig
from traitlets import Integer, List, Unicode, default

from ..naming import unix_name
from .limits import ClusterLimitMixin


class QHubLocalClusterConfig(LocalClusterConfig):
    """One local cluster's settings; the ids come from the user's plan via the options handler."""

    uid = Integer(None, allow_none=True, help="Unix uid the scheduler and workers run as "
                  "(set by qhub_hub.gateway_options; never 0).", config=True)
    gid = Integer(None, allow_none=True, help="Primary gid of the scheduler and workers.", config=True)
    supplemental_gids = List(Integer(), help="Supplemental gids (the user's read-write config "
                             "groups).", config=True)
    unix_name = Unicode("", help="The user's Unix account name (USER, LOGNAME).", config=True)


class RefusedToStart(RuntimeError):
    """A cluster whose config does not say which user to run as; the message says what to fix."""


class QHubLocalBackend(ClusterLimitMixin, LocalBackend):
    """Local processes started as the user, in the chosen environment (embedded mode)."""

    @default("cluster_config_class")
    def _default_cluster_config_class(self) -> str:
        return "qhub_hub.gateway.local_backend.QHubLocalClusterConfig"

    @default("inherited_environment")
    def _default_inherited_environment(self) -> list[str]:
        # Not PATH, PYTHONPATH, VIRTUAL_ENV or CONDA_*: those would point the user's processes at
        # the gateway's own Python; the handler sets them for the chosen environment.
        return ["LANG", "LC_ALL", "TZ"]

    clusters_directory = Unicode(
        help="""
        Folder holding one working directory per cluster (<folder>/<cluster name>, mode 0700,
        owned by the user). It must be owned by root and not writable by others; every folder
        above it must be traversable by users. Unset: a fresh temporary folder per cluster.
        """,
        config=True,
    )

    # -- identity --

    @staticmethod
    def _ids(cluster: Any) -> tuple[int, int, list[int]]:
        config = cluster.config
        uid, gid = config.get("uid"), config.get("gid")
        if not isinstance(uid, int) or not isinstance(gid, int):
            raise RefusedToStart(
                f"cluster {cluster.name} has no uid/gid in its config; set c.Backend.cluster_options "
                "= qhub_hub.gateway_options.QHubClusterOptions(rendering='local') so every cluster "
                "runs as its user")
        if uid == 0 or gid == 0:
            raise RefusedToStart(f"cluster {cluster.name} would run as root (uid {uid}, gid {gid}); "
                                 "refusing")
        gids = [int(g) for g in config.get("supplemental_gids") or []]
        return uid, gid, gids

    def make_preexec_fn(self, cluster: Any) -> Callable[[], None]:
        uid, gid, gids = self._ids(cluster)
        workdir = cluster.state["workdir"]

        def preexec() -> None:  # runs in the child between fork and exec: raising fails the start
            os.setgroups(gids)
            os.setgid(gid)
            os.setuid(uid)
            if os.getuid() != uid or os.getgid() != gid:  # pragma: no cover - kernel said no
                raise OSError("the scheduler/worker did not switch to the user's ids")
            os.chdir(workdir)

        return preexec

    def set_file_permissions(self, paths: list[str], username: str) -> None:
        raise NotImplementedError("QHubLocalBackend chowns in setup_working_directory")

    def setup_working_directory(self, cluster: Any) -> str:
        uid, gid, _ = self._ids(cluster)
        if self.clusters_directory:
            base = self.clusters_directory
            os.makedirs(base, 0o755, exist_ok=True)
            info = os.lstat(base)
            if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
                raise RefusedToStart(
                    f"clusters_directory {base} must be a folder owned by the gateway's user and "
                    "not writable by group or others (chmod 755)")
            workdir = os.path.join(base, cluster.name)
            os.mkdir(workdir, 0o700)
        else:
            workdir = tempfile.mkdtemp(prefix="dask-", suffix=f"-{cluster.name}")
        certsdir = self.get_certs_directory(workdir)
        logsdir = self.get_logs_directory(workdir)
        os.mkdir(certsdir, 0o700)
        os.mkdir(logsdir, 0o700)
        cert_path, key_path = self._get_tls_paths(workdir)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        for path, data in ((cert_path, cluster.tls_cert), (key_path, cluster.tls_key)):
            with os.fdopen(os.open(path, flags, 0o600), "wb") as f:
                f.write(data)
        for path in (workdir, certsdir, logsdir, cert_path, key_path):
            os.chown(path, uid, gid, follow_symlinks=False)
        self.log.debug("Working directory %s for cluster %s created", workdir, cluster.name)
        return workdir

    def get_env(self, cluster: Any) -> dict[str, str]:
        env = super().get_env(cluster)
        name = cluster.config.get("unix_name") or unix_name(cluster.username)
        env["USER"] = env["LOGNAME"] = name
        return env
