"""Which host dirs a profile may use, and who may write one: the pure rules
(orchestrator/core/adoption.py) and `orch check`'s dir-forbidden problem."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestrator.core.adoption import (
    ACL_GROUP,
    ACL_GROUP_OBJ,
    ACL_MASK,
    ACL_OTHER,
    ACL_USER,
    ACL_USER_OBJ,
    HostRoots,
    allows,
    forbidden_reason,
)
from orchestrator.core.check import check_fleet
from orchestrator.core.model import Dirs, Profile

from ..helpers import fleet_of

ROOTS = HostRoots(
    orch_home="/home/alice/.local/share/orch",
    homes={
        "/home/alice": "user alice",
        "/root": "user root",
        "/var/www": "user www-data",
        "/srv/bob": "user bob",
    },
)


# --- what is refused ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/", "the root of the filesystem"),
        ("/etc", "the system tree /etc"),
        ("/etc/ssh", "inside the system tree /etc"),
        ("/usr", "the system tree /usr"),
        ("/usr/share", "inside the system tree /usr"),
        ("/usr/local/lib/openclaw", "inside the system tree /usr"),
        ("/bin", "the system tree /bin"),
        ("/sbin/x", "inside the system tree /sbin"),
        ("/lib", "the system tree /lib"),
        ("/lib64", "the system tree /lib64"),
        ("/libx32/gconv", "inside the system tree /libx32"),
        ("/lib32", "the system tree /lib32"),
        ("/boot/grub", "inside the system tree /boot"),
        ("/dev/shm", "inside the system tree /dev"),
        ("/proc/self", "inside the system tree /proc"),
        ("/sys/fs/cgroup", "inside the system tree /sys"),
        ("/run/user/0", "inside the system tree /run"),
        ("/var", "a system dir"),
        ("/var/lib", "a system dir"),
        ("/var/log", "a system dir"),
        ("/var/tmp", "a system dir"),
        ("/tmp", "a system dir"),
        ("/srv", "a system dir"),
    ],
)
def test_system_trees_and_dirs_are_refused(path: str, reason: str) -> None:
    assert forbidden_reason(path, HostRoots(orch_home="/nowhere/orch")) == reason


def test_a_users_home_itself_and_every_dir_above_it_are_refused() -> None:
    assert forbidden_reason("/home/alice", ROOTS) == "the home dir of user alice"
    assert forbidden_reason("/root", ROOTS) == "the home dir of user root"
    assert forbidden_reason("/var/www", ROOTS) == "the home dir of user www-data"
    assert (
        forbidden_reason("/srv", ROOTS) == "a dir that contains the home dir of user bob (/srv/bob)"
    )
    assert forbidden_reason("/var", ROOTS) == (
        "a dir that contains the home dir of user www-data (/var/www)"
    )


def test_orch_home_itself_every_dir_above_it_and_its_own_files_are_refused() -> None:
    home = ROOTS.orch_home
    assert forbidden_reason(home, ROOTS) == "orch's own home"
    for above in ("/home/alice/.local/share", "/home/alice/.local"):
        assert forbidden_reason(above, ROOTS) == f"a dir that contains orch's home {home}"
    for inside in ("secrets", "secrets/main", "backups", "profiles", "profiles/main"):
        reason = forbidden_reason(f"{home}/{inside}", ROOTS)
        assert reason and reason.startswith(f"inside orch's home {home} but not in profiles/")


@pytest.mark.parametrize(
    "path",
    [
        "/home/alice/.openclaw-rescue",  # the example: a user's own OpenClaw dir
        "/home/alice/work/state",
        "/root/.openclaw",
        "/var/lib/openclaw",
        "/var/www/gateway",
        "/srv/openclaw/state",
        "/opt/gw",
        "/tmp/x",
        "/etcetera",  # a prefix of a tree's name is not the tree
        "/library",
        "/usr2",
        "/home/alice/.local/share/orch/profiles/main/state",  # a default dir, written out
        "/home/alice/.local/share/orch-other",
    ],
)
def test_a_dir_of_its_own_is_allowed(path: str) -> None:
    assert forbidden_reason(path, ROOTS) is None


# --- `orch check`: dirs of the fleet file, resolved -------------------------------------


def roots_for(home: Path, *homes: Path) -> HostRoots:
    return HostRoots(orch_home=str(home), homes={str(h): f"user {h.name}" for h in homes})


def test_check_resolves_dotdot_before_judging(home: Path, tmp_path: Path) -> None:
    up = "../" * (len(tmp_path.parts) - 1)  # from tmp_path back to /
    fleet = fleet_of(Profile(name="sys", port=18789, dirs=Dirs(state=tmp_path / up / "etc")))
    (problem,) = check_fleet(fleet, home, roots=roots_for(home))
    assert problem.code == "dir-forbidden"
    assert problem.owners == ("sys",)
    assert problem.paths == (str(tmp_path / up / "etc"), "/etc")
    assert "(resolves to /etc) is the system tree /etc" in problem.message
    assert "orch setup sys --state-dir DIR --force" in problem.hint


def test_check_resolves_a_relative_dir_from_the_working_dir(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fleet file: `dirs: {state: ../../../../etc}`.
    deep = tmp_path / "a" / "b" / "c"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    relative = "../" * (len(deep.parts) - 1) + "etc"
    fleet = fleet_of(Profile(name="sys", port=18789, dirs=Dirs(state=Path(relative))))
    (problem,) = check_fleet(fleet, home, roots=roots_for(home))
    assert problem.paths == (relative, "/etc")


def test_check_follows_a_symlink_before_judging(home: Path, tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to("/usr/share")
    fleet = fleet_of(Profile(name="web", port=18789, dirs=Dirs(workspace=link)))
    (problem,) = check_fleet(fleet, home, roots=roots_for(home))
    assert problem.paths == (str(link), "/usr/share")
    assert "inside the system tree /usr" in problem.message


def test_check_refuses_a_users_home_orch_home_and_what_contains_it(
    home: Path, tmp_path: Path
) -> None:
    alice = tmp_path / "alice"
    fleet = fleet_of(
        Profile(name="a", port=18789, dirs=Dirs(state=alice)),
        Profile(name="b", port=18900, dirs=Dirs(state=home)),
        Profile(name="c", port=19011, dirs=Dirs(state=home.parent)),
        Profile(name="d", port=19122, dirs=Dirs(state=home / "secrets")),
    )
    problems = check_fleet(fleet, home, roots=roots_for(home, alice))
    reasons = {p.owners[0]: p.message for p in problems if p.code == "dir-forbidden"}
    assert "is the home dir of user alice" in reasons["a"]
    assert "is orch's own home" in reasons["b"]
    assert "contains orch's home" in reasons["c"]
    assert "inside orch's home" in reasons["d"]


def test_check_never_judges_the_default_dirs(home: Path) -> None:
    # orch's home under a user's home (the usual case): its default dirs are orch's own.
    fleet = fleet_of(Profile(name="main", port=18789))
    assert check_fleet(fleet, home, roots=roots_for(home, home.parent)) == []


def test_check_without_host_roots_does_not_judge_dirs(home: Path) -> None:
    fleet = fleet_of(Profile(name="sys", port=18789, dirs=Dirs(state=Path("/etc"))))
    assert check_fleet(fleet, home) == []


# --- who may write a dir ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("owner", "mode", "expected"),
    [
        ((1000, 1000), 0o700, True),  # the gateway's user owns it
        ((1000, 1000), 0o500, False),  # ... but may not write it
        ((0, 0), 0o755, False),  # root's, the usual adopted dir of a root user
        ((0, 1000), 0o770, True),  # through its group
        ((0, 1000), 0o750, False),
        ((0, 0), 0o777, True),  # anyone may
        ((0, 0), 0o776, False),  # others may write but not enter
        ((1000, 0), 0o077, False),  # the owner's own bits decide, not the others'
    ],
)
def test_allows_follows_owner_group_and_other_bits(
    owner: tuple[int, int], mode: int, expected: bool
) -> None:
    assert allows(1000, 1000, owner, mode) is expected


def test_allows_gives_uid_0_no_pass() -> None:
    # In the container every capability is dropped: root is one more user there.
    assert allows(0, 0, (1000, 1000), 0o700) is False


def acl(*entries: tuple[int, int, int]) -> list[tuple[int, int, int]]:
    base = [(ACL_USER_OBJ, 7, 0), (ACL_GROUP_OBJ, 5, 0), (ACL_OTHER, 5, 0)]
    return base + list(entries)


def test_allows_honours_an_acl_entry_for_the_user_within_the_mask() -> None:
    # setfacl -m u:1000:rwX on a root 0755 dir: the mask becomes rwx.
    granted = acl((ACL_USER, 7, 1000), (ACL_MASK, 7, 0))
    assert allows(1000, 1000, (0, 0), 0o775, granted) is True
    masked = acl((ACL_USER, 7, 1000), (ACL_MASK, 5, 0))
    assert allows(1000, 1000, (0, 0), 0o755, masked) is False
    other_user = acl((ACL_USER, 7, 1001), (ACL_MASK, 7, 0))
    assert allows(1000, 1000, (0, 0), 0o775, other_user) is False


def test_allows_honours_an_acl_entry_for_the_group() -> None:
    granted = acl((ACL_GROUP, 7, 1000), (ACL_MASK, 7, 0))
    assert allows(1000, 1000, (0, 0), 0o775, granted) is True
    assert allows(1000, 1001, (0, 0), 0o775, granted) is False


def test_the_policy_is_pure_and_reads_nothing_of_the_host() -> None:
    # Paths that do not exist here are judged the same: nothing is looked up.
    assert not os.path.exists("/libx32/nowhere")
    assert forbidden_reason("/libx32/nowhere", ROOTS) == "inside the system tree /libx32"
