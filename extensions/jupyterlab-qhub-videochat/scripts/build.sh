#!/usr/bin/env bash
# Rebuilds the prebuilt labextension (qhub_videochat/labextension) from src/ with the exact
# packages of package-lock.json, then stamps it. Needs Node >= 20.19 and the npm registry, and a
# Python environment with jupyterlab 4.6 (for jupyter-builder): $QHUB_PREFIX, default /opt/qhub-hub.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${QHUB_PREFIX:-/opt/qhub-hub}/bin:$PATH"
# `npm ci` would be the usual choice, but it refuses a lockfile without the other platforms'
# optional @rspack/binding-* entries, and registries that lack those (a filtered mirror) write
# such lockfiles. `npm install --no-save` installs the locked versions (integrity-checked) and
# never rewrites package.json or package-lock.json.
npm install --no-save --no-fund --no-audit --loglevel=error
npm run clean
npm run build
