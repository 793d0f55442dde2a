"""conda-store's config in the qhub chart (server and worker read the same file).

Everything comes from the qhub config ($QHUB_CONFIG) and the variables the chart sets; see
qhub_hub.conda_store.server_config. The chart adds who owns built environments, then
condaStore.extraConfig (extra_config.py next to this file) if given.
"""

import os
import sys
from pathlib import Path

from qhub_hub.conda_store.server_config import configure_from_environment

# conda-store (and traitlets) run this file with `c`, conda-store's config, defined.
c = globals()["c"]

try:
    configure_from_environment(c)
except Exception as e:  # traitlets would log it and go on with defaults: no login, wrong prefix
    sys.exit(f"conda-store config: {e}")

# Built environments belong to conda-store's own uid; users read and run them, never write.
c.CondaStore.default_uid = int(os.environ["QHUB_CONDA_STORE_UID"])
c.CondaStore.default_gid = int(os.environ["QHUB_CONDA_STORE_GID"])
c.CondaStore.default_permissions = "755"

_extra = Path(__file__).with_name("extra_config.py")
if _extra.exists():
    exec(compile(_extra.read_text(), str(_extra), "exec"))
