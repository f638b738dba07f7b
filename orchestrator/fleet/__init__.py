"""The orch home on disk: the fleet file, each profile's dirs, token and openclaw.json,
the host registry of footprints, the one lock helper and the check gate.
"""
