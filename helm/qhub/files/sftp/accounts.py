"""SFTP accounts from the hub's plans, so that SFTP sessions run as each user's own uid and gids.

    python3 accounts.py sync [--every SECONDS] [--full-every SECONDS]   (in the SFTP container, as root)

The hub is the one authority on who a user is (their uid, including the uid its registry handed
an identity-provider user, their primary gid and groups): this file never reads the qhub config.
sshd looks a login name up in /etc/passwd before PAM runs, so the accounts must be there first:

- `sync` lists the hub's users (``GET /hub/api/users``) and asks the hub for each one's plan
  (``GET /hub/api/qhub/plans/<name>``, `plan_wire` format), with the SFTP service's own token
  (role scopes ``list:users`` and ``custom:qhub:plans:read``). It writes /etc/passwd, /etc/group
  and /etc/shadow as the image's own entries (kept at start as ``<state>/passwd.image``, ...)
  plus one account per user the plan admits, and the user's read-write groups. The shadow entry
  has no password (``*``; the token is checked by PAM's pam_exec) and no expiry: it is there
  because the image's PAM account step (pam_unix) refuses an account without one.
  With ``--every`` it goes on: each round lists the users and plans those new to the hub (an
  identity-provider user's first hub login: sshd refuses a name with no account before PAM
  even runs, so the account must be there first), and every ``--full-every`` seconds it plans
  everyone again. A round the hub cannot answer keeps the last files.
- at each login, the token check (jupyterhub-token-verify.py) calls `refresh` for the token's
  owner: their plan is asked for again and their entries rewritten before the session starts
  (sshd sets the session's groups from /etc/group after PAM), so a user removed from a group
  loses it at their next login, whatever the sync's timing.

Python standard library only (the SFTP image's system python3, 3.8 or later): it cannot import
qhub_hub, so it reads only the plan fields it needs, and checks them.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

WIRE_VERSION = 1  # qhub_hub.plan_wire.WIRE_VERSION
SHELL = "/usr/sbin/nologin"
TIMEOUT = 30
PAGE = 200  # JupyterHub's default page size of /users
# qhub_hub.naming: a clean name, or <safe part>--<10 base32 characters>
NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$|^[a-z][a-z0-9_-]{0,19}--[a-z2-7]{10}$")
GROUP = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
PATH = re.compile(r"^/[^:\n\r,]{0,255}$")  # a passwd home field: no separators
HOME = re.compile(r"^home/([a-z][a-z0-9_-]{0,31}|[a-z][a-z0-9_-]{0,19}--[a-z2-7]{10})$")

Account = dict  # name, hub_user, uid, gid, primary_group, groups {name: gid}, home, home_path, mode


class PlanUnavailable(RuntimeError):
    """The hub did not answer with plans; the message says why."""


def log(message: str) -> None:
    print(f"qhub-sftp: {message}", file=sys.stderr, flush=True)


class Hub:
    """The hub's REST API (``http://hub:8081/hub/api``) with the SFTP service's token."""

    def __init__(self, api_url: str, token: str):
        self.api_url = api_url.rstrip("/")
        self.token = token

    def get(self, path: str, accept: str = "application/json") -> tuple[int, Any]:
        request = urllib.request.Request(f"{self.api_url}{path}", headers={
            "Authorization": f"token {self.token}", "Accept": accept})
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, None
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise PlanUnavailable(f"the hub at {self.api_url} cannot be reached ({e})") from None

    def usernames(self) -> list[str]:
        """Every hub user's name (the API's pages followed to the end)."""
        names: list[str] = []
        offset = 0
        while True:
            status, body = self.get(f"/users?offset={offset}&limit={PAGE}",
                                    accept="application/jupyterhub-pagination+json")
            if status != 200 or not isinstance(body, dict) or not isinstance(body.get("items"), list):
                raise PlanUnavailable(f"the hub answered HTTP {status} to the list of users: the SFTP "
                                      "service's token needs the scope list:users")
            names += [u["name"] for u in body["items"] if isinstance(u, dict) and isinstance(u.get("name"), str)]
            following = (body.get("_pagination") or {}).get("next")
            if not following:
                return names
            offset = int(following["offset"])

    def plan(self, username: str) -> dict[str, Any] | None:
        """The hub's plan of `username` (the wire payload's ``plan``); None if there is no such user."""
        status, body = self.get(f"/qhub/plans/{urllib.parse.quote(username, safe='')}")
        if status == 404:
            return None
        if status == 403:
            raise PlanUnavailable("the SFTP service's token may not read plans: give it the scope "
                                  "custom:qhub:plans:read")
        if status != 200 or not isinstance(body, dict):
            raise PlanUnavailable(f"the hub answered HTTP {status} for {username!r}'s plan")
        if body.get("wire_version") != WIRE_VERSION or not isinstance(body.get("plan"), dict):
            raise PlanUnavailable(f"the hub's plan format is {body.get('wire_version')!r}, this file reads "
                                  f"{WIRE_VERSION}: run the chart's own SFTP files with its hub")
        return body["plan"]


def _int_id(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2**31:
        raise ValueError(f"{value!r} is not a uid or gid")
    return value


def account_of(plan: dict[str, Any]) -> Account | None:
    """The SFTP account of a plan, or None when the plan does not admit the user.
    `ValueError` for a plan whose names or ids could not be written safely."""
    if plan.get("may_log_in") is not True:
        return None
    name = plan.get("unix_name")
    if not isinstance(name, str) or not NAME.match(name):
        raise ValueError(f"unix name {name!r}")
    uid, gid = _int_id(plan.get("uid")), _int_id(plan.get("gid"))
    primary = plan.get("primary_group")
    if not isinstance(primary, str) or not GROUP.match(primary):
        raise ValueError(f"primary group {primary!r}")
    groups: dict[str, int] = {}
    for membership in plan.get("memberships") or []:
        group, group_gid = membership.get("name"), _int_id(membership.get("gid"))
        if not isinstance(group, str) or not GROUP.match(group):
            raise ValueError(f"group {group!r}")
        # read-only members get no gid (as in their server): the group's files stay unwritable
        if membership.get("readonly") is False and group_gid != gid:
            groups[group] = group_gid
    home = plan.get("home") or {}
    subpath, mode, path = home.get("subpath"), home.get("mode"), home.get("path")
    if not isinstance(subpath, str) or not HOME.match(subpath) or not isinstance(mode, int):
        raise ValueError(f"home {subpath!r}")
    if not isinstance(path, str) or not PATH.match(path):
        raise ValueError(f"home path {path!r}")
    return {"name": name, "hub_user": plan.get("username"), "uid": uid, "gid": gid,
            "primary_group": primary, "groups": groups, "home": subpath[len("home/"):],
            "home_path": path, "mode": mode}


class Files:
    """/etc/passwd and /etc/group of the SFTP container: the image's entries plus the accounts.

    `etc` and `state` are parameters for tests; in the container they are /etc and /etc/qhub-sftp.
    """

    def __init__(self, etc: str = "/etc", state: str = "/etc/qhub-sftp"):
        self.etc = Path(etc)
        self.state = Path(state)

    def keep_image_entries(self) -> None:
        """Save the image's own passwd and group once (start.sh calls it before anything writes)."""
        self.state.mkdir(mode=0o700, parents=True, exist_ok=True)
        for name in ("passwd", "group", "shadow"):
            image = self.state / f"{name}.image"
            if not image.exists():
                source = self.etc / name
                _write(image, source.read_text() if source.exists() else "", 0o600)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """One writer at a time (the sync loop and logins)."""
        self.state.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(self.state / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def accounts(self) -> dict[str, Account]:
        try:
            return json.loads((self.state / "accounts.json").read_text())
        except FileNotFoundError:
            return {}

    def write(self, accounts: dict[str, Account]) -> dict[str, Account]:
        """Write passwd, group and the accounts (call inside `locked`); returns what was written."""
        image_passwd = (self.state / "passwd.image").read_text()
        image_group = (self.state / "group.image").read_text()
        taken = {line.split(":", 1)[0] for line in image_passwd.splitlines() if line}
        kept: dict[str, Account] = {}
        for name in sorted(accounts):
            if name in taken:  # an image account (root, sshd, jovyan): never handed to a hub user
                log(f"hub user {accounts[name]['hub_user']!r} has the name of an image account, {name!r}: "
                    "no SFTP account")
                continue
            kept[name] = accounts[name]
        passwd = [f"{a['name']}:x:{a['uid']}:{a['gid']}:{_gecos(a['hub_user'])}:{a['home_path']}:{SHELL}"
                  for a in kept.values()]
        gids: dict[str, int] = {}
        members: dict[str, list[str]] = {}
        for account in kept.values():
            for group, gid in [(account["primary_group"], account["gid"]), *account["groups"].items()]:
                if gids.setdefault(group, gid) != gid:
                    log(f"group {group!r} has gid {gids[group]} and {gid} in two plans: kept {gids[group]}")
                    continue
                members.setdefault(group, [])
                if group != account["primary_group"]:
                    members[group].append(account["name"])
        group_lines = [f"{g}:x:{gid}:{','.join(sorted(members[g]))}" for g, gid in sorted(gids.items())]
        shadow = [f"{a['name']}:*:::::::" for a in kept.values()]
        _write(self.etc / "passwd", _joined(image_passwd, passwd))
        _write(self.etc / "group", _joined(image_group, group_lines))
        _write(self.etc / "shadow", _joined((self.state / "shadow.image").read_text(), shadow),
               like=self.etc / "shadow")
        _write(self.state / "accounts.json", json.dumps(kept, indent=1, sort_keys=True))
        return kept


def _gecos(hub_user: Any) -> str:
    """The hub username in the comment field (what the name stands for), without separators."""
    return re.sub(r"[:,\n\r]", "_", str(hub_user))[:200]


def _joined(image: str, lines: list[str]) -> str:
    return image.rstrip("\n") + "\n" + "".join(f"{line}\n" for line in lines)


def _write(path: Path, text: str, mode: int = 0o644, like: Path | None = None) -> None:
    """Replace `path` atomically: sshd and PAM never read a half-written file. `like`: keep that
    file's mode and group (shadow: 0640 root:shadow on Debian), or 0600 when it is missing."""
    tmp = path.with_name(f".{path.name}.qhub-tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    if like is not None:
        try:
            info = like.stat()
            mode = info.st_mode & 0o777
            os.chown(tmp, -1, info.st_gid)
        except FileNotFoundError:
            mode = 0o600
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _account_or_none(username: str, plan: dict[str, Any]) -> Account | None:
    try:
        return account_of(plan)
    except ValueError as e:
        log(f"{username!r}: the hub's plan cannot be an account here ({e}); skipped")
        return None


def sync(hub: Hub, files: Files, seen: set[str] | None = None) -> tuple[dict[str, Account], set[str]]:
    """Accounts from the hub's plans, written: (the accounts, every hub username listed).

    `seen` None: everyone's plan is asked for (a full round). Otherwise only the plans of hub users
    not in `seen` (those new since the round that listed `seen`); the other accounts stay as they
    are, but those of users the hub no longer has are dropped. `PlanUnavailable` leaves the files
    as they were."""
    names = hub.usernames()
    if seen is None:
        accounts: dict[str, Account] = {}
        todo = names
    else:
        listed = set(names)
        with files.locked():
            accounts = {n: a for n, a in files.accounts().items() if a["hub_user"] in listed}
        todo = [n for n in names if n not in seen]
    for username in todo:
        plan = hub.plan(username)
        account = _account_or_none(username, plan) if plan is not None else None  # None: just deleted
        if account is not None:
            accounts[account["name"]] = account
    with files.locked():
        if seen is not None:  # a login may have refreshed someone meanwhile: theirs is newer
            current = files.accounts()
            accounts.update({n: a for n, a in current.items() if a["hub_user"] in set(names) - set(todo)})
        return files.write(accounts), set(names)


def refresh(hub: Hub, files: Files, username: str) -> tuple[Account | None, Account | None]:
    """Ask the hub for `username`'s plan now and rewrite their entries: (before, now) accounts,
    None where there is none. `PlanUnavailable` when the hub cannot answer (nothing is changed)."""
    plan = hub.plan(username)
    account = _account_or_none(username, plan) if plan is not None else None
    with files.locked():
        accounts = files.accounts()
        before = next((a for a in accounts.values() if a["hub_user"] == username), None)
        accounts = {name: a for name, a in accounts.items() if a["hub_user"] != username}
        if account is not None:
            accounts.pop(account["name"], None)
            accounts[account["name"]] = account
        written = files.write(accounts)
    return before, (written.get(account["name"]) if account is not None else None)


def read_token(path: str) -> str:
    return Path(path).read_text().strip()


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="SFTP accounts from the hub's plans")
    parser.add_argument("command", choices=["sync", "keep-image-entries"])
    parser.add_argument("--hub-url-file", default="/etc/jupyterhub-sftp/config/hubUrl",
                        help="the hub's URL (http://hub:8081); its API is <url>/hub/api")
    parser.add_argument("--token-file", default="/etc/qhub/sftp-hub/token", help="the SFTP service's hub token")
    parser.add_argument("--every", type=float, default=0,
                        help="sync again every SECONDS (0: once): users new to the hub get their account")
    parser.add_argument("--full-every", type=float, default=300,
                        help="every SECONDS, ask for everyone's plan again (renumbered ids, groups)")
    parser.add_argument("--etc", default="/etc")
    parser.add_argument("--state", default="/etc/qhub-sftp")
    return parser.parse_args(argv)


def hub_of(args: argparse.Namespace) -> Hub:
    return Hub(Path(args.hub_url_file).read_text().strip().rstrip("/") + "/hub/api", read_token(args.token_file))


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    files = Files(args.etc, args.state)
    if args.command == "keep-image-entries":
        files.keep_image_entries()
        return 0
    seen: set[str] | None = None
    last_full = float("-inf")
    while True:
        full = time.monotonic() - last_full >= args.full_every
        try:
            written, listed = sync(hub_of(args), files, None if full else seen)
            if full:
                last_full = time.monotonic()
                log(f"{len(written)} accounts from the hub's plans")
            elif listed - (seen or set()):
                log(f"{len(listed - (seen or set()))} new hub users planned, {len(written)} accounts")
            seen = listed
        except (PlanUnavailable, OSError) as e:
            log(f"accounts not synced: {e}; the last ones stay")
            if not args.every:
                return 1
        if not args.every:
            return 0
        time.sleep(args.every)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
