"""Which dynamic uids the hub has handed out, so that two identity-provider users never share one.

Users listed in security.users have their uid in the config. Everyone else gets a uid from
`security.dynamic_ids` (rule in `qhub_hub.policy`): the hash of the username picks a start, and the
first uid that nobody else holds wins. "Nobody else holds" needs memory of past assignments:

- the source of truth is each user's auth_state (``auth_state["qhub"]["uid"]``), written at login
  by the qhub authenticators, encrypted in the hub database like the rest of auth_state;
- at the first need after a hub start, the registry reads every user's auth_state once and keeps
  ``uid -> username`` in memory. The hub is one process with one event loop, and choosing a free
  uid and recording it happen with no `await` in between, so two logins at the same moment cannot
  pick the same uid.

A recorded uid stays the user's own as long as it lies in the current dynamic range and is not a
config uid; otherwise (an admin moved the range) the user gets a new one and a warning is logged.
A deleted hub user's uid can be handed to someone else after the next hub restart: remove or
re-own their files when deleting them. Without auth_state (no ``JUPYTERHUB_CRYPT_KEY``) nothing is
persisted; the hash rule then gives the same uid after a restart unless two names collided.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from .config import QHubConfig
from .policy import index_of, plan_for

_log = logging.getLogger("qhub_hub")


class DynamicUidRegistry:
    def __init__(self) -> None:
        self._by_uid: dict[int, str] = {}
        self._by_name: dict[str, int] = {}
        self._loaded = False
        self._scan: asyncio.Future | None = None

    @property
    def taken(self) -> dict[int, str]:
        return dict(self._by_uid)

    def record(self, uid: int, username: str) -> bool:
        """Remember `uid` as `username`'s; False if another user already holds it."""
        holder = self._by_uid.get(uid)
        if holder is not None and holder != username:
            return False
        old = self._by_name.get(username)
        if old is not None and old != uid:
            self._by_uid.pop(old, None)
        self._by_uid[uid] = username
        self._by_name[username] = uid
        return True

    async def load(self, db: Any) -> None:
        """Read the recorded uids of every hub user once (decrypting their auth_state); requests
        arriving during the scan wait for the same scan."""
        if self._loaded or db is None:
            self._loaded = self._loaded or db is None
            return
        if self._scan is None:
            self._scan = asyncio.ensure_future(self._read(db))
        scan = self._scan
        try:
            await asyncio.shield(scan)
        except Exception:
            if self._scan is scan:
                self._scan = None  # try again at the next need
            raise

    async def _read(self, db: Any) -> None:
        from jupyterhub import orm
        from jupyterhub.crypto import EncryptionUnavailable, InvalidToken, decrypt

        rows = (db.query(orm.User.name, orm.User.encrypted_auth_state)
                .filter(orm.User.encrypted_auth_state.isnot(None)).all())
        for name, encrypted in rows:
            try:
                state = await decrypt(encrypted)
            except (ValueError, InvalidToken, EncryptionUnavailable) as e:
                _log.warning("cannot read the auth_state of %s to find its uid: %s", name, e)
                continue
            uid = ((state or {}).get("qhub") or {}).get("uid") if isinstance(state, dict) else None
            if isinstance(uid, int) and not self.record(uid, name):
                _log.error("users %s and %s both have uid %d in their auth_state; %s will get a "
                           "new uid at its next spawn", self._by_uid[uid], name, uid, name)
        self._loaded = True

    async def uid_for(
        self, config: QHubConfig, username: str, db: Any, *, recorded: int | None = None
    ) -> int:
        """The dynamic uid of `username`: the one on record if still valid, else a new free one."""
        await self.load(db)
        # from here on no await: choosing and recording a uid is atomic on the event loop
        dyn = config.security.dynamic_ids
        valid = range(dyn.uid_start, dyn.uid_start + dyn.uid_count)
        config_uids = index_of(config).config_uids
        for candidate in (recorded, self._by_name.get(username)):
            if candidate is None:
                continue
            usable = candidate in valid and candidate not in config_uids
            if usable and self.record(candidate, username):
                return candidate
            _log.warning("uid %s recorded for %s is no longer usable (outside "
                         "security.dynamic_ids, a config uid, or held by another user); "
                         "assigning a new one", candidate, username)
        uid = plan_for(config, username, (), taken_uids=self._by_uid).uid
        self.record(uid, username)
        return uid


REGISTRY = DynamicUidRegistry()  # one hub process, one registry
