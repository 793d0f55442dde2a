"""Dask Gateway cluster options from the qhub config: what each user may ask for, decided on the server.

Set in the gateway's config (the Helm chart and the embedded mode do this for you)::

    from qhub_hub.gateway_options import QHubClusterOptions
    c.Backend.cluster_options = QHubClusterOptions(rendering="local")            # embedded mode
    c.Backend.cluster_options = QHubClusterOptions(
        rendering="kubernetes",
        kubernetes=KubernetesSettings(default_image="...", conda_store_claim="...",
                                      storage_claim="..."))                     # Helm chart

`QHubClusterOptions(user)` builds the form a user sees (`GET /api/v1/options`) from the user's plan:

- ``profile``: the `profiles.dask_worker` entries the user's groups allow;
- ``environment``: a built environment of the user's namespaces (own, groups', global), named
  ``namespace/name``, ``name`` or by its prefix path; empty: the first one (narrowed by
  `dask_gateway.worker_environments` when set);
- ``max_workers`` (0: the profile's limit), ``idle_timeout`` (at most `cull.cluster_idle_timeout`)
  and ``environment_variables`` that cannot override the ones the platform sets;
- on Kubernetes also ``server_profile``: the jupyterlab profile whose image the workers use when
  the worker profile names none (the user server sets it, so it matches the notebook).

Its handler re-derives everything from the current config and plan and refuses whatever is not
allowed with a message saying what to do (dask-gateway answers 422); a refused option never reaches
a backend. The accepted choice is rendered by `qhub_hub.gateway.kubernetes` or
`qhub_hub.gateway.local` into the backend's cluster config.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any, Literal

from dask_gateway_server.options import Field, Integer, Options, Select, String
from dask_gateway_server.options import Mapping as MappingField

from .config import DaskWorkerProfile, QHubConfig
from .config_errors import ConfigError
from .gateway.choice import ClusterChoice, KubernetesSettings
from .gateway.environments import (
    EnvironmentLister,
    WorkerEnvironment,
    environments_with_image,
    environments_with_server,
    missing_worker_packages,
    package_versions,
    worker_environments,
)
from .gateway.kubernetes import kubernetes_cluster_config
from .gateway.local import local_cluster_config
from .hub_identity import get_config
from .hub_plans import HubPlanSource, PlanUnavailable
from .plan_wire import HubPlan
from .policy import UserPlan

__all__ = ["ClusterChoice", "KubernetesSettings", "OptionRefused", "QHubClusterOptions"]

Rendering = Literal["kubernetes", "local"]

MIN_IDLE_TIMEOUT = 5  # seconds; shorter only kills clusters before their client connects
MAX_ENVIRONMENT_VARIABLES = 64
MAX_VARIABLE_LENGTH = 4096
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Set by the platform for every scheduler and worker; a user's environment_variables cannot change
# them (they decide which Python runs, as whom, and how the cluster talks to the gateway).
MANAGED_VARIABLES = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "CONDA_PREFIX", "CONDA_DEFAULT_ENV", "VIRTUAL_ENV",
    "PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONUSERBASE", "PYTHONNOUSERSITE",
    "LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT",
})
MANAGED_PREFIXES = ("DASK_GATEWAY", "DASK_DISTRIBUTED__COMM__", "QHUB_")


class OptionRefused(ValueError):
    """A cluster request the plan does not allow; the message is shown to the user (HTTP 422)."""


# --- fields --------------------------------------------------------------------------------------


class _Choice(Select):
    """A Select whose refusal says who may not use what, and what they may use instead."""

    def __init__(self, field: str, options: list[str], *, who: str, what: str, label: str):
        self.who, self.what = who, what
        super().__init__(field, options, label=label)

    def validate(self, x: Any) -> str:
        if not isinstance(x, str) or x not in self.options:
            raise OptionRefused(f"{self.who!r} may not use the {self.what} {x!r}. Choose one of: "
                                f"{', '.join(self.options)}.")
        return x


# --- the factory -----------------------------------------------------------------------------------


class QHubClusterOptions:
    """`c.Backend.cluster_options`: an async callable of the gateway user returning their `Options`.

    The user's plan comes from the hub (`hub_plans.HubPlanSource`, ``GET /hub/api/qhub/plans/<name>``
    with the gateway's own hub token): the gateway never decides who a user is. When the hub cannot
    answer, every request is refused with the reason. The gateway's own copy of the config only
    gives platform settings (`dask_gateway`, `cull`, where environments are).

    Arguments:
        rendering: ``"local"`` (embedded mode: processes started as the user by
            `qhub_hub.gateway.local_backend.QHubLocalBackend`) or ``"kubernetes"``.
        config_path: the qhub config file; unset: ``$QHUB_CONFIG``. Re-read when it changes.
        kubernetes: where images and volumes are (required for ``"kubernetes"``).
        environment_lister: lists the environments of a plan (default: from the filesystem
            layout under `conda_store.environments_root`; the local rendering also offers the
            server environment, see `qhub_hub.gateway.environments`).
        plan_source: where plans come from; default: the hub at ``$JUPYTERHUB_API_URL`` with
            ``$JUPYTERHUB_API_TOKEN`` (JupyterHub sets both for the services it runs).
    """

    def __init__(self, *, rendering: Rendering, config_path: str | os.PathLike | None = None,
                 kubernetes: KubernetesSettings | None = None,
                 environment_lister: EnvironmentLister | None = None,
                 plan_source: HubPlanSource | None = None):
        if rendering not in ("kubernetes", "local"):
            raise ValueError(f"rendering must be 'kubernetes' or 'local', not {rendering!r}")
        if rendering == "kubernetes" and kubernetes is None:
            raise ValueError("rendering='kubernetes' needs kubernetes=KubernetesSettings(...)")
        self.rendering = rendering
        self.config_path = os.fspath(config_path) if config_path else None
        self.kubernetes = kubernetes
        self.environment_lister = environment_lister or (
            environments_with_server if rendering == "local" else environments_with_image)
        self.plan_source = plan_source or HubPlanSource()

    # -- config and plan --

    @property
    def config(self) -> QHubConfig:
        return get_config(self.config_path)

    def max_clusters_per_user(self) -> int:
        return self.config.dask_gateway.max_clusters_per_user

    async def hub_plan(self, config: QHubConfig, user: Any) -> HubPlan:
        """The plan the hub decided for a gateway user; `OptionRefused` says why there is none."""
        name = str(user.name)
        if ":" in name:  # dask-gateway names services "service:<name>"
            raise OptionRefused(f"{name!r} is not a hub user; Dask clusters are started by hub users "
                                "from their own server.")
        if not config.dask_gateway.enabled:
            raise OptionRefused("Dask Gateway is disabled on this platform (dask_gateway.enabled).")
        try:
            hub_plan = await self.plan_source.fetch(name)
        except PlanUnavailable as e:
            raise OptionRefused(f"Your plan is not available, so no cluster can be started: {e}.") from None
        if not hub_plan.plan.may_log_in:
            raise OptionRefused(f"{name!r} may not use this platform (not in security.users nor in a "
                                "mapped group); ask an admin to add you.")
        return hub_plan

    # -- the form --

    async def __call__(self, user: Any) -> Options:
        try:
            config = self.config
        except ConfigError:  # no good config at all (nor a last good copy): a 422 saying so, not a 500
            return Options(handler=_refuse(OptionRefused(
                "The platform's qhub config is invalid, so no Dask cluster can be started now; ask an "
                "admin to fix it (`qhub-hub validate`).")))
        try:
            hub_plan = await self.hub_plan(config, user)
        except OptionRefused as refusal:
            return Options(handler=_refuse(refusal))  # nothing to offer; the handler says why
        plan = hub_plan.plan
        envs = usable_environments(worker_environments(config, plan, self.environment_lister))
        fields: list[Field] = []
        if plan.dask_worker_profiles:
            fields.append(_Choice("profile", list(plan.dask_worker_profiles), label="Worker profile",
                                  who=plan.username, what="worker profile"))
        keys = [e.key for e in envs]
        fields.append(String("environment", default="", label="Environment (namespace/name; empty: "
                            f"{keys[0] if keys else 'none available'}). Yours: {', '.join(keys)}"))
        limit = max((p.max_workers for p in hub_plan.dask_worker_profiles.values()), default=1)
        fields.append(Integer("max_workers", default=0, min=0, max=limit,
                              label="Most workers (0: the profile's limit)"))
        idle_max = _idle_limit(config)
        fields.append(Integer("idle_timeout", default=idle_max, min=0 if not idle_max else MIN_IDLE_TIMEOUT,
                              max=idle_max or None, label="Idle timeout (s)"))
        fields.append(MappingField("environment_variables", label="Environment variables"))
        if self.rendering == "kubernetes":
            fields.append(String("server_profile", default="", label="Image of server profile (slug)"))

        def handler(options: Mapping[str, Any], _user: Any) -> dict[str, Any]:
            return self.render(config, hub_plan, options)

        return Options(*fields, handler=handler)

    # -- the decision --

    def choose(self, config: QHubConfig, hub_plan: HubPlan, options: Mapping[str, Any]) -> ClusterChoice:
        """Check `options` against the plan; `OptionRefused` names what is wrong."""
        plan = hub_plan.plan
        allowed = plan.dask_worker_profiles
        if not allowed:
            raise OptionRefused(f"No Dask worker profile is available to {plan.username!r}. Ask an admin "
                                "to add you to a group that may use one (profiles.dask_worker).")
        profile_name = options.get("profile") or allowed[0]
        if profile_name not in allowed:
            raise OptionRefused(f"{plan.username!r} may not use the worker profile {profile_name!r}. "
                                f"Choose one of: {', '.join(allowed)}.")
        profile = hub_plan.dask_worker_profiles[profile_name]

        envs = worker_environments(config, plan, self.environment_lister)
        wanted = options.get("environment") or ""
        environment = resolve_environment(plan, usable_environments(envs) if not wanted else envs, wanted)
        versions = {} if environment.in_image else package_versions(environment.prefix)
        missing = [] if environment.in_image else missing_worker_packages(versions)
        if missing:
            found = ", ".join(f"{k} {v}" for k, v in versions.items() if v) or "none of them"
            raise OptionRefused(
                f"The environment {environment.key} cannot run Dask workers: it lacks "
                f"{', '.join(missing)} (found: {found}). Add dask, distributed and dask-gateway to it, "
                "at the versions your notebook uses, or choose another environment.")

        max_workers = options.get("max_workers") or profile.max_workers
        if not isinstance(max_workers, int) or max_workers < 0:
            raise OptionRefused("max_workers must be a whole number of workers (0: the profile's limit).")
        if max_workers > profile.max_workers:
            raise OptionRefused(f"The worker profile {profile_name!r} allows at most "
                                f"{profile.max_workers} workers; ask for {profile.max_workers} or fewer.")

        idle_max = _idle_limit(config)
        idle = options.get("idle_timeout", idle_max)
        if idle_max and not (MIN_IDLE_TIMEOUT <= idle <= idle_max):
            raise OptionRefused(f"idle_timeout must be between {MIN_IDLE_TIMEOUT} and {idle_max} "
                                "seconds (cull.cluster_idle_timeout).")

        image = None
        if self.rendering == "kubernetes":
            image = self._image(plan, profile, options.get("server_profile") or "")
        return ClusterChoice(
            profile_name=profile_name, profile=profile, environment=environment, versions=versions,
            max_workers=max_workers, idle_timeout=float(idle),
            environment_variables=check_environment_variables(options.get("environment_variables") or {}),
            image=image,
        )

    def _image(self, plan: UserPlan, profile: DaskWorkerProfile, server_profile: str) -> str:
        assert self.kubernetes is not None
        if profile.image:
            return profile.image
        if server_profile:
            chosen = next((p for p in plan.jupyterlab_profiles if p.profile_slug == server_profile), None)
            if chosen is None:
                raise OptionRefused(f"{plan.username!r} may not use the server profile "
                                    f"{server_profile!r}; workers take the image of a profile you may use: "
                                    f"{', '.join(plan.profile_slugs) or 'none'}.")
            if chosen.kubespawner_override.image:
                return chosen.kubespawner_override.image
        return self.kubernetes.default_image

    def render(self, config: QHubConfig, hub_plan: HubPlan, options: Mapping[str, Any]) -> dict[str, Any]:
        """The backend's cluster config for an allowed request (dask-gateway's `Options` handler)."""
        choice = self.choose(config, hub_plan, options)
        if self.rendering == "kubernetes":
            assert self.kubernetes is not None
            return kubernetes_cluster_config(config, hub_plan.plan, choice, self.kubernetes)
        return local_cluster_config(config, hub_plan.plan, choice)


def _refuse(refusal: OptionRefused) -> Any:
    def handler(options: Mapping[str, Any], user: Any) -> dict[str, Any]:
        raise refusal
    return handler


def _idle_limit(config: QHubConfig) -> int:
    """The longest idle timeout a user may ask for (0: culling is off, clusters may idle forever)."""
    return config.cull.cluster_idle_timeout if config.cull.enabled else 0


def usable_environments(envs: list[WorkerEnvironment]) -> list[WorkerEnvironment]:
    """The environments that have everything a Dask scheduler and worker need."""
    return [e for e in envs if e.in_image or not missing_worker_packages(package_versions(e.prefix))]


def resolve_environment(plan: UserPlan, envs: list[WorkerEnvironment], wanted: str) -> WorkerEnvironment:
    """The environment `wanted` names (``namespace/name``, ``name``, or its prefix; "": the first)."""
    if not isinstance(wanted, str):
        raise OptionRefused("environment must be a string such as 'global/dask'.")
    keys = ", ".join(e.key for e in envs)
    if not envs:
        raise OptionRefused(f"No built environment with dask, distributed and dask-gateway is available "
                            f"to {plan.username!r} (namespaces: {', '.join(plan.environment_namespaces)}). "
                            "Build one in conda-store, or ask an admin for access to one.")
    if not wanted:
        return envs[0]
    if os.path.isabs(wanted):
        real = os.path.realpath(wanted)
        for env in envs:
            if os.path.normpath(wanted) == str(env.prefix) or real == os.path.realpath(env.prefix):
                return env
    elif "/" in wanted:
        for env in envs:
            if env.key == wanted:
                return env
    else:
        for env in envs:
            if env.name == wanted:
                return env
    raise OptionRefused(f"{plan.username!r} may not run Dask workers in the environment {wanted!r}, or it "
                        f"is not built. Choose one of: {keys}.")


def check_environment_variables(variables: Any) -> dict[str, str]:
    """A user's extra variables, or `OptionRefused` naming the first one that is not allowed."""
    if not isinstance(variables, Mapping):
        raise OptionRefused("environment_variables must be a mapping of names to strings.")
    if len(variables) > MAX_ENVIRONMENT_VARIABLES:
        raise OptionRefused(f"At most {MAX_ENVIRONMENT_VARIABLES} environment_variables may be set.")
    checked: dict[str, str] = {}
    for name, value in variables.items():
        if not isinstance(name, str) or not ENV_NAME.match(name):
            raise OptionRefused(f"{name!r} is not a valid environment variable name (letters, digits "
                                "and '_', not starting with a digit).")
        if name in MANAGED_VARIABLES or name.startswith(MANAGED_PREFIXES):
            raise OptionRefused(f"{name} is set by the platform for every Dask cluster and cannot be "
                                "overridden; remove it from environment_variables.")
        if not isinstance(value, str) or len(value) > MAX_VARIABLE_LENGTH:
            raise OptionRefused(f"The value of {name} must be a string of at most "
                                f"{MAX_VARIABLE_LENGTH} characters.")
        checked[name] = value
    return checked
