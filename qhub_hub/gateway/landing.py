"""The page at the gateway's root (``<hub>/services/dask-gateway/``).

The hub lists the gateway in its Services menu and checks every minute that each service's URL
answers; without a page there, both met a 404 (and the gateway logged one a minute). This page
says what the gateway is for and how to use it from a notebook.
"""

from __future__ import annotations

from aiohttp import web

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Dask Gateway</title>
<style>body{font-family:sans-serif;max-width:44em;margin:3em auto;line-height:1.5}
pre{background:#f4f4f4;padding:1em}</style></head>
<body><h1>Dask Gateway</h1>
<p>This platform starts Dask clusters for you, running as your own account with the worker
profiles your groups allow. From a notebook on this hub:</p>
<pre>from dask_gateway import GatewayCluster

cluster = GatewayCluster()      # no arguments: your default worker profile and environment
cluster.scale(2)
client = cluster.get_client()
cluster.dashboard_link          # the cluster's dashboard, for you only</pre>
<p>Options (worker profile, environment, idle timeout):
<code>Gateway().cluster_options()</code>.</p>
</body></html>
"""


async def landing_page(request: web.Request) -> web.Response:
    return web.Response(text=PAGE, content_type="text/html")


def add_landing_page(app: web.Application) -> None:
    app.router.add_get("/", landing_page)
