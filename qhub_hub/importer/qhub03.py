"""QHub 0.3 `qhub-config.yaml` -> qhub-hub config, keeping what QHub 0.3 meant.

What QHub 0.3 did (its jupyterhub_config.py template), and how it is kept:

- users, uids (a *string* in QHub's schema), primary and secondary groups, gids: carried over;
  servers ran with exactly these ids, so files on the volume already have the right owners;
- hub admins were the users whose *primary* group is `admin` (a secondary `admin` membership
  gave the folder, not admin rights). qhub-hub makes every member of `admin_groups` an admin, so
  when someone has `admin` only as a secondary group, QHub's admins get a group of their own;
- a profile with `users` was offered to those users only (its `groups` were ignored); one with
  only `groups` to members of any of them; one with neither to everyone;
- group folders appeared at /home/shared/<group>: `storage.shared_root` stays /home/shared;
- every environment was visible to everyone: they go to conda-store's global namespace.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..config import GROUP_NAME
from ..naming import unix_name
from . import helm_values
from .dropped import drop_known_sections
from .environments import environments
from .images import is_stock_image
from .profiles import dask_worker_profiles, jupyterlab_profile, with_access
from .report import Report

_SAFE = set("abcdefghijklmnopqrstuvwxyz0123456789")
_AUTH_CONFIG = {
    "GitHub": ("client_id", "client_secret", "oauth_callback_url"),
    "Auth0": ("client_id", "client_secret", "oauth_callback_url", "scope", "auth0_subdomain"),
}


def qhub03_home_folder(username: str) -> str:
    """The folder QHub 0.3 gave a user on the volume (home/<this>): escapism with lowercase
    letters and digits safe and '-' as escape character, then lowercased."""
    out = []
    for char in username:
        if char in _SAFE:
            out.append(char)
        else:
            out += [f"-{byte:02x}" for byte in char.encode("utf-8")]
    return "".join(out).lower()


def _auth(report: Report, auth: Any) -> dict[str, Any]:
    path = ("security", "authentication")
    if not isinstance(auth, Mapping):
        report.needs_decision(path, "not a mapping; password login is used")
        return {"type": "password"}
    kind = auth.get("type")
    if kind == "password":
        report.mapped(path, "security.authentication (password: bcrypt hashes in security.users)")
        for key in auth:
            report.mapped((*path, key), f"security.authentication.{key}")
        return {"type": "password"}
    if kind in _AUTH_CONFIG:
        config = auth.get("config") if isinstance(auth.get("config"), Mapping) else {}
        out_config = {}
        report.mapped(path, f"security.authentication (type {kind})")
        report.mapped((*path, "type"), f"security.authentication.type {kind}")
        for key, value in config.items():
            if key in _AUTH_CONFIG[kind]:
                out_config[key] = value
                report.mapped((*path, "config", key), f"security.authentication.config.{key}")
            else:
                report.needs_decision((*path, "config", key), f"{key!r} is not a {kind} setting QHub 0.3 "
                                      "knew; not carried over")
        for key in auth:
            if key not in ("type", "config"):
                report.needs_decision((*path, key), "unknown key; not carried over")
        return {"type": kind, "config": out_config}
    report.needs_decision(path, f"login type {kind!r} (a custom authenticator class) has no qhub-hub "
                          "equivalent: password login is written instead; switch to GitHub, Auth0 or "
                          "oidc (security.authentication) before users need to log in")
    return {"type": "password"}


def _groups(report: Report, groups: Any) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    if not isinstance(groups, Mapping):
        report.needs_decision(("security", "groups"), "not a mapping; no groups carried over")
        return out
    for name, group in groups.items():
        path = ("security", "groups", str(name))
        gid = group.get("gid") if isinstance(group, Mapping) else None
        try:
            out[str(name)] = {"gid": int(str(gid))}
        except ValueError:
            report.needs_decision(path, f"gid {gid!r} is not a number; group not carried over")
            continue
        report.mapped(path, f"security.groups.{name}")
        report.mapped((*path, "gid"), f"security.groups.{name}.gid {gid}")
        for key in group:
            if key != "gid":
                report.needs_decision((*path, key), "unknown key; not carried over")
    return out


def _users(report: Report, users: Any, password_login: bool) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    if not isinstance(users, Mapping):
        report.needs_decision(("security", "users"), "not a mapping; no users carried over")
        return out
    for name, user in users.items():
        path = ("security", "users", str(name))
        if not isinstance(user, Mapping):
            report.needs_decision(path, "not a mapping; user not carried over")
            continue
        try:
            uid = int(str(user.get("uid")).strip())
        except ValueError:
            report.needs_decision(path, f"uid {user.get('uid')!r} is not a number; user not carried over")
            continue
        entry: dict[str, Any] = {"uid": uid, "primary_group": user.get("primary_group")}
        report.mapped(path, f"security.users.{name}")
        shown = f"{user.get('uid')!r} (a string in QHub 0.3) -> {uid}" if isinstance(user.get("uid"), str) else str(uid)
        report.mapped((*path, "uid"), f"uid {shown}")
        for key, value in user.items():
            if key == "primary_group":
                report.mapped((*path, key), f"primary_group {value}")
            elif key == "secondary_groups":
                if value:
                    entry["secondary_groups"] = list(value)
                report.mapped((*path, key), "secondary_groups")
            elif key == "password":
                if password_login:
                    entry["password"] = value
                    report.mapped((*path, key), "password (the bcrypt hash, unchanged)")
                else:
                    report.dropped((*path, key), "unused: this file logs in through an OAuth provider")
            elif key != "uid":
                report.needs_decision((*path, key), "unknown key; not carried over")
        out[str(name)] = entry
    return out


def _admins(report: Report, users: dict, groups: dict) -> list[str] | None:
    """QHub 0.3: admins are the users whose primary group is `admin`. Returns admin_groups, or
    None when qhub-hub's default (members of `admin`) means the same."""
    secondary_admins = sorted(n for n, u in users.items()
                              if "admin" in u.get("secondary_groups", []) and u["primary_group"] != "admin")
    if not secondary_admins or "admin" not in groups:
        return None
    name = next(n for n in ("hub-admins", "qhub-admins", "qhub-hub-admins") if n not in groups)
    taken = {g["gid"] for g in groups.values()}
    gid = max([*taken, 1000]) + 1  # 1000: the chart's conda-store gid, and Nebari's uid
    groups[name] = {"gid": gid}
    for user in users.values():
        if user["primary_group"] == "admin":
            user["secondary_groups"] = [*user.get("secondary_groups", []), name]
    for user_name in secondary_admins:
        report.mapped(("security", "users", user_name, "secondary_groups"),
                      "not a hub admin, as in QHub 0.3 (admin only as a secondary group)")
    report.note(f"QHub 0.3 made only users whose primary group is `admin` hub admins. "
                f"{', '.join(secondary_admins)} had `admin` as a secondary group (its folder and profiles, "
                f"not admin rights): a group `{name}` (gid {gid}) now holds QHub's admins and "
                f"security.admin_groups is [{name}]. To make every `admin` member an admin instead, "
                f"remove `{name}` and security.admin_groups.")
    return [name]


