from __future__ import annotations

import os

import pytest

from .support import remove_lt_accounts

IS_ROOT = os.geteuid() == 0


@pytest.fixture(scope="session", autouse=True)
def _lt_accounts_removed():
    """lt* accounts of an interrupted earlier run go first; this run's go at the end."""
    if IS_ROOT:
        remove_lt_accounts()
    yield
    if IS_ROOT:
        remove_lt_accounts()
