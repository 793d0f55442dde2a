"""conda-store role bindings from the config, as pure functions.

conda-store authorizes with *role bindings*: ``{"<namespace>/<environment>": [role, ...]}`` where
``*`` matches any run of name characters, and the roles are conda-store's own:

- ``viewer``: read environments and namespaces;
- ``developer``: also create, update and solve environments (not delete them);
- ``admin``: everything in the namespace, including deleting and sharing it.

What a person gets when they log in to conda-store through JupyterHub:

======================  =========================================================
own namespace           ``admin`` (their ad-hoc environments; namespace created on first use)
group, read-write       ``developer``
group, read-only        ``viewer``
global namespace        ``viewer`` (it holds the config's environments; only the sync writes it)
anything else           nothing
======================  =========================================================

The hub's own token reads every namespace (to list a user's environments for Dask), administers
the global namespace (the sync) and the group namespaces (it creates them so members can use them),
and nothing else. A user server's token only reads the namespaces of its user's plan.
"""

from __future__ import annotations

from ..config import QHubConfig
from ..policy import UserPlan

VIEWER = "viewer"
DEVELOPER = "developer"
ADMIN = "admin"


def arn(namespace: str) -> str:
    """The binding that covers a namespace and every environment in it."""
    return f"{namespace}/*"


def user_role_bindings(config: QHubConfig, plan: UserPlan) -> dict[str, list[str]]:
    """What `plan`'s user may do in conda-store when acting as themselves.

    A user whose Unix name is also a group's name or the global namespace gets no rights from
    that name: namespaces are shared by users and groups, and a group's folder is never a person's.
    """
    glob = config.conda_store.global_namespace
    bindings: dict[str, list[str]] = {}
    if plan.unix_name not in config.security.groups and plan.unix_name != glob:
        bindings[arn(plan.unix_name)] = [ADMIN]
    for membership in plan.memberships:
        bindings[arn(membership.name)] = [VIEWER if membership.readonly else DEVELOPER]
    bindings[arn(glob)] = [VIEWER]
    return bindings


def reader_role_bindings(plan: UserPlan) -> dict[str, list[str]]:
    """Read-only bindings on exactly the plan's namespaces: the token a user server gets."""
    return {arn(namespace): [VIEWER] for namespace in plan.environment_namespaces}


def hub_role_bindings(config: QHubConfig) -> dict[str, list[str]]:
    """The hub's token: read all, administer the global and the group namespaces."""
    bindings = {"*/*": [VIEWER], arn(config.conda_store.global_namespace): [ADMIN]}
    for group in config.security.groups:
        bindings[arn(group)] = [ADMIN]
    return bindings
