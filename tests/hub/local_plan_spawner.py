"""Test-only spawner: JupyterHub's LocalProcessSpawner with the shared `PlanSpawnerMixin`.

Kubernetes is not available here, so the real-hub tests exercise the profile form and the
server-side profile checks with this spawner. It runs the server as the hub's own user (root in
CI, hence --allow-root); the embedded-mode spawner (qhub_hub.local) is the one that switches to
the user's uid.
"""

from __future__ import annotations

import os

from jupyterhub.spawner import LocalProcessSpawner

from qhub_hub.spawner_options import PlanSpawnerMixin


class PlanLocalSpawner(PlanSpawnerMixin, LocalProcessSpawner):
    def make_preexec_fn(self, name: str):
        return None  # stay the hub's user

    def user_env(self, env: dict[str, str]) -> dict[str, str]:
        home = os.path.join(os.getcwd(), "homes", self.user.name)
        os.makedirs(home, exist_ok=True)
        env.update(HOME=home, USER=self.user.name)
        return env
