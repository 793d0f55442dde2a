"""`python -m qhub_hub.devcluster up|down|status|images` (scripts/cluster calls this)."""

from __future__ import annotations

import argparse
import sys

from .paths import CACHE, KUBECONFIG, STATE
from .steps import ClusterError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/cluster",
        description="A one-machine Kubernetes 1.20 (built from Debian's source package) with the "
        f"qhub-hub images loaded. Caches in {CACHE}, cluster state in {STATE}.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("up", help="build what is missing, start the cluster afresh, write the kubeconfig")
    p.add_argument("--no-images", action="store_true",
                   help="only the pause image (quicker; pods can use images loaded earlier)")
    sub.add_parser("down", help="stop everything; leave no process, mount, bridge, netns or iptables rule")
    sub.add_parser("status", help="which components run, and what a cluster left on the machine")
    sub.add_parser("images", help="build (or find in the cache) every image, without a cluster")
    sub.add_parser("reload", help="rebuild what changed and load it into the running cluster "
                   "(pods started afterwards get it)")
    args = parser.parse_args(argv)

    from . import cluster, images, kubebuild
    try:
        if args.command == "up":
            timings = cluster.up(build_images=not args.no_images)
            print(f"export KUBECONFIG={KUBECONFIG}")
            print("timings (s): " + " ".join(f"{k}={v}" for k, v in timings.phases.items()))
        elif args.command == "down":
            cluster.down()
            left = {k: v for k, v in cluster.leftovers().items() if v}
            if left:
                print(f"cluster: down, but these are left: {left}", file=sys.stderr)
                return 1
            print("cluster: down; nothing left behind")
        elif args.command == "status":
            for name, running in cluster.status().items():
                print(f"{name:26} {'running' if running else 'stopped'}")
            for kind, items in cluster.leftovers().items():
                print(f"{kind:26} {len(items)}" + (f": {items[:5]}" if items else ""))
            if KUBECONFIG.exists():
                print(f"export KUBECONFIG={KUBECONFIG}")
        elif args.command == "reload":
            if not all(cluster.status().values()):
                raise ClusterError("no running cluster: `scripts/cluster up` first")
            kbin = kubebuild.build(CACHE / "logs" / "kubernetes-build.log")
            cluster.load_images(images.build_all(kbin, CACHE / "logs" / "images.log"))
            print("cluster: images loaded")
        elif args.command == "images":
            cluster.preflight()
            kbin = kubebuild.build(CACHE / "logs" / "kubernetes-build.log")
            for name, image in images.build_all(kbin, CACHE / "logs" / "images.log").items():
                print(f"{name:12} {image.ref}")
    except ClusterError as e:
        print(f"cluster: error: {e}", file=sys.stderr)
        if args.command == "up":
            print("cluster: stopped there; `scripts/cluster down` removes what was started",
                  file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("cluster: interrupted; `scripts/cluster down` removes what was started", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
