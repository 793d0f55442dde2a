"""The kernel manager of embedded-mode user servers: every kernel starts with the peer guard.

`QHubLocalSpawner` starts each server with ``--MappingKernelManager.kernel_manager_class`` naming
`GuardedKernelManager` and ``QHUB_PEER_GUARD`` naming the built library (`peer_guard.py`). Each
kernel (and each restart) then gets it in ``LD_PRELOAD``: the TCP ports a kernel or its children
listen on, such as the debugger's debugpy, refuse every other user. The server process itself is
not preloaded (its port already needs its owner's hub token). Without ``QHUB_PEER_GUARD`` (the
single-user demo mode) kernels start as usual.
"""

from __future__ import annotations

import os
from typing import Any

from jupyter_server.services.kernels.kernelmanager import ServerKernelManager

from .peer_guard import VARIABLE, guarded_env


class GuardedKernelManager(ServerKernelManager):
    """A Jupyter Server kernel manager whose kernels preload the peer guard."""

    async def _async_pre_start_kernel(self, **kw: Any) -> tuple[list[str], dict[str, Any]]:
        # jupyter_client's one step that assembles the launch arguments (start and restart)
        kernel_cmd, kw = await super()._async_pre_start_kernel(**kw)
        library = os.environ.get(VARIABLE, "")
        if library:
            kw["env"] = guarded_env(dict(kw.get("env") or os.environ), library)
        return kernel_cmd, kw
