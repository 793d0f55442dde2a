import os

from conda import not_provided


def expand(path: str) -> str:
    return os.path.abspath(os.path.expanduser(os.path.expandvars(path)))


def strip_pkg_extension(path: str):
    for ext in (".conda", ".tar.bz2"):
        if path.endswith(ext):
            return path[: -len(ext)], ext
    return path, None


__all__ = ["expand", "strip_pkg_extension", "not_provided"]
