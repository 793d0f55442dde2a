"""JupyterLab 4 in headless Chromium with the extension installed, against a stand-in Jitsi server.

Proves: the Lab loads the extension (enabled, OK, no incompatibility), the launcher and the
command open a main-area panel whose iframe points at the configured Jitsi server and room (and
the stand-in really served it), rooms of other groups are refused, and with video chat turned off
nothing is offered and nothing breaks.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from .jitsi_standin import JitsiStandIn
from .servers import PREFIX_BIN, JupyterProcess

CHROMIUM = "/usr/bin/chromium"
COMMAND = "qhub-videochat:open"
ANSI = re.compile(r"\x1b\[[0-9;]*m")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium is not installed"),
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"],
        )
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def jitsi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JitsiStandIn]:
    with JitsiStandIn(tmp_path_factory.mktemp("jitsi")) as server:
        yield server


def lab(workdir: Path, jitsi_url: str) -> JupyterProcess:
    env = {
        "QHUB_VIDEOCHAT_URL": jitsi_url,
        "QHUB_VIDEOCHAT_ROOM_PREFIX": "qhub",
        "QHUB_GROUPS": "analysts,teaching",
        "QHUB_USER": "alice",
        "JUPYTERHUB_USER": "alice",
    }
    server = JupyterProcess(
        workdir, env, app="lab", extra_args=("--LabApp.expose_app_in_browser=True",)
    )
    # No "get Jupyter news?" toast over the screenshots.
    settings = Path(server.env["JUPYTER_CONFIG_DIR"]) / "lab" / "user-settings" / "@jupyterlab"
    (settings / "apputils-extension").mkdir(parents=True)
    (settings / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        '{"fetchNews": "false"}'
    )
    return server


class LabPage:
    """A JupyterLab page, with the console messages and page errors it produced."""

    def __init__(self, browser: Browser, server: JupyterProcess):
        self.context = browser.new_context(ignore_https_errors=True,
                                           viewport={"width": 1280, "height": 800})
        self.page: Page = self.context.new_page()
        self.console: list[ConsoleMessage] = []
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.console.append(m))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(f"{server.url}lab?token={server.token}")
        self.page.wait_for_function("() => window.jupyterapp && window.jupyterapp.started")
        self.page.wait_for_function("() => window.jupyterapp.started.then(() => true)")
        self.page.locator(".jp-Launcher").first.wait_for()

    def messages(self, *types: str) -> list[str]:
        return [m.text for m in self.console if not types or m.type in types]

    def close(self) -> None:
        self.context.close()


def expect_console(lab_page: LabPage, text: str, timeout: float = 30) -> None:
    """Wait (letting the page run) until a console message contains `text`."""
    for _ in range(int(timeout * 10)):
        if any(text in m for m in lab_page.messages()):
            return
        lab_page.page.wait_for_timeout(100)
    raise AssertionError(f"no console message with {text!r}; got {lab_page.messages()}")


def labextension_list(server: JupyterProcess) -> str:
    result = subprocess.run(
        [str(PREFIX_BIN / "jupyter"), "labextension", "list"], env=server.env,
        capture_output=True, text=True, check=True,
    )
    return ANSI.sub("", result.stdout + result.stderr)


def frame_src(page: Page) -> str:
    return page.locator("#qhub-videochat .jp-QHubVideoChat-meeting iframe").get_attribute("src")


@pytest.fixture(scope="module")
def enabled_lab(tmp_path_factory, installed_extension, jitsi) -> Iterator[JupyterProcess]:
    with lab(tmp_path_factory.mktemp("lab-enabled"), jitsi.url) as server:
        yield server


def test_extension_is_installed_enabled_and_compatible(enabled_lab: JupyterProcess) -> None:
    listing = labextension_list(enabled_lab)
    line = next((ln for ln in listing.splitlines() if "jupyterlab-qhub-videochat" in ln), "")
    assert re.search(r"jupyterlab-qhub-videochat v0\.1\.0 enabled\s+OK", line), listing
    assert "incompatible" not in listing.lower() and "X" not in line.split()


def test_launcher_and_command_open_the_jitsi_room(
    browser: Browser, enabled_lab: JupyterProcess, jitsi: JitsiStandIn, tmp_path: Path
) -> None:
    lab_page = LabPage(browser, enabled_lab)
    page = lab_page.page
    try:
        assert page.evaluate(
            "() => window.jupyterapp.isPluginActivated('jupyterlab-qhub-videochat:plugin')"
        )
        page.wait_for_function(f"() => window.jupyterapp.commands.hasCommand('{COMMAND}')")
        expect_console(lab_page, "qhub-videochat: ready, Jitsi server " + jitsi.url)

        # The launcher has a Video Chat section: the lobby card, then one card per group.
        section = page.locator(".jp-Launcher-section", has_text="Video Chat")
        cards = section.locator(".jp-LauncherCard-label")
        expect(cards).to_have_text(["Video Chat", "analysts", "teaching"])
        section.scroll_into_view_if_needed()
        page.screenshot(path=str(tmp_path / "videochat-launcher.png"))

        # A user clicks the analysts card: the panel opens in the main area, in that room.
        section.locator(".jp-LauncherCard", has_text="analysts").click()
        panel = page.locator("#qhub-videochat")
        expect(panel).to_be_visible()
        expect(panel).to_have_attribute("data-room", "qhub-group-analysts")
        assert page.evaluate(
            "() => [...window.jupyterapp.shell.widgets('main')].some(w => w.id === 'qhub-videochat')"
        )
        expect(panel.locator("iframe")).to_have_count(1)
        src = frame_src(page)
        assert src.startswith(f"{jitsi.url}/qhub-group-analysts#jitsi_meet_external_api_id=")
        assert 'userInfo.displayName="alice"' in unquote(src)
        frame = page.frame_locator("#qhub-videochat iframe")
        expect(frame.locator("#room")).to_have_text("qhub-group-analysts")
        expect(frame.locator("#name")).to_have_text("alice")
        assert "/external_api.js" in jitsi.requests
        assert any(p.startswith("/qhub-group-analysts") for p in jitsi.requests)
        tab = page.locator(".lm-TabBar-tab[data-id='qhub-videochat']")
        expect(tab).to_have_attribute("aria-selected", "true")
        expect(tab).to_contain_text("Video Chat: analysts")
        page.screenshot(path=str(tmp_path / "videochat-analysts.png"))

        # The command with a group switches rooms: the old meeting is disposed, one iframe left.
        page.evaluate(f"() => window.jupyterapp.commands.execute('{COMMAND}', {{group: 'teaching'}})")
        expect(panel).to_have_attribute("data-room", "qhub-group-teaching")
        expect(panel.locator("iframe")).to_have_count(1)
        assert frame_src(page).startswith(f"{jitsi.url}/qhub-group-teaching#")
        expect(frame.locator("#room")).to_have_text("qhub-group-teaching")

        # An ad-hoc room typed in the panel goes through the server's naming.
        panel.get_by_label("Ad-hoc room name").fill("Pairing with Bob")
        panel.get_by_role("button", name="Join", exact=True).click()
        expect(panel).to_have_attribute("data-room", "qhub-room-pairing-with-bob")
        assert frame_src(page).startswith(f"{jitsi.url}/qhub-room-pairing-with-bob#")
        page.screenshot(path=str(tmp_path / "videochat-adhoc.png"))

        # A private room gets a random name from the server.
        panel.get_by_role("button", name="New private room").click()
        expect(panel).to_have_attribute("data-room", re.compile(r"^qhub-room-private-[0-9a-f]{16}$"))
        assert re.match(rf"{re.escape(jitsi.url)}/qhub-room-private-[0-9a-f]{{16}}#", frame_src(page))

        # A group the user is not in has no room: an error dialog, and the meeting stays.
        # (not awaited: the command resolves only once the dialog is closed)
        page.evaluate(
            f"() => {{ window.jupyterapp.commands.execute('{COMMAND}', {{group: 'admins'}}); }}"
        )
        dialog = page.locator(".jp-Dialog")
        expect(dialog).to_contain_text('You are not in group "admins"')
        expect(dialog).to_contain_text("Your groups: analysts, teaching")
        dialog.get_by_role("button").last.click()
        expect(panel).to_have_attribute("data-room", re.compile(r"^qhub-room-private-"))
        assert not any(p.startswith("/qhub-group-admins") for p in jitsi.requests)

        # Leave: the meeting iframe goes away and the panel shows the lobby.
        panel.get_by_role("button", name="Leave").click()
        expect(panel.locator("iframe")).to_have_count(0)
        expect(panel.locator(".jp-QHubVideoChat-hint")).to_be_visible()

        assert lab_page.errors == []
        assert not [m for m in lab_page.messages("error", "warning") if "videochat" in m.lower()]
        assert not [m for m in lab_page.messages() if "incompatible" in m.lower()]
    finally:
        keep = os.environ.get("QHUB_VIDEOCHAT_SCREENSHOTS")
        if keep:
            for shot in tmp_path.glob("*.png"):
                shutil.copy(shot, keep)
        lab_page.close()


def test_disabled_offers_nothing_and_breaks_nothing(
    browser: Browser, tmp_path: Path, installed_extension
) -> None:
    with lab(tmp_path / "lab", "") as server:
        lab_page = LabPage(browser, server)
        page = lab_page.page
        try:
            expect_console(lab_page, "qhub-videochat: Video chat is turned off in the qhub config")
            assert page.evaluate(
                "() => window.jupyterapp.isPluginActivated('jupyterlab-qhub-videochat:plugin')"
            )
            assert not page.evaluate(f"() => window.jupyterapp.commands.hasCommand('{COMMAND}')")
            expect(page.locator(".jp-Launcher-section", has_text="Video Chat")).to_have_count(0)
            # The rest of the Lab still works: the launcher opens a notebook.
            expect(page.locator(".jp-LauncherCard", has_text="Python 3")).not_to_have_count(0)
            assert lab_page.errors == []
            assert not [m for m in lab_page.messages("error") if "videochat" in m.lower()]
            page.screenshot(path=str(tmp_path / "videochat-disabled.png"))
        finally:
            keep = os.environ.get("QHUB_VIDEOCHAT_SCREENSHOTS")
            if keep:
                for shot in tmp_path.glob("*.png"):
                    shutil.copy(shot, keep)
            lab_page.close()
