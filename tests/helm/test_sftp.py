"""The SFTP pod's accounts come from the hub's plans; a token only opens its owner's home.

A real JupyterHub (the qhub GitHub authenticator, a fake GitHub on loopback) is the authority, set
up with the roles the chart's hub gives the `sftp` service (`hub_settings.plan_readers_role`,
`user_listers_role`). People log in through it for real; then the chart's files/sftp code runs as
in the SFTP container: `accounts.py sync` with the system python3 (the image's: standard library
only, no qhub_hub), against a scratch /etc holding an image's passwd and group, and the token check
as PAM's pam_exec runs it (PAM_USER in the environment, the password on stdin ending in NUL),
really bind-mounting the home into the chroot (as root, in temporary folders).

Checked: each account's uid, gid and groups are the hub's plan (an identity-provider user's uid
handed out by the hub's registry after a collision, which the config alone gets wrong); a user
the hub no longer admits, or never did, has no account; a user removed from a group loses it at
the next sync, and at their next login even before it; a new user's first login makes their
account; the hub being away keeps the last accounts and refuses logins.

Names dbg*, ids 48000-48999 (this suite's range); nothing is written to the machine's /etc.
"""

from __future__ import annotations

import ast
import json
import os
import secrets
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from qhub_hub.config import load_config
from qhub_hub.hub_plans import HubPlanSource
from qhub_hub.policy import plan_for
from tests.hub.conftest import hub_env, oauth_login, write_config
from tests.hub.fake_providers import FakeGitHub
from tests.support.hub import HubProcess

from . import chart

FILES = chart.CHART / "files" / "sftp"
VERIFY = FILES / "jupyterhub-token-verify.py"
SYSTEM_PYTHON = "/usr/bin/python3"  # what the SFTP image runs these files with: no qhub_hub there
SERVICE = "sftp"
GROUPS = {"dbgusers": 48100, "dbganalysts": 48101, "dbgml": 48102}
# an image's accounts: root, upstream's jovyan, and one whose name a hub user may also have
IMAGE_PASSWD = ("root:x:0:0:root:/root:/bin/bash\njovyan:x:1000:1000:Default Jupyter user:/home/jovyan:/sbin/nologin\n"
                "dbgimage:x:1001:1001::/nonexistent:/usr/sbin/nologin\n")
IMAGE_GROUP = "root:x:0:\nusers:x:100:\njovyan:x:1000:\n"
IMAGE_SHADOW = "root:*:19000:0:99999:7:::\njovyan:!:19000:0:99999:7:::\n"

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def config_data(github: FakeGitHub, hub_url: str, *, alice_groups: tuple[str, ...] = ("dbgml", "dbganalysts"),
                without: tuple[str, ...] = ()) -> dict[str, Any]:
    users = {"dbgalice": {"uid": 48001, "primary_group": "dbgusers", "secondary_groups": list(alice_groups)},
             "dbgbob": {"uid": 48002, "primary_group": "dbgusers", "readonly_groups": ["dbganalysts"]},
             "jovyan": {"uid": 48003, "primary_group": "dbgusers"},  # a reserved name: escaped
             "dbgimage": {"uid": 48004, "primary_group": "dbgusers"}}  # an image account's name
    return {
        "security": {
            "authentication": {"type": "GitHub", "config": {
                "client_id": github.client_id, "client_secret": github.client_secret,
                "oauth_callback_url": f"{hub_url}/hub/oauth_callback", "github_url": github.url}},
            "groups": {name: {"gid": gid} for name, gid in GROUPS.items()},
            "users": {name: spec for name, spec in users.items() if name not in without},
            "identity_provider_groups": {"acme:ml-team": "dbgml"},
            "dynamic_ids": {"uid_start": 48500, "uid_count": 50},
        },
        "profiles": {"jupyterlab": [{"display_name": "Small", "slug": "small", "default": True}]},
    }


