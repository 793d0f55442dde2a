"""What a user server of the hub's environment no longer does at start (issue 15), and what it
still does: scripts/setup.d/zz-server-start.sh and qhub_hub/server_start.py.

Real servers of the installed environment (sys.prefix) run as the Unix user ``nobody`` on loopback.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from qhub_hub import server_start
from tests.support.net import free_port

BIN = Path(sys.prefix) / "bin"
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="starts servers as the user nobody (root)")


def env_python(code: str) -> str:
    """Run `code` in a fresh interpreter of the environment; its stdout."""
    return subprocess.run([str(BIN / "python"), "-c", code], capture_output=True, text=True,
                          check=True, timeout=120).stdout


# --- the slimmed environment ----------------------------------------------------------------------


def test_a_server_start_does_not_import_the_rfc3987_grammar() -> None:
    loaded = env_python("import sys; import jupyterlab.labapp; from jupyterhub.singleuser import extension; "
                        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
                        "('rfc3987_syntax', 'lark')))")
    assert loaded.strip() == "[]"


def test_our_server_side_modules_do_not_import_the_config_model() -> None:
    # every server imports the kernel spec manager (qhub_hub.conda_store.kernels) and server_start
    loaded = env_python("import sys, qhub_hub.conda_store.kernels, qhub_hub.server_start; "
                        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pydantic' "
                        "or m in ('qhub_hub.config', 'qhub_hub.policy')))")
    assert loaded.strip() == "[]"


def test_jupyter_events_still_validates_its_events_and_uri_formats() -> None:
    out = env_python("""
import io, logging, jsonschema
from jupyter_events import EventLogger
from jupyter_events.schema import EventSchema
from jupyter_events.validators import validate_schema
from jupyter_events.schema import EventSchemaLoadingError
schema = {"$id": "https://qhub.test/events/spawn", "version": "1", "type": "object",
          "properties": {"user": {"type": "string", "title": "user", "description": "who"}}}
log = EventLogger(handlers=[logging.StreamHandler(io.StringIO())])
log.register_event_schema(schema)
log.emit(schema_id=schema["$id"], data={"user": "ada"})
try:
    log.emit(schema_id=schema["$id"], data={"user": 42})
    print("bad event accepted")
except jsonschema.ValidationError:
    print("bad event refused")
try:
    validate_schema({**schema, "$id": "not a uri"})
    print("bad uri accepted")
except (jsonschema.ValidationError, EventSchemaLoadingError):
    print("bad uri refused")
from jsonschema import Draft7Validator
print("iri checked" if not Draft7Validator({"format": "iri"}, format_checker=Draft7Validator.FORMAT_CHECKER)
      .is_valid("not an iri") else "iri not checked")
print("uri-reference checked" if not Draft7Validator({"format": "uri-reference"},
      format_checker=Draft7Validator.FORMAT_CHECKER).is_valid("\\\\ bad ref") else "uri-reference not checked")
