#!/bin/sh
# Build time only (a RUN step of the gateway Dockerfile, as the image user): start the
# real gateway once on a throw-away state dir, wait for /readyz, run the CLI commands
# orch runs in a container (`openclaw status`, `openclaw config validate`), stop it
# gracefully, and keep only Node's compile cache, in $ORCH_COMPILE_CACHE.
#
# Why: every container starts with an empty /tmp (a tmpfs: orch runs the root
# read-only), so Node compiled the gateway's whole module graph from source on every
# start. env.sh links this cache into /tmp. Nothing of the throw-away state is kept:
# no profile shares state with another, or with the build. The cache is keyed by Node
# (version, V8 flags, uid) and Node checks each module's source hash, so it cannot
# serve stale code; a rebuilt image rebuilds it here.
#
# Best effort: on a starved host the gateway's own 5 s start-up deadlines can fail a
# start; it is tried 3 times, and an image without (all of) the cache still works, so
# the build never fails here.
set -u
: "${ORCH_COMPILE_CACHE:?}"
port=${OPENCLAW_GATEWAY_PORT:-18789}
# The gateway looks for its cache under $TMPDIR/node-compile-cache: point that at the
# image's dir, as env.sh does at run time, so the cache is written straight there.
rm -rf /tmp/node-compile-cache
ln -s "$ORCH_COMPILE_CACHE" /tmp/node-compile-cache

ready() {
    node -e 'require("http").get({host:"127.0.0.1",port:+process.argv[1],path:"/readyz",
        timeout:1000},r=>process.exit(r.statusCode===200?0:1)).on("error",()=>process.exit(1))' \
        "$port" 2>/dev/null
}

warm_once() {
    work=$(mktemp -d)
    mkdir -p "$work/config" "$work/state" "$work/workspace" "$work/home"
    cat >"$work/config/openclaw.json" <<JSON
{"gateway": {"mode": "local", "port": $port, "bind": "loopback", "auth": {"mode": "token"}},
 "agents": {"defaults": {"workspace": "$work/workspace"}}}
JSON
    export OPENCLAW_CONFIG_PATH="$work/config/openclaw.json" OPENCLAW_STATE_DIR="$work/state" \
        OPENCLAW_WORKSPACE_DIR="$work/workspace" HOME="$work/home" \
        OPENCLAW_GATEWAY_TOKEN=build-time-only-token
    openclaw gateway run >"$work/gateway.log" 2>&1 &
    pid=$!
    ok=1
    for _ in $(seq 1 300); do
        if ready; then ok=0; break; fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 1
    done
    if [ "$ok" = 0 ]; then
        openclaw status >/dev/null 2>&1 || echo "warm-start: openclaw status failed" >&2
        openclaw config validate >/dev/null 2>&1 || echo "warm-start: config validate failed" >&2
    else
        tail -3 "$work/gateway.log" >&2
    fi
    kill -TERM "$pid" 2>/dev/null
    wait "$pid"
    rm -rf "$work"
    return "$ok"
}

for attempt in 1 2 3; do
    if warm_once; then break; fi
    echo "warm-start: attempt $attempt: the gateway did not get ready" >&2
done
rm -rf /tmp/node-compile-cache /tmp/openclaw /tmp/openclaw-* /tmp/.openclaw-* 2>/dev/null
echo "warm-start: compile cache $(du -sh "$ORCH_COMPILE_CACHE" | cut -f1)"
exit 0
