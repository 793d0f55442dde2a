"""One-machine Kubernetes 1.20 for development and tests: up, status, down.

`up` starts etcd, kube-apiserver, kube-controller-manager, kube-scheduler, containerd, a kubelet
and kube-proxy (iptables mode) on this machine, loads our images into containerd's `k8s.io`
namespace and writes a kubeconfig (paths.KUBECONFIG). `down` stops all of it and removes what it
made: processes, mounts, network namespaces, the CNI bridge, iptables chains, the state folder.
The settings that make 1.20 run on these machines are explained in ../shared/KUBERNETES.md.
"""

from __future__ import annotations

import base64
import json
import os
import platform
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from . import images as imagelib
from . import kubebuild
from .paths import CACHE, KUBECONFIG, RUN, STATE, kubectl_binary
from .pki import make_pki
from .steps import ClusterError, run, say, step

ETCD_PORT = 23790
ETCD_PEER_PORT = 23800
API_PORT = 6443
APISHIM_PORT = 6444  # apishim.py: discovery.k8s.io/v1 for traefik 3 on 1.20
SERVICE_CIDR = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"  # the `kubernetes` Service
POD_CIDR = "10.88.0.0/16"
BRIDGE = "qhubcni0"
CHAIN_PREFIXES = ("KUBE-", "CNI-")
CONTAINERD_ROOT = CACHE / "containerd"  # kept across runs: loaded images stay loaded
SOCKET = RUN / "containerd.sock"
LOGS = CACHE / "logs" / "cluster"  # kept after `down` for a look at what went wrong; emptied by `up`
COMPONENTS = ("etcd", "containerd", "kube-apiserver", "kube-controller-manager", "kube-scheduler",
              "kubelet", "kube-proxy", "dns", "apishim")
PROGRAMS = {*COMPONENTS, "runc"}  # what `down` may stop (besides containerd's shims)
OS_RELEASE = Path("/etc/os-release")


@dataclass
class Timings:
    """Seconds per phase of `up`, for the benchmark and the user; what had to be built."""
    phases: dict[str, float] = field(default_factory=dict)
    built: list[str] = field(default_factory=list)  # "kubernetes" and image names not found cached

    def add(self, name: str, started: float) -> None:
        self.phases[name] = round(time.monotonic() - started, 1)


# --- checks ------------------------------------------------------------------------------------


def preflight() -> None:
    """Refuse clearly where the cluster cannot run."""
    if platform.system() != "Linux":
        raise ClusterError("the dev cluster runs on Linux only (Debian 12)")
    if os.geteuid() != 0:
        raise ClusterError("must run as root: it starts a kubelet and containerd, and changes "
                           "iptables and mounts (try `sudo`)")
    try:
        os_release = OS_RELEASE.read_text()
    except OSError:
        os_release = ""
    if not any(line.strip() == "ID=debian" for line in os_release.splitlines()):
        raise ClusterError("needs Debian (bookworm): Kubernetes is built from Debian's source package "
                           "and the runtime comes from Debian packages; /etc/os-release says otherwise")
    missing = [t for t in ("etcd", "containerd", "runc", "ctr", "iptables", "iptables-save", "ip",
                           kubectl_binary(), "conntrack") if shutil.which(t) is None]
    if not Path("/usr/lib/cni/bridge").exists():
        missing.append("/usr/lib/cni/bridge (containernetworking-plugins)")
    if missing:
        raise ClusterError(f"missing: {', '.join(missing)}; run `bash scripts/setup.sh --test` "
                           "(scripts/setup.d/cluster.sh installs them)")


def node_ip() -> str:
    out = run(["ip", "-4", "route", "get", "1.1.1.1"])
    words = out.split()
    return words[words.index("src") + 1]


def apishim_url() -> str:
    """Where traefik on this cluster finds the API (see apishim.py)."""
    return f"https://{node_ip()}:{APISHIM_PORT}"


def node_name() -> str:
    return socket.gethostname().lower()


# --- processes ---------------------------------------------------------------------------------


def _pidfile(name: str) -> Path:
    return RUN / "pids" / f"{name}.pid"