def colliding_name(config, first: str) -> str:
    """An identity-provider user whose hashed uid slot is `first`'s: the hub hands them the next."""
    slot = plan_for(config, first, ["acme:ml-team"]).uid
    return next(n for n in (f"dbgu{i}" for i in range(5000)) if plan_for(config, n, ["acme:ml-team"]).uid == slot)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory):
    """A real hub; dbgalice, dbgbob, jovyan, dbgimage (config users), dbggina and a user colliding
    with her uid slot (identity-provider users of acme:ml-team) logged in, in that order."""
    workdir = tmp_path_factory.mktemp("sftp-hub")
    github = FakeGitHub().start()
    config_path = workdir / "qhub-config.yaml"
    token = secrets.token_hex(16)
    hub = HubProcess(workdir, env=hub_env(config_path), extra_config=f"""
        from qhub_hub import hub_settings
        c.JupyterHub.authenticator_class = "qhub-github"
        hub_settings.configure_plan_scope(c)
        c.JupyterHub.services.append({{"name": {SERVICE!r}, "api_token": {token!r}}})
        c.JupyterHub.load_roles += [
            hub_settings.plan_readers_role([{SERVICE!r}]),
            hub_settings.user_listers_role([{SERVICE!r}]),
            {{"name": "user", "scopes": hub_settings.user_role_scopes()}},
        ]
    """)
    write_config(config_path, config_data(github, hub.url))
    config = load_config(config_path)
    late = colliding_name(config, "dbggina")
    hub.start()
    try:
        for name, teams in [("dbgalice", []), ("dbgbob", []), ("jovyan", []), ("dbgimage", []),
                            ("dbggina", ["acme:ml-team"]), (late, ["acme:ml-team"])]:
            github.add_user(name, teams=teams)
            github.next_login = name
            assert oauth_login(hub.url, github.url)[1].status_code == 302, name
        yield {"hub": hub, "github": github, "config": config_path, "token": token, "late": late,
               "slot": plan_for(config, late, ["acme:ml-team"]).uid}
    finally:
        hub.stop()
        github.stop()


@pytest.fixture
def pod(tmp_path: Path, hub: dict) -> dict:
    """The SFTP container's files: an image's /etc, the hub URL and the service token, storage."""
    etc, state = tmp_path / "etc", tmp_path / "state"
    etc.mkdir()
    (etc / "passwd").write_text(IMAGE_PASSWD)
    (etc / "group").write_text(IMAGE_GROUP)
    (etc / "shadow").write_text(IMAGE_SHADOW)
    (etc / "shadow").chmod(0o640)
    (tmp_path / "hubUrl").write_text(hub["hub"].url + "\n")
    (tmp_path / "token").write_text(hub["token"] + "\n")
    for folder in ("homes", "chroots"):
        (tmp_path / folder).mkdir()
    tmp_path.chmod(0o755)
    world = {"dir": tmp_path, "etc": etc, "state": state, "homes": tmp_path / "homes",
             "chroots": tmp_path / "chroots"}
    assert accounts_cli(world, "keep-image-entries").returncode == 0
    try:
        yield world
    finally:
        for mount in sorted(world["chroots"].glob("*/*"), reverse=True):
            while mounted(mount):
                subprocess.run(["umount", str(mount)], check=True)
        write_config(hub["config"], config_data(hub["github"], hub["hub"].url))  # as the module began


