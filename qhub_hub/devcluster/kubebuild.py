"""Kubernetes from Debian bookworm's own `kubernetes` source package, built once and cached.

No registry serves kube-apiserver or kubelet binaries to these machines, but Debian ships the full
1.20.2 tree with its vendored modules: `apt-get source` plus `make WHAT=...` (Go from Debian, no
module proxy) gives the five server binaries. The pause image's tiny program comes from the same
tree. The output lands in CACHE/kubernetes/<debian version>/bin and the source tree is removed.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

from .paths import CACHE, KUBERNETES_BIN
from .steps import ClusterError, run, say

SERVER_BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy")
UPSTREAM_VERSION = "v1.20.2"  # what Debian's "1.20.5+really1.20.2" really is
SOURCE_SUITES = ("bookworm", "bookworm-updates", "bookworm-security")
# Our changes to the tree, named in the cache folder so that a build without them is not reused.
PATCH_LEVEL = "qhub1"
MIRROR = os.environ.get("QHUB_DEBIAN_MIRROR", "http://deb.debian.org/debian")
SECURITY_MIRROR = os.environ.get("QHUB_DEBIAN_SECURITY_MIRROR", "http://deb.debian.org/debian-security")


def _apt_options(apt_dir: Path) -> list[str]:
    """A private apt state holding deb-src lines, so the machine's own sources stay untouched."""
    return [
        "-o", f"Dir::Etc::SourceList={apt_dir / 'sources.list'}",
        "-o", "Dir::Etc::SourceParts=/nonexistent",
        "-o", f"Dir::State::Lists={apt_dir / 'lists'}",
        "-o", f"Dir::Cache={apt_dir / 'cache'}",
        "-o", "APT::Get::List-Cleanup=0",
    ]


def cached_binaries() -> Path | None:
    """The bin folder of a complete earlier build with today's patches, or None."""
    for marker in sorted(KUBERNETES_BIN.glob(f"*-{PATCH_LEVEL}/.complete")):
        return marker.parent / "bin"
    return None


# Go 1.19's runtime.hiter, field for field (reflect2 names the second field `value`)
HITER = """type hiter struct {
\tkey         unsafe.Pointer
\tvalue       unsafe.Pointer
\tt           unsafe.Pointer
\th           unsafe.Pointer
\tbuckets     unsafe.Pointer
\tbptr        unsafe.Pointer
\toverflow    unsafe.Pointer
\toldoverflow unsafe.Pointer
\tstartBucket uintptr
\toffset      uint8
\twrapped     bool
\tB           uint8
\ti           uint8
\tbucket      uintptr
\tcheckBucket uintptr
}"""


def patch_reflect2(tree: Path) -> None:
    """Go 1.18 changed reflect.mapiterinit to fill an iterator the caller allocates; the vendored
    modern-go/reflect2 1.0.1 still calls it the old way (it returned one), so the API server dies
    with "unexpected fault address" when it encodes a custom resource (json-iterator's sorted map
    keys). reflect2 1.0.2 made the same change upstream; 1.20 never vendored it."""
    path = tree / "vendor" / "github.com" / "modern-go" / "reflect2" / "unsafe_link.go"
    old = ("//go:linkname mapiterinit reflect.mapiterinit\n"
           "func mapiterinit(rtype unsafe.Pointer, m unsafe.Pointer) *hiter\n")
    new = ("//go:linkname mapiterinitInto reflect.mapiterinit\n"
           "func mapiterinitInto(rtype unsafe.Pointer, m unsafe.Pointer, it *hiter)\n\n"
           "func mapiterinit(rtype unsafe.Pointer, m unsafe.Pointer) *hiter {\n"
           "\tit := new(hiter)\n\tmapiterinitInto(rtype, m, it)\n\treturn it\n}\n")
    text = path.read_text()
    if text.count(old) != 1 or len(re.findall(r"type hiter struct \{.*?\n\}", text, re.S)) != 1:
        raise ClusterError(f"cannot patch {path}: its mapiterinit or hiter is not the expected one "
                           f"(did the vendored reflect2 change?)")
    # the iterator we now allocate must be the runtime's whole struct, not its first two fields
    text = re.sub(r"type hiter struct \{.*?\n\}", HITER, text, flags=re.S)
    path.write_text(text.replace(old, new))


