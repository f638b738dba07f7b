# Sourced by orch-entrypoint and the openclaw wrapper (POSIX sh).
#
# HOME must be writable for ANY uid: orch runs the container as the host user's
# uid:gid (1000:1000 or not), which may have no passwd entry and no home in the
# image. The image sets HOME=/openclaw/state/home (inside the mounted, writable
# state dir, so whatever openclaw or its tools keep under ~ persists with the
# profile). If that cannot be created (state dir not mounted or not writable),
# fall back to a private dir under /tmp so one-off commands still work.
if ! { [ -n "${HOME:-}" ] && mkdir -p "$HOME" 2>/dev/null && [ -w "$HOME" ]; }; then
    HOME=/tmp/openclaw-home-$(id -u)
    mkdir -p "$HOME" && chmod 700 "$HOME"
fi
export HOME

# shellcheck disable=SC2034 # used by the scripts that source this file
ORCH_TOKEN_FILE=${OPENCLAW_GATEWAY_TOKEN_FILE:-/run/secrets/openclaw_gateway_token}

# Node's compile cache of the gateway, built into the image (warm-start.sh): every
# container starts with an empty /tmp, where the gateway looks for it, so link it in.
# Only for the uid it was built as (Node keys the cache by uid; another uid compiles
# into /tmp as before). Read-only is fine: Node reads it and skips what it cannot write.
if [ -n "${ORCH_COMPILE_CACHE:-}" ] && [ -d "$ORCH_COMPILE_CACHE" ] \
    && ! [ -e /tmp/node-compile-cache ] && [ "$(stat -c %u "$ORCH_COMPILE_CACHE")" = "$(id -u)" ]; then
    ln -s "$ORCH_COMPILE_CACHE" /tmp/node-compile-cache 2>/dev/null || true
fi
