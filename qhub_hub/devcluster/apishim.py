"""An API front for clients that need `discovery.k8s.io/v1` EndpointSlices, on Kubernetes 1.20.

    python -m qhub_hub.devcluster.apishim ADDRESS:PORT API_URL PKI_DIR

traefik 3 (the dask-gateway chart's proxy) lists and watches EndpointSlices as
`discovery.k8s.io/v1`, which 1.20 serves only as `v1beta1` (the fields traefik reads are the same).
This proxy passes every request to the API server with the client's own credentials, asks for
`v1beta1` where `v1` was asked for, and relabels the answer, watch streams included. The dev
cluster's traefik is pointed at it (`--providers.kubernetescrd.endpoint`); nothing else uses it,
and a cluster of 1.21 or later needs none of it.
"""

from __future__ import annotations

import ssl
import sys
from pathlib import Path

import aiohttp
from aiohttp import web

OLD, NEW = b'"discovery.k8s.io/v1beta1"', b'"discovery.k8s.io/v1"'
PASSED_HEADERS = ("Authorization", "Content-Type", "User-Agent")


def upstream_path(path_qs: str) -> tuple[str, bool]:
    """The path to ask the API server for, and whether the answer must be relabelled."""
    prefix = "/apis/discovery.k8s.io/v1"
    if path_qs == prefix or path_qs.startswith((prefix + "/", prefix + "?")):
        return "/apis/discovery.k8s.io/v1beta1" + path_qs[len(prefix):], True
    return path_qs, False


def relabel(line: bytes) -> bytes:
    return line.replace(OLD, NEW).replace(b'"groupVersion":"discovery.k8s.io/v1beta1"',
                                          b'"groupVersion":"discovery.k8s.io/v1"')


def make_app(api: str, pki: Path) -> web.Application:
    client_tls = ssl.create_default_context(cafile=str(pki / "ca.crt"))

    async def forward(request: web.Request) -> web.StreamResponse:
        path, rewrite = upstream_path(request.path_qs)
        headers = {h: request.headers[h] for h in PASSED_HEADERS if h in request.headers}
        headers["Accept"] = "application/json"  # never protobuf: the answer is relabelled as text
        session: aiohttp.ClientSession = request.app["session"]
        async with session.request(request.method, api + path, headers=headers, ssl=client_tls,
                                   data=await request.read() or None) as upstream:
            response = web.StreamResponse(status=upstream.status)
            response.content_type = upstream.content_type
            await response.prepare(request)
            pending = b""
            try:
                async for chunk in upstream.content.iter_any():  # watch events are one line each
                    pending += chunk
                    complete, _, pending = pending.rpartition(b"\n")
                    if complete:
                        await response.write(relabel(complete + b"\n") if rewrite else complete + b"\n")
                if pending:
                    await response.write(relabel(pending) if rewrite else pending)
                await response.write_eof()
            except (ConnectionResetError, aiohttp.ClientConnectionResetError):
                pass  # the client went away (a watch it ended): nothing more to send
            return response

    async def session(app: web.Application):
        app["session"] = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_read=None))
        yield
        await app["session"].close()

    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.cleanup_ctx.append(session)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    host, port = argv[1].rsplit(":", 1)
    api, pki = argv[2], Path(argv[3])
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(str(pki / "apiserver.crt"), str(pki / "apiserver.key"))
    web.run_app(make_app(api, pki), host=host, port=int(port), ssl_context=server_tls,
                print=lambda message: print(f"apishim: {message}", flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
