"""The culler services whose stops the ledger records as "culled" are the ones the platforms run."""

from __future__ import annotations

import re
from pathlib import Path

from qhub_hub.local.hub_config import CULLER_SERVICE
from qhub_hub.usage.stop_reason import CULLER_SERVICES, is_culler

CHART_HUB_CONFIG = Path(__file__).parents[2] / "helm" / "qhub" / "files" / "hub" / "qhub.py"


class Requester:
    def __init__(self, kind: str, name: str):
        self.kind, self.name = kind, name


def test_the_embedded_and_the_chart_culler_are_known():
    chart = re.search(r'^CULLER = "([^"]+)"', CHART_HUB_CONFIG.read_text(), re.MULTILINE)
    assert chart is not None
    assert {CULLER_SERVICE, chart.group(1)} <= CULLER_SERVICES


def test_only_a_culler_service_culls():
    assert is_culler(Requester("service", "idle-culler"))
    assert not is_culler(Requester("user", "idle-culler"))  # a user who took the name
    assert not is_culler(Requester("service", "test-admin"))
    assert not is_culler(None)
