"""Real hub logins through fake GitHub and OIDC providers on loopback (OAuth state checked by the
hub): who is let in, who gets a clear 403, which JupyterHub groups and auth_state result, and how
group changes at the provider or in the config show at the next login (no hub restart)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
import requests

from tests.hub.conftest import example_data, follow_until, hub_env, oauth_login, write_config
from tests.hub.fake_providers import FakeGitHub, FakeOIDC
from tests.support.hub import HubProcess

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

IDP_GROUPS = {
    "acme:data-science": "analysts",
    "acme:ml-team": "ml",
    "acme:finance-readers": {"group": "analysts", "readonly": True},
    "acme:platform": "admin",
}


def user_model(hub: HubProcess, name: str) -> dict[str, Any]:
    status, body = hub.api("GET", f"/users/{name}")
    assert status == 200, body
    return body


def qhub_state(hub: HubProcess, name: str) -> dict[str, Any]:
    return user_model(hub, name)["auth_state"]["qhub"]


# --- GitHub ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def github(tmp_path_factory: pytest.TempPathFactory):
    workdir = tmp_path_factory.mktemp("github-hub")
    gh = FakeGitHub().start()
    gh.add_user("carol", teams=["acme:platform"])  # in security.users; admin through a team
    gh.add_user("gina", teams=["acme:ml-team", "acme:data-science"], orgs=["acme", "oss"])
    gh.add_user("rita", teams=["acme:finance-readers"])
    gh.add_user("guest", orgs=["acme-guests"])
    gh.add_user("mallory", orgs=["elsewhere"])
    config_path = workdir / "qhub-config.yaml"
    hub = HubProcess(workdir, env=hub_env(config_path), extra_config="""
        c.JupyterHub.authenticator_class = "qhub-github"
    """)
    data = example_data()
    data["security"]["authentication"] = {"type": "GitHub", "config": {
        "client_id": gh.client_id, "client_secret": gh.client_secret,
        "oauth_callback_url": f"{hub.url}/hub/oauth_callback", "github_url": gh.url,
        "allowed_organizations": ["acme-guests"]}}
    data["security"]["identity_provider_groups"] = dict(IDP_GROUPS)
    write_config(config_path, data)
    hub.start()
    yield hub, gh, config_path, data
    hub.stop()
    gh.stop()


def login(hub: HubProcess, provider, who: str) -> requests.Response:
    provider.next_login = who
    return oauth_login(hub.url, provider.url)[1]


def test_github_team_member_logs_in_with_mapped_groups_and_dynamic_ids(github):
    hub, gh, _, _ = github
    response = login(hub, gh, "gina")
    assert response.status_code == 302, response.text
    assert urlparse(response.headers["Location"]).path == "/hub/home"
    user = user_model(hub, "gina")
    assert sorted(user["groups"]) == ["analysts", "ml"]
    assert user["admin"] is False
    state = user["auth_state"]["qhub"]
    assert state["idp_groups"] == ["acme", "acme:data-science", "acme:ml-team", "oss"]
    assert 200_000 <= state["uid"] < 1_200_000 and state["gid"] == state["uid"]  # private group
    assert state["supplemental_gids"] == [2001, 2003] and state["in_config"] is False
    # upstream oauthenticator data is kept next to ours: teams (paginated by the fake) and orgs
    assert len(user["auth_state"]["teams"]) == 2 and len(user["auth_state"]["orgs"]) == 2
    # the hub asked for the scopes it needs and sent its client credentials
    authorize = next(q for m, p, q, _ in gh.requests if p == "/login/oauth/authorize")
    assert set(authorize["scope"].split()) == {"read:user", "read:org"}
    assert authorize["redirect_uri"] == f"{hub.url}/hub/oauth_callback"


def test_github_same_uid_at_next_login(github):
    hub, gh, _, _ = github
    login(hub, gh, "gina")
    first = qhub_state(hub, "gina")["uid"]
    login(hub, gh, "gina")
    assert qhub_state(hub, "gina")["uid"] == first


def test_github_config_user_gets_config_ids_and_admin_from_team(github):
    hub, gh, _, _ = github
    assert login(hub, gh, "carol").status_code == 302
    user = user_model(hub, "carol")
    assert sorted(user["groups"]) == ["admin", "data-eng", "ml", "users"]
    assert user["admin"] is True
    state = user["auth_state"]["qhub"]
    assert (state["uid"], state["gid"], state["in_config"]) == (3003, 2005, True)


def test_github_readonly_mapping(github):
    hub, gh, _, _ = github
    assert login(hub, gh, "rita").status_code == 302
    state = qhub_state(hub, "rita")
    assert state["groups"] == ["analysts"]
    assert state["readonly_gids"] == [2001] and state["supplemental_gids"] == []


def test_github_allowed_organization_admits_without_groups(github):
    hub, gh, _, _ = github
    assert login(hub, gh, "guest").status_code == 302
    user = user_model(hub, "guest")
    assert user["groups"] == [] and user["auth_state"]["qhub"]["idp_groups"] == ["acme-guests"]


def test_github_unknown_user_refused_with_clear_page(github):
    hub, gh, _, _ = github
    response = login(hub, gh, "mallory")
    assert response.status_code == 403
    assert "You signed in as &#39;mallory&#39;" in response.text or "You signed in as 'mallory'" in response.text
    assert "security.identity_provider_groups" in response.text
    assert hub.api("GET", "/users/mallory")[0] == 404  # never created


def test_github_removed_team_loses_group_at_next_login(github):
    hub, gh, _, _ = github
    gh.users["gina"]["teams"] = ["acme:ml-team", "acme:data-science"]
    login(hub, gh, "gina")
    assert sorted(user_model(hub, "gina")["groups"]) == ["analysts", "ml"]
    gh.users["gina"]["teams"] = ["acme:ml-team"]
    login(hub, gh, "gina")
    assert user_model(hub, "gina")["groups"] == ["ml"]
    gh.users["gina"]["teams"] = []
    gh.users["gina"]["orgs"] = []
    response = login(hub, gh, "gina")  # no mapped group left, not listed, not in allowed orgs
    assert response.status_code == 403


def test_github_config_edit_applies_at_next_login_without_restart(github):
    hub, gh, config_path, data = github
    gh.users["rita"]["teams"] = ["acme:finance-readers"]
    login(hub, gh, "rita")
    assert qhub_state(hub, "rita")["readonly_gids"] == [2001]
    changed = {**data, "security": {**data["security"], "identity_provider_groups": {
        **IDP_GROUPS, "acme:finance-readers": "finance"}}}
    write_config(config_path, changed)
    try:
        login(hub, gh, "rita")
        state = qhub_state(hub, "rita")
        assert state["groups"] == ["finance"] and state["readonly_gids"] == []
        assert user_model(hub, "rita")["groups"] == ["finance"]
    finally:
        write_config(config_path, data)


def test_github_invalid_config_edit_keeps_last_good_config(github):
    hub, gh, config_path, data = github
    config_path.write_text("security: {users: {bob: {uid: 12}}}\n")  # invalid: uid < 1000 ...
    try:
        gh.users["gina"]["teams"] = ["acme:ml-team"]  # logins are still served by the old config
        assert login(hub, gh, "gina").status_code == 302
        assert user_model(hub, "gina")["groups"] == ["ml"]
        assert "is not valid; the previous config stays in force" in hub.log()
    finally:
        write_config(config_path, data)


def test_github_oauth_state_is_checked(github):
    hub, gh, _, _ = github
    gh.next_login = "gina"
    session = requests.Session()
    start = session.get(f"{hub.url}/hub/oauth_login?next=/hub/home", allow_redirects=False, timeout=30)
    authorize = urlparse(start.headers["Location"])
    query = {k: v[0] for k, v in parse_qs(authorize.query).items()}
    query["state"] = query["state"][:-4] + "AAAA"  # forged state
    forged = f"{gh.url}{authorize.path}?{urlencode(query)}"
    response = follow_until(session, forged, f"{hub.url}/hub/oauth_callback")
    assert response.status_code == 400 and "OAuth state mismatch" in response.text


# --- generic OpenID Connect (Keycloak-like) ---------------------------------------------------------


@pytest.fixture(scope="module")
def oidc(tmp_path_factory: pytest.TempPathFactory):
    workdir = tmp_path_factory.mktemp("oidc-hub")
    idp = FakeOIDC().start()
    idp.add_user("olga", groups=["/analysts", "/ml-readers"])
    idp.add_user("bob", groups=["/admin"])  # in security.users
    idp.add_user("pete", groups=["/contractors"])
    config_path = workdir / "qhub-config.yaml"
    hub = HubProcess(workdir, env=hub_env(config_path), extra_config="""
        c.JupyterHub.authenticator_class = "qhub-oidc"
    """)
    discovery = requests.get(f"{idp.url}/.well-known/openid-configuration", timeout=10).json()
    data = example_data()
    data["security"]["authentication"] = {"type": "oidc", "config": {
        "client_id": idp.client_id, "client_secret": idp.client_secret,
        "oauth_callback_url": f"{hub.url}/hub/oauth_callback",
        "authorize_url": discovery["authorization_endpoint"],
        "token_url": discovery["token_endpoint"], "userdata_url": discovery["userinfo_endpoint"],
        "username_claim": "preferred_username", "groups_claim": "groups"}}
    data["security"]["identity_provider_groups"] = {"ml-readers": {"group": "ml", "readonly": True}}
    write_config(config_path, data)
    hub.start()
    yield hub, idp
    hub.stop()
    idp.stop()


def test_oidc_groups_claim_maps_to_config_groups(oidc):
    hub, idp = oidc
    response = login(hub, idp, "olga")
    assert response.status_code == 302, response.text
    user = user_model(hub, "olga")
    assert sorted(user["groups"]) == ["analysts", "ml"]
    state = user["auth_state"]["qhub"]
    assert state["idp_groups"] == ["analysts", "ml-readers"]  # Keycloak paths lose the '/'
    assert state["supplemental_gids"] == [2001] and state["readonly_gids"] == [2003]
    token_request = next(f for m, p, f, _ in idp.requests if p == "/token")
    assert token_request["grant_type"] == "authorization_code"
    assert token_request["redirect_uri"] == f"{hub.url}/hub/oauth_callback"


def test_oidc_admin_group_makes_admin(oidc):
    hub, idp = oidc
    assert login(hub, idp, "bob").status_code == 302
    user = user_model(hub, "bob")
    assert user["admin"] is True and sorted(user["groups"]) == ["admin", "analysts", "users"]


def test_oidc_unmapped_user_refused(oidc):
    hub, idp = oidc
    response = login(hub, idp, "pete")
    assert response.status_code == 403
    assert "does not give that account access" in response.text


def test_oidc_removed_group_lost_at_next_login(oidc):
    hub, idp = oidc
    idp.users["olga"]["groups"] = ["/analysts", "/ml-readers"]
    login(hub, idp, "olga")
    assert sorted(user_model(hub, "olga")["groups"]) == ["analysts", "ml"]
    idp.users["olga"]["groups"] = ["/ml-readers"]
    assert login(hub, idp, "olga").status_code == 302
    assert user_model(hub, "olga")["groups"] == ["ml"]
    assert qhub_state(hub, "olga")["readonly_gids"] == [2003]


def test_no_config_means_no_hub(tmp_path: Path):
    """A hub whose config is missing or invalid does not start, and says why."""
    config_path = tmp_path / "qhub-config.yaml"
    config_path.write_text("security:\n  users:\n    bob: {uid: 3002, primary_group: nope}\n")
    hub = HubProcess(tmp_path, env=hub_env(config_path), extra_config="""
        c.JupyterHub.authenticator_class = "qhub-password"
    """)
    with pytest.raises(RuntimeError) as e:
        hub.start(timeout=20)
    assert "unknown group 'nope'" in str(e.value)


# --- Auth0 (namespaced groups claim, verified emails only) ------------------------------------------


@pytest.fixture(scope="module")
def auth0(tmp_path_factory: pytest.TempPathFactory):
    workdir = tmp_path_factory.mktemp("auth0-hub")
    idp = FakeOIDC().start()
    idp.groups_claim = "https://acme.org/groups"
    idp.add_user("nina", groups=["ml"])
    idp.add_user("uma", groups=["ml"], email_verified=False)
    config_path = workdir / "qhub-config.yaml"
    # Auth0's endpoints are https://<domain>/...; the fake speaks plain HTTP on loopback, so the
    # test points the three URLs at it (everything else comes from the qhub config)
    hub = HubProcess(workdir, env=hub_env(config_path), extra_config=f"""
        c.JupyterHub.authenticator_class = "qhub-auth0"
        c.QHubAuth0OAuthenticator.authorize_url = "{idp.url}/authorize"
        c.QHubAuth0OAuthenticator.token_url = "{idp.url}/token"
        c.QHubAuth0OAuthenticator.userdata_url = "{idp.url}/userinfo"
    """)
    data = example_data()
    data["security"]["authentication"] = {"type": "Auth0", "config": {
        "client_id": idp.client_id, "client_secret": idp.client_secret, "auth0_subdomain": "acme",
        "oauth_callback_url": f"{hub.url}/hub/oauth_callback", "groups_claim": "https://acme.org/groups"}}
    write_config(config_path, data)
    hub.start()
    yield hub, idp
    hub.stop()
    idp.stop()


def test_auth0_namespaced_groups_claim(auth0):
    hub, idp = auth0
    assert login(hub, idp, "nina").status_code == 302
    user = user_model(hub, "nina@example.org")  # Auth0 names users by email
    assert user["groups"] == ["ml"] and user["auth_state"]["qhub"]["idp_groups"] == ["ml"]


def test_auth0_unverified_email_refused(auth0):
    hub, idp = auth0
    response = login(hub, idp, "uma")
    assert response.status_code == 403 and "is not verified" in response.text