def _profile_access(report: Report, path: tuple, profile: Mapping, users: dict, groups: dict,
                    password_login: bool) -> dict[str, Any] | None:
    """users/groups with QHub 0.3's meaning; None: QHub offered the profile to nobody."""
    if "users" in profile:
        listed = [str(u) for u in (profile.get("users") or [])]
        kept = [u for u in listed if u in users or not password_login]
        if len(kept) < len(listed):
            report.mapped((*path, "users"), f"users {kept} ({sorted(set(listed) - set(kept))} are not in "
                          "security.users and could never log in)")
        else:
            report.mapped((*path, "users"), f"users {kept}")
        if "groups" in profile:
            report.dropped((*path, "groups"), "QHub 0.3 ignored a profile's groups when it listed users; "
                           "dropped so that the same people get the profile (add them back to widen it)")
        return {"users": kept} if kept else None
    if "groups" in profile:
        listed = [str(g) for g in (profile.get("groups") or [])]
        kept = [g for g in listed if g in groups]
        if len(kept) < len(listed):
            report.mapped((*path, "groups"), f"groups {kept} ({sorted(set(listed) - set(kept))} are not "
                          "groups of this file, so nobody was in them)")
        else:
            report.mapped((*path, "groups"), f"groups {kept}")
        return {"groups": kept} if kept else None
    return {}


