"""The qhub config's typed model: every section of the YAML file, strict (unknown keys are errors).

Loading a file (parse, validate, cross-reference checks) is `qhub_hub.config.load_config`; this
module only defines the shapes, so that the checks can import it without a cycle.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml_rs
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    field_validator,
    model_validator,
)

from .units import parse_bytes, parse_cpu

GROUP_NAME = r"^[a-z][a-z0-9_-]{0,31}$"
SLUG = r"^[a-z0-9][a-z0-9-]{0,62}$"
SPAWNER_BYTES = re.compile(r"[0-9]*\.?[0-9]+[KMGT]")  # JupyterHub's ByteSpecification: number + suffix
FIRST_UID = 1000  # below: system accounts, never handed to a person
DASK_PACKAGES = ("ipykernel", "dask", "distributed", "dask-gateway")


class Strict(BaseModel):
    """Every section: unknown keys are errors, values are checked, defaults are documented."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# --- security ----------------------------------------------------------------------------------


class PasswordAuth(Strict):
    """Local accounts: `security.users.<name>.password` holds a bcrypt hash."""

    type: Literal["password"] = "password"
    config: dict[str, Any] = Field(default_factory=dict, description="Unused; kept for QHub files.")


class OAuthCommon(Strict):
    client_id: str | None = Field(
        None, description="OAuth client id; unset: read from $OAUTH_CLIENT_ID by oauthenticator."
    )
    client_secret: str | None = Field(
        None, description="OAuth client secret; unset: read from $OAUTH_CLIENT_SECRET."
    )
    oauth_callback_url: str | None = Field(
        None, description="https://<hub>/hub/oauth_callback; unset: $OAUTH_CALLBACK_URL."
    )
    scope: list[str] | None = Field(None, description="Extra OAuth scopes; unset: the provider's default.")


class GitHubConfig(OAuthCommon):
    allowed_organizations: list[str] = Field(
        default_factory=list,
        description="GitHub orgs (or org:team) whose members may log in, in addition to "
        "security.users and members of mapped identity-provider groups.",
    )
    github_url: str | None = Field(None, description="GitHub Enterprise base URL; unset: github.com.")


class GitHubAuth(Strict):
    type: Literal["GitHub"]
    config: GitHubConfig = Field(default_factory=GitHubConfig)


class Auth0Config(OAuthCommon):
    auth0_subdomain: str | None = Field(
        None, description="Your tenant, e.g. 'acme' or 'acme.eu' (for acme.eu.auth0.com)."
    )
    auth0_domain: str | None = Field(None, description="Full Auth0 domain; overrides auth0_subdomain.")
    groups_claim: str | None = Field(
        None, description="Claim in the userinfo holding the user's groups (e.g. a namespaced rule claim)."
    )


class Auth0Auth(Strict):
    type: Literal["Auth0"]
    config: Auth0Config = Field(default_factory=Auth0Config)


class OIDCConfig(OAuthCommon):
    authorize_url: str = Field(description="The provider's authorization endpoint.")
    token_url: str = Field(description="The provider's token endpoint.")
    userdata_url: str = Field(description="The provider's userinfo endpoint.")
    username_claim: str = Field("preferred_username", description="Claim used as the hub username.")
    groups_claim: str = Field("groups", description="Claim holding the user's groups (Keycloak: 'groups').")


class OIDCAuth(Strict):
    type: Literal["oidc"]
    config: OIDCConfig


_AUTH_TYPES = {"password": "password", "github": "GitHub", "auth0": "Auth0", "oidc": "oidc",
               "generic": "oidc", "keycloak": "oidc"}


def _normalise_auth_type(value: Any) -> Any:
    if isinstance(value, Mapping) and isinstance(value.get("type"), str):
        canonical = _AUTH_TYPES.get(value["type"].strip().lower())
        if canonical:
            return {**value, "type": canonical}
    return value


Authentication = Annotated[
    PasswordAuth | GitHubAuth | Auth0Auth | OIDCAuth, Field(discriminator="type")
]


