"""Exports: the fleet as files other tools run (Compose, swarm stacks), from the same
specs `orch up` uses, written atomically.
"""
