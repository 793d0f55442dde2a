"""`qhub-hub local up|down|status|restart` (added to the main parser by qhub_hub/cli.py)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from .settings import PlatformSettings, default_state_dir


def _state_dir_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--state-dir", default=None,
                   help="where the platform keeps its database, secrets, logs and pid files "
                        "(default: $QHUB_STATE_DIR, else /var/lib/qhub-hub as root, "
                        "~/.local/state/qhub-hub otherwise)")


def add_local_commands(subparsers: argparse._SubParsersAction) -> None:
    local = subparsers.add_parser("local", help="run the whole platform on this machine (embedded mode)")
    sub = local.add_subparsers(dest="local_command", required=True)

    p = sub.add_parser("up", help="start (or complete) the platform; returns once it answers")
    p.add_argument("--config", required=True, help="the qhub config file")
    _state_dir_arg(p)
    p.add_argument("--ip", default=None, help="address the platform (and its SSH server) listen on "
                   "(default 127.0.0.1; 0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, default=None, help="the platform's HTTP port (default 8000)")
    p.add_argument("--ssh-port", type=int, default=None, help="SSH/SFTP port (default: ssh.port of the config)")
    p.add_argument("--hub-port", type=int, default=None,
                   help="the hub's internal port on 127.0.0.1 (default: a free port, kept across restarts)")
    p.add_argument("--shared-dir", default=None,
                   help="folder used as the shared folder on this machine (default: storage.shared_root "
                        "of the config, e.g. /shared)")
    p.add_argument("--adopt-shared", action="store_true",
                   help="use an existing, non-empty shared folder that qhub-hub did not create")
    p.add_argument("--foreground", action="store_true",
                   help="stay in the foreground; Ctrl-C / SIGTERM runs `local down`")
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("down", help="stop user servers and the platform")
    _state_dir_arg(p)
    p.add_argument("--keep-servers", action="store_true", help="leave user servers running")
    p.set_defaults(func=cmd_down)

    p = sub.add_parser("restart", help="restart the hub; user servers and the proxy keep running")
    _state_dir_arg(p)
    p.set_defaults(func=cmd_restart)

    p = sub.add_parser("status", help="what runs; exit 0 when every component is up, 3 otherwise")
    _state_dir_arg(p)
    p.set_defaults(func=cmd_status)


def _fail(e: Exception) -> int:
    print(f"error: {e}", file=sys.stderr)
    return 1


def cmd_up(args: argparse.Namespace) -> int:
    from .platform import PlatformError, down, up

    state_dir = Path(args.state_dir or default_state_dir()).absolute()
    saved = PlatformSettings.load(state_dir)
    base = saved or PlatformSettings(config_path="", state_dir=str(state_dir))
    settings = base.with_changes(
        config_path=str(Path(args.config).absolute()), state_dir=str(state_dir), ip=args.ip,
        port=args.port, ssh_port=args.ssh_port, hub_port=args.hub_port, shared_dir=args.shared_dir,
        adopt_shared=True if args.adopt_shared else None)
    if settings.shared_dir:
        settings = settings.with_changes(shared_dir=str(Path(settings.shared_dir).absolute()))
    try:
        up(settings)
    except PlatformError as e:
        return _fail(e)
    if not args.foreground:
        return 0
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print("running in the foreground; Ctrl-C stops the platform", file=sys.stderr)
    stop.wait()
    try:
        down(state_dir)
    except PlatformError as e:
        return _fail(e)
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    from .platform import PlatformError, down

    try:
        down(args.state_dir or default_state_dir(), keep_servers=args.keep_servers)
    except PlatformError as e:
        return _fail(e)
    return 0


def cmd_restart(args: argparse.Namespace) -> int:
    from .platform import PlatformError, restart

    try:
        restart(args.state_dir or default_state_dir())
    except PlatformError as e:
        return _fail(e)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from .platform import PlatformError, status

    try:
        return 0 if status(args.state_dir or default_state_dir()) else 3
    except PlatformError as e:
        return _fail(e)


if os.name != "posix":  # pragma: no cover - the embedded mode needs Unix accounts
    raise ImportError("qhub-hub local needs a POSIX system")
