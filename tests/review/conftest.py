from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def _no_platform_state_dir():
    """`qhub-hub audit` without --state-dir reads the machine's default platform, if one runs:
    these tests name theirs explicitly, so point the default at nothing."""
    saved = os.environ.get("QHUB_STATE_DIR")
    os.environ["QHUB_STATE_DIR"] = "/nonexistent/qhub-review-tests"
    yield
    if saved is None:
        os.environ.pop("QHUB_STATE_DIR", None)
    else:
        os.environ["QHUB_STATE_DIR"] = saved
