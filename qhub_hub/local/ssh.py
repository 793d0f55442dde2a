"""Shell access: a real OpenSSH server of the platform's own, next to (never instead of) the system's.

`local up` runs Debian's /usr/sbin/sshd with its own config file, host keys, pid file and log in the
state dir, on its own port (`ssh.port` of the config, or --ssh-port). The system sshd, its config
and its port are not touched.

Login:
- password = a JupyterHub API token of that user (made on the hub's /hub/token page). sshd asks
  PAM; the platform's own PAM service (``/etc/pam.d/qhub-sshd-<id>``, written by `local up`,
  removed by `local down`; sshd picks the service by its program name, so sshd is started through a
  link of that name) runs `python -m qhub_hub.local.ssh_check`, which asks the hub whose token it
  is. Only a token of the hub user whose Unix account is being logged into passes;
- or a public key the user put in ``~/.ssh/authorized_keys`` (from a JupyterLab terminal);
- either way, PAM's account step asks the hub and the config whether that account belongs to a hub
  user the config still admits; root and accounts that are not the platform's never get in.

Sessions are ordinary sshd sessions of the user's account (uid, primary gid, groups from
/etc/group: the same as their server), inside the user's SSH cgroup (PAM session step,
`ssh_session.py`: the default profile's limits; `local down` ends whatever runs in it), started
through a small wrapper that loads the environment
their notebook server had (`session_env.py`, without tokens) before running the shell or the
command. sftp, scp and VS Code Remote-SSH work as with any OpenSSH server.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

SSHD = "/usr/sbin/sshd"
SFTP_SERVER = "/usr/lib/openssh/sftp-server"
PAM_DIR = Path("/etc/pam.d")
PRIVSEP_DIR = Path("/run/sshd")
@dataclass(frozen=True)
class SshSettings:
    state_dir: Path  # <state>/ssh: config, keys, wrapper
    session_dir: Path  # the users' session environments (session_env.py)
    port: int
    listen: str
    hub_api_url: str
    api_token_file: Path  # a hub service token allowed to read users (root-only file)
    config_file: Path  # the qhub config
    log_dir: Path
    run_dir: Path
    instance: str  # short id of the platform: names its PAM service and sshd link
    cgroup_name: str = ""  # the platform's cgroup: every session joins <unix name>@ssh below it
    last_good_config: Path | None = None  # used while config_file is invalid (qhub_hub.last_good)

    @property
    def service(self) -> str:
        """PAM service name = sshd's program name (the link sshd is started through)."""
        return f"qhub-sshd-{self.instance}"

    @property
    def sshd_link(self) -> Path:
        return self.state_dir / self.service

    @property
    def pam_file(self) -> Path:
        return PAM_DIR / self.service

    @property
    def sshd_config(self) -> Path:
        return self.state_dir / "sshd_config"

    @property
    def session_wrapper(self) -> Path:
        return self.state_dir / "session"


    @property
    def check_settings(self) -> Path:
        return self.state_dir / "check.json"

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "sshd.pid"

    @property
    def host_keys(self) -> list[Path]:
        return [self.state_dir / "ssh_host_ed25519_key", self.state_dir / "ssh_host_rsa_key"]


def render_sshd_config(s: SshSettings) -> str:
    keys = "\n".join(f"HostKey {k}" for k in s.host_keys)
    return f"""\
# qhub-hub's SSH server ({s.state_dir}). Written by `qhub-hub local up`; edits are overwritten.
# The machine's own sshd and /etc/ssh are not used.
Port {s.port}
ListenAddress {s.listen}
{keys}
PidFile {s.pid_file}
UsePAM yes
PasswordAuthentication yes
KbdInteractiveAuthentication yes
PubkeyAuthentication yes
AuthorizedKeysFile .ssh/authorized_keys
PermitRootLogin no
DenyUsers root
PermitEmptyPasswords no
StrictModes yes
MaxAuthTries 6
LoginGraceTime 60
AllowTcpForwarding local
AllowStreamLocalForwarding no
AllowAgentForwarding no
X11Forwarding no
PermitTunnel no
GatewayPorts no
PermitUserEnvironment no
PrintMotd no
PrintLastLog no
AcceptEnv LANG LC_*
Subsystem sftp {SFTP_SERVER}
ForceCommand {s.session_wrapper}
LogLevel INFO
"""


