"""Pure builders of the pieces of a user pod that come from the plan (no Kubernetes client, no I/O).

`QHubKubeSpawner` only resolves its traitlets and calls these; tests compare whole dicts.

Storage: one ReadWriteMany claim holds everything. Its layout (paths relative to the claim root)::

    home/<unix_name>     the user's home       owner uid:gid   mode storage.home_mode  (0700)
    shared               everyone's folder     root:root       mode storage.shared_mode (1777)
    shared/<group>       a group's folder      root:gid        mode storage.group_mode  (2770)

A server mounts only its own home, ``shared`` and the folders of its groups, as subPaths, and
read-only where the membership is read-only. An init container running as root applies
`folder_rules` to each (the same rules as the embedded mode): missing folders are created with the
plan's owner and mode, a home is only tightened and must be the user's, a group folder squatted by
a user is set aside, a symlink or file where a folder should be fails the spawn. Folder names and
ids reach the script as arguments, never as shell text.

Names: passwd/group files for nss_wrapper are generated from the plan (entries sanitised, one per
line) and written by the init container from environment variables into an emptyDir, so `whoami`
and `id` show names without the image knowing the users.
"""

from __future__ import annotations

import re
from typing import Any

from .config import QHubConfig
from .folder_rules import FOLDER_SCRIPT, Role
from .policy import UserPlan

STORAGE_VOLUME = "qhub-storage"
NSS_VOLUME = "qhub-nss"
CONDA_VOLUME = "qhub-conda-store"
INIT_STORAGE_PATH = "/qhub-storage"
INIT_ENVIRONMENTS_PATH = "/qhub-environments"
NSS_PATH = "/etc/qhub-nss"
INIT_NSS_PATH = "/qhub-nss"

# POSIX sh (dash, busybox ash). Arguments: <nss dir>, then groups of five: <role> <dir> <uid> <gid>
# <mode>, each applied by `folder_rules.FOLDER_SCRIPT` (the rules the embedded mode applies too).
INIT_SCRIPT = "set -eu\n" + FOLDER_SCRIPT + r"""nss=$1; shift
printf '%s\n' "$QHUB_PASSWD" > "$nss/passwd"
printf '%s\n' "$QHUB_GROUP" > "$nss/group"
chmod 0644 "$nss/passwd" "$nss/group"
while [ "$#" -ge 5 ]; do
  qhub_folder "$1" "$2" "$3" "$4" "$5"
  if [ "$1" = group ]; then
    # what members create stays writable by the group whatever their umask, as in the embedded
    # mode; file systems without ACLs (NFS) keep the setgid folder only
    if command -v setfacl >/dev/null && setfacl -m d:u::rwx,d:g::rwx,d:m::rwx,d:o::--- "$2" 2>/dev/null; then :
    else echo "qhub-init: no default ACL on $2 (no setfacl, or the file system has no ACLs)"; fi
  fi
  shift 5
done
"""

_UNSAFE_FIELD = re.compile(r"[:,\n\r\t\x00-\x1f\x7f]")


def _field(text: str) -> str:
    return _UNSAFE_FIELD.sub("_", text)


def k8s_literal(value: str) -> str:
    """`value` as a Kubernetes env value that is taken literally (no $(VAR) expansion)."""
    return value.replace("$", "$$")


