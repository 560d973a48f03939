"""An aiosmtpd SMTP sink on loopback that stores what it receives and replies as a test chooses.

Tests use it as the next hop behind a private Postfix, as a stand-in for the SMTP gate, and as a
before-queue filter that forwards accepted mail to another SMTP server.
"""

from __future__ import annotations

import asyncio
import email
import email.message
import email.policy
import logging
import smtplib
import socket
import threading
import time
from dataclasses import dataclass

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

LOG = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
# Name in the sink's greeting and EHLO reply. Setting it keeps aiosmtpd from calling
# socket.getfqdn(), which would query DNS.
SINK_HOSTNAME = "sink.test"
# How long Controller.start() waits for its server thread to send the SMTP greeting.
READY_TIMEOUT_SECONDS = 10.0
# Upper bound for one forward to the next SMTP server, so a hung server cannot hang the sink.
FORWARD_TIMEOUT_SECONDS = 30.0
WAIT_TIMEOUT_SECONDS = 30.0
ACCEPT_REPLY = "250 2.0.0 Ok: message accepted by the sink"
# Reply when forwarding fails without an SMTP reply (connection refused, timeout).
FORWARD_FAILED_REPLY = "451 4.4.1 Sink could not forward the message"


def free_port(kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    """Return a port on 127.0.0.1 (TCP, or UDP with SOCK_DGRAM) that was free a moment ago.

    The port is released before returning, so another process can take it before the caller
    binds it. Tests on one machine rarely hit that race.
    """
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def _reply_text(text: bytes | str) -> str:
    """Join the lines of a multiline SMTP reply text that smtplib returns into one line."""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return " ".join(text.splitlines())


@dataclass(frozen=True)
class ReceivedMessage:
    """One message that reached end of DATA, with the reply the sink sent for it."""

    # "" for the null reverse-path of a bounce.
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    reply: str

    @property
    def accepted(self) -> bool:
        return self.reply.startswith("2")

    def parsed(self) -> email.message.EmailMessage:
        """Parse the raw bytes with the standard library's modern email policy."""
        return email.message_from_bytes(self.data, policy=email.policy.default)


class _SinkHandler:
    """aiosmtpd handler that applies the sink's reply rules and records each message."""

    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        reply = self.sink.recipient_reply(address)
        if reply is not None:
            LOG.info("sink %s: rejected RCPT %s with %r", self.sink.port, address, reply)
            return reply

        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope,
                          hostname: str, responses: list[str]) -> list[str]:
        # Postfix's after-filter smtpd takes XFORWARD from the filter in front of it.
        session.host_name = hostname
        responses.insert(-1, "250-XFORWARD NAME ADDR PROTO HELO")
        return responses

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.sink.drop_at_data:
            # A next hop that crashes once the message has arrived, before it replies.
            server.transport.close()
            return "250 never sent"

        # original_content is the raw bytes whatever decode_data is.
        data = envelope.original_content or b""
        reply = self.sink.data_reply()
        if reply is None and self.sink.forward_to is not None:
            loop = asyncio.get_running_loop()
            reply = await loop.run_in_executor(None, self.sink.forward, envelope.mail_from,
                                               list(envelope.rcpt_tos), data)
        if reply is None:
            reply = ACCEPT_REPLY

        # aiosmtpd stores the null reverse-path as "<>".
        mail_from = "" if envelope.mail_from in (None, "<>") else envelope.mail_from
        self.sink.record(ReceivedMessage(mail_from=mail_from, rcpt_tos=tuple(envelope.rcpt_tos),
                                         data=data if self.sink.keep_data else b"", reply=reply))
        return reply


class _SinkSMTP(SMTP):
    """aiosmtpd's server with XFORWARD, whose attributes the sink keeps in `xforward`."""

    async def smtp_XFORWARD(self, arg: str) -> None:
        self.event_handler.sink.xforward.append(arg)
        await self.push("250 2.0.0 Ok")


class _SinkController(Controller):
    def factory(self) -> SMTP:
        return _SinkSMTP(self.handler, **self.SMTP_kwargs)


