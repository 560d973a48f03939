"""rspamd client: POST one message to the /checkv2 endpoint and read the JSON verdict.

A small HTTP/1.1 client on asyncio's socket functions sends the message with
Content-Length and "Connection: close", then reads the whole response. rspamd's JSON names an action
("reject", "add header", "no action", ...), the score, the reject threshold
(required_score) and the symbols that matched. The message counts as spam when the
action is one of `spam_actions`.

Settings of a `[[scanner]]` table with `type = "rspamd"`:

    url           the /checkv2 URL of an rspamd normal or proxy worker, plain http only,
                  default "http://127.0.0.1:11333/checkv2"
    timeout       seconds the gate allows for one scan, default 30
    spam_actions  the rspamd actions that make the gate reject the message as spam,
                  default ["reject"]. Add "add header" or "rewrite subject" to reject
                  those messages too.
    password      sent as the Password header, for a worker that requires one (optional)
    name          name of this scanner in results and logs, default "rspamd"
"""

from __future__ import annotations

import asyncio
import json
import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from bouncewise.gate.scanners import (CLEAN, DEFAULT_TIMEOUT, SPAM, ScanError, ScanResult,
                                      check_settings)
from bouncewise.gate.scanners.net import connect, send_and_read

__all__ = ["RspamdScanner", "from_settings", "parse_response", "parse_result"]

DEFAULT_URL = "http://127.0.0.1:11333/checkv2"
DEFAULT_SPAM_ACTIONS = ("reject",)
# The built-in action names of rspamd 3.4 (in librspamd-server), other than "no action".
# NOTE: custom actions defined in an rspamd configuration are not accepted here.
RSPAMD_ACTIONS = frozenset({"reject", "soft reject", "rewrite subject", "add header", "greylist",
                            "discard", "quarantine"})
# A reply lists each matched symbol with its score, description and options: tens of KiB
# for a typical message.
MAX_RESPONSE_BYTES = 1_048_576
# The maximum number of symbols, highest score first, that a result lists in its findings.
MAX_FINDINGS = 20

SETTING_KEYS = frozenset({"type", "name", "url", "timeout", "spam_actions", "password"})


