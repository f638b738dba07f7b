"""Backups off the host, on the real gateway and a real S3 server (SeaweedFS from
PyPI on loopback, started here and removed afterwards; one server for the module, and
the session's running pair, conftest.py `shared_pair`, whose main is backed up):
backup while the gateway runs, list, verify, tampered archives refused,
restore into a fresh home with the same token and state, prune, an upload killed
half way and one killed before its marker counting as no backup, and the errors for
a wrong endpoint, refused credentials and a missing bucket."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from s3_server import SeaweedS3, SlowProxy
from support import free_base, http_get, new_home, remove_fleet, wait_for
from test_backup import _rewrite

BUCKET = "orch-it"
URL = f"s3://{BUCKET}/site-a"


@pytest.fixture(scope="module")
def site(tmp_path_factory, engine, shared_pair):
    base = tmp_path_factory.mktemp("offsite")
    with SeaweedS3(base / "s3") as s3, pytest.MonkeyPatch.context() as mp:
        for key, value in s3.env().items():
            mp.setenv(key, value)
        # The credentials of this machine's user never leak into the test.
        mp.setenv("AWS_CONFIG_FILE", str(base / "no-aws-config"))
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(base / "no-aws-credentials"))
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        s3.client().create_bucket(Bucket=BUCKET)
        try:
            yield shared_pair.fleet, s3
        finally:
            shared_pair.restore(engine)


def _port(fleet) -> int:
    return next(r for r in fleet.json("ls")["data"]["profiles"] if r["name"] == "main")["port"]


def _db(fleet) -> Path:
    return fleet.state_dir("main") / "state" / "openclaw.sqlite"


def _write_markers(fleet, value: str) -> None:
    (fleet.workspace_dir("main") / "marker.md").write_text(value)
    db = sqlite3.connect(_db(fleet), timeout=30)
    db.execute("create table if not exists orch_it_marker (v text)")
    db.execute("delete from orch_it_marker")
    db.execute("insert into orch_it_marker values (?)", (value,))
    db.commit()
    db.close()


def _markers(fleet) -> tuple[str, str]:
    db = sqlite3.connect(f"file:{_db(fleet)}?mode=ro", uri=True, timeout=30)
    row = db.execute("select v from orch_it_marker").fetchone()
    db.close()
    return (fleet.workspace_dir("main") / "marker.md").read_text(), row[0]


def _listed(fleet, url: str = URL) -> dict:
    return fleet.json("backup", "ls", "--from", url, ok=False)["data"]


def _complete(fleet) -> list[str]:
    return [a["archive"] for a in _listed(fleet)["archives"]]


def _key(url: str) -> str:
    return url.removeprefix(f"s3://{BUCKET}/")


def test_backup_while_ready_then_ls_verify_status_and_prune(site, engine) -> None:
    fleet, _ = site
    _write_markers(fleet, "one")
    before = fleet.container(engine, "main").id
    port = _port(fleet)
    answers: list[int | None] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            answers.append(http_get(port, "/readyz")[0])
            stop.wait(0.2)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        out = fleet.json("backup", "main", "--to", URL, "--include-token")["data"]["backups"][0]
    finally:
        stop.set()
        poller.join()
    assert out["mode"] == "online" and out["archive"].startswith(URL + "/main-")
    assert answers and set(answers) == {200}, answers  # /readyz answered throughout
    assert fleet.container(engine, "main").id == before
    # Nothing left on the host: the archive was only staged there for the upload.
    assert list((fleet.home / "backups" / "main").glob("*.tar.gz")) == []

    listed = _listed(fleet)
    assert [a["archive"] for a in listed["archives"]] == [out["archive"]]
    assert listed["archives"][0]["sha256"] == out["sha256"] and listed["unreadable"] == []
    verified = fleet.json("backup", "verify", out["archive"])["data"]
    assert verified["profile"] == "main" and verified["authenticated"] == "this home's key"
    newest = fleet.json("status", ok=False)["data"]["backups"]["main"]
    assert newest["archive"] == out["archive"] and newest["age_s"] < 300

    # No credential anywhere orch writes, nor in what it prints.
    secret = os.environ["AWS_SECRET_ACCESS_KEY"]
    assert not [p for p in fleet.home.rglob("*") if p.is_file() and secret in _text(p)]

    _write_markers(fleet, "two")
    second = fleet.json("backup", "main", "--to", URL, "--include-token")["data"]["backups"][0]
    third = fleet.json("backup", "main", "--to", URL, "--include-token", "--keep", "2")
    row = third["data"]["backups"][0]
    assert row["pruned"] == [out["archive"]]
    assert _complete(fleet) == [row["archive"], second["archive"]]
    keys = [o["Key"] for o in site[1].client().list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert not [k for k in keys if _key(out["archive"]) in k]  # archive and marker gone


def _text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8", "replace")
    except OSError:
        return ""


def test_tampered_remote_archives_are_refused(site, engine, tmp_path) -> None:
    fleet, s3 = site
    client = s3.client()
    good = _complete(fleet)[0]
    before = fleet.container(engine, "main").id
    markers = _markers(fleet)
    original = tmp_path / "good.tar.gz"
    client.download_file(BUCKET, _key(good), str(original))
    marker = json.loads(
        client.get_object(Bucket=BUCKET, Key=_key(good) + ".complete.json")["Body"].read()
    )

    def plant(name: str, data: bytes, doc: dict) -> str:
        key = f"site-a/{name}"
        client.put_object(Bucket=BUCKET, Key=key, Body=data)
        body = json.dumps({**doc, "archive": name}).encode()
        client.put_object(Bucket=BUCKET, Key=key + ".complete.json", Body=body)
        return f"s3://{BUCKET}/{key}"

    # Bytes changed in the bucket, the marker left as it was: the download says so.
    flipped = bytearray(original.read_bytes())
    flipped[len(flipped) // 2] ^= 0xFF
    bitrot = plant("main-20990101T000000.000000Z.tar.gz", bytes(flipped), marker)
    # A file and its checksums rewritten, the marker fixed to match: the MAC says no.
    forged_file = tmp_path / "forged.tar.gz"
    _rewrite(original, forged_file, "workspace/marker.md", b"evil")
    data = forged_file.read_bytes()
    fixed = {
        **marker,
        "sha256": hashlib.sha256(data).hexdigest(),
        "archive_bytes": len(data),
        "created": "2099-01-02T00:00:00+00:00",  # the newest: what --latest picks
    }
    forged = plant("main-20990102T000000.000000Z.tar.gz", data, fixed)

    for url, said in ((bitrot, "sha256 of its completion marker"), (forged, "not authenticated")):
        refused = fleet.run("backup", "verify", url, ok=False)
        assert refused.returncode == 1 and said in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr
        restore = fleet.run("restore", "main", url, "--yes", ok=False)
        assert restore.returncode == 1 and said in restore.stderr, restore.stderr
    # The newest "backup" by its marker is the forged one: --latest refuses it too.
    latest = fleet.run("restore", "main", "--latest", "--from", URL, "--yes", ok=False)
    assert latest.returncode == 1 and "not authenticated" in latest.stderr
    assert _markers(fleet) == markers and fleet.container(engine, "main").id == before
    assert http_get(_port(fleet), "/readyz")[0] == 200
    leftovers = list((fleet.home / "backups").rglob(".orch-backup-*"))
    assert leftovers == []  # the downloads went
    for url in (bitrot, forged):
        client.delete_objects(
            Bucket=BUCKET,
            Delete={"Objects": [{"Key": _key(url)}, {"Key": _key(url) + ".complete.json"}]},
        )


def test_restore_into_a_fresh_home_with_the_same_token_and_state(site, engine, tmp_path) -> None:
    fleet, _ = site
    newest = _complete(fleet)[0]
    key_file = tmp_path / "site-a.key"
    fleet.run("backup", "key", "export", str(key_file))
    other = new_home(tmp_path / "fresh")
    try:
        other.run("backup", "key", "import", str(key_file))
        other.run("setup", "main", "--port", str(free_base()))
        assert other.token("main") != fleet.token("main")
        asked = other.run("restore", "main", "--latest", "--from", URL, ok=False)
        assert asked.returncode == 2 and "--yes" in asked.stderr
        done = other.json("restore", "main", "--latest", "--from", URL, "--yes")["data"]
        assert done["ok"] and done["archive"] == newest
        assert "what changed since then is not in it" in done["note"]
        assert other.token("main") == fleet.token("main")  # taken from the archive
        other.run("up", "main", "--timeout", "300", timeout=400)
        assert _markers(other) == ("two", "two")
        port = other.json("ls")["data"]["profiles"][0]["port"]
        wait_for(lambda: http_get(port, "/readyz")[0] == 200, 120, "the restored gateway")
    finally:
        remove_fleet(engine, other)


def test_an_upload_killed_half_way_or_before_its_marker_is_no_backup(site, tmp_path) -> None:
    fleet, s3 = site
    complete = _complete(fleet)
    with SlowProxy(s3.ports["s3.port"], rate=1_000_000) as proxy:
        env = {**os.environ, "ORCH_HOME": str(fleet.home)}
        env["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{proxy.port}"
        proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "backup", "main", "--to", URL],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            wait_for(lambda: proxy.sent > 1_500_000, 120, "the upload under way")
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
    assert _complete(fleet) == complete  # nothing counted

    killed = fleet.run(
        "backup", "main", "--to", URL, ok=False, env={"ORCH_TEST_KILL_AT": "offsite:uploaded"}
    )
    assert killed.returncode == -signal.SIGKILL
    listed = _listed(fleet)
    assert [a["archive"] for a in listed["archives"]] == complete
    [half] = [u for u in listed["unreadable"] if "no completion marker" in u["error"]]
    assert fleet.run("backup", "ls", "--from", URL, ok=False).returncode == 1
    refused = fleet.run("backup", "verify", half["archive"], ok=False)
    assert refused.returncode == 1 and "not a complete backup" in refused.stderr
    # The next backup cleans what the kills left on the host, and prunes complete
    # archives only: the incomplete one stays, listed, until removed by hand.
    row = fleet.json("backup", "main", "--to", URL, "--keep", "2")["data"]["backups"][0]
    assert _complete(fleet) == [row["archive"], complete[0]]
    assert half["archive"] in [u["archive"] for u in _listed(fleet)["unreadable"]]
    assert list((fleet.home / "backups" / "main").glob(".orch-backup-*")) == []


def test_wrong_endpoint_refused_credentials_and_missing_bucket_are_clear(site) -> None:
    fleet, _ = site
    cases = [
        ({"AWS_ENDPOINT_URL": "http://127.0.0.1:9"}, URL, "does not answer", "AWS_ENDPOINT_URL"),
        ({"AWS_SECRET_ACCESS_KEY": "wrong"}, URL, "refused the credentials", "AWS_ACCESS_KEY_ID"),
        ({"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}, URL, "no S3 credentials", "AWS_"),
        ({}, "s3://orch-it-missing/x", "does not exist", "create it"),
    ]
    for env, url, said, hint in cases:
        for args in (("backup", "main", "--to", url), ("backup", "ls", "--from", url)):
            proc = fleet.run(*args, ok=False, env=env)
            assert proc.returncode == 1, (args, env, proc.stderr)
            assert said in proc.stderr and hint in proc.stderr, proc.stderr
            assert "Traceback" not in proc.stderr and os.environ["AWS_SECRET_ACCESS_KEY"] not in (
                proc.stdout + proc.stderr
            )
        doc = fleet.json("backup", "main", "--to", url, ok=False, env=env)
        assert doc["ok"] is False and said in doc["error"]["message"]
    bad = fleet.run("backup", "main", "--to", "s3://Bad_Bucket", ok=False)
    assert bad.returncode == 2 and "bucket name" in bad.stderr
    assert list((fleet.home / "backups" / "main").glob(".orch-backup-*")) == []


def test_schedule_writes_a_timer_that_runs_the_same_command(site, tmp_path) -> None:
    fleet, _ = site
    out = fleet.json("backup", "schedule", "main", "--to", URL, "--keep", "7", "--every", "02:30")
    data = out["data"]
    service, timer = Path(data["service"]), Path(data["timer"])
    assert service.parent == fleet.home / "schedules"
    text = service.read_text()
    assert f"backup main --to {URL} --keep 7" in text and "OnCalendar=*-*-* 02:30:00" in (
        timer.read_text()
    )
    assert os.environ["AWS_SECRET_ACCESS_KEY"] not in text and "AWS_ENDPOINT_URL" in text
    if _has("systemd-analyze"):
        check = subprocess.run(
            ["systemd-analyze", "verify", str(service), str(timer)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert check.returncode == 0, check.stderr
    # The command the unit runs, run as the unit would: a backup that counts.
    exec_start = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    argv = exec_start.removeprefix("ExecStart=").split()
    assert Path(argv[0]).name == "orch"
    ran = subprocess.run(argv, env={**os.environ, "ORCH_HOME": str(fleet.home)}, timeout=300)
    assert ran.returncode == 0
    refused = fleet.run("backup", "schedule", "main", "--dir", "/etc/systemd/system", ok=False)
    assert refused.returncode == 2 and "--system" in refused.stderr
    cron = fleet.json("backup", "schedule", "main", "--to", URL, "--cron")["data"]["cron"]
    assert cron.startswith("0 3 * * * ") and f"backup main --to {URL}" in cron


def _has(tool: str) -> bool:
    from shutil import which

    return which(tool) is not None
