"""The hub's plan endpoint, for option tests that run without a hub.

`ConfigPlans` answers as `qhub_hub.plan_api` does (the hub's `plan_for` over the config, sent
through the wire format), so the options code under test reads exactly what a hub would send. The
whole path with a real hub is tested in tests/conformance and tests/gateway/test_gateway.py.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from qhub_hub.config import load_config
from qhub_hub.hub_plans import PlanUnavailable
from qhub_hub.plan_wire import HubPlan, plan_from_wire, plan_to_wire
from qhub_hub.policy import plan_for


class ConfigPlans:
    def __init__(self, config_path: Path, *, idp_groups: Mapping[str, Sequence[str]] | None = None,
                 uids: Mapping[str, int] | None = None, down: bool = False):
        self.config_path = config_path
        self.idp_groups = dict(idp_groups or {})
        self.uids = dict(uids or {})
        self.down = down
        self.asked: list[str] = []

    async def fetch(self, username: str) -> HubPlan:
        self.asked.append(username)
        if self.down:
            raise PlanUnavailable("the hub at http://127.0.0.1:9 cannot be reached (ConnectError); "
                                  "try again once the hub is running")
        config = load_config(self.config_path)
        plan = plan_for(config, username, self.idp_groups.get(username, ()),
                        dynamic_uid=self.uids.get(username))
        return plan_from_wire(json.loads(json.dumps(plan_to_wire(config, plan))))
