"""Sendmail version 5 (and IDA Sendmail of that age): plain-text bounces from before MIME and
enhanced status codes.

The notice is a session transcript, then the returned message:

       ----- Transcript of session follows -----
    While talking to mx.example.org:
    >>> RCPT To:<kijitora@example.org>
    <<< 550 <kijitora@example.org>, No such user
    550 <kijitora@example.org>... User unknown
    554 <shironeko@example.net>... 550 Host unknown (Authoritative answer from name server)

       ----- Unsent message follows -----

Quirks: a line names either a recipient ("<address>...") or only a host ("example.org
(smtp)..."). Where only hosts are named, the recipients are those of the returned message at
that host. Sendmail's own code may wrap the real one ("554 <address>... 550 Host unknown"), and
the remote server's reply, where it answered, is on the "<<<" lines.
"""

from __future__ import annotations

import re

from bouncewise.decode.fields import FAILURE, RecipientFields, Report
from bouncewise.decode.notice import notice_text, original_recipients
from bouncewise.mail.headers import normalize_address
from bouncewise.mail.message import Message
from bouncewise.smtp import find_reply_code, find_status

NAME = "sendmail_v5"

_TRANSCRIPT = "----- transcript of session follows -----"
# Sendmail 8 writes these; such bounces belong to the modern Sendmail decoder.
_SENDMAIL_8 = ("the following addresses had", "the original message was received at")

_TALKING_TO = re.compile(r"^while talking to ([A-Za-z0-9][A-Za-z0-9.-]{0,252}?)\.?:", re.IGNORECASE)
_SENT = re.compile(r"^>>>\s{0,4}([A-Za-z]{4})")
_RECIPIENT_LINE = re.compile(r"^([245]\d\d) <([^\s<>]{1,64}@[A-Za-z0-9][A-Za-z0-9.-]{0,252})>\.\.\.\s?(.{0,2000})$")
_HOST_LINE = re.compile(r"^([245]\d\d) ([A-Za-z0-9][A-Za-z0-9.-]{0,252}) \(\w{1,16}\)\.\.\.\s?(.{0,2000})$")

_COMMANDS = {"rcpt": "RCPT", "mail": "MAIL", "data": "DATA", "helo": "HELO", "ehlo": "EHLO"}


def decode(message: Message) -> Report | None:
    """Decode a Sendmail V5 bounce, or return None if the message is not one."""
    if message.content_type.startswith("multipart/"):
        return None
    notice = notice_text(message)
    lowered = notice.lower()
    position = lowered.find(_TRANSCRIPT)
    if position < 0 or any(phrase in lowered for phrase in _SENDMAIL_8):
        return None

    lines = [line.strip() for line in notice[position + len(_TRANSCRIPT):].split("\n")[: message.limits.max_notice_lines]]
    report = Report(decoded_by=NAME)
    report.recipients.extend(_recipient_rows(lines))
    if not report.recipients:
        report.recipients.extend(_host_rows(lines, original_recipients(message)))
    return report if report.recipients else None


def _recipient_rows(lines: list[str]) -> list[RecipientFields]:
    rows = []
    remote_mta = command = ""
    replies: list[str] = []
    for line in lines:
        talking = _TALKING_TO.match(line)
        sent = _SENT.match(line)
        recipient = _RECIPIENT_LINE.match(line)
        if talking:
            remote_mta, command, replies = talking.group(1), "", []
        elif sent:
            command, replies = _COMMANDS.get(sent.group(1).lower(), ""), []
        elif line.startswith("<<<"):
            replies.append(line[3:].strip())
        elif recipient:
            # The remote server's own words come first; Sendmail's line only restates them.
            diagnostic = " ".join(replies) or recipient.group(3)
            rows.append(_fields(normalize_address(recipient.group(2)), diagnostic,
                                recipient.group(1), remote_mta, command))
            replies = []
    return rows


def _host_rows(lines: list[str], recipients: list[str]) -> list[RecipientFields]:
    rows = []
    for line in lines:
        host = _HOST_LINE.match(line)
        if not host:
            continue
        domain = host.group(2).lower()
        for recipient in recipients:
            if recipient.lower().endswith("@" + domain) or recipient.lower().endswith("." + domain):
                rows.append(_fields(recipient, host.group(3), host.group(1), domain, ""))
    return rows


def _fields(recipient: str, diagnostic: str, sendmail_code: str, remote_mta: str,
            command: str) -> RecipientFields:
    return RecipientFields(
        final_recipient=recipient,
        action="failed",
        status=find_status(diagnostic),
        reply_code=find_reply_code(diagnostic) or sendmail_code,
        diagnostic_code=diagnostic,
        diagnostic_type="SMTP",
        remote_mta=remote_mta,
        smtp_command=command,
        kind=FAILURE,
    )