def pod_security_context(plan: UserPlan) -> dict[str, Any]:
    """Ids of every container in the pod. Not runAsNonRoot: root init containers (ours, and
    zero-to-jupyterhub's block-cloud-metadata) set runAsUser 0, which that would refuse; the
    notebook container has it in its own context."""
    return {
        "runAsUser": plan.uid,
        "runAsGroup": plan.gid,
        "supplementalGroups": sorted({*plan.supplemental_gids, *plan.readonly_gids} - {plan.gid}),
        "fsGroup": plan.gid,
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context(plan: UserPlan) -> dict[str, Any]:
    return {
        "runAsUser": plan.uid,
        "runAsGroup": plan.gid,
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
    }


def init_security_context() -> dict[str, Any]:
    """Root, but only the capabilities needed to create and own folders."""
    return {
        "runAsUser": 0,
        "runAsGroup": 0,
        "runAsNonRoot": False,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"], "add": ["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID"]},
    }


def passwd_content(plan: UserPlan, shell: str = "/bin/bash") -> str:
    return "\n".join([
        "root:x:0:0:root:/root:/bin/sh",
        f"{plan.unix_name}:x:{plan.uid}:{plan.gid}:{_field(plan.username)}:{plan.home.path}:{shell}",
    ])


def group_content(plan: UserPlan) -> str:
    lines = ["root:x:0:"]
    names = {m.name for m in plan.memberships}
    if plan.primary_group not in names:  # a private group, gid = uid
        lines.append(f"{plan.primary_group}:x:{plan.gid}:")
    for m in plan.memberships:
        members = "" if m.name == plan.primary_group else plan.unix_name
        lines.append(f"{m.name}:x:{m.gid}:{members}")
    return "\n".join(lines)


def folders(plan: UserPlan) -> list[tuple[Role, str, int, int, int]]:
    """(role, subpath, uid, gid, mode) of every folder the server needs, parents first."""
    home_parent = plan.home.subpath.rsplit("/", 1)[0]
    out: list[tuple[Role, str, int, int, int]] = [
        ("platform", home_parent, 0, 0, 0o755),
        ("home", plan.home.subpath, plan.home.owner_uid, plan.home.owner_gid, plan.home.mode)]
    out += [("group" if m.group else "platform", m.subpath, m.owner_uid, m.owner_gid, m.mode)
            for m in plan.mounts]
    return out


def init_container(plan: UserPlan, image: str, *, storage_path: str = INIT_STORAGE_PATH,
                   nss_path: str = INIT_NSS_PATH, pull_policy: str | None = None,
                   environments_owner: tuple[int, int] | None = None,
                   environments_path: str = INIT_ENVIRONMENTS_PATH) -> dict[str, Any]:
    """`environments_owner`: conda-store's (uid, gid), to make the plan's namespace folders on the
    environments claim before they are mounted; None when no environments are mounted."""
    args = ["qhub-init", nss_path]
    for role, subpath, uid, gid, mode in folders(plan):
        args += [role, f"{storage_path}/{subpath}", str(uid), str(gid), f"{mode:04o}"]
    if environments_owner:
        for namespace in plan.environment_namespaces:
            args += ["platform", f"{environments_path}/{namespace}", str(environments_owner[0]),
                     str(environments_owner[1]), "0755"]
    container: dict[str, Any] = {
        "name": "qhub-init",
        "image": image,
        "command": ["/bin/sh", "-c", k8s_literal(INIT_SCRIPT)],
        "args": [k8s_literal(a) for a in args],
        "env": [
            {"name": "QHUB_PASSWD", "value": k8s_literal(passwd_content(plan))},
            {"name": "QHUB_GROUP", "value": k8s_literal(group_content(plan))},
        ],
        "securityContext": init_security_context(),
        "volumeMounts": [
            {"name": STORAGE_VOLUME, "mountPath": storage_path},
            {"name": NSS_VOLUME, "mountPath": nss_path},
        ],
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"},
                      "limits": {"cpu": "200m", "memory": "64Mi"}},
    }
    if environments_owner and plan.environment_namespaces:
        # the init container makes the user's namespace folders: a subPath the kubelet had to
        # create itself would be root's, and conda-store could never build in it
        container["volumeMounts"].append({"name": CONDA_VOLUME, "mountPath": environments_path})
    if pull_policy:
        container["imagePullPolicy"] = pull_policy
    return container


def volumes(storage_claim: str, conda_store_claim: str | None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {"name": STORAGE_VOLUME, "persistentVolumeClaim": {"claimName": storage_claim}},
        {"name": NSS_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
    ]
    if conda_store_claim:
        # writable for the init container only; the notebook mounts each namespace read-only. Not
        # two volumes of one claim (read-only and not): the kubelet never mounts the second
        out.append({"name": CONDA_VOLUME, "persistentVolumeClaim": {"claimName": conda_store_claim}})
    return out


def volume_mounts(plan: UserPlan, config: QHubConfig, *, conda_store: bool) -> list[dict[str, Any]]:
    """Home, /shared and /shared/<group> (read-only where the membership is), nss files, and the
    user's conda-store namespaces read-only at <environments_root>/<namespace>."""
    mounts: list[dict[str, Any]] = [
        {"name": STORAGE_VOLUME, "mountPath": plan.home.path, "subPath": plan.home.subpath},
    ]
    for m in plan.mounts:
        mount = {"name": STORAGE_VOLUME, "mountPath": m.path, "subPath": m.subpath}
        if m.readonly:
            mount["readOnly"] = True
        mounts.append(mount)
    mounts.append({"name": NSS_VOLUME, "mountPath": NSS_PATH, "readOnly": True})
    if conda_store:
        root = config.conda_store.environments_root.rstrip("/")
        for namespace in plan.environment_namespaces:
            mounts.append({"name": CONDA_VOLUME, "mountPath": f"{root}/{namespace}",
                           "subPath": namespace, "readOnly": True})
    return mounts


def identity_environment(plan: UserPlan, nss_library: str) -> dict[str, str]:
    """Who the server is: home, user name, and nss_wrapper so names resolve."""
    env = {
        "HOME": plan.home.path,
        "USER": plan.unix_name,
        "LOGNAME": plan.unix_name,
        "NSS_WRAPPER_PASSWD": f"{NSS_PATH}/passwd",
        "NSS_WRAPPER_GROUP": f"{NSS_PATH}/group",
    }
    if nss_library:
        env["LD_PRELOAD"] = nss_library
    return env