@dataclass(frozen=True, slots=True)
class RspamdScanner:
    """A client of one rspamd worker's /checkv2 endpoint."""

    host: str
    port: int
    # Path and query of the request, such as "/checkv2".
    target: str
    url: str
    timeout: float = DEFAULT_TIMEOUT
    spam_actions: frozenset[str] = frozenset(DEFAULT_SPAM_ACTIONS)
    password: str | None = None
    name: str = "rspamd"

    async def scan(self, message: bytes) -> ScanResult:
        """POST `message` to rspamd and return its verdict. Raise ScanError when rspamd fails."""
        where = f"rspamd at {self.url}"
        loop = asyncio.get_running_loop()
        connection = await connect(loop, self.host, self.port, where)

        # This uses a plain non-blocking socket, not asyncio streams, because a server may
        # reply early, for example "413 Payload Too Large", and close the connection while
        # the message is still being sent. A stream transport whose write fails then
        # discards that response unread. The socket is closed on every exit, a cancelled
        # scan (the gate's timeout) included.
        with connection:
            response, transfer_error = await send_and_read(
                loop, connection, [self._request_head(len(message)), message],
                MAX_RESPONSE_BYTES, where, noun="response")

        if transfer_error is not None:
            # Unless the server sent a complete error response, a broken connection is an
            # error, because rspamd may not have had the whole message.
            try:
                status, reason, body = parse_response(response, where, require_length=True)
            except ScanError:
                raise ScanError(f"{where}: connection lost: {transfer_error}") from transfer_error
            if status != 200:
                raise ScanError(f"{where}: HTTP {status} {reason}: {error_text(body)}")
            raise ScanError(f"{where}: connection lost: {transfer_error}") from transfer_error

        status, reason, body = parse_response(response, where)
        if status != 200:
            raise ScanError(f"{where}: HTTP {status} {reason}: {error_text(body)}")
        return parse_result(body, self.name, where, self.spam_actions)

    def _request_head(self, length: int) -> bytes:
        host = f"[{self.host}]" if ":" in self.host else self.host
        lines = [f"POST {self.target} HTTP/1.1", f"Host: {host}:{self.port}",
                 f"Content-Length: {length}", "Connection: close"]
        if self.password is not None:
            lines.append(f"Password: {self.password}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def parse_response(response: bytes, where: str, require_length: bool = False) -> tuple[int, str, bytes]:
    """Split a whole HTTP/1.1 response into status code, reason phrase and decoded body.

    With `require_length`, a body whose end is marked only by the closed connection
    raises ScanError, because the caller cannot tell whether it is complete.
    """
    head, separator, body = response.partition(b"\r\n\r\n")
    if not separator:
        if not response:
            raise ScanError(f"{where}: connection closed without a response")
        raise ScanError(f"{where}: invalid HTTP response: headers not terminated by an empty line")

    lines = head.decode("latin-1").split("\r\n")
    status = lines[0].split(None, 2)
    if len(status) < 2 or not status[0].startswith("HTTP/1.") or not status[1].isdigit():
        raise ScanError(f"{where}: invalid HTTP status line {lines[0][:80]!r}")
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()

    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = decode_chunked(body, where)
    elif "content-length" in headers:
        length = headers["content-length"]
        if not length.isdigit() or int(length) > len(body):
            raise ScanError(f"{where}: response body is {len(body)} bytes, "
                            f"Content-Length is {length!r}")
        body = body[:int(length)]
    elif require_length:
        raise ScanError(f"{where}: response has neither Content-Length nor chunked encoding")
    return int(status[1]), status[2] if len(status) > 2 else "", body


def decode_chunked(data: bytes, where: str) -> bytes:
    """Decode a body sent with "Transfer-Encoding: chunked", dropping any trailer fields."""
    body = bytearray()
    position = 0
    while True:
        line_end = data.find(b"\r\n", position)
        if line_end < 0:
            raise ScanError(f"{where}: chunked response body ends inside a chunk size line")
        size_text = data[position:line_end].split(b";")[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise ScanError(f"{where}: invalid chunk size {size_text[:20]!r}") from None
        position = line_end + 2
        if size == 0:
            return bytes(body)
        if position + size > len(data):
            raise ScanError(f"{where}: chunked response body ends inside a chunk")
        body += data[position:position + size]
        position += size + 2


def error_text(body: bytes) -> str:
    """Return the "error" field of rspamd's JSON error body, or the body's start as text."""
    try:
        reply = json.loads(body)
    except ValueError:
        reply = None
    if isinstance(reply, dict) and isinstance(reply.get("error"), str):
        text = reply["error"]
    else:
        text = body.decode("utf-8", "replace")
    return " ".join(text.split())[:200] or "empty body"


def parse_result(body: bytes, scanner: str, where: str, spam_actions: frozenset[str]) -> ScanResult:
    """Read rspamd's /checkv2 JSON into a ScanResult. Raise ScanError when it is not valid."""
    try:
        reply = json.loads(body)
    except ValueError as exc:
        raise ScanError(f"{where}: invalid JSON in response: {exc}") from exc
    if not isinstance(reply, dict):
        raise ScanError(f"{where}: invalid response: expected a JSON object, got {type(reply).__name__}")

    action = reply.get("action")
    if not isinstance(action, str):
        raise ScanError(f"{where}: invalid response: no action")
    score = optional_number(reply, "score", where)
    threshold = optional_number(reply, "required_score", where)

    symbols = reply.get("symbols", {})
    if not isinstance(symbols, dict):
        raise ScanError(f"{where}: invalid response: symbols is not a JSON object")
    ranked = []
    for name, details in symbols.items():
        symbol_score = details.get("score", 0.0) if isinstance(details, dict) else 0.0
        if isinstance(symbol_score, bool) or not isinstance(symbol_score, (int, float)):
            symbol_score = 0.0
        ranked.append((-symbol_score, name))
    ranked.sort()
    findings = tuple(name for _, name in ranked[:MAX_FINDINGS])

    verdict = SPAM if action in spam_actions else CLEAN
    return ScanResult(verdict, scanner, score=score, threshold=threshold, findings=findings)


def optional_number(reply: dict[str, Any], key: str, where: str) -> float | None:
    value = reply.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ScanError(f"{where}: invalid response: {key} is {value!r}, expected a number")
    return float(value)


def from_settings(settings: dict[str, Any]) -> RspamdScanner:
    """Build an RspamdScanner from a `[[scanner]]` table. Raise ValueError for a bad setting."""
    check_settings(settings, SETTING_KEYS, "rspamd")
    url = settings.get("url", DEFAULT_URL)
    host, port, target = split_url(url)

    timeout = settings.get("timeout", DEFAULT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) \
            or not math.isfinite(timeout) or timeout <= 0:
        raise ValueError(f"rspamd scanner: timeout must be a positive number of seconds, got {timeout!r}")

    return RspamdScanner(
        host=host,
        port=port,
        target=target,
        url=url,
        timeout=float(timeout),
        spam_actions=parse_spam_actions(settings.get("spam_actions", list(DEFAULT_SPAM_ACTIONS))),
        password=header_value(settings, "password"),
        name=header_value(settings, "name") or "rspamd",
    )


def split_url(url: Any) -> tuple[str, int, str]:
    """Split an http:// URL into host, port and request target. Raise ValueError if invalid."""
    if not isinstance(url, str):
        raise ValueError(f"rspamd scanner: url must be a string, got {url!r}")
    parts = urlsplit(url)
    if parts.scheme != "http":
        raise ValueError(f"rspamd scanner: url {url!r} must start with http://, because "
                         f"the client speaks plain HTTP only")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"rspamd scanner: url {url!r} contains a user name or password. "
                         f"Put the password in the password setting")
    try:
        port = parts.port or 80
    except ValueError:
        raise ValueError(f"rspamd scanner: invalid port in url {url!r}") from None
    if not parts.hostname:
        raise ValueError(f"rspamd scanner: url {url!r} has no host")
    target = parts.path or "/checkv2"
    if parts.query:
        target += "?" + parts.query
    if not target.isprintable() or " " in target:
        raise ValueError(f"rspamd scanner: url {url!r} contains spaces or control characters")
    return parts.hostname, port, target


def parse_spam_actions(value: Any) -> frozenset[str]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"rspamd scanner: spam_actions must be a non-empty list of rspamd "
                         f"actions, got {value!r}")
    for action in value:
        if not isinstance(action, str) or action not in RSPAMD_ACTIONS:
            raise ValueError(f"rspamd scanner: unknown action {action!r} in spam_actions, "
                             f"expected some of {', '.join(map(repr, sorted(RSPAMD_ACTIONS)))} "
                             f"(rspamd writes them with spaces, as in 'add header')")
    return frozenset(value)


def header_value(settings: dict[str, Any], key: str) -> str | None:
    """Return an optional string setting that goes into a protocol header line."""
    value = settings.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value or not value.isprintable():
        # The value is not shown, because it may be the password.
        raise ValueError(f"rspamd scanner: {key} must be a non-empty string of printable characters")
    return value
