"""The pure core: the fleet model, ports, paths, the container spec, checks, the
convergence plan and the observed-host types. No Docker, no subprocess, no printing
(an import-linter contract in pyproject.toml keeps it so).
"""
