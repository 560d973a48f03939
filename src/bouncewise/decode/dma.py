"""Bounces of the DragonFly Mail Agent (dma), the small MTA of DragonFly BSD and Debian's `dma`.

A notice covers one recipient. It names the recipient, then either the remote host's reply with
the command it replied to, or dma's own error, as in

    There was an error delivering your mail to <user@example.org>.

    mx.example.org [192.0.2.1] did not like our RCPT TO:
    550 5.1.1 <user@example.org>: Recipient address rejected: User unknown

Quirks handled: dma puts a blank line between the lines of a multi-line reply, so the reply runs
to the end of the notice rather than to the next blank line.
"""

from __future__ import annotations

import re

from bouncewise.decode.fields import Report
from bouncewise.decode.plain import build_recipient, find_address, notice_body
from bouncewise.mail.message import Message

NAME = "dma"

_INTRODUCTION = "this is the dragonfly mail agent"
_RECIPIENT_LINE = "there was an error delivering your mail to"

_REFUSAL = re.compile(
    r"^([A-Za-z0-9][A-Za-z0-9.-]{0,254})\s{1,4}\[[0-9A-Fa-f.:]{2,45}\]\s{1,4}"
    r"did not like our\s{1,4}"
    r"(final\s{1,4}DATA|DATA|RCPT\s{1,4}TO|MAIL\s{1,4}FROM|EHLO|HELO|STARTTLS|AUTH)\b",
    re.IGNORECASE,
)
_COMMANDS = {"final": "DATA", "data": "DATA", "rcpt": "RCPT", "mail": "MAIL", "ehlo": "EHLO",
             "helo": "HELO", "starttls": "STARTTLS", "auth": "AUTH"}


def decode(message: Message) -> Report | None:
    """Decode a dma notice, or return None if the message is not one."""
    notice = notice_body(message)
    lowered = notice.lower()
    start = lowered.find(_RECIPIENT_LINE)
    if start < 0 or _INTRODUCTION not in lowered[:start]:
        return None

    line_end = notice.find("\n", start)
    line_end = len(notice) if line_end < 0 else line_end
    address = find_address(notice[start + len(_RECIPIENT_LINE) : line_end])
    if not address:
        return None

    remote_mta = command = ""
    lines = [line.strip() for line in notice[line_end:].split("\n") if line.strip()]
    if lines:
        refusal = _REFUSAL.match(lines[0])
        if refusal:
            remote_mta = refusal.group(1)
            command = _COMMANDS[refusal.group(2).split()[0].lower()]
            lines = lines[1:]

    report = Report(decoded_by=NAME)
    report.recipients.append(build_recipient(address, " ".join(lines), remote_mta=remote_mta,
                                             smtp_command=command))
    return report
