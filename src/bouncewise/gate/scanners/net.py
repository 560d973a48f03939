"""Socket helpers shared by the spamd, clamd and rspamd clients: connect, send, read a bounded reply.

The clients use plain non-blocking sockets with asyncio's loop.sock_* functions, not asyncio
streams, because a server may send its error line and close the connection while the client
is still sending the message. A stream transport whose write fails then discards that line
unread, so the client could report only a broken connection. With a plain socket, the client
notes the send error, reads what the server sent, and then decides which error to report.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence
from typing import Any

from bouncewise.gate.scanners import ScanError

__all__ = ["connect", "send_and_read", "read_until_closed", "read_line"]

# Bytes requested from the socket per read while reading until the server closes.
RECV_SIZE = 65_536

# (family, type, protocol, address) of one socket to try, as socket.socket() and
# loop.sock_connect() take them.
Target = tuple[int, int, int, Any]


async def connect(loop: asyncio.AbstractEventLoop, host: str, port: int | None,
                  where: str) -> socket.socket:
    """Connect a non-blocking socket to the first address of `host` that accepts on TCP
    `port`, or to the Unix socket at path `host` when `port` is None.

    Raises ScanError "<where>: connection failed: <cause>" when no connection is made.
    """
    try:
        if port is None:
            targets: list[Target] = [(socket.AF_UNIX, socket.SOCK_STREAM, 0, host)]
        else:
            found = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            targets = [(family, kind, protocol, address)
                       for family, kind, protocol, _, address in found]
        return await connect_first(loop, targets, host)
    except OSError as exc:
        raise ScanError(f"{where}: connection failed: {exc}") from exc


async def connect_first(loop: asyncio.AbstractEventLoop, targets: Sequence[Target],
                        name: str) -> socket.socket:
    """Return a non-blocking socket connected to the first of `targets` that accepts.

    Raises the OSError of the last target that failed, or an OSError naming `name` when
    `targets` is empty.
    """
    error = OSError(f"no address found for {name}")
    for family, kind, protocol, address in targets:
        connection = socket.socket(family, kind, protocol)
        connection.setblocking(False)
        try:
            await loop.sock_connect(connection, address)
            return connection
        except OSError as exc:
            connection.close()
            error = exc
        except BaseException:
            # A cancelled connect (the gate's timeout) must not leak the socket.
            connection.close()
            raise
    raise error


async def send_and_read(loop: asyncio.AbstractEventLoop, connection: socket.socket,
                        parts: Sequence[bytes], limit: int, where: str,
                        noun: str = "reply") -> tuple[bytes, OSError | None]:
    """Send `parts` in order, then read until the server closes the connection, even when
    sending failed.

    Returns the bytes read and the error that broke the connection, or None. A send error
    wins over a read error. Raises ScanError when the reply passes `limit` bytes.
    """
    send_error: OSError | None = None
    try:
        for part in parts:
            await loop.sock_sendall(connection, part)
    except OSError as exc:
        send_error = exc

    data, read_error = await read_until_closed(loop, connection, limit, where, noun)
    return data, send_error or read_error


async def read_until_closed(loop: asyncio.AbstractEventLoop, connection: socket.socket, limit: int,
                            where: str, noun: str = "reply") -> tuple[bytes, OSError | None]:
    """Read until the server closes the connection, and return the bytes read with the error
    that broke the connection, if any.

    Raises ScanError "<where>: <noun> exceeds <limit> bytes" past `limit` bytes.
    """
    data = bytearray()
    try:
        while chunk := await loop.sock_recv(connection, RECV_SIZE):
            data += chunk
            if len(data) > limit:
                raise ScanError(f"{where}: {noun} exceeds {limit} bytes")
    except OSError as exc:
        return bytes(data), exc
    return bytes(data), None


async def read_line(loop: asyncio.AbstractEventLoop, connection: socket.socket, limit: int,
                    where: str) -> bytes:
    """Read up to the first NUL byte or the end of the connection. Raise ScanError past
    `limit` bytes."""
    data = bytearray()
    while b"\0" not in data:
        chunk = await loop.sock_recv(connection, limit + 1 - len(data))
        if not chunk:
            break
        data += chunk
        if len(data) > limit:
            raise ScanError(f"{where}: reply exceeds {limit} bytes")
    return bytes(data)
