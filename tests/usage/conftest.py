from __future__ import annotations

from pathlib import Path

import pytest

# dask_gateway's Gateway.__del__ runs close() after its loop stopped (see tests/gateway/conftest.py):
# a message at garbage collection, in whichever test runs then, not a failure.
_GATEWAY_DEL = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <function Gateway.__del__:pytest.PytestUnraisableExceptionWarning")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(_GATEWAY_DEL)
