"""In headless Chromium: log in, see only the allowed profiles, start one, JupyterLab loads."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .support import password_of, running_platform

pytestmark = [pytest.mark.root, pytest.mark.browser,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
              pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs Debian chromium")]

SCREENSHOTS = Path(os.environ.get("QHUB_SCREENSHOTS", "/tmp/qhub-screenshots"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def platform():
    with running_platform("browser", ssh={"enabled": False}, dask_gateway={"enabled": False}) as platform:
        yield platform


def test_login_choose_an_allowed_profile_and_jupyterlab_loads(platform):
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{platform.url}/hub/login")
            page.fill("input[name=username]", "ltalice")
            page.fill("input[name=password]", password_of("ltalice"))
            page.click("input[type=submit], button[type=submit]")
            page.wait_for_url("**/hub/spawn**", timeout=30_000)
            offered = page.eval_on_selector_all("input[name=profile]", "els => els.map(e => e.value)")
            assert offered == ["small", "analyst"]  # not "ml": alice is not in ltml
            assert page.is_checked("input[name=profile][value=small]")  # the default
            page.screenshot(path=str(SCREENSHOTS / "local-spawn-form.png"))
            page.check("input[name=profile][value=analyst]")
            page.click("form#spawn_form input[type=submit], form#spawn_form button[type=submit]")
            page.wait_for_url("**/user/ltalice/lab**", timeout=120_000)
            page.wait_for_selector("#jp-main-dock-panel", timeout=120_000)
            page.wait_for_selector(".jp-Launcher, .jp-LauncherBody", timeout=60_000)
            page.screenshot(path=str(SCREENSHOTS / "local-jupyterlab.png"))
            assert "JupyterLab" in page.title()
        finally:
            browser.close()
    status, model = platform.api("GET", "/users/ltalice")
    assert model["servers"][""]["user_options"] == {"profile": "analyst"}
    assert model["servers"][""]["ready"]
