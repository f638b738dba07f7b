"""Backends: the fleet handle each command builds (project.py) and the one interface
every engine implements (base.py): the local Docker engine (local.py), a swarm
(swarm.py).
"""
