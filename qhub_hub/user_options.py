"""What a spawn request may carry in ``user_options``: the profile's slug, and nothing else.

JupyterHub stores whatever the spawn form or a REST ``POST /users/<name>/server`` body sends as the
server's ``user_options`` (and reuses them as the next start's defaults). The spawners refuse a
request with keys other than `KNOWN_KEYS` (400, naming them) or larger than `MAX_BYTES` (413),
and keep only the known keys in the hub's database, so nothing else is stored for later.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

KNOWN_KEYS = ("profile",)
MAX_BYTES = 16 * 1024  # a slug is short; this leaves room, and stops megabytes in the database


def encoded_size(user_options: Any) -> int:
    try:
        return len(json.dumps(user_options, default=str).encode())
    except (TypeError, ValueError):
        return MAX_BYTES + 1


def user_options_problem(user_options: Mapping[str, Any] | None) -> tuple[int, str] | None:
    """(HTTP status, message) when `user_options` may not be used as they are; None when fine."""
    if not user_options:
        return None
    size = encoded_size(user_options)
    if size > MAX_BYTES:
        return 413, (f"The server options are {size} bytes; at most {MAX_BYTES} are accepted. Send "
                     "only the profile, e.g. {\"profile\": \"<slug>\"}.")
    unknown = sorted(str(key) for key in user_options if key not in KNOWN_KEYS)
    if unknown:
        return 400, (f"Unknown server option(s): {', '.join(repr(k) for k in unknown)}. This platform "
                     f"takes only {', '.join(repr(k) for k in KNOWN_KEYS)}; remove the others.")
    return None


def known_options(user_options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The known keys of `user_options` (nothing when even those are too large)."""
    known = {key: value for key, value in (user_options or {}).items() if key in KNOWN_KEYS}
    return known if encoded_size(known) <= MAX_BYTES else {}
