"""The idle culler runs as a hub service with the config's settings and stops idle servers.

(Named to run last: the config's shortest idle timeout is 60 s, so this module waits about a minute.)
"""

from __future__ import annotations

import os
import time

import pytest

from .support import running_platform

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]


@pytest.fixture(scope="module")
def platform():
    with running_platform("culler", users={"ltcull": {"uid": 41040, "primary_group": "ltusers"}},
                          ssh={"enabled": False}, dask_gateway={"enabled": False},
                          cull={"server_idle_timeout": 60, "every": 10}) as platform:
        yield platform


def test_an_idle_server_is_culled_after_the_configured_timeout(platform):
    started = time.monotonic()
    model = platform.start_server("ltcull")
    pid = model["servers"][""]["state"]["pid"]
    while time.monotonic() - started < 150:
        status, model = platform.api("GET", "/users/ltcull")
        if not model["servers"]:
            break
        time.sleep(2)
    idle_for = time.monotonic() - started
    assert not model["servers"], "the idle server was not culled"
    assert idle_for >= 55  # not before the configured timeout
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    hub_log = (platform.state_dir / "logs" / "hub.log").read_text()
    assert "'--timeout=60', '--cull-every=10', '--max-age=0'" in hub_log
    assert "DELETE /hub/api/users/ltcull/server (idle-culler@" in hub_log
