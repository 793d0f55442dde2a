"""The SSH server's files and the token check's decisions, without a server."""

from __future__ import annotations

from pathlib import Path

from qhub_hub.local.session_env import render_session_env, session_environment
from qhub_hub.local.ssh import SshSettings, render_pam_service, render_sshd_config
from qhub_hub.local.ssh_check import check_token

SETTINGS = SshSettings(state_dir=Path("/var/lib/qhub-hub/ssh"), session_dir=Path("/var/lib/qhub-hub/sessions"),
                       port=8022, listen="0.0.0.0",
                       hub_api_url="http://127.0.0.1:8081/hub/api",
                       api_token_file=Path("/var/lib/qhub-hub/ssh-api-token"),
                       config_file=Path("/etc/qhub/config.yaml"), log_dir=Path("/var/lib/qhub-hub/logs"),
                       run_dir=Path("/var/lib/qhub-hub/run"), instance="0123abcd")


def test_sessions_get_the_server_environment_without_secrets():
    env = {"PATH": "/opt/qhub-hub/bin:/usr/bin", "QHUB_GROUPS": "a,b", "JUPYTERHUB_API_TOKEN": "t",
           "JPY_API_TOKEN": "t", "DASK_GATEWAY__ADDRESS": "http://x", "HOME": "/home/a",
           "MY_SECRET": "s", "OAUTH_TOKEN_X": "s", "MEM_LIMIT": "1", "bad name": "x"}
    assert session_environment(env) == {"PATH": "/opt/qhub-hub/bin:/usr/bin", "QHUB_GROUPS": "a,b",
                                        "DASK_GATEWAY__ADDRESS": "http://x", "MEM_LIMIT": "1"}
    assert render_session_env({"A": "it's", "B": "$(rm -rf /)"}).splitlines()[1:] == [
        "export A='it'\"'\"'s'", "export B='$(rm -rf /)'"]


def test_sshd_config_is_its_own():
    text = render_sshd_config(SETTINGS)
    for line in ["Port 8022", "ListenAddress 0.0.0.0", "UsePAM yes", "PermitRootLogin no",
                 "HostKey /var/lib/qhub-hub/ssh/ssh_host_ed25519_key",
                 "PidFile /var/lib/qhub-hub/run/sshd.pid", "ForceCommand /var/lib/qhub-hub/ssh/session",
                 "Subsystem sftp /usr/lib/openssh/sftp-server", "AllowTcpForwarding local"]:
        assert line in text.splitlines()
    assert "/etc/ssh" not in text.replace("/etc/ssh are not used", "")


def test_pam_service_is_named_after_the_state_dir():
    assert SETTINGS.service == "qhub-sshd-0123abcd"
    assert SETTINGS.pam_file == Path("/etc/pam.d/qhub-sshd-0123abcd")
    assert SETTINGS.sshd_link == Path("/var/lib/qhub-hub/ssh/qhub-sshd-0123abcd")
    lines = [line.split() for line in render_pam_service(SETTINGS).splitlines() if not line.startswith("#")]
    assert [line[:3] for line in lines] == [
        ["auth", "required", "pam_exec.so"], ["auth", "optional", "pam_permit.so"],
        ["account", "required", "pam_exec.so"], ["session", "required", "pam_exec.so"],
        ["password", "required", "pam_deny.so"]]
    assert "expose_authtok" in lines[0] and lines[0][-1] == "/var/lib/qhub-hub/ssh/check.json"
    # every session joins the user's cgroup before the user's shell runs
    assert lines[3][-3:] == ["-m", "qhub_hub.local.ssh_session", "/var/lib/qhub-hub/ssh/check.json"]


def test_a_password_that_is_no_token_never_reaches_the_hub():
    settings = {"hub_api_url": "http://127.0.0.1:9/hub/api"}  # nothing listens: a request would fail
    assert check_token(settings, "alice", "") == (False, "the password is not an API token")
    assert check_token(settings, "alice", "\x08\n\r\x7fINCORRECT") == (False, "the password is not an API token")
