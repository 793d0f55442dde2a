"""The one qhub-hub config: a strict, typed model of the YAML file an admin keeps in git.

`load_config(path_or_mapping)` returns a validated `QHubConfig` or raises `ConfigError`, whose
`problems` each name the path of the offending value (``profiles.jupyterlab[2].groups[0]``) and say
what to do. Nothing else escapes: YAML syntax errors, wrong types, unknown keys and broken
cross-references all become `ConfigError`.

QHub 0.3 files (``security``, ``profiles``, ``environments`` as QHub documented them) load unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .config_checks import check_references
from .config_errors import ConfigError, Problem, problems_from_pydantic
from .config_model import (  # the model, re-exported: `from qhub_hub.config import QHubConfig`
    DASK_PACKAGES,
    FIRST_UID,
    FORBIDDEN_OVERRIDES,
    GROUP_NAME,
    SLUG,
    SSH,
    Auth0Auth,
    Auth0Config,
    CondaStore,
    Cull,
    DaskGateway,
    DaskWorkerProfile,
    DynamicIds,
    EnvironmentSpec,
    GitHubAuth,
    GitHubConfig,
    Group,
    IdentityProviderGroup,
    JupyterLabProfile,
    KubespawnerOverride,
    OAuthCommon,
    OIDCAuth,
    OIDCConfig,
    PasswordAuth,
    PipDependencies,
    Profiles,
    QHubConfig,
    Security,
    Storage,
    Strict,
    Toleration,
    User,
    VideoChat,
    config_schema,
    read_yaml,
    slugify,
)

__all__ = [
    "Auth0Auth",
    "Auth0Config",
    "CondaStore",
    "Cull",
    "DASK_PACKAGES",
    "DaskGateway",
    "DaskWorkerProfile",
    "DynamicIds",
    "EnvironmentSpec",
    "FIRST_UID",
    "FORBIDDEN_OVERRIDES",
    "GROUP_NAME",
    "GitHubAuth",
    "GitHubConfig",
    "Group",
    "IdentityProviderGroup",
    "JupyterLabProfile",
    "KubespawnerOverride",
    "OAuthCommon",
    "OIDCAuth",
    "OIDCConfig",
    "PasswordAuth",
    "PipDependencies",
    "Profiles",
    "QHubConfig",
    "SLUG",
    "SSH",
    "Security",
    "Storage",
    "Strict",
    "Toleration",
    "User",
    "VideoChat",
    "config_schema",
    "read_yaml",
    "slugify",
    "load_config",
]


def load_config(source: str | os.PathLike | Mapping[str, Any], *, base_dir: Path | None = None) -> QHubConfig:
    """Parse and validate a config file (path) or an already-parsed mapping.

    Raises `ConfigError` listing every problem with its path; nothing else.
    """
    if isinstance(source, Mapping):
        data: Any = source
    else:
        path = Path(source)
        base_dir = base_dir or path.parent
        try:
            data = read_yaml(path)
        except OSError as e:
            raise ConfigError([Problem("", f"cannot read {path}: {e.strerror or e}")]) from None
        except ValueError as e:
            raise ConfigError([Problem("", f"{path} is not valid YAML: {e}")]) from None
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError([Problem("", f"the config must be a mapping of sections, got {type(data).__name__}")])
    try:
        config = QHubConfig.model_validate(data)
    except Exception as e:  # pydantic.ValidationError, or a stray error from a validator
        raise ConfigError(problems_from_pydantic(e, QHubConfig, data)) from None
    problems = check_references(config, base_dir)
    if problems:
        raise ConfigError(problems)
    return config
