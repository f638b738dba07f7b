"""Adopting a dir is a decision the user makes knowingly (orchestrator/fleet/adopt.py,
provision.py): an existing dir is never chowned, chmod'ed or purged unless asked,
another user's dir or one the gateway cannot write is refused with the command that
fixes it, and `--chown` changes exactly what it says, following no symlink.

Every dir here is a temp dir; system dirs are the pure policy's tests
(tests/unit/core/test_adoption.py) and, on bind-mounted copies in a private mount
namespace, tests/integration/test_host_safety.py."""

from __future__ import annotations

import os
import struct
import subprocess
from pathlib import Path

import pytest

from orchestrator.core.adoption import ACL_GROUP_OBJ, ACL_MASK, ACL_OTHER, ACL_USER, ACL_USER_OBJ
from orchestrator.core.model import Dirs, Profile
from orchestrator.core.paths import MARKER_FILE
from orchestrator.errors import OrchError, UnsafeDir
from orchestrator.fleet import provision
from orchestrator.fleet.adopt import ACL_XATTR
from orchestrator.fleet.provision import SetupRequest, purge_profiles, remove, setup
from orchestrator.fleet.store import fleet_path, load_fleet

from ..helpers import fleet_of, gateway_dir, save_with_files, snapshot, tree_state

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="changing owners needs root")

OTHER = 4242  # a user of the host who is neither root, nor you, nor the gateway's 1000


def users_tree(path: Path, uid: int = OTHER, outside: Path | None = None) -> Path:
    """An existing OpenClaw-like dir: files, a subdir, and symlinks that point out of
    it (to `outside`), all owned by `uid`."""
    (path / "agents").mkdir(parents=True)
    (path / "openclaw.sqlite").write_bytes(b"state")
    (path / "agents" / "notes.md").write_text("mine")
    os.chmod(path / "agents" / "notes.md", 0o640)
    if outside is not None:
        (path / "link-to-file").symlink_to(outside / "secret.txt")
        (path / "link-to-dir").symlink_to(outside)
    for dirpath, dirnames, filenames in os.walk(path):
        for name in [".", *dirnames, *filenames]:
            os.lchown(os.path.join(dirpath, name), uid, uid)
    return path


def outside_dir(tmp_path: Path) -> Path:
    """A dir next to the adopted one that no setup may touch (root's own)."""
    out = tmp_path / "outside"
    (out / "deep").mkdir(parents=True)
    (out / "secret.txt").write_text("not yours")
    (out / "deep" / "file").write_text("nor this")
    return out


def refused(request: SetupRequest, **kwargs) -> UnsafeDir:
    with pytest.raises(UnsafeDir) as info:
        setup(Path(os.environ["ORCH_HOME"]), request, **kwargs)
    assert info.value.exit_code == 2
    assert "nothing was changed" in info.value.message
    return info.value


def nothing_made(home: Path, name: str = "main") -> None:
    """No fleet entry, token, marker or dir of the profile (the lock file may be there)."""
    assert not fleet_path(home).exists() or name not in load_fleet(home).profiles
    assert not (home / "secrets" / name).exists()
    assert not (home / "profiles" / name).exists()


# --- refused: another user's dir, a dir the gateway cannot write -------------------------


@root_only
def test_a_dir_of_another_user_is_refused_and_nothing_changes(home: Path, tmp_path: Path) -> None:
    theirs = users_tree(tmp_path / "theirs")
    before = tree_state(theirs)
    error = refused(SetupRequest(name="main", state_dir=theirs))
    (problem,) = error.problems
    assert problem.code == "dir-other-user"
    assert f"main state dir {theirs} belongs to uid {OTHER}" in problem.message
    assert "--chown" in error.hint and f"chown -R 1000:1000 {theirs}" in error.hint
    assert tree_state(theirs) == before
    nothing_made(home)


@root_only
def test_a_root_owned_dir_the_gateway_cannot_write_is_refused_with_the_command_that_fixes_it(
    home: Path, tmp_path: Path
) -> None:
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o755)
    (mine / "openclaw.json").write_text("{}")
    before = tree_state(mine)
    error = refused(SetupRequest(name="main", config_dir=mine))
    (problem,) = error.problems
    assert problem.code == "dir-not-writable"
    assert "(owner 0:0, mode 0755) is not writable by the gateway's user 1000:1000" in (
        problem.message
    )
    assert f"setfacl -R -m u:1000:rwX {mine}" in error.hint
    assert tree_state(mine) == before
    nothing_made(home)
    # The command the hint names is all it takes.
    subprocess.run(["chown", "-R", "1000:1000", str(mine)], check=True)
    assert setup(home, SetupRequest(name="main", config_dir=mine)).adopted == {"config": mine}


