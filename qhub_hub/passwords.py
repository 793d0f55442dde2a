"""Password rules that bcrypt imposes, said in words (the login form and `qhub-hub hash-password`).

bcrypt only reads the first 72 bytes of a password, and bcrypt >= 4.1 refuses longer ones with a
ValueError (which became an HTTP 500 on the login form, and a traceback in the CLI). Passwords are
measured in UTF-8 bytes: 72 ASCII characters, fewer accented or non-Latin ones.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

MAX_BYTES = 72


def password_bytes(password: str) -> bytes:
    return password.encode("utf-8", "surrogatepass")


def password_problem(password: str) -> str | None:
    """What is wrong with `password` for bcrypt, or None."""
    size = len(password_bytes(password))
    if size > MAX_BYTES:
        return (f"Passwords may be at most {MAX_BYTES} bytes long (bcrypt's limit); this one is "
                f"{size} bytes in UTF-8. Use a shorter password.")
    return None


def bcrypt_cost(hashed: str | bytes) -> int | None:
    """The cost (log2 of the rounds) of a bcrypt hash like ``$2b$12$...``; None if not one."""
    text = hashed.decode("ascii", "replace") if isinstance(hashed, bytes) else hashed
    parts = text.split("$")
    if len(parts) == 4 and parts[1] in ("2a", "2b", "2y") and parts[2].isdigit():
        return int(parts[2])
    return None


def usual_cost(hashes: Iterable[str | bytes], default: int = 12) -> int:
    """The cost most of `hashes` use (the highest among equals); `default` when there are none.

    A login for a name without a hash is checked against a dummy hash of this cost, so that it
    takes as long as a wrong password for a real user (no timing hint about which names exist).
    """
    counts = Counter(c for c in map(bcrypt_cost, hashes) if c is not None)
    if not counts:
        return default
    return max(counts, key=lambda cost: (counts[cost], cost))
