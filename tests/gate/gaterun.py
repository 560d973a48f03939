"""Run the gate inside the test process, on its own event loop in a thread.

Tests talk to it with smtplib from the main thread, as a real client would. The gate's own
command is tested separately through the installed `bouncewise gate`.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from dataclasses import replace

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from bouncewise.gate.config import GateConfig, parse_config
from bouncewise.gate.events import DecisionLog
from bouncewise.gate.server import start_server


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class GateThread:
    """The gate on 127.0.0.1:`port`, relaying to `next_hop`, until `stop()`."""

    def __init__(self, next_hop: tuple[str, int], config: GateConfig | None = None,
                 decisions_file: str = "", **settings) -> None:
        config = config or parse_config({})
        if settings:
            config = replace(config, settings=replace(config.settings, **settings))
        self.config = config
        self.next_hop = next_hop
        self.log = DecisionLog("text", decisions_file)
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.handler = None
        self._server = None
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> GateThread:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(
            start_server(self.config, ("127.0.0.1", self.port), self.next_hop, self.log),
            self.loop)
        self._server, self.handler = future.result(timeout=10)
        return self

    def __exit__(self, *exc_info) -> None:
        async def close() -> None:
            self._server.close()
            await asyncio.sleep(0)

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.log.close()

    def connections(self) -> int:
        return self.handler.connections


class NextHopSink:
    """The next hop for gate tests: an aiosmtpd server on loopback that keeps what it takes.

    `refuse` maps a recipient to the reply its RCPT gets; `data_reply` replaces the end-of-data
    reply; `drop_at_data` closes the connection once the message has arrived, as a next hop
    that crashes mid-transaction does.
    """

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.xforward: list[str] = []
        self.refuse: dict[str, str] = {}
        self.data_reply = ""
        self.drop_at_data = False
        self.port = free_port()
        self._controller = _Controller(self, hostname="127.0.0.1", port=self.port)

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def __enter__(self) -> NextHopSink:
        self._controller.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._controller.stop()

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        responses.insert(-1, "250-XFORWARD NAME ADDR PROTO HELO")
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        if self.drop_at_data:
            server.transport.close()
            return "250 never sent"
        if self.data_reply:
            return self.data_reply
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos),
                              envelope.original_content))
        return "250 2.0.0 Ok: queued as SINK"


class _XforwardSMTP(SMTP):
    """Takes XFORWARD, as Postfix's after-filter smtpd does, and keeps what it was told."""

    async def smtp_XFORWARD(self, arg):
        self.event_handler.xforward.append(arg)
        await self.push("250 2.0.0 Ok")


class _Controller(Controller):
    def factory(self):
        return _XforwardSMTP(self.handler, **self.SMTP_kwargs)