class User(Strict):
    uid: int = Field(ge=FIRST_UID, le=2**31 - 1, description="Linux uid of this user's processes.")
    primary_group: str = Field(description="Group (from security.groups) giving the primary gid.")
    secondary_groups: list[str] = Field(
        default_factory=list, description="Groups this user is a read-write member of."
    )
    readonly_groups: list[str] = Field(
        default_factory=list,
        description="Groups whose folders this user may read but not write (/shared/<group> read-only).",
    )
    password: str | None = Field(
        None, description="bcrypt hash for password login; make one with `qhub-hub hash-password`."
    )

    @field_validator("password")
    @classmethod
    def _bcrypt_only(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}", value):
            raise ValueError(
                "must be a bcrypt hash ($2b$...), never a plain password; "
                "make one with `qhub-hub hash-password`"
            )
        return value


class Group(Strict):
    gid: int = Field(ge=100, le=2**31 - 1, description="Linux gid of this group.")


class IdentityProviderGroup(Strict):
    group: str = Field(description="The config group this identity-provider group maps to.")
    readonly: bool = Field(False, description="Members get the group's folder read-only.")


class DynamicIds(Strict):
    """Ids for users who come from the identity provider without an entry in security.users."""

    uid_start: int = Field(200_000, ge=FIRST_UID, description="First uid of the dynamic range.")
    uid_count: int = Field(1_000_000, ge=1, description="Size of the dynamic range.")
    primary_group: str | None = Field(
        None, description="Config group used as their primary group; unset: a private group, gid = uid."
    )


def _mapping_or_text(value: Any) -> str:
    # a mapping when validating YAML; a model instance when serializing a loaded config
    return "mapping" if isinstance(value, Mapping | BaseModel) else "text"


GroupTarget = Annotated[
    Annotated[str, Tag("text")] | Annotated[IdentityProviderGroup, Tag("mapping")],
    Discriminator(_mapping_or_text),
]


