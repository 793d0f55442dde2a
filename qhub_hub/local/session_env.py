"""The notebook server's environment, for the user's other shells (JupyterLab terminals, SSH).

A login shell starts over from /etc/profile, which resets PATH, and an SSH session starts from
sshd's minimal environment. So at every spawn the server's environment, without tokens, is written
to ``<session dir>/<uid>.env`` (readable by that user only), and its path is in the variable
``QHUB_SESSION_ENV``. Two readers load it:

- the SSH server's session wrapper (ssh.py), before the shell or command runs;
- ``/etc/profile.d/qhub-hub.sh`` (`ensure_profile_hook`), in every login shell that has
  QHUB_SESSION_ENV set: JupyterLab terminals and interactive SSH shells get back the server's PATH.
  It does nothing in any other shell on the machine.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping
from pathlib import Path

VARIABLE = "QHUB_SESSION_ENV"
PROFILE_HOOK = Path("/etc/profile.d/qhub-hub.sh")
PROFILE_HOOK_TEXT = f"""\
# qhub-hub: login shells of platform users (JupyterLab terminals, SSH) keep the environment of
# their notebook server. Does nothing unless {VARIABLE} is set. Installed by `qhub-hub local up`.
if [ -n "${{{VARIABLE}:-}}" ] && [ -r "${{{VARIABLE}}}" ]; then . "${{{VARIABLE}}}"; fi
"""
_SECRET = re.compile(r"^(JUPYTERHUB_|JPY_)|TOKEN|SECRET|PASSWORD", re.IGNORECASE)
_SKIP = {"HOME", "USER", "LOGNAME", "SHELL", "PWD", "TERM", "MAIL", "SSH_AUTH_SOCK"}


def session_environment(server_env: Mapping[str, str]) -> dict[str, str]:
    """What other shells take from the server's environment: all but tokens and login variables."""
    return {k: v for k, v in server_env.items()
            if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k) and not _SECRET.search(k) and k not in _SKIP}


def env_file(session_dir: str | os.PathLike, uid: int) -> Path:
    return Path(session_dir, f"{uid}.env")


def render_session_env(env: Mapping[str, str]) -> str:
    lines = ["# qhub-hub: the environment of this user's notebook server (no tokens)"]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in sorted(env.items())]
    return "\n".join(lines) + "\n"


def write_session_env(session_dir: str | os.PathLike, uid: int, env: Mapping[str, str]) -> Path:
    """Write ``<session_dir>/<uid>.env`` (owned by `uid`, 0400), atomically; returns its path."""
    os.makedirs(session_dir, mode=0o755, exist_ok=True)
    path = env_file(session_dir, uid)
    tmp = path.with_name(f".{uid}.env.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o400)
    with os.fdopen(fd, "w") as f:
        f.write(render_session_env({**env, VARIABLE: str(path)}))
        if os.geteuid() == 0:
            os.fchown(f.fileno(), uid, -1)
    os.replace(tmp, path)
    return path


def ensure_profile_hook(path: Path = PROFILE_HOOK) -> bool:
    """Install the login-shell hook (root); True when it was written."""
    if path.exists() and path.read_text() == PROFILE_HOOK_TEXT:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(PROFILE_HOOK_TEXT)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return True