""").split()
    assert out == ["bad", "event", "refused", "bad", "uri", "refused",
                   # the documented behaviour change: IRIs are no longer checked (README)
                   "iri", "not", "checked", "uri-reference", "checked"]


def test_the_environment_turns_off_lsp_installs_and_build_checks() -> None:
    etc = Path(sys.prefix) / "etc" / "jupyter"
    server = json.loads((etc / "jupyter_server_config.json").read_text())
    assert server["LabApp"]["extension_manager"] == "readonly"
    assert server["ServerApp"]["jpserver_extensions"]["jupyter_lsp"] is False
    page = json.loads((etc / "labconfig" / "page_config.json").read_text())
    assert page["buildAvailable"] is False and page["buildCheck"] is False


def test_the_setup_step_is_idempotent_and_keeps_other_settings(tmp_path: Path) -> None:
    prefix = tmp_path / "prefix"
    (prefix / "bin").mkdir(parents=True)
    for name in ("python", "pip"):  # the step's interpreter; pip is never needed here
        (prefix / "bin" / name).symlink_to(BIN / name)
    etc = prefix / "etc" / "jupyter"
    (etc / "labconfig").mkdir(parents=True)
    (etc / "jupyter_server_config.json").write_text(json.dumps(
        {"ServerApp": {"jpserver_extensions": {"other": True}, "ip": "127.0.0.1"}}))
    (etc / "labconfig" / "page_config.json").write_text(json.dumps({"disabledExtensions": {"x": True}}))
    step = Path(__file__).resolve().parents[2] / "scripts" / "setup.d" / "zz-server-start.sh"
    for _ in range(2):
        done = subprocess.run(["bash", str(step)], env={**os.environ, "prefix": str(prefix)},
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    server = json.loads((etc / "jupyter_server_config.json").read_text())
    assert server == {"ServerApp": {"jpserver_extensions": {"other": True, "jupyter_lsp": False},
                                    "ip": "127.0.0.1"},
                      "LabApp": {"extension_manager": "readonly"}}
    page = json.loads((etc / "labconfig" / "page_config.json").read_text())
    assert page == {"disabledExtensions": {"x": True}, "buildAvailable": False, "buildCheck": False}
    assert "uninstall" not in done.stdout  # the second run found nothing to remove


# --- qhub_hub.server_start ---------------------------------------------------------------------


def test_node_hidden_restores_path_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with_node = tmp_path / "with-node"
    with_node.mkdir()
    (with_node / "node").write_text("#!/bin/sh\n")
    (with_node / "node").chmod(0o755)
    original = f"/nonexistent:{with_node}:{BIN}"
    monkeypatch.setenv("PATH", original)
    with server_start.node_hidden():
        assert os.environ["PATH"] == f"/nonexistent:{BIN}"
    assert os.environ["PATH"] == original
    monkeypatch.delenv("PATH")
    with server_start.node_hidden():
        pass
    assert "PATH" not in os.environ


def test_server_start_without_a_script_fails_with_a_message() -> None:
    done = subprocess.run([str(BIN / "python"), "-P", "-m", "qhub_hub.server_start"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "give the server's script" in done.stderr and "Traceback" not in done.stderr


@pytest.fixture
def node_spy() -> Iterator[tuple[Path, Path]]:
    """A folder holding a `node` that records each call, and the record file."""
    folder = Path(tempfile.mkdtemp(prefix="qhub-sc-node-"))
    record = folder / "calls"
    os.chmod(folder, 0o777)
    (folder / "node").write_text(f"#!/bin/sh\necho \"$@\" >> {record}\nexec /usr/bin/env -i true\n")
    (folder / "node").chmod(0o755)
    yield folder, record
    subprocess.run(["rm", "-rf", str(folder)], check=False)


def start_lab(command: list[str], path: str) -> tuple[subprocess.Popen, int, Path]:
    """A JupyterLab server as nobody in a fresh 0777 folder; returns when it answers."""
    root = Path(tempfile.mkdtemp(prefix="qhub-sc-lab-"))
    os.chmod(root, 0o777)
    port = free_port()
    proc = subprocess.Popen(
        [*command, "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
         "--IdentityProvider.token=sctoken", f"--ServerApp.root_dir={root}"],
        cwd=root, user="nobody", group="nogroup", stdout=subprocess.DEVNULL,
        stderr=open(root / "server.log", "wb"),  # noqa: SIM115 - the child's
        env={"PATH": path, "HOME": str(root), "LANG": "C.UTF-8"})
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError((root / "server.log").read_text())
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token=sctoken", timeout=5).read()
            return proc, port, root
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("the server did not answer in 180 s")


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/{path}?token=sctoken", timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""


def terminal_output(port: int, command: str) -> str:
    """Run `command` in a new terminal of the server; everything it printed (up to a marker)."""
    import asyncio

    from tornado.websocket import websocket_connect

    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/terminals?token=sctoken",
                                     method="POST", data=b"")
    with urllib.request.urlopen(request, timeout=30) as r:
        name = json.loads(r.read())["name"]

    async def run() -> str:
        conn = await websocket_connect(f"ws://127.0.0.1:{port}/terminals/websocket/{name}?token=sctoken")
        conn.write_message(json.dumps(["stdin", f"{command}; echo sc-done\r"]))
        output = ""
        while "sc-done\r\n" not in output.replace("echo sc-done", ""):
            message = await asyncio.wait_for(conn.read_message(), 30)
            if message is None:
                break
            kind, *data = json.loads(message)
            if kind == "stdout":
                output += data[0]
        conn.close()
        return output

    return asyncio.run(run())


def stop(proc: subprocess.Popen, root: Path) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    subprocess.run(["rm", "-rf", str(root)], check=False)


def test_server_start_runs_jupyterlab_without_calling_node(node_spy: tuple[Path, Path]) -> None:
    folder, record = node_spy
    path = f"{folder}:{BIN}:/usr/bin:/bin"
    # the anchor: the environment's own jupyter-lab calls node at start (so the spy can see it)
    proc, port, root = start_lab([str(BIN / "jupyter-lab")], path)
    try:
        assert record.exists() and "config" in record.read_text()
    finally:
        stop(proc, root)
    record.unlink()
    proc, port, root = start_lab([str(BIN / "python"), "-P", "-m", "qhub_hub.server_start",
                                  str(BIN / "jupyter-lab")], path)
    try:
        assert not record.exists(), record.read_text()
        status, page = get(port, "lab")
        assert status == 200
        config = json.loads(re.search(r'id="jupyter-config-data"[^>]*>(.*?)</script>', page, re.S).group(1))
        assert config["buildCheck"] is False and config["buildAvailable"] is False
        assert config["extensionManager"]["can_install"] is False
        assert get(port, "lsp/status")[0] == 404  # jupyter_lsp is off
        assert get(port, "api/status")[0] == 200
        # the server's PATH is whole again: a terminal starts with node's folder on it (the
        # environment it was started with; its login shell then sets its own PATH)
        shown = terminal_output(port, r"tr '\0' '\n' < /proc/$$/environ | grep ^PATH=")
        assert f"PATH={path}" in shown.replace("\r", "").splitlines(), shown
    finally:
        stop(proc, root)
