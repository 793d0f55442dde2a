"""The command of an embedded-mode user server: ``jupyterhub-singleuser`` without one wasted step.

    python -P -m qhub_hub.server_start /opt/qhub-hub/bin/jupyterhub-singleuser [its options]

Importing ``jupyterlab.labapp`` computes JupyterLab's version through an `AppOptions` whose npm
registry default runs ``node yarn.js config --json`` (about 0.4 CPU seconds, a third of a whole
server start once the environment is slimmed, see scripts/setup.d/zz-server-start.sh). That
registry is only used to install or build npm extensions, which a server of the hub's root-owned
environment never does (the environment also turns the build check and the install UI off). So
JupyterLab is imported first with the folders that hold ``node`` left out of PATH, then PATH is
restored exactly and the environment's own ``jupyterhub-singleuser`` script runs unchanged (as
``python <script>`` would run it): terminals, kernels and user code see the full PATH, node included.
Nothing else runs a program while JupyterLab is imported.

A failure here (no script given, an import error) ends the process with an error, which fails the
spawn like any failure of ``jupyterhub-singleuser``.
"""

from __future__ import annotations

import os
import runpy
import sys
from collections.abc import Iterator
from contextlib import contextmanager

NODE_NAMES = ("node", "nodejs")


def _holds_node(folder: str) -> bool:
    return any(os.access(os.path.join(folder, name), os.X_OK) for name in NODE_NAMES)


@contextmanager
def node_hidden() -> Iterator[None]:
    """PATH without the folders that hold node (or nodejs) inside the block; restored after."""
    had_path = "PATH" in os.environ
    original = os.environ.get("PATH", "")
    os.environ["PATH"] = os.pathsep.join(
        folder for folder in original.split(os.pathsep) if folder and not _holds_node(folder))
    try:
        yield
    finally:
        if had_path:
            os.environ["PATH"] = original
        else:
            del os.environ["PATH"]


def import_jupyterlab() -> None:
    """Import JupyterLab's server application without its npm registry lookup (see above)."""
    with node_hidden():
        import jupyterlab.labapp  # noqa: F401 - imported for its side effect, once


def main(argv: list[str]) -> None:
    """Run the server script `argv[0]` with the options `argv[1:]`, JupyterLab imported first."""
    if not argv or not os.path.isfile(argv[0]):
        sys.exit("qhub_hub.server_start: give the server's script (e.g. "
                 f"{sys.prefix}/bin/jupyterhub-singleuser) and its options")
    import_jupyterlab()
    sys.argv = list(argv)
    runpy.run_path(argv[0], run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
