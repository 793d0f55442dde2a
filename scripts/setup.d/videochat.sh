#!/usr/bin/env bash
# Installs the video chat extension (jupyterlab-qhub-videochat: the prebuilt JupyterLab 4
# labextension and its server endpoint) into the environment that runs user servers, $prefix.
# No Node needed: the built frontend is committed. Quick no-op when nothing changed.
set -euo pipefail
: "${prefix:?} ${repo:?}"
pkg="$repo/extensions/jupyterlab-qhub-videochat"
stamp="$prefix/.qhub-videochat-installed"
want="$(cd "$pkg" && find pyproject.toml install.json README.md qhub_videochat jupyter-config -type f \
          -not -path '*/__pycache__/*' -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)"
if [[ "$(cat "$stamp" 2>/dev/null)" == "$want" ]] \
   && [[ -e "$prefix/share/jupyter/labextensions/jupyterlab-qhub-videochat/package.json" ]]; then
  exit 0
fi
echo "setup: pip install extensions/jupyterlab-qhub-videochat"
"$prefix/bin/pip" install -q "$pkg"
echo "$want" > "$stamp"
