"""ClamAV clamd client: stream one message with the INSTREAM command and read the verdict.

The client sends "zINSTREAM\\0", then the message as chunks, each after its length as a
4-byte big-endian number, and a zero length to end the stream. clamd replies with one
NUL-terminated line: "stream: OK" (clean), "stream: <signature> FOUND" (virus), or a
line ending in "ERROR", for example "INSTREAM size limit exceeded. ERROR" when the
message is larger than clamd's StreamMaxLength.

Settings of a `[[scanner]]` table with `type = "clamd"`:

    address     "host:port" or "unix:/path/to/clamd.ctl", default "127.0.0.1:3310"
    timeout     seconds the gate allows for one scan, default 30
    chunk_size  bytes per INSTREAM chunk, default 65536
    name        name of this scanner in results and logs, default "clamd"
"""

from __future__ import annotations

import asyncio
import math
import re
import socket
import struct
from dataclasses import dataclass
from typing import Any

from bouncewise.gate.scanners import (CLEAN, DEFAULT_TIMEOUT, VIRUS, ScanError, ScanResult,
                                      check_settings, parse_address)
from bouncewise.gate.scanners.net import connect, read_line

__all__ = ["ClamdScanner", "from_settings", "parse_reply"]

DEFAULT_ADDRESS = "127.0.0.1:3310"
DEFAULT_PORT = 3310
DEFAULT_CHUNK_SIZE = 65_536
# The INSTREAM length prefix is an unsigned 32-bit number.
MAX_CHUNK_SIZE = 2**32 - 1
# The reply is one line, "stream: <signature name> FOUND" at its longest.
MAX_REPLY_BYTES = 4_096
UNIX_PREFIX = "unix:"

SETTING_KEYS = frozenset({"type", "name", "address", "timeout", "chunk_size"})

FOUND_REPLY = re.compile(r"stream: (.+) FOUND")


@dataclass(frozen=True, slots=True)
class ClamdScanner:
    """A client of one clamd server, over TCP or a Unix socket."""

    # The host name or address for TCP, or the socket path when `port` is None.
    host: str
    port: int | None
    timeout: float = DEFAULT_TIMEOUT
    chunk_size: int = DEFAULT_CHUNK_SIZE
    name: str = "clamd"

    @property
    def address(self) -> str:
        if self.port is None:
            return f"{UNIX_PREFIX}{self.host}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    async def scan(self, message: bytes) -> ScanResult:
        """Stream `message` to clamd and return its verdict. Raise ScanError when clamd fails."""
        where = f"clamd at {self.address}"
        loop = asyncio.get_running_loop()
        connection = await connect(loop, self.host, self.port, where)

        # This uses a plain non-blocking socket, not asyncio streams, because clamd sends an
        # error line and closes the connection as soon as the stream passes its
        # StreamMaxLength. A stream transport whose write fails then discards that line
        # unread. The socket is closed on every exit, a cancelled scan (the gate's timeout)
        # included.
        with connection:
            send_error: OSError | None = None
            try:
                await self._send_stream(loop, connection, message)
            except OSError as exc:
                send_error = exc
            try:
                reply = await read_line(loop, connection, MAX_REPLY_BYTES, where)
            except OSError as exc:
                cause = send_error or exc
                raise ScanError(f"{where}: connection lost: {cause}") from cause

        if send_error is not None and not reply.partition(b"\0")[0].rstrip().endswith(b"ERROR"):
            raise ScanError(f"{where}: connection lost while sending: {send_error}") from send_error
        return parse_reply(reply, self.name, where)

    async def _send_stream(self, loop: asyncio.AbstractEventLoop, connection: socket.socket,
                           message: bytes) -> None:
        await loop.sock_sendall(connection, b"zINSTREAM\0")
        view = memoryview(message)
        for start in range(0, len(view), self.chunk_size):
            chunk = view[start:start + self.chunk_size]
            await loop.sock_sendall(connection, struct.pack(">I", len(chunk)))
            await loop.sock_sendall(connection, chunk)
        await loop.sock_sendall(connection, struct.pack(">I", 0))


def parse_reply(reply: bytes, scanner: str, where: str) -> ScanResult:
    """Read a clamd reply to INSTREAM into a ScanResult.

    Raises ScanError for an error reply and for a reply that is not clamd's.
    """
    line = reply.partition(b"\0")[0].decode("utf-8", "replace").strip()
    if not line:
        raise ScanError(f"{where}: connection closed without a reply")
    if line.endswith("ERROR"):
        raise ScanError(f"{where}: clamd returned error: {line}")
    if line == "stream: OK":
        return ScanResult(CLEAN, scanner)

    match = FOUND_REPLY.fullmatch(line)
    if match is None:
        raise ScanError(f"{where}: invalid reply {line[:120]!r}: expected 'stream: OK' or "
                        f"'stream: <signature> FOUND'")
    return ScanResult(VIRUS, scanner, findings=(match[1],))


def from_settings(settings: dict[str, Any]) -> ClamdScanner:
    """Build a ClamdScanner from a `[[scanner]]` table. Raise ValueError for a bad setting."""
    address = check_settings(settings, SETTING_KEYS, "clamd") or DEFAULT_ADDRESS
    host: str
    port: int | None
    if address.startswith(UNIX_PREFIX):
        host, port = address[len(UNIX_PREFIX):], None
        if not host:
            raise ValueError(f"clamd scanner: address {address!r} has no socket path")
    else:
        host, port = parse_address(address, DEFAULT_PORT)
        if not host:
            raise ValueError(f"clamd scanner: address {address!r} has no host")

    timeout = settings.get("timeout", DEFAULT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) \
            or not math.isfinite(timeout) or timeout <= 0:
        raise ValueError(f"clamd scanner: timeout must be a positive number of seconds, got {timeout!r}")

    chunk_size = settings.get("chunk_size", DEFAULT_CHUNK_SIZE)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) \
            or not 0 < chunk_size <= MAX_CHUNK_SIZE:
        raise ValueError(f"clamd scanner: chunk_size must be a whole number of bytes from 1 to "
                         f"{MAX_CHUNK_SIZE}, got {chunk_size!r}")

    name = settings.get("name", "clamd")
    if not isinstance(name, str) or not name or not name.isprintable():
        raise ValueError(f"clamd scanner: name must be a non-empty string of printable "
                         f"characters, got {name!r}")

    return ClamdScanner(host=host, port=port, timeout=float(timeout), chunk_size=chunk_size,
                        name=name)
