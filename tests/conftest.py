from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_CONFIG = REPO / "examples" / "qhub-config.yaml"


@pytest.fixture
def example_config_path() -> Path:
    return EXAMPLE_CONFIG


@pytest.fixture
def example_config():
    from qhub_hub.config import load_config

    return load_config(EXAMPLE_CONFIG)
