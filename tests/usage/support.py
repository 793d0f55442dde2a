"""Shared test data for the usage tests: the example team with costs and limits, a fake clock."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from tests.hub.conftest import example_data

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC).timestamp()  # a Monday morning in November 2026


class FakeClock:
    def __init__(self, now: float = T0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def usage_data(limits: dict[str, Any] | None = None) -> dict[str, Any]:
    """The example config with a cost on every profile and the given `limits`."""
    data = copy.deepcopy(example_data())
    costs = {"small": 0.05, "medium": 0.10, "highmem": 0.40, "gpu": 1.50}
    for profile in data["profiles"]["jupyterlab"]:
        profile["cost_per_hour"] = costs[profile["slug"]]
    data["profiles"]["dask_worker"]["Small Worker"]["cost_per_hour"] = 0.04
    data["profiles"]["dask_worker"]["Large Worker"]["cost_per_hour"] = 0.12
    data["usage"] = {"currency": "EUR"}
    if limits is not None:
        data["limits"] = limits
    return data
