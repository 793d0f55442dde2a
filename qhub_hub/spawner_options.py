"""The plan-driven part every qhub spawner shares: which profiles a user may start, enforced.

Usage: put `PlanSpawnerMixin` *before* the spawner base class::

    class QHubLocalSpawner(PlanSpawnerMixin, LocalProcessSpawner):
        async def start(self):
            plan = self.qhub_user_plan          # set by the checks below, before start() runs
            profile = self.qhub_profile         # JupyterLabProfile; None: config has no profiles
            ...                                 # run the server as plan.uid / plan.gid ...
            return await super().start()

What the mixin does:

- `qhub_config` is the current config (`hub_identity.get_config`, reloaded when the file changes;
  file from `qhub_config_path` or $QHUB_CONFIG); `await qhub_plan()` computes the `UserPlan` of
  `self.user` now.
- The spawn form (`options_form`) lists exactly the profiles the plan allows; a user allowed none
  gets a 403 page saying so. `options_from_form` turns the form into ``{"profile": slug}``.
- `apply_user_options` (JupyterHub >= 5.3 runs it before every spawn, with the options from the
  form, from a REST ``POST /users/<name>/server`` body, or the saved ones on a restart) runs
  `qhub_apply_user_options`: `profile_choice.choose_profile` decides, a refusal becomes
  `tornado.web.HTTPError` 403 (not allowed) or 400 (unknown slug) with a message the user can read.
  On success it sets `qhub_profile` and `qhub_user_plan` and calls the hook
  `qhub_apply_profile(profile, plan)` (override it to apply the profile's resources).
- `start()` checks again (in case an admin replaced `apply_user_options`), then calls the base
  class' start. A subclass overriding `start` must call ``super().start()``.
- `get_env()` adds, on top of the base environment and the profile's `environment`, the managed
  variables a profile can never override: `server_env.server_environment(config, plan)` and
  ``DASK_GATEWAY__ADDRESS/PROXY_ADDRESS/PUBLIC_ADDRESS/AUTH__TYPE`` from the traitlets below.
  Subclasses add their own managed variables by overriding `qhub_managed_environment`.

A config with no `profiles.jupyterlab` at all shows no form and starts with the spawner's defaults.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import logging
import re
from collections import deque
from collections.abc import Mapping
from typing import Any

from jupyterhub.utils import maybe_future
from tornado import web
from traitlets import Unicode, default
from traitlets.config import LoggingConfigurable

from .config import JupyterLabProfile, QHubConfig
from .gateway.hub_service import user_server_environment
from .hub_identity import get_config, plan_for_hub_user
from .policy import UserPlan
from .profile_choice import ProfileRefused, choose_profile
from .server_env import server_environment
from .usage import hub as usage
from .user_options import known_options, user_options_problem

# Names a profile's `environment` may not set: the hub, the plan and the platform own them.
MANAGED_ENV = re.compile(
    r"^(JUPYTERHUB_|JPY_|QHUB_|DASK_GATEWAY__|NSS_WRAPPER_|JUPYTER_IMAGE)"
    r"|^(LD_PRELOAD|HOME|USER|LOGNAME|SHELL)$"
)


_RECENT_REFUSALS: deque[str] = deque(maxlen=64)  # str() of recent 4xx refusals, for the log filter


class SpawnRefused(web.HTTPError):
    """An HTTP error whose message JupyterHub shows as is (spawn page, error page and REST JSON)."""

    def __init__(self, status: int, message: str):
        super().__init__(status, "%s", message)
        self.jupyterhub_message = message
        self.message = message
        if 400 <= status < 500:
            _RECENT_REFUSALS.append(str(self))


class RefusalLogFilter(logging.Filter):
    """Drops JupyterHub's error records about a spawn the plan refused (4xx).

    JupyterHub logs every exception of ``apply_user_options`` with its traceback, then the failed
    spawn at error level. A refusal (a profile the user may not use, an unknown option) is the
    request's fault, not the hub's: the spawner logs it once, at warning level, and these two
    records are dropped. Real failures (5xx, anything else) are logged as before.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, SpawnRefused):
            return not 400 <= error.status_code < 500
        if record.levelno >= logging.ERROR and str(record.msg).startswith("Error starting "):
            message = record.getMessage()
            return not any(message.endswith(refusal) for refusal in _RECENT_REFUSALS)
        return True


def quiet_refusals(log: logging.Logger | logging.LoggerAdapter) -> None:
    """Install `RefusalLogFilter` on the spawner's logger and on Tornado's application logger,
    which JupyterHub's `User` logs spawn failures to (once each)."""
    from tornado.log import app_log

    for logger in (log.logger if isinstance(log, logging.LoggerAdapter) else log, app_log):
        if not any(isinstance(f, RefusalLogFilter) for f in logger.filters):
            logger.addFilter(RefusalLogFilter())


