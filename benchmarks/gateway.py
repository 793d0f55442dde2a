"""Benchmark: time until a 2-worker Dask Gateway cluster is ready, against a plain LocalCluster.

    sudo /opt/qhub-hub/bin/python benchmarks/gateway.py [--rounds 3]

Runs a real JupyterHub and the embedded-mode dask-gateway-server (QHubLocalBackend), with one
temporary Unix user (gwbench, uid 42801; removed at the end) and one "built" environment. Each
round measures, from the client's call to both workers being connected:

- gateway: `Gateway().new_cluster()` (options checked against the plan, scheduler started as the
  user through the gateway's proxy, TLS), `cluster.scale(2)`, `client.wait_for_workers(2)`, in the
  **built environment** (``global/dask``, the default choice when one exists): the scheduler and
  nannies are forked from the user's pre-imported starter in that environment
  (`QHubLocalBackend.user_starters`), which the first cluster there starts;
- server environment: the same in the **server environment** (``environment="server"``, what
  `GatewayCluster()` from a default kernel uses when no environment is built): the scheduler and
  nannies are forked from the gateway's pre-imported starter (`QHubLocalBackend.preimported_starter`);
- anchor:  `distributed.LocalCluster(n_workers=2, threads_per_worker=1)` and `wait_for_workers(2)`
  in this process, same machine, same run.

Prints min and median of each, the ratio gateway/anchor (medians, and of the minimums, which
other load on the machine disturbs less), and the gateway's two phases: `new_cluster()` returning
(options, scheduler started and registered) and the two workers after `scale(2)`; and the first
cluster of the run in each environment (the warm-up), which also starts that environment's
starter. The last line is ``result: gateway_ratio=... gateway_s=... anchor_s=... min_ratio=...
cluster_s=... workers_s=... server_env_ratio=... server_env_s=... server_env_min_ratio=...
server_env_cluster_s=... first_cluster_s=... first_server_env_s=... first_anchor_s=...``
(``gateway_*``/``min_ratio``/``cluster_s``/``workers_s``/``first_cluster_s``: built environment;
``server_env_*``/``first_server_env_s``: server environment; all against the same anchor;
``first_anchor_s``: the run's first LocalCluster, which imports nothing new either).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.gateway.harness import (  # noqa: E402 - the repository root is added just above
    GatewayStack,
    UnixAccounts,
    base_folder,
    make_global_dask_environment,
    remove_tree,
)


def qhub_config(base: Path) -> dict:
    return {
        "security": {"groups": {"gwbench": {"gid": 42800}},
                     "users": {"gwbench": {"uid": 42801, "primary_group": "gwbench"}}},
        "profiles": {"dask_worker": {"Bench Worker": {
            "worker_cores": 1, "worker_cores_limit": 1, "worker_memory": "1G",
            "worker_memory_limit": "1G", "max_workers": 2}}},
        "storage": {"home_root": str(base / "home")},
        "conda_store": {"environments_root": str(base / "conda")},
    }


def time_gateway(stack: GatewayStack, token: str, environment: str = "") -> tuple[float, float]:
    """(seconds until 2 workers are connected, of which until `new_cluster()` returned)."""
    from dask_gateway import Gateway
    from dask_gateway.auth import JupyterHubAuth

    assert stack.gateway is not None
    with Gateway(stack.gateway.address, proxy_address=stack.gateway.proxy_address,
                 auth=JupyterHubAuth(api_token=token)) as gateway:
        start = time.perf_counter()
        cluster = gateway.new_cluster(**({"environment": environment} if environment else {}))
        running = time.perf_counter() - start
        cluster.scale(2)
        client = cluster.get_client()
        client.wait_for_workers(2, timeout=120)
        elapsed = time.perf_counter() - start
        client.close()
        cluster.shutdown()
    return elapsed, running


def time_local_cluster() -> float:
    from distributed import Client, LocalCluster

    start = time.perf_counter()
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0")
    client = Client(cluster)
    client.wait_for_workers(2, timeout=120)
    elapsed = time.perf_counter() - start
    client.close()
    cluster.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    base = base_folder("qhub-gw-bench-")
    accounts = UnixAccounts({"gwbench": 42800}, {"gwbench": (42801, "gwbench", [])}, homes=base / "home")
    stack = GatewayStack(base, qhub_config(base))
    try:
        accounts.create()
        make_global_dask_environment(base)
        stack.start()
        stack.add_hub_users(["gwbench"], {})
        token = stack.token("gwbench")
        first_built, _ = time_gateway(stack, token)  # warm-up: the user's starter, first proxy routes
        first_server, _ = time_gateway(stack, token, "server")  # and the gateway's Dask starter
        first_anchor = time_local_cluster()
        gateway_times, running_times, local_times, server_times, server_running = [], [], [], [], []
        for _ in range(args.rounds):
            elapsed, running = time_gateway(stack, token)
            gateway_times.append(elapsed)
            running_times.append(running)
            elapsed, running = time_gateway(stack, token, "server")
            server_times.append(elapsed)
            server_running.append(running)
            local_times.append(time_local_cluster())
    finally:
        stack.stop()
        accounts.remove()
        remove_tree(base)

    g, a = statistics.median(gateway_times), statistics.median(local_times)
    min_ratio = min(gateway_times) / min(local_times)
    c = statistics.median(running_times)
    w = statistics.median(t - r for t, r in zip(gateway_times, running_times, strict=True))
    print(f"2-worker cluster ready, {args.rounds} rounds after one warm-up each:")
    print(f"  dask-gateway, built environment:   min {min(gateway_times):.2f} s  median {g:.2f} s")
    print(f"    new_cluster() returned: median {c:.2f} s; then 2 workers: median {w:.2f} s")
    sg, sc = statistics.median(server_times), statistics.median(server_running)
    server_min_ratio = min(server_times) / min(local_times)
    print(f"  dask-gateway, server environment:  min {min(server_times):.2f} s  median {sg:.2f} s")
    print(f"    new_cluster() returned: median {sc:.2f} s; then 2 workers: median "
          f"{statistics.median(t - r for t, r in zip(server_times, server_running, strict=True)):.2f} s")
    print(f"  anchor LocalCluster(n_workers=2):  min {min(local_times):.2f} s  median {a:.2f} s")
    print(f"  ratio gateway/anchor: medians {g / a:.2f}, minimums {min_ratio:.2f} (built environment)")
    print(f"  ratio gateway/anchor: medians {sg / a:.2f}, minimums {server_min_ratio:.2f} (server "
          "environment)")
    print(f"  first cluster of the run (starts the environment's starter): built environment "
          f"{first_built:.2f} s, server environment {first_server:.2f} s; first anchor {first_anchor:.2f} s")
    print(f"result: gateway_ratio={g / a:.2f} gateway_s={g:.2f} anchor_s={a:.2f} "
          f"min_ratio={min_ratio:.2f} cluster_s={c:.2f} workers_s={w:.2f} "
          f"server_env_ratio={sg / a:.2f} server_env_s={sg:.2f} "
          f"server_env_min_ratio={server_min_ratio:.2f} server_env_cluster_s={sc:.2f} "
          f"first_cluster_s={first_built:.2f} first_server_env_s={first_server:.2f} "
          f"first_anchor_s={first_anchor:.2f}")


if __name__ == "__main__":
    main()
