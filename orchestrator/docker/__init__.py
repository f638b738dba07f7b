"""The only package that talks to the Docker engine: HTTP over its socket (api.py), the
daemon itself (daemon.py), snapshots of what runs (snapshot.py), containers from
specs (containers.py) and orch's own container (incontainer.py).
"""
