"""The images, built here from Debian and PyPI packages with buildah (no container registry).

- The base: a minbase Debian bookworm rootfs from `mmdebstrap` with a Python venv at /usr/local
  (so `pip` installs where the upstream Python images install), imported as
  `localhost/qhub-hub/debian:bookworm-<key>`.
- Each of images/<name>/Containerfile is built with `--build-arg BASE=<that base>`; the same file
  builds from its upstream base elsewhere.
- Package downloads pass the same TLS-inspecting path as the machine's own: the machine's CA
  bundle is bind-mounted into every build step (never copied into an image).
- Each image is tagged with a hash of its inputs (Containerfile, the files it copies, the base, the
  build args): a warm run finds every tag and builds nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .paths import CACHE, IMAGES
from .steps import ClusterError, run, say

REPO = Path(__file__).resolve().parents[2]
NAMES = ("hub", "lab", "gateway", "conda-store", "proxy", "init", "traefik", "pause")
PAUSE_TAG = "3.4"  # the pause version of Kubernetes 1.20
CA_BUNDLE = Path(os.environ.get("QHUB_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt"))
MIRROR = os.environ.get("QHUB_DEBIAN_MIRROR", "http://deb.debian.org/debian")
SECURITY_MIRROR = os.environ.get("QHUB_DEBIAN_SECURITY_MIRROR", "http://deb.debian.org/debian-security")
FORMAT = "docker"  # the OCI format drops SHELL (pipefail); containerd reads both
BASE_PACKAGES = ("ca-certificates", "python3", "python3-venv", "passwd", "procps")
CONTAINERS_CONF = """\
# qhub-hub's dev cluster: what podman/buildah need on these machines (see KUBERNETES.md)
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""


@dataclass(frozen=True)
class Image:
    name: str
    ref: str  # localhost/qhub-hub/<name>:<input hash>
    built_seconds: float | None  # None: found in the cache


def container_env() -> dict[str, str]:
    """Environment for podman/buildah: our containers.conf, not the machine's."""
    conf = CACHE / "containers" / "containers.conf"
    if not conf.exists() or conf.read_text() != CONTAINERS_CONF:
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text(CONTAINERS_CONF)
    return dict(os.environ, CONTAINERS_CONF=str(conf))


def _exists(ref: str) -> bool:
    return subprocess.run(["podman", "image", "exists", ref], env=container_env()).returncode == 0


