"""The mechanics every layer uses: atomic writes, the lock, process ownership, where
this host keeps things. Below everything but errors; imports nothing of orch's."""