def accounts_cli(world: dict, *args: str, hub_url_file: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([SYSTEM_PYTHON, "-I", str(FILES / "accounts.py"), *args,
                           "--hub-url-file", str(hub_url_file or world["dir"] / "hubUrl"),
                           "--token-file", str(world["dir"] / "token"),
                           "--etc", str(world["etc"]), "--state", str(world["state"])],
                          capture_output=True, text=True, timeout=120, cwd="/", env={"PATH": "/usr/bin:/bin"})


def sync(world: dict) -> subprocess.CompletedProcess:
    result = accounts_cli(world, "sync")
    assert result.returncode == 0, result.stderr
    return result


def passwd(world: dict) -> dict[str, list[str]]:
    return {line.split(":")[0]: line.split(":") for line in (world["etc"] / "passwd").read_text().splitlines()}


def group_members(world: dict) -> dict[str, set[str]]:
    """name:gid -> members, over every group line (the image's and ours)."""
    out: dict[str, set[str]] = {}
    for line in (world["etc"] / "group").read_text().splitlines():
        name, _, gid, members = line.split(":")
        out.setdefault(f"{name}:{gid}", set()).update(m for m in members.split(",") if m)
    return out


def groups_of(world: dict, user: str) -> set[int]:
    return {int(key.split(":")[1]) for key, members in group_members(world).items() if user in members}


def plan_of(hub: dict, name: str):
    return HubPlanSource(f"{hub['hub'].url}/hub/api", hub["token"]).fetch_sync(name).plan


def user_token(hub: dict, name: str) -> str:
    status, body = hub["hub"].api("POST", f"/users/{name}/tokens", {"note": "sftp"})
    assert status == 201, body
    return body["token"]


def mounted(path: Path) -> bool:
    return any(line.split()[4] == os.path.realpath(path) for line in Path("/proc/self/mountinfo").open())


def login(world: dict, user: str, password: str) -> subprocess.CompletedProcess:
    """Run the check as pam_exec does: the file itself executed (mounted 0755 in the pod), PAM_USER
    set, `password\\0` on stdin, the PAM line's args."""
    check = world["dir"] / VERIFY.name
    if not check.exists():
        shutil.copy(VERIFY, check)
        check.chmod(0o755)
    args = [str(check), "--hub-url-file", str(world["dir"] / "hubUrl"),
            "--token-file", str(world["dir"] / "token"), "--library", str(FILES),
            "--etc", str(world["etc"]), "--state", str(world["state"]),
            "--homes", str(world["homes"]), "--chroots", str(world["chroots"])]
    return subprocess.run(args, input=password + "\x00", text=True, timeout=60, capture_output=True,
                          env={"PAM_USER": user, "PATH": "/usr/bin:/bin"}, cwd="/")


# --- the sync --------------------------------------------------------------------------------------


def test_accounts_are_the_hubs_plans(hub: dict, pod: dict) -> None:
    result = sync(pod)
    assert "5 accounts from the hub's plans" in result.stderr, result.stderr
    entries = passwd(pod)
    # the image's own accounts stay, first and unchanged
    assert (pod["etc"] / "passwd").read_text().startswith(IMAGE_PASSWD)
    assert (pod["etc"] / "group").read_text().startswith(IMAGE_GROUP)
    # a shadow entry without password or expiry (pam_unix's account step wants one), mode kept
    shadow = (pod["etc"] / "shadow").read_text()
    assert shadow.startswith(IMAGE_SHADOW) and "dbgalice:*:::::::\n" in shadow and "dbgimage:*" not in shadow
    assert stat.S_IMODE((pod["etc"] / "shadow").stat().st_mode) == 0o640
    assert entries["dbgimage"][2] == "1001"  # a hub user named like an image account gets none
    assert "hub user 'dbgimage' has the name of an image account, 'dbgimage'" in result.stderr
    assert entries["jovyan"][2] == "1000"  # the hub user jovyan has an escaped Unix name
    escaped = plan_of(hub, "jovyan").unix_name
    assert escaped.startswith("jovyan--") and entries[escaped][2:5] == ["48003", "48100", "jovyan"]
    late = hub["late"]
    for name in ("dbgalice", "dbgbob", "dbggina", late):
        plan = plan_of(hub, name)
        assert entries[name] == [name, "x", str(plan.uid), str(plan.gid), name, f"/home/{name}",
                                 "/usr/sbin/nologin"], entries[name]
        assert groups_of(pod, name) == set(plan.supplemental_gids), name  # read-write groups only
    # the ids the hub decided: config uids, and dynamic ones from its registry
    assert [int(entries[n][2]) for n in ("dbgalice", "dbgbob")] == [48001, 48002]
    assert int(entries["dbggina"][2]) == hub["slot"] and int(entries[late][2]) == hub["slot"] + 1
    assert groups_of(pod, "dbgalice") == {48101, 48102} and groups_of(pod, "dbgbob") == set()  # bob only reads
    assert groups_of(pod, late) == {48102}  # from the identity provider's team
    assert f"{late}:{hub['slot'] + 1}" in group_members(pod)  # a private primary group (gid = uid)


def test_a_user_removed_from_a_group_or_the_config_loses_it(hub: dict, pod: dict) -> None:
    sync(pod)
    assert 48102 in groups_of(pod, "dbgalice")
    write_config(hub["config"], config_data(hub["github"], hub["hub"].url, alice_groups=("dbganalysts",),
                                            without=("dbgbob",)))
    sync(pod)
    assert groups_of(pod, "dbgalice") == {48101}
    assert "dbgbob" not in passwd(pod)  # still a hub user, but the plan no longer admits him
    assert json.loads((pod["state"] / "accounts.json").read_text()).keys() == {
        "dbgalice", "dbggina", hub["late"], plan_of(hub, "jovyan").unix_name}


def test_the_hub_away_keeps_the_last_accounts(hub: dict, pod: dict) -> None:
    sync(pod)
    before = (pod["etc"] / "passwd").read_text(), (pod["etc"] / "group").read_text()
    closed = pod["dir"] / "closedUrl"
    closed.write_text("http://127.0.0.1:9\n")
    result = accounts_cli(pod, "sync", hub_url_file=closed)
    assert result.returncode == 1 and "accounts not synced: the hub at http://127.0.0.1:9/hub/api cannot be " \
        "reached" in result.stderr, result.stderr
    assert ((pod["etc"] / "passwd").read_text(), (pod["etc"] / "group").read_text()) == before
    (pod["dir"] / "token").write_text("not-the-service-token")
    result = accounts_cli(pod, "sync")
    assert result.returncode == 1 and "needs the scope list:users" in result.stderr, result.stderr
    assert (pod["etc"] / "passwd").read_text() == before[0]


def test_start_script_and_nsswitch() -> None:
    assert subprocess.run(["sh", "-n", str(FILES / "start.sh")]).returncode == 0
    # what the SFTP image can run: its system python3 (3.8 on upstream's Ubuntu focal base), the
    # standard library only, and the token check started by pam_exec as an executable
    for path in (FILES / "accounts.py", VERIFY):
        tree = ast.parse(path.read_text(), feature_version=(3, 8))
        imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                    for alias in node.names}
        imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom) and node.module}
        assert imported - sys.stdlib_module_names <= {"accounts"}, (path.name, imported)
    assert VERIFY.read_text().startswith("#!/usr/bin/env python3\n")
    lines = [line.split() for line in (FILES / "nsswitch.conf").read_text().splitlines()
             if line and not line.startswith("#")]
    databases = {fields[0].rstrip(":"): fields[1:] for fields in lines}
    assert databases["passwd"] == databases["group"] == databases["shadow"] == ["files"]


