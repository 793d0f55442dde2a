"""Password rules that bcrypt imposes, said in words (the login form and `qhub-hub hash-password`).

bcrypt only reads the first 72 bytes of a password, and bcrypt >= 4.1 refuses longer ones with a
ValueError (which became an HTTP 500 on the login form, and a traceback in the CLI). Passwords are
measured in UTF-8 bytes: 72 ASCII characters, fewer accented or non-Latin ones.
"""

from __future__ import annotations

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
