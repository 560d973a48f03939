"""The gate's SMTP client session with the next hop.

The gate forwards each command of the client's transaction as it comes: MAIL and every RCPT
at once, so that the next hop's own refusals reach the client unchanged, and the message data
only after the scanners found it clean. The client gets the next hop's end-of-data reply,
so it hears 250 only once the next hop has taken the message.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiosmtplib

__all__ = ["Reply", "NextHop", "NextHopError", "format_reply"]

# Extensions of ours whose MAIL parameters pass on only where the next hop announces them.
_PARAMETER_EXTENSIONS = {"BODY": "8bitmime", "SMTPUTF8": "smtputf8", "SIZE": "size",
                         "RET": "dsn", "ENVID": "dsn", "NOTIFY": "dsn", "ORCPT": "dsn",
                         "AUTH": "auth"}

# XFORWARD attributes that Postfix's smtpd accepts from an authorized filter.
XFORWARD_ATTRIBUTES = ("NAME", "ADDR", "PORT", "PROTO", "HELO", "IDENT", "SOURCE")


class NextHopError(Exception):
    """The next hop could not be reached, dropped the connection, or timed out."""


@dataclass(frozen=True, slots=True)
class Reply:
    """An SMTP reply: the three-digit code and the text, lines joined with newlines."""

    code: int
    text: str

    @property
    def positive(self) -> bool:
        return 200 <= self.code < 400

    def __str__(self) -> str:
        return format_reply(self.code, self.text)


def format_reply(code: int, text: str) -> str:
    """Return a reply as the client must see it, multi-line replies as RFC 5321 writes them."""
    lines = [line for line in text.replace("\r", "").split("\n")] or [""]
    head = [f"{code}-{line}" for line in lines[:-1]]
    return "\r\n".join(head + [f"{code} {lines[-1]}"])


class NextHop:
    """One connection to the next hop, used for the transactions of one client connection."""

    def __init__(self, host: str, port: int, helo_name: str, timeout: float) -> None:
        self.host = host
        self.port = port
        self.helo_name = helo_name
        self.timeout = timeout
        self._client: aiosmtplib.SMTP | None = None

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.is_connected

    async def mail(self, sender: str, options: list[str], xforward: dict[str, str]) -> Reply:
        """Open the connection if needed, pass XFORWARD attributes, and send MAIL FROM.

        `sender` is "" for the null reverse-path of a bounce. Parameters pass on only where
        the next hop announces their extension.
        """
        client = await self._connect()
        if xforward and client.supports_extension("xforward"):
            arguments = [f"{name}={value}".encode("ascii", "replace")
                         for name, value in xforward.items()]
            await self._call(client.execute_command(b"XFORWARD", *arguments))

        passed = self._supported(client, options)
        utf8 = "SMTPUTF8" in passed
        return await self._address_reply(client.mail(sender, options=passed,
                                                     encoding="utf-8" if utf8 else "ascii"),
                                         sender, utf8)

    async def rcpt(self, recipient: str, utf8: bool, options: list[str] | None = None) -> Reply:
        client = self._require()
        return await self._address_reply(client.rcpt(
            recipient, options=self._supported(client, options or []),
            encoding="utf-8" if utf8 else "ascii"), recipient, utf8)

    @staticmethod
    def _supported(client: aiosmtplib.SMTP, options: list[str]) -> list[str]:
        return [option for option in options
                if client.supports_extension(_PARAMETER_EXTENSIONS.get(
                    option.partition("=")[0].upper(), "none"))]

    async def _address_reply(self, command, address: str, utf8: bool) -> Reply:
        """Send MAIL or RCPT; an address that cannot be sent becomes a refusal, not an error."""
        try:
            return await self._reply(command)
        except UnicodeError:
            return Reply(553, "5.6.7 The next hop does not accept non-ASCII addresses"
                         if not utf8 else "5.6.7 Address cannot be encoded")
        except ValueError:
            return Reply(553, f"5.1.7 Invalid address syntax: <{address[:100]}>")

    async def data(self, content: bytes) -> Reply:
        """Send the message; return the next hop's end-of-data reply."""
        client = self._require()
        return await self._reply(client.data(content))

    async def rset(self) -> None:
        """End the current transaction; on any trouble drop the connection instead."""
        if not self.connected:
            return
        try:
            await self._reply(self._require().rset())
        except NextHopError:
            self.close()

    async def quit(self) -> None:
        if self.connected:
            try:
                await self._require().quit()
            except (aiosmtplib.SMTPException, OSError):
                pass
        self.close()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def _connect(self) -> aiosmtplib.SMTP:
        if self.connected:
            assert self._client is not None
            return self._client
        self.close()
        client = aiosmtplib.SMTP(hostname=self.host, port=self.port, timeout=self.timeout,
                                 local_hostname=self.helo_name, start_tls=False,
                                 use_tls=False)
        try:
            await client.connect()
            await client.ehlo()
        except (aiosmtplib.SMTPException, OSError) as error:
            client.close()
            raise NextHopError(f"cannot connect to {self.host}:{self.port}: {_cause(error)}") \
                from error
        self._client = client
        return client

    def _require(self) -> aiosmtplib.SMTP:
        if not self.connected:
            raise NextHopError(f"connection to {self.host}:{self.port} was lost")
        assert self._client is not None
        return self._client

    async def _call(self, command):
        try:
            return await command
        except aiosmtplib.SMTPResponseException as error:
            return error
        except (aiosmtplib.SMTPException, OSError) as error:
            self.close()
            raise NextHopError(f"{self.host}:{self.port}: {_cause(error)}") from error

    async def _reply(self, command) -> Reply:
        """Await an aiosmtplib command; a refusal is a Reply, a broken connection NextHopError."""
        outcome = await self._call(command)
        if isinstance(outcome, aiosmtplib.SMTPResponseException):
            if outcome.code < 200:
                # aiosmtplib's own codes for a lost or timed-out connection are below 200.
                self.close()
                raise NextHopError(f"{self.host}:{self.port}: {outcome.message}")
            return Reply(outcome.code, outcome.message)
        return Reply(outcome.code, outcome.message)


def _cause(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text.splitlines()[0][:200] if text else type(error).__name__