# --- logins -----------------------------------------------------------------------------------------

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="bind mounts and chown need root")


@needs_root
def test_a_token_opens_its_owners_home_as_the_owner(hub: dict, pod: dict) -> None:
    sync(pod)
    late = hub["late"]
    result = login(pod, late, user_token(hub, late))
    assert result.returncode == 0, result.stderr
    home = pod["homes"] / late
    info = home.stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (hub["slot"] + 1, hub["slot"] + 1, 0o700)
    target = pod["chroots"] / late / late
    assert mounted(target)
    chroot = (pod["chroots"] / late).stat()
    assert chroot.st_uid == 0 and stat.S_IMODE(chroot.st_mode) == 0o755  # sshd's ChrootDirectory rule
    (target / "uploaded.txt").write_text("via sftp")
    assert (home / "uploaded.txt").read_text() == "via sftp"
    # a second login reuses the mount (no second mount stacked on it)
    assert login(pod, late, user_token(hub, late)).returncode == 0
    points = [line.split()[4] for line in Path("/proc/self/mountinfo").open()]
    assert points.count(os.path.realpath(target)) == 1


@needs_root
def test_a_login_takes_the_plan_of_that_moment(hub: dict, pod: dict) -> None:
    """Removed from a group after the last sync: the login itself rewrites the entries first."""
    sync(pod)
    assert groups_of(pod, "dbgalice") == {48101, 48102}
    write_config(hub["config"], config_data(hub["github"], hub["hub"].url, alice_groups=("dbganalysts",)))
    assert login(pod, "dbgalice", user_token(hub, "dbgalice")).returncode == 0
    assert groups_of(pod, "dbgalice") == {48101}  # before sshd sets the session's groups
    # renumbered by the config: this login is refused (sshd holds the old uid), the next one works
    data = config_data(hub["github"], hub["hub"].url)
    data["security"]["users"]["dbgalice"]["uid"] = 48011
    write_config(hub["config"], data)
    result = login(pod, "dbgalice", user_token(hub, "dbgalice"))
    assert result.returncode == 1 and "renumbered" in result.stderr, result.stderr
    assert passwd(pod)["dbgalice"][2] == "48011"
    assert login(pod, "dbgalice", user_token(hub, "dbgalice")).returncode == 0


