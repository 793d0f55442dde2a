"""Password logins: the dummy hash (names without a hash) has the cost of the config's hashes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import bcrypt
import pytest
import yaml

from qhub_hub import authenticator
from qhub_hub.authenticator import QHubPasswordAuthenticator, dummy_hash
from qhub_hub.hub_identity import forget_configs
from qhub_hub.passwords import bcrypt_cost, usual_cost


def hashed(password: str, cost: int) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(cost)).decode()


@pytest.mark.parametrize(("hashes", "cost"), [
    ([], 12),  # no hashes: qhub-hub hash-password's cost
    (["$2b$05$" + "a" * 53, "$2b$05$" + "b" * 53, "$2b$06$" + "c" * 53], 5),
    (["$2b$05$" + "a" * 53, "$2y$07$" + "c" * 53], 7),  # a tie: the higher cost
    (["plain text", "$1$md5$x"], 12),  # not bcrypt: ignored
])
def test_usual_cost(hashes: list[str], cost: int) -> None:
    assert usual_cost(hashes) == cost


def test_bcrypt_cost() -> None:
    assert bcrypt_cost(hashed("x", 4)) == 4
    assert bcrypt_cost(b"$2a$10$" + b"a" * 53) == 10
    assert bcrypt_cost("nope") is None


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "qhub.yaml"
    path.write_text(yaml.safe_dump({"security": {
        "authentication": {"type": "password"}, "groups": {"scg": {"gid": 45900}},
        "users": {"scada": {"uid": 45901, "primary_group": "scg", "password": hashed("ada-pw", 5)},
                  "scbob": {"uid": 45902, "primary_group": "scg", "password": hashed("bob-pw", 5)},
                  "scnopw": {"uid": 45903, "primary_group": "scg"}}}}))
    forget_configs()
    authenticator._dummy = None
    yield path
    forget_configs()


def test_a_name_without_a_hash_is_checked_against_a_hash_of_the_configs_cost(config_path: Path) -> None:
    auth = QHubPasswordAuthenticator(qhub_config_path=str(config_path))
    assert asyncio.run(auth.authenticate(None, {"username": "sc-unknown", "password": "x"})) is None
    assert asyncio.run(auth.authenticate(None, {"username": "scnopw", "password": "x"})) is None
    assert bcrypt_cost(dummy_hash(auth.qhub_config)) == 5  # not the 10 it used to be for every config
    assert asyncio.run(auth.authenticate(None, {"username": "scada", "password": "wrong"})) is None
    model = asyncio.run(auth.authenticate(None, {"username": "scada", "password": "ada-pw"}))
    assert model is not None and model["name"] == "scada"


def test_the_dummy_hash_follows_a_config_change(config_path: Path) -> None:
    auth = QHubPasswordAuthenticator(qhub_config_path=str(config_path))
    first = dummy_hash(auth.qhub_config)
    assert dummy_hash(auth.qhub_config) is first  # made once per config
    data = yaml.safe_load(config_path.read_text())
    for user in ("scada", "scbob"):
        data["security"]["users"][user]["password"] = hashed("new", 6)
    config_path.write_text(yaml.safe_dump(data) + "\n# changed\n")
    assert bcrypt_cost(dummy_hash(auth.qhub_config)) == 6