def build(log: Path) -> Path:
    """Build (or reuse) the Kubernetes server binaries and the pause program; return their folder."""
    found = cached_binaries()
    if found:
        say(f"kubernetes: cached binaries in {found}")
        return found
    for tool in ("go", "make", "rsync", "jq", "gcc", "dpkg-source"):
        if shutil.which(tool) is None:
            raise ClusterError(f"`{tool}` is missing; run `bash scripts/setup.sh --test` "
                               "(scripts/setup.d/cluster.sh installs the build tools)")
    work = CACHE / "build"
    shutil.rmtree(work, ignore_errors=True)
    apt_dir = work / "apt"
    (apt_dir / "lists" / "partial").mkdir(parents=True)
    (apt_dir / "cache" / "archives" / "partial").mkdir(parents=True)
    lines = [f"deb-src {MIRROR} {s} main" for s in SOURCE_SUITES if s != "bookworm-security"]
    lines.append(f"deb-src {SECURITY_MIRROR} bookworm-security main")
    (apt_dir / "sources.list").write_text("\n".join(lines) + "\n")
    started = time.monotonic()
    say("kubernetes: fetching Debian's source package (apt-get source kubernetes)")
    run(["apt-get", *_apt_options(apt_dir), "update"], log=log)
    src = work / "src"
    src.mkdir()
    run(["apt-get", *_apt_options(apt_dir), "source", "--only-source", "kubernetes"], log=log, cwd=src)
    trees = [p for p in src.iterdir() if p.is_dir() and p.name.startswith("kubernetes-")]
    if len(trees) != 1:
        raise ClusterError(f"expected one unpacked kubernetes-* tree in {src}, found {trees}")
    tree = trees[0]
    debian_version = run(["dpkg-parsechangelog", "-l", tree / "debian" / "changelog", "-S", "Version"]).strip()
    say(f"kubernetes: building {UPSTREAM_VERSION} from Debian {debian_version} "
        f"(about 10 min on 2 cores; log: {log})")
    env = dict(os.environ,
               CGO_ENABLED="0", GOFLAGS="-mod=vendor", GOPROXY="off", GO111MODULE="on",
               GOCACHE=str(work / "gocache"), GOPATH=str(work / "gopath"), HOME=str(work),
               KUBE_GIT_VERSION=UPSTREAM_VERSION, KUBE_GIT_TREE_STATE="clean")
    patch_reflect2(tree)
    run(["make", f"WHAT={' '.join('cmd/' + b for b in SERVER_BINARIES)}"], log=log, cwd=tree, env=env)
    out_dir = KUBERNETES_BIN / f"{debian_version.replace('+', '_')}-{PATCH_LEVEL}"
    bin_dir = out_dir / "bin"
    shutil.rmtree(out_dir, ignore_errors=True)
    bin_dir.mkdir(parents=True)
    built = tree / "_output" / "bin"
    for name in SERVER_BINARIES:
        shutil.copy2(built / name, bin_dir / name)
    run(["gcc", "-Os", "-static", "-o", bin_dir / "pause", tree / "build" / "pause" / "linux" / "pause.c"],
        log=log)
    (out_dir / "VERSION").write_text(f"{UPSTREAM_VERSION} (Debian {debian_version}, patches {PATCH_LEVEL})\n")
    (out_dir / "build-seconds").write_text(f"{time.monotonic() - started:.0f}\n")
    (out_dir / ".complete").touch()
    shutil.rmtree(work, ignore_errors=True)  # ~3 GB of sources and Go build cache
    for older in KUBERNETES_BIN.iterdir():  # builds without today's patches
        if older != out_dir:
            shutil.rmtree(older, ignore_errors=True)
    return bin_dir
