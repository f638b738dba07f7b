"""Everything is in pyproject.toml; this only ships images/ inside the package.

The build contexts of the images (images/ at the top of the checkout, where the
user asked for it) become orchestrator/images in a wheel, so `pip install .`
(not editable) and then `orch images build` work. The generated parts (.cache,
the npm tree in gateway/.build) are left out.

A checkout the installing user may not write (root's, a read-only mount: a
rootless Podman user installing orch) still installs: setuptools' scratch dirs
(orch.egg-info, build/) then go to a temp dir instead of the source tree, removed
again when setup() returns.
"""

import os
import shutil
import tempfile
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

GENERATED = shutil.ignore_patterns(".cache", ".build", "__pycache__", "*.pyc")


class BuildPyWithImages(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the checkout's images/ in place
        target = Path(self.build_lib) / "orchestrator" / "images"
        shutil.copytree("images", target, dirs_exist_ok=True, ignore=GENERATED)


def scratch_options() -> dict:
    """Where setuptools writes its scratch dirs when the checkout is not writable."""
    here = Path(__file__).resolve().parent
    if os.access(here, os.W_OK) and (
        not (here / "orch.egg-info").exists() or os.access(here / "orch.egg-info", os.W_OK)
    ):
        return {}
    scratch = Path(tempfile.mkdtemp(prefix="orch-build-"))
    return {"egg_info": {"egg_base": str(scratch)}, "build": {"build_base": str(scratch / "build")}}


def remove_scratch(scratch: str) -> None:
    """Remove the scratch dir, also where copies of a read-only checkout's dirs keep
    their read-only mode (copytree copies it)."""
    for root, dirs, _ in os.walk(scratch):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o700)
    shutil.rmtree(scratch, ignore_errors=True)


options = scratch_options()
try:
    setup(cmdclass={"build_py": BuildPyWithImages}, options=options)
finally:
    # What setuptools wrote there is copied out (the wheel, the dist-info) by now.
    if "egg_info" in options:
        remove_scratch(options["egg_info"]["egg_base"])
