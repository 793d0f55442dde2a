from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_platform_state_dir(monkeypatch):
    """`qhub-hub audit` without --state-dir reads the machine's default platform, if one runs:
    these tests name theirs explicitly, so the default points at nothing (for this test only)."""
    monkeypatch.setenv("QHUB_STATE_DIR", "/nonexistent/qhub-review-tests")
