"""Benchmark: the one-machine Kubernetes of qhub_hub.devcluster (`scripts/cluster`).

    sudo /opt/qhub-hub/bin/python benchmarks/cluster.py [--rounds 5] [--rebuild-images]

1. Builds: Kubernetes 1.20.2 from Debian's source package and each image, cold (the figures the
   builds recorded when they really ran: /var/cache/qhub-hub) and warm (the cache lookup of this run).
   `--rebuild-images` removes the images first, so this run measures their cold builds itself.
2. Cluster start, from nothing to node Ready with the default ServiceAccount: cold (containerd's
   image store emptied, so every image is imported again; the builds stay cached) and warm.
3. A user pod Running: the real `QHubKubeSpawner` (carol, the `small` profile: plan ids, the init
   container, home and group folders from a hostPath claim, nss_wrapper files) against plain
   `KubeSpawner` (anchor: same image, same resources, same cluster, same run), alternating;
   time from `start()` to its return (pod Running, its address known).

Leaves no cluster running (it is brought down at the end, as by `scripts/cluster down`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml  # noqa: E402
from kubespawner import KubeSpawner  # noqa: E402

from qhub_hub.devcluster import cluster, images, kubebuild  # noqa: E402
from qhub_hub.devcluster.paths import CACHE, KUBECONFIG  # noqa: E402
from qhub_hub.spawner import QHubKubeSpawner  # noqa: E402
from tests.cluster.spawning import (  # noqa: E402 - the repository root is added just above
    namespace_with_storage,
    spawner_config,
    use_kubeconfig,
)
from tests.conftest import EXAMPLE_CONFIG  # noqa: E402
from tests.support.fake_hub import FakeHub as Hub  # noqa: E402
from tests.support.fake_hub import FakeHubUser as HubUser  # noqa: E402

NS = "kc-bench"


def apply(manifest: dict) -> None:
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest).encode())


async def time_spawn(make) -> float:
    spawner = make()
    spawner.api_token = "kc-bench-token"
    started = time.monotonic()
    await asyncio.wait_for(spawner.start(), 300)
    seconds = time.monotonic() - started
    await spawner.stop(now=True)  # waits until the pod is gone: the next round starts clean
    return seconds


async def spawn_rounds(rounds: int) -> tuple[list[float], list[float]]:
    def ours():
        spawner = QHubKubeSpawner(config=spawner_config(NS), user=HubUser("carol"), hub=Hub())
        spawner.user_options = {"profile": "small"}
        return spawner

    def plain():
        config = spawner_config(NS)
        # the `small` profile's resources, so the scheduler sees the same requests
        config.KubeSpawner.cpu_guarantee, config.KubeSpawner.cpu_limit = 0.5, 1.0
        config.KubeSpawner.mem_guarantee, config.KubeSpawner.mem_limit = "1G", "2G"
        return KubeSpawner(config=config, user=HubUser("kcplain"), hub=Hub())

    await time_spawn(ours)  # warm-up: the reflectors, the page cache of the image
    await time_spawn(plain)
    qhub, anchor = [], []
    for _ in range(rounds):
        qhub.append(await time_spawn(ours))
        anchor.append(await time_spawn(plain))
    return qhub, anchor


def timed_up() -> tuple[float, dict[str, float]]:
    started = time.monotonic()
    timings = cluster.up()
    return time.monotonic() - started, timings.phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rebuild-images", action="store_true",
                        help="remove the built images first: this run measures their cold builds")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("benchmarks/cluster.py: run as root (it starts a real cluster)")
    cluster.preflight()

    cluster.down()
    kbin = kubebuild.build(CACHE / "logs" / "kubernetes-build.log")
    # build what changed (or, with --rebuild-images, everything with no cached layer); then the
    # warm figure: the same call again, which finds every image
    images.build_all(kbin, CACHE / "logs" / "images.log", no_cache=args.rebuild_images)
    started = time.monotonic()
    images.build_all(kbin, CACHE / "logs" / "images.log")
    images_warm = time.monotonic() - started
    k8s_build = float((kbin.parent / "build-seconds").read_text())
    built = images.recorded_build_times()

    try:
        # cold start: containerd's store emptied (the builds stay cached), then warm
        shutil.rmtree(cluster.CONTAINERD_ROOT, ignore_errors=True)
        cold, cold_phases = timed_up()
        cluster.down()
        warm, warm_phases = timed_up()
        with tempfile.TemporaryDirectory() as tmp:
            config_path = Path(tmp) / "qhub-config.yaml"
            shutil.copy(EXAMPLE_CONFIG, config_path)
            os.environ["QHUB_CONFIG"] = str(config_path)
            use_kubeconfig(KUBECONFIG)
            namespace_with_storage(apply, NS)
            qhub, anchor = asyncio.run(spawn_rounds(args.rounds))
    finally:
        cluster.down()

    print(f"Kubernetes {kubebuild.UPSTREAM_VERSION} from Debian's source package, built once: {k8s_build:.0f} s "
          f"({(kbin.parent / 'VERSION').read_text().strip()})")
    print("image builds (recorded when each ran; buildah from the mmdebstrap base):")
    print("  image        cold (every step)           last (cached layers reused)")
    for name in ("debian-base", *images.NAMES):
        row = built.get(name, {})
        cells = [f"{row[k]['seconds']:7.1f} s ({row[k]['at']})" if k in row else f"{'-':>32}"
                 for k in ("cold", "last")]
        print(f"  {name:12} {cells[0]}  {cells[1]}")
    print(f"  all images warm (cache lookup, this run): {images_warm:.1f} s")
    print(f"cluster up, cold (images imported into containerd): {cold:.1f} s  phases {cold_phases}")
    print(f"cluster up, warm (everything cached):               {warm:.1f} s  phases {warm_phases}")
    q, a = statistics.median(qhub), statistics.median(anchor)
    print(f"user pod Running, {args.rounds} rounds after one warm-up each:")
    print(f"  QHubKubeSpawner (carol, small):   min {min(qhub):.2f} s  median {q:.2f} s")
    print(f"  anchor plain KubeSpawner:         min {min(anchor):.2f} s  median {a:.2f} s")
    print(f"  ratio qhub/anchor (medians): {q / a:.2f}")
    cold_builds = {n: built[n]["cold"]["seconds"] for n in images.NAMES if "cold" in built.get(n, {})}
    print(f"result: kubernetes_build_s={k8s_build:.0f} images_cold_s={sum(cold_builds.values()):.0f} "
          f"image_lab_cold_s={cold_builds.get('lab', 0):.0f} images_warm_s={images_warm:.1f} "
          f"cluster_cold_s={cold:.1f} cluster_warm_s={warm:.1f} qhub_pod_running_s={q:.2f} "
          f"kubespawner_pod_running_s={a:.2f} ratio={q / a:.2f}")


if __name__ == "__main__":
    main()
