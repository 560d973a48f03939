"""The gate's SMTP server: hooks named after the SMTP commands, each returning the reply.

The server forwards a client's MAIL and RCPT to the next hop as they come. It reads the whole
message and has the scanners read it. Then it rejects the message, or sends it on and passes
the next hop's reply to the client. It replies 250 only to a message the next hop has taken,
and 4xx whenever a scanner or the next hop fails, so the client retries.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from dataclasses import dataclass, field

from aiosmtpd.smtp import SMTP, Envelope, Session

from bouncewise.gate.config import GateConfig
from bouncewise.gate.events import Decision, DecisionLog, new_reference
from bouncewise.gate.relay import XFORWARD_ATTRIBUTES, NextHop, NextHopError, Reply
from bouncewise.gate.scanners import CLEAN, SEVERITY, ScanError, ScanResult

__all__ = ["GateHandler", "GateSMTP", "ListenError", "serve", "start_server"]

LOGGER = logging.getLogger("bouncewise.gate")

# aiosmtpd's own replies for data it dropped, which the gate replaces with its templates.
_AIOSMTPD_SIZE_REPLIES = ("552 Error: Too much mail data",
                          "552 Error: message size exceeds fixed maximum message size")
_AIOSMTPD_LINE_REPLY = "500 Line too long"

# ESMTP parameters that aiosmtpd does not know: the gate takes them off the command before
# aiosmtpd reads it and passes them to the next hop as the client wrote them (DSN, RFC 3461;
# AUTH=, RFC 4954), so that Postfix in front of the gate can keep offering DSN.
_PASSED_MAIL_PARAMETERS = frozenset(("RET", "ENVID", "AUTH"))
_PASSED_RCPT_PARAMETERS = frozenset(("NOTIFY", "ORCPT"))

# Seconds added to the scanners' and the next hop's timeouts while the client waits for the
# reply to its message, so that the client's idle timeout does not cut that wait short.
_REPLY_WAIT_MARGIN = 30.0

# Longest XFORWARD attribute value kept.
_MAX_XFORWARD_VALUE = 255

# Seconds a stopping gate waits for transactions in progress before it closes them.
SHUTDOWN_GRACE = 30.0


class ListenError(Exception):
    """An address given to --listen or --metrics cannot be bound."""


@dataclass
class _Transaction:
    """State of one client connection, kept between its commands."""

    next_hop: NextHop
    ref: str = ""
    started: float = 0.0
    xforward: dict[str, str] = field(default_factory=dict)
    recipient_limit_logged: bool = False


class GateHandler:
    """The SMTP hooks of the gate. aiosmtpd calls `handle_<COMMAND>` and sends what it returns."""

    def __init__(self, config: GateConfig, next_hop: tuple[str, int], log: DecisionLog) -> None:
        self.config = config
        self.settings = config.settings
        self.next_hop_address = next_hop
        self.log = log
        self.connections = 0

    # The session hooks.

    def transaction(self, session: Session) -> _Transaction:
        state = getattr(session, "gate", None)
        if state is None:
            host, port = self.next_hop_address
            state = _Transaction(NextHop(host, port, self.settings.hostname,
                                         self.settings.next_hop_timeout))
            session.gate = state  # type: ignore[attr-defined]
        return state

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope,
                          hostname: str, responses: list[str]) -> list[str]:
        session.host_name = hostname
        responses.insert(-1, "250-DSN")
        if self.xforward_allowed(session):
            # Postfix's before-queue proxy sends the real client's name and address.
            responses.insert(-1, "250-XFORWARD " + " ".join(XFORWARD_ATTRIBUTES))
        return responses

    def xforward_allowed(self, session: Session) -> bool:
        peer = session.peer
        host = peer[0] if isinstance(peer, tuple) and peer else ""
        return host in self.settings.xforward_hosts

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        state = self.transaction(session)
        state.ref = new_reference()
        state.started = time.monotonic()
        state.recipient_limit_logged = False
        # aiosmtpd writes the null reverse-path of a bounce as "<>".
        sender = "" if address == "<>" else address
        options = mail_options + getattr(server, "passed_parameters", [])

        _extend_timeout(server, self.settings.next_hop_timeout + _REPLY_WAIT_MARGIN)
        try:
            reply = await state.next_hop.mail(sender, options, state.xforward)
        except NextHopError as error:
            return self._refuse(session, envelope, "next-hop-failure", "next_hop_failure",
                                error=str(error), sender=address)
        if not reply.positive:
            return self._pass_refusal(session, envelope, reply, sender=address)

        # aiosmtpd needs a non-empty mail_from to know MAIL was given, so "<>" stays.
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return str(reply)

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        state = self.transaction(session)
        if len(envelope.rcpt_tos) >= self.settings.max_recipients:
            refusal = self.config.replies.render("recipients", ref=state.ref,
                                                 limit=self.settings.max_recipients,
                                                 hostname=self.settings.hostname)
            if not state.recipient_limit_logged:
                # One line per transaction, not one per refused recipient.
                state.recipient_limit_logged = True
                self._record(session, envelope, "recipients", refusal)
            return refusal

        _extend_timeout(server, self.settings.next_hop_timeout + _REPLY_WAIT_MARGIN)
        try:
            reply = await state.next_hop.rcpt(address, envelope.smtp_utf8,
                                              getattr(server, "passed_parameters", []))
        except NextHopError as error:
            return self._refuse(session, envelope, "next-hop-failure", "next_hop_failure",
                                error=str(error), recipients=(address,))
        if reply.positive:
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(rcpt_options)
        return str(reply)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        state = self.transaction(session)
        content = envelope.original_content or b""
        longest_scan = max((scanner.timeout for scanner in self.config.scanners), default=0.0)
        _extend_timeout(server, longest_scan + self.settings.next_hop_timeout
                        + _REPLY_WAIT_MARGIN)

        results, failures = await self._scan(content)
        worst = max(results, key=lambda result: SEVERITY[result.verdict], default=None)
        if worst is not None and worst.verdict != CLEAN:
            # The message is refused even if another scanner failed, because it is unwanted anyway.
            await state.next_hop.rset()
            virus = ", ".join(worst.findings) or "unknown"
            kind = "virus" if worst.verdict == "virus" else "spam"
            reply = self.config.replies.render(
                kind, ref=state.ref, hostname=self.settings.hostname, virus=virus,
                scanner=worst.scanner, score=_number(worst.score),
                threshold=_number(worst.threshold))
            self._record(session, envelope, worst.verdict, reply, result=worst)
            return reply

        if failures and not self.settings.fail_open:
            await state.next_hop.rset()
            scanner, cause = failures[0]
            reply = self.config.replies.render("scanner_failure", ref=state.ref,
                                               hostname=self.settings.hostname, scanner=scanner)
            self._record(session, envelope, "scanner-failure", reply, scanner=scanner,
                         error=cause)
            return reply

        try:
            answer = await state.next_hop.data(content)
        except NextHopError as error:
            return self._refuse(session, envelope, "next-hop-failure", "next_hop_failure",
                                error=str(error))
        verdict = "accepted" if answer.positive else "refused-by-next-hop"
        self._record(session, envelope, verdict, str(answer), result=worst,
                     error=", ".join(f"{name}: {cause}" for name, cause in failures))
        return str(answer)

    async def handle_RSET(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        await self.transaction(session).next_hop.rset()
        return "250 2.0.0 Ok"

    async def handle_QUIT(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        await self.transaction(session).next_hop.quit()
        return "221 2.0.0 Bye"

    async def handle_exception(self, error: Exception) -> str:
        """Return a temporary failure for a bug of the gate, so the client keeps the message."""
        reference = new_reference()
        LOGGER.error("%s: internal error: %s: %s", reference, type(error).__name__, error,
                     exc_info=error)
        return self.config.replies.render("internal_error", ref=reference,
                                          hostname=self.settings.hostname)

    # Events that aiosmtpd has no hook for; GateSMTP calls these.

    def data_dropped(self, session: Session, envelope: Envelope, line_too_long: bool) -> str:
        """Return the reply for a message whose data aiosmtpd dropped: over the size limit,
        or with a line over the line length limit."""
        state = self.transaction(session)
        asyncio.get_running_loop().create_task(state.next_hop.rset())
        if line_too_long:
            return self._refuse(session, envelope, "line-too-long", "line_too_long",
                                limit=self.settings.max_line_length)
        return self._refuse(session, envelope, "size", "size",
                            limit=self.settings.max_message_size)

    def connection_closed(self, session: Session, envelope: Envelope | None) -> None:
        """Drop the next-hop connection, and log a transaction the client left unfinished."""
        state = getattr(session, "gate", None)
        if state is None:
            return
        state.next_hop.close()
        if envelope is not None and envelope.mail_from:
            self._record(session, envelope, "client-gone", "")

    def xforward(self, session: Session, attributes: dict[str, str]) -> None:
        self.transaction(session).xforward.update(attributes)

    # Scanning.

    async def _scan(self, content: bytes) -> tuple[list[ScanResult], list[tuple[str, str]]]:
        """Run every scanner at once; return their results and the (scanner, cause) failures."""
        scanners = self.config.scanners
        outcomes = await asyncio.gather(
            *(asyncio.wait_for(scanner.scan(content), scanner.timeout) for scanner in scanners),
            return_exceptions=True)

        results: list[ScanResult] = []
        failures: list[tuple[str, str]] = []
        for scanner, outcome in zip(scanners, outcomes):
            if isinstance(outcome, ScanResult):
                results.append(outcome)
            elif isinstance(outcome, (asyncio.TimeoutError, TimeoutError)):
                failures.append((scanner.name, f"timed out after {scanner.timeout:g} s"))
            elif isinstance(outcome, ScanError):
                failures.append((scanner.name, str(outcome)))
            elif isinstance(outcome, Exception):
                # A bug in a scanner must not let mail through unscanned.
                failures.append((scanner.name, f"internal error: {type(outcome).__name__}: "
                                               f"{outcome}"))
            else:
                raise outcome  # CancelledError and other BaseExceptions end the session.
        return results, failures

    # Replies and records.

    def _refuse(self, session: Session, envelope: Envelope, verdict: str, kind: str,
                error: str = "", **values) -> str:
        state = self.transaction(session)
        # A refusal before MAIL FROM was taken (SIZE= over the limit) starts its own reference.
        state.ref = state.ref or new_reference()
        reply = self.config.replies.render(kind, ref=state.ref,
                                           hostname=self.settings.hostname,
                                           limit=values.pop("limit", ""))
        self._record(session, envelope, verdict, reply, error=error, **values)
        return reply

    def _pass_refusal(self, session: Session, envelope: Envelope, reply: Reply,
                      **values) -> str:
        self._record(session, envelope, "refused-by-next-hop", str(reply), **values)
        return str(reply)

    def _record(self, session: Session, envelope: Envelope, verdict: str, reply: str,
                result: ScanResult | None = None, scanner: str = "", error: str = "",
                sender: str | None = None, recipients: tuple[str, ...] | None = None) -> None:
        state = self.transaction(session)
        elapsed = time.monotonic() - state.started if state.started else 0.0
        self.log.record(Decision(
            ref=state.ref or new_reference(),
            client=_client_text(session, state.xforward),
            helo=session.host_name or "",
            sender=_reverse_path(envelope.mail_from) if sender is None else sender,
            recipients=tuple(envelope.rcpt_tos) if recipients is None else recipients,
            size=len(envelope.original_content or b""),
            verdict=verdict,
            reply=reply.replace("\r\n", " "),
            milliseconds=round(elapsed * 1000),
            scanner=result.scanner if result is not None else scanner,
            score=result.score if result is not None else None,
            findings=result.findings if result is not None else (),
            error=error,
        ))


def _reverse_path(mail_from: str | None) -> str:
    """Return the sender for the log: "" for none and for the null reverse-path "<>"."""
    return "" if mail_from in (None, "<>") else mail_from


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def _client_text(session: Session, xforward: dict[str, str]) -> str:
    if "ADDR" in xforward:
        # Postfix sends [UNAVAILABLE] or [TEMPUNAVAIL] for a client without a name, and writes
        # such a client as unknown[address] in its own log.
        name = xforward.get("NAME", "")
        if not name or name.startswith("["):
            name = "unknown"
        return f"{name}[{xforward['ADDR']}]"
    peer = session.peer
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"[{peer[0]}]:{peer[1]}"
    return str(peer)


class GateSMTP(SMTP):
    """aiosmtpd's SMTP server with the gate's replies for dropped data, XFORWARD, and the
    cleanup of a client that goes away."""

    event_handler: GateHandler

    passed_parameters: list[str] = []

    async def push(self, status) -> None:
        if (isinstance(status, str) and self.session is not None and self.envelope is not None
                and status.startswith((*_AIOSMTPD_SIZE_REPLIES, _AIOSMTPD_LINE_REPLY))):
            status = self.event_handler.data_dropped(
                self.session, self.envelope, status.startswith(_AIOSMTPD_LINE_REPLY))
        await super().push(status)

    def data_received(self, data: bytes) -> None:
        # aiosmtpd restarts its idle timer only between commands, so a long but steady DATA
        # transfer would be cut off. Any bytes from the client show it is alive.
        if self._timeout_handle is not None and self.transport is not None:
            self._reset_timeout()
        super().data_received(data)

    async def smtp_MAIL(self, arg: str | None) -> None:
        self.passed_parameters, arg = _take_parameters(arg, _PASSED_MAIL_PARAMETERS)
        await super().smtp_MAIL(arg)

    async def smtp_RCPT(self, arg: str | None) -> None:
        self.passed_parameters, arg = _take_parameters(arg, _PASSED_RCPT_PARAMETERS)
        await super().smtp_RCPT(arg)

    async def smtp_XFORWARD(self, arg: str) -> None:
        if self.session is None or not self.event_handler.xforward_allowed(self.session):
            await self.push("550 5.7.0 XFORWARD not allowed from this client")
            return
        attributes = {}
        for item in (arg or "").split():
            name, _, value = item.partition("=")
            if name.upper() not in XFORWARD_ATTRIBUTES or not value:
                await self.push("501 5.5.4 Bad XFORWARD attribute")
                return
            attributes[name.upper()] = value[:_MAX_XFORWARD_VALUE]
        if not attributes:
            await self.push("501 5.5.4 Syntax: XFORWARD attribute=value...")
            return
        if self.session is not None:
            self.event_handler.xforward(self.session, attributes)
        await self.push("250 2.0.0 Ok")

    def connection_made(self, transport) -> None:
        self.event_handler.connections += 1
        super().connection_made(transport)

    def connection_lost(self, error) -> None:
        self.event_handler.connections -= 1
        if self.session is not None:
            self.event_handler.connection_closed(self.session, self.envelope)
        super().connection_lost(error)


def _take_parameters(arg: str | None, names: frozenset[str]) -> tuple[list[str], str | None]:
    """Split the parameters named `names` off a MAIL or RCPT argument, keeping their case."""
    if not arg:
        return [], arg
    # The address ends at the first ">"; a bare address ends at the first space.
    end = arg.find(">") + 1 if "<" in arg and ">" in arg else len(arg.split(" ", 1)[0])
    head, parameters = arg[:end], arg[end:].split()
    taken = [item for item in parameters if item.partition("=")[0].upper() in names]
    kept = [item for item in parameters if item.partition("=")[0].upper() not in names]
    return taken, " ".join([head, *kept])


def _extend_timeout(server: SMTP, seconds: float) -> None:
    """Give the client `seconds` of patience while it waits for the gate's reply."""
    if server.transport is not None:
        # aiosmtpd's idle timer; it restarts with its own duration at the next command.
        server._reset_timeout(seconds)


