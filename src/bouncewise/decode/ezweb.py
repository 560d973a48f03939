"""au by KDDI (ezweb.ne.jp, au.com): the plain-text notices of the mobile carrier's mail servers,
subject "Mail System Error - Returned Mail", sent as multipart/mixed without a delivery-status
part. (Its RFC 3464 reports are left to the rfc3464 decoder.)

A Japanese paragraph comes first, then English lines: either a transcript of the refused
command, or a sentence about the failure above a bare list of recipients:

    Each of the following recipients was rejected by a remote
    mail server.

        Recipient: <kijitora@example.org>
        >>> RCPT TO:<kijitora@example.org>
        <<< 550 <kijitora@example.org>: User unknown

    The user(s) account is disabled.

    <kijitora@example.org>

Quirks: the Japanese part is often labelled ISO-2022-JP but written in another charset, so only
the ASCII lines are read. Without a transcript, the English sentences are the diagnostic.
"""

from __future__ import annotations

import re

from bouncewise.decode.fields import RecipientFields, Report
from bouncewise.decode.notice import notice_text
from bouncewise.decode.plain import build_recipient
from bouncewise.mail.headers import normalize_address
from bouncewise.mail.message import Message

NAME = "ezweb"

_SENDER_DOMAINS = ("@ezweb.ne.jp", "@au.com")

_RECIPIENT_LINE = re.compile(r"^(?:Recipient:\s{0,8})?<([^\s<>]{1,64}@[A-Za-z0-9][A-Za-z0-9.-]{0,252})>$")
_SENT_COMMAND = re.compile(r"^>>>\s{0,4}([A-Za-z]{4})")

_COMMANDS = {"rcpt": "RCPT", "mail": "MAIL", "data": "DATA", "ehlo": "EHLO", "helo": "HELO"}


def decode(message: Message) -> Report | None:
    """Decode an au (ezweb) plain-text notice, or return None if the message is not one."""
    sender = (message.header("from") + " " + message.header("return-path")).lower()
    if not any(domain in sender for domain in _SENDER_DOMAINS):
        return None
    if message.content_type == "multipart/report":
        return None
    notice = notice_text(message)

    lines = [line.strip() for line in notice.split("\n")[: message.limits.max_notice_lines]]
    prose = _english_sentences(lines)
    report = Report(decoded_by=NAME)
    for index, line in enumerate(lines):
        match = _RECIPIENT_LINE.match(line)
        if match:
            recipient = normalize_address(match.group(1))
            report.recipients.append(_recipient_fields(recipient, lines[index + 1:], prose))
    return report if report.recipients else None


def _english_sentences(lines: list[str]) -> str:
    """Join the ASCII lines that state the failure, leaving out addresses and list headings."""
    kept = []
    for line in lines:
        if not line or not line.isascii() or "@" in line or line.endswith(":"):
            continue
        if line.startswith((">>>", "<<<")):
            continue
        kept.append(line)
    return " ".join(kept)


def _recipient_fields(recipient: str, following: list[str], prose: str) -> RecipientFields:
    command = ""
    replies = []
    for line in following:
        if not line.startswith((">>>", "<<<")):
            break
        sent = _SENT_COMMAND.match(line)
        if sent:
            command = _COMMANDS.get(sent.group(1).lower(), command)
        else:
            replies.append(line[3:].strip())

    return build_recipient(recipient, " ".join(replies) or prose, smtp_command=command)
