"""One HTTP/1.0 request over a socket, with the stdlib's `socket` only.

Why not http.client: importing it imports `ssl` (for HTTPSConnection), about 5 ms
of every `orch up`, `status`, `check` and `down`, none of which speaks TLS; and its
TCP connect resolves the host through the `idna` codec (another 1-4 ms). What orch
asks an engine's unix socket (and a gateway's /readyz) needs neither: one request,
HTTP/1.0 so the server never answers in chunks and closes the connection after
the answer, read to its end.
"""

from __future__ import annotations

import socket

#: An answer larger than this is refused: no API call of orch's gets near it.
MAX_ANSWER = 256 << 20


class BadAnswer(OSError):
    """The peer answered something that is not HTTP (or closed before the status)."""


def unix_request(
    path: str,
    method: str,
    target: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, bytes]:
    """(status, body) of one request to the server on the unix socket `path`.
    OSError (BadAnswer among them) when it cannot be asked or does not answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        return _exchange(sock, method, target, body, headers or {})


def tcp_status(host: str, port: int, target: str, timeout: float) -> int | None:
    """The HTTP status a GET of `target` on host:port answers; None when nothing
    answers HTTP there (refused, timed out, not HTTP)."""
    try:
        with connect_tcp(host, port, timeout) as sock:
            sock.settimeout(timeout)
            # HTTP/1.1 as http.client asked it: a server may refuse 1.0; only the
            # status line is read.
            sock.sendall(_head("GET", target, host, {"Connection": "close"}, "1.1"))
            return _status_of(_read_head(sock))
    except OSError:
        return None


def connect_tcp(host: str, port: int, timeout: float) -> socket.socket:
    """socket.create_connection, with an ASCII host passed as bytes: a str host goes
    through the `idna` codec (its import is the slow part), bytes are used as they are."""
    address = host.encode("ascii") if host.isascii() else host
    return socket.create_connection((address, port), timeout=timeout)  # type: ignore[arg-type]


def _head(
    method: str, target: str, host: str, headers: dict[str, str], version: str = "1.0"
) -> bytes:
    lines = [f"{method} {target} HTTP/{version}", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _exchange(
    sock: socket.socket, method: str, target: str, body: bytes | None, headers: dict[str, str]
) -> tuple[int, bytes]:
    if body is not None:
        headers = {**headers, "Content-Length": str(len(body))}
    sock.sendall(_head(method, target, "docker", headers) + (body or b""))
    data = _read_head(sock)
    head, _, rest = data.partition(b"\r\n\r\n")
    status = _status_of(head)
    length = _content_length(head)
    chunks, size = [rest], len(rest)
    while length is None or size < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_ANSWER:
            raise BadAnswer(f"an answer larger than {MAX_ANSWER} bytes")
    answer = b"".join(chunks)
    if length is not None and size < length:
        raise BadAnswer(f"the answer ended after {size} of its {length} bytes")
    return status, answer if length is None else answer[:length]


def _read_head(sock: socket.socket) -> bytes:
    """What the peer sent up to and including the end of the headers (and any of the
    body that came with them)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            if data.startswith(b"HTTP/"):  # a head cut short still has its status
                return data
            raise BadAnswer("the connection closed before an HTTP answer")
        data += chunk
        if len(data) > 1 << 20:
            raise BadAnswer("no end of the HTTP headers in the first MiB")
    return data


def _status_of(head: bytes) -> int:
    parts = head.split(b"\r\n", 1)[0].split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        raise BadAnswer(f"not an HTTP answer: {head[:40]!r}")
    return int(parts[1])


def _content_length(head: bytes) -> int | None:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            return int(value.strip())
    return None
