"""orch: run several fully isolated OpenClaw gateways on one host, one container each."""

__version__ = "0.1.0"