def _start(name: str, command: list) -> None:
    LOGS.mkdir(parents=True, exist_ok=True)
    _pidfile(name).parent.mkdir(parents=True, exist_ok=True)
    with open(LOGS / f"{name}.log", "ab") as log:
        proc = subprocess.Popen([str(c) for c in command], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    _pidfile(name).write_text(str(proc.pid))
    _STARTED[name] = proc


_STARTED: dict[str, subprocess.Popen] = {}  # what this process started, to tell a real exit


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _our_pids() -> dict[int, str]:
    """Every process of this cluster: the started components (by pid file, checked against their
    command line) and any process whose command line names our state, run or cache folders
    (containerd's shims, a component whose pid file was lost)."""
    found: dict[int, str] = {}
    for name in COMPONENTS:
        try:
            pid = int(_pidfile(name).read_text())
        except (OSError, ValueError):
            continue
        if _alive(pid) and name.encode() in _cmdline(pid):
            found[pid] = name
    markers = [str(STATE).encode(), str(RUN).encode(), str(kubebuild.KUBERNETES_BIN).encode()]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            program = os.readlink(entry / "exe").rsplit("/", 1)[-1].removesuffix(" (deleted)")
        except OSError:
            continue
        if program not in PROGRAMS and not program.startswith("containerd-shim"):
            continue  # e.g. a shell tailing our logs: not ours to stop
        cmd = _cmdline(int(entry.name))
        if any(m in cmd for m in markers) and _alive(int(entry.name)):
            found.setdefault(int(entry.name), program)
    return found


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _running(name: str) -> bool:
    try:
        pid = int(_pidfile(name).read_text())
    except (OSError, ValueError):
        return False
    return _alive(pid) and name.encode() in _cmdline(pid)


def _wait(what: str, check, timeout: float, component: str | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        proc = _STARTED.get(component or "")
        if proc is not None and proc.poll() is not None:
            tail = "\n".join((LOGS / f"{component}.log").read_text(errors="replace").splitlines()[-15:])
            raise ClusterError(f"{component} exited (code {proc.returncode}) while waiting for {what}; "
                               f"end of {LOGS / (component + '.log')}:\n{tail}")
        time.sleep(0.25)
    hint = f" (see {LOGS / (component + '.log')})" if component else ""
    raise ClusterError(f"timed out after {timeout:.0f} s waiting for {what}{hint}")


# --- configuration files -----------------------------------------------------------------------


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def _kubeconfig(path: Path, pki: Path, user: str, server: str) -> None:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "qhub-dev",
        "clusters": [{"name": "qhub-dev", "cluster": {
            "server": server, "certificate-authority-data": _b64(pki / "ca.crt")}}],
        "users": [{"name": user, "user": {"client-certificate-data": _b64(pki / f"{user}.crt"),
                                          "client-key-data": _b64(pki / f"{user}.key")}}],
        "contexts": [{"name": "qhub-dev", "context": {"cluster": "qhub-dev", "user": user,
                                                      "namespace": "default"}}],
    }))
    path.chmod(0o600)


def _containerd_config() -> str:
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""version = 2
root = "{CONTAINERD_ROOT / 'root'}"
state = "{RUN / 'containerd'}"
[grpc]
  address = "{SOCKET}"
[ttrpc]
  address = "{SOCKET}.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{STATE / 'containerd-opt'}"
