"""What the kernels' peer guard costs per accepted connection (a command, not a test).

    python benchmarks/peer_guard.py [--connections N]

A small Python TCP server (accept, send 2 bytes, close) runs once with the guard preloaded
(`qhub_hub/local/peer_guard.c`: one sock_diag lookup per accepted connection) and once without,
the anchor of the same run; a client of the same uid opens N connections to each, one after the
other, and reads the answer. Prints the time per connection of both and the extra cost.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time

from qhub_hub.local.peer_guard import peer_guard_library

SERVER = r"""
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(128)
print(s.getsockname()[1], flush=True)
while True:
    c, _ = s.accept()
    c.sendall(b"ok")
    c.close()
"""


def per_connection(preload: str | None, connections: int) -> float:
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    if preload:
        env["LD_PRELOAD"] = preload
    server = subprocess.Popen([sys.executable, "-I", "-c", SERVER], stdout=subprocess.PIPE, text=True, env=env)
    try:
        port = int(server.stdout.readline())
        for _ in range(50):  # warm up
            with socket.create_connection(("127.0.0.1", port)) as c:
                c.recv(2)
        start = time.perf_counter()
        for _ in range(connections):
            with socket.create_connection(("127.0.0.1", port)) as c:
                assert c.recv(2) == b"ok"
        return (time.perf_counter() - start) / connections
    finally:
        server.kill()
        server.wait()


def main(connections: int) -> None:
    library = peer_guard_library()
    guarded, plain = [], []
    for _ in range(5):  # interleaved, best of each: the machine's other load hits both alike
        guarded.append(per_connection(library, connections))
        plain.append(per_connection(None, connections))
    guarded, plain = min(guarded), min(plain)
    print(f"connection to a guarded listener   {guarded * 1e6:8.1f} us")
    print(f"  anchor: the same, no guard       {plain * 1e6:8.1f} us   extra {(guarded - plain) * 1e6:.1f} us")
    print(f"result: guarded_us={guarded * 1e6:.1f} anchor_us={plain * 1e6:.1f} "
          f"extra_us={(guarded - plain) * 1e6:.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=5000)
    main(parser.parse_args().connections)
