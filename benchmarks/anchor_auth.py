"""The anchor hubs' authenticator (spawn.py, logins.py): plain JupyterHub checking the same bcrypt
hashes as qhub-hub's password logins, in asyncio's thread pool as ours does: both hubs pay the
same login cost.

`ANCHOR_AUTH.format(hashes=<json file name -> hash>)` is appended to the anchor's jupyterhub_config.py.
"""

ANCHOR_AUTH = """
import asyncio, json, bcrypt
from jupyterhub.auth import Authenticator

HASHES = json.load(open({hashes!r}))

class BcryptAuthenticator(Authenticator):
    async def authenticate(self, handler, data):
        hashed = HASHES.get(data["username"])
        if hashed and await asyncio.to_thread(bcrypt.checkpw, data["password"].encode(), hashed.encode()):
            return data["username"]
        return None

c.JupyterHub.authenticator_class = BcryptAuthenticator
c.Authenticator.allow_all = True
"""