[{cri}]
  sandbox_image = "{imagelib.stable_ref('pause')}"
  # the VM lacks CAP_SYS_RESOURCE: without this every sandbox fails ("can't get final child's PID")
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
[{cri}.cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "{STATE / 'cni' / 'net.d'}"
"""


def _cni_config() -> str:
    return json.dumps({
        "cniVersion": "0.4.0", "name": "qhub-dev",
        "plugins": [
            {"type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": True,
             # a pod reaching its own Service through kube-proxy comes back over the bridge
             "hairpinMode": True,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": POD_CIDR}]],
                      "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(STATE / "cni" / "ipam")}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }, indent=2)


def _kubelet_config(pki: Path, node_ip: str) -> str:
    return yaml.safe_dump({
        "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
        "address": "0.0.0.0", "port": 10250, "readOnlyPort": 0, "healthzPort": 10248,
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                           "x509": {"clientCAFile": str(pki / "ca.crt")}},
        "authorization": {"mode": "Webhook"},
        # the machine's cgroup layout: no systemd, no per-QoS cgroups, nothing reserved
        "cgroupDriver": "cgroupfs", "cgroupsPerQOS": False, "enforceNodeAllocatable": [],
        "failSwapOn": False,
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%",
                         "nodefs.inodesFree": "1%", "imagefs.available": "1%"},
        # our images are loaded, never pulled: never garbage-collect them
        "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
        # no CoreDNS here: pods ask dns.py on the node's address for Service names
        "clusterDomain": "cluster.local", "clusterDNS": [node_ip], "resolvConf": "/etc/resolv.conf",
        "serializeImagePulls": False, "maxPods": 60,
    })


def _kube_proxy_config(kubeconfig: Path) -> str:
    return yaml.safe_dump({
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "mode": "iptables", "clusterCIDR": POD_CIDR,
        # leave the machine's conntrack sysctls alone
        "conntrack": {"maxPerCore": 0},
        "metricsBindAddress": "127.0.0.1:10249", "healthzBindAddress": "127.0.0.1:10256",
    })


# --- the API -----------------------------------------------------------------------------------


def _api_get(path: str, pki: Path, timeout: float = 2.0) -> tuple[int, bytes]:
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    try:
        with urllib.request.urlopen(f"https://127.0.0.1:{API_PORT}{path}", context=context,
                                    timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return 0, b""


def kubectl(*args: str, input: bytes | None = None) -> str:
    return run([kubectl_binary(), f"--kubeconfig={KUBECONFIG}", *args], input=input)


def _node_ready(pki: Path) -> bool:
    status, body = _api_get(f"/api/v1/nodes/{node_name()}", pki)
    if status != 200:
        return False
    conditions = json.loads(body).get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


# --- up ----------------------------------------------------------------------------------------


def status() -> dict[str, bool]:
    return {name: _running(name) for name in COMPONENTS}


def up(*, build_images: bool = True) -> Timings:
    """Bring the cluster up afresh (a running one is taken down first). Returns phase timings."""
    preflight()
    timings = Timings()
    if any(status().values()) or STATE.exists():
        with step("an earlier cluster: taking it down first"):
            down()
    shutil.rmtree(LOGS, ignore_errors=True)
    LOGS.mkdir(parents=True, exist_ok=True)
    cache_logs = CACHE / "logs"

    started = time.monotonic()
    with step("kubernetes binaries"):
        if kubebuild.cached_binaries() is None:
            timings.built.append("kubernetes")
        kbin = kubebuild.build(cache_logs / "kubernetes-build.log")
    timings.add("kubernetes", started)

    started = time.monotonic()
    with step("images"):
        names = imagelib.NAMES if build_images else ("pause",)
        built = imagelib.build_all(kbin, cache_logs / "images.log", names)
    timings.add("images", started)
    for name, image in built.items():
        if image.built_seconds is not None:
            timings.phases[f"image_{name}"] = round(image.built_seconds, 1)
            timings.built.append(name)

    processes_started = started = time.monotonic()
    ip, name = node_ip(), node_name()
    pki = STATE / "pki"
    with step("certificates and configuration"):
        make_pki(pki, node_name=name, node_ip=ip, service_ip=SERVICE_IP)
        server = f"https://{ip}:{API_PORT}"
        _kubeconfig(KUBECONFIG, pki, "admin", server)
        _kubeconfig(STATE / "kubelet.kubeconfig", pki, "kubelet", server)
        (STATE / "containerd.toml").write_text(_containerd_config())
        (STATE / "cni" / "net.d").mkdir(parents=True, exist_ok=True)
        (STATE / "cni" / "net.d" / "10-qhub-dev.conflist").write_text(_cni_config())
        (STATE / "kubelet.yaml").write_text(_kubelet_config(pki, ip))
        (STATE / "kube-proxy.yaml").write_text(_kube_proxy_config(KUBECONFIG))
        _save_sysctls()
        Path("/proc/sys/net/ipv4/ip_forward").write_text("1")
        bridge_nf = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")
        if bridge_nf.exists():
            bridge_nf.write_text("1")

    with step("etcd"):
        _start("etcd", ["etcd", "--name=qhub-dev", f"--data-dir={STATE / 'etcd'}",
                        f"--listen-client-urls=http://127.0.0.1:{ETCD_PORT}",
                        f"--advertise-client-urls=http://127.0.0.1:{ETCD_PORT}",
                        f"--listen-peer-urls=http://127.0.0.1:{ETCD_PEER_PORT}",
                        f"--initial-advertise-peer-urls=http://127.0.0.1:{ETCD_PEER_PORT}",
                        f"--initial-cluster=qhub-dev=http://127.0.0.1:{ETCD_PEER_PORT}",
                        "--log-level=warn"])
    with step("kube-apiserver"):
        _start("kube-apiserver", [
            kbin / "kube-apiserver", f"--etcd-servers=http://127.0.0.1:{ETCD_PORT}",
            "--bind-address=0.0.0.0", f"--secure-port={API_PORT}", f"--advertise-address={ip}",
            "--insecure-port=0", f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--client-ca-file={pki / 'ca.crt'}", f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--kubelet-client-certificate={pki / 'admin.crt'}",
            f"--kubelet-client-key={pki / 'admin.key'}",
            # without it `kubectl exec/logs` cannot resolve the node's name
            "--kubelet-preferred-address-types=InternalIP",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--authorization-mode=Node,RBAC", "--allow-privileged=true",
            "--enable-admission-plugins=NodeRestriction", "--v=1"])
        _wait("the API server's /readyz", lambda: _api_get("/readyz", pki)[0] == 200, 90, "kube-apiserver")
    with step("Service names (dns.py) and the v1 EndpointSlice front (apishim.py)"):
        api = f"https://127.0.0.1:{API_PORT}"
        _start("dns", [sys.executable, "-m", "qhub_hub.devcluster.dns", ip, api, pki])
        _start("apishim", [sys.executable, "-m", "qhub_hub.devcluster.apishim", f"{ip}:{APISHIM_PORT}",
                           api, pki])
    timings.add("apiserver_ready", started)

    with step("controller-manager, scheduler, containerd"):
        _start("kube-controller-manager", [
            kbin / "kube-controller-manager", f"--kubeconfig={KUBECONFIG}",
            f"--authentication-kubeconfig={KUBECONFIG}", f"--authorization-kubeconfig={KUBECONFIG}",
            f"--service-account-private-key-file={pki / 'sa.key'}", f"--root-ca-file={pki / 'ca.crt'}",
            f"--cluster-signing-cert-file={pki / 'ca.crt'}", f"--cluster-signing-key-file={pki / 'ca.key'}",
            "--use-service-account-credentials=true", "--leader-elect=false", "--port=0",
            "--bind-address=127.0.0.1", f"--service-cluster-ip-range={SERVICE_CIDR}", "--v=1"])
        _start("kube-scheduler", [
            kbin / "kube-scheduler", f"--kubeconfig={KUBECONFIG}",
            f"--authentication-kubeconfig={KUBECONFIG}", f"--authorization-kubeconfig={KUBECONFIG}",
            "--leader-elect=false", "--port=0", "--bind-address=127.0.0.1", "--v=1"])
        _start("containerd", ["containerd", f"--config={STATE / 'containerd.toml'}"])
        _wait("containerd's socket", lambda: _ctr_ok(), 30, "containerd")

    loading = time.monotonic()
    with step("loading images into containerd (k8s.io)"):
        load_images(built)
    timings.add("load_images", loading)

    with step("kubelet, kube-proxy"):
        _start("kubelet", [
            kbin / "kubelet", f"--config={STATE / 'kubelet.yaml'}",
            f"--kubeconfig={STATE / 'kubelet.kubeconfig'}", "--container-runtime=remote",
            f"--container-runtime-endpoint=unix://{SOCKET}", f"--node-ip={ip}",
            f"--hostname-override={name}", f"--root-dir={STATE / 'kubelet'}",
            f"--cert-dir={STATE / 'kubelet' / 'pki'}", "--v=1"])
        _start("kube-proxy", [kbin / "kube-proxy", f"--config={STATE / 'kube-proxy.yaml'}",
                              f"--hostname-override={name}", "--v=1"])
    with step("node Ready and the default ServiceAccount"):
        _wait(f"node {name} Ready", lambda: _node_ready(pki), 120, "kubelet")
        _wait("the default ServiceAccount",
              lambda: _api_get("/api/v1/namespaces/default/serviceaccounts/default", pki)[0] == 200,
              60, "kube-controller-manager")
    timings.add("processes_to_ready", processes_started)
    say(f"up: kubeconfig {KUBECONFIG}; logs {LOGS}; `scripts/cluster down` stops it all")
    return timings


def _ctr(*args: str, input_file=None) -> subprocess.CompletedProcess:
    return subprocess.run(["ctr", f"--address={SOCKET}", "--namespace=k8s.io", *args],
                          stdin=input_file, capture_output=True)


def _ctr_ok() -> bool:
    return SOCKET.exists() and _ctr("version").returncode == 0


def load_images(built: dict[str, imagelib.Image]) -> None:
    """Import each image unless containerd already has its hash tag; point the stable name at it."""
    have = set(_ctr("images", "ls", "-q").stdout.decode().split())
    env = imagelib.container_env()
    for name, image in built.items():
        if image.ref not in have:
            say(f"images: importing {name} into containerd")
            save = subprocess.Popen(["podman", "save", "--format", "docker-archive", image.ref],
                                    stdout=subprocess.PIPE, env=env)
            result = _ctr("images", "import", "--no-unpack=false", "-", input_file=save.stdout)
            save.wait()
            if result.returncode or save.returncode:
                raise ClusterError(f"importing {image.ref} into containerd failed: "
                                   f"{result.stderr.decode(errors='replace')[-500:]}")
            if image.ref not in set(_ctr("images", "ls", "-q").stdout.decode().split()):
                # podman's archive names it `localhost/...:tag` already; fall back to its id
                raise ClusterError(f"containerd did not list {image.ref} after importing it")
        tagged = _ctr("images", "tag", "--force", image.ref, imagelib.stable_ref(name))
        if tagged.returncode:
            raise ClusterError(f"ctr images tag {image.ref}: {tagged.stderr.decode(errors='replace')}")
        repository = image.ref.rsplit(":", 1)[0] + ":"
        current = (image.ref, imagelib.stable_ref(name))
        older = [ref for ref in have if ref.startswith(repository) and ref not in current]
        if older:  # earlier builds: removed, so containerd's store does not grow
            _ctr("images", "rm", *older)
    (STATE / "images.json").write_text(json.dumps(
        {name: {"ref": imagelib.stable_ref(name), "built": image.ref} for name, image in built.items()},
        indent=2))


# --- down --------------------------------------------------------------------------------------


def _save_sysctls() -> None:
    saved = {}
    for path in ("/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/bridge/bridge-nf-call-iptables"):
        if Path(path).exists():
            saved[path] = Path(path).read_text().strip()
    RUN.mkdir(parents=True, exist_ok=True)
    target = RUN / "sysctls.json"
    if not target.exists():  # the machine's own values, not those of an earlier `up`
        target.write_text(json.dumps(saved))


def _mounts_under(prefixes: list[str]) -> list[str]:
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if any(point == p or point.startswith(p.rstrip("/") + "/") for p in prefixes):
            points.append(point)
    return sorted(points, key=len, reverse=True)


def _our_netns() -> list[Path]:
    """Network namespaces containerd's CRI made (`cni-<uuid>` under /run/netns)."""
    folder = Path("/run/netns")
    return sorted(folder.glob("cni-*")) if folder.exists() else []


def leftovers() -> dict[str, list[str]]:
    """What of a cluster is still on the machine (empty lists: nothing). Used by `status` and tests."""
    out: dict[str, list[str]] = {
        "processes": [f"{pid} {name}" for pid, name in sorted(_our_pids().items())],
        "mounts": _mounts_under([str(STATE), str(RUN), str(CONTAINERD_ROOT)]),
        "netns": [str(p) for p in _our_netns()],
        "links": [],
        "iptables": [],
    }
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    for line in links.splitlines():
        link = line.split(":")[1].strip().split("@")[0]
        if link == BRIDGE or (f"master {BRIDGE}" in line):
            out["links"].append(link)
    for tool in ("iptables-save", "ip6tables-save"):
        if shutil.which(tool):
            dump = subprocess.run([tool], capture_output=True, text=True).stdout
            out["iptables"] += [f"{tool}: {line}" for line in dump.splitlines()
                                if any(p in line for p in CHAIN_PREFIXES)]
    return out


def _clean_iptables() -> None:
    """Remove every chain named KUBE-*/CNI-* and every rule that jumps to one (kube-proxy's,
    the kubelet's and the CNI plugins' own; other rules are left as they are)."""
    for save, tool in (("iptables-save", "iptables"), ("ip6tables-save", "ip6tables")):
        if not shutil.which(save):
            continue
        table = None
        ours: dict[str, list[str]] = {}
        jumps: list[tuple[str, list[str]]] = []
        for line in subprocess.run([save], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("*"):
                table = line[1:]
                ours.setdefault(table, [])
            elif line.startswith(":") and line[1:].startswith(CHAIN_PREFIXES):
                ours[table].append(line[1:].split()[0])
            elif line.startswith("-A "):
                words = line.split()
                if not words[1].startswith(CHAIN_PREFIXES) and any(
                        w.startswith(CHAIN_PREFIXES) for w in words[2:]):
                    jumps.append((table, words[1:]))
        for table, rule in jumps:
            subprocess.run([tool, "-w", "-t", table, "-D", *_unquote(rule)], capture_output=True)
        for table, chains in ours.items():
            for chain in chains:
                subprocess.run([tool, "-w", "-t", table, "-F", chain], capture_output=True)
            for chain in chains:
                subprocess.run([tool, "-w", "-t", table, "-X", chain], capture_output=True)


def _unquote(words: list[str]) -> list[str]:
    """iptables-save quotes comments ("..."): rejoin and strip them for -D."""
    import shlex
    return shlex.split(" ".join(words))


def down() -> None:
    """Stop everything and remove what `up` made (the caches stay)."""
    if os.geteuid() != 0:
        raise ClusterError("must run as root (try `sudo`)")
    pki = STATE / "pki"
    if _running("kube-apiserver") and _running("kubelet") and KUBECONFIG.exists():
        # let the kubelet stop the pods itself: CNI DEL removes their addresses, rules and netns
        for name in ("kube-controller-manager", "kube-scheduler"):
            _stop(name)
        subprocess.run([kubectl_binary(), f"--kubeconfig={KUBECONFIG}", "delete", "pods", "--all",
                        "--all-namespaces", "--grace-period=1", "--wait=false"],
                       capture_output=True, timeout=60)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status, body = _api_get("/api/v1/pods", pki)
            if status == 200 and not json.loads(body)["items"] and not _sandboxes():
                break
            time.sleep(0.5)
    for name in ("kubelet", "kube-proxy", "kube-controller-manager", "kube-scheduler"):
        _stop(name)
    if _running("containerd"):
        # anything the kubelet did not stop: kill its tasks, then remove the containers
        for container in _ctr("containers", "ls", "-q").stdout.decode().split():
            _ctr("tasks", "kill", "--signal", "SIGKILL", container)
            _ctr("tasks", "delete", "--force", container)
            _ctr("containers", "delete", container)
    for name in ("containerd", "dns", "apishim", "kube-apiserver", "etcd"):
        _stop(name)
    for pid in _our_pids():  # shims, and anything whose pid file was lost
        _kill(pid)
    for point in _mounts_under([str(STATE), str(RUN), str(CONTAINERD_ROOT)]):
        subprocess.run(["umount", "-l", point], capture_output=True)
    for netns in _our_netns():
        subprocess.run(["umount", "-l", str(netns)], capture_output=True)
        netns.unlink(missing_ok=True)
    if Path(f"/sys/class/net/{BRIDGE}").exists():
        subprocess.run(["ip", "link", "delete", BRIDGE], capture_output=True)
    _clean_iptables()
    try:
        for path, value in json.loads((RUN / "sysctls.json").read_text()).items():
            Path(path).write_text(value)
    except (OSError, ValueError):
        pass
    shutil.rmtree(STATE, ignore_errors=True)
    shutil.rmtree(RUN, ignore_errors=True)


def _sandboxes() -> list[str]:
    if not _ctr_ok():
        return []
    return _ctr("tasks", "ls", "-q").stdout.decode().split()


def _stop(name: str) -> None:
    try:
        pid = int(_pidfile(name).read_text())
    except (OSError, ValueError):
        return
    if _alive(pid) and name.encode() in _cmdline(pid):
        _kill(pid)


def _kill(pid: int, grace: float = 10) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    if _alive(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        while _alive(pid):
            time.sleep(0.05)
    try:  # our own child (in-process `up`): reap it
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