class _Busy(asyncio.Protocol):
    """Protocol for a connection over the limit: sends the `too_many_connections` reply, closes."""

    def __init__(self, reply: str) -> None:
        self.reply = reply

    def connection_made(self, transport) -> None:
        transport.write(self.reply.encode("ascii", "replace") + b"\r\n")
        transport.close()


async def start_server(config: GateConfig, listen: tuple[str, int], next_hop: tuple[str, int],
                       log: DecisionLog) -> tuple[asyncio.base_events.Server, GateHandler]:
    """Start listening; return the server and its handler (which counts connections)."""
    handler = GateHandler(config, next_hop, log)
    settings = config.settings

    class _Limited(GateSMTP):
        line_length_limit = settings.max_line_length

    def factory() -> asyncio.Protocol:
        if handler.connections >= settings.max_connections:
            return _Busy(config.replies.too_many_connections)
        return _Limited(handler, data_size_limit=settings.max_message_size,
                        enable_SMTPUTF8=True, decode_data=False, hostname=settings.hostname,
                        ident="bouncewise gate", timeout=settings.client_timeout)

    loop = asyncio.get_running_loop()
    try:
        server = await loop.create_server(factory, host=listen[0], port=listen[1])
    except OSError as error:
        raise ListenError(f"cannot listen on {listen[0]}:{listen[1]}: "
                          f"{error.strerror or error}") from error
    return server, handler


