"""What a spawner reads from JupyterHub's `User` wrapper and from its hub, without a hub: shared
by the pod-manifest tests, the conformance table and the cluster spawner tests."""

from __future__ import annotations

import copy


class FakeHubUser:
    """A hub user: name, groups, and an auth_state the spawner reads and may save."""

    def __init__(self, name: str, auth_state: dict | None = None, groups: list[str] = ()):
        self.name, self.id, self.url = name, 7, f"/user/{name}/"
        self.groups = [type("Group", (), {"name": g})() for g in groups]
        self._auth_state = auth_state
        self.db = None

    async def get_auth_state(self) -> dict | None:
        return copy.deepcopy(self._auth_state)

    async def save_auth_state(self, state: dict) -> None:
        self._auth_state = state


class FakeHub:
    public_host = ""
    url = "http://hub:8081/hub/"
    base_url = "/hub/"
    api_url = "http://hub:8081/hub/api"
