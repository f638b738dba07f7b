"""The host: the images orch builds (images.py) and `orch doctor` (doctor.py)."""
