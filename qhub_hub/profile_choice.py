"""Which jupyterlab profile a spawn gets, decided on the server from the plan.

Shared by the Kubernetes and the local spawner, so both refuse the same things the same way:
403 when the user may not use the profile (or any profile), 400 when the slug does not exist.
Whatever the form or the REST API sent is only a wish; the plan decides.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .config import JupyterLabProfile, QHubConfig
from .policy import UserPlan, profile_by_slug


class ProfileRefused(Exception):
    """A spawn request the plan does not allow. `status` is the HTTP status to answer."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def choose_profile(config: QHubConfig, plan: UserPlan, user_options: Mapping[str, Any] | None) -> JupyterLabProfile:
    """The profile to start for `user_options` (key ``profile``: a slug), or `ProfileRefused`."""
    allowed = plan.jupyterlab_profiles
    if not allowed:
        raise ProfileRefused(403, f"No server profile is available to {plan.username!r}. "
                                  "Ask an admin to add you to a group that may use one.")
    slug = (user_options or {}).get("profile")
    if slug in (None, ""):
        return next((p for p in allowed if p.default), allowed[0])
    if not isinstance(slug, str):
        raise ProfileRefused(400, f"The profile must be given by its slug (a string), not {slug!r}.")
    if profile_by_slug(config, slug) is None:
        known = ", ".join(p.profile_slug for p in allowed)
        raise ProfileRefused(400, f"There is no profile {slug!r}. Profiles you may use: {known}.")
    chosen = next((p for p in allowed if p.profile_slug == slug), None)
    if chosen is None:
        known = ", ".join(p.profile_slug for p in allowed)
        raise ProfileRefused(403, f"{plan.username!r} may not use the profile {slug!r}. "
                                  f"Profiles you may use: {known}.")
    return chosen
