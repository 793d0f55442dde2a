"""Authenticators that apply the qhub config: who may log in, their groups, admin rights, ids.

`QHubAuthenticatorMixin` goes before any JupyterHub authenticator. At every login (and every
auth refresh, `Authenticator.auth_refresh_age`) it:

- collects the user's identity-provider groups (`qhub_idp_groups`: GitHub ``org`` and
  ``org:team``, the OIDC/Auth0 groups claim; none for passwords);
- computes the plan from the *current* config (`hub_identity.get_config`: edits apply without a
  hub restart) and refuses users the config does not admit with a 403 page that says why;
- returns the plan's config groups as the user's JupyterHub groups with ``manage_groups`` on, so a
  user removed from a group loses it at the next login or refresh; admin = member of an admin group;
- keeps in ``auth_state["qhub"]`` the identity-provider groups (the spawners recompute the plan
  from them) and, for reading, the uid, gid, gids and groups. A user not in security.users gets a
  dynamic uid from `uid_registry` at login.

The config decides admission. JupyterHub's own ``allowed_users``/``allow_all`` are not consulted
(set ``security.allow_unlisted_users`` instead); ``blocked_users`` still blocks.

Ready classes (entry points in pyproject.toml): `QHubPasswordAuthenticator` (``qhub-password``,
bcrypt hashes from security.users), `QHubGitHubOAuthenticator` (``qhub-github``),
`QHubAuth0OAuthenticator` (``qhub-auth0``), `QHubGenericOAuthenticator` (``qhub-oidc``). The OAuth
ones take client id/secret, callback URL, scopes and provider URLs from
``security.authentication.config`` as defaults (JupyterHub config still wins); those connection
settings are read when the hub starts.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
from collections.abc import Iterable, Mapping
from typing import Any

import bcrypt
from jupyterhub.auth import Authenticator
from oauthenticator.auth0 import Auth0OAuthenticator
from oauthenticator.generic import GenericOAuthenticator
from oauthenticator.github import GitHubOAuthenticator
from tornado import web
from traitlets import Unicode, default
from traitlets.config import LoggingConfigurable

from .config import Auth0Auth, GitHubAuth, OIDCAuth, QHubConfig
from .config_errors import ConfigError
from .hub_identity import AUTH_STATE_KEY, auth_state_summary, get_config, qhub_state
from .hub_request_limits import bounded_spawn_handlers
from .passwords import password_problem, usual_cost
from .plan_api import plan_handlers
from .policy import plan_for
from .uid_registry import REGISTRY
from .usage.pages import usage_handlers

_request_db: contextvars.ContextVar[Any] = contextvars.ContextVar("qhub_request_db", default=None)

# A valid bcrypt hash of a random password, of the cost most of the config's hashes use: checked
# against when the name has no hash, so that a wrong name takes as long as a wrong password (no
# hint about which names exist). Made at the first such login of a config, not at import.
_dummy: tuple[QHubConfig, bytes] | None = None
_dummy_by_cost: dict[int, bytes] = {}


def dummy_hash(config: QHubConfig) -> bytes:
    """The dummy hash for `config` (blocking: bcrypt; call it in a thread)."""
    global _dummy
    if _dummy is None or _dummy[0] is not config:
        cost = usual_cost(u.password for u in config.security.users.values() if u.password)
        if cost not in _dummy_by_cost:
            _dummy_by_cost[cost] = bcrypt.hashpw(os.urandom(16), bcrypt.gensalt(cost))
        _dummy = (config, _dummy_by_cost[cost])
    return _dummy[1]


class LoginRefused(web.HTTPError):
    """403 with a message JupyterHub shows on its error page."""

    def __init__(self, message: str):
        super().__init__(403, "%s", message)
        self.jupyterhub_message = message


def _refusal(username: str) -> LoginRefused:
    return LoginRefused(
        f"You signed in as {username!r}, but this platform's config does not give that account "
        "access. Ask an admin to add you to security.users, or to a group that is mapped in "
        "security.identity_provider_groups."
    )


class QHubAuthenticatorMixin(LoggingConfigurable):
    """Apply the qhub config to an authenticator (see the module docstring)."""

    qhub_config_path = Unicode(
        "",
        config=True,
        help="Path of the qhub config file. Empty (default): the environment variable QHUB_CONFIG. "
        "Users, groups and mappings are re-read when the file changes (no hub restart).",
    )

    @default("manage_groups")
    def _qhub_manage_groups(self) -> bool:
        return True

    @default("enable_auth_state")
    def _qhub_enable_auth_state(self) -> bool:
        # auth_state keeps the identity-provider groups and dynamic uids; it needs encryption
        # keys ($JUPYTERHUB_CRYPT_KEY or CryptKeeper.keys, which zero-to-jupyterhub generates)
        try:
            from jupyterhub.crypto import CryptKeeper

            return bool(CryptKeeper.instance().keys)
        except Exception:  # a broken key: JupyterHub itself reports it
            return bool(os.environ.get("JUPYTERHUB_CRYPT_KEY"))

    @property
    def qhub_config(self) -> QHubConfig:
        return get_config(self.qhub_config_path or None, log=self.log)

    def get_handlers(self, app: Any) -> list[tuple[str, type, dict[str, Any]]]:
        """The provider's login handlers, and the hub's plan endpoint (`qhub_hub.plan_api`)."""
        # usage's before the size-limited spawn routes: its server API handler is the size-limited
        # one that also notes a cull (`usage.stop_reason`); the first matching route wins
        return [*super().get_handlers(app), *plan_handlers(self.qhub_config_path),
                *usage_handlers(app, self.qhub_config_path), *bounded_spawn_handlers()]

    def qhub_auth_setting(self, auth_type: type, key: str, fallback: Any = None) -> Any:
        """`security.authentication.config.<key>` if the config uses `auth_type`, else `fallback`
        (also when the config cannot be read: trait defaults must not crash the hub)."""
        try:
            auth = self.qhub_config.security.authentication
        except ConfigError:
            return fallback
        value = getattr(auth.config, key, None) if isinstance(auth, auth_type) else None
        return fallback if value is None else value

    def qhub_scopes(self, auth_type: type, needed: list[str]) -> list[str]:
        """The scopes qhub needs plus the config's extra `scope` entries."""
        return list(dict.fromkeys([*needed, *self.qhub_auth_setting(auth_type, "scope", [])]))

    def check_allow_config(self) -> None:
        config = self.qhub_config  # fail at startup, not at the first login, on a broken config
        self.log.info("qhub: %d users and %d groups in the config; unlisted users %s",
                      len(config.security.users), len(config.security.groups),
                      "admitted" if config.security.allow_unlisted_users else "refused")
        if not self.enable_auth_state:
            self.log.warning("qhub: auth_state is off (no encryption key): identity-provider "
                             "groups are kept only as JupyterHub groups and dynamic uids are not "
                             "persisted; set JUPYTERHUB_CRYPT_KEY in production")

    # --- what the provider says ------------------------------------------------------------------

    def qhub_idp_groups(self, auth_model: Mapping[str, Any]) -> list[str]:
        """The identity provider's groups for this login; provider classes override."""
        return []

    async def check_allowed(self, username: str, auth_model: dict[str, Any] | None) -> bool:
        # qhub_apply (run by authenticate / update_auth_model before this) refused the others
        return auth_model is None or AUTH_STATE_KEY in (auth_model.get("auth_state") or {})

    # --- applying the config ------------------------------------------------------------------------

    def _qhub_db(self) -> Any:
        return _request_db.get() or getattr(self, "_deprecated_db_session", None)

    async def qhub_apply(self, auth_model: dict[str, Any], idp_groups: Iterable[str],
                         db: Any = None) -> dict[str, Any]:
        """Fill groups, admin and auth_state["qhub"] of `auth_model` from the current config.

        Raises `LoginRefused` when the config does not admit the user.
        """
        config = self.qhub_config
        name = auth_model["name"]
        idp_groups = sorted(set(idp_groups))
        plan = plan_for(config, name, idp_groups)  # admission does not depend on ids
        if not plan.may_log_in:
            self.log.warning("qhub: refusing %s: not admitted by the config (identity-provider "
                             "groups: %s)", name, ", ".join(idp_groups) or "none")
            raise _refusal(name)
        if not plan.in_config:  # only admitted users take a dynamic uid
            previous = qhub_state(auth_model.get("auth_state")).get("uid")
            uid = await REGISTRY.uid_for(config, name, db or self._qhub_db(),
                                         recorded=previous if isinstance(previous, int) else None)
            plan = plan_for(config, name, idp_groups, dynamic_uid=uid)
        auth_state = dict(auth_model.get("auth_state") or {})
        auth_state[AUTH_STATE_KEY] = auth_state_summary(plan, idp_groups)
        auth_model["auth_state"] = auth_state
        auth_model["groups"] = list(plan.group_names)
        auth_model["admin"] = plan.admin or name in self.admin_users  # admin_users: break-glass
        return auth_model


