"""Workflows that span engines and files, written over the backend interface and the
fleet handle: backup and restore, upgrade and rollback, rescue, orphans."""