def render_pam_service(s: SshSettings) -> str:
    check = f"{sys.executable} -I -m qhub_hub.local.ssh_check {s.check_settings}"
    join = f"{sys.executable} -I -m qhub_hub.local.ssh_session {s.check_settings}"
    log = s.log_dir / "ssh-check.log"
    return f"""\
# PAM service of qhub-hub's SSH server ({s.state_dir}); written by `qhub-hub local up`,
# removed by `qhub-hub local down`. The password is a JupyterHub API token, checked by the hub.
auth     required  pam_exec.so expose_authtok quiet log={log} {check}
auth     optional  pam_permit.so
account  required  pam_exec.so quiet log={log} {check}
session  required  pam_exec.so quiet log={log} {join}
password required  pam_deny.so
"""


def render_session_wrapper(s: SshSettings) -> str:
    return f"""\
#!/bin/sh
# qhub-hub: every SSH session (shell, command, sftp) starts here, as the user, with the
# environment of the user's notebook server.
QHUB_SESSION_ENV={shlex.quote(str(s.session_dir))}/$(id -u).env
export QHUB_SESSION_ENV
if [ -r "$QHUB_SESSION_ENV" ]; then . "$QHUB_SESSION_ENV"; fi
cd "$HOME" 2>/dev/null || cd /
if [ -n "$SSH_ORIGINAL_COMMAND" ]; then exec "${{SHELL:-/bin/sh}}" -c "$SSH_ORIGINAL_COMMAND"; fi
exec "${{SHELL:-/bin/sh}}" -l
"""


def check_settings(s: SshSettings) -> dict[str, str]:
    return {"hub_api_url": s.hub_api_url, "api_token_file": str(s.api_token_file),
            "config_file": str(s.config_file), "cgroup_name": s.cgroup_name,
            "last_good_config": str(s.last_good_config or "")}


def prepare(s: SshSettings) -> None:
    """Write config, keys, PAM service, wrapper and checker settings (as root)."""
    for path in (s.state_dir, s.session_dir):
        path.mkdir(mode=0o755, parents=True, exist_ok=True)
        os.chmod(path, 0o755)  # the session wrapper and env files are read by users
    s.run_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    s.log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    for p in (s.state_dir, s.check_settings, s.log_dir):
        if re.search(r"\s", str(p)):
            raise RuntimeError(f"the SSH server's paths may not contain spaces (PAM cannot pass them): {p}")
    PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
    for key in s.host_keys:
        if not key.exists():
            kind = "ed25519" if "ed25519" in key.name else "rsa"
            subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", f"qhub-hub {s.instance}",
                            "-f", str(key)], check=True, capture_output=True)
    _write(s.sshd_config, render_sshd_config(s), 0o644)
    _write(s.session_wrapper, render_session_wrapper(s), 0o755)
    _write(s.check_settings, json.dumps(check_settings(s), indent=1) + "\n", 0o600)
    _write(s.pam_file, render_pam_service(s), 0o644)
    if s.sshd_link.is_symlink() or s.sshd_link.exists():
        s.sshd_link.unlink()
    s.sshd_link.symlink_to(SSHD)
    test = subprocess.run([str(s.sshd_link), "-t", "-f", str(s.sshd_config)],
                          capture_output=True, text=True)
    if test.returncode != 0:
        raise RuntimeError(f"sshd refuses its config {s.sshd_config}: {test.stderr.strip()}")


def command(s: SshSettings) -> list[str]:
    """sshd in the foreground (-D), logging to stderr (-e), started through the PAM-named link."""
    return [str(s.sshd_link), "-D", "-e", "-f", str(s.sshd_config)]


def cleanup(s: SshSettings) -> None:
    """Remove what lives outside the state dir (the PAM service)."""
    if s.pam_file.exists() and "qhub-hub" in s.pam_file.read_text(errors="replace"):
        s.pam_file.unlink()


def _write(path: Path, text: str, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