class QHubOAuthMixin(QHubAuthenticatorMixin):
    """The config applied inside oauthenticator's flow (`update_auth_model`, `get_user_groups`).

    A provider class names its config section type (`qhub_auth_type`) and the scopes qhub needs
    (`qhub_needed_scopes`); the connection settings below then default to the config's values,
    as oauthenticator's own ``client_id_env`` does for environment variables.
    """

    qhub_auth_type: type = type(None)  # GitHubAuth, Auth0Auth, OIDCAuth
    qhub_needed_scopes: tuple[str, ...] = ()

    @default("auth_state_groups_key")
    def _qhub_groups_key(self) -> str:
        return f"{AUTH_STATE_KEY}.groups"  # the plan's config groups, set by qhub_apply

    @default("scope")
    def _qhub_scope(self) -> list[str]:
        return self.qhub_scopes(self.qhub_auth_type, list(self.qhub_needed_scopes))

    @default("client_id")
    def _qhub_client_id(self) -> str:
        return self.qhub_auth_setting(self.qhub_auth_type, "client_id") or super()._client_id_default()

    @default("client_secret")
    def _qhub_client_secret(self) -> str:
        return self.qhub_auth_setting(self.qhub_auth_type, "client_secret") or super()._client_secret_default()

    @default("oauth_callback_url")
    def _qhub_callback(self) -> str:
        return self.qhub_auth_setting(self.qhub_auth_type, "oauth_callback_url") or os.environ.get(
            "OAUTH_CALLBACK_URL", "")

    async def authenticate(self, handler: Any, data: Any = None, **kwargs: Any) -> Any:
        token = _request_db.set(getattr(handler, "db", None))
        try:
            return await super().authenticate(handler, data, **kwargs)
        finally:
            _request_db.reset(token)

    async def update_auth_model(self, auth_model: dict[str, Any]) -> dict[str, Any]:
        auth_model = await super().update_auth_model(auth_model)
        auth_model = await self.qhub_collect(auth_model)
        return await self.qhub_apply(auth_model, self.qhub_idp_groups(auth_model))

    async def qhub_collect(self, auth_model: dict[str, Any]) -> dict[str, Any]:
        """Hook: fetch more about the user from the provider before the config is applied."""
        return auth_model


    async def refresh_user(self, user: Any, handler: Any = None, **kwargs: Any) -> Any:
        token = _request_db.set(getattr(user, "db", None))
        try:
            return await super().refresh_user(user, handler, **kwargs)
        except LoginRefused:
            self.log.warning("qhub: %s is no longer admitted by the config; login required", user.name)
            return False
        finally:
            _request_db.reset(token)


