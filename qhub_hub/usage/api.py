"""The hub's usage endpoint for a Dask Gateway that cannot reach the ledger's database (on
Kubernetes the hub's SQLite file is on the hub's own volume): the gateway sends what each scheduler
heartbeat says and the hub, the one authority on who a user is and what the limits are, decides
and records (`dask.cluster_heartbeat`).

``POST /hub/api/qhub/usage/dask/<cluster>`` with ``{"user", "profile", "wanted", "workers"}``
answers ``{"allowed", "message", "charged_group"}``; ``{"stopped": true}`` closes the cluster's
workers. ``POST /hub/api/qhub/usage/dask`` with ``{"running": [cluster, ...]}`` (the gateway at
start) closes the workers of clusters that no longer run.

Who may call it: a holder of ``custom:qhub:usage:write`` (`scopes`), which only the Dask Gateway's
hub service gets (the `qhub-usage-writers` role). Users, and services that only read plans (the
SSH check, conda-store, SFTP), may not.
"""

from __future__ import annotations

import json
from typing import Any

from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.scopes import has_scope
from tornado import web

from ..hub_identity import get_config, plan_for_hub_user
from .dask import cluster_heartbeat, cluster_stopped, recover_clusters
from .hub import hub_ledger
from .scopes import USAGE_WRITE_SCOPE

USAGE_DASK_PATH = r"/api/qhub/usage/dask(?:/([^/]+))?"


class DaskUsageHandler(APIHandler):
    def initialize(self, config_path: str = "") -> None:
        self.qhub_config_path = config_path

    def _body(self) -> dict[str, Any]:
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            raise web.HTTPError(400, "The body must be JSON.") from None
        if not isinstance(body, dict):
            raise web.HTTPError(400, "The body must be a JSON object.")
        return body

    async def post(self, cluster: str | None = None) -> None:
        if not self.current_user or not has_scope(USAGE_WRITE_SCOPE, self.parsed_scopes, db=self.db):
            raise web.HTTPError(403, f"Recording Dask usage needs the scope {USAGE_WRITE_SCOPE} (the Dask "
                                     "Gateway service's role qhub-usage-writers).")
        body = self._body()
        ledger = hub_ledger(self.db)
        assert ledger is not None  # a hub always has its database
        self.set_header("Content-Type", "application/json")
        if cluster is None:
            running = body.get("running")
            if not isinstance(running, list) or not all(isinstance(c, str) for c in running):
                raise web.HTTPError(400, "'running' must be a list of cluster names.")
            self.finish(json.dumps({"closed": recover_clusters(ledger, running)}))
            return
        if body.get("stopped") is True:
            self.finish(json.dumps({"closed": cluster_stopped(ledger, cluster)}))
            return
        username, profile, wanted = body.get("user"), body.get("profile"), body.get("wanted")
        workers = body.get("workers")
        if not isinstance(username, str) or not isinstance(profile, str) or not isinstance(wanted, int):
            raise web.HTTPError(400, "Give 'user' and 'profile' (strings) and 'wanted' (a number of workers).")
        if workers is not None and not (isinstance(workers, list) and all(isinstance(w, str) for w in workers)):
            raise web.HTTPError(400, "'workers' must be a list of worker names.")
        user = self.find_user(username)
        if user is None:
            raise web.HTTPError(404, f"No hub user {username!r}")
        config = get_config(self.qhub_config_path or None, log=self.log)
        plan = await plan_for_hub_user(config, user)
        decision = cluster_heartbeat(ledger, config, plan, cluster, profile, wanted, workers)
        self.finish(json.dumps({"allowed": decision.count, "message": decision.message,
                                "charged_group": decision.charged_group}))
