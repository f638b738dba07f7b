"""The only package that talks to the Docker engine: HTTP over its socket (api.py), the
SDK's client where it earns its place (sdk.py), the daemon itself (daemon.py),
snapshots of what runs (snapshot.py), containers from specs (containers.py), images
(images.py), `docker stack deploy` (stack.py) and orch's own container (incontainer.py).
"""
