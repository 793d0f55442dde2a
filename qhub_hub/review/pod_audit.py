"""`qhub-hub audit --kubernetes`: running user pods against their users' current plans (pure).

A pod keeps the securityContext and mounts it started with; after a config change it may still run
with a group, or mount a group folder, that the plan took away. For each pod (a Kubernetes pod
object as the API returns it, camelCase), the expected pieces are built by the same builders the
spawner uses (`qhub_hub.pod`) from the user's plan now, and compared:

- the pod's and the notebook container's securityContext (ids, groups, privilege settings);
- the plan-owned volume mounts (home, /shared, group folders and their read-only flags, the nss
  files, conda-store namespaces); mounts an admin added on other volumes are not the plan's.

The user is the pod's ``hub.jupyter.org/username`` annotation (else its QHUB_USER). Their plan
comes, best, from the hub, the one authority (`plan_lookup`, e.g. `hub_plan_lookup`: ``GET
/hub/api/qhub/plans/<name>``, exact identity-provider groups and dynamic uid). Without the hub,
the groups an identity provider reported are not in a pod, so the plan is made conservatively
from the config (an audit may then report too much, never too little):

- users of security.users, and everyone under password login: no identity-provider groups (a
  group an identity provider adds to a config user shows as a finding);
- other users: each config group in the pod's QHUB_GROUPS counts only if the current config still
  maps an identity-provider group to it (`security.identity_provider_groups`, read-only preferred),
  and the uid the pod runs as is their dynamic uid.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .. import pod as podlib
from ..config import PasswordAuth, QHubConfig
from ..policy import PlanError, UserPlan, plan_for
from .findings import AuditReport, Finding

USERNAME_ANNOTATION = "hub.jupyter.org/username"
NOTEBOOK = "notebook"
PLAN_VOLUMES = (podlib.STORAGE_VOLUME, podlib.NSS_VOLUME, podlib.CONDA_VOLUME)
RESTART = ("restart {user}'s server: a running pod keeps the securityContext and mounts it started "
           "with (hub admin page, or DELETE /hub/api/users/{user}/server)")


PlanLookup = Callable[[str], UserPlan | None]  # username -> plan now (None: no such user)


def audit_pods(config: QHubConfig, pods: Iterable[Mapping[str, Any]], target: str = "user pods",
               plan_lookup: PlanLookup | None = None) -> AuditReport:
    report = AuditReport(target)
    if plan_lookup is None:
        report.notes.append("plans made from the config (no hub asked): identity-provider groups "
                            "are not known; see `audit --hub-api-url`")
    count = 0
    for pod in pods:
        count += 1
        for finding in audit_pod(config, pod, plan_lookup):
            report.findings.append(finding)
    report.checked["pods"] = count
    return report


def hub_plan_lookup(api_url: str, token: str) -> PlanLookup:
    """Plans from the hub's plan endpoint (the token needs the scope custom:qhub:plans:read).
    A user the hub does not know has no plan; any other failure raises `PlanUnavailable`."""
    from ..hub_plans import HubPlanSource, PlanUnavailable

    source = HubPlanSource(api_url, token)

    def lookup(username: str) -> UserPlan | None:
        try:
            return source.fetch_sync(username).plan
        except PlanUnavailable as e:
            if "has no user" in str(e):
                return None
            raise
    return lookup


def _env(container: Mapping[str, Any]) -> dict[str, str]:
    return {e.get("name"): e.get("value") or "" for e in container.get("env") or [] if isinstance(e, Mapping)}


def notebook_container(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    return next((c for c in containers if c.get("name") == NOTEBOOK), containers[0])


def plan_of_pod(config: QHubConfig, pod: Mapping[str, Any]) -> tuple[str | None, UserPlan | None]:
    meta = pod.get("metadata") or {}
    env = _env(notebook_container(pod))
    username = (meta.get("annotations") or {}).get(USERNAME_ANNOTATION) or env.get("QHUB_USER")
    if not username:
        return None, None
    groups = [g for g in env.get("QHUB_GROUPS", "").split(",") if g]
    idp_groups = mapped_sources(config, groups) \
        if username not in config.security.users and not isinstance(config.security.authentication, PasswordAuth) \
        else []
    uid = ((pod.get("spec") or {}).get("securityContext") or {}).get("runAsUser")
    dyn = config.security.dynamic_ids
    try:
        if username not in config.security.users and isinstance(uid, int) \
                and dyn.uid_start <= uid < dyn.uid_start + dyn.uid_count:
            plan = plan_for(config, username, idp_groups, dynamic_uid=uid)
        else:
            plan = plan_for(config, username, idp_groups)
    except PlanError:
        return username, None
    return username, plan if plan.may_log_in else None


def mapped_sources(config: QHubConfig, groups: Iterable[str]) -> list[str]:
    """For each config group, an identity-provider group the config maps to it (read-only first)."""
    mappings = config.security.identity_provider_groups
    out = []
    for group in groups:
        sources = sorted((bool(getattr(t, "readonly", False)) is False, name)
                         for name, t in mappings.items() if getattr(t, "group", t) == group)
        if sources:
            out.append(sources[0][1])
    return out


def audit_pod(config: QHubConfig, pod: Mapping[str, Any], plan_lookup: PlanLookup | None = None) -> list[Finding]:
    name = (pod.get("metadata") or {}).get("name", "?")
    username, plan = plan_of_pod(config, pod)
    if username is not None and plan_lookup is not None:
        plan = plan_lookup(username)
        plan = plan if plan is not None and plan.may_log_in else None
    subject = f"pod {name}" + (f" ({username})" if username else "")
    if username is None:
        return [Finding("pod_unexplained", subject, f"has no {USERNAME_ANNOTATION} annotation and no "
                        "QHUB_USER: not a server qhub-hub started", "check what started it")]
    if plan is None:
        return [Finding("pod_unexplained", subject, f"{username!r} may not log in under the current "
                        "config, but the server still runs", f"stop it ({RESTART.format(user=username)})")]
    action = RESTART.format(user=username)
    findings = []
    spec = pod.get("spec") or {}
    diffs = _differences(podlib.pod_security_context(plan), spec.get("securityContext") or {})
    container = notebook_container(pod)
    diffs += [f"container {d}" for d in
              _differences(podlib.container_security_context(plan), container.get("securityContext") or {})]
    if diffs:
        findings.append(Finding("pod_security_context", subject, "; ".join(diffs), action))
    mounts = [m for m in container.get("volumeMounts") or [] if m.get("name") in PLAN_VOLUMES]
    conda = any(m.get("name") == podlib.CONDA_VOLUME for m in mounts)
    problems = _mount_differences(podlib.volume_mounts(plan, config, conda_store=conda), mounts)
    if problems:
        findings.append(Finding("pod_mounts", subject, "; ".join(problems), action))
    return findings


def _differences(want: Mapping[str, Any], have: Mapping[str, Any]) -> list[str]:
    out = []
    for key, value in want.items():
        got = have.get(key)
        if key == "supplementalGroups":
            value, got = sorted(value), sorted(got or [])
        if got != value:
            out.append(f"{key} is {got!r}, the plan gives {value!r}")
    return out


def _mount_key(mount: Mapping[str, Any]) -> tuple[str, str]:
    return mount.get("mountPath", ""), mount.get("subPath", "")


def _mount_differences(want: list[dict[str, Any]], have: list[Mapping[str, Any]]) -> list[str]:
    wanted = {_mount_key(m): bool(m.get("readOnly")) for m in want}
    actual = {_mount_key(m): bool(m.get("readOnly")) for m in have}
    out = []
    for key in sorted(actual.keys() - wanted.keys()):
        out.append(f"mounts {key[0]}, which the plan no longer gives")
    for key in sorted(wanted.keys() - actual.keys()):
        out.append(f"lacks {key[0]}, which the plan gives")
    for key in sorted(wanted.keys() & actual.keys()):
        if wanted[key] != actual[key]:
            out.append(f"mounts {key[0]} {'read-only' if actual[key] else 'read-write'}, the plan says "
                       f"{'read-only' if wanted[key] else 'read-write'}")
    return out
