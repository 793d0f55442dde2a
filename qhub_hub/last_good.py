"""The last good copy of the qhub config, for a process that starts while the file is invalid.

A running component keeps the config it last loaded when an edit breaks the file
(`hub_identity.get_config`). A component that *starts* while the file is invalid (a hub restart, a
gateway or conda-store process, the SSH check, `qhub-hub local status|restart|down`) has nothing in
memory: it loads the copy saved when the file was last valid, and says so. The embedded platform
names the copy in ``$QHUB_LAST_GOOD_CONFIG`` (``<state>/config/last-good.yaml``) for every
component; `local up` refreshes it, and so does every process that loads a new valid version.

The copy is only ever replaced by a file that itself loads as a valid config (with the original's
folder as the base of relative paths), so it is valid whenever it exists. It holds what the config
holds (password hashes, OAuth secrets): it is written 0600, by root.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .config import QHubConfig, load_config
from .config_errors import ConfigError

LAST_GOOD_ENV = "QHUB_LAST_GOOD_CONFIG"


def last_good_path() -> Path | None:
    """The copy named by $QHUB_LAST_GOOD_CONFIG, or None when no copy is kept."""
    value = os.environ.get(LAST_GOOD_ENV, "")
    return Path(value) if value else None


def save_last_good(source: str | os.PathLike, copy: str | os.PathLike | None = None) -> bool:
    """Copy `source` to `copy` (default: $QHUB_LAST_GOOD_CONFIG) if it is a valid config and
    differs from the current copy. True when the copy was replaced. Never raises for I/O: a process
    that cannot write the state dir keeps working without refreshing the copy."""
    copy = Path(copy) if copy else last_good_path()
    if copy is None:
        return False
    source = Path(source)
    try:
        data = source.read_bytes()
        if copy.exists() and copy.read_bytes() == data:
            return False
        copy.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".last-good-", suffix=".yaml", dir=copy.parent)
    except OSError:
        return False
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        load_config(tmp, base_dir=source.absolute().parent)  # only a valid file becomes the copy
        os.replace(tmp, copy)
        return True
    except (ConfigError, OSError):
        return False
    finally:
        Path(tmp).unlink(missing_ok=True)


@dataclass(frozen=True)
class Loaded:
    """A config to run with, and why it is not the file's when it is not."""

    config: QHubConfig
    problem: ConfigError | None = None  # the file's problems (then `config` is the copy's)
    copy: Path | None = None  # the copy in use

    @property
    def from_copy(self) -> bool:
        return self.problem is not None

    def note(self, path: str | os.PathLike) -> str:
        """One paragraph saying that the copy is in use, and why (empty when it is not)."""
        if not self.from_copy:
            return ""
        return (f"{path} is not a valid qhub config:\n{self.problem}\n"
                f"Running with the last good copy {self.copy} until it is fixed "
                f"(`qhub-hub validate {path}`).")


def load_with_fallback(path: str | os.PathLike, copy: str | os.PathLike | None = None) -> Loaded:
    """The config in `path`, refreshing the copy; if `path` is invalid, the last good copy.

    Raises the file's `ConfigError` when it is invalid and there is no copy.
    """
    copy = Path(copy) if copy else last_good_path()
    try:
        config = load_config(path)
    except ConfigError as problem:
        if copy is None or not copy.exists():
            raise
        try:
            config = load_config(copy, base_dir=Path(path).absolute().parent)
        except ConfigError:
            raise problem from None
        return Loaded(config, problem, copy)
    if copy is not None:
        save_last_good(path, copy)
    return Loaded(config)


def load_last_good(path: str | os.PathLike) -> tuple[QHubConfig, Path] | None:
    """The last good copy of the config file `path` and where it is (None: no usable copy)."""
    copy = last_good_path()
    if copy is None or not copy.exists():
        return None
    try:
        return load_config(copy, base_dir=Path(path).absolute().parent), copy
    except ConfigError:
        return None
