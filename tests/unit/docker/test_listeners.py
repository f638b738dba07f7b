"""The host's listening sockets, as `orch up` plans against them: the kernel's
sock_diag answer is /proc/net/tcp's, sockets (inodes) and addresses alike
(docker/snapshot.py). Reads only this process's own sockets on loopback."""

from __future__ import annotations

import contextlib
import os
import socket

import pytest

from orchestrator.docker import snapshot


def _listening(family: int, host: str) -> socket.socket | None:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.bind((host, 0))
    except OSError:  # no IPv6 here
        sock.close()
        return None
    sock.listen()
    return sock


def _key(listener) -> tuple[str, int, int]:
    return listener.host_ip, listener.port, listener.inode


def test_sock_diag_finds_what_proc_net_tcp_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    with contextlib.ExitStack() as stack:
        mine = []
        for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
            sock = _listening(family, host)
            if sock is not None:
                stack.enter_context(sock)
                mine.append((host, sock.getsockname()[1], os.fstat(sock.fileno()).st_ino))
        client = stack.enter_context(socket.create_connection(("127.0.0.1", mine[0][1])))
        client_port = client.getsockname()[1]
        diag = {_key(lst) for lst in snapshot._diag_listeners()}
        monkeypatch.setenv("ORCH_HOST_PROC", "/proc/self/..")  # the real one, read as files
        from_files = {_key(lst) for lst in snapshot.host_listeners()}
    assert set(mine) <= diag
    # A connected socket is not listening: neither reading has it.
    assert client_port not in {port for _, port, _ in diag}
    # Ours for sure; the rest of the host too, bar a socket opened or closed in between.
    assert {k for k in diag if k[1] in {p for _, p, _ in mine}} == {
        k for k in from_files if k[1] in {p for _, p, _ in mine}
    }


def test_without_the_hosts_proc_the_files_named_are_read(monkeypatch, tmp_path) -> None:
    """$ORCH_HOST_PROC (the host's proc in a container, an empty dir in unit tests)
    is read as files: sock_diag would answer for the wrong network namespace."""
    net = tmp_path / "net"
    net.mkdir()
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt"
    header += "   uid  timeout inode\n"
    row = "   0: 0100007F:4E20 00000000:0000 0A 00000000:00000000 00:00000000 00000000"
    row += "     0        0 4242 1\n"
    (net / "tcp").write_text(header + row)
    monkeypatch.setenv("ORCH_HOST_PROC", str(tmp_path))
    assert [_key(lst) for lst in snapshot.host_listeners()] == [("127.0.0.1", 20000, 4242)]