@root_only
def test_a_dir_the_gateway_owns_but_may_not_write_is_refused_with_chmod(
    home: Path, tmp_path: Path
) -> None:
    mine = gateway_dir(tmp_path / "mine")
    mine.chmod(0o500)
    error = refused(SetupRequest(name="main", workspace_dir=mine))
    assert error.problems[0].code == "dir-not-writable"
    assert f"chmod u+rwx {mine}" in error.hint


@root_only
def test_an_acl_that_lets_the_gateway_write_is_enough(home: Path, tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o755)
    # What `setfacl -m u:1000:rwx mine` writes: the version, then (tag, perm, id) entries.
    entries = [
        (ACL_USER_OBJ, 7, 0xFFFFFFFF),
        (ACL_USER, 7, 1000),
        (ACL_GROUP_OBJ, 5, 0xFFFFFFFF),
        (ACL_MASK, 7, 0xFFFFFFFF),
        (ACL_OTHER, 5, 0xFFFFFFFF),
    ]
    raw = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)
    try:
        os.setxattr(mine, ACL_XATTR, raw)
    except OSError as exc:
        pytest.skip(f"no POSIX ACLs on {tmp_path}: {exc.strerror}")
    before = tree_state(mine)
    result = setup(home, SetupRequest(name="main", state_dir=mine))
    assert result.adopted == {"state": mine}
    after = tree_state(mine)
    assert after.pop(MARKER_FILE) and after == before  # owner and mode as they were


def test_a_file_where_a_dir_should_be_is_refused(home: Path, tmp_path: Path) -> None:
    file = tmp_path / "state"
    file.write_text("a file")
    error = refused(SetupRequest(name="main", state_dir=file))
    assert error.problems[0].code == "dir-not-a-dir"
    assert file.read_text() == "a file"
    nothing_made(home)


def test_orch_home_a_users_home_and_what_contains_them_are_refused_before_the_home_exists(
    home: Path, tmp_path: Path
) -> None:
    users_home = Path(os.environ["HOME"])
    for kind, path in (("state", home), ("config", users_home), ("workspace", home.parent)):
        error = refused(SetupRequest(name="main", **{f"{kind}_dir": path}))
        assert [p.code for p in error.problems] == ["dir-forbidden"]
        assert error.problems[0].paths == (str(path), str(path.resolve()))
    assert not home.exists()  # refused before even the home and its lock were made


