"""`qhub-hub usage`: the report's figures per user, group and profile, in each format."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from qhub_hub.cli import main
from qhub_hub.usage.ledger import DASK_WORKER, SERVER, Ledger, server_key, worker_key
from qhub_hub.usage.resources import Resources
from tests.hub.conftest import write_config
from tests.usage.support import T0, FakeClock, usage_data

GPU = Resources("gpu", cores=3.0, gpus=1, cost_per_hour=1.5)
SMALL = Resources("small", cores=0.5, cost_per_hour=0.05)
WORKER = Resources("Large Worker", cores=2.0, cost_per_hour=0.12)


@pytest.fixture
def ledger_url(tmp_path: Path) -> str:
    clock = FakeClock(T0)
    url = f"sqlite:///{tmp_path / 'usage.sqlite'}"
    ledger = Ledger(url, clock)
    ledger.open(SERVER, server_key("dave"), "dave", ["ml"], GPU, charged_group="ml")  # 2 h
    ledger.open(SERVER, server_key("bob"), "bob", ["analysts"], SMALL, charged_group="analysts")  # 4 h
    for i in range(2):  # carol's 2 workers for 1 h, charged to data-eng
        ledger.open(DASK_WORKER, worker_key("c", str(i)), "carol", ["data-eng", "ml"], WORKER,
                    charged_group="data-eng", cluster="c")
    clock.advance(3600)
    ledger.close_many([worker_key("c", "0"), worker_key("c", "1")], "cluster-stopped")
    clock.advance(3600)
    ledger.close(server_key("dave"), "stop")
    clock.advance(7200)
    ledger.close(server_key("bob"), "stop")
    # October: not in the window
    ledger.open(SERVER, server_key("erin"), "erin", ["finance"], SMALL, start=T0 - 20 * 86400)
    ledger.close(server_key("erin"), "stop", end=T0 - 19 * 86400)
    return url


def report(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["usage", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_by_user_csv(capsys, ledger_url):
    code, out, _ = report(capsys, "--since", "2026-11-01", "--until", "2026-12-01", "--db", ledger_url,
                          "--format", "csv")
    assert code == 0
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["user", "servers", "server hours", "Dask workers", "worker hours", "core-hours",
                       "GPU-hours", "cost (cost)"]
    assert rows[1:] == [
        ["dave", "1", "2.00", "0", "0.00", "6.00", "2.00", "3.00"],
        ["carol", "0", "0.00", "2", "2.00", "4.00", "0.00", "0.24"],
        ["bob", "1", "4.00", "0", "0.00", "2.00", "0.00", "0.20"],
        ["total", "2", "6.00", "2", "2.00", "12.00", "2.00", "3.44"],
    ]


def test_by_group_text_with_the_currency(capsys, ledger_url, tmp_path):
    config = write_config(tmp_path / "qhub-config.yaml", usage_data())
    code, out, _ = report(capsys, "--since", "2026-11-01", "--db", ledger_url, "--by", "group",
                          "--config", str(config))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("Usage 2026-11-01 00:00 to ") and lines[0].endswith("UTC, by group")
    assert lines[1].split() == ["group", "servers", "server", "hours", "Dask", "workers", "worker", "hours",
                                "core-hours", "GPU-hours", "cost", "(EUR)"]
    assert [line.split()[0] for line in lines[2:]] == ["ml", "data-eng", "analysts", "total"]
    assert lines[2].split()[-1] == "3.00"


def test_by_profile_markdown_and_october(capsys, ledger_url):
    code, out, _ = report(capsys, "--since", "2026-10-01", "--until", "2026-11-01", "--db", ledger_url,
                          "--by", "profile", "--format", "markdown")
    assert code == 0
    assert "| small | 1 | 24.00 | 0 | 0.00 | 12.00 | 0.00 | 1.20 |" in out
    assert "| total |" in out and "gpu" not in out.split("| total |")[0].split("|---")[1]


@pytest.mark.parametrize(("args", "message"), [
    (["--since", "yesterday"], "--since 'yesterday' is not a date"),
    (["--since", "2026-11-02", "--until", "2026-11-01"], "--until must be after --since"),
    (["--since", "2026-11-01", "--db", "sqlite:////nonexistent/usage.sqlite"], "no such ledger file"),
])
def test_bad_input_is_a_clear_error(capsys, args, message):
    code, out, err = report(capsys, *args)
    assert (code, out) == (2, "") and message in err and "Traceback" not in err


def test_markdown_escapes_names(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'usage.sqlite'}"
    ledger = Ledger(url, FakeClock(T0))
    ledger.open(SERVER, server_key("x"), "<b>|x*", [], SMALL, start=T0)
    ledger.close(server_key("x"), "stop", end=T0 + 60)
    code, out, _ = report(capsys, "--since", "2026-11-01", "--until", "2026-11-03", "--db", url, "--format",
                          "markdown")
    assert code == 0 and "| \\<b\\>\\|x\\* | 1 |" in out
