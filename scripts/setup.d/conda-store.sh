#!/usr/bin/env bash
# conda-store-server in its own environment, $prefix/conda-store: its pins (sqlalchemy<2.1,
# setuptools<70) clash with the hub's. qhub-hub is installed there without its hub dependencies,
# only with what its config model and the hub's plan client need (pydantic, pyyaml, yaml-rs, httpx, as
# pyproject.toml pins them), for the JupyterHub login and the server config
# (qhub_hub.conda_store.conda_store_auth, server_config).
# Receives $prefix, $repo, $extras from scripts/setup.sh; idempotent, a no-op when done.
set -euo pipefail
version=2025.2.2
env="$prefix/conda-store"
stamp="$env/.qhub-conda-store-installed"
want="conda-store-server==$version:$repo:$(sha256sum "$repo/pyproject.toml" | cut -c1-16)"
[[ "$(cat "$stamp" 2>/dev/null)" == "$want" ]] && exit 0

echo "setup: conda-store-server $version in $env (log: $env/pip.log)"
[[ -x "$env/bin/python" ]] || /usr/bin/python3 -m venv "$env"
log="$env/pip.log"
: > "$log"
trap 'tail -n 40 "$log" >&2; echo "setup.d/conda-store: failed; the whole log is $log" >&2' ERR
"$env/bin/pip" install -q --upgrade pip >> "$log" 2>&1
"$env/bin/pip" install -q "conda-store-server==$version" >> "$log" 2>&1
# the config model's dependencies, with the specifiers pyproject.toml gives them
mapfile -t config_deps < <("$env/bin/python" - "$repo/pyproject.toml" <<'PY'
import re, sys, tomllib
deps = tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]
for dep in deps:
    if re.split(r"[<>=!~\[; ]", dep, maxsplit=1)[0].lower() in {"pydantic", "pyyaml", "yaml-rs", "httpx"}:
        print(dep)
PY
)
"$env/bin/pip" install -q "${config_deps[@]}" >> "$log" 2>&1
# (pip then lists the hub dependencies it left out on purpose: they go to the log too)
"$env/bin/pip" install -q --no-deps -e "$repo" >> "$log" 2>&1
echo "$want" > "$stamp"
