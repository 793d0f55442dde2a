"""Cross-reference checks that a schema cannot express: names that must exist, ids that must be
unique, defaults every user can see. Each problem names its path and says what to do."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from .config_errors import ConfigError, Problem, format_path, problems_from_pydantic
from .config_model import (
    DASK_PACKAGES,
    EnvironmentSpec,
    IdentityProviderGroup,
    PasswordAuth,
    QHubConfig,
    read_yaml,
)
from .naming import unix_name


def check_references(config: QHubConfig, base_dir: Path | None) -> list[Problem]:
    problems: list[Problem] = []
    problems += _check_users_and_groups(config)
    problems += _check_profiles(config)
    problems += _check_environments(config, base_dir)
    problems += [_unknown_group(["limits", "groups", name], name)
                 for name in config.limits.groups if name not in config.security.groups]
    return problems


def _unknown_group(path: list, name: str) -> Problem:
    return Problem(format_path(path), f"unknown group {name!r}: add it to security.groups or fix the name")


def _check_group_refs(config: QHubConfig, path: list, names: Iterable[str]) -> list[Problem]:
    return [_unknown_group([*path, i], n) for i, n in enumerate(names) if n not in config.security.groups]


def _check_users_and_groups(config: QHubConfig) -> list[Problem]:
    sec = config.security
    problems: list[Problem] = []
    uid_owner: dict[int, str] = {}
    unix_owner: dict[str, str] = {}
    dyn = sec.dynamic_ids
    dyn_range = range(dyn.uid_start, dyn.uid_start + dyn.uid_count)
    for name, user in sec.users.items():
        base = ["security", "users", name]
        if user.primary_group not in sec.groups:
            problems.append(_unknown_group([*base, "primary_group"], user.primary_group))
        problems += _check_group_refs(config, [*base, "secondary_groups"], user.secondary_groups)
        problems += _check_group_refs(config, [*base, "readonly_groups"], user.readonly_groups)
        for i, group in enumerate(user.readonly_groups):
            if group in user.secondary_groups or group == user.primary_group:
                problems.append(Problem(format_path([*base, "readonly_groups", i]),
                                        f"{name!r} is already a read-write member of {group!r}; "
                                        "list the group in one place only"))
        if user.uid in uid_owner:
            problems.append(Problem(format_path([*base, "uid"]),
                                    f"uid {user.uid} is also the uid of {uid_owner[user.uid]!r}; "
                                    "give every user their own uid"))
        uid_owner.setdefault(user.uid, name)
        if user.uid in dyn_range:
            problems.append(Problem(format_path([*base, "uid"]),
                                    f"uid {user.uid} lies in security.dynamic_ids ({dyn.uid_start}.."
                                    f"{dyn_range.stop - 1}), kept for identity-provider users; pick "
                                    "another uid or move the range"))
        safe = unix_name(name)
        if safe in unix_owner:
            problems.append(Problem(format_path(base), f"maps to the Unix name {safe!r} like "
                                    f"{unix_owner[safe]!r}; rename one of them"))
        unix_owner.setdefault(safe, name)
    gid_owner: dict[int, str] = {}
    for name, group in sec.groups.items():
        if group.gid in gid_owner:
            problems.append(Problem(format_path(["security", "groups", name, "gid"]),
                                    f"gid {group.gid} is also the gid of {gid_owner[group.gid]!r}; "
                                    "give every group its own gid"))
        gid_owner.setdefault(group.gid, name)
        if dyn.primary_group is None and group.gid in dyn_range:
            problems.append(Problem(format_path(["security", "groups", name, "gid"]),
                                    f"gid {group.gid} lies in security.dynamic_ids, whose users get "
                                    "private groups with gid = uid; pick another gid"))
    if sec.admin_groups is not None:
        problems += _check_group_refs(config, ["security", "admin_groups"], sec.admin_groups)
    for idp_name, target in sec.identity_provider_groups.items():
        group = target.group if isinstance(target, IdentityProviderGroup) else target
        if group not in sec.groups:
            problems.append(_unknown_group(["security", "identity_provider_groups", idp_name], group))
    if dyn.primary_group is not None and dyn.primary_group not in sec.groups:
        problems.append(_unknown_group(["security", "dynamic_ids", "primary_group"], dyn.primary_group))
    return problems


def _check_access_lists(config: QHubConfig, path: list, users, groups) -> list[Problem]:
    problems: list[Problem] = []
    if groups is not None:
        problems += _check_group_refs(config, [*path, "groups"], groups)
    # With passwords every user must be in the config; with an identity provider a profile may
    # name users who only exist there.
    if users is not None and isinstance(config.security.authentication, PasswordAuth):
        problems += [Problem(format_path([*path, "users", i]),
                             f"unknown user {u!r}: add them to security.users or fix the name")
                     for i, u in enumerate(users) if u not in config.security.users]
    if users is not None and groups is not None and not users and not groups:
        problems.append(Problem(format_path(path), "allows nobody (users and groups are both empty); "
                                "remove both to allow everyone, or name who may use it"))
    return problems


def _check_profiles(config: QHubConfig) -> list[Problem]:
    problems: list[Problem] = []
    seen_slugs: dict[str, int] = {}
    defaults: list[int] = []
    for i, profile in enumerate(config.profiles.jupyterlab):
        path = ["profiles", "jupyterlab", i]
        problems += _check_access_lists(config, path, profile.users, profile.groups)
        slug = profile.profile_slug
        if slug in seen_slugs:
            problems.append(Problem(format_path([*path, "slug" if profile.slug else "display_name"]),
                                    f"slug {slug!r} is also the slug of profiles.jupyterlab"
                                    f"[{seen_slugs[slug]}]; give each profile a distinct slug"))
        seen_slugs.setdefault(slug, i)
        if profile.default:
            defaults.append(i)
            if profile.restricted:
                problems.append(Problem(format_path([*path, "default"]),
                                        "the default profile must be open to every user, but this one "
                                        "is limited by users/groups; drop `default` or the limits"))
    for i in defaults[1:]:
        problems.append(Problem(format_path(["profiles", "jupyterlab", i, "default"]),
                                f"only one profile can be the default (profiles.jupyterlab[{defaults[0]}] "
                                "already is); remove `default: true` here"))
    for name, worker in config.profiles.dask_worker.items():
        problems += _check_access_lists(config, ["profiles", "dask_worker", name],
                                        worker.users, worker.groups)
    return problems


def _check_environments(config: QHubConfig, base_dir: Path | None) -> list[Problem]:
    problems: list[Problem] = []
    declared: dict[str, tuple[str, EnvironmentSpec]] = {}
    for key, spec in config.environments.items():
        declared_path = format_path(["environments", key])
        if spec.name in declared:
            problems.append(Problem(declared_path, f"environment name {spec.name!r} is also declared at "
                                    f"{declared[spec.name][0]}; names must be unique"))
        declared.setdefault(spec.name, (declared_path, spec))
    folder = config.conda_store.environments_folder
    if folder:
        folder_path = Path(folder) if Path(folder).is_absolute() or base_dir is None else base_dir / folder
        specs, folder_problems = read_environment_folder(folder_path)
        problems += folder_problems
        for file_label, spec in specs:
            if spec.name in declared:
                problems.append(Problem(file_label, f"environment name {spec.name!r} is also declared at "
                                        f"{declared[spec.name][0]}; names must be unique"))
            declared.setdefault(spec.name, (file_label, spec))
    config._declared_environments = {name: spec for name, (_, spec) in declared.items()}
    for i, env_name in enumerate(config.dask_gateway.worker_environments):
        path = format_path(["dask_gateway", "worker_environments", i])
        if env_name not in declared:
            problems.append(Problem(path, f"unknown environment {env_name!r}: declare it under "
                                    "environments (or in conda_store.environments_folder)"))
            continue
        spec_path, spec = declared[env_name]
        missing = [p for p in DASK_PACKAGES if p not in spec.package_names()]
        if missing:
            problems.append(Problem(f"{spec_path}.dependencies",
                                    f"environment {env_name!r} runs Dask workers but lacks "
                                    f"{', '.join(missing)}; add them to its dependencies"))
    return problems


def read_environment_folder(folder: Path) -> tuple[list[tuple[str, EnvironmentSpec]], list[Problem]]:
    label = format_path(["conda_store", "environments_folder"])
    if not folder.is_dir():
        return [], [Problem(label, f"{folder} is not a folder; create it or fix the path")]
    specs: list[tuple[str, EnvironmentSpec]] = []
    problems: list[Problem] = []
    for file in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
        file_label = f"{label}[{file.name!r}]"
        try:
            data = read_yaml(file)
        except (OSError, ValueError) as e:
            problems.append(Problem(file_label, f"not valid YAML: {e}"))
            continue
        try:
            spec = EnvironmentSpec.model_validate(data)
        except Exception as e:  # noqa: BLE001 - every failure becomes a reported problem
            problems += [Problem(f"{file_label}{'.' + p.path if p.path else ''}", p.message)
                         for p in problems_from_pydantic(e, EnvironmentSpec, data)]
            continue
        specs.append((file_label, spec))
    return specs, problems


__all__ = ["check_references", "read_environment_folder", "ConfigError"]