def refused(e: ProfileRefused) -> SpawnRefused:
    return SpawnRefused(e.status, e.message)


async def _options_form(spawner: PlanSpawnerMixin) -> str:
    return await spawner.qhub_options_form()


def _options_from_form(formdata: Mapping[str, list[str]]) -> dict[str, Any]:
    slug = (formdata.get("profile") or [""])[0].strip()
    return {"profile": slug} if slug else {}


async def _apply_user_options(spawner: PlanSpawnerMixin, user_options: Mapping[str, Any]) -> None:
    await spawner.qhub_apply_user_options(user_options)


def render_profile_form(profiles: list[JupyterLabProfile], selected: str) -> str:
    """Radio buttons for `profiles` (HTML-escaped), `selected` checked."""
    rows = []
    for profile in profiles:
        slug = html.escape(profile.profile_slug, quote=True)
        checked = " checked" if profile.profile_slug == selected else ""
        description = html.escape(profile.description)
        if description:
            description = f'<br><span class="qhub-profile-description">{description}</span>'
        rows.append(
            f'<label class="qhub-profile" for="profile-{slug}" style="display:block;margin:.5em 0">'
            f'<input type="radio" name="profile" id="profile-{slug}" value="{slug}"{checked}> '
            f"<strong>{html.escape(profile.display_name)}</strong>{description}</label>"
        )
    head = '<div class="qhub-profiles"><p>Choose a server profile:</p>'
    return "\n".join([head, *rows, "</div>"])


