"""Nebari (and QHub >= 0.4) `nebari-config.yaml` -> qhub-hub config, keeping what Nebari meant.

What Nebari did, and how it is kept:

- people and their groups live in Keycloak, which logs them in (its own `authentication.type`
  is how *Keycloak* logs people in): qhub-hub logs in through that Keycloak realm with
  `type: oidc`; Keycloak's groups arrive in the `groups` claim and are mapped explicitly through
  `security.identity_provider_groups`;
- JupyterHub let in members of `analyst`, `developer` and `admin`; `admin` members were hub admins;
- the default groups (`admin`, `developer`, `analyst`, `superadmin`, and `users` with
  `shared_users_group`) had no Unix ids: every server ran as uid 1000, gid 100. Each group now
  has a gid, each user a uid of their own (security.dynamic_ids), so files written under Nebari
  need `qhub-hub migrate-ownership`;
- `shared_users_group` (a `users` group everyone was in, for a folder everyone shares) becomes
  qhub-hub's /shared, which every user gets;
- profile `access`: `all` is open, `yaml` is its `users`/`groups`, `keycloak` was decided by a
  `jupyterlab_profiles` attribute on Keycloak groups: those groups are named with
  `--keycloak-profile 'Display Name=group,group'` and gate the profile.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import helm_values
from .detect import NotImportable
from .dropped import drop_known_sections
from .environments import environments
from .images import is_stock_image
from .profiles import dask_worker_profiles, jupyterlab_profile, with_access
from .report import Report

DEFAULT_GROUPS = ("admin", "developer", "analyst", "superadmin")
# What Nebari (2024.x) served when a file had no `profiles`: its schema's defaults.
DEFAULT_PROFILES = {
    "jupyterlab": [
        {"display_name": "Small Instance", "description": "Stable environment with 2 cpu / 8 GB ram",
         "default": True, "kubespawner_override": {"cpu_limit": 2, "cpu_guarantee": 1.5, "mem_limit": "8G",
                                                   "mem_guarantee": "5G"}},
        {"display_name": "Medium Instance", "description": "Stable environment with 4 cpu / 16 GB ram",
         "kubespawner_override": {"cpu_limit": 4, "cpu_guarantee": 3, "mem_limit": "16G",
                                  "mem_guarantee": "10G"}},
    ],
    "dask_worker": {
        "Small Worker": {"worker_cores_limit": 2, "worker_cores": 1.5, "worker_memory_limit": "8G",
                         "worker_memory": "5G"},
        "Medium Worker": {"worker_cores_limit": 4, "worker_cores": 3, "worker_memory_limit": "16G",
                          "worker_memory": "10G"},
    },
}
NEBARI_IDLE_MINUTES = 15  # Nebari's default server_shutdown_no_activity_timeout and kernel culling
LOGIN_GROUPS = ("admin", "developer", "analyst")  # Nebari's KeyCloakOAuthenticator.allowed_groups
NEBARI_UID = 1000


@dataclass(frozen=True)
class NebariOptions:
    keycloak_url: str | None = None  # https://<domain>/auth when unset
    realm: str = "nebari"
    client_id: str = "jupyterhub"
    keycloak_profiles: Mapping[str, Sequence[str]] = field(default_factory=dict)
    keycloak_groups: Sequence[str] = ()  # groups made in Keycloak, kept as config groups (folders)
    gid_start: int = 2000


class _Groups:
    """Config groups in a fixed order with gids from gid_start, and their Keycloak mapping."""

    def __init__(self, gid_start: int):
        self.gid_start = gid_start
        self.names: list[str] = []

    def add(self, name: str) -> str:
        if name not in self.names:
            self.names.append(name)
        return name

    def config(self) -> tuple[dict[str, Any], dict[str, Any]]:
        groups = {name: {"gid": self.gid_start + i} for i, name in enumerate(self.names)}
        return groups, {name: name for name in self.names}


def _security(report: Report, security: Mapping[str, Any], domain: str | None,
              options: NebariOptions) -> tuple[dict[str, Any], bool]:
    """The oidc login through Nebari's Keycloak; returns it and shared_users_group."""
    path = ("security",)
    base = options.keycloak_url or (f"https://{domain}/auth" if domain else None)
    if base is None:
        base = "https://KEYCLOAK.EXAMPLE.ORG/auth"
        report.needs_decision(path, "no domain and no --keycloak-url: the Keycloak URLs in "
                              "security.authentication.config are placeholders; fix them")
    else:
        report.mapped(path, "security (login through the same Keycloak realm)")
    realm = f"{base.rstrip('/')}/realms/{options.realm}/protocol/openid-connect"
    auth_config: dict[str, Any] = {
        "client_id": options.client_id,
        "authorize_url": f"{realm}/auth",
        "token_url": f"{realm}/token",
        "userdata_url": f"{realm}/userinfo",
        "username_claim": "preferred_username",
        "groups_claim": "groups",
    }
    if domain:
        auth_config["oauth_callback_url"] = f"https://{domain}/hub/oauth_callback"
    report.note(f"Users and groups stay in Keycloak: keep Nebari's Keycloak running (or import its realm "
                f"into one of your own). qhub-hub logs in as its client {options.client_id!r} "
                f"(Nebari's JupyterHub client; same callback URL): set that client's secret as "
                f"$OAUTH_CLIENT_SECRET or security.authentication.config.client_secret.")
    shared_users_group = True
    for key, value in security.items():
        key_path = ("security", key)
        if key == "authentication":
            kind = value.get("type") if isinstance(value, Mapping) else value
            report.dropped(key_path, f"how Keycloak itself logs people in ({kind}); it stays in Keycloak, "
                           "qhub-hub logs in through Keycloak (security.authentication type oidc)")
        elif key == "shared_users_group":
            shared_users_group = bool(value)
            if shared_users_group:
                report.mapped(key_path, "/shared, the folder every user gets (no `users` group needed)")
            else:
                report.needs_decision(key_path, "Nebari had no folder shared by everyone; qhub-hub always "
                                      "mounts /shared (mode 1777): tell users, or make it read-only "
                                      "(storage.shared_mode '0755')")
        elif key == "keycloak":
            report.dropped(key_path, "Keycloak's own deployment (admin password, realm name, themes, "
                           "chart overrides): it stays with your Keycloak")
        else:
            report.needs_decision(key_path, "unknown to Nebari; not carried over")
    return {"type": "oidc", "config": auth_config}, shared_users_group


