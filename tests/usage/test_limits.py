"""The limit rules, one table: grant x usage x request -> allowed, or refused with the figures."""

from __future__ import annotations

import pytest

from qhub_hub.config import ConfigError, load_config
from qhub_hub.config_model import UsageLimits
from qhub_hub.usage.limits import NO_USAGE, Totals, Unit, decide, grant_for_display
from qhub_hub.usage.resources import server_resources, worker_resources
from tests.usage.support import usage_data

GPU_SERVER = Unit(servers=1, gpus=1, cores=3, cost_per_hour=1.5)
CPU_SERVER = Unit(servers=1, cores=0.5, cost_per_hour=0.05)
WORKER = Unit(cores=2, dask_cores=2, cost_per_hour=0.12)

LIMITS = UsageLimits.model_validate({
    "groups": {
        "ml": {"servers": 10, "gpus": 4, "dask_worker_cores": 16, "monthly": {"gpu_hours": 40}},
        "data-eng": {"gpus": 1, "dask_worker_cores": 8, "monthly": {"core_hours": 1000, "cost": 200}},
        "analysts": {"servers": 2},
    },
    "users": {"frank": {"servers": 1, "monthly": {"cost": 10}}},
    "default": {"servers": 1, "gpus": 0},
})


def run(user, groups, unit, count=1, mine=NO_USAGE, **by_group):
    return decide(LIMITS, user, groups, unit, count, user_usage=mine, group_usage=by_group,
                  currency="EUR", what="server" if unit.servers else "workers")


CASES = [
    # (case, user, groups, unit, count, user usage, group usage, allowed, charged, figures)
    ("ml has GPU-hours left", "dave", ["ml", "users"], GPU_SERVER, 1, Totals(),
     {"ml": Totals(gpu_hours=38.5, gpus=1)}, True, "ml", None),
    ("ml's GPU-hours are used up", "dave", ["ml", "users"], GPU_SERVER, 1, Totals(),
     {"ml": Totals(gpu_hours=40.0)}, False, "ml", "group ml has used 40 of 40 GPU-hours this month"),
    ("a GPU-hour budget does not stop a CPU server", "dave", ["ml"], CPU_SERVER, 1, Totals(),
     {"ml": Totals(gpu_hours=41)}, True, "ml", None),
    ("ml's 4 GPUs are in use", "dave", ["ml"], GPU_SERVER, 1, Totals(),
     {"ml": Totals(gpus=4, servers=4)}, False, "ml", "group ml uses 4 of 4 GPUs and this asks for 1 more"),
    ("most generous group wins: data-eng full, ml has room", "carol", ["data-eng", "ml"], GPU_SERVER, 1,
     Totals(), {"data-eng": Totals(gpus=1), "ml": Totals(gpus=1)}, True, "ml", None),
    ("both full: every group's figures", "carol", ["data-eng", "ml"], GPU_SERVER, 1, Totals(),
     {"data-eng": Totals(gpus=1), "ml": Totals(gpus=4)}, False, None,
     "group data-eng uses 1 of 1 GPUs and this asks for 1 more; group ml uses 4 of 4 GPUs"),
    ("tie: the group with more room left", "carol", ["data-eng", "ml"], WORKER, 1, Totals(),
     {"data-eng": Totals(dask_worker_cores=6), "ml": Totals(dask_worker_cores=6)}, True, "ml", None),
    ("analysts share 2 servers", "bob", ["analysts", "users"], CPU_SERVER, 1, Totals(),
     {"analysts": Totals(servers=2)}, False, "analysts", "group analysts has 2 of 2 servers running"),
    ("a user's own cap comes on top of the group", "frank", ["users"], CPU_SERVER, 1,
     Totals(cost=10.0), {}, False, None, "user frank has used 10.00 of 10.00 EUR this month"),
    ("default caps a user in no limited group", "erin", ["finance", "users"], CPU_SERVER, 1,
     Totals(servers=1), {}, False, None, "user erin has 1 of 1 servers running"),
    ("default: no GPU", "erin", ["finance"], GPU_SERVER, 1, Totals(), {}, False, None,
     "user erin uses 0 of 0 GPUs"),
    ("data-eng core-hours used up: a worker is refused", "carol", ["data-eng"], WORKER, 1, Totals(),
     {"data-eng": Totals(core_hours=1000.5)}, False, "data-eng",
     "group data-eng has used 1000.5 of 1000 core-hours this month"),
]


