"""Benchmark of the policy core: a config of 10k users, 1k groups and 100 profiles.

    python benchmarks/policy.py [--users 10000 --groups 1000 --profiles 100]

Prints load+validate time (from YAML text, and from an already-parsed mapping) next to its anchor,
the bare YAML parse of the same text, and plan_for() latency p50/p99 next to its anchor, a plain
dict lookup + copy of the user's entry. Targets: load+validate <= 1 s, plan p50 <= 1 ms.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

from qhub_hub.config import load_config
from qhub_hub.policy import plan_for


def make_config(users: int, groups: int, profiles: int, seed: int = 1) -> dict:
    rng = random.Random(seed)
    group_names = [f"g{i:04d}" for i in range(groups)]
    return {
        "security": {
            "groups": {name: {"gid": 10000 + i} for i, name in enumerate(group_names)},
            "users": {
                f"user{i:05d}": {
                    "uid": 20000 + i,
                    "primary_group": rng.choice(group_names),
                    "secondary_groups": rng.sample(group_names, 5),
                    "readonly_groups": [],
                }
                for i in range(users)
            },
        },
        "profiles": {
            "jupyterlab": [
                {"display_name": f"Profile {i}", "slug": f"p{i}",
                 **({} if i % 4 == 0 else {"groups": rng.sample(group_names, 20)}),
                 "kubespawner_override": {"cpu_limit": 1 + i % 8, "mem_limit": f"{1 + i % 32}G"}}
                for i in range(profiles)
            ],
            "dask_worker": {
                f"w{i}": {"worker_cores": 1, "worker_cores_limit": 2, "worker_memory": "2G",
                          "worker_memory_limit": "4G", **({} if i % 2 else {"groups": rng.sample(group_names, 10)})}
                for i in range(10)
            },
        },
    }


def best_of(n: int, fn) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--groups", type=int, default=1_000)
    parser.add_argument("--profiles", type=int, default=100)
    parser.add_argument("--plans", type=int, default=20_000, help="plan_for calls to time")
    args = parser.parse_args()

    data = make_config(args.users, args.groups, args.profiles)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "qhub-config.yaml"
        path.write_text(yaml.safe_dump(data, default_flow_style=None))  # lists of groups inline, as admins write them
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        parse = best_of(3, lambda: yaml.load(path.read_text(), Loader=loader))  # noqa: S506 - safe loader
        from_file = best_of(3, lambda: load_config(path))
        size = path.stat().st_size
    from_mapping = best_of(3, lambda: load_config(data))
    config = load_config(data)

    rng = random.Random(2)
    names = [f"user{rng.randrange(args.users):05d}" for _ in range(args.plans)]
    plan_for(config, names[0])  # the index is built once per config, at first use
    plan_times, anchor_times = [], []
    users = data["security"]["users"]
    for name in names:
        start = time.perf_counter_ns()
        plan_for(config, name)
        plan_times.append(time.perf_counter_ns() - start)
        start = time.perf_counter_ns()
        dict(users[name])
        anchor_times.append(time.perf_counter_ns() - start)

    def pct(values: list[int], q: float) -> float:
        return statistics.quantiles(values, n=100)[int(q) - 1] / 1e6 if q < 100 else max(values) / 1e6

    print(f"config: {args.users} users, {args.groups} groups, {args.profiles} jupyterlab profiles, "
          f"10 dask worker profiles ({size // 1024} KiB YAML)")
    print(f"{'measure':38} {'qhub-hub':>12} {'anchor':>12}  anchor / target")
    print(f"{'load+validate from YAML file (s)':38} {from_file:12.3f} {parse:12.3f}  "
          "PyYAML C parse alone; target <= 1 s")
    print(f"{'load+validate from mapping (s)':38} {from_mapping:12.3f} {'':>12}  target <= 1 s")
    print(f"{'plan_for p50 (ms)':38} {pct(plan_times, 50):12.4f} {pct(anchor_times, 50):12.4f}  "
          "dict copy; target <= 1 ms")
    print(f"{'plan_for p99 (ms)':38} {pct(plan_times, 99):12.4f} {pct(anchor_times, 99):12.4f}")
    ok = from_file <= 1 and pct(plan_times, 50) <= 1
    print("targets:", "met" if ok else "MISSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
