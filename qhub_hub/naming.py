"""Safe Unix names for hub usernames.

A hub username may be anything an identity provider sends (``Alice@Example.com``, ``root``,
``..``, ``a/b``, 200 characters of unicode). The Unix name is used for the account, the home folder
and the conda-store namespace, so it must be a valid Linux user name that cannot name a system
account or escape the home root, and two hub users must never share one.

Rule (documented for admins in README):
- a *clean* name is kept as it is: ``^[a-z][a-z0-9_-]{0,31}$``, no ``--``, not a reserved system name;
- any other name becomes ``<prefix>--<hash>``: up to 20 characters of the name reduced to
  ``[a-z0-9_-]`` (``u`` when nothing is left), ``--``, then the first 10 characters of the base32
  SHA-256 of the exact username.
Clean names never contain ``--`` and escaped ones always do, so the two kinds cannot collide;
escaped names collide only if SHA-256 does on 50 bits.
"""

from __future__ import annotations

import base64
import hashlib
import re

CLEAN = re.compile(r"[a-z][a-z0-9_-]{0,31}")

# Accounts a Debian or container base image ships, plus names with a meaning to the platform.
RESERVED = frozenset("""
root daemon bin sys sync games man lp mail news uucp proxy www-data backup list irc gnats nobody
nogroup _apt systemd-network systemd-resolve systemd-timesync systemd-coredump messagebus sshd
polkitd postfix ntp admin administrator jovyan conda shared home users staff sudo wheel adm tty
disk operator shadow utmp video audio plugdev netdev kvm render input docker lxd
""".split())


def unix_name(username: str) -> str:
    """The Unix account name for a hub username (see the module docstring for the rule)."""
    if CLEAN.fullmatch(username) and "--" not in username and username not in RESERVED:
        return username
    prefix = re.sub(r"[^a-z0-9_-]+", "-", username.lower()).strip("-_")
    prefix = re.sub(r"-{2,}", "-", prefix)[:20].rstrip("-_")
    if not prefix or not prefix[0].isalpha():
        prefix = "u" + prefix[:19]
    digest = base64.b32encode(hashlib.sha256(username.encode("utf-8", "surrogatepass")).digest())
    return f"{prefix}--{digest[:10].decode().lower()}"
