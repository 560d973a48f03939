"""Settings of the gate, read from a TOML file, each with a safe default.

A file that sets nothing gives a gate with the built-in scanner only. Every key is checked: an
unknown key or a value of the wrong type is an error naming the key, so a typing error in the
file cannot silently turn a check off.

    [gate]
    hostname = "mx.example.org"
    max_message_size = 26214400

    [[scanner]]
    type = "clamd"
    address = "127.0.0.1:3310"

    [replies]
    spam = "554 5.7.1 Message rejected as spam by the content filter (ref {ref})"
"""

from __future__ import annotations

import dataclasses
import re
import string
import socket
from dataclasses import dataclass, field
from typing import Any

from bouncewise.gate.scanners import Scanner, build_scanner
from bouncewise.settings import ConfigError, build_settings, load_toml, reject_unknown

__all__ = ["GateSettings", "Replies", "GateConfig", "load_config", "parse_config", "ConfigError"]


@dataclass(frozen=True, slots=True)
class GateSettings:
    """The `[gate]` table: limits and behaviour of the SMTP server."""

    # Host name in the greeting and in EHLO replies; default: this machine's name.
    hostname: str = ""

    # Largest message in bytes. It is advertised as SIZE, and a bigger message is refused with
    # the `size` reply after its data has been read and dropped.
    max_message_size: int = 25 * 1024 * 1024

    # Recipients accepted in one transaction; later ones get the `recipients` reply, a 452,
    # so the client sends them in another transaction. Postfix's default is 1000.
    max_recipients: int = 1000

    # Client connections served at once; more get the `too_many_connections` reply (421).
    max_connections: int = 500

    # Maximum length of a line of message data in bytes, CR LF included. RFC 5321 allows 1000,
    # but real mail sometimes has longer lines, which a filter should pass rather than reject.
    max_line_length: int = 16 * 1024

    # Seconds the gate waits for the client's next command or line of data before closing.
    # RFC 5321 recommends at least five minutes.
    client_timeout: float = 300.0

    # Seconds the gate waits for each reply of the next hop (its end-of-data reply included).
    next_hop_timeout: float = 120.0

    # Accept mail unscanned when a scanner fails or times out. Off: the client gets the
    # `scanner_failure` reply (a 4xx) and retries later.
    fail_open: bool = False

    # Client addresses allowed to send XFORWARD, which sets the client name and address that
    # the gate logs and passes on. Postfix's before-queue proxy connects from loopback.
    xforward_hosts: tuple[str, ...] = ("127.0.0.1", "::1")

    # Name of a header field set by a trusted upstream filter ("X-Spam-Flag"); empty: none.
    # Only for mail that has passed that filter: anyone can write any header into a message.
    trusted_verdict_header: str = ""

    # Values of that field that mean spam, compared without regard to case.
    trusted_spam_values: tuple[str, ...] = ("yes",)

    # File that receives one JSON object per decision, for the watch; empty: none.
    decisions_file: str = ""


# Reply templates. Fields: {ref} (the reference in the log line), {hostname}, {score},
# {threshold}, {virus} (the signature names), {scanner}, {limit} (bytes or recipients).
# The spam and virus wordings are read as spam and as a virus by bouncewise and by Sisimai
# when they come back inside a Postfix bounce (the gate's tests check both).
DEFAULT_REPLIES = {
    "spam": "554 5.7.1 Message rejected as spam by the content filter (ref {ref})",
    "virus": "554 5.7.1 Virus detected: {virus}; message rejected (ref {ref})",
    "size": "552 5.3.4 Message size exceeds the limit of {limit} bytes (ref {ref})",
    "recipients": "452 4.5.3 Too many recipients, send the rest in another transaction "
                  "(ref {ref})",
    "scanner_failure": "451 4.3.0 Content scanner unavailable, try again later (ref {ref})",
    "next_hop_failure": "451 4.4.1 Next hop not reachable, try again later (ref {ref})",
    "too_many_connections": "421 4.3.2 Too many connections, try again later",
    "line_too_long": "554 5.6.0 Message has a line longer than {limit} bytes (ref {ref})",
    "internal_error": "451 4.3.0 Internal error of the filter, try again later (ref {ref})",
}

# The class of reply each template must have: refusals are permanent, failures temporary.
_REPLY_CLASSES = {"spam": "5", "virus": "5", "size": "5", "recipients": "4",
                  "scanner_failure": "4", "next_hop_failure": "4", "too_many_connections": "4",
                  "line_too_long": "5", "internal_error": "4"}

# Enhanced status codes of RFC 3463 and the IANA registry that fit a gate's replies. A
# template must use one of these, with the class digit of its reply code.
REGISTERED_STATUS_DETAILS = frozenset((
    "0.0", "1.0", "1.1", "2.0", "2.2", "3.0", "3.1", "3.2", "3.4", "3.5", "4.0", "4.1", "4.2",
    "4.3", "4.4", "4.5", "4.7", "5.0", "5.3", "5.4", "6.0", "6.1", "7.0", "7.1", "7.7", "7.9",
    "7.23", "7.24", "7.25", "7.26",
))

