"""A real `jupyterhub` process on loopback, for integration tests.

    hub = HubProcess(tmp_path, extra_config="c.JupyterHub.authenticator_class = 'dummy'")
    hub.start()
    status, body = hub.api("POST", "/users/alice")
    hub.stop()

Ports are free ports picked at start, the database and secrets live in `tmp_path`, and the hub has
an admin service token (`hub.admin_token`) for its REST API. `extra_config` is Python appended to
the generated jupyterhub_config.py; `env` adds environment variables for the hub process.
"""

from __future__ import annotations

import os
import secrets
import signal
import sys
import textwrap
from pathlib import Path
from typing import Any

from .net import free_port, wait_for_http
from .process import LoggedProcess, request_json

PREFIX_BIN = Path(sys.executable).parent  # configurable-http-proxy is linked here by setup.sh


class HubProcess(LoggedProcess):
    def __init__(self, workdir: Path, extra_config: str = "", env: dict[str, str] | None = None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.extra_config = textwrap.dedent(extra_config)
        self.env = env or {}
        self.port = free_port()
        self.hub_port = free_port()
        self.proxy_api_port = free_port()
        self.admin_token = secrets.token_hex(16)
        self.proxy_token = secrets.token_hex(16)
        super().__init__(self.workdir / "jupyterhub.log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config_text(self) -> str:
        return textwrap.dedent(f"""
            c = get_config()  # noqa
            c.JupyterHub.bind_url = {self.url + '/'!r}
            c.JupyterHub.hub_ip = "127.0.0.1"
            c.JupyterHub.hub_port = {self.hub_port}
            c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{self.proxy_api_port}"
            c.ConfigurableHTTPProxy.command = [{str(PREFIX_BIN / 'configurable-http-proxy')!r}]
            c.ConfigurableHTTPProxy.pid_file = {str(self.workdir / 'proxy.pid')!r}
            c.JupyterHub.db_url = "sqlite:///{self.workdir / 'jupyterhub.sqlite'}"
            c.JupyterHub.cookie_secret_file = {str(self.workdir / 'cookie_secret')!r}
            c.JupyterHub.pid_file = {str(self.workdir / 'jupyterhub.pid')!r}
            c.JupyterHub.services = [{{"name": "test-admin", "api_token": {self.admin_token!r}}}]
            c.JupyterHub.load_roles = [{{"name": "test-admin", "scopes": ["admin:users", "admin:servers",
                "admin:groups", "tokens", "admin:auth_state", "read:users", "access:servers"],
                "services": ["test-admin"]}}]
            c.JupyterHub.log_level = "DEBUG"
        """) + "\n" + self.extra_config

    def start(self, timeout: float = 60) -> HubProcess:
        config = self.workdir / "jupyterhub_config.py"
        config.write_text(self.config_text())
        env = {**os.environ, "CONFIGPROXY_AUTH_TOKEN": self.proxy_token, **self.env}
        env["PATH"] = f"{PREFIX_BIN}:{env.get('PATH', '')}"
        self.launch([sys.executable, "-m", "jupyterhub", "-f", str(config)], cwd=self.workdir, env=env)
        try:
            wait_for_http(f"{self.url}/hub/api/", timeout=timeout, ok_statuses=(200,))
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"jupyterhub did not start; log:\n{self.log()[-4000:]}") from None
        return self

    def stop(self, timeout: float = 30) -> None:
        super().stop(timeout)
        pid_file = self.workdir / "proxy.pid"  # the proxy outlives a killed hub; don't leak it
        if pid_file.exists():
            try:
                os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
            except (ValueError, ProcessLookupError, PermissionError):
                pass
        self._end_managed_services()

    def _end_managed_services(self) -> None:
        """Managed services (the idle culler, ...) of a hub that did not stop them, e.g. a killed one:
        processes with JUPYTERHUB_SERVICE_NAME set and this hub's API URL. User servers are left alone
        (tests restart hubs under running servers)."""
        api = f"JUPYTERHUB_API_URL=http://127.0.0.1:{self.hub_port}/hub/api\0".encode()
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit() or int(proc.name) == os.getpid():
                continue
            try:
                environ = (proc / "environ").read_bytes()
            except OSError:
                continue
            if api in environ and b"JUPYTERHUB_SERVICE_NAME=" in environ:
                try:
                    os.kill(int(proc.name), signal.SIGTERM)
                except (ProcessLookupError, PermissionError):
                    pass

    def api(self, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
        """Call the hub REST API (`path` below /hub/api); returns (status, parsed JSON or text)."""
        return request_json(method, f"{self.url}/hub/api{path}", body,
                            {"Authorization": f"token {token or self.admin_token}"})

    def __enter__(self) -> HubProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
