"""Which generation wrote a deployment file: QHub 0.3 (users, groups and uids in the file) or
Nebari / QHub >= 0.4 (users and groups in Keycloak, profiles with `access:`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

Kind = Literal["qhub03", "nebari"]


class NotImportable(ValueError):
    """The file cannot be imported; the message says why and what to do."""


def _profiles(data: Mapping[str, Any]) -> list[Any]:
    profiles = data.get("profiles")
    jupyterlab = profiles.get("jupyterlab") if isinstance(profiles, Mapping) else None
    return jupyterlab if isinstance(jupyterlab, list) else []


def detect(data: Any, source: str) -> Kind:
    if not isinstance(data, Mapping):
        raise NotImportable(f"{source} is not a QHub or Nebari deployment file: it is not a mapping of "
                           "sections (project_name, provider, security, ...)")
    security = data.get("security") if isinstance(data.get("security"), Mapping) else {}
    version = str(data.get("qhub_version", ""))
    if "nebari_version" in data:
        return "nebari"
    if any(isinstance(p, Mapping) and "access" in p for p in _profiles(data)):
        return "nebari"
    if "keycloak" in security or "shared_users_group" in security:
        return "nebari"
    if version and not version.startswith(("0.3", "v0.3", "0.2", "v0.2")):
        return "nebari"  # QHub 0.4 moved users and groups to Keycloak, as Nebari kept them
    users = security.get("users")
    if isinstance(users, Mapping) and users or version:
        return "qhub03"
    if "provider" in data or "domain" in data:
        return "nebari"  # no users in the file: they live in Keycloak
    raise NotImportable(
        f"{source}: cannot tell whether this is a QHub 0.3 or a Nebari file (no nebari_version, "
        "qhub_version, provider, security.users or profile `access:`); if it is already a qhub-hub "
        f"config, check it with `qhub-hub validate {source}` instead")
