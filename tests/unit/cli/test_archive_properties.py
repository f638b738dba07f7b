"""Generated archives and manifests through the real commands (`orch backup verify`,
`orch backup ls`, `orch restore`), in process: whatever the bytes, orch answers with
a clear error (exit 1 or 2 and a message), never a traceback, and writes nothing.

Three kinds of input: raw damage (cut, flipped or foreign bytes); a valid archive
whose manifest was changed and left with its old signature (must be refused: the
MAC no longer matches); and a changed manifest signed again with this home's key
(what a bug in orch itself could write: every field still checked).
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.core.model import Profile
from orchestrator.core.paths import profile_dirs
from orchestrator.fleet import backup as bk
from orchestrator.fleet.archive_keys import signing_key

from ..helpers import fleet_of, save_with_files, snapshot

SETTINGS = settings(
    max_examples=50,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
member_paths = st.one_of(
    st.sampled_from(
        [
            "../../etc/passwd",
            "/etc/shadow",
            "config/../../x",
            "state//x",
            "workspace/./x",
            "token/../../x",
            "elsewhere/x",
            "config/\x00x",
            "config/" + "a" * 5000,
        ]
    ),
    st.text(max_size=30),
)
numbers = st.one_of(
    st.sampled_from([-1, 2**63, 10**400 // 10**300, 1 << 60]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=5),
)


@pytest.fixture
def base(home: Path) -> dict[str, Any]:
    profile = Profile(name="main", port=18789)
    save_with_files(home, fleet_of(profile))
    (profile_dirs(profile, home).workspace / "notes.md").write_text("marker\n")
    meta = {"image": "img", "openclaw_version": "2026.9.6"}
    out = bk.default_dir(home, "main")
    path, _ = bk.create_backup(profile, profile_dirs(profile, home), out, meta, signing_key(home))
    with tarfile.open(path) as tar:
        members = [(m, tar.extractfile(m).read() if m.isfile() else None) for m in tar]
    return {"home": home, "good": path, "members": members}


def _pack(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for info, data in members:
            if data is None:
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _with_manifest(base: dict[str, Any], raw: bytes, sign: bool) -> bytes:
    key = signing_key(base["home"])
    out = []
    for info, data in base["members"]:
        if info.name == bk.MANIFEST:
            data = raw
        elif info.name == bk.SIGNATURE and sign:
            doc = {"alg": "hmac-sha256", "key_id": key.key_id, "mac": key.mac(raw)}
            data = json.dumps(doc).encode()
        out.append((info, data))
    return _pack(out)


@st.composite
def changed_manifests(draw: st.DrawFn, base_doc: dict[str, Any]) -> bytes:
    doc = json.loads(json.dumps(base_doc))
    kind = draw(st.sampled_from(["field", "drop", "extra", "file", "size", "link", "raw"]))
    if kind == "field":
        doc[draw(st.sampled_from(sorted(doc)))] = draw(json_values)
    elif kind == "drop":
        doc.pop(draw(st.sampled_from(sorted(doc))))
    elif kind == "extra":
        doc[draw(st.text(min_size=1, max_size=10))] = draw(json_values)
    elif kind == "file":
        entry = draw(st.one_of(json_values, st.just({"sha256": "0" * 64, "size": 1, "mode": 1})))
        doc["files"][draw(member_paths)] = entry
    elif kind == "size":
        name = draw(st.sampled_from(sorted(doc["files"])))
        doc["files"][name][draw(st.sampled_from(["size", "mode", "sha256"]))] = draw(numbers)
    elif kind == "link":
        doc["links"][draw(member_paths)] = draw(st.one_of(member_paths, json_values))
    else:
        return draw(st.binary(max_size=200))
    return json.dumps(doc).encode()


def _manifest_doc(base: dict[str, Any]) -> dict[str, Any]:
    return json.loads(next(d for i, d in base["members"] if i.name == bk.MANIFEST))


def _damage(data: bytes, how: str, where: int, junk: bytes) -> bytes:
    where = where % max(len(data), 1)
    if how == "cut":
        return data[:where]
    if how == "flip":
        return data[:where] + bytes([data[where] ^ 0xFF]) + data[where + 1 :]
    if how == "junk":
        return junk
    return gzip.compress(junk)  # gzip, but not a tar


def _run_all(base: dict[str, Any], blob: bytes) -> list[tuple[tuple[str, ...], Any]]:
    """The three commands on one archive (beside the good one for ls); their results."""
    runner = CliRunner()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "main-20000101T000000.000000Z.tar.gz"
        path.write_bytes(blob)
        (Path(tmp) / base["good"].name).write_bytes(base["good"].read_bytes())
        results = []
        for args in (
            ("backup", "verify", str(path)),
            ("restore", "main", str(path), "--yes"),
            ("backup", "ls", "-o", tmp, "--json"),
        ):
            results.append((args, runner.invoke(app, list(args))))
        return results


def _check(results, may_pass: bool, base_name: str) -> None:
    for args, result in results:
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            args,
            result.exception,
        )
        if args[1] == "ls":
            assert result.exit_code in (0, 1), (args, result.stdout, result.stderr)
            doc = json.loads(result.stdout)
            listed = [Path(r["archive"]).name for r in doc["data"]["archives"]]
            assert base_name in listed, doc  # the bad one never hides the good one
            for row in doc["data"]["unreadable"]:
                assert row["error"], row
            continue
        if args[0] == "restore" and result.exit_code == 4:
            # The archive passed every check made without an engine: only a signed
            # manifest can, and then its files are verified before anything is stopped.
            assert may_pass, (args, result.stderr)
            continue
        if may_pass and result.exit_code == 0:
            continue
        assert result.exit_code in (1, 2), (args, result.exit_code, result.stdout, result.stderr)
        assert result.stderr.startswith("error: "), (args, result.stderr)
        assert "Traceback" not in result.stderr


@SETTINGS
@given(
    how=st.sampled_from(["cut", "flip", "junk", "gzip"]),
    where=st.integers(min_value=0, max_value=1 << 20),
    junk=st.binary(max_size=300),
)
def test_damaged_bytes_are_clear_errors_and_write_nothing(base, how, where, junk) -> None:
    blob = _damage(base["good"].read_bytes(), how, where, junk)
    before = snapshot(base["home"])
    # A flipped bit can land in a byte nobody reads (gzip header flags, a tar block's
    # padding), a cut in the gzip trailer after the tar's end: still a whole archive.
    _check(_run_all(base, blob), how in ("flip", "cut"), base["good"].name)
    assert snapshot(base["home"]) == before


@SETTINGS
@given(data=st.data(), sign=st.booleans())
def test_a_changed_manifest_is_refused_unsigned_and_checked_field_by_field_signed(
    base, data, sign: bool
) -> None:
    raw = data.draw(changed_manifests(_manifest_doc(base)))
    original = next(d for i, d in base["members"] if i.name == bk.MANIFEST)
    if raw == original:
        return  # no change: nothing to refuse
    before = snapshot(base["home"])
    # With its old signature it must be refused; signed again, it may be valid.
    _check(_run_all(base, _with_manifest(base, raw, sign)), sign, base["good"].name)
    assert snapshot(base["home"]) == before
