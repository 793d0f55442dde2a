"""Jitsi room names: safe, namespaced with the configured prefix, one per config group.

Pure functions, no I/O. A room name is what Jitsi sees (``<prefix>-group-<group>`` or
``<prefix>-room-<name>``); it only ever holds ``[a-z0-9_-]`` so it is safe in a URL path, in an
XMPP room name and in a CSS/HTML attribute.

- Group rooms keep a clean group name as it is (config group names are Linux group names, so they
  normally are). Any other name becomes ``<slug>--<hash>``, the hash taken from the exact group
  name: clean names never contain ``--``, so two groups never share a room.
- Ad-hoc rooms are friendly on purpose: "Pairing with Bob" and "pairing-with-bob" meet in the
  same room. A name with nothing usable in it ("会议") gets a hash instead. Without a name, a
  private room gets a random, unguessable name to share with the people to invite.
- ``group`` and ``room`` are separate namespaces: an ad-hoc room can never be a group's room.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import unicodedata
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Literal

PREFIX = re.compile(r"^[A-Za-z0-9-]{1,40}$")  # the same rule as the qhub config's room_prefix
CLEAN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,47}$")
ROOM_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,127}$")
MAX_LABEL = 80


@dataclass(frozen=True)
class Room:
    name: str  # the Jitsi room name
    label: str  # what the user reads
    kind: Literal["group", "adhoc"]
    group: str | None = None

    def to_json(self) -> dict[str, str | None]:
        return asdict(self)


def _hash(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
    return base64.b32encode(digest)[:10].decode().lower()


def slug(text: str, limit: int = 40) -> str:
    """``text`` reduced to ``[a-z0-9_-]``: accents folded, other runs become one ``-``."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    reduced = re.sub(r"[^a-z0-9_]+", "-", folded).strip("-_")
    return reduced[:limit].rstrip("-_")


def _clean_or_hashed(text: str) -> str:
    if CLEAN.fullmatch(text) and "--" not in text:
        return text
    return f"{slug(text) or 'x'}--{_hash(text)}"


def check_prefix(prefix: str) -> str:
    """The prefix, normalized to lowercase; ValueError naming the setting when it is unusable."""
    if not PREFIX.fullmatch(prefix):
        raise ValueError(
            f"room prefix {prefix!r} is not usable: use 1 to 40 letters, digits or '-' "
            "(qhub config: videochat.room_prefix)"
        )
    return prefix.lower()


def group_room(prefix: str, group: str) -> Room:
    return Room(
        name=f"{check_prefix(prefix)}-group-{_clean_or_hashed(group)}",
        label=group,
        kind="group",
        group=group,
    )


def group_rooms(prefix: str, groups: list[str] | tuple[str, ...],
                given: Mapping[str, str] | None = None) -> list[Room]:
    """One room per group, in the order given, duplicates and empty names dropped.

    `given` maps groups to room names the hub chose (unguessable ones); a name is used when it is
    safe and under ``<prefix>-group-``, otherwise the group gets its plain room.
    """
    own = f"{check_prefix(prefix)}-group-"
    seen: dict[str, Room] = {}
    for group in groups:
        group = group.strip()
        if group and group not in seen:
            name = (given or {}).get(group, "")
            safe = ROOM_NAME.fullmatch(name) and name.startswith(own)
            seen[group] = Room(name=name, label=group, kind="group", group=group) if safe \
                else group_room(prefix, group)
    return list(seen.values())


def adhoc_room(prefix: str, name: str | None = None) -> Room:
    """An ad-hoc room from what the user typed; without a name, a private room nobody can guess."""
    prefix = check_prefix(prefix)
    label = " ".join((name or "").split())[:MAX_LABEL]
    if not label:
        token = secrets.token_hex(8)
        name = f"{prefix}-room-private-{token}"
        return Room(name=name, label=f"private {token[:6]}", kind="adhoc")
    part = slug(label) or f"x--{_hash(label)}"
    return Room(name=f"{prefix}-room-{part}", label=label, kind="adhoc")
