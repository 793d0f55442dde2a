"""Benchmark of the access review: `diff` of two 10k-user configs, and `audit` of 100 real users.

    python benchmarks/review.py [--users 10000 --groups 1000 --profiles 100 --audit-users 100] [--no-audit]

diff: the policy benchmark's generator makes the old config; three new ones:
- users: 5% of users moved to other groups (only they are planned);
- narrowed: the same plus a renumbered group and a gated profile's memory changed (the group's
  members are planned in both configs, the people the profile admits once);
- everyone: the same plus a profile open to all restricted to 20 groups (a change that reaches
  every person: everyone is planned in both configs, the worst case).
Figures: the whole command in-process (load both files, plan, compare, render text), the
comparison alone, and `qhub-hub diff` as a subprocess; anchor: loading the two files alone (the
command's floor), measured in the same run. Target: the whole diff <= 2 s.

audit (as root only): 100 accounts rvb* (uids 47200-47299, gids 47150-47159) with homes and group
folders made by `audit --fix`, then `audit` timed; anchor: the bare reads any audit needs
(passwd, group, a stat of every folder, /proc/*/status). Everything made is removed afterwards.
"""

from __future__ import annotations

import argparse
import copy
import grp
import importlib.util
import os
import pwd
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from qhub_hub.config import load_config
from qhub_hub.review.diff import diff_configs
from qhub_hub.review.render_text import render_text

HERE = Path(__file__).resolve().parent


