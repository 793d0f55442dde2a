"""The dev cluster's DNS server: Service names for pods (this machine has no CoreDNS).

    python -m qhub_hub.devcluster.dns ADDRESS API_URL PKI_DIR

Answers A queries for `<service>.<namespace>.svc.cluster.local` from the API: the Service's
ClusterIP, or the ready endpoint addresses of a headless Service. Other names under
`cluster.local` get NXDOMAIN; every other name is relayed to the machine's own resolver. The
kubelet's `clusterDNS` points at ADDRESS, so pods resolve `hub`, `proxy-public` or
`dask-<id>.<namespace>` as on any cluster, and the chart renders what it renders for real ones.
"""

from __future__ import annotations

import json
import socket
import socketserver
import ssl
import sys
import threading
import time
import urllib.request
from pathlib import Path

from dnslib import QTYPE, RCODE, RR, A, DNSRecord

DOMAIN = "svc.cluster.local."
TTL = 5
CACHE_SECONDS = 1.0  # Services made a moment ago (a Dask cluster's) must resolve at once


class ServiceTable:
    """Service name -> addresses, read from the API at most once a second."""

    def __init__(self, api: str, pki: Path):
        self.api = api
        self.context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        self.context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        self.lock = threading.Lock()
        self.read_at = 0.0
        self.table: dict[str, list[str]] = {}

    def _get(self, path: str) -> dict:
        with urllib.request.urlopen(self.api + path, context=self.context, timeout=3) as response:
            return json.load(response)

    def _read(self) -> dict[str, list[str]]:
        table: dict[str, list[str]] = {}
        headless = set()
        for svc in self._get("/api/v1/services")["items"]:
            name = f"{svc['metadata']['name']}.{svc['metadata']['namespace']}.{DOMAIN}"
            ip = svc["spec"].get("clusterIP")
            if ip and ip != "None":
                table[name] = [ip]
            else:
                headless.add(name)
        if headless:
            for ep in self._get("/api/v1/endpoints")["items"]:
                name = f"{ep['metadata']['name']}.{ep['metadata']['namespace']}.{DOMAIN}"
                if name in headless:
                    table[name] = [a["ip"] for s in ep.get("subsets") or [] for a in s.get("addresses") or []]
        return table

    def lookup(self, name: str) -> list[str] | None:
        with self.lock:
            if time.monotonic() - self.read_at > CACHE_SECONDS:
                try:
                    self.table = self._read()
                    self.read_at = time.monotonic()
                except OSError as e:
                    print(f"dns: reading Services failed: {e}", file=sys.stderr, flush=True)
            return self.table.get(name.lower())


def upstream_resolver() -> str:
    for line in Path("/etc/resolv.conf").read_text().splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver":
            return words[1]
    return "127.0.0.1"


class Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        data, sock = self.request
        try:
            query = DNSRecord.parse(data)
        except Exception:  # not DNS: nothing to answer
            return
        name = str(query.q.qname).lower()
        if not name.endswith("cluster.local."):
            sock.sendto(self.server.relay(data) or query.reply(rcode=RCODE.SERVFAIL).pack(),
                        self.client_address)
            return
        reply = query.reply()
        addresses = self.server.services.lookup(name) if name.endswith(DOMAIN) else None
        if addresses is None:
            reply.header.rcode = RCODE.NXDOMAIN
        elif query.q.qtype in (QTYPE.A, QTYPE.ANY):
            for address in addresses:
                reply.add_answer(RR(query.q.qname, QTYPE.A, rdata=A(address), ttl=TTL))
        sock.sendto(reply.pack(), self.client_address)


class Server(socketserver.ThreadingUDPServer):
    daemon_threads = True

    def __init__(self, address: str, services: ServiceTable):
        super().__init__((address, 53), Handler)
        self.services = services
        self.upstream = upstream_resolver()

    def relay(self, data: bytes) -> bytes | None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(3)
            try:
                s.sendto(data, (self.upstream, 53))
                return s.recv(65535)
            except OSError:
                return None


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    address, api, pki = argv[1], argv[2], Path(argv[3])
    server = Server(address, ServiceTable(api, pki))
    print(f"dns: answering on {address}:53 (upstream {server.upstream})", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