async def serve(config: GateConfig, listen: tuple[str, int], next_hop: tuple[str, int],
                log: DecisionLog, metrics: tuple[str, int] | None = None) -> None:
    """Run the gate until SIGTERM or SIGINT, then finish the transactions in progress."""
    server, handler = await start_server(config, listen, next_hop, log)
    metrics_server = None
    if metrics is not None:
        from bouncewise.gate.metrics import start_metrics
        try:
            metrics_server = await start_metrics(metrics, lambda: log.metrics_text(
                handler.connections))
        except OSError as error:
            server.close()
            raise ListenError(f"cannot serve metrics on {metrics[0]}:{metrics[1]}: "
                              f"{error.strerror or error}") from error

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signal_number, stop.set)
    addresses = ", ".join(f"{sock.getsockname()[0]}:{sock.getsockname()[1]}"
                          for sock in server.sockets)
    LOGGER.info("listening on %s, next hop %s:%d, scanners %s", addresses, next_hop[0],
                next_hop[1], ", ".join(scanner.name for scanner in config.scanners) or "none")

    await stop.wait()
    LOGGER.info("stopping: no new connections; waiting up to %g s for %d open ones",
                SHUTDOWN_GRACE, handler.connections)
    server.close()
    if metrics_server is not None:
        metrics_server.close()
    deadline = time.monotonic() + SHUTDOWN_GRACE
    while handler.connections and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    log.close()