def load_accounts_module():
    """files/sftp/accounts.py as the token check imports it (its folder on sys.path)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("qhub_sftp_accounts", FILES / "accounts.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_quick_round_plans_only_the_users_new_to_the_hub(hub: dict, pod: dict) -> None:
    """The sync loop's rounds between full ones: one list of users, a plan per new user only."""
    accounts = load_accounts_module()
    asked: list[str] = []

    class Counting(accounts.Hub):
        def plan(self, username):
            asked.append(username)
            return super().plan(username)

    source = Counting(f"{hub['hub'].url}/hub/api", hub["token"])
    files = accounts.Files(str(pod["etc"]), str(pod["state"]))
    written, seen = accounts.sync(source, files)  # a full round
    assert len(asked) == len(seen) >= 6 and "dbgalice" in written
    asked.clear()
    hub["github"].add_user("dbgquick", teams=["acme:ml-team"])
    hub["github"].next_login = "dbgquick"
    assert oauth_login(hub["hub"].url, hub["github"].url)[1].status_code == 302
    written, seen = accounts.sync(source, files, seen)
    assert asked == ["dbgquick"] and "dbgquick" in seen
    assert passwd(pod)["dbgquick"][2] == str(plan_of(hub, "dbgquick").uid)
    assert written.keys() >= {"dbgalice", "dbgbob", "dbggina", "dbgquick"}
    asked.clear()
    assert accounts.sync(source, files, seen)[0] == written and asked == []  # nothing new: no plan asked


@needs_root
@pytest.mark.parametrize("user,password", [
    ("dbgalice", "not-a-token"),
    ("dbgalice", ""),
    ("dbgalice", "BOB"),          # a valid token, of another user
    ("jovyan", "JOVYAN"),         # the image's account: never a hub user's, even with its token
    ("dbgimage", "DBGIMAGE"),     # an image account named as a hub user is: still the image's
    ("root", "ALICE"),
    ("../dbgalice", "ALICE"),
    ("dbgbob", "ALICE"),
])
def test_refusals(hub: dict, pod: dict, user: str, password: str) -> None:
    sync(pod)
    tokens = {"ALICE": "dbgalice", "BOB": "dbgbob", "JOVYAN": "jovyan", "DBGIMAGE": "dbgimage"}
    token = user_token(hub, tokens[password]) if password in tokens else password
    assert login(pod, user, token).returncode == 1
    assert list(pod["chroots"].iterdir()) == []


@needs_root
def test_no_login_without_the_hub(hub: dict, pod: dict) -> None:
    sync(pod)
    token = user_token(hub, "dbgalice")
    (pod["dir"] / "token").write_text("not-the-service-token")  # the plan cannot be read
    result = login(pod, "dbgalice", token)
    assert result.returncode == 1 and "may not read plans" in result.stderr, result.stderr
    assert list(pod["chroots"].iterdir()) == []


# --- end to end: start.sh and a real sshd, as the SFTP container runs them ---------------------------

SSHD_CONFIG = """Port {port}
ListenAddress 127.0.0.1
HostKey /etc/jupyterhub-sftp/config/hostKey
PidFile /etc/qhub-sftp-sshd.pid
PubkeyAuthentication no
PasswordAuthentication yes
PermitEmptyPasswords no
KbdInteractiveAuthentication no
UsePAM yes
AllowAgentForwarding no
AllowTcpForwarding no
X11Forwarding no
PermitTTY no
PrintMotd no
Subsystem sftp internal-sftp
ChrootDirectory {chroots}/%u
ForceCommand internal-sftp -d %u
"""
# upstream's image: the token check is sufficient for auth, nothing else lets anyone in; the
# account step is pam_unix's, as in the image's common-account
PAM_SSHD = """auth     sufficient pam_exec.so expose_authtok log={log} {check} --homes {homes} --chroots {chroots}
auth     requisite  pam_deny.so
account  required   pam_unix.so
session  required   pam_permit.so
password required   pam_deny.so
"""


