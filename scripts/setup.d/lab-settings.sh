#!/usr/bin/env bash
# JupyterLab defaults for the environment that runs user servers ($prefix): no news feed or
# update check (a platform's users are not its admins, and many machines have no internet).
# Gets $prefix, $repo, $extras from scripts/setup.sh; idempotent.
set -euo pipefail
: "${prefix:?}"
settings="$prefix/share/jupyter/lab/settings"
mkdir -p "$settings"
cat > "$settings/overrides.json.new" <<'JSON'
{
  "@jupyterlab/apputils-extension:notification": {
    "checkForUpdates": false,
    "fetchNews": "false"
  }
}
JSON
mv "$settings/overrides.json.new" "$settings/overrides.json"
