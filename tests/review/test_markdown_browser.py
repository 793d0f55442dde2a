"""The markdown review as a reviewer reads it: rendered to HTML (python-markdown) in headless Chromium.

Names come from the config and the identity provider; one here is an HTML/JavaScript payload and
another is full of Markdown punctuation. They must show as text: no element, no script, no dialog.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import yaml

from qhub_hub.config import load_config
from qhub_hub.review.diff import diff_configs
from qhub_hub.review.render_markdown import render_markdown

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs Debian chromium")]

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("QHUB_SCREENSHOTS", "/tmp/qhub-screenshots"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
PAYLOAD = "<img src=x onerror=alert(1)>"
PUNCTUATION = "acme:*team*_|x|[link](http://evil)"
PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>review</title><style>
body {{ font-family: sans-serif; max-width: 60em; margin: 2em auto; line-height: 1.4 }}
code {{ background: #f0f0f0; padding: .1em .3em }} h4 {{ margin-bottom: .2em }}
</style></head><body>{body}</body></html>"""


def _diff_markdown() -> str:
    old = yaml.safe_load((REPO / "examples" / "qhub-config.yaml").read_text())
    new = copy.deepcopy(old)
    users = new["security"]["users"]
    users["bob"]["secondary_groups"] = ["analysts", "ml"]
    users["dave"]["uid"] = 3014
    users[PAYLOAD] = {"uid": 3020, "primary_group": "users"}
    new["security"]["identity_provider_groups"] = {PUNCTUATION: "ml"}
    new["profiles"]["jupyterlab"][0]["kubespawner_override"]["mem_limit"] = "1G"
    return render_markdown(diff_configs(load_config(old), load_config(new), "main", "pull request"))


def test_markdown_review_reads_right_in_chromium():
    import markdown
    from playwright.sync_api import sync_playwright

    text = _diff_markdown()
    html = PAGE.format(body=markdown.markdown(text))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    dialogs = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.set_content(html)
            assert page.inner_text("h2") == "Access review: main → pull request"
            assert page.inner_text("h3 >> nth=0") == "⚠️ Warnings"
            warnings = page.locator("h3 + ul").first.locator("li")
            assert warnings.count() == 2
            assert warnings.nth(0).locator("strong").inner_text() == "uid renumbered"
            assert warnings.nth(0).locator("code").inner_text() == \
                "find /home /shared -xdev -uid 3004 -exec chown -h 3014 {} +"
            headings = page.eval_on_selector_all("h4", "els => els.map(e => e.textContent)")
            assert headings == [f"{PAYLOAD} (new access)", "alice (changed)", "bob (changed)",
                                "carol (changed)", "dave (changed)", "erin (changed)", "frank (changed)",
                                f"members of '{PUNCTUATION}' (identity provider) (new access)"]
            # the payload and the punctuation are text: no image, script, link or emphasis came from them
            assert page.eval_on_selector_all("img, script, a, strong em, h4 *", "els => els.length") == 0
            assert set(page.eval_on_selector_all("em", "els => els.map(e => e.textContent)")) == {"What to do:"}
            bob = page.locator("h4:has-text('bob') + ul li").all_inner_texts()
            assert "⊕ JupyterLab profile gained: gpu" in bob
            page.screenshot(path=str(SCREENSHOTS / "review-diff-markdown.png"), full_page=True)
        finally:
            browser.close()
    assert dialogs == []