def test_a_forbidden_dir_reached_through_a_symlink_is_refused(home: Path, tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(home.parent)  # contains orch's home
    error = refused(SetupRequest(name="main", workspace_dir=link))
    assert f"{link} (resolves to {home.parent})" in error.problems[0].message


def test_a_forbidden_dir_already_in_the_fleet_file_is_refused_at_setup(home: Path) -> None:
    save_with_files(home, fleet_of(Profile(name="main", port=18789)))
    text = fleet_path(home).read_text()
    fleet_path(home).write_text(
        text.replace("port: 18789", f"port: 18789\n    dirs: {{state: {home}}}")
    )
    before = snapshot(home)
    error = refused(SetupRequest(name="main"))
    assert error.problems[0].code == "dir-forbidden"
    assert snapshot(home) == before


# --- adopted, as it is -------------------------------------------------------------------


def test_an_adopted_dir_keeps_its_owner_and_mode_and_is_marked_adopted(
    home: Path, tmp_path: Path
) -> None:
    mine = gateway_dir(tmp_path / "mine", {"notes": "keep"})
    before = tree_state(mine)
    result = setup(home, SetupRequest(name="main", state_dir=mine))
    assert result.adopted == {"state": mine} and result.host_changes == []
    after = tree_state(mine)
    assert (mine / MARKER_FILE).read_text() == "main\nadopted\n"
    assert after.pop(MARKER_FILE) and after == before
    assert (result.dirs.config / MARKER_FILE).read_text() == "main\ncreated\n"


# --- --chown: exactly the stated change ---------------------------------------------------


@root_only
def test_chown_hands_the_tree_over_and_changes_nothing_else(home: Path, tmp_path: Path) -> None:
    outside = outside_dir(tmp_path)
    theirs = users_tree(tmp_path / "theirs", outside=outside)
    before, outside_before = tree_state(theirs), tree_state(outside)
    result = setup(home, SetupRequest(name="main", state_dir=theirs), chown=True)
    after = tree_state(theirs)
    assert after.pop(MARKER_FILE)[1:3] == (0, 0)  # orch's marker stays root's
    assert after.keys() == before.keys()
    for path, (mode, _, _, digest) in before.items():
        wanted_mode = (mode & ~0o7777) | 0o700 if path == "." else mode
        assert after[path] == (wanted_mode, 1000, 1000, digest), path
    # What it said it changed is what changed, all of it.
    owner, mode = result.host_changes
    assert (owner.what, owner.entries, owner.before, owner.after) == (
        "owner",
        len(before),
        (f"{OTHER}:{OTHER}",),
        "1000:1000",
    )
    assert (mode.what, mode.before, mode.after) == ("mode", ("0755",), "0700")
    assert tree_state(outside) == outside_before  # no symlink followed


@root_only
def test_chown_does_not_follow_a_symlink_inside_the_adopted_dir(home: Path, tmp_path: Path) -> None:
    outside = outside_dir(tmp_path)
    theirs = users_tree(tmp_path / "theirs", outside=outside)
    before = tree_state(outside)
    setup(home, SetupRequest(name="main", state_dir=theirs), chown=True)
    assert tree_state(outside) == before
    assert os.lstat(theirs / "link-to-dir").st_uid == 1000  # the link itself, as chown -R -P


@root_only
def test_chown_twice_changes_nothing_the_second_time(home: Path, tmp_path: Path) -> None:
    theirs = users_tree(tmp_path / "theirs")
    setup(home, SetupRequest(name="main", state_dir=theirs), chown=True)
    before, home_before = tree_state(theirs), snapshot(home)
    again = setup(home, SetupRequest(name="main", state_dir=theirs), chown=True)
    assert (again.action, again.host_changes) == ("unchanged", [])
    assert tree_state(theirs) == before and snapshot(home) == home_before


@root_only
def test_chown_through_a_symlinked_path_is_refused(home: Path, tmp_path: Path) -> None:
    theirs = users_tree(tmp_path / "theirs")
    link = tmp_path / "link"
    link.symlink_to(theirs)
    before = tree_state(theirs)
    error = refused(SetupRequest(name="main", state_dir=link), chown=True)
    assert error.problems[0].code == "dir-chown-symlink"
    assert f"--state-dir {theirs}" in error.hint
    assert tree_state(theirs) == before


@root_only
def test_a_failure_after_chown_puts_owners_and_mode_back(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    theirs = users_tree(tmp_path / "theirs")
    before = tree_state(theirs)

    def boom(home: Path, fleet) -> None:
        raise OSError(28, "No space left on device", str(fleet_path(home)))

    monkeypatch.setattr(provision, "save_fleet", boom)
    with pytest.raises(OrchError, match="No space left on device"):
        setup(home, SetupRequest(name="main", state_dir=theirs), chown=True)
    assert tree_state(theirs) == before
    nothing_made(home)


# --- rm --purge / down --purge: only what orch created -------------------------------------


def test_rm_purge_keeps_an_adopted_dir_and_takes_only_the_marker_out(
    home: Path, tmp_path: Path
) -> None:
    mine = gateway_dir(tmp_path / ".openclaw-rescue", {"sessions.json": "{}"})
    before = tree_state(mine)
    dirs = setup(home, SetupRequest(name="rescue", state_dir=mine)).dirs
    result = remove(home, "rescue", purge=True)
    assert tree_state(mine) == before  # the marker is out again
    assert result.adopted == [mine] and mine in result.kept
    assert sorted(result.purged) == sorted([dirs.config, dirs.workspace, dirs.secrets])
    assert not dirs.config.exists() and not dirs.workspace.exists()


def test_down_purge_keeps_adopted_dirs_too(home: Path, tmp_path: Path) -> None:
    mine = gateway_dir(tmp_path / "workspace")
    setup(home, SetupRequest(name="main", workspace_dir=mine))
    done = purge_profiles(home, ["main"])
    assert done.adopted == [mine] and mine.is_dir()
    assert home / "secrets" / "main" in done.deleted


def test_a_marker_of_an_older_orch_counts_as_created_only_in_the_default_dirs(
    home: Path, tmp_path: Path
) -> None:
    # An older orch wrote only the name, into the dirs it created and those it adopted.
    adopted = gateway_dir(tmp_path / "adopted-by-an-older-orch")
    fleet = save_with_files(
        home, fleet_of(Profile(name="main", port=18789, dirs=Dirs(state=adopted)))
    )
    dirs = provision.profile_dirs(fleet.get("main"), home)
    for _, path in dirs.items():
        (path / MARKER_FILE).write_text("main\n")
    result = remove(home, "main", purge=True)
    assert adopted.is_dir() and result.adopted == [adopted]
    assert not dirs.config.exists() and not dirs.workspace.exists()
