"""Benchmark of what the hub plugins add per spawn and per hub start.

    python benchmarks/hub_plans.py [--users 10000] [--rounds 200]

Prints, each next to its anchor measured in the same run:

- plan of a hub user (`plan_for_hub_user`: decrypt auth_state, plan from the current config,
  dynamic uid) vs the bare `plan_for` (anchor);
- a whole pod manifest (`QHubKubeSpawner.get_pod_manifest`, after the profile check) vs
  kubespawner's own `KubeSpawner.get_pod_manifest` for the same user without our pieces (anchor);
- the dynamic-uid registry's one-time scan at hub start over N users' encrypted auth_state
  (a real JupyterHub sqlite database) vs decrypting the same N auth_states alone (anchor).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml  # noqa: E402

from tests.conftest import EXAMPLE_CONFIG  # noqa: E402


def _ms(samples: list[float]) -> str:
    samples = sorted(samples)
    return f"p50 {statistics.median(samples) * 1e3:8.3f} ms   p99 {samples[int(len(samples) * .99) - 1] * 1e3:8.3f} ms"


async def main(users: int, rounds: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="qhub-bench-"))
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["security"]["identity_provider_groups"] = {"ml-team": "ml"}
    (work / "qhub.yaml").write_text(yaml.safe_dump(data))
    (work / "kubeconfig").write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "d",
        "clusters": [{"name": "d", "cluster": {"server": "https://127.0.0.1:9"}}],
        "users": [{"name": "d", "user": {"token": "x"}}],
        "contexts": [{"name": "d", "context": {"cluster": "d", "user": "d"}}]}))
    os.environ["QHUB_CONFIG"] = str(work / "qhub.yaml")
    os.environ["JUPYTERHUB_CRYPT_KEY"] = secrets.token_hex(32)
    import kubernetes_asyncio.config.kube_config as kc

    kc.KUBE_CONFIG_DEFAULT_LOCATION = str(work / "kubeconfig")
    from jupyterhub import crypto, orm
    from kubespawner import KubeSpawner

    from qhub_hub.hub_identity import get_config, plan_for_hub_user
    from qhub_hub.policy import plan_for
    from qhub_hub.spawner import QHubKubeSpawner
    from qhub_hub.uid_registry import DynamicUidRegistry
    from tests.support.fake_hub import FakeHub, FakeHubUser

    config = get_config()
    state = await crypto.encrypt({"qhub": {"idp_groups": ["ml-team"], "uid": 200_123}})

    class EncryptedUser(FakeHubUser):
        async def get_auth_state(self):
            return await crypto.decrypt(state)

    registry = DynamicUidRegistry()
    user = EncryptedUser("gina")
    ours, anchor = [], []
    for _ in range(rounds):
        t = time.perf_counter()
        await plan_for_hub_user(config, user, registry=registry)
        ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        plan_for(config, "gina", ["ml-team"])
        anchor.append(time.perf_counter() - t)
    print(f"plan of a hub user      {_ms(ours)}")
    print(f"  anchor plan_for       {_ms(anchor)}")

    spawner = QHubKubeSpawner(user=FakeHubUser("dave"), hub=FakeHub())
    plain = KubeSpawner(user=FakeHubUser("dave"), hub=FakeHub())
    spawner.api_token = plain.api_token = "TOKEN"
    ours, anchor = [], []
    for _ in range(rounds):
        t = time.perf_counter()
        await spawner.qhub_apply_user_options({"profile": "gpu"})
        await spawner.get_pod_manifest()
        ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        await plain.get_pod_manifest()
        anchor.append(time.perf_counter() - t)
    print(f"check + pod manifest    {_ms(ours)}")
    print(f"  anchor kubespawner    {_ms(anchor)}")

    db = orm.new_session_factory(f"sqlite:///{work / 'hub.sqlite'}")()
    blobs = [await crypto.encrypt({"qhub": {"uid": 200_000 + i}, "access_token": "t" * 40})
             for i in range(users)]
    db.add_all(orm.User(name=f"user{i}", encrypted_auth_state=b) for i, b in enumerate(blobs))
    db.commit()
    t = time.perf_counter()
    fresh = DynamicUidRegistry()
    await fresh.load(db)
    scan = time.perf_counter() - t
    assert len(fresh.taken) == users
    t = time.perf_counter()
    for blob in blobs:
        await crypto.decrypt(blob)
    decrypt = time.perf_counter() - t
    print(f"uid registry scan       {scan * 1e3:8.1f} ms for {users} users (once per hub start)")
    print(f"  anchor decrypt only   {decrypt * 1e3:8.1f} ms   ratio {scan / decrypt:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(main(args.users, args.rounds))
