"""The host: the images orch builds (images.py), the gateway's config schema
(gateway_schema.py) and `orch doctor` (doctor.py)."""