@pytest.fixture
def sftp_container(hub: dict):
    """The SFTP container as far as this machine can be one: start.sh run as the pod runs it,
    in a mount namespace whose /etc holds the pod's files where the chart mounts them (the
    ConfigMap's files, the hub URL, the `sftp` service token) over a copy of this machine's /etc
    (its passwd, group and shadow play the image's). Only the storage paths differ, given on the
    PAM line: chroots must be in a root-only path (sshd's rule; /tmp is world-writable)."""
    import signal

    from tests.support.net import free_port, wait_until

    root = Path(tempfile.mkdtemp(prefix="qhub-dbg-sftp-", dir="/run"))
    root.chmod(0o755)
    etc = root / "etc"
    shutil.copytree("/etc", etc, symlinks=True)
    shutil.copytree(FILES, etc / "qhub" / "sftp", ignore=shutil.ignore_patterns("__pycache__"))  # the ConfigMap
    for path in (etc / "qhub" / "sftp").iterdir():
        path.chmod(0o755)  # its defaultMode
    shutil.copy(FILES / "nsswitch.conf", etc / "nsswitch.conf")
    (etc / "jupyterhub-sftp" / "config").mkdir(parents=True)
    (etc / "jupyterhub-sftp" / "config" / "hubUrl").write_text(hub["hub"].url)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                    str(etc / "jupyterhub-sftp" / "config" / "hostKey")], check=True)
    (etc / "qhub" / "sftp-hub").mkdir()
    (etc / "qhub" / "sftp-hub" / "token").write_text(hub["token"])
    (etc / "qhub" / "sftp-hub" / "token").chmod(0o400)
    homes, chroots = root / "homes", root / "chroots"
    homes.mkdir(mode=0o755)
    chroots.mkdir(mode=0o755)
    port = free_port()
    (etc / "ssh" / "sshd_config").write_text(SSHD_CONFIG.format(port=port, chroots=chroots))
    (etc / "pam.d" / "sshd").write_text(PAM_SSHD.format(
        log=root / "pam.log", check="/etc/qhub/sftp/jupyterhub-token-verify.py", homes=homes, chroots=chroots))
    log = open(root / "container.log", "w")
    proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                             f'mount --bind "{etc}" /etc && exec sh /etc/qhub/sftp/start.sh'],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd="/",
                            env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "QHUB_SFTP_SYNC_SECONDS": "1"})

    def logs() -> str:
        return "\n".join(f"--- {p.name}:\n{p.read_text(errors='replace')[-3000:]}"
                         for p in (root / "container.log", root / "pam.log") if p.exists())

    try:
        wait_until(lambda: _answers(port) or proc.poll() is not None, timeout=60, what="sshd to listen")
        assert proc.poll() is None, logs()
        yield {"etc": etc, "homes": homes, "port": port, "logs": logs}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # sshd and the sync loop start.sh left beside it
        proc.wait(timeout=30)
        log.close()
        write_config(hub["config"], config_data(hub["github"], hub["hub"].url))
        shutil.rmtree(root, ignore_errors=True)


def _answers(port: int) -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def sftp_put(port: int, user: str, token: str, files: dict[str, bytes]) -> dict[str, str]:
    """Log in over SFTP with `token` and upload each file; per file "ok" or the error. A refused
    login raises PermissionError."""
    import asyncio

    import asyncssh

    async def run() -> dict[str, str]:
        try:
            conn = await asyncssh.connect("127.0.0.1", port=port, username=user, password=token,
                                          known_hosts=None, client_keys=None, preferred_auth="password")
        except asyncssh.PermissionDenied as e:
            raise PermissionError(f"login of {user} refused") from e
        results = {}
        async with conn, conn.start_sftp_client() as sftp:
            for name, data in files.items():
                try:
                    async with sftp.open(name, "wb") as f:
                        await f.write(data)
                    results[name] = "ok"
                except asyncssh.SFTPError as e:
                    results[name] = f"error: {e.reason}"
        return results

    return asyncio.run(run())


