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