class Security(Strict):
    authentication: Annotated[Authentication, Field(default_factory=PasswordAuth)]
    users: dict[str, User] = Field(default_factory=dict, description="Known users by hub username.")
    groups: dict[str, Group] = Field(default_factory=dict, description="Groups by name.")
    admin_groups: list[str] | None = Field(
        None, description="Groups whose members are hub admins; unset: ['admin'] if that group exists."
    )
    identity_provider_groups: dict[str, GroupTarget] = Field(
        default_factory=dict,
        description="Identity-provider group name (GitHub 'org:team', OIDC/Auth0 group) -> config "
        "group. An IdP group with the same name as a config group maps to it without an entry.",
    )
    allow_unlisted_users: bool = Field(
        False,
        description="Let any user the identity provider authenticates log in, even without an entry "
        "in security.users or a mapped group.",
    )
    dynamic_ids: DynamicIds = Field(default_factory=DynamicIds)

    @model_validator(mode="before")
    @classmethod
    def _auth_type(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "authentication" in data:
            return {**data, "authentication": _normalise_auth_type(data["authentication"])}
        return data

    @field_validator("groups")
    @classmethod
    def _group_names(cls, groups: dict[str, Group]) -> dict[str, Group]:
        for name in groups:
            if not re.fullmatch(GROUP_NAME, name):
                raise ValueError(
                    f"group name {name!r} must be a Linux group name: lowercase letter first, then "
                    "lowercase letters, digits, '_' or '-', at most 32 characters"
                )
        return groups

    @property
    def admin_group_names(self) -> list[str]:
        if self.admin_groups is not None:
            return self.admin_groups
        return ["admin"] if "admin" in self.groups else []


# --- profiles ----------------------------------------------------------------------------------

# kubespawner settings that would change ids, mounts or the security context: the plan owns them.
FORBIDDEN_OVERRIDES = frozenset({
    "uid", "gid", "supplemental_gids", "fs_gid", "run_as_uid", "run_as_gid", "privileged",
    "allow_privilege_escalation", "container_security_context", "pod_security_context",
    "volumes", "volume_mounts", "storage_pvc_ensure", "pvc_name_template", "service_account",
    "automount_service_account_token", "init_containers", "extra_containers", "extra_pod_config",
    "extra_container_config", "cmd", "args", "working_dir", "notebook_dir", "lifecycle_hooks",
    "namespace",
})


class Toleration(Strict):
    key: str | None = None
    operator: Literal["Exists", "Equal"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    tolerationSeconds: int | None = None  # noqa: N815 - Kubernetes spelling


class KubespawnerOverride(Strict):
    """What a profile may set: image and resources, never ids, mounts or security settings."""

    image: str | None = Field(None, description="Container image of the user server.")
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    cpu_limit: float | None = Field(None, gt=0, description="CPU cores the server may use.")
    cpu_guarantee: float | None = Field(None, gt=0, description="CPU cores reserved for the server.")
    mem_limit: str | int | None = Field(None, description="Memory limit, e.g. '4G' (K/M/G/T: 1024-based).")
    mem_guarantee: str | int | None = Field(None, description="Memory reserved, e.g. '2G'.")
    extra_resource_limits: dict[str, str | int] = Field(
        default_factory=dict, description="E.g. {'nvidia.com/gpu': 1}."
    )
    extra_resource_guarantees: dict[str, str | int] = Field(default_factory=dict)
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list)
    environment: dict[str, str] = Field(
        default_factory=dict, description="Extra environment variables (managed ones win)."
    )
    default_url: str | None = Field(None, description="Where the server opens, e.g. '/lab'.")
    start_timeout: int | None = Field(None, gt=0, description="Seconds to wait for the server.")

    @model_validator(mode="before")
    @classmethod
    def _no_security_overrides(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            bad = sorted(str(k) for k in data if k in FORBIDDEN_OVERRIDES)
            if bad:
                raise ValueError(
                    f"{', '.join(bad)} cannot be set by a profile: user ids, mounts and security "
                    "settings come from security.users and storage; remove the key"
                )
        return data

    @field_validator("mem_limit", "mem_guarantee")
    @classmethod
    def _memory(cls, value: str | int | None) -> str | int | None:
        # exactly what the spawner's trait (JupyterHub's ByteSpecification) accepts at spawn time;
        # checked here without importing jupyterhub (the gateway and conda-store images lack it)
        if value is not None and not (isinstance(value, int) and not isinstance(value, bool)
                                      or isinstance(value, str) and SPAWNER_BYTES.fullmatch(value)):
            raise ValueError(f"{value!r} is not a memory size the spawner accepts; write e.g. '4G', "
                             "'512M' (K, M, G, T: 1024-based) or a number of bytes")
        return value

    @property
    def gpus(self) -> int:
        return sum(int(parse_cpu(v)) for k, v in self.extra_resource_limits.items() if "gpu" in k)


class JupyterLabProfile(Strict):
    display_name: str = Field(min_length=1, description="Shown on the spawn page.")
    slug: str | None = Field(None, description="Stable id; unset: derived from display_name.")
    description: str = Field("", description="Shown under the name on the spawn page.")
    default: bool = Field(False, description="Pre-selected; every user must be allowed to use it.")
    users: list[str] | None = Field(None, description="Users allowed (with groups: either grants).")
    groups: list[str] | None = Field(None, description="Groups allowed; users and groups unset: all.")
    kubespawner_override: KubespawnerOverride = Field(default_factory=KubespawnerOverride)
    cost_per_hour: float | None = Field(
        None, ge=0, description="What one hour of a server of this profile costs, in usage.currency "
        "(usage reports, budgets, the cost-rate metric); unset: 0.")

    @field_validator("slug")
    @classmethod
    def _slug(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(SLUG, value):
            raise ValueError("slug must be lowercase letters, digits and '-', at most 63 characters")
        return value

    @property
    def profile_slug(self) -> str:
        return self.slug or slugify(self.display_name)

    @property
    def restricted(self) -> bool:
        return self.users is not None or self.groups is not None


class DaskWorkerProfile(Strict):
    worker_cores: float = Field(gt=0, description="Cores requested per worker.")
    worker_cores_limit: float = Field(gt=0, description="Cores a worker may use.")
    worker_memory: str | int = Field(description="Memory requested per worker, e.g. '4G'.")
    worker_memory_limit: str | int = Field(description="Memory a worker may use, e.g. '4G'.")
    image: str | None = Field(None, description="Worker image; unset: the user's own server image.")
    max_workers: int = Field(20, ge=1, description="Most workers one cluster may scale to.")
    users: list[str] | None = Field(None, description="Users allowed (with groups: either grants).")
    groups: list[str] | None = Field(None, description="Groups allowed; users and groups unset: all.")
    cost_per_hour: float | None = Field(
        None, ge=0, description="What one worker of this profile costs per hour, in usage.currency; "
        "unset: 0.")

    @field_validator("worker_memory", "worker_memory_limit")
    @classmethod
    def _memory(cls, value: str | int) -> str | int:
        parse_bytes(value)
        return value

    @model_validator(mode="after")
    def _limits_cover_requests(self) -> DaskWorkerProfile:
        if self.worker_cores_limit < self.worker_cores:
            raise ValueError("worker_cores_limit must be at least worker_cores")
        if parse_bytes(self.worker_memory_limit) < parse_bytes(self.worker_memory):
            raise ValueError("worker_memory_limit must be at least worker_memory")
        return self

    @property
    def restricted(self) -> bool:
        return self.users is not None or self.groups is not None


class Profiles(Strict):
    jupyterlab: list[JupyterLabProfile] = Field(default_factory=list)
    dask_worker: dict[str, DaskWorkerProfile] = Field(default_factory=dict)


# --- environments --------------------------------------------------------------------------------


class PipDependencies(Strict):
    pip: list[str]


Dependency = Annotated[
    Annotated[str, Tag("text")] | Annotated[PipDependencies, Tag("mapping")],
    Discriminator(_mapping_or_text),
]


class EnvironmentSpec(Strict):
    """An environment.yaml document, passed to conda-store as written (pins and all)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    channels: list[str] = Field(default_factory=list)
    dependencies: list[Dependency] = Field(default_factory=list)
    variables: dict[str, str] = Field(default_factory=dict)
    description: str = ""
    prefix: str | None = Field(None, description="Ignored by conda-store; accepted for exported files.")

    def package_names(self) -> set[str]:
        names: set[str] = set()
        for dep in self.dependencies:
            for spec in dep.pip if isinstance(dep, PipDependencies) else [dep]:
                name = re.split(r"[\s=<>!~\[;]", spec.split("::")[-1].strip(), maxsplit=1)[0]
                names.add(name.lower().replace("_", "-"))
        return names


# --- services --------------------------------------------------------------------------------------


def _octal_mode(value: Any) -> int:
    # Only quoted strings: YAML reads an unquoted 0700 as the decimal number 700 (YAML 1.2) or as
    # 448 (YAML 1.1), and neither should silently become a permission.
    if isinstance(value, str) and re.fullmatch(r"0?o?[0-7]{3,4}", value):
        return int(value.replace("o", ""), 8)
    raise ValueError("must be an octal mode written as a quoted string, such as '0700' or '2770'")


Mode = Annotated[int, Field(json_schema_extra={"type": "string", "pattern": "^0?o?[0-7]{3,4}$"})]


class Storage(Strict):
    home_root: str = Field("/home", description="Where homes appear in a user's server.")
    shared_root: str = Field("/shared", description="Where /shared and /shared/<group> appear.")
    home_mode: Mode = Field(0o700, description="Mode of a home directory, a quoted octal string.")
    shared_mode: Mode = Field(0o1777, description="Mode of the folder everyone shares.")
    group_mode: Mode = Field(0o2770, description="Mode of /shared/<group> (setgid, group-writable).")

    @field_validator("home_mode", "shared_mode", "group_mode", mode="before")
    @classmethod
    def _mode(cls, value: Any) -> int:
        return _octal_mode(value)

    @field_validator("home_root", "shared_root")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/") or ".." in value.split("/"):
            raise ValueError("must be an absolute path without '..'")
        return value.rstrip("/") or "/"


class DaskGateway(Strict):
    enabled: bool = True
    worker_environments: list[str] = Field(
        default_factory=list,
        description="Declared environments offered to Dask clusters; each must contain "
        + ", ".join(DASK_PACKAGES) + ". Empty: every environment the user may see.",
    )
    max_clusters_per_user: int = Field(3, ge=1)
    scheduler_cores: float = Field(1, gt=0)
    scheduler_memory: str | int = Field("2G")


class CondaStore(Strict):
    enabled: bool = True
    url: str | None = Field(None, description="conda-store server URL; unset: the platform's own.")
    environments_root: str = Field(
        "/home/conda", description="Where built environments live: <root>/<namespace>/envs/<name>."
    )
    global_namespace: str = Field("global", description="Namespace of the config's environments.")
    environments_folder: str | None = Field(
        None, description="A folder of environment.yaml files declared in addition to `environments`."
    )


class SSH(Strict):
    enabled: bool = True
    port: int = Field(8022, ge=1, le=65535, description="Port of the SSH/SFTP server.")


class VideoChat(Strict):
    enabled: bool = True
    jitsi_url: str = Field("https://meet.jit.si", description="Jitsi Meet server (self-hosted or public).")
    room_prefix: str = Field("qhub", pattern=r"^[A-Za-z0-9-]{1,40}$")


class Cull(Strict):
    enabled: bool = True
    server_idle_timeout: int = Field(3600, ge=60, description="Seconds before an idle server stops.")
    server_max_age: int = Field(0, ge=0, description="Seconds before any server stops; 0: never.")
    cluster_idle_timeout: int = Field(1800, ge=60, description="Seconds before an idle Dask cluster stops.")
    every: int = Field(300, ge=10, description="Seconds between culler passes.")


# --- usage: costs and limits (enforced by qhub_hub.usage) ------------------------------------------


class UsageSettings(Strict):
    currency: str = Field("USD", min_length=1, max_length=12,
                          description="Currency of every cost_per_hour and cost budget (a label).")


class MonthlyBudget(Strict):
    """Most that may be used in a calendar month (UTC); a new server or worker is refused once used."""

    gpu_hours: float | None = Field(None, ge=0, description="GPU-hours of servers (GPUs x hours).")
    core_hours: float | None = Field(
        None, ge=0, description="Core-hours of servers (cpu_guarantee, else cpu_limit) and Dask "
        "workers (worker_cores).")
    cost: float | None = Field(None, ge=0, description="Cost in usage.currency (cost_per_hour x hours).")


class Grant(Strict):
    """Caps for whom a `limits` entry covers; unset fields: no cap."""

    servers: int | None = Field(None, ge=0, description="Most servers running at once.")
    gpus: int | None = Field(None, ge=0, description="Most GPUs requested by running servers at once.")
    dask_worker_cores: float | None = Field(
        None, ge=0, description="Most Dask worker cores (worker_cores x workers) at once.")
    monthly: MonthlyBudget = Field(default_factory=MonthlyBudget)


class UsageLimits(Strict):
    """Who may use how much. A group's grant is shared by its members (what they run together);
    a user in several limited groups is charged to the most generous one that has room. A user's
    own entry caps them in addition. `default` caps each user none of whose groups has an entry."""

    groups: dict[str, Grant] = Field(default_factory=dict,
                                     description="Group -> the grant its members share.")
    users: dict[str, Grant] = Field(default_factory=dict,
                                    description="User -> caps on that user's own usage.")
    default: Grant | None = Field(None, description="Per-user caps for users in no limited group; "
                                  "unset: no caps.")


# --- the whole file ---------------------------------------------------------------------------


class QHubConfig(Strict):
    project_name: str | None = Field(None, description="Free text; QHub files carry it.")
    security: Security = Field(default_factory=Security)
    profiles: Profiles = Field(default_factory=Profiles)
    environments: dict[str, EnvironmentSpec] = Field(
        default_factory=dict, description="QHub style: file name -> environment.yaml document."
    )
    storage: Storage = Field(default_factory=Storage)
    dask_gateway: DaskGateway = Field(default_factory=DaskGateway)
    conda_store: CondaStore = Field(default_factory=CondaStore)
    ssh: SSH = Field(default_factory=SSH)
    videochat: VideoChat = Field(default_factory=VideoChat)
    cull: Cull = Field(default_factory=Cull)
    usage: UsageSettings = Field(default_factory=UsageSettings)
    limits: UsageLimits = Field(default_factory=UsageLimits)

    _index: Any = PrivateAttr(None)  # qhub_hub.policy.index_of caches its lookups here
    _declared_environments: dict[str, EnvironmentSpec] = PrivateAttr(default_factory=dict)

    @property
    def declared_environments(self) -> dict[str, EnvironmentSpec]:
        """Environments of `environments` and `conda_store.environments_folder`, by name."""
        return self._declared_environments



def slugify(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:63].rstrip("-") or "profile"


# --- loading -----------------------------------------------------------------------------------


def read_yaml(path: Path) -> Any:
    """Parse a YAML file (YAML 1.2, a Rust parser: a 10k-user file in well under a second).

    Unlike PyYAML it refuses duplicate keys, so a second `alice:` cannot silently replace the first.
    Raises OSError or ValueError (with line and column).
    """
    return yaml_rs.loads(path.read_text(encoding="utf-8"))


def config_schema() -> dict[str, Any]:
    """JSON schema of the config; the Helm chart embeds it under its `qhub:` key."""
    schema = QHubConfig.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "qhub-hub config"
    return schema
