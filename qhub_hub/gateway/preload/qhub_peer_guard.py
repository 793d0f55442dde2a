"""Dask preload: the HTTP servers of a scheduler or worker answer only their owner and root.

A Dask scheduler serves its dashboard (and ``/info``, ``/json``, ``/metrics``, ...) and a worker its
status pages over plain HTTP on a loopback port, without authentication; any local user could read
another user's cluster there. The gateway starts every scheduler and worker with
``--preload <this file>``. On import (in the process's ``__init__``, before any HTTP server
listens) it makes every Tornado HTTP server of the process look up, for each new loopback
connection, which uid owns the connecting socket (the kernel's socket table, ``/proc/net/tcp``
and ``tcp6``, as identd does) and close the connection unless that uid is the process's own or
root (the gateway's proxy, which checks the hub login itself). A connection whose owner cannot
be found (it went away, or came from another host) is closed too.

Loaded by file path in the cluster's environment, which need not have qhub-hub installed: this
file imports only the standard library and Tornado (a dependency of distributed).
"""

from __future__ import annotations

import ipaddress
import os
import socket
from typing import Any

from tornado.httpserver import HTTPServer

ALLOWED_UIDS = frozenset({0, os.getuid()})
_TABLES = ("/proc/net/tcp", "/proc/net/tcp6")


def _proc_address(host: str, port: int, family: int) -> str:
    """An address as /proc/net/tcp{,6} prints it (IP in host byte order, 32-bit words)."""
    ip = ipaddress.ip_address(host.split("%")[0])
    if family == socket.AF_INET6 and ip.version == 4:
        ip = ipaddress.IPv6Address(f"::ffff:{ip}")
    packed = ip.packed
    words = [packed[i:i + 4] for i in range(0, len(packed), 4)]
    text = "".join(int.from_bytes(w, "little").to_bytes(4, "big").hex().upper() for w in words)
    return f"{text}:{port:04X}"


def peer_uid(local: tuple, peer: tuple, family: int) -> int | None:
    """The uid owning the socket connected from `peer` to `local`, or None if none is found."""
    want_local = _proc_address(peer[0], peer[1], family)
    want_remote = _proc_address(local[0], local[1], family)
    for table in _TABLES:
        try:
            with open(table) as f:
                next(f, None)
                for line in f:
                    fields = line.split()
                    if len(fields) > 7 and fields[1] == want_local and fields[2] == want_remote:
                        return int(fields[7])
        except OSError:
            continue
    # the connection may be seen from the other address family's table (IPv4-mapped)
    if family == socket.AF_INET6 and peer[0].startswith("::ffff:"):
        return peer_uid((local[0][7:], local[1]), (peer[0][7:], peer[1]), socket.AF_INET)
    return None


def allowed(stream: Any, address: Any) -> bool:
    sock = getattr(stream, "socket", None)
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return sock is not None and sock.family == socket.AF_UNIX
    try:
        uid = peer_uid(sock.getsockname(), address, sock.family)
    except (OSError, ValueError):
        return False
    return uid in ALLOWED_UIDS


# distributed imports a preload file and then reloads it: patch once, keep the original on the class
if not hasattr(HTTPServer, "_qhub_unguarded_handle_stream"):
    HTTPServer._qhub_unguarded_handle_stream = HTTPServer.handle_stream


def _guarded_handle_stream(self: HTTPServer, stream: Any, address: Any) -> Any:
    if not allowed(stream, address):
        stream.close()
        return None
    return HTTPServer._qhub_unguarded_handle_stream(self, stream, address)


HTTPServer.handle_stream = _guarded_handle_stream
