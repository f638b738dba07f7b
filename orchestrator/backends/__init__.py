"""Backends: one interface (base.py) to bring a fleet up and down and say how it is,
with one implementation per engine: the local Docker engine (local.py), a swarm
(swarm.py).
"""