_REPLY_SHAPE = re.compile(r"([245])[0-5][0-9] ([245])\.([0-9]{1,3}\.[0-9]{1,3}) [ -~]{1,400}")

# Fields a template may name.
_TEMPLATE_FIELDS = frozenset(("ref", "hostname", "score", "threshold", "virus", "scanner", "limit"))


@dataclass(frozen=True, slots=True)
class Replies:
    """The reply texts of refusals and temporary failures."""

    spam: str = DEFAULT_REPLIES["spam"]
    virus: str = DEFAULT_REPLIES["virus"]
    size: str = DEFAULT_REPLIES["size"]
    recipients: str = DEFAULT_REPLIES["recipients"]
    scanner_failure: str = DEFAULT_REPLIES["scanner_failure"]
    next_hop_failure: str = DEFAULT_REPLIES["next_hop_failure"]
    too_many_connections: str = DEFAULT_REPLIES["too_many_connections"]
    line_too_long: str = DEFAULT_REPLIES["line_too_long"]
    internal_error: str = DEFAULT_REPLIES["internal_error"]

    def render(self, kind: str, **values: Any) -> str:
        """Fill in the template of `kind`; values are cut to one short line each."""
        template = getattr(self, kind)
        safe = {name: _reply_safe(str(values.get(name, ""))) for name in _TEMPLATE_FIELDS}
        return template.format(**safe)


def _reply_safe(text: str) -> str:
    """Return `text` as printable ASCII of at most 100 characters, fit for a reply line."""
    cleaned = "".join(character if " " <= character <= "~" else "?" for character in text)
    return cleaned[:100]


@dataclass(frozen=True)
class GateConfig:
    """Everything the gate reads from its configuration file."""

    settings: GateSettings = field(default_factory=GateSettings)
    replies: Replies = field(default_factory=Replies)
    scanners: tuple[Scanner, ...] = ()


def load_config(path: str | None) -> GateConfig:
    """Read the configuration file at `path`; with None, return the defaults."""
    return load_toml(path, parse_config)


def parse_config(data: dict[str, Any]) -> GateConfig:
    """Build the configuration from the parsed TOML document."""
    reject_unknown(data, ("gate", "scanner", "replies"), "top level")

    settings = build_settings(GateSettings, data.get("gate", {}), "[gate]")
    if not settings.hostname:
        settings = dataclasses.replace(settings, hostname=socket.gethostname())

    replies = build_settings(Replies, data.get("replies", {}), "[replies]")
    for kind in _REPLY_CLASSES:
        _check_reply(kind, getattr(replies, kind))

    tables = data.get("scanner", [{"type": "builtin"}])
    if not isinstance(tables, list) or not all(isinstance(table, dict) for table in tables):
        raise ConfigError("[[scanner]] must be a list of tables")
    scanners = []
    for number, table in enumerate(tables, start=1):
        try:
            scanners.append(build_scanner(table))
        except ValueError as error:
            raise ConfigError(f"scanner {number}: {error}") from error
    if not scanners and not settings.fail_open:
        raise ConfigError("no scanner is configured: the gate would refuse every message "
                          "with a temporary failure")
    if settings.trusted_verdict_header:
        scanners.append(build_scanner({"type": "builtin", "name": "upstream",
                                       "patterns": False,
                                       "header": settings.trusted_verdict_header,
                                       "spam_values": list(settings.trusted_spam_values)}))

    return GateConfig(settings=settings, replies=replies, scanners=tuple(scanners))


def _check_reply(kind: str, template: str) -> None:
    """Raise ConfigError unless `template` is one reply line with a fitting registered code."""
    match = _REPLY_SHAPE.fullmatch(template)
    if match is None:
        raise ConfigError(f"reply {kind!r} must be one line of the form "
                          f"'554 5.7.1 text', not {template!r}")
    reply_class, status_class, detail = match.groups()
    if reply_class != status_class or reply_class != _REPLY_CLASSES[kind]:
        wanted = "permanent (5xx)" if _REPLY_CLASSES[kind] == "5" else "temporary (4xx)"
        raise ConfigError(f"reply {kind!r} must be {wanted} with an enhanced code of the same "
                          f"class: {template!r}")
    if detail not in REGISTERED_STATUS_DETAILS:
        raise ConfigError(f"reply {kind!r} uses {status_class}.{detail}, which is not a "
                          f"registered enhanced status code for this purpose")
    try:
        fields = [name for _, name, spec, conversion in string.Formatter().parse(template)
                  if name is not None or spec or conversion]
    except ValueError as error:
        raise ConfigError(f"reply {kind!r} has a malformed field: {error}: {template!r}; "
                          f"write a brace as {{{{ or }}}}") from error
    for name in fields:
        if name not in _TEMPLATE_FIELDS:
            raise ConfigError(f"reply {kind!r} names an unknown field {{{name}}}; known "
                              f"fields: {', '.join(sorted(_TEMPLATE_FIELDS))}")
