"""`QHubKubeSpawner`: KubeSpawner, with the pod decided by the user's plan.

- Profiles: only the plan's profiles are offered (`profile_list` is a callable of the plan, and the
  spawn form lists the same); the choice is enforced on the server by `PlanSpawnerMixin` (403 not
  allowed, 400 unknown, also for REST `user_options` and for saved options at every restart).
- The profile's `kubespawner_override` (image, cpu/memory, GPU limits, node selector, tolerations,
  default_url, start_timeout) is applied on top of the admin's settings for this spawn only; the
  next spawn starts again from the admin's settings.
- Ids, mounts and security settings come from the plan (`qhub_hub.pod`) and are written into the
  pod *after* kubespawner built it, so neither a profile nor a template expansion can change them:
  runAsUser/runAsGroup/supplementalGroups/fsGroup, runAsNonRoot, no privilege escalation, all
  capabilities dropped, no service-account token (unless the admin sets
  ``automount_service_account_token = True``; profiles cannot), home + /shared + /shared/<group> as subPaths of
  one ReadWriteMany claim (read-only where the membership is), the init container that prepares
  them and the nss_wrapper files, conda-store namespaces read-only.
- Environment: `server_env.server_environment`, DASK_GATEWAY__*, HOME/USER/NSS_WRAPPER_*/LD_PRELOAD
  are managed and win over everything else; values are escaped so Kubernetes takes them literally.

Configure with z2jh ``hub.config.QHubKubeSpawner.<trait>``; set ``singleuser.storage.type: none``
(the storage here replaces z2jh's per-user claim).
"""

from __future__ import annotations

from typing import Any

from jupyterhub.utils import maybe_future
from kubernetes_asyncio.client.models import V1Container, V1Volume, V1VolumeMount
from kubespawner import KubeSpawner
from kubespawner.utils import get_k8s_model
from traitlets import Integer, Unicode, default

from . import pod as podlib
from .config import JupyterLabProfile, KubespawnerOverride
from .policy import UserPlan
from .spawner_options import PlanSpawnerMixin

# The spawner traits a profile may set, and so the ones every spawn resets to the admin's values
# first: derived from the config model, so a new override field cannot leak into the next spawn.
# (`environment` is not a trait override: the mixin filters it into get_env.)
PROFILE_TRAITS = tuple(name for name in KubespawnerOverride.model_fields if name != "environment")
MERGED_TRAITS = ("extra_resource_limits", "extra_resource_guarantees", "node_selector")


def profile_to_kubespawner(profile: JupyterLabProfile) -> dict[str, Any]:
    """A config profile as a kubespawner `profile_list` entry (display data + override)."""
    override = profile.kubespawner_override.model_dump(exclude_none=True, exclude={"environment"})
    override = {k: v for k, v in override.items() if v not in ({}, [])}
    if "tolerations" in override:
        override["tolerations"] = [{k: v for k, v in t.items() if v is not None}
                                   for t in override["tolerations"]]
    for key in ("extra_resource_limits", "extra_resource_guarantees"):
        if key in override:
            override[key] = {k: str(v) for k, v in override[key].items()}
    return {"display_name": profile.display_name, "slug": profile.profile_slug,
            "description": profile.description, "default": profile.default,
            "kubespawner_override": override}


async def _plan_profile_list(spawner: QHubKubeSpawner) -> list[dict[str, Any]]:
    plan = await spawner.qhub_plan()
    return [profile_to_kubespawner(p) for p in plan.jupyterlab_profiles]