def _access(report: Report, path: tuple, profile: Mapping[str, Any], groups: _Groups,
            options: NebariOptions) -> dict[str, Any] | None:
    access = str(profile.get("access", "all"))
    name = str(profile.get("display_name", ""))
    if "access" in profile and access in ("all", "yaml"):
        report.mapped((*path, "access"), f"access: {access}")
    if access == "all":
        for key in ("users", "groups"):
            if key in profile:
                report.dropped((*path, key), "Nebari ignored it: access is all")
        return {}
    if access == "yaml":
        users = [str(u) for u in (profile.get("users") or [])]
        listed = [str(g) for g in (profile.get("groups") or [])]
        for group in listed:
            groups.add(group)
        out: dict[str, Any] = {}
        if users:
            out["users"] = users
        if listed:
            out["groups"] = listed
        if "users" in profile:
            report.mapped((*path, "users"), f"users {users} (Keycloak usernames)")
        if "groups" in profile:
            report.mapped((*path, "groups"), f"groups {listed} (Keycloak groups, mapped by name)")
        return out or None
    if access == "keycloak":
        chosen = [str(g) for g in options.keycloak_profiles.get(name, ())]
        for key in ("users", "groups"):
            if key in profile:
                report.dropped((*path, key), "Nebari ignored it: access is keycloak")
        if chosen:
            for group in chosen:
                groups.add(group)
            report.mapped((*path, "access"), f"access: keycloak -> groups {chosen} (--keycloak-profile)")
            return {"groups": chosen}
        groups.add("admin")
        report.needs_decision((*path, "access"), f"access: keycloak: Nebari offered {name!r} to Keycloak "
                              "groups (or users) whose `jupyterlab_profiles` attribute names it; the "
                              "import cannot see Keycloak, so only `admin` gets it now. Name the groups: "
                              f"--keycloak-profile '{name}=group,group'")
        return {"groups": ["admin"]}
    report.needs_decision((*path, "access"), f"unknown access {access!r}: the profile is offered to "
                          "`admin` only")
    groups.add("admin")
    return {"groups": ["admin"]}


def _profiles(report: Report, data: Any, groups: _Groups, options: NebariOptions) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if not isinstance(data, Mapping):
        report.needs_decision(("profiles",), "not a mapping; no profiles carried over")
        return out
    report.mapped(("profiles",), "profiles")
    jupyterlab = []
    for i, profile in enumerate(data.get("jupyterlab") or []):
        path = ("profiles", "jupyterlab", i)
        if not isinstance(profile, Mapping):
            report.needs_decision(path, "not a mapping; profile not carried over")
            continue
        access = _access(report, path, profile, groups, options)
        if access is None:
            report.needs_decision(path, "access: yaml with no users and no groups: Nebari offered this "
                                  "profile to nobody; not carried over")
            continue
        converted = jupyterlab_profile(report, path, profile)
        if converted.get("default") and access:
            del converted["default"]
            report.needs_decision((*path, "default"), "a default profile must be open to everyone in "
                                  "qhub-hub; `default` dropped (users get their first allowed profile)")
        known = ("access", "display_name", "description", "default", "users", "groups",
                 "kubespawner_override", "profile_options")
        for key in profile:
            if key not in known:
                report.needs_decision((*path, key), "unknown key; not carried over")
        report.mapped(path, f"profiles.jupyterlab[{len(jupyterlab)}]")
        jupyterlab.append(with_access(converted, access))
    if "jupyterlab" in data:
        report.mapped(("profiles", "jupyterlab"), "profiles.jupyterlab, in the same order")
        out["jupyterlab"] = jupyterlab
    workers = data.get("dask_worker")
    if isinstance(workers, Mapping):
        out["dask_worker"] = dask_worker_profiles(report, workers, "Nebari")
    for key in data:
        if key not in ("jupyterlab", "dask_worker"):
            report.needs_decision(("profiles", key), "unknown kind of profile; not carried over")
    return out