class PlanSpawnerMixin(LoggingConfigurable):
    """Offer and enforce the profiles of the user's plan (see the module docstring)."""

    qhub_config_path = Unicode(
        "",
        config=True,
        help="Path of the qhub config file. Empty (default): the environment variable QHUB_CONFIG. "
        "The file is re-read when it changes; an invalid edit is logged and the previous config "
        "stays in force.",
    )
    dask_gateway_address = Unicode(
        "",
        config=True,
        help="Dask Gateway API URL given to user servers as DASK_GATEWAY__ADDRESS so that "
        "`Gateway()` needs no arguments, e.g. 'http://proxy-public/services/dask-gateway'. "
        "Empty (default): no DASK_GATEWAY__* variables are set.",
    )
    dask_gateway_proxy_address = Unicode(
        "",
        config=True,
        help="Dask Gateway scheduler proxy address given as DASK_GATEWAY__PROXY_ADDRESS, e.g. "
        "'gateway://traefik-qhub-dask-gateway:80'. Empty (default): same as dask_gateway_address.",
    )
    dask_gateway_public_address = Unicode(
        "",
        config=True,
        help="Dask Gateway URL as users' browsers reach it (dashboard links), given as "
        "DASK_GATEWAY__PUBLIC_ADDRESS, e.g. '/services/dask-gateway/'. Empty (default): same as "
        "dask_gateway_address.",
    )

    # True where the gateway's cluster options take `server_profile` (its Kubernetes rendering)
    qhub_gateway_knows_server_profiles = False
    qhub_profile: JupyterLabProfile | None = None
    qhub_user_plan: UserPlan | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        quiet_refusals(self.log)

    @default("options_form")
    def _qhub_options_form_default(self) -> Any:
        return _options_form

    @default("options_from_form")
    def _qhub_options_from_form_default(self) -> Any:
        return _options_from_form

    @default("apply_user_options")
    def _qhub_apply_user_options_default(self) -> Any:
        return _apply_user_options

    # --- the plan ---------------------------------------------------------------------------------

    @property
    def qhub_config(self) -> QHubConfig:
        return get_config(self.qhub_config_path or None, log=self.log)

    async def qhub_plan(self) -> UserPlan:
        """The plan of `self.user` under the current config, computed now."""
        return await plan_for_hub_user(self.qhub_config, self.user)

    # --- the form -------------------------------------------------------------------------------

    async def qhub_options_form(self) -> str:
        config = self.qhub_config
        if not config.profiles.jupyterlab:
            return ""
        plan = await self.qhub_plan()
        self._qhub_refuse_unadmitted(plan)
        try:
            default_profile = choose_profile(config, plan, {})
        except ProfileRefused as e:
            raise refused(e) from None
        selected = default_profile.profile_slug
        saved = (self.user_options or {}).get("profile")
        if isinstance(saved, str) and saved in plan.profile_slugs:
            selected = saved
        return (render_profile_form(list(plan.jupyterlab_profiles), selected)
                + usage.budget_html(self, config, plan))  # "group ml: used 12.5 of 40 GPU-hours ..."

    # --- enforcing the choice -----------------------------------------------------------------

    def _qhub_refuse_unadmitted(self, plan: UserPlan) -> None:
        if not plan.may_log_in:
            raise SpawnRefused(403, f"{plan.username!r} is not admitted by the platform's config "
                                    "any more, so no server can be started. Ask an admin to add "
                                    "you to security.users or to a group.")

    async def qhub_apply_user_options(
        self, user_options: Mapping[str, Any] | None
    ) -> JupyterLabProfile | None:
        """Decide the profile for `user_options` from the plan; refuse with 403/400 (413 when
        they are too large)."""
        problem = user_options_problem(user_options)
        if problem is not None:
            self._qhub_keep_known_options(user_options)
            self.log.warning("Refusing to start %s's server: %s", self.user.name, problem[1])
            raise SpawnRefused(*problem)
        config = self.qhub_config
        plan = await self.qhub_plan()
        self._qhub_refuse_unadmitted(plan)
        profile: JupyterLabProfile | None = None
        if config.profiles.jupyterlab:
            try:
                profile = choose_profile(config, plan, user_options or {})
            except ProfileRefused as e:
                self.log.warning("Refusing to start %s's server: %s", plan.username, e.message)
                self._qhub_keep_known_options(user_options, kept={})  # a refused choice is not kept
                raise refused(e) from None
        elif (user_options or {}).get("profile"):
            raise SpawnRefused(400, "This platform defines no server profiles; start the server "
                                    "without choosing one.")
        self.qhub_profile = profile
        self.qhub_user_plan = plan
        await maybe_future(self.qhub_apply_profile(profile, plan))
        try:  # limits (qhub_hub.usage): checked and the session recorded, or refused with figures
            usage.admit_server(self, config, plan, profile)
        except usage.Refusal as e:
            self.log.warning("Refusing to start %s's server: %s", plan.username, e.message)
            raise SpawnRefused(403, e.message) from None
        return profile

    def _qhub_keep_known_options(self, user_options: Mapping[str, Any] | None,
                                 kept: dict[str, Any] | None = None) -> None:
        """JupyterHub saved the request's options (the next start's defaults) before asking us:
        keep only the known keys, or `kept`."""
        orm_spawner = getattr(self, "orm_spawner", None)
        if orm_spawner is None or orm_spawner.user_options != user_options:
            return
        from sqlalchemy.orm import object_session

        orm_spawner.user_options = known_options(user_options) if kept is None else kept
        self.user_options = dict(orm_spawner.user_options)
        session = object_session(orm_spawner)
        if session is not None:
            session.commit()

    def qhub_apply_profile(self, profile: JupyterLabProfile | None, plan: UserPlan) -> Any:
        """Hook: apply the chosen profile to the spawner (may be async). Default: nothing."""

    async def start(self) -> Any:
        await self.qhub_apply_user_options(self.user_options)
        return await maybe_future(super().start())

    def run_post_stop_hook(self) -> Any:
        usage.server_stopped(self)  # after every stop: user, admin, culler, dead server, failed start
        return super().run_post_stop_hook()

    # --- environment --------------------------------------------------------------------------

    def qhub_managed_environment(self) -> dict[str, str]:
        """Variables set from the plan and the platform; nothing else can override them."""
        plan = self.qhub_user_plan
        if plan is None:
            raise RuntimeError("the user's plan is computed in apply_user_options/start; "
                               "get_env() was called before")
        config = self.qhub_config
        env = server_environment(config, plan, room_key=self.qhub_videochat_room_key())
        if self.dask_gateway_address and config.dask_gateway.enabled:
            address = self.dask_gateway_address
            server_profile = self.qhub_profile.profile_slug if self.qhub_profile else None
            env.update(user_server_environment(
                address,
                self.dask_gateway_proxy_address or address,
                self.dask_gateway_public_address or address,
                # workers use the notebook's image: only the Kubernetes rendering has images
                server_profile=server_profile if self.qhub_gateway_knows_server_profiles else None,
            ))
        return env

    def qhub_videochat_room_key(self) -> bytes | None:
        """A key for group video room names, derived from the hub's cookie secret (kept across
        restarts by z2jh and by the embedded mode), so room names stay stable and unguessable."""
        secret = (getattr(self.user, "settings", None) or {}).get("cookie_secret")
        if not secret:
            return None
        secret = secret.encode() if isinstance(secret, str) else secret
        return hmac.new(secret, b"qhub-videochat-rooms", hashlib.sha256).digest()

    def qhub_profile_environment(self) -> dict[str, str]:
        """The chosen profile's `environment`, without the names the platform manages."""
        if self.qhub_profile is None:
            return {}
        env = {}
        slug = self.qhub_profile.profile_slug
        for key, value in self.qhub_profile.kubespawner_override.environment.items():
            if MANAGED_ENV.search(key):
                self.log.warning("Profile %r may not set %s (managed); ignored", slug, key)
                continue
            env[key] = value
        return env

    def get_env(self) -> dict[str, str]:
        env = super().get_env()
        env.update(self.qhub_profile_environment())
        env.update(self.qhub_managed_environment())
        return env