class QHubKubeSpawner(PlanSpawnerMixin, KubeSpawner):
    qhub_gateway_knows_server_profiles = True

    storage_claim_name = Unicode(
        "qhub-storage",
        config=True,
        help="Name of the ReadWriteMany PersistentVolumeClaim (in the user pods' namespace) that "
        "holds home/<user>, shared and shared/<group>. Each server mounts only its own folders "
        "from it, as subPaths. Default: 'qhub-storage'.",
    )
    init_image = Unicode(
        "busybox:1.36.1",
        config=True,
        help="Image of the init container that creates missing home and group folders with the "
        "right owner and mode and writes the nss_wrapper passwd/group files. It needs a POSIX "
        "/bin/sh, stat, chown and chmod. Default: 'busybox:1.36.1'.",
    )
    init_image_pull_policy = Unicode(
        "",
        config=True,
        help="imagePullPolicy of the init container (Always, IfNotPresent, Never). Empty "
        "(default): Kubernetes' default for the tag.",
    )
    conda_store_claim_name = Unicode(
        "",
        config=True,
        help="PersistentVolumeClaim holding conda-store's environments (<namespace>/envs/<name>). "
        "Each server mounts the namespaces its plan allows, read-only, at "
        "<conda_store.environments_root>/<namespace>. Empty (default): not mounted.",
    )
    conda_store_uid = Integer(
        1000,
        config=True,
        help="uid conda-store runs as (the chart's condaStore.uid). The init container makes the "
        "user's namespace folders on the environments claim owned by it, so conda-store can build "
        "there. Default: 1000.",
    )
    conda_store_gid = Integer(
        1000,
        config=True,
        help="gid of conda-store's namespace folders (the chart's condaStore.gid). Default: 1000.",
    )
    nss_wrapper_library = Unicode(
        "libnss_wrapper.so",
        config=True,
        help="LD_PRELOAD value that loads nss_wrapper in the user image, so `whoami` and `id` "
        "show the names from the generated passwd/group files. Empty: not preloaded. "
        "Default: 'libnss_wrapper.so' (Debian/Ubuntu package libnss-wrapper).",
    )

    @default("profile_list")
    def _qhub_profile_list_default(self) -> Any:
        return _plan_profile_list

    _qhub_admin_values: dict[str, Any] | None = None

    # --- the profile --------------------------------------------------------------------------

    def qhub_apply_profile(self, profile: JupyterLabProfile | None, plan: UserPlan) -> None:
        """Start again from the admin's settings, then apply the profile's override."""
        if self._qhub_admin_values is None:
            self._qhub_admin_values = {k: _copy(getattr(self, k)) for k in PROFILE_TRAITS}
        for key, value in self._qhub_admin_values.items():
            setattr(self, key, _copy(value))
        if profile is None:
            return
        override = profile_to_kubespawner(profile)["kubespawner_override"]
        for key, value in override.items():
            if key in MERGED_TRAITS:
                setattr(self, key, {**getattr(self, key), **value})
            elif key == "tolerations":
                setattr(self, key, [*self._sorted_dict_values(getattr(self, key)), *value])
            else:
                setattr(self, key, value)

    async def load_user_options(self) -> None:
        """kubespawner's own profile handling is replaced: `PlanSpawnerMixin.start` has already
        checked the options against the plan and applied the profile."""
        if self.qhub_user_plan is None:
            await self.qhub_apply_user_options(self.user_options)

    # --- the pod ---------------------------------------------------------------------------------

    def qhub_managed_environment(self) -> dict[str, str]:
        env = super().qhub_managed_environment()
        env.update(podlib.identity_environment(self.qhub_user_plan, self.nss_wrapper_library))
        return env

    def get_env(self) -> dict[str, str]:
        env = super().get_env()
        for key in self.qhub_managed_environment():
            env[key] = podlib.k8s_literal(env[key])
        return env

    async def get_pod_manifest(self) -> Any:
        plan = self.qhub_user_plan
        if plan is None:
            raise RuntimeError("get_pod_manifest() needs the user's plan: start() (or "
                               "qhub_apply_user_options) computes it first")
        config = self.qhub_config
        self.working_dir = plan.home.path
        pod = await super().get_pod_manifest()
        spec = pod.spec
        conda_claim = self.conda_store_claim_name if config.conda_store.enabled else ""
        ours_volumes = podlib.volumes(self.storage_claim_name, conda_claim or None)
        ours_mounts = podlib.volume_mounts(plan, config, conda_store=bool(conda_claim))
        our_names = {v["name"] for v in ours_volumes}
        our_paths = {m["mountPath"] for m in ours_mounts}

        admin_volumes = [v for v in (spec.volumes or []) if _name(v) not in our_names]
        spec.volumes = [get_k8s_model(V1Volume, v) for v in ours_volumes] + admin_volumes
        notebook = spec.containers[0]
        admin_mounts = []
        for mount in notebook.volume_mounts or []:
            if _mount_path(mount) in our_paths or _name(mount) in our_names:
                self.log.warning("Ignoring the configured volume mount %s: the plan owns it",
                                 _mount_path(mount))
                continue
            admin_mounts.append(mount)
        notebook.volume_mounts = [get_k8s_model(V1VolumeMount, m) for m in ours_mounts] + admin_mounts
        init = podlib.init_container(
            plan, self.init_image, pull_policy=self.init_image_pull_policy or None,
            environments_owner=(self.conda_store_uid, self.conda_store_gid) if conda_claim else None)
        spec.init_containers = [get_k8s_model(V1Container, init),
                                *[c for c in spec.init_containers or [] if _name(c) != "qhub-init"]]

        # the plan's ids and security settings, whatever else was configured
        spec.security_context = podlib.pod_security_context(plan)
        notebook.security_context = podlib.container_security_context(plan)
        notebook.working_dir = plan.home.path
        # no API token in user pods, unless the admin opted in explicitly (e.g. the chart's
        # daskKubernetes feature, with a ServiceAccount limited to Dask clusters)
        spec.automount_service_account_token = self.automount_service_account_token is True
        return pod

    async def start(self) -> Any:
        self.qhub_user_plan = None  # computed afresh for every spawn
        return await maybe_future(super().start())


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, list):
        return list(value)
    return value


def _name(obj: Any) -> str | None:
    return obj.get("name") if isinstance(obj, dict) else getattr(obj, "name", None)


def _mount_path(obj: Any) -> str | None:
    return obj.get("mountPath") if isinstance(obj, dict) else getattr(obj, "mount_path", None)