@pytest.mark.parametrize(("case", "user", "groups", "unit", "count", "mine", "by_group", "allowed",
                          "charged", "figures"), CASES, ids=[c[0] for c in CASES])
def test_rules(case, user, groups, unit, count, mine, by_group, allowed, charged, figures):
    decision = run(user, groups, unit, count, mine, **by_group)
    assert decision.allowed is allowed, decision.message
    if charged is not None or allowed:
        assert decision.charged_group == charged
    if figures:
        assert figures in decision.message
        assert decision.message.endswith("ask an admin to raise the limit (limits in the platform's config).")
    else:
        assert decision.message == ""


def test_a_scale_up_is_told_how_many_workers_fit():
    # ml shares 16 worker cores, 10 in use: 3 workers of 2 cores fit, not 5
    decision = run("dave", ["ml"], WORKER, 5, ml=Totals(dask_worker_cores=10))
    assert (decision.allowed, decision.count) == (False, 3)
    assert "group ml uses 10 of 16 Dask worker cores and each worker asks for 2" in decision.message
    assert run("dave", ["ml"], WORKER, 3, ml=Totals(dask_worker_cores=10)).allowed


def test_no_limits_means_no_caps():
    decision = decide(UsageLimits(), "dave", ["ml"], GPU_SERVER, 1000, user_usage=Totals(gpus=99),
                      group_usage={})
    assert decision.allowed and decision.count == 1000 and decision.charged_group is None


def test_grants_shown_to_a_user():
    assert list(grant_for_display(LIMITS, "carol", ["data-eng", "ml", "users"])) == ["group data-eng", "group ml"]
    assert list(grant_for_display(LIMITS, "frank", ["users"])) == ["user frank"]
    assert list(grant_for_display(LIMITS, "erin", ["finance"])) == ["user erin"]  # the default


def test_config_costs_and_limits_load_and_resources_follow_the_profiles():
    config = load_config(usage_data({"groups": {"ml": {"gpus": 2, "monthly": {"gpu_hours": 40}}}}))
    assert config.usage.currency == "EUR"
    assert config.limits.groups["ml"].monthly.gpu_hours == 40
    gpu = next(p for p in config.profiles.jupyterlab if p.profile_slug == "gpu")
    r = server_resources(gpu)
    assert (r.profile, r.cores, r.memory, r.gpus, r.cost_per_hour) == ("gpu", 3.0, 10 * 2**30, 1, 1.5)
    w = worker_resources("Large Worker", config.profiles.dask_worker["Large Worker"])
    assert (w.cores, w.memory, w.gpus, w.cost_per_hour) == (2.0, 8 * 2**30, 0, 0.12)


@pytest.mark.parametrize(("limits", "path", "message"), [
    ({"groups": {"nobody": {"gpus": 1}}}, "limits.groups.nobody", "unknown group 'nobody'"),
    ({"groups": {"ml": {"gpus": -1}}}, "limits.groups.ml.gpus", "greater than or equal to 0"),
    ({"groups": {"ml": {"gpu": 1}}}, "limits.groups.ml.gpu", ""),
    ({"users": {"dave": {"monthly": {"dollars": 1}}}}, "limits.users.dave.monthly.dollars", ""),
])
def test_bad_limits_name_the_path(limits, path, message):
    with pytest.raises(ConfigError) as info:
        load_config(usage_data(limits))
    text = str(info.value)
    assert path in text and message in text


def test_the_schema_documents_costs_and_limits():
    from qhub_hub.config import config_schema

    defs = config_schema()["$defs"]
    assert "usage.currency" in defs["JupyterLabProfile"]["properties"]["cost_per_hour"]["description"]
    assert defs["Grant"]["properties"]["gpus"]["description"]
    assert "most generous" in defs["UsageLimits"]["description"]
