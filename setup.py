"""Everything is in pyproject.toml; this only ships images/ inside the package.

The build contexts of the images (images/ at the top of the checkout, where the
user asked for it) become orchestrator/images in a wheel, so `pip install .`
(not editable) and then `orch images build` work. The generated parts (.cache,
the npm tree in gateway/.build) are left out.
"""

import shutil
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


setup(cmdclass={"build_py": BuildPyWithImages})