def policy_generator():
    spec = importlib.util.spec_from_file_location("policy_benchmark", HERE / "policy.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_config


CASES = (("users", "5% of users change groups"),
         ("narrowed", "same + a gid and a gated profile's memory"),
         ("everyone", "same + an open profile restricted (everyone planned)"))


def edited(data: dict, case: str, seed: int = 3) -> dict:
    """5% of users move to other groups; "narrowed": also a group is renumbered and a gated
    profile's memory changes; "everyone": also a profile open to all is restricted to 20 groups."""
    rng = random.Random(seed)
    new = copy.deepcopy(data)
    groups = sorted(new["security"]["groups"])
    users = new["security"]["users"]
    for name in rng.sample(sorted(users), len(users) // 20):
        users[name]["secondary_groups"] = rng.sample(groups, 5)
    if case in ("narrowed", "everyone"):
        new["security"]["groups"][groups[0]]["gid"] += 50_000
        profiles = new["profiles"]["jupyterlab"]
        gated = next(p for p in profiles if p.get("groups"))
        gated["kubespawner_override"]["mem_limit"] = "64G"
        if case == "everyone":
            open_one = next(p for p in profiles if not p.get("groups") and not p.get("users")
                            and not p.get("default"))
            open_one["groups"] = rng.sample(groups, 20)
    return new


def best_of(n: int, fn) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(n):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def bench_diff(args: argparse.Namespace, tmp: Path) -> dict[str, float]:
    old = policy_generator()(args.users, args.groups, args.profiles)
    old_path = tmp / "old.yaml"
    old_path.write_text(yaml.safe_dump(old, default_flow_style=None))
    qhub = Path(sys.executable).parent / "qhub-hub"
    figures: dict[str, float] = {}
    print(f"diff: {args.users} users, {args.groups} groups, {args.profiles} profiles")
    print(f"{'measure':52} {'seconds':>8} {'anchor':>8}")
    for key, what in CASES:
        new_path = tmp / f"new-{key}.yaml"
        new_path.write_text(yaml.safe_dump(edited(old, key), default_flow_style=None))
        anchor, _ = best_of(3, lambda p=new_path: (load_config(old_path), load_config(p)))

        def whole(p=new_path):
            return render_text(diff_configs(load_config(old_path), load_config(p), str(old_path), str(p)))

        seconds, text = best_of(3, whole)
        compare, diff = float("inf"), None
        for _ in range(3):  # configs loaded afresh each time: nothing planned before
            a, b = load_config(old_path), load_config(new_path)
            start = time.perf_counter()
            diff = diff_configs(a, b)
            compare = min(compare, time.perf_counter() - start)
        start = time.perf_counter()
        proc = subprocess.run([str(qhub), "diff", str(old_path), str(new_path)], capture_output=True, text=True)
        command = time.perf_counter() - start
        assert proc.returncode == 0 and proc.stdout == text, proc.stderr[-2000:]
        print(f"[{what}: {len(diff.subjects)} people changed, {len(diff.warnings)} warning(s), "
              f"{len(text) // 1024} KiB of text]")
        print(f"{'  diff, whole (load 2 files, plan, compare, render)':52} {seconds:8.3f} {anchor:8.3f}  "
              "anchor: load+validate the 2 files alone; target <= 2 s")
        print(f"{'  diff, comparison alone (configs loaded)':52} {compare:8.3f}")
        print(f"{'  qhub-hub diff as a command (one run)':52} {command:8.3f}  (Python start included)")
        figures.update({f"diff_10k_{key}_s": seconds, f"diff_10k_{key}_anchor_s": anchor,
                        f"diff_10k_{key}_command_s": command})
    return figures


BENCH_UIDS, BENCH_GIDS = range(47200, 47300), range(47150, 47160)


def remove_bench_accounts() -> None:
    for entry in pwd.getpwall():
        if entry.pw_name.startswith("rvb") and entry.pw_uid in BENCH_UIDS:
            subprocess.run(["userdel", entry.pw_name], capture_output=True)
    for entry in grp.getgrall():
        if entry.gr_name.startswith("rvb") and entry.gr_gid in BENCH_GIDS:
            subprocess.run(["groupdel", entry.gr_name], capture_output=True)


def bench_audit(args: argparse.Namespace) -> dict[str, float]:
    from qhub_hub.policy import plan_for
    from qhub_hub.review.expected_state import expected_folders
    from qhub_hub.review.machine_audit import audit_machine, read_process_ids

    if os.geteuid() != 0:
        print("audit: skipped (needs root: it makes real accounts)")
        return {}
    if not 0 < args.audit_users <= len(BENCH_UIDS):
        raise SystemExit(f"--audit-users must be 1..{len(BENCH_UIDS)} (the benchmark's uid range)")
    remove_bench_accounts()
    root = Path(tempfile.mkdtemp(prefix="qhub-rvb-", dir="/tmp"))
    os.chmod(root, 0o755)
    try:
        groups = {f"rvbg{i}": gid for i, gid in enumerate(BENCH_GIDS)}
        names = sorted(groups)
        rng = random.Random(4)
        config = load_config({
            "security": {
                "groups": {n: {"gid": g} for n, g in groups.items()},
                "users": {f"rvbu{i:03d}": {"uid": BENCH_UIDS[i], "primary_group": names[0],
                                           "secondary_groups": picked[:2], "readonly_groups": picked[2:]}
                          for i in range(args.audit_users) for picked in [rng.sample(names[1:], 3)]},
                "dynamic_ids": {"uid_start": 47950, "uid_count": 40},
            },
            "storage": {"home_root": str(root / "home"), "shared_root": str(root / "shared")},
        })
        start = time.perf_counter()
        made = audit_machine(config, fix=True)
        provision = time.perf_counter() - start
        assert not made.remaining, made.remaining[:3]
        audit, report = best_of(3, lambda: audit_machine(config))
        assert not report.findings, report.findings[:3]
        folders = list(expected_folders(config, [plan_for(config, n) for n in config.security.users]))

        def bare_reads():
            pwd.getpwall()
            grp.getgrall()
            for path in folders:
                os.lstat(path)
            list(read_process_ids())

        anchor, _ = best_of(3, bare_reads)
        print(f"audit: {args.audit_users} real accounts, {len(folders)} folders, "
              f"{report.checked.get('processes', 0)} processes of planned users")
        print(f"{'audit of the machine (clean)':44} {audit:9.3f} {anchor:9.3f}  "
              "anchor: passwd+group+lstat of every folder+/proc scan")
        print(f"{'audit --fix from nothing (makes everything)':44} {provision:9.3f}")
        return {"audit_100_s": audit, "audit_anchor_s": anchor, "audit_fix_from_nothing_s": provision}
    finally:
        remove_bench_accounts()
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--groups", type=int, default=1_000)
    parser.add_argument("--profiles", type=int, default=100)
    parser.add_argument("--audit-users", type=int, default=100)
    parser.add_argument("--no-audit", action="store_true", help="the diff figures only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        figures = bench_diff(args, Path(tmp))
    if not args.no_audit:
        figures.update(bench_audit(args))
    print("result: " + " ".join(f"{k}={v:.3f}" for k, v in figures.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