def _hash(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()[:16]


def _excluded(ignorefile: Path) -> list[str]:
    """Plain path exclusions of a Containerfile.dockerignore (e.g. `qhub_hub/devcluster`)."""
    return [line.strip().rstrip("/") for line in ignorefile.read_text().splitlines()
            if line.strip() and line[0] not in "#!*" and "*" not in line]


def _tree_bytes(context: Path, source: str, excluded: list[str]) -> bytes:
    """Names and contents of every file under context/source that reaches the build (caches,
    build output and the ignore file's exclusions left out)."""
    path = context / source
    if path.is_file():
        return path.name.encode() + b"\0" + path.read_bytes()
    out = []
    for p in sorted(path.rglob("*")):
        rel = p.relative_to(path)
        if not p.is_file() or {"__pycache__", "node_modules", ".pytest_cache"} & set(rel.parts):
            continue
        full = str(p.relative_to(context))
        if any(full == e or full.startswith(e + "/") for e in excluded):
            continue
        out.append(str(rel).encode() + b"\0" + p.read_bytes())
    return b"\0\0".join(out)


def base_image(log: Path) -> str:
    """The Debian base image (built with mmdebstrap once, then found by its key)."""
    command = ["mmdebstrap", "--variant=minbase", "--include=" + ",".join(BASE_PACKAGES),
               "--customize-hook=chroot \"$1\" python3 -m venv /usr/local",
               "--customize-hook=rm -rf \"$1\"/var/cache/apt/* \"$1\"/var/lib/apt/lists/*",
               "bookworm", "{tarball}",
               f"deb {MIRROR} bookworm main", f"deb {MIRROR} bookworm-updates main",
               f"deb {SECURITY_MIRROR} bookworm-security main"]
    key = _hash(json.dumps(command).encode())
    ref = f"localhost/qhub-hub/debian:bookworm-{key}"
    if _exists(ref):
        return ref
    tarball = IMAGES / f"debian-bookworm-{key}.tar"
    if not tarball.exists():
        say(f"images: Debian base with mmdebstrap (about 30 s; log: {log})")
        partial = tarball.with_suffix(".partial.tar")
        tarball.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        run([c.replace("{tarball}", str(partial)) for c in command], log=log)
        partial.rename(tarball)
        _record_build_time("debian-base", ref, time.monotonic() - started, "cold")
    run(["podman", "import", "--change", "CMD=/bin/bash", tarball, ref], log=log, env=container_env())
    return ref


def _copied_paths(containerfile: Path) -> list[str]:
    """Sources of the Containerfile's COPY lines (relative to the build context)."""
    sources = []
    for line in containerfile.read_text().splitlines():
        if line.startswith("COPY "):
            words = [w for w in line.split()[1:] if not w.startswith("--")]
            sources += words[:-1]
    return sources


def build_one(name: str, base: str, pause_dir: Path | None, log: Path, *, no_cache: bool = False) -> Image:
    folder = REPO / "images" / name
    containerfile = folder / "Containerfile"
    context = pause_dir if name == "pause" else REPO
    if context is None:
        raise ClusterError("the pause image needs the compiled pause program (build Kubernetes first)")
    build_args = {"BASE": base}
    if "ARG NODE_EXTRA_CA_CERTS" in containerfile.read_text():  # npm does not read the system store
        build_args["NODE_EXTRA_CA_CERTS"] = "/etc/ssl/certs/ca-certificates.crt"
    inputs = [containerfile.read_bytes(), json.dumps(build_args, sort_keys=True).encode(), FORMAT.encode()]
    excluded = _excluded(folder / "Containerfile.dockerignore")
    inputs += [_tree_bytes(context, src, excluded) for src in _copied_paths(containerfile)]
    ref = f"localhost/qhub-hub/{name}:{_hash(*inputs)}"
    if _exists(ref) and not no_cache:
        return Image(name, ref, None)
    if not CA_BUNDLE.exists():
        raise ClusterError(f"no CA bundle at {CA_BUNDLE}; set QHUB_CA_BUNDLE to the machine's bundle")
    say(f"images: building {name} (log: {log})")
    started = time.monotonic()
    # --layers: the slow dependency steps come before `COPY qhub_hub`, so a change to our code
    # rebuilds only the steps from there on
    command = ["buildah", "bud", "--format", FORMAT, "--network", "host", "--isolation", "oci", "--layers",
               "-f", containerfile, "--ignorefile", folder / "Containerfile.dockerignore",
               "-v", f"{CA_BUNDLE}:/etc/ssl/certs/ca-certificates.crt:ro", "-t", ref]
    for key, value in build_args.items():
        command += ["--build-arg", f"{key}={value}"]
    if no_cache:
        command.append("--no-cache")
    run([*command, context], log=log, env=container_env())
    seconds = time.monotonic() - started
    _remove_older(name, ref)
    _record_build_time(name, ref, seconds, "cold" if no_cache else "last")
    return Image(name, ref, seconds)


def _remove_older(name: str, keep: str) -> None:
    """Earlier builds of the same image (other input hashes): removed, so the store does not grow."""
    listing = subprocess.run(["podman", "images", "--format", "{{.Repository}}:{{.Tag}}",
                              f"localhost/qhub-hub/{name}"], capture_output=True, text=True, env=container_env())
    older = [ref for ref in listing.stdout.split() if ref != keep and ref.startswith(f"localhost/qhub-hub/{name}:")]
    if older:
        subprocess.run(["podman", "rmi", "--force", *older], capture_output=True, env=container_env())


def _record_build_time(name: str, ref: str, seconds: float, kind: str) -> None:
    """Build times for benchmarks/cluster.py: `last` (layers reused: only changed steps ran) and
    `cold` (every step ran: the base image, or a --no-cache build)."""
    record = IMAGES / "build-times.json"
    times = json.loads(record.read_text()) if record.exists() else {}
    times.setdefault(name, {})[kind] = {"ref": ref, "seconds": round(seconds, 1),
                                        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    record.write_text(json.dumps(times, indent=2))


def recorded_build_times() -> dict[str, dict]:
    record = IMAGES / "build-times.json"
    return json.loads(record.read_text()) if record.exists() else {}


def build_all(kubernetes_bin: Path | None, log: Path, names: tuple[str, ...] = NAMES, *,
              no_cache: bool = False) -> dict[str, Image]:
    for tool in ("mmdebstrap", "buildah", "podman"):
        if shutil.which(tool) is None:
            raise ClusterError(f"`{tool}` is missing; run `bash scripts/setup.sh --test`")
    base = base_image(log)
    images = {}
    for name in names:
        images[name] = build_one(name, base, kubernetes_bin, log, no_cache=no_cache)
        image = images[name]
        say(f"images: {name} = {image.ref} " + ("(cached)" if image.built_seconds is None
                                                else f"(built in {image.built_seconds:.0f} s)"))
    return images


def stable_ref(name: str) -> str:
    """The name pods use for an image: the sandbox image must have a fixed name in containerd's
    config, the others get one so that specs need not know the input hash."""
    return f"localhost/qhub-hub/{name}:{PAUSE_TAG if name == 'pause' else 'dev'}"


def hash_tag(ref: str) -> str:
    return re.sub(r".*:", "", ref)
