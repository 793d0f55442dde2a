"""The embedded platform's settings and its state dir layout (pure data, saved as platform.json).

`local up` saves the settings on first start; later `up`/`down`/`status`/`restart` read them back, so
ports stay the same across restarts (running servers keep talking to the hub at the same address).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path


def default_state_dir() -> Path:
    if os.environ.get("QHUB_STATE_DIR"):
        return Path(os.environ["QHUB_STATE_DIR"])
    if os.geteuid() == 0:
        return Path("/var/lib/qhub-hub")
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return Path(base) / "qhub-hub"


@dataclass(frozen=True)
class PlatformSettings:
    config_path: str  # the qhub config (absolute)
    state_dir: str
    ip: str = "127.0.0.1"  # where the proxy (and sshd) listen
    port: int = 8000  # the platform's URL: http://<ip>:<port>
    hub_port: int = 0  # 0: chosen at first start, then kept
    proxy_api_port: int = 0
    ssh_port: int = 0  # 0: the config's ssh.port
    gateway_http_port: int = 0
    gateway_tcp_port: int = 0
    gateway_api_port: int = 0
    conda_store_port: int = 0
    shared_dir: str = ""  # empty: the config's storage.shared_root
    adopt_shared: bool = False
    demo: bool = False  # not root: one Unix user for everyone
    preimported_starter: bool = True  # QHubLocalSpawner.preimported_starter (False: a new Python per server)

    # --- layout ---------------------------------------------------------------------------------

    @property
    def root(self) -> Path:
        return Path(self.state_dir)

    @property
    def settings_file(self) -> Path:
        return self.root / "platform.json"

    @property
    def secrets_file(self) -> Path:
        return self.root / "secrets.json"

    @property
    def hub_dir(self) -> Path:
        return self.root / "hub"

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def ssh_dir(self) -> Path:
        return self.root / "ssh"

    @property
    def session_dir(self) -> Path:
        return self.root / "sessions"

    @property
    def gateway_dir(self) -> Path:
        return self.root / "gateway"

    @property
    def conda_store_dir(self) -> Path:
        return self.root / "conda-store"

    @property
    def last_good_config(self) -> Path:
        """The copy of the config as it was when last valid (`qhub_hub.last_good`)."""
        return self.root / "config" / "last-good.yaml"

    @property
    def demo_dir(self) -> Path:
        return self.root / "demo"

    @property
    def instance(self) -> str:
        """A short id of this platform (its state dir), for names it shares with the machine."""
        return hashlib.sha256(str(self.root.resolve()).encode()).hexdigest()[:8]

    @property
    def cgroup_name(self) -> str:
        return f"qhub-servers-{self.instance}"

    @property
    def hub_api_url(self) -> str:
        return f"http://127.0.0.1:{self.hub_port}/hub/api"

    @property
    def public_url(self) -> str:
        host = "127.0.0.1" if self.ip in ("0.0.0.0", "", "::") else self.ip
        return f"http://{host}:{self.port}"

    # --- persistence -----------------------------------------------------------------------------

    def save(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.settings_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1, sort_keys=True) + "\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.settings_file)

    @classmethod
    def load(cls, state_dir: str | os.PathLike) -> PlatformSettings | None:
        path = Path(state_dir) / "platform.json"
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def with_changes(self, **changes: object) -> PlatformSettings:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})
