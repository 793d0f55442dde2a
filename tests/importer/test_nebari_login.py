"""A real hub runs the config imported from a Nebari file and logs people in through a Keycloak-shaped
OIDC provider on loopback (Keycloak's realm paths, `groups` claim with full group paths): as in Nebari,
members of analyst/developer/admin get in, admin members are admins, someone only in `users` is
refused; each gets their own dynamic uid and the gids of their groups."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from qhub_hub.importer import import_file
from qhub_hub.importer.nebari import NebariOptions
from tests.hub.conftest import hub_env, oauth_login
from tests.hub.fake_providers import FakeOIDC, _Handler
from tests.support.hub import HubProcess

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

DATA = Path(__file__).parent / "data"
REALM = "/auth/realms/nebari/protocol/openid-connect"


class FakeKeycloak(FakeOIDC):
    """FakeOIDC at Keycloak's paths for realm `nebari` (Keycloak < 17 and Nebari's /auth prefix)."""

    def get(self, h: _Handler, path: str, query: dict[str, str]) -> None:
        mapped = {f"{REALM}/auth": "/authorize", f"{REALM}/userinfo": "/userinfo"}
        return super().get(h, mapped.get(path, "/not-keycloak"), query)

    def post(self, h: _Handler, path: str, form: dict[str, str]) -> None:
        return super().post(h, "/token" if path == f"{REALM}/token" else "/not-keycloak", form)


@pytest.fixture(scope="module")
def nebari_hub(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("nebari-hub")
    keycloak = FakeKeycloak(client_id="jupyterhub").start()
    keycloak.add_user("alice", groups=["/analyst", "/users"])
    keycloak.add_user("carol", groups=["/admin", "/analyst", "/users"])
    keycloak.add_user("bob", groups=["/developer", "/ml-team", "/users"])
    keycloak.add_user("dave", groups=["/users"])
    config_path = workdir / "qhub-config.yaml"
    hub = HubProcess(workdir, env=hub_env(config_path), extra_config="""
        c.JupyterHub.authenticator_class = "qhub-oidc"
    """)
    result = import_file(DATA / "nebari-keycloak.yaml", NebariOptions(
        keycloak_url=f"{keycloak.url}/auth", keycloak_profiles={"Medium Instance": ["developer", "ml-team"]}))
    data = result.config
    # what the admin adds after the import: the client's secret; and this hub's own address
    data["security"]["authentication"]["config"].update(
        client_secret=keycloak.client_secret, oauth_callback_url=f"{hub.url}/hub/oauth_callback")
    config_path.write_text(yaml.safe_dump(data, sort_keys=False))
    hub.start()
    yield hub, keycloak
    hub.stop()
    keycloak.stop()


def user_model(hub: HubProcess, name: str) -> dict[str, Any]:
    status, body = hub.api("GET", f"/users/{name}")
    assert status == 200, body
    return body


def login(hub, keycloak, who: str):
    keycloak.next_login = who
    return oauth_login(hub.url, keycloak.url)[1]


def test_an_analyst_logs_in_with_own_ids(nebari_hub):
    hub, keycloak = nebari_hub
    assert login(hub, keycloak, "alice").status_code == 302
    user = user_model(hub, "alice")
    assert user["groups"] == ["analyst"] and user["admin"] is False
    state = user["auth_state"]["qhub"]
    assert state["uid"] >= 200_000 and state["uid"] != 1000
    assert state["idp_groups"] == ["analyst", "users"]


def test_admin_members_are_admins_and_profile_groups_map(nebari_hub):
    hub, keycloak = nebari_hub
    assert login(hub, keycloak, "carol").status_code == 302
    carol = user_model(hub, "carol")
    assert carol["admin"] is True and sorted(carol["groups"]) == ["admin", "analyst"]
    assert login(hub, keycloak, "bob").status_code == 302
    bob = user_model(hub, "bob")
    assert sorted(bob["groups"]) == ["developer", "ml-team"]
    assert bob["auth_state"]["qhub"]["supplemental_gids"] == [2001, 2004]


def test_someone_only_in_users_is_refused_as_in_nebari(nebari_hub):
    hub, keycloak = nebari_hub
    response = login(hub, keycloak, "dave")
    assert response.status_code == 403
