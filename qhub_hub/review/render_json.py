"""`qhub-hub diff --format json`: the diff model as it is (see `changes.py` for the kinds)."""

from __future__ import annotations

import json

from .changes import ConfigDiff


def render_json(diff: ConfigDiff) -> str:
    """Empty when nothing changes (as the other formats)."""
    if diff.empty:
        return ""
    return json.dumps(diff.to_dict(), indent=2) + "\n"