def _conda_store(report: Report, config: dict[str, Any], conda_store: Any) -> None:
    if not isinstance(conda_store, Mapping):
        report.needs_decision(("conda_store",), "not a mapping; not carried over")
        return
    report.mapped(("conda_store",), "conda_store")
    for key, value in conda_store.items():
        path = ("conda_store", key)
        if key == "default_namespace":
            config.setdefault("conda_store", {})["global_namespace"] = str(value)
            report.mapped(path, f"conda_store.global_namespace {value} (the environments above, for everyone)")
        elif key in ("image", "image_tag"):
            report.dropped(path, "the chart runs its own conda-store image (condaStore.image)")
        elif key in ("object_storage", "worker"):
            report.dropped(path, "Nebari's MinIO and worker sizing; the chart's conda-store keeps builds "
                           "on storage.condaStoreSize (condaStore.resources for sizing)")
        else:
            report.needs_decision(path, "Nebari's conda-store tuning, written for its version and "
                                  "services; port what you need to the chart's condaStore.extraConfig")


def _jupyterlab(report: Report, config: dict[str, Any], values: dict[str, Any], lab: Any) -> None:
    if not isinstance(lab, Mapping):
        report.needs_decision(("jupyterlab",), "not a mapping; not carried over")
        return
    report.mapped(("jupyterlab",), "jupyterlab")
    for key, value in lab.items():
        path = ("jupyterlab", key)
        if key == "idle_culler" and isinstance(value, Mapping):
            report.mapped(path, "idle culling")
            minutes = value.get("server_shutdown_no_activity_timeout")
            if minutes is not None:
                config["cull"] = {"server_idle_timeout": max(60, int(minutes) * 60)}
                report.mapped((*path, "server_shutdown_no_activity_timeout"),
                              f"cull.server_idle_timeout {max(60, int(minutes) * 60)} (minutes -> seconds)")
            helm_values.server_culling(report, values, path, value)
            for sub in value:
                if (*path, sub) not in report.entries:
                    report.needs_decision((*path, sub), "unknown culler setting; not carried over")
        elif key == "default_settings":
            helm_values.lab_settings(report, values, path, value)
        elif key in ("gallery_settings", "initial_repositories"):
            report.needs_decision(path, "Nebari's example gallery / repositories cloned into homes: "
                                  "not part of qhub-hub; clone them from a JupyterLab terminal")
        elif key == "preferred_dir":
            report.dropped(path, "servers open in the user's home")
        else:
            report.needs_decision(path, "unknown to Nebari; not carried over")


def _default_images(report: Report, values: dict, images: Any) -> None:
    if not isinstance(images, Mapping):
        report.needs_decision(("default_images",), "not a mapping; not carried over")
        return
    report.mapped(("default_images",), "one by one, below")
    for key, image in images.items():
        path = ("default_images", key)
        if isinstance(image, str) and is_stock_image(image):
            report.dropped(path, f"{image} is Nebari's stock image; the chart's own images take its place")
        elif key == "jupyterlab" and isinstance(image, str):
            helm_values.lab_image(report, values, path, image)
        else:
            report.needs_decision(path, f"{image!r}: the chart builds its {key} from qhub-hub's images "
                                  "(images/); port your changes there")


def _check_keycloak_profiles(data: Mapping[str, Any], options: NebariOptions) -> None:
    profiles = data.get("profiles") if isinstance(data.get("profiles"), Mapping) else {}
    names = [str(p.get("display_name")) for p in profiles.get("jupyterlab") or []
             if isinstance(p, Mapping) and p.get("access") == "keycloak"]
    for name in options.keycloak_profiles:
        if name not in names:
            raise NotImportable(f"--keycloak-profile {name!r}: no profile with `access: keycloak` has that "
                                f"display_name (they are: {', '.join(map(repr, names)) or 'none'})")


