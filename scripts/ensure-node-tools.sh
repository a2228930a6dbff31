#!/usr/bin/env bash
# Third-party splat and glTF tools that the interoperability tests run against, from the npm registry,
# installed once into .node-tools/ (pinned: a bare splat-transform install picks an old release on node 20).
# Without node or npm the script says so and exits 0: those tests then skip with the same reason.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=.node-tools
WANT="@playcanvas/splat-transform@3.7.0 gltf-validator@2.0.0-dev.3.10"
if ! command -v npm >/dev/null 2>&1; then
    echo "npm is missing: the splat-transform and gltf-validator tests will skip" >&2
    exit 0
fi
if [ -f "$DIR/.installed" ] && [ "$(cat "$DIR/.installed")" = "$WANT" ]; then exit 0; fi
mkdir -p "$DIR"
# shellcheck disable=SC2086
npm install --prefix "$DIR" --no-audit --no-fund --silent $WANT >/dev/null
echo "$WANT" > "$DIR/.installed"
