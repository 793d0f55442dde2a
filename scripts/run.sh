#!/usr/bin/env bash
# The two commands of the README.
#   bash scripts/run.sh up     install what is missing, then run the embedded platform on :8000
#   bash scripts/run.sh test   install what is missing (test tools too), then run the whole suite
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $EUID -eq 0 ]]; then prefix=${QHUB_PREFIX:-/opt/qhub-hub}; else prefix=${QHUB_PREFIX:-$PWD/.venv}; fi
export QHUB_PREFIX=$prefix
case "${1:-}" in
  up)
    bash scripts/setup.sh
    shift
    exec "$prefix/bin/qhub-hub" local up --config "${QHUB_CONFIG:-examples/qhub-config.yaml}" "$@"
    ;;
  test)
    bash scripts/setup.sh --test
    shift
    exec "$prefix/bin/python" -m pytest "$@"
    ;;
  *)
    echo "usage: bash scripts/run.sh up|test [args...]" >&2
    exit 2
    ;;
esac
