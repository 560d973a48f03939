"""A minimal HTTP endpoint that serves the gate's counters to Prometheus at /metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["start_metrics"]

# Maximum bytes of a request's head; scrapers send a few hundred.
MAX_REQUEST_HEAD = 8192

# Seconds a scraper has to send its request.
REQUEST_TIMEOUT = 10.0


async def start_metrics(address: tuple[str, int], render: Callable[[], str]) -> asyncio.Server:
    """Serve `render()` at http://HOST:PORT/metrics; return the server."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT)
            request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
            method, path = (request_line.split() + ["", ""])[:2]
            if method == "GET" and path.split("?", 1)[0] == "/metrics":
                status, body = "200 OK", render().encode()
            else:
                status, body = "404 Not Found", b"not found: try /metrics\n"
            writer.write(f"HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\n"
                         f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                         + body)
            await writer.drain()
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ConnectionError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(answer, address[0], address[1], limit=MAX_REQUEST_HEAD)
