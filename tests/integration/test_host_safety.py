"""orch pointed at system dirs, through its real entry point, never touches them.

Each test runs orch in a private mount namespace (`unshare -m`) where the system
dirs it is pointed at are bind-mounted copies: whatever orch did, it could only
do it to the copy, and the real /etc or /usr/share of this host is never exposed.
orch does not run at all unless every copy is seen in place (a sentinel file).
The copies are compared, path by path (mode, owner, bytes), before and after.

Needs root and unshare (mount namespaces); skips with the reason elsewhere. No
Docker engine is needed or reached: every refusal comes before one would be.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))
from unit.helpers import tree_state  # noqa: E402  (the one tree snapshot of the tests)

SENTINEL = f".orch-test-copy-{uuid.uuid4().hex}"


def _namespaces_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root to bind-mount copies over system dirs"
    if not shutil.which("unshare"):
        return "needs unshare (util-linux) for a private mount namespace"
    probe = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "true"], capture_output=True, text=True
    )
    if probe.returncode != 0:
        return f"cannot make a private mount namespace here: {probe.stderr.strip()}"
    return None


pytestmark = pytest.mark.skipif(
    bool(_namespaces_unavailable()), reason=_namespaces_unavailable() or ""
)


def copy_of(source: str, dest: Path, only: tuple[str, ...] = ()) -> Path:
    """A copy (owners, modes, symlinks kept) of `source`, or of just its entries
    `only`, with the sentinel that proves it is the one mounted."""
    if only:
        dest.mkdir()
        shutil.copystat(source, dest)
        for name in only:
            subprocess.run(["cp", "-a", f"{source}/{name}", str(dest / name)], check=True)
    else:
        subprocess.run(["cp", "-a", source, str(dest)], check=True)
    (dest / SENTINEL).write_text("a copy, bind-mounted over the real dir in a test\n")
    return dest


def orch_in_namespace(
    mounts: dict[str, Path], args: list[str], home: Path, cwd: Path
) -> subprocess.CompletedProcess[str]:
    """Run `orch ARGS` in a private mount namespace with each copy mounted over its
    real path; the shell stops before orch if any mount or sentinel is missing."""
    steps = ["set -e"]
    for target, copy in mounts.items():
        steps.append(f"mount --bind {shlex.quote(str(copy))} {shlex.quote(target)}")
        steps.append(f"test -e {shlex.quote(target)}/{SENTINEL} || exit 97")
    steps.append('exec "$@"')
    env = {
        **os.environ,
        "ORCH_HOME": str(home),
        "ORCH_REGISTRY_DIR": str(home.parent / "registry"),
        "DOCKER_HOST": f"unix://{home.parent / 'no-engine.sock'}",  # never the real engine
    }
    proc = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", "\n".join(steps), "sh"]
        + [sys.executable, "-m", "orchestrator", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 97, f"a copy was not mounted; orch did not run\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


@pytest.fixture
def etc_copy(tmp_path: Path) -> Path:
    return copy_of("/etc", tmp_path / "etc-copy")


@pytest.fixture
def share_copy(tmp_path: Path) -> Path:
    # /usr/share is large: a few of its dirs (with their symlinks) are enough.
    return copy_of("/usr/share", tmp_path / "share-copy", only=("base-files", "common-licenses"))


def test_setup_of_etc_is_refused_and_the_copy_is_unchanged(tmp_path: Path, etc_copy: Path):
    before = tree_state(etc_copy)
    home = tmp_path / "home"
    proc = orch_in_namespace(
        {"/etc": etc_copy}, ["setup", "sys", "--state-dir", "/etc", "--json"], home, tmp_path
    )
    assert proc.returncode == 2, proc.stderr
    error = json.loads(proc.stdout)["error"]
    (problem,) = error["problems"]
    assert problem["code"] == "dir-forbidden"
    assert problem["message"].startswith("sys state dir /etc is the system tree /etc")
    assert tree_state(etc_copy) == before
    assert not home.exists()


def test_setup_through_a_symlink_to_usr_share_is_refused_and_the_copy_is_unchanged(
    tmp_path: Path, share_copy: Path
):
    before = tree_state(share_copy)
    work = tmp_path / "work"
    work.mkdir()
    (work / "link").symlink_to("/usr/share")
    home = tmp_path / "home"
    proc = orch_in_namespace(
        {"/usr/share": share_copy}, ["setup", "web", "--workspace-dir", "./link"], home, work
    )
    assert proc.returncode == 2, proc.stderr
    assert f"web workspace dir {work}/link (resolves to /usr/share)" in proc.stderr
    assert "inside the system tree /usr" in proc.stderr
    assert tree_state(share_copy) == before
    assert not home.exists()


def test_setup_of_a_dir_in_etc_by_dotdot_and_with_chown_is_refused(tmp_path: Path, etc_copy: Path):
    before = tree_state(etc_copy)
    home = tmp_path / "home"
    dotdot = str(tmp_path) + "/.." * len(tmp_path.parts) + "/etc/ssh"
    args = ["setup", "sys", "--config-dir", dotdot, "--chown", "--force"]
    proc = orch_in_namespace({"/etc": etc_copy}, args, home, tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "(resolves to /etc/ssh) is inside the system tree /etc" in proc.stderr
    assert tree_state(etc_copy) == before


def test_a_fleet_file_pointing_at_etc_is_refused_by_check_and_up(tmp_path: Path, etc_copy: Path):
    # The fleet file: `dirs: {state: ../../../../etc}`, from a dir that deep.
    cwd = tmp_path / "a" / "b" / "c"
    cwd.mkdir(parents=True)
    relative = "/".join([".."] * (len(cwd.parts) - 1)) + "/etc"
    home = tmp_path / "home"
    home.mkdir()
    (home / "fleet.yaml").write_text(
        "version: 1\nproject: hostsafety\nprofiles:\n"
        f"  sys:\n    port: 24789\n    dirs: {{state: {relative}}}\n"
    )
    before = tree_state(etc_copy)
    for args, code in ((["check", "--json"], 1), (["up", "--dry-run", "--json"], 1)):
        proc = orch_in_namespace({"/etc": etc_copy}, args, home, cwd)
        assert proc.returncode == code, (args, proc.stderr)
        doc = json.loads(proc.stdout)
        problems = doc["data"]["problems"] if args[0] == "check" else doc["error"]["problems"]
        forbidden = [p for p in problems if p["code"] == "dir-forbidden"]
        assert [p["paths"] for p in forbidden] == [[relative, "/etc"]], args
    assert tree_state(etc_copy) == before