# --- passwords -------------------------------------------------------------------------------------


class QHubPasswordAuthenticator(QHubAuthenticatorMixin, Authenticator):
    """Local accounts: `security.users.<name>.password` holds a bcrypt hash (never plain text)."""

    async def authenticate(self, handler: Any, data: Mapping[str, str]) -> dict[str, Any] | None:
        username = (data.get("username") or "").strip()
        password = data.get("password") or ""
        problem = password_problem(password)  # bcrypt refuses these (it used to be a 500)
        if problem:
            self.log.warning("qhub: login as %r refused: %s", username, problem)
            error = web.HTTPError(400, "%s", problem)
            error.jupyterhub_message = problem
            raise error
        config = self.qhub_config
        user = config.security.users.get(username)
        hashed = user.password if user and user.password else None
        if hashed is None:
            hashed = await asyncio.to_thread(dummy_hash, config)
        if isinstance(hashed, str):
            hashed = hashed.encode()
        ok = await asyncio.to_thread(bcrypt.checkpw, password.encode("utf-8", "surrogatepass"), hashed)
        if not ok or user is None or not user.password:
            return None
        auth_model = {"name": username, "auth_state": {}, "admin": None}
        return await self.qhub_apply(auth_model, (), getattr(handler, "db", None))

    def normalize_username(self, username: str) -> str:
        return username  # names are exactly as written in security.users

    async def refresh_user(self, user: Any, handler: Any = None) -> Any:
        """Re-apply the current config: group and admin changes reach JupyterHub without a
        new login; a user removed from the config must log in again (and is refused)."""
        if user.name not in self.qhub_config.security.users:
            return False
        auth_state = await user.get_auth_state() if self.enable_auth_state else None
        model = {"name": user.name, "auth_state": auth_state or {}, "admin": None}
        try:
            return await self.qhub_apply(model, (), getattr(user, "db", None))
        except LoginRefused:
            return False


# --- GitHub --------------------------------------------------------------------------------------