class SmtpSink:
    """SMTP server on 127.0.0.1 that stores each message and replies with chosen replies.

    By default it accepts every recipient and every message. `reject_recipient` makes it reply to
    RCPT TO for one address with a chosen reply, and `set_data_reply` makes it reply to every end
    of DATA with a chosen reply. With `forward_to`, it passes each message it does not reject to
    that SMTP server and returns that server's reply, the way a before-queue filter does.
    Messages are stored, with the reply sent, in arrival order, and can be read from any thread.
    """

    def __init__(self, port: int | None = None, *, host: str = LOOPBACK,
                 forward_to: tuple[str, int] | None = None, keep_data: bool = True) -> None:
        self.host = host
        # False: store each message without its bytes, for tests that send many large ones.
        self.keep_data = keep_data
        self.port = port if port is not None else free_port()
        self.forward_to = forward_to
        self._lock = threading.Condition()
        self._messages: list[ReceivedMessage] = []
        self._recipient_replies: dict[str, str] = {}
        self._data_reply: str | None = None
        # Close the connection at end of DATA without a reply, as a crashing server does.
        self.drop_at_data = False
        # The argument of each XFORWARD command received.
        self.xforward: list[str] = []
        self._controller = _SinkController(_SinkHandler(self), hostname=host, port=self.port,
                                           ready_timeout=READY_TIMEOUT_SECONDS,
                                           server_hostname=SINK_HOSTNAME)

    def start(self) -> SmtpSink:
        self._controller.start()
        LOG.info("sink started on %s:%s", self.host, self.port)
        return self

    def stop(self) -> None:
        self._controller.stop()
        LOG.info("sink stopped on %s:%s", self.host, self.port)

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def reject_recipient(self, address: str, reply: str) -> None:
        """Reply `reply` (for example "550 5.1.1 No such user") to RCPT TO:<address>."""
        with self._lock:
            self._recipient_replies[address.lower()] = reply

    def set_data_reply(self, reply: str | None) -> None:
        """Reply `reply` to every end of DATA from now on. None restores accepting."""
        with self._lock:
            self._data_reply = reply

    def reset(self) -> None:
        """Forget stored messages and reply rules."""
        with self._lock:
            self._messages.clear()
            self._recipient_replies.clear()
            self._data_reply = None

    def recipient_reply(self, address: str) -> str | None:
        with self._lock:
            return self._recipient_replies.get(address.lower())

    def data_reply(self) -> str | None:
        with self._lock:
            return self._data_reply

    def record(self, message: ReceivedMessage) -> None:
        with self._lock:
            self._messages.append(message)
            self._lock.notify_all()
        LOG.info("sink %s: message from <%s> to %s, %d bytes, replied %r", self.port,
                 message.mail_from, ", ".join(message.rcpt_tos), len(message.data), message.reply)

    def messages(self, *, accepted_only: bool = True) -> list[ReceivedMessage]:
        """Return a copy of the stored messages, by default only those the sink accepted."""
        with self._lock:
            return [message for message in self._messages
                    if message.accepted or not accepted_only]

    def wait_for_message(self, containing: bytes, *, accepted_only: bool = True,
                         timeout: float = WAIT_TIMEOUT_SECONDS) -> ReceivedMessage:
        """Wait until a stored message contains `containing` in its raw bytes and return it.

        Raises TimeoutError naming the text and the number of messages seen when none arrives in
        `timeout` seconds.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for message in self._messages:
                    if containing in message.data and (message.accepted or not accepted_only):
                        return message
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"sink {self.host}:{self.port}: no message containing "
                                       f"{containing!r} within {timeout} s "
                                       f"({len(self._messages)} messages stored)")
                self._lock.wait(remaining)

    def forward(self, mail_from: str | None, rcpt_tos: list[str], data: bytes) -> str:
        """Send one message to `forward_to` and return that server's reply as one line."""
        assert self.forward_to is not None
        host, port = self.forward_to
        try:
            with smtplib.SMTP(host, port, local_hostname=SINK_HOSTNAME,
                              timeout=FORWARD_TIMEOUT_SECONDS) as client:
                client.ehlo()
                code, text = client.mail(mail_from or "")
                if code >= 400:
                    return f"{code} {_reply_text(text)}"
                # NOTE: recipients that the next server rejects are dropped without a reply to
                # the sender, because the sink sends one reply for the whole message.
                accepted = []
                for recipient in rcpt_tos:
                    code, text = client.rcpt(recipient)
                    if code < 400:
                        accepted.append(recipient)
                if not accepted:
                    return f"{code} {_reply_text(text)}"
                code, text = client.data(data)
                return f"{code} {_reply_text(text)}"
        except smtplib.SMTPResponseException as error:
            return f"{error.smtp_code} {_reply_text(error.smtp_error)}"
        except (OSError, smtplib.SMTPException) as error:
            LOG.warning("sink %s: forwarding to %s:%s failed: %s", self.port, host, port, error)
            return FORWARD_FAILED_REPLY
