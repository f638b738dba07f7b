"""Backups, restores, upgrades and rollbacks of real gateways (main + rescue, one pair
for the whole module): markers in the workspace, the config dir and the gateway's
own SQLite state survive every step, and every failure leaves the gateway ready."""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import subprocess
import tarfile
import threading
import uuid
from pathlib import Path

import pytest
from support import derived_image, free_base, http_get, new_home, remove_fleet

from orchestrator.core.spec import STATE_DIR


@pytest.fixture(scope="module")
def pair(tmp_path_factory, engine, gateway_image):
    fleet = new_home(tmp_path_factory.mktemp("backup") / "home")
    tag = f"orch/openclaw-gateway:it-second-{uuid.uuid4().hex[:6]}"
    broken = f"orch/it-broken:{uuid.uuid4().hex[:6]}"
    ctx = tmp_path_factory.mktemp("broken")
    # The broken image changes the state before it fails (as a migration would), so
    # that putting the state back after the failed upgrade is observable.
    script = (
        f"echo broken > {STATE_DIR}/broken-marker && echo broken-image-wrote-state >&2;"
        " echo broken-image-start >&2; exit 1"
    )
    derived_image(ctx, gateway_image, broken, f"ENTRYPOINT {json.dumps(['sh', '-c', script])}")
    subprocess.run(["docker", "tag", gateway_image, tag], check=True)
    try:
        fleet.run("setup", "main", "--port", str(free_base()))
        fleet.run("setup", "rescue", "--port", str(free_base()), "--rescues", "main")
        fleet.run("up", "--timeout", "300", timeout=400)
        yield fleet, gateway_image, tag, broken
    finally:
        remove_fleet(engine, fleet)
        subprocess.run(["docker", "rmi", "-f", tag, broken], capture_output=True)


def _port(fleet, name: str) -> int:
    return next(r for r in fleet.json("ls")["data"]["profiles"] if r["name"] == name)["port"]


def _db(fleet, name: str) -> Path:
    return fleet.state_dir(name) / "state" / "openclaw.sqlite"


def _write_markers(fleet, name: str, value: str) -> None:
    (fleet.workspace_dir(name) / "marker.md").write_text(value)
    (fleet.home / "profiles" / name / "config" / "marker.txt").write_text(value)
    db = sqlite3.connect(_db(fleet, name), timeout=30)
    db.execute("create table if not exists orch_it_marker (v text)")
    db.execute("delete from orch_it_marker")
    db.execute("insert into orch_it_marker values (?)", (value,))
    db.commit()
    db.close()


def _markers(fleet, name: str) -> tuple[str, str, str]:
    db = sqlite3.connect(f"file:{_db(fleet, name)}?mode=ro", uri=True, timeout=30)
    row = db.execute("select v from orch_it_marker").fetchone()
    db.close()
    return (
        (fleet.workspace_dir(name) / "marker.md").read_text(),
        (fleet.home / "profiles" / name / "config" / "marker.txt").read_text(),
        row[0],
    )


def _rewrite(src: Path, dst: Path, name: str, data: bytes) -> None:
    """What someone holding the archive can do: change a file, fix its checksum and
    size in the manifest, pack it again."""
    with tarfile.open(src) as tin, tarfile.open(dst, "w:gz") as tout:
        for member in tin:
            content = tin.extractfile(member).read() if member.isfile() else None
            if member.name == "manifest.json":
                doc = json.loads(content)
                doc["files"][name].update(sha256=hashlib.sha256(data).hexdigest(), size=len(data))
                content = json.dumps(doc).encode()
            elif member.name == name:
                content = data
            if content is not None:
                member.size = len(content)
            tout.addfile(member, io.BytesIO(content) if content is not None else None)


def _ready(fleet, name: str) -> bool:
    return http_get(_port(fleet, name), "/readyz")[0] == 200