class QHubGitHubOAuthenticator(QHubOAuthMixin, GitHubOAuthenticator):
    """GitHub login; identity-provider groups are ``<org>`` and ``<org>:<team-slug>``.

    Organizations in ``security.authentication.config.allowed_organizations`` (``org`` or
    ``org:team``) admit their members even without a mapped group.
    """

    qhub_auth_type = GitHubAuth
    qhub_needed_scopes = ("read:user", "read:org")

    @default("populate_teams_in_auth_state")
    def _qhub_teams(self) -> bool:
        return True

    @default("github_url")
    def _qhub_github_url(self) -> str:
        url = self.qhub_auth_setting(GitHubAuth, "github_url")
        return url.rstrip("/") if url else super()._github_url_default()

    async def qhub_collect(self, auth_model: dict[str, Any]) -> dict[str, Any]:
        # upstream fetched the teams (populate_teams_in_auth_state); add the organizations
        state = auth_model["auth_state"]
        token = state["token_response"]
        state["orgs"] = await self._paginated_fetch(
            f"{self.github_api}/user/orgs?per_page=100", token["access_token"],
            token.get("token_type", "bearer"))
        return auth_model

    def qhub_idp_groups(self, auth_model: Mapping[str, Any]) -> list[str]:
        state = auth_model.get("auth_state") or {}
        groups = {o["login"] for o in state.get("orgs") or [] if isinstance(o, Mapping)}
        for team in state.get("teams") or []:
            org = (team.get("organization") or {}).get("login")
            if org and team.get("slug"):
                groups.update({org, f"{org}:{team['slug']}"})
        return sorted(groups)


# --- Auth0 and generic OIDC -----------------------------------------------------------------------


def _claim_groups(auth_model: Mapping[str, Any], user_key: str, claim: str | None) -> list[str]:
    if not claim:
        return []
    user_info: Any = (auth_model.get("auth_state") or {}).get(user_key) or {}
    if claim in user_info:  # Auth0 namespaced claims ("https://acme.org/groups") contain dots
        value = user_info[claim]
    else:  # a nested claim, "realm_access.roles"
        value = user_info
        for part in claim.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(v).lstrip("/") for v in value if isinstance(v, str | int)]
    return []


class QHubAuth0OAuthenticator(QHubOAuthMixin, Auth0OAuthenticator):
    """Auth0 login; groups from the userinfo claim named in config ``groups_claim``."""

    qhub_auth_type = Auth0Auth
    qhub_needed_scopes = ("openid", "email", "profile")

    @default("auth0_domain")
    def _qhub_auth0_domain(self) -> str:
        domain = self.qhub_auth_setting(Auth0Auth, "auth0_domain")
        if domain:
            return domain
        sub = self.qhub_auth_setting(Auth0Auth, "auth0_subdomain")
        return f"{sub}.auth0.com" if sub else super()._auth0_domain_default()

    def qhub_idp_groups(self, auth_model: Mapping[str, Any]) -> list[str]:
        claim = self.qhub_auth_setting(Auth0Auth, "groups_claim")
        return _claim_groups(auth_model, self.user_auth_state_key, claim)

    async def check_allowed(self, username: str, auth_model: dict[str, Any] | None) -> bool:
        if auth_model is not None:  # Auth0's rule, kept: only verified emails
            user_info = auth_model["auth_state"][self.user_auth_state_key]
            if not user_info.get("email_verified") and not self.allow_unverified_email:
                raise LoginRefused(f"Your Auth0 email {user_info.get('email')!r} is not verified; "
                                   "verify it, then sign in again.")
        return await super().check_allowed(username, auth_model)


class QHubGenericOAuthenticator(QHubOAuthMixin, GenericOAuthenticator):
    """Any OpenID Connect provider (Keycloak, ...); groups from the config's ``groups_claim``
    (Keycloak's full group paths like ``/analysts`` lose their leading slash)."""

    qhub_auth_type = OIDCAuth
    qhub_needed_scopes = ("openid", "profile", "email")

    @default("authorize_url")
    def _qhub_authorize_url(self) -> str:
        return self.qhub_auth_setting(OIDCAuth, "authorize_url") or super()._authorize_url_default()

    @default("token_url")
    def _qhub_token_url(self) -> str:
        return self.qhub_auth_setting(OIDCAuth, "token_url") or super()._token_url_default()

    @default("userdata_url")
    def _qhub_userdata_url(self) -> str:
        return self.qhub_auth_setting(OIDCAuth, "userdata_url") or super()._userdata_url_default()

    @default("username_claim")
    def _qhub_username_claim(self) -> str:
        return self.qhub_auth_setting(OIDCAuth, "username_claim", "preferred_username")

    @default("login_service")
    def _qhub_login_service(self) -> str:
        return os.environ.get("LOGIN_SERVICE", "your organization's sign-in")

    def qhub_idp_groups(self, auth_model: Mapping[str, Any]) -> list[str]:
        claim = self.qhub_auth_setting(OIDCAuth, "groups_claim", "groups")
        return _claim_groups(auth_model, self.user_auth_state_key, claim)