def _profiles(report: Report, data: Any, users: dict, groups: dict, password_login: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if not isinstance(data, Mapping):
        report.needs_decision(("profiles",), "not a mapping; no profiles carried over")
        return out
    for key in data:
        if key not in ("jupyterlab", "dask_worker"):
            report.needs_decision(("profiles", key), "unknown kind of profile; not carried over")
    jupyterlab = []
    for i, profile in enumerate(data.get("jupyterlab") or []):
        path = ("profiles", "jupyterlab", i)
        if not isinstance(profile, Mapping):
            report.needs_decision(path, "not a mapping; profile not carried over")
            continue
        access = _profile_access(report, path, profile, users, groups, password_login)
        if access is None:
            report.needs_decision(path, "QHub 0.3 offered this profile to nobody (no known user or group "
                                  "listed); not carried over: add it back with the people who need it")
            continue
        converted = jupyterlab_profile(report, path, profile)
        if converted.get("default") and access:
            del converted["default"]
            report.needs_decision((*path, "default"), "a default profile must be open to everyone in "
                                  "qhub-hub; `default` dropped (users get their first allowed profile)")
        for key in profile:
            if key not in ("display_name", "description", "default", "users", "groups", "kubespawner_override"):
                report.needs_decision((*path, key), "unknown key; not carried over")
        report.mapped(path, f"profiles.jupyterlab[{len(jupyterlab)}]")
        jupyterlab.append(with_access(converted, access))
    if "jupyterlab" in data:
        report.mapped(("profiles", "jupyterlab"), "profiles.jupyterlab, in the same order")
        out["jupyterlab"] = jupyterlab
    workers = data.get("dask_worker")
    if isinstance(workers, Mapping):
        out["dask_worker"] = dask_worker_profiles(report, workers, "QHub")
    return out


def _default_images(report: Report, values: dict, images: Any) -> None:
    if not isinstance(images, Mapping):
        report.needs_decision(("default_images",), "not a mapping; not carried over")
        return
    report.mapped(("default_images",), "one by one, below")
    for key, image in images.items():
        path = ("default_images", key)
        if isinstance(image, str) and is_stock_image(image):
            report.dropped(path, f"{image} is QHub's stock image; the chart's own images take its place")
        elif key == "jupyterlab" and isinstance(image, str):
            helm_values.lab_image(report, values, path, image)
        else:
            report.needs_decision(path, f"{image!r}: the chart builds its {key} from qhub-hub's images "
                                  "(images/); port your changes there")


def import_qhub03(data: Mapping[str, Any], report: Report) -> tuple[dict[str, Any], dict[str, Any]]:
    """(qhub config, Helm values without `qhub`)."""
    config: dict[str, Any] = {}
    values: dict[str, Any] = {}
    drop_known_sections(report, data)
    if "project_name" in data:
        config["project_name"] = str(data["project_name"])
        report.mapped(("project_name",), "project_name")

    sec_in = data.get("security") if isinstance(data.get("security"), Mapping) else {}
    if "security" in data:
        report.mapped(("security",), "security")
    auth = _auth(report, sec_in.get("authentication"))
    password_login = auth["type"] == "password"
    groups = _groups(report, sec_in.get("groups", {}))
    users = _users(report, sec_in.get("users", {}), password_login)
    admin_groups = _admins(report, users, groups)
    security: dict[str, Any] = {"authentication": auth, "users": users, "groups": groups}
    if admin_groups is not None:
        security["admin_groups"] = admin_groups
    if "users" in sec_in:
        report.mapped(("security", "users"), "security.users")
    if "groups" in sec_in:
        report.mapped(("security", "groups"), "security.groups")
    for key in sec_in:
        if key not in ("authentication", "users", "groups"):
            report.needs_decision(("security", key), "unknown to QHub 0.3; not carried over")
    config["security"] = security

    if "profiles" in data:
        report.mapped(("profiles",), "profiles")
        config["profiles"] = _profiles(report, data["profiles"], users, groups, password_login)
    if "environments" in data:
        report.mapped(("environments",), "environments")
        config["environments"] = environments(report, data["environments"])
    config["storage"] = {"shared_root": "/home/shared"}

    if "default_images" in data:
        _default_images(report, values, data["default_images"])
    if "storage" in data:
        helm_values.storage_sizes(report, values, data["storage"])
    helm_values.domain(report, values, data)

    report.note("QHub 0.3 ran each user's server with the uid and gids of this file, so files on the "
                "volume already belong to the right users and groups: no change of ownership is needed.")
    report.note("Folders: QHub 0.3 showed every home at /home/jovyan and group folders at "
                "/home/shared/<group>; qhub-hub shows a home at /home/<name> (update notebooks that "
                "use /home/jovyan paths) and keeps /home/shared/<group> (storage.shared_root). "
                "/home/shared itself becomes mode 1777 (QHub: 0777): only a file's owner may delete it.")
    moves = ["mv VOLUME/home/shared VOLUME/shared"]
    for name in users:
        old, new = qhub03_home_folder(name), unix_name(name)
        if old != new:
            moves.append(f"mv VOLUME/home/{old} VOLUME/home/{new}")
    report.note("On the storage volume QHub 0.3 kept group folders under home/shared/ and escaped some "
                "home folder names; qhub-hub uses shared/<group> and home/<unix name>. Before the first "
                "start run `qhub-hub migrate-layout CONFIG --root VOLUME --dry-run` (CONFIG: the imported "
                "config), then "
                "without --dry-run (VOLUME: the volume's root). It does: " + "; ".join(moves))
    for name in groups:
        if not re.fullmatch(GROUP_NAME, name):
            report.needs_decision(("security", "groups", name), "not a Linux group name; rename it (and "
                                  "its folder on the volume)")
    report.note(helm_values.STORAGE_NOTE)
    report.flag_unrecorded(data, "unknown to QHub 0.3 and to qhub-hub; not carried over")
    return config, values
