"""Who sees which conda-store environments: a real conda-store server behind a real JupyterHub.

One conda-store (SQLite, local storage, its worker) and one hub for the module. The sync puts the
declared environments into `global` and creates the group namespaces; a test-only operator token
adds environments to the group and personal namespaces, 101 of them in alice's (pagination).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from qhub_hub.conda_store.client import MAX_PAGE_SIZE, CondaStoreClient, CondaStoreError
from qhub_hub.conda_store.hub_service import conda_store_service, user_access_scopes
from qhub_hub.conda_store.roles import hub_role_bindings, reader_role_bindings
from qhub_hub.conda_store.sync import sync_declared_environments_blocking
from qhub_hub.config import QHubConfig
from qhub_hub.policy import plan_for
from tests.support.hub import HubProcess

from .support import CondaStoreProcess

PAGED = 101  # environments in alice's namespace besides 'scratch': more than one page

# Environments the operator creates, by namespace ('global' is filled by the sync).
CREATED = {
    "analysts": ["reports"], "ml": ["torch"], "finance": ["ledger"], "users": ["common"],
    "alice": ["scratch", *(f"page-{i:03d}" for i in range(PAGED))],
    "bob": ["scratch"], "erin": ["notes"], "frank": ["notes"],
}
GLOBAL = ["analytics", "dask", "no-channels", "pinned"]

# The truth table: which namespaces each person's environments come from.
VISIBLE_NAMESPACES = {
    "alice": ["alice", "analysts", "users", "global"],
    "bob": ["bob", "analysts", "ml", "users", "global"],
    "erin": ["erin", "analysts", "finance", "users", "global"],  # analysts: read-only member
    "frank": ["frank", "users", "global"],
}


def labels(namespaces: list[str]) -> set[str]:
    envs = {**CREATED, "global": GLOBAL}
    return {f"{ns}/{name}" for ns in namespaces for name in envs.get(ns, [])}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, cs_config_file: Path, cs_config: QHubConfig
          ) -> Iterator[tuple[HubProcess, CondaStoreProcess]]:
    workdir = tmp_path_factory.mktemp("condastore-visibility")
    secret = secrets.token_hex(16)
    cs = CondaStoreProcess(workdir / "conda-store", cs_config_file, worker=True,
                           oauth_client_secret=secret)
    service = conda_store_service(api_token=secret, oauth_redirect_uri=f"{cs.url}/oauth_callback/")
    # Logins by password "pw" (JupyterHub's dummy authenticator); the plans conda-store asks for
    # come from the hub's real plan endpoint, over the config and the users' hub groups
    hub = HubProcess(workdir / "hub", env={"QHUB_CONFIG": str(cs_config_file)}, extra_config=f"""
        from jupyterhub.auth import DummyAuthenticator
        from qhub_hub import hub_settings
        from qhub_hub.plan_api import plan_handlers

        class PlanServingDummy(DummyAuthenticator):
            def get_handlers(self, app):
                return [*super().get_handlers(app), *plan_handlers("")]

        c.JupyterHub.authenticator_class = PlanServingDummy
        c.DummyAuthenticator.password = "pw"
        hub_settings.configure_plan_scope(c)
        c.JupyterHub.services.append({service!r})
        c.JupyterHub.load_roles.append({{"name": "user",
                                        "scopes": ["self", *{user_access_scopes()!r}]}})
        c.JupyterHub.load_roles.append(hub_settings.plan_readers_role([{service["name"]!r}]))
    """)
    hub.start()
    cs.jupyterhub_url = hub.url
    try:
        cs.start()
        report = sync_declared_environments_blocking(cs.url, cs.hub_token, cs_config)
        assert not report.failures, report.lines()
        with CondaStoreClient(cs.url, cs.admin_token) as operator:
            for namespace, names in CREATED.items():
                for name in names:
                    operator.submit_specification(namespace, {"name": name, "dependencies": ["python"]})
        yield hub, cs
    finally:
        cs.stop()
        hub.stop()


def test_the_hub_token_holds_exactly_the_hub_bindings(stack, cs_config):
    _, cs = stack
    with CondaStoreClient(cs.url, cs.hub_token) as hub_client:
        assert hub_client.permissions()["entity_roles"] == hub_role_bindings(cs_config)
        with pytest.raises(CondaStoreError) as refused:  # reads everything, writes no person's
            hub_client.submit_specification("bob", {"name": "intruder", "dependencies": ["python"]})
        assert refused.value.status == 403


def test_namespaces_exist(stack):
    _, cs = stack
    with CondaStoreClient(cs.url, cs.hub_token) as hub_client:
        assert set(hub_client.namespaces()) >= {"global", "users", "analysts", "ml", "finance",
                                                "alice", "bob", "erin", "frank"}


@pytest.mark.parametrize("user", sorted(VISIBLE_NAMESPACES))
def test_each_user_sees_exactly_their_namespaces(stack, cs_config, user):
    _, cs = stack
    plan = plan_for(cs_config, user)
    assert list(plan.environment_namespaces) == VISIBLE_NAMESPACES[user]
    expected = labels(VISIBLE_NAMESPACES[user])
    root = Path(cs_config.conda_store.environments_root)

    with CondaStoreClient(cs.url, cs.hub_token) as hub_client:
        refs = hub_client.environments_for(cs_config, plan, built_only=False)
        assert {r.label for r in refs} == expected
        assert all(r.prefix == root / r.namespace / "envs" / r.name for r in refs)
        # nothing is built here (no conda channels), so nothing is usable yet
        assert hub_client.environments_for(cs_config, plan) == []
        user_token = hub_client.user_token(plan)

    with CondaStoreClient(cs.url, user_token) as as_user:  # what a user server may hold
        assert as_user.permissions()["entity_roles"] == reader_role_bindings(plan)
        assert {f"{e.namespace}/{e.name}" for e in as_user.environments()} == expected
        others = sorted(set(CREATED) - set(VISIBLE_NAMESPACES[user]))
        for namespace in others:
            with pytest.raises(CondaStoreError) as refused:
                as_user.environment(namespace, CREATED[namespace][0])
            assert refused.value.status == 403
        with pytest.raises(CondaStoreError) as refused:  # read-only, even in their own namespace
            as_user.submit_specification(plan.unix_name, {"name": "x", "dependencies": ["python"]})
        assert refused.value.status == 403
        with pytest.raises(CondaStoreError) as refused:  # and it cannot mint itself a wider one
            as_user.create_token(plan.unix_name, {"*/*": ["viewer"]})
        assert refused.value.status == 400


def test_listings_follow_pagination_beyond_100(stack):
    _, cs = stack
    status, page = cs.api("GET", "/api/v1/environment/?namespace=alice&size=500", cs.hub_token)
    assert status == 200
    assert (len(page["data"]), page["size"], page["count"]) == (MAX_PAGE_SIZE, MAX_PAGE_SIZE, PAGED + 1)
    expected = {f"alice/{name}" for name in CREATED["alice"]}
    with CondaStoreClient(cs.url, cs.hub_token) as hub_client:
        for page_size in (MAX_PAGE_SIZE, 500, 30):
            envs = hub_client.environments("alice", page_size=page_size)
            assert len(envs) == PAGED + 1
            assert {f"{e.namespace}/{e.name}" for e in envs} == expected
        everything = hub_client.environments()
        assert len(everything) == sum(map(len, CREATED.values())) + len(GLOBAL)


def test_anonymous_requests_see_nothing(stack):
    _, cs = stack
    with CondaStoreClient(cs.url) as anonymous:
        assert anonymous.environments() == []
        assert anonymous.namespaces() == []
        with pytest.raises(CondaStoreError) as refused:
            anonymous.submit_specification("global", {"name": "x", "dependencies": ["python"]})
        assert refused.value.status == 403


@contextmanager
def browser_login(cs: CondaStoreProcess, username: str) -> Iterator[tuple[httpx.Client, httpx.Response]]:
    """Log in to conda-store the way a browser does: conda-store -> hub login page -> back to
    conda-store's OAuth callback. Yields the browser (its cookies) and the callback's answer."""
    with httpx.Client(follow_redirects=True, timeout=30) as client:
        page = client.get(f"{cs.url}/login/")
        assert page.url.path == "/hub/login", page.text[:500]
        xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text)
        assert xsrf, page.text[:500]
        back = client.post(str(page.url), data={"username": username, "password": "pw",
                                                "_xsrf": xsrf.group(1)})
        assert back.url.path == "/oauth_callback/", back.text[:500]
        yield client, back


# (user, hub groups given before the login, expected role bindings in conda-store)
LOGINS = [
    ("alice", [], {"alice/*": ["admin"], "analysts/*": ["developer"], "users/*": ["developer"],
                   "global/*": ["viewer"]}),
    ("erin", [], {"erin/*": ["admin"], "finance/*": ["developer"], "analysts/*": ["viewer"],
                  "users/*": ["developer"], "global/*": ["viewer"]}),
    # listed users: the config decides, a hub group cannot make erin a writer of analysts
    ("erin", ["analysts"], {"erin/*": ["admin"], "finance/*": ["developer"],
                            "analysts/*": ["viewer"], "users/*": ["developer"],
                            "global/*": ["viewer"]}),
    # an identity-provider user (not in security.users): their hub groups count
    ("zed", ["ml"], {"zed/*": ["admin"], "ml/*": ["developer"], "global/*": ["viewer"]}),
]


@pytest.mark.parametrize(("user", "hub_groups", "expected"), LOGINS,
                         ids=[f"{u}-{'+'.join(g) or 'config'}" for u, g, _ in LOGINS])
def test_login_through_the_hub_acts_as_the_user(stack, user, hub_groups, expected):
    hub, cs = stack
    hub.api("POST", f"/users/{user}")  # 409 when they exist already
    for group in hub_groups:
        hub.api("POST", f"/groups/{group}")
        status, _ = hub.api("POST", f"/groups/{group}/users", {"users": [user]})
        assert status == 200
    try:
        with browser_login(cs, user) as (browser, callback):
            assert callback.status_code == 200
            me = browser.get(f"{cs.url}/api/v1/permission/").json()["data"]
            assert (me["primary_namespace"], me["entity_roles"]) == (user, expected)

            def create(namespace: str) -> int:
                spec = f"name: adhoc-{user}\ndependencies: [python]\n"
                return browser.post(f"{cs.url}/api/v1/specification/",
                                    json={"namespace": namespace, "specification": spec}).status_code

            for arn, roles in expected.items():
                namespace = arn.split("/")[0]
                assert create(namespace) == (200 if roles != ["viewer"] else 403), namespace
            assert create("bob") == 403  # somebody else's namespace
            assert create("newspace") == 403  # nobody's yet
    finally:
        for group in hub_groups:
            hub.api("DELETE", f"/groups/{group}/users", {"users": [user]})
        for arn in expected:  # leave the other tests' listings as they were
            cs.api("DELETE", f"/api/v1/environment/{arn.split('/')[0]}/adhoc-{user}/", cs.admin_token)


def test_login_refused_for_users_the_config_does_not_admit(stack):
    _, cs = stack
    with browser_login(cs, "stranger") as (browser, callback):  # the hub lets anyone in (dummy)
        assert callback.status_code == 403
        assert "conda-store-auth" not in browser.cookies
        assert browser.get(f"{cs.url}/api/v1/permission/").json()["data"]["authenticated"] is False
