#!/usr/bin/env bash
# Proves the committed build is what the sources give: copies the build inputs to a fresh
# directory, builds there (scripts/build.sh: npm ci + tsc + jupyter-builder) and compares every
# built file with the committed one. Exit 1 and a diff listing when they differ.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$here"
cp -r package.json package-lock.json tsconfig.json webpack.config.js src style scripts "$work/"
mkdir -p "$work/qhub_videochat"
bash "$work/scripts/build.sh" >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; exit 1; }
if diff -r "$here/qhub_videochat/labextension" "$work/qhub_videochat/labextension" >&2 \
   && diff "$here/qhub_videochat/labextension-stamp.json" "$work/qhub_videochat/labextension-stamp.json" >&2; then
  echo "check-build: the committed labextension matches a fresh build of the sources"
else
  echo "check-build: the committed labextension differs from a fresh build; run scripts/build.sh and commit" >&2
  exit 1
fi
