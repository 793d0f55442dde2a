from __future__ import annotations

import json
from pathlib import Path

import pytest

EXTENSION = Path(__file__).resolve().parents[2] / "extensions" / "jupyterlab-qhub-videochat"


@pytest.fixture(scope="session")
def installed_extension() -> Path:
    """The installed package is the one in this checkout (else: say how to install it)."""
    try:
        import qhub_videochat
    except ImportError:
        pytest.fail(
            "qhub_videochat is not installed in this environment: run `bash scripts/setup.sh "
            "--test` (scripts/setup.d/videochat.sh installs extensions/jupyterlab-qhub-videochat)"
        )
    installed = Path(qhub_videochat.__file__).parent
    stale = [
        p.name for p in (EXTENSION / "qhub_videochat").glob("*.py")
        if not (installed / p.name).exists() or (installed / p.name).read_bytes() != p.read_bytes()
    ]
    stamp = "labextension-stamp.json"
    if json.loads((installed / stamp).read_text()) != json.loads(
        (EXTENSION / "qhub_videochat" / stamp).read_text()
    ):
        stale.append("labextension")
    if stale:
        pytest.fail(
            f"the installed qhub_videochat ({installed}) is older than the checkout ({stale}): "
            "run `bash scripts/setup.sh --test`"
        )
    return installed
