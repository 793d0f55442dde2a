#!/usr/bin/env python3
"""SFTP login check, run as root by PAM (pam_exec expose_authtok) in the SFTP pod.

The password is a JupyterHub API token. The login succeeds only when
- the hub says the token belongs to a hub user (the upstream check accepts any valid token for
  any name), and
- the hub's plan of that user, asked for now with the SFTP service's token, admits them under
  exactly this login name (accounts.py `refresh`: their passwd and group entries are rewritten
  from that plan before the session starts, so the session gets the plan's groups of this
  moment), and
- the account sshd looked up when the connection began had the plan's uid and gid. When it did
  not (renumbered since the last sync), this login is refused and the next one, with the entries
  now written, goes through. (A name with no account at all never gets here: sshd hands PAM a
  wrong password for it. accounts.py's sync makes the accounts of users new to the hub.)
Then the user's home is bind-mounted where sshd chroots them (/export/home/<name>/<name>); the
session itself runs as the account's uid and gid from /etc/passwd, so files land as theirs.

Python standard library only (the SFTP image's system python3). Nothing is read from the
environment but PAM_USER: pam_exec hands this program an environment the client may influence.
Paths can be changed on the command line (the PAM config's arguments) for tests.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$|^[a-z][a-z0-9_-]{0,19}--[a-z2-7]{10}$")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hub-url-file", default="/etc/jupyterhub-sftp/config/hubUrl")
    parser.add_argument("--token-file", default="/etc/qhub/sftp-hub/token", help="the SFTP service's hub token")
    parser.add_argument("--library", default="/etc/qhub/sftp", help="the folder of accounts.py")
    parser.add_argument("--etc", default="/etc")
    parser.add_argument("--state", default="/etc/qhub-sftp")
    parser.add_argument("--homes", default="/mnt/home", help="the storage's home folder")
    parser.add_argument("--chroots", default="/export/home", help="sshd's ChrootDirectory parent")
    return parser.parse_args(argv)


def token_owner(hub_url: str, token: str) -> str | None:
    """The hub user the token belongs to, or None if the hub does not accept it."""
    request = urllib.request.Request(f"{hub_url.rstrip('/')}/hub/api/user",
                                     headers={"Authorization": f"token {token}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response).get("name")
    except (urllib.error.URLError, ValueError, OSError):
        return None


def mounted(path: Path) -> bool:
    """Is something mounted at `path`? (os.path.ismount misses bind mounts within one filesystem)"""
    wanted = os.path.realpath(path)
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            point = line.split()[4]
            if re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), point) == wanted:
                return True
    return False


def prepare_home(account: dict, name: str, homes: Path, chroots: Path) -> None:
    """Create the home if the user never started a server, then bind-mount it into the chroot."""
    home = homes / account["home"]
    if not home.exists():
        home.mkdir()
        os.chown(home, account["uid"], account["gid"])
        os.chmod(home, account["mode"])
    chroot = chroots / name  # root-owned, as sshd requires of a ChrootDirectory
    target = chroot / name
    target.mkdir(parents=True, exist_ok=True)
    os.chmod(chroot, 0o755)
    if not mounted(target):
        subprocess.run(["mount", "--bind", str(home), str(target)], check=True)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    name = os.environ.get("PAM_USER", "")
    if not NAME.match(name):
        return 1
    token = sys.stdin.read().rstrip("\x00").strip()
    if not token:
        return 1
    sys.path.insert(0, args.library)
    import accounts  # noqa: E402 - the chart's accounts.py, beside this file in the pod

    hub_url = Path(args.hub_url_file).read_text().strip().rstrip("/")
    owner = token_owner(hub_url, token)
    if owner is None:
        return 1
    hub = accounts.Hub(f"{hub_url}/hub/api", accounts.read_token(args.token_file))
    try:
        before, account = accounts.refresh(hub, accounts.Files(args.etc, args.state), owner)
    except (accounts.PlanUnavailable, OSError) as e:
        accounts.log(f"login of {name!r} refused: no plan for hub user {owner!r} ({e})")
        return 1
    if account is None or account["name"] != name:
        accounts.log(f"login of {name!r} refused: the token belongs to hub user {owner!r}, whose plan "
                     f"{'names ' + repr(account['name']) if account else 'does not admit them'}")
        return 1
    if before is None or (before["uid"], before["gid"]) != (account["uid"], account["gid"]):
        accounts.log(f"login of {name!r} refused once: the account was made or renumbered from the "
                     "hub's plan just now; the next login uses it")
        return 1
    prepare_home(account, name, Path(args.homes), Path(args.chroots))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
