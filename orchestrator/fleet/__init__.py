"""The orch home on disk: the fleet file, each profile's dirs, token and openclaw.json,
the host registry of footprints, the check gate, backup archives and their keys, the
upgrade journal.
"""