def import_nebari(data: Mapping[str, Any], report: Report,
                  options: NebariOptions) -> tuple[dict[str, Any], dict[str, Any]]:
    """(qhub config, Helm values without `qhub`)."""
    config: dict[str, Any] = {}
    values: dict[str, Any] = {}
    drop_known_sections(report, data)
    if "project_name" in data:
        config["project_name"] = str(data["project_name"])
        report.mapped(("project_name",), "project_name")
    domain = helm_values.domain(report, values, data)

    sec_in = data.get("security") if isinstance(data.get("security"), Mapping) else {}
    auth, shared_users_group = _security(report, sec_in, domain, options)
    groups = _Groups(options.gid_start)
    for name in (*DEFAULT_GROUPS, *options.keycloak_groups):
        groups.add(name)

    _check_keycloak_profiles(data, options)
    if "profiles" in data:
        config["profiles"] = _profiles(report, data["profiles"], groups, options)
    else:
        config["profiles"] = copy.deepcopy(DEFAULT_PROFILES)
        report.note("The file has no `profiles`: Nebari served its defaults (Small and Medium Instance, "
                    "Small and Medium Worker), and so does the import.")
    if "environments" not in data:
        report.note("The file has no `environments`: Nebari built its default ones (dask, dashboard) into "
                    "conda-store; declare the ones your users need under `environments`.")
    idle = data.get("jupyterlab", {}).get("idle_culler", {}) if isinstance(data.get("jupyterlab"), Mapping) else {}
    if not isinstance(idle, Mapping) or "server_shutdown_no_activity_timeout" not in idle:
        report.note(f"Nebari stopped idle servers after {NEBARI_IDLE_MINUTES} minutes by default (and culled "
                    "idle kernels and terminals); qhub-hub stops them after cull.server_idle_timeout "
                    f"(default 3600 s): set it to {NEBARI_IDLE_MINUTES * 60} to keep Nebari's pace.")
    if "environments" in data:
        report.mapped(("environments",), "environments")
        config["environments"] = environments(report, data["environments"])
    if "conda_store" in data:
        _conda_store(report, config, data["conda_store"])
    if "jupyterlab" in data:
        _jupyterlab(report, config, values, data["jupyterlab"])
    if "jupyterhub" in data:
        report.needs_decision(("jupyterhub",), "zero-to-jupyterhub overrides written for Nebari's hub: "
                              "review them and move what still applies under `jupyterhub:` in the Helm "
                              "values (qhub-hub's chart sets the authenticator, spawner and storage)")
    if "default_images" in data:
        _default_images(report, values, data["default_images"])
    if "storage" in data:
        helm_values.storage_sizes(report, values, data["storage"])

    group_config, idp_groups = groups.config()
    config = {
        **({"project_name": config.pop("project_name")} if "project_name" in config else {}),
        "security": {
            "authentication": auth,
            "groups": group_config,
            "identity_provider_groups": idp_groups,
            "admin_groups": ["admin"],
        },
        **config,
    }
    extra = [g for g in group_config if g not in DEFAULT_GROUPS]
    report.note(f"Keycloak groups become config groups with gids {options.gid_start}.."
                f"{options.gid_start + len(group_config) - 1} ({', '.join(group_config)}), mapped by name "
                "in security.identity_provider_groups; each has a folder /shared/<group>, 2770 root:<gid>"
                + (f". {', '.join(extra)} came from profiles" if extra else "") + ".")
    report.note("Groups made in Keycloak are not in this file. Name each one whose members should keep "
                "their /shared/<group> folder with --keycloak-group NAME (profiles may then name it too); "
                "migrate-ownership re-owns only the folders of config groups."
                + (f" Named: {', '.join(options.keycloak_groups)}." if options.keycloak_groups else ""))
    report.note("Who may log in: as in Nebari, members of analyst, developer and admin (any mapped "
                "group now lets its members in, so superadmin"
                + (" and the profiles' groups" if extra else "") + " too); admin members are hub admins.")
    if shared_users_group:
        report.note("shared_users_group: the everyone-folder is qhub-hub's /shared. Files Nebari kept in "
                    "/shared/users (on the volume: shared/users) are left where they are; move what "
                    "people still need into shared/ (the volume's /shared).")
    report.note(f"Nebari ran every user's server as uid {NEBARI_UID} (gid 100): every file on the shared "
                f"volume belongs to uid {NEBARI_UID}. In qhub-hub each user has a uid of their own "
                "(security.dynamic_ids) and each group a gid, so before users log in re-own their files: "
                "`qhub-hub migrate-ownership CONFIG --root VOLUME --from-uid 1000 --dry-run` (CONFIG: the "
                "imported config), "
                "check the list, then run it without --dry-run (README: Coming from QHub or Nebari).")
    report.note(helm_values.STORAGE_NOTE)
    report.flag_unrecorded(data, "unknown to Nebari and to qhub-hub; not carried over")
    return config, values
