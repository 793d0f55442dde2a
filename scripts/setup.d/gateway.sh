#!/usr/bin/env bash
# Dask Gateway test support (only with --test): an OLDER dask + distributed release, unpacked into a
# folder, that the gateway tests put in front of the project's site-packages in a worker
# environment to show what a user sees when the notebook's and the workers' versions differ.
# Gets $prefix, $repo, $extras from scripts/setup.sh; idempotent, quick when done.
set -euo pipefail
[[ -n "${extras:-}" ]] || exit 0

old_version=2026.7.1
target="$prefix/share/qhub-hub/test-envs/dask-$old_version"
if [[ ! -f "$target/.complete" ]]; then
  echo "setup.d/gateway: unpacking dask/distributed $old_version for the version-mismatch test"
  rm -rf "$target"
  mkdir -p "$target"
  "$prefix/bin/pip" install -q --no-deps --no-compile --target "$target" \
    "dask==$old_version" "distributed==$old_version"
  rm -rf "$target/bin"
  touch "$target/.complete"
fi
