"""A minimal keep-alive HTTP/1.1 client on raw sockets, the same for both servers (httpx costs
about 0.5 ms of CPU per request on 2 cores, which would measure the client)."""

from __future__ import annotations

import asyncio
import socket

# a lean HTTP/1.1 keep-alive client: httpx costs ~0.5 ms (sync) to ~5 ms (async, 64 clients) of
# CPU per request on this class of machine, which would measure the client, not the servers.


def http_request(host: str, path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            return int(line[15:])
    raise RuntimeError(f"no content-length in {head[:200]!r}")


class RawClient:
    """Sequential requests on one keep-alive connection."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file = self.sock.makefile("rb")

    def send(self, request: bytes) -> tuple[int, bytes]:
        self.sock.sendall(request)
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            line = self.file.readline()
            if not line:
                raise RuntimeError("connection closed")
            head += line
        return int(head[9:12]), self.file.read(_content_length(head))

    def close(self) -> None:
        self.file.close()
        self.sock.close()


async def raw_async(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bytes]:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    return int(head[9:12]), await reader.readexactly(_content_length(head))
