"""The usage page (admins only, with its month selector) and the spawn page's budget line, in headless
Chromium against a real hub; the ledger holds usage written through `Ledger`, as the hub and the
gateway write it. The hub's ledger clock runs from a fixed time in November 2026 (`set_ledger_clock`,
from the hub's config file), so "this month" is November 2026 whatever day the test runs.
Screenshots: $QHUB_SCREENSHOTS (default /tmp/qhub-screenshots)."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from qhub_hub.usage.ledger import DASK_WORKER, SERVER, Ledger, server_key, worker_key
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
HUB_NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC).timestamp()  # the hub's ledger clock starts here
HISTORY = datetime(2026, 11, 20, 9, 0, tzinfo=UTC).timestamp()  # this (November's) usage starts here
OCTOBER = datetime(2026, 10, 15, 10, 0, tzinfo=UTC).timestamp()


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
        import time
        from qhub_hub.usage.hub import set_ledger_clock
        _started = time.time()
        set_ledger_clock(lambda: {HUB_NOW!r} + (time.time() - _started))
    """)
    hub.start()
    # November so far: dave 12.5 h on a GPU (ml), bob 10 h small (analysts), carol's 4 workers 3 h (ml)
    start = HISTORY
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
    # October: erin 5 h small (finance), shown only with ?month=2026-10
    ledger.open(SERVER, server_key("erin", "x"), "erin", ["finance"], small, charged_group="finance",
                start=OCTOBER)
    ledger.close(server_key("erin", "x"), "stop", end=OCTOBER + 5 * 3600)
    yield hub
    hub.stop()


def login(page, hub: HubProcess, user: str) -> None:
    page.goto(f"{hub.url}/hub/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", f"{user}-password")
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_load_state()


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
            assert admin.locator("h1").inner_text() == "Usage in November 2026"
            assert admin.locator('table.qhub-usage-user tr[data-user="erin"]').count() == 0  # October's
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

            # the month selector: October, through the form's previous-month link
            admin.click("a.qhub-usage-previous")
            admin.wait_for_load_state()
            assert admin.url.endswith("/hub/qhub/usage?month=2026-10")
            assert admin.locator("h1").inner_text() == "Usage in October 2026"
            erin = admin.locator('table.qhub-usage-user tr[data-user="erin"] td').all_inner_texts()
            assert erin[:8] == ["erin", "1", "5.0", "0", "0.0", "2.5", "0.0", "0.25"]
            assert admin.locator('table.qhub-usage-user tr[data-user="dave"]').count() == 0
            assert admin.locator("svg.qhub-usage-chart").count() == 1  # finance
            october_bars = admin.eval_on_selector_all(
                "svg.qhub-usage-chart rect[data-day]", "els => els.map(e => e.dataset.day)")
            assert october_bars == ["2026-10-15"]
            admin.screenshot(path=str(SCREENSHOTS / "usage-admin-page-october.png"), full_page=True)
            admin.click("a.qhub-usage-next")  # back to November (there is no link past this month)
            admin.wait_for_load_state()
            assert admin.locator("h1").inner_text() == "Usage in November 2026"
            assert admin.locator("a.qhub-usage-next").count() == 0

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


@pytest.mark.parametrize(("month", "message"), [
    ("2026-13", "month='2026-13' is not a month: write it as YYYY-MM, e.g. month=2026-11"),
    ("November", "month='November' is not a month: write it as YYYY-MM, e.g. month=2026-11"),
    ("2026-1", "month='2026-1' is not a month"),
    ("2026-12", "month=2026-12 has not begun (this month is 2026-11): pick 2026-11 or an earlier month"),
])
def test_a_bad_month_is_a_clear_400(hub, month, message):
    import html

    session, _ = password_login(hub.url, "alice", "alice-password")
    response = session.get(f"{hub.url}/hub/qhub/usage", params={"month": month}, timeout=30)
    assert response.status_code == 400
    assert message in html.unescape(response.text) and "Traceback" not in response.text
    good = session.get(f"{hub.url}/hub/qhub/usage", params={"month": "2026-11"}, timeout=30)
    assert good.status_code == 200 and "Usage in November 2026" in good.text


def test_month_window_runs_to_the_month_end_or_now():
    from qhub_hub.usage.pages import month_window

    def at(*args: int) -> float:
        return datetime(*args, tzinfo=UTC).timestamp()

    now = at(2027, 1, 3, 8)
    assert month_window("", now) == (at(2027, 1, 1), now)
    assert month_window("2027-01", now) == (at(2027, 1, 1), now)
    assert month_window("2026-12", now) == (at(2026, 12, 1), at(2027, 1, 1))
    assert month_window("2026-02", now) == (at(2026, 2, 1), at(2026, 3, 1))
    with pytest.raises(ValueError, match="has not begun"):
        month_window("2027-02", now)
