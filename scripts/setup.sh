#!/usr/bin/env bash
# Installs everything qhub-hub needs on a Debian machine (idempotent, quick when nothing changed).
#   bash scripts/setup.sh          runtime: system packages, the proxy, the Python environment
#   bash scripts/setup.sh --test   the same, plus what the test suite needs
# The Python environment lives in $QHUB_PREFIX (default /opt/qhub-hub as root, ./.venv otherwise):
# root-owned and world-readable, so real Unix users can run it but never install into it.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
extras=""
[[ "${1:-}" == "--test" ]] && extras="[test]"

if [[ $EUID -eq 0 ]]; then prefix=${QHUB_PREFIX:-/opt/qhub-hub}; else prefix=${QHUB_PREFIX:-$repo/.venv}; fi

apt_packages=(python3-venv python3-dev build-essential nodejs npm openssh-server openssh-client acl sudo git)
[[ -n "$extras" ]] && apt_packages+=(chromium)
missing=()
for p in "${apt_packages[@]}"; do
  # nodesource's nodejs bundles npm: don't ask apt for Debian's npm next to it
  if [[ $p == npm ]] && command -v npm >/dev/null; then continue; fi
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if (( ${#missing[@]} )); then
  if [[ $EUID -ne 0 ]]; then
    echo "setup: missing Debian packages: ${missing[*]} (run as root, or install them)" >&2
    exit 1
  fi
  echo "setup: apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [[ ! -x "$prefix/bin/python" ]]; then
  echo "setup: creating the Python environment in $prefix"
  /usr/bin/python3 -m venv "$prefix"
fi
# The stamp says which pyproject.toml (and checkout) was installed, and whether with the test
# extras: `run.sh up` after `run.sh test` installs nothing, and `run.sh test` after `run.sh up` adds
# only the test extras' packages (never reinstalling the project or the rest).
stamp="$prefix/.qhub-hub-installed"
base="$(sha256sum pyproject.toml | cut -c1-16):$repo"
have="$(cat "$stamp" 2>/dev/null || true)"
pip_step() {  # pip's chatter goes to the log; on a failure the log's end is shown
  if ! "$@" > "$prefix/pip.log" 2>&1; then
    tail -n 40 "$prefix/pip.log" >&2
    echo "setup: pip install failed; the whole log is $prefix/pip.log" >&2
    exit 1
  fi
}
if [[ "$have" != "$base" && "$have" != "$base[test]" ]]; then
  echo "setup: pip install -e .$extras (log: $prefix/pip.log)"
  pip_step bash -c '"$1/bin/pip" install -q --upgrade pip && "$1/bin/pip" install -q -e ".$2"' _ "$prefix" "$extras"
  echo "$base$extras" > "$stamp"
elif [[ -n "$extras" && "$have" == "$base" ]]; then
  mapfile -t test_deps < <("$prefix/bin/python" - pyproject.toml <<'PY'
import sys, tomllib
print("\n".join(tomllib.load(open(sys.argv[1], "rb"))["project"]["optional-dependencies"]["test"]))
PY
)
  echo "setup: pip install the test extras (log: $prefix/pip.log)"
  pip_step "$prefix/bin/pip" install -q "${test_deps[@]}"
  echo "$base[test]" > "$stamp"
fi

if [[ ! -x "$prefix/bin/configurable-http-proxy" ]]; then
  echo "setup: npm install configurable-http-proxy"
  npm install -s --no-fund --no-audit --prefix "$prefix/node" configurable-http-proxy@5 >/dev/null
  ln -sf "$prefix/node/node_modules/.bin/configurable-http-proxy" "$prefix/bin/configurable-http-proxy"
fi
# Per-area install steps (conda-store's own environment, the video chat build, ...): each script
# gets $prefix, $repo and $extras, and must be idempotent and quick when nothing changed.
for step in scripts/setup.d/*.sh; do
  [[ -e "$step" ]] || continue
  prefix=$prefix repo=$repo extras=$extras bash "$step"
done
chmod -R go+rX,go-w "$prefix"
echo "setup: ready ($prefix)"
