"""The SSH server's PAM check: is this a token of this user, and may this user log in?

Run by pam_exec as root: ``python -I -m qhub_hub.local.ssh_check SETTINGS.json``. pam_exec gives
the step in $PAM_TYPE and the account name in $PAM_USER; for ``auth`` the password (a JupyterHub API
token) arrives on stdin. Exit 0 lets the user in; anything else refuses.

- auth: ``GET <hub>/hub/api/user`` with the token must name a *user* (not a service) whose Unix
  name is $PAM_USER. A wrong, expired or revoked token, or another user's, is refused.
- account (also after public-key logins): $PAM_USER must be the Unix account of a hub user
  (the account's comment holds the hub username; it must map back to exactly this Unix name),
  and the plan the hub gives for that user (``GET /hub/api/qhub/plans/<name>``) must admit them.
  The config is never read here: a broken config file cannot lock anyone out, and a hub that
  cannot answer refuses the login with the reason in the log.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from ..hub_plans import HubPlanSource, PlanUnavailable
from ..naming import unix_name

TIMEOUT = 10


def _get(url: str, token: str) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, None


def check_token(settings: dict[str, str], account: str, token: str) -> tuple[bool, str]:
    if not re.fullmatch(r"[A-Za-z0-9_.~-]{8,256}", token):
        return False, "the password is not an API token"
    status, model = _get(settings["hub_api_url"].rstrip("/") + "/user", token)
    if status != 200 or not isinstance(model, dict):
        return False, f"the hub does not accept the token (HTTP {status})"
    if model.get("kind", "user") != "user":
        return False, f"the token belongs to a {model.get('kind')}, not a user"
    name = model.get("name")
    if not isinstance(name, str) or unix_name(name) != account:
        return False, f"the token belongs to hub user {name!r}, not to the account {account!r}"
    return True, f"token of hub user {name!r}"


def hub_username(account: str) -> str | None:
    """The hub username of a Unix account, or None when it is not a platform account."""
    try:
        entry = pwd.getpwnam(account)
    except KeyError:
        return None
    if entry.pw_uid == 0:
        return None
    for candidate in (entry.pw_gecos.split(",")[0], account):
        if candidate and unix_name(candidate) == account:
            return candidate
    return None


def check_account(settings: dict[str, str], account: str) -> tuple[bool, str]:
    name = hub_username(account)
    if name is None:
        return False, f"{account!r} is not the account of a hub user"
    with open(settings["api_token_file"]) as f:
        token = f.read().strip()
    try:  # the hub decides who the user is; this check never re-derives it
        plan = HubPlanSource(settings["hub_api_url"], token).fetch_sync(name).plan
    except PlanUnavailable as e:
        return False, f"no plan for hub user {name!r}: {e}"
    if not plan.may_log_in:
        return False, f"the config does not admit {name!r} any more"
    if plan.unix_name != account:
        return False, f"hub user {name!r} has the Unix name {plan.unix_name!r}, not {account!r}"
    return True, f"hub user {name!r} admitted"


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m qhub_hub.local.ssh_check SETTINGS.json (run by pam_exec)",
              file=sys.stderr)
        return 2
    with open(argv[1]) as f:
        settings = json.load(f)
    step = os.environ.get("PAM_TYPE", "")
    account = os.environ.get("PAM_USER", "")
    try:
        if step == "auth":
            token = sys.stdin.buffer.read(4096).split(b"\0")[0].decode(errors="replace").strip()
            ok, why = check_token(settings, account, token)
        elif step == "account":
            ok, why = check_account(settings, account)
        else:
            ok, why = False, f"unexpected PAM step {step!r}"
    except Exception as e:  # any failure refuses; say why in the log
        ok, why = False, f"error: {e!r}"
    rhost = os.environ.get("PAM_RHOST", "?")
    print(f"{step} {account!r} from {rhost}: {'allowed' if ok else 'refused'}: {why}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