def test_online_backup_restore_and_tampered_archive(pair, engine) -> None:
    fleet, _, _, _ = pair
    _write_markers(fleet, "main", "one")
    token = fleet.token("main")
    before = fleet.container(engine, "main").id
    port = _port(fleet, "main")
    answers: list[int | None] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            answers.append(http_get(port, "/readyz")[0])
            stop.wait(0.2)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        out = fleet.json("backup", "main")
    finally:
        stop.set()
        poller.join()
    row = out["data"]["backups"][0]
    archive = Path(row["archive"])
    assert row["mode"] == "online" and row["downtime_s"] is None
    assert answers and set(answers) == {200}, answers  # /readyz answered throughout
    assert fleet.container(engine, "main").id == before  # it never stopped
    assert archive.stat().st_mode & 0o777 == 0o600
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        contents = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}
    assert "state/state/openclaw.sqlite" in names
    assert not any("gateway_token" in n for n in names)
    # The token is in no member (the archive itself is compressed: read the members).
    assert len(contents) > 3
    assert [n for n, data in contents.items() if token.encode() in data] == []
    assert fleet.json("backup", "verify", str(archive))["data"]["profile"] == "main"
    listed = fleet.json("backup", "ls", "main")["data"]["archives"]
    assert [a["archive"] for a in listed] == [str(archive)]

    _write_markers(fleet, "main", "two")
    # A tampered archive is refused and the profile is untouched.
    bad = archive.with_name("tampered.tar.gz")
    with tarfile.open(archive) as tin, tarfile.open(bad, "w:gz") as tout:
        for member in tin:
            if member.name == "workspace/marker.md":
                data = b"evil"
                member.size = len(data)
                tout.addfile(member, io.BytesIO(data))
            else:
                tout.addfile(member, tin.extractfile(member) if member.isfile() else None)
    refused = fleet.run("restore", "main", str(bad), "--yes", ok=False)
    assert refused.returncode == 1 and "checksum" in refused.stderr
    assert _markers(fleet, "main") == ("two", "two", "two")
    assert fleet.container(engine, "main").id == before and _ready(fleet, "main")
    foreign = fleet.run("restore", "rescue", str(archive), "--yes", ok=False)
    assert foreign.returncode == 1 and "not 'rescue'" in foreign.stderr
    # A file and its checksum rewritten, packed again: the checksums agree, the MAC not.
    _rewrite(archive, bad, "workspace/marker.md", b"evil")
    forged = fleet.run("restore", "main", str(bad), "--yes", ok=False)
    assert forged.returncode == 1 and "not authenticated" in forged.stderr, forged.stderr
    assert _markers(fleet, "main") == ("two", "two", "two")
    assert fleet.container(engine, "main").id == before and _ready(fleet, "main")
    bad.unlink()

    result = fleet.json("restore", "main", str(archive), "--yes", timeout=400)["data"]
    assert result["ok"] and result["downtime_s"] > 0
    assert _markers(fleet, "main") == ("one", "one", "one")
    assert fleet.token("main") == token and _ready(fleet, "main") and _ready(fleet, "rescue")
    leftovers = [p.name for p in (fleet.home / "profiles" / "main").iterdir()]
    assert sorted(leftovers) == ["config", "state", "workspace"]

    # Offline: the engine's backend stops the gateway for the copy and starts the same
    # container again, ready; the result says how long it was down.
    offline = fleet.json("backup", "main", "--offline", timeout=400)["data"]["backups"][0]
    assert offline["mode"] == "offline" and offline["downtime_s"] > 0
    assert offline["container_id"] == before and _ready(fleet, "main")


def test_upgrade_to_a_second_tag_then_a_broken_image_then_rollback(pair, engine) -> None:
    fleet, original, second, broken = pair
    _write_markers(fleet, "main", "three")
    out = fleet.json("upgrade", "--image", second, timeout=600)["data"]["results"]
    assert [r["profile"] for r in out] == ["rescue", "main"]  # rescue first
    assert all(r["ok"] for r in out), out
    assert _ready(fleet, "main") and _ready(fleet, "rescue")
    assert (
        fleet.container(engine, "main").image.tags == fleet.container(engine, "rescue").image.tags
    )
    assert second in fleet.container(engine, "main").image.tags
    assert "image: " + second in (fleet.home / "fleet.yaml").read_text()
    assert _markers(fleet, "main") == ("three", "three", "three")

    failed = fleet.run("upgrade", "main", "--image", broken, ok=False, timeout=600)
    assert failed.returncode == 5, failed.stderr
    assert "broken-image-start" in failed.stdout + failed.stderr  # the new image's log tail
    # It did write into the state before failing; the state of before is back.
    assert "broken-image-wrote-state" in failed.stdout + failed.stderr
    assert not (fleet.state_dir("main") / "broken-marker").exists()
    assert _ready(fleet, "main")
    assert second in fleet.container(engine, "main").image.tags
    assert broken not in (fleet.home / "fleet.yaml").read_text()
    assert _markers(fleet, "main") == ("three", "three", "three")

    _write_markers(fleet, "main", "four")
    asked = fleet.run("rollback", "main", ok=False)
    assert asked.returncode == 2 and "loses" in asked.stderr
    done = fleet.json("rollback", "main", "--yes", timeout=400)["data"]
    assert done["ok"] and done["image"] == original
    assert _ready(fleet, "main") and original in fleet.container(engine, "main").image.tags
    # The state of the snapshot taken before the upgrade: "four" is lost, as it said.
    assert _markers(fleet, "main") == ("three", "three", "three")
