"""What the embedded gateway's Dask starter pre-imports, and what each forked process re-reads.

The gateway starts the schedulers and nannies of clusters in the **server environment** (the
platform's own root-owned prefix, the one the gateway itself runs) by forking them from a root
process that has imported this code once (`qhub_hub.local.server_starter --preimport
qhub_hub.gateway.dask_preimport`); see `QHubLocalBackend.preimported_starter`. Only that
environment: the code imported here is the platform's, never a conda-store environment's (importing
a user-built environment as root would run its code as root), so clusters in built environments
start their own Python as before.

What a fresh ``python -m dask scheduler`` computes from its environment and a fork would keep from
the starter's, and how each child gets its own (`after_environment`, run as the user, with the
user's environment, before any Dask code runs):

- Dask's configuration (`dask.config`): its YAML folders (``~/.config/dask`` of the user's HOME,
  ``DASK_CONFIG``, ``DASK_ROOT_CONFIG``) are found again and the config is read again from them and
  from the ``DASK_*`` variables (TLS files, encryption, the worker start method...).
- Values distributed reads from that config at import (`FIXED_AT_IMPORT`: logging, pdb-on-err,
  shard and offload sizes, dashboard routes and tools, profile interval): if the user's config
  gives any of them another value than the starter had, the process is started as a fresh
  interpreter instead (`NeedsFreshInterpreter`), which honours it.
- Bokeh's settings that it reads at import (``BOKEH_PY_LOG_LEVEL``, ``BOKEH_SECRET_KEY``,
  ``BOKEH_SIGN_SESSIONS``, ``BOKEH_DEFAULT_SERVER_HOST``...): a process whose environment sets any
  ``BOKEH_*`` variable is started as a fresh interpreter (the starter has none).
- multiprocessing's authentication key (made at import): a new random one per process, as a
  fresh interpreter has.
"""

from __future__ import annotations

import importlib
import os

from ..local.server_starter import NeedsFreshInterpreter

# what `python -m dask scheduler|worker` and the gateway's preloads import, Bokeh's dashboard included
MODULES = (
    "dask.cli",
    "distributed",
    "distributed.cli.dask_scheduler",
    "distributed.cli.dask_worker",
    "distributed.scheduler",
    "distributed.nanny",
    "distributed.worker",
    "distributed.http.scheduler",
    "distributed.http.worker",
    "distributed.dashboard.scheduler",
    "distributed.dashboard.components.scheduler",
    "dask_gateway.scheduler_preload",
    "tornado.httpserver",
)
# config keys distributed reads at import (module-level `dask.config.get`, lambdas there included:
# checked against distributed's own modules by tests/gateway/test_preimported.py)
FIXED_AT_IMPORT = (
    "logging",
    "logging-file-config",
    "distributed.logging",
    "distributed.logging-file-config",
    "distributed.admin.log-format",
    "distributed.admin.pdb-on-err",
    "distributed.comm.shard",
    "distributed.comm.offload",
    "distributed.scheduler.http.routes",
    "distributed.dashboard.export-tool",
    "distributed.worker.profile.interval",
    "distributed.diagnostics.cudf",
    "distributed.admin.tick.limit",
    "distributed.comm.websockets.shard",
    "distributed.comm.zstd.level",
    "distributed.comm.zstd.threads",
    "distributed.scheduler.default-data-size",
    "distributed.scheduler.default-task-durations",
)
BOKEH_PREFIX = "BOKEH_"  # bokeh.settings values, some read at import (resources, logconfig, token)
_MISSING = object()


def preimport() -> None:
    """In the starter: import (never run) the Dask code."""
    for name in MODULES:
        importlib.import_module(name)


def _fixed_values() -> dict[str, object]:
    import dask.config

    return {key: dask.config.get(key, _MISSING) for key in FIXED_AT_IMPORT}


def after_environment() -> None:
    """In each child, as the user: Dask's config from the user's environment and files."""
    import multiprocessing

    import dask.config

    bokeh = sorted(name for name in os.environ if name.startswith(BOKEH_PREFIX))
    if bokeh:
        raise NeedsFreshInterpreter(f"its environment sets {', '.join(bokeh)}, which Bokeh may read "
                                    "at import")

    before = _fixed_values()
    dask.config.paths[:] = dask.config._get_paths()  # the list `refresh` reads by default
    dask.config.PATH = os.environ.get("DASK_CONFIG") or os.path.join(
        os.path.expanduser("~"), ".config", "dask")
    dask.config.refresh()
    after = _fixed_values()
    changed = sorted(key for key in FIXED_AT_IMPORT if after[key] != before[key])
    if changed:
        raise NeedsFreshInterpreter(f"the Dask config sets {', '.join(changed)}, read at import")
    multiprocessing.current_process().authkey = os.urandom(32)
