"""Files Dask schedulers and workers load by path (``--preload <file>``) in the user's environment.

Each imports only the standard library and what distributed itself needs: the environment a
cluster runs in need not have qhub-hub installed.
"""

from pathlib import Path

PEER_GUARD = str(Path(__file__).with_name("qhub_peer_guard.py"))
PROMPT_HEARTBEAT = str(Path(__file__).with_name("qhub_prompt_heartbeat.py"))  # schedulers only
