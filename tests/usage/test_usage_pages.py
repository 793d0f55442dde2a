"""The usage page (admins only) and the spawn page's budget line, in headless Chromium against a
real hub; the ledger holds this month's usage (written through `Ledger`, as the hub and the gateway
write it). Screenshots: $QHUB_SCREENSHOTS (default /tmp/qhub-screenshots)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest
import requests

from qhub_hub.usage.ledger import DASK_WORKER, SERVER, Ledger, month_start, server_key, worker_key
from qhub_hub.usage.resources import Resources
from tests.hub.conftest import hub_env, password_login, write_config
from tests.support.hub import HubProcess
from tests.usage.support import usage_data

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs Debian chromium")]

SCREENSHOTS = Path(os.environ.get("QHUB_SCREENSHOTS", "/tmp/qhub-screenshots"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
LIMITS = {"groups": {"ml": {"gpus": 2, "monthly": {"gpu_hours": 40, "cost": 100}}}}


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory):
    workdir = tmp_path_factory.mktemp("usage-pages")
    config_path = workdir / "qhub-config.yaml"
    write_config(config_path, usage_data(LIMITS))
    hub = HubProcess(workdir, env=hub_env(config_path), extra_config=f"""
        from tests.hub.local_plan_spawner import PlanLocalSpawner
        c.JupyterHub.authenticator_class = "qhub-password"
        c.JupyterHub.spawner_class = PlanLocalSpawner
        c.Spawner.cmd = [{str(Path(sys.executable).parent / 'jupyterhub-singleuser')!r}]
    """)
    hub.start()
    # this month so far: dave 12.5 h on a GPU (ml), bob 10 h small (analysts), carol's 4 workers 3 h (ml)
    now = time.time()
    start = max(month_start(now), now - 20 * 3600)
    ledger = Ledger(f"sqlite:///{workdir / 'qhub-usage.sqlite'}")
    gpu = Resources("gpu", cores=3.0, memory=10 * 2**30, gpus=1, cost_per_hour=1.5)
    ledger.open(SERVER, server_key("dave", "x"), "dave", ["ml", "users"], gpu, charged_group="ml", start=start)
    ledger.close(server_key("dave", "x"), "stop", end=start + 12.5 * 3600)
    small = Resources("small", cores=0.5, memory=2**30, cost_per_hour=0.05)
    ledger.open(SERVER, server_key("bob", "x"), "bob", ["analysts"], small, charged_group="analysts", start=start)
    ledger.close(server_key("bob", "x"), "stop", end=start + 10 * 3600)
    worker = Resources("Large Worker", cores=2.0, memory=8 * 2**30, cost_per_hour=0.12)
    for i in range(4):
        key = worker_key("c1", str(i))
        ledger.open(DASK_WORKER, key, "carol", ["data-eng", "ml"], worker, charged_group="ml", cluster="c1",
                    start=start)
        ledger.close(key, "cluster-stopped", end=start + 3 * 3600)
    yield hub
    hub.stop()


def login(page, hub: HubProcess, user: str) -> None:
    page.goto(f"{hub.url}/hub/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", f"{user}-password")
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_load_state()


@pytest.mark.skipif(time.time() - month_start(time.time()) < 21 * 3600,
                    reason="the page shows this month: its scripted 20 h of history need a month at least 21 h old "
                           "(in the first day of a month this check waits for the next run)")
def test_admin_page_and_spawn_page_budget_line(hub):
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            admin = browser.new_page(viewport={"width": 1100, "height": 1400})
            login(admin, hub, "alice")
            response = admin.goto(f"{hub.url}/hub/qhub/usage")
            assert response.status == 200
            ml = admin.locator('table.qhub-usage-group tr[data-group="ml"] td')
            cells = ml.all_inner_texts()
            # servers, server hours, workers, worker hours, core-hours, GPU-hours, cost, grant
            assert cells == ["ml", "1", "12.5", "4", "12.0", "61.5", "12.5", "20.19", "40 GPU-hours, 100.00 EUR"]
            bob = admin.locator('table.qhub-usage-user tr[data-user="bob"] td').all_inner_texts()
            assert bob[:8] == ["bob", "1", "10.0", "0", "0.0", "5.0", "0.0", "0.50"]
            charts = admin.locator("svg.qhub-usage-chart")
            assert charts.count() == 2  # analysts, ml
            bars = admin.eval_on_selector_all(
                'svg[aria-label="group ml: daily cost by profile"] rect[data-profile]',
                "els => els.map(e => [e.dataset.profile, parseFloat(e.dataset.value)])")
            assert {name for name, _ in bars} == {"gpu", "Large Worker"}
            assert sum(v for name, v in bars if name == "gpu") == pytest.approx(12.5 * 1.5, abs=0.01)
            assert sum(v for name, v in bars if name == "Large Worker") == pytest.approx(4 * 3 * 0.12, abs=0.01)
            admin.screenshot(path=str(SCREENSHOTS / "usage-admin-page.png"), full_page=True)

            user = browser.new_page()
            login(user, hub, "dave")
            user.goto(f"{hub.url}/hub/spawn")
            line = user.locator(".qhub-budget-line").all_inner_texts()
            assert line == ["group ml: used 12.5 of 40 GPU-hours, 20.19 of 100.00 EUR this month; "
                            "running 0 of 2 GPUs"]
            user.screenshot(path=str(SCREENSHOTS / "usage-spawn-page.png"), full_page=True)
            assert user.goto(f"{hub.url}/hub/qhub/usage").status == 403
        finally:
            browser.close()


def test_the_usage_page_is_for_admins_only(hub):
    session, _ = password_login(hub.url, "bob", "bob-password")
    response = session.get(f"{hub.url}/hub/qhub/usage", timeout=30)
    assert response.status_code == 403 and "for admins only" in response.text
    anonymous = requests.get(f"{hub.url}/hub/qhub/usage", allow_redirects=False, timeout=30)
    assert anonymous.status_code == 302 and "/hub/login" in anonymous.headers["Location"]
    frank, _ = password_login(hub.url, "frank", "frank-password")  # no limits cover him: no line
    assert "qhub-budget" not in frank.get(f"{hub.url}/hub/spawn", timeout=30).text
