"""Whose access a config review compares, and their plan in one config.

- every user of `security.users` in either config, by hub username;
- every identity-provider group of `security.identity_provider_groups`, and every GitHub
  `allowed_organizations` entry, in either config: a person the identity provider reports in that
  group only, and not listed in `security.users`;
- when either config sets `security.allow_unlisted_users`: any other identity-provider user (no
  mapped group).

People outside `security.users` get their uid from the hub at login, so their plan is made with a
placeholder uid; `access.py` shows their ids as ``dynamic``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import GitHubAuth, QHubConfig
from ..policy import UserPlan, plan_for
from .access import Access, access_of

USER = "user"
IDP_GROUP = "identity-provider group"
UNLISTED = "unlisted"
_PLACEHOLDER_UID = 0  # never a config uid (those are >= 1000), so never taken for a real one


@dataclass(frozen=True, order=True)
class Subject:
    kind: str  # USER, IDP_GROUP or UNLISTED
    name: str  # hub username, identity-provider group name, or "" for UNLISTED

    @property
    def label(self) -> str:
        if self.kind == USER:
            return self.name
        if self.kind == IDP_GROUP:
            return f"members of {self.name!r} (identity provider)"
        return "any other identity-provider user"

    @property
    def placeholder_username(self) -> str:
        # not a valid clean Unix name, so it is never a config user's name
        return self.name if self.kind == USER else f"<{self.kind}:{self.name}>"

    @property
    def idp_groups(self) -> tuple[str, ...]:
        return (self.name,) if self.kind == IDP_GROUP else ()


def subjects(*configs: QHubConfig) -> list[Subject]:
    """Users (sorted), then identity-provider groups (sorted), then unlisted users, over `configs`."""
    users = sorted({name for c in configs for name in c.security.users})
    idp = sorted({name for c in configs for name in (*c.security.identity_provider_groups,
                                                      *_admitting_organizations(c))})
    out = [Subject(USER, name) for name in users] + [Subject(IDP_GROUP, name) for name in idp]
    if any(c.security.allow_unlisted_users for c in configs):
        out.append(Subject(UNLISTED, ""))
    return out


def _admitting_organizations(config: QHubConfig) -> list[str]:
    auth = config.security.authentication
    return list(auth.config.allowed_organizations) if isinstance(auth, GitHubAuth) else []


def plan_of(config: QHubConfig, subject: Subject) -> UserPlan:
    username = subject.placeholder_username
    if username in config.security.users:
        return plan_for(config, username)
    return plan_for(config, username, subject.idp_groups, dynamic_uid=_PLACEHOLDER_UID)


def access_in(config: QHubConfig, subject: Subject) -> Access:
    return access_of(plan_of(config, subject), config.security.dynamic_ids.primary_group is None,
                     anonymous=subject.kind != USER)


class Planner:
    """`access_in` for many people of one config."""

    def __init__(self, config: QHubConfig):
        self.config = config
        self._private_primary = config.security.dynamic_ids.primary_group is None
        self._slug_of = {id(p): p.profile_slug for p in config.profiles.jupyterlab}  # the config holds them

    def access(self, subject: Subject) -> Access:
        return access_of(plan_of(self.config, subject), self._private_primary,
                         anonymous=subject.kind != USER, slug_of=self._slug_of)