@needs_root
def test_real_sftp_sessions_run_with_the_hubs_plan(hub: dict, sftp_container: dict) -> None:
    sshd = sftp_container
    homes, port = sshd["homes"], sshd["port"]
    from tests.support.net import wait_until

    wait_until(lambda: "dbgalice:" in (sshd["etc"] / "passwd").read_text(), timeout=60,
               what="start.sh's first sync")
    # a folder only members of dbgml may write to, in alice's home (made for the test)
    (homes / "dbgalice").mkdir(mode=0o700)
    os.chown(homes / "dbgalice", 48001, 48100)
    (homes / "dbgalice" / "ml").mkdir()
    os.chown(homes / "dbgalice" / "ml", 0, GROUPS["dbgml"])
    (homes / "dbgalice" / "ml").chmod(0o770)

    token = user_token(hub, "dbgalice")
    try:
        result = sftp_put(port, "dbgalice", token, {"hello.txt": b"hi", "ml/model.bin": b"w"})
    except PermissionError:
        raise AssertionError(sshd["logs"]()) from None
    assert result == {"hello.txt": "ok", "ml/model.bin": "ok"}, (result, sshd["logs"]())
    info = (homes / "dbgalice" / "hello.txt").stat()
    assert (info.st_uid, info.st_gid) == (48001, 48100)  # her plan's uid and primary gid
    with pytest.raises(PermissionError):
        sftp_put(port, "dbgalice", user_token(hub, "dbgbob"), {"x": b""})  # bob's token

    # removed from dbgml in the config, no sync since: her next session no longer has the group
    write_config(hub["config"], config_data(hub["github"], hub["hub"].url, alice_groups=("dbganalysts",)))
    result = sftp_put(port, "dbgalice", token, {"hello2.txt": b"hi", "ml/again.bin": b"w"})
    assert result["hello2.txt"] == "ok" and result["ml/again.bin"].startswith("error"), result
    assert not (homes / "dbgalice" / "ml" / "again.bin").exists()

    # dbggina, synced before sshd started: her registry uid
    assert sftp_put(port, "dbggina", user_token(hub, "dbggina"), {"g.txt": b"x"}) == {"g.txt": "ok"}
    assert (homes / "dbggina" / "g.txt").stat().st_uid == hub["slot"]
    # an identity-provider user who logs in to the hub now: the sync loop makes her account
    # within a round (1 s here, $QHUB_SFTP_SYNC_SECONDS), and her first SFTP login gets in with
    # the uid the hub's registry gave her
    hub["github"].add_user("dbgnewton", teams=["acme:ml-team"])
    hub["github"].next_login = "dbgnewton"
    assert oauth_login(hub["hub"].url, hub["github"].url)[1].status_code == 302
    wait_until(lambda: "dbgnewton:" in (sshd["etc"] / "passwd").read_text(), timeout=30,
               what="the sync loop to make dbgnewton's account")
    try:
        assert sftp_put(port, "dbgnewton", user_token(hub, "dbgnewton"), {"first.txt": b"x"}) == {"first.txt": "ok"}
    except PermissionError:
        raise AssertionError(sshd["logs"]()) from None
    info = (homes / "dbgnewton" / "first.txt").stat()
    plan = plan_of(hub, "dbgnewton")
    assert (info.st_uid, info.st_gid) == (plan.uid, plan.gid) and 48500 <= plan.uid < 48550


GOOD_PLAN = {"may_log_in": True, "username": "Dr.Who@example.org", "unix_name": "dr-who-example-o--abcdefgh23",
             "uid": 48020, "gid": 48100, "primary_group": "dbgusers",
             "memberships": [{"name": "dbgusers", "gid": 48100, "readonly": False},
                             {"name": "dbgml", "gid": 48102, "readonly": False},
                             {"name": "dbganalysts", "gid": 48101, "readonly": True}],
             "home": {"path": "/home/dr-who-example-o--abcdefgh23", "subpath": "home/dr-who-example-o--abcdefgh23",
                      "mode": 0o700}}


@pytest.mark.parametrize("field,value", [
    ("unix_name", "evil:0:0"), ("unix_name", "root\nx"), ("uid", 0), ("uid", "48020"), ("gid", True),
    ("primary_group", "a:b"), ("memberships", [{"name": "ml,wheel", "gid": 48102, "readonly": False}]),
    ("home", {"path": "/home/x\nroot::0:0::/:/bin/sh", "subpath": "home/x", "mode": 0o700}),
    ("home", {"path": "/home/x", "subpath": "home/../etc", "mode": 0o700}),
])
def test_a_plan_field_that_cannot_be_written_safely_is_refused(field: str, value: Any) -> None:
    accounts = load_accounts_module()
    assert accounts.account_of(GOOD_PLAN)["groups"] == {"dbgml": 48102}  # read-only: no gid
    assert accounts.account_of({**GOOD_PLAN, "may_log_in": False}) is None
    with pytest.raises(ValueError):
        accounts.account_of({**GOOD_PLAN, field: value})
