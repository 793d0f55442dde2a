"""A real Jupyter server (or JupyterLab) process on a free loopback port, for the video chat tests.

    server = JupyterProcess(tmp_path, env={"QHUB_GROUPS": "analysts"}).start()
    status, body = server.api("GET", "qhub-videochat/config")
    server.stop()

The process gets a clean environment: no QHUB_* / JUPYTERHUB_* variables from the test runner, its
own HOME and Jupyter config/data/runtime dirs, so only the environment-wide (sys.prefix) config
applies: the one `pip install` of the extension wrote.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path
from typing import Any

from tests.support.net import free_port, wait_for_http
from tests.support.process import LoggedProcess, request_json

PREFIX_BIN = Path(sys.executable).parent


def clean_environment(workdir: Path, env: dict[str, str]) -> dict[str, str]:
    base = {
        k: v for k, v in os.environ.items()
        if not k.startswith(("QHUB_", "JUPYTERHUB_", "JUPYTER_"))
    }
    dirs = {
        "HOME": workdir / "home",
        "JUPYTER_CONFIG_DIR": workdir / "home" / ".jupyter",
        "JUPYTER_DATA_DIR": workdir / "home" / ".local" / "share" / "jupyter",
        "JUPYTER_RUNTIME_DIR": workdir / "runtime",
    }
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    return {
        **base,
        **{k: str(v) for k, v in dirs.items()},
        "PATH": f"{PREFIX_BIN}:{base.get('PATH', '')}",
        **env,
    }


class JupyterProcess(LoggedProcess):
    def __init__(
        self,
        workdir: Path,
        env: dict[str, str],
        app: str = "server",
        base_url: str = "/user/alice/",
        extra_args: tuple[str, ...] = (),
    ):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.env = clean_environment(self.workdir, env)
        self.app = app
        self.base_url = base_url
        self.extra_args = extra_args
        self.port = free_port()
        self.token = secrets.token_hex(16)
        super().__init__(self.workdir / f"jupyter-{app}.log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.base_url}"

    def start(self, timeout: float = 90) -> JupyterProcess:
        args = [
            str(PREFIX_BIN / f"jupyter-{self.app}"),
            "--no-browser", "--ip=127.0.0.1", f"--port={self.port}", "--port-retries=0",
            f"--ServerApp.base_url={self.base_url}", f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.workdir / 'home'}", *self.extra_args,
        ]
        if os.geteuid() == 0:
            args.append("--allow-root")
        self.launch(args, cwd=self.workdir, env=self.env)
        try:
            wait_for_http(f"{self.url}api", timeout=timeout, ok_statuses=(200,))
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"jupyter {self.app} did not start; log:\n{self.log()[-4000:]}") from None
        return self

    def api(
        self, method: str, path: str, body: Any = None, token: str | None = "default"
    ) -> tuple[int, Any]:
        """Call `path` below the server's base_url; returns (status, parsed JSON or text).

        `token=None` sends no credentials; the default sends the server's token.
        """
        headers = {}
        if token is not None:
            headers["Authorization"] = f"token {self.token if token == 'default' else token}"
        return request_json(method, self.url + path, body, headers, timeout=30)

    def __enter__(self) -> JupyterProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
