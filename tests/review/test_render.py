"""The markdown renderer's limits: many people fold into <details>, a huge review is cut with a note."""

from __future__ import annotations

from qhub_hub.config import load_config
from qhub_hub.review import render_markdown as rm
from qhub_hub.review.diff import diff_configs
from qhub_hub.review.render_text import render_text


def _config(users: int, profile_mem: str = "2G"):
    return load_config({
        "security": {"groups": {"team": {"gid": 5000}},
                     "users": {f"u{i:05d}": {"uid": 10000 + i, "primary_group": "team"} for i in range(users)}},
        "profiles": {"jupyterlab": [{"display_name": "Small", "slug": "small", "default": True,
                                     "kubespawner_override": {"mem_limit": profile_mem}}]},
    })


def test_many_people_fold_and_a_huge_review_is_cut():
    small = rm.render_markdown(diff_configs(_config(40), _config(40, "4G")))
    assert "<details><summary>40 people or groups</summary>" in small and small.rstrip().endswith("</details>")
    assert small.count("#### ") == 40
    huge = rm.render_markdown(diff_configs(_config(2000), _config(2000, "4G")))
    assert len(huge) <= rm.MAX_CHARS + 500
    shown = huge.count("#### ")
    assert 0 < shown < 2000
    assert f"… and {2000 - shown} more: the review is too long for one comment" in huge
    # the terminal output is never cut
    assert render_text(diff_configs(_config(2000), _config(2000, "4G"))).count("\nu") == 2000


def test_escaping():
    assert rm.escape("a|b*c_<x>") == "a&#124;b&#42;c&#95;&lt;x&gt;"
    assert rm.with_code("run `find / -uid 1` now") == "run `find / -uid 1` now"
    assert rm.with_code("odd ` tick") == "odd &#96; tick"
